/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* A strict RFC 8259 reader and writer for JsonNode, bounded in depth.
 *
 * json-glib 1.6's parser recurses without limit, accepts some text that is
 * not JSON, cuts strings at \u0000, wraps integers past 64 bits, and its
 * generator writes 1e22 as "1e+22.0". Messages cross process and language
 * boundaries, so both directions are done here, exactly: reading in
 * mpq-json-reader.c, writing in mpq-json-writer.c. */

typedef struct
{
  const char *p;
  const char *end;
  GError    **error;
  guint       depth;
  guint       max_depth;
  GString    *scratch;
  gboolean    build;      /* FALSE: values are checked, not built */
  gboolean    spaced;     /* whitespace was skipped (reset it to ask) */
} MpqJsonReader;

/* mpq-json-reader.c */
void      _mpq_json_reader_init  (MpqJsonReader *reader,
                                  const char    *text,
                                  gsize          length,
                                  guint          max_depth,
                                  GError       **error);
void      _mpq_json_reader_clear (MpqJsonReader *reader);
void      _mpq_json_skip_ws      (MpqJsonReader *reader);
gboolean  _mpq_json_expect       (MpqJsonReader *reader,
                                  char           c);
JsonNode *_mpq_json_read_value   (MpqJsonReader *reader);
gboolean  _mpq_json_skip_value   (MpqJsonReader *reader);
char     *_mpq_json_read_string  (MpqJsonReader *reader);
gboolean  _mpq_json_at_end       (MpqJsonReader *reader);
gboolean  _mpq_json_try_plain_int (MpqJsonReader *reader,
                                   gint64        *value);

gboolean  _mpq_utf8_validate_len (const char    *text,
                                  gsize          length);

JsonNode *_mpq_json_parse        (const char    *text,
                                  gsize          length,
                                  guint          max_depth,
                                  GError       **error);

/* mpq-json-writer.c */
gboolean  _mpq_json_write        (GString       *out,
                                  JsonNode      *node,
                                  guint          max_depth,
                                  GError       **error);
void      _mpq_json_write_int    (GString       *out,
                                  gint64         value);
void      _mpq_json_write_string (GString       *out,
                                  const char    *str);

G_END_DECLS
