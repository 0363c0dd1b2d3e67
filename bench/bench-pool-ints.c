/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bench-pool-ints.h"

/* Appends @value in decimal, as printf's %" G_GINT64_FORMAT " would. */
void
bench_pool_append_int (GString *out,
                       gint64   value)
{
  char digits[24];
  char *p = digits + sizeof digits;
  guint64 magnitude = value < 0 ? -(guint64) value : (guint64) value;

  do
    *--p = '0' + magnitude % 10;
  while ((magnitude /= 10) != 0);
  if (value < 0)
    *--p = '-';
  g_string_append_len (out, p, digits + sizeof digits - p);
}

/* Appends to @values (of gint64) the compact JSON array of integers that
 * is the @length bytes at @text, strictly: "[", integers (an optional "-",
 * 1 to 18 digits, no leading zero) separated by ",", "]", and nothing else,
 * whitespace included. FALSE when @text is anything else (a float, a
 * string, a space, a longer integer). */
gboolean
bench_pool_read_int_array (const char *text,
                           gsize       length,
                           GArray     *values)
{
  const char *p = text;
  const char *end = text + length;

  if (p == end || *p++ != '[')
    return FALSE;
  if (p < end && *p == ']')
    return p + 1 == end;
  while (p < end)
    {
      gboolean negative = *p == '-';
      const char *digits;
      gint64 value = 0;

      p += negative;
      digits = p;
      while (p < end && *p >= '0' && *p <= '9' && p - digits < 18)
        value = value * 10 + (*p++ - '0');
      if (p == digits || p == end || (*digits == '0' && p - digits > 1))
        return FALSE;
      value = negative ? -value : value;
      g_array_append_val (values, value);
      if (*p == ']')
        return p + 1 == end;
      if (*p++ != ',')
        return FALSE;
    }
  return FALSE;
}
