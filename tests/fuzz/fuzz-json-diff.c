/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The library's JSON reader against json-glib's parser, on any text.
 *
 * json-glib 1.6 is lenient (single quotes, comments, hex, "01", a cut at
 * \u0000, integers wrapped past 64 bits: mpq-json-private.h), so it is the
 * reference in one direction only: what our reader accepts, json-glib must
 * accept too, with an equal value. Our reader also checks without building
 * (how message data is read on the wire), with the same verdict and error;
 * and what it builds, the writer writes as compact JSON that reads back
 * equal and writes again to the same text. Python's json checks the other
 * direction over the corpus (json-diff.py). */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "mpq-json-private.h"

/* How _mpq_codec_check reads a message's data: checked, not built. */
static gboolean
check_only (const char  *text,
            gsize        length,
            GError     **error)
{
  MpqJsonReader reader;
  gboolean ok;

  _mpq_json_reader_init (&reader, text, length, MPQ_MAX_DEPTH, error);
  ok = _mpq_json_skip_value (&reader);
  if (ok && !_mpq_json_at_end (&reader))
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "Invalid JSON: trailing text after the value");
      ok = FALSE;
    }
  _mpq_json_reader_clear (&reader);
  return ok;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *text = (const char *) data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) check_error = NULL;
  g_autoptr(JsonNode) ours = NULL;
  g_autoptr(JsonNode) again = NULL;
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GString) written = NULL;
  g_autoptr(GString) rewritten = NULL;
  JsonNode *theirs;
  gboolean checked;

  /* Lines are checked as UTF-8 (NUL bytes refused) before they are read. */
  if (!_mpq_utf8_validate_len (text, size))
    return 0;

  ours = _mpq_json_parse (text, size, MPQ_MAX_DEPTH, &error);
  checked = check_only (text, size, &check_error);
  if (ours == NULL)
    {
      FUZZ_CHECK (!checked);
      FUZZ_CHECK (g_error_matches (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL));
      FUZZ_CHECK (g_error_matches (check_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL));
      FUZZ_CHECK (g_str_equal (error->message, check_error->message));
      return 0;
    }
  FUZZ_CHECK (checked && error == NULL && check_error == NULL);

  parser = json_parser_new_immutable ();
  FUZZ_CHECK (json_parser_load_from_data (parser, text, size, &error));
  theirs = json_parser_get_root (parser);
  FUZZ_CHECK (theirs != NULL);
  FUZZ_CHECK (json_node_equal (ours, theirs));

  written = g_string_new (NULL);
  FUZZ_CHECK (_mpq_json_write (written, ours, MPQ_MAX_DEPTH, &error));
  again = _mpq_json_parse (written->str, written->len, MPQ_MAX_DEPTH, &error);
  FUZZ_CHECK (again != NULL && json_node_equal (again, ours));

  rewritten = g_string_new (NULL);
  FUZZ_CHECK (_mpq_json_write (rewritten, again, MPQ_MAX_DEPTH, &error));
  FUZZ_CHECK (g_str_equal (rewritten->str, written->str));

  return 0;
}
