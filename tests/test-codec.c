/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The library's private wire codec, linked in from its objects: the queue's
 * thread only checks the lines children send (_mpq_codec_check) and the
 * parent decodes them later (_mpq_codec_decode), so both must give the
 * same verdict, the same error and the same recipient for every line. */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include "mpq-codec-private.h"
#include "mpq-test-fuzz.h"

static void
test_check_agrees_with_decode (void)
{
  static const char *seeds[] = {
    "[\"DO\",1234,null,{\"value\":20,\"payload\":\"abcdefghijklmnop\"}]",
    "[\"FINISHED\",5,6,[1,-2.5e3,true,false,null,\"\\u00e9\\n\",{\"a\":[[{}]]}]]",
    "[ \"X\" , 7 , 8 , { \"k\" : [ 1 , 2 ] } ]",
    "[\"\\u0044O\",99,null,null]",
  };
  GRand *rand = g_rand_new_with_seed (99);
  guint iterations = mpq_test_fuzz_iterations ();
  guint accepted = 0;

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr(GString) line = g_string_new (seeds[g_rand_int_range (rand, 0, G_N_ELEMENTS (seeds))]);
      g_autoptr(GError) check_error = NULL;
      g_autoptr(GError) decode_error = NULL;
      g_autoptr(MpqMessage) message = NULL;
      gint recipient = -1;
      gboolean checked;

      if (i > 0)
        mpq_test_fuzz_mutate (rand, line);
      checked = _mpq_codec_check (line->str, line->len, &recipient, &check_error);
      message = _mpq_codec_decode (line->str, line->len, &decode_error);

      if (message == NULL)
        {
          g_assert_false (checked);
          g_assert_error (check_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          g_assert_error (decode_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          g_assert_cmpstr (check_error->message, ==, decode_error->message);
          continue;
        }

      g_assert_true (checked);
      g_assert_no_error (check_error);
      g_assert_cmpint (recipient, ==, mpq_message_get_recipient_pid (message));
      accepted++;
    }

  g_assert_cmpuint (accepted, >, iterations / 20);
  g_rand_free (rand);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Codec/check-agrees-with-decode", test_check_agrees_with_decode);

  return g_test_run ();
}
