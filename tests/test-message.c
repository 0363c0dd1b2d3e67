/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <pymulproc/pymulproc.h>

#include "mpq-test-fuzz.h"

static void
test_new_getters (void)
{
  g_autoptr(JsonNode) data = json_from_string ("{\"value\":20}", NULL);
  g_autoptr(MpqMessage) message = mpq_message_new (MPQ_REQ_DO, 1234, 99, data);

  g_assert_cmpstr (mpq_message_get_request (message), ==, "DO");
  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, 1234);
  g_assert_cmpint (mpq_message_get_recipient_pid (message), ==, 99);
  g_assert_true (json_node_equal (mpq_message_get_data (message), data));
  /* The message holds its own copy. */
  g_assert_true (mpq_message_get_data (message) != data);
}

static void
test_sender_zero_is_own_pid (void)
{
  g_autoptr(MpqMessage) message = mpq_message_new (MPQ_REQ_DIE, 0, 0, NULL);

  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, getpid ());
  g_assert_cmpint (mpq_message_get_recipient_pid (message), ==, 0);
  g_assert_null (mpq_message_get_data (message));
}

static void
test_is_for (void)
{
  g_autoptr(MpqMessage) anyone = mpq_message_new (MPQ_REQ_DO, 1, 0, NULL);
  g_autoptr(MpqMessage) targeted = mpq_message_new (MPQ_REQ_DO, 1, 42, NULL);

  g_assert_true (mpq_message_is_for (anyone, 42));
  g_assert_true (mpq_message_is_for (anyone, 7));
  g_assert_true (mpq_message_is_for (targeted, 42));
  g_assert_false (mpq_message_is_for (targeted, 7));
}

static void
test_to_json (void)
{
  g_autoptr(JsonNode) data = json_from_string ("{\"value\":20}", NULL);
  g_autoptr(MpqMessage) message = mpq_message_new (MPQ_REQ_DO, 1234, 0, data);
  g_autoptr(MpqMessage) targeted = mpq_message_new (MPQ_REQ_TEST_CHILD, 5, 6, NULL);
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;
  gsize length = 0;

  text = mpq_message_to_json (message, &length);
  g_assert_cmpstr (text, ==, "[\"DO\",1234,null,{\"value\":20}]");
  g_assert_cmpuint (length, ==, strlen (text));

  text2 = mpq_message_to_json (targeted, NULL);
  g_assert_cmpstr (text2, ==, "[\"I'M CHILD PROCESS\",5,6,null]");
}

/* Every JSON type survives encode + decode unchanged. */
static void
test_round_trip_types (void)
{
  static const char *datas[] = {
    "true", "false", "0", "-17", "9007199254740993", "3.5", "-0.25", "1e+300",
    "\"\"", "\"plain\"", "\"quote \\\" backslash \\\\ newline \\n tab \\t\"",
    "\"\\u0001\\u001f control\"", "\"unicode \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
    "[]", "{}", "[1,\"two\",3.0,null,true,[[]],{\"a\":{}}]",
    "{\"nested\":{\"deeper\":[{\"k\":\"v\"}]},\"n\":null}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (datas); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonNode) data = json_from_string (datas[i], &error);
      g_autoptr(MpqMessage) message = NULL;
      g_autoptr(MpqMessage) back = NULL;
      g_autofree char *line = NULL;

      g_assert_no_error (error);
      message = mpq_message_new ("REQ \"with\" \\ \n odd \x01 chars", 10, 20, data);
      line = mpq_message_to_json (message, NULL);
      g_assert_null (strchr (line, '\n'));

      back = mpq_message_new_from_json (line, -1, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (mpq_message_get_request (back), ==, mpq_message_get_request (message));
      g_assert_cmpint (mpq_message_get_sender_pid (back), ==, 10);
      g_assert_cmpint (mpq_message_get_recipient_pid (back), ==, 20);
      g_assert_true (json_node_equal (mpq_message_get_data (back), data));
    }
}

static void
test_null_data (void)
{
  g_autoptr(JsonNode) null_node = json_node_new (JSON_NODE_NULL);
  g_autoptr(MpqMessage) message = mpq_message_new (MPQ_REQ_DO, 1, 0, null_node);
  g_autoptr(MpqMessage) decoded = NULL;
  g_autofree char *json = NULL;
  g_autoptr(GError) error = NULL;

  /* JSON null and "no data" are the same thing. */
  g_assert_null (mpq_message_get_data (message));
  json = mpq_message_dup_data_json (message);
  g_assert_cmpstr (json, ==, "null");

  decoded = mpq_message_new_from_json ("[\"DO\",1,null,null]\n", -1, &error);
  g_assert_no_error (error);
  g_assert_null (mpq_message_get_data (decoded));
}

static void
test_data_json (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(MpqMessage) bad = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autofree char *json = NULL;

  message = mpq_message_new_with_data_json (MPQ_REQ_DO, 3, 0, " {\"a\": [1, 2.5, \"x\"]} ", &error);
  g_assert_no_error (error);
  json = mpq_message_dup_data_json (message);
  g_assert_cmpstr (json, ==, "{\"a\":[1,2.5,\"x\"]}");

  bad = mpq_message_new_with_data_json (MPQ_REQ_DO, 3, 0, "{not json", &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_assert_null (bad);
  g_clear_error (&error);

  none = mpq_message_new_with_data_json (MPQ_REQ_DO, 3, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (mpq_message_get_data (none));
}

static void
test_decode_good (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  message = mpq_message_new_from_json (" [ \"DO\" , 1234 , 5 , {\"value\" : 20} ] ", -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (message), ==, "DO");
  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, 1234);
  g_assert_cmpint (mpq_message_get_recipient_pid (message), ==, 5);
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (mpq_message_get_data (message)),
                                               "value"), ==, 20);
}

/* Every kind of bad line is MPQ_ERROR_PROTOCOL, never a crash. */
static void
test_decode_bad (void)
{
  static const char *lines[] = {
    "",
    "   ",
    "not json",
    "{\"request\":\"DO\"}",
    "\"DO\"",
    "null",
    "[]",
    "[\"DO\",1,null]",
    "[\"DO\",1,null,null,null]",
    "[\"\",1,null,null]",
    "[1,1,null,null]",
    "[null,1,null,null]",
    "[[\"DO\"],1,null,null]",
    "[\"DO\",0,null,null]",
    "[\"DO\",-5,null,null]",
    "[\"DO\",1.5,null,null]",
    "[\"DO\",1.0,null,null]",
    "[\"DO\",\"12\",null,null]",
    "[\"DO\",null,null,null]",
    "[\"DO\",true,null,null]",
    "[\"DO\",4294967296,null,null]",
    "[\"DO\",1,0,null]",
    "[\"DO\",1,-1,null]",
    "[\"DO\",1,\"x\",null]",
    "[\"DO\",1,2.5,null]",
    "[\"DO\",1,null,null] trailing",
    "[\"DO\",1,null,{]",
    "[\"DO\",1,null,\"unterminated]",
    "[\"DO\xff\",1,null,null]",
    "[\"DO\",1,null,\"\xc3\x28\"]",
    "[\"DO\",1,null,null]\n[\"DO\",1,null,null]",
    "[\"DO\",1,null,null][\"LOST\",2,null,null]",
    "[\"DO\",1,null,null]{}",
    "[\"DIE\\u0000 NOT\",1,null,null]",
    "[\"DO\",1,null,\"a\\u0000b\"]",
    "[\"DO\",1,null,18446744073709551616]",
    "[\"DO\",1,null,-9223372036854775809]",
    "[\"DO\",1,null,1e400]",
    "[\"DO\",1,null,01]",
    "[\"DO\",1,null,1.]",
    "[\"DO\",1,null,.5]",
    "[\"DO\",1,null,+1]",
    "[\"DO\",1,null,'single']",
    "[\"DO\",1,null,\"raw\ttab\"]",
    "[\"DO\",1,null,\"\\ud800\"]",
    "[\"DO\",1,null,\"\\ud800x\"]",
    "[\"DO\",1,null,\"\\ud800\\u0041\"]",
    "[\"DO\",1,null,\"\\ud800\\ud800\"]",
    "[\"DO\",1,null,\"\\udc00\"]",
    "[\"DO\",1,null,\"\\udfff\\ud800\"]",
    "[\"DO\",1,null,\"\\x41\"]",
    "[\"DO\",1,null,[1,]]",
    "[\"DO\",1,null,{\"a\":1,}]",
    "[\"DO\",1,null,{1:2}]",
    "[\"DO\",1,null,tru]",
    "[\"DO\",1,null,NaN]",
    "[\"DO\",1,null,null,]",
    "[\"DO\" 1 null null]",
  };

  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_message_new_from_json (lines[i], -1, &error);
      g_autofree char *escaped = g_strescape (lines[i], NULL);

      g_test_message ("line %u: %s", i, escaped);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_assert_null (message);
    }
}

static void
test_decode_embedded_nul (void)
{
  static const char line[] = "[\"D\0O\",1,null,null]";
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = mpq_message_new_from_json (line, sizeof line - 1, &error);

  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_assert_null (message);
}

static char *
nested_line (guint depth)
{
  GString *line = g_string_new ("[\"DO\",1,null,");

  /* The outer array is level 1. */
  for (guint i = 1; i < depth; i++)
    g_string_append_c (line, '[');
  for (guint i = 1; i < depth; i++)
    g_string_append_c (line, ']');
  g_string_append_c (line, ']');

  return g_string_free (line, FALSE);
}

/* json-glib would recurse 100,000 deep; the depth bound stops it first. */
static void
test_decode_depth (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *at_limit = nested_line (MPQ_MAX_DEPTH);
  g_autofree char *over_limit = nested_line (MPQ_MAX_DEPTH + 1);
  g_autofree char *brackets = g_strnfill (100000, '[');
  g_autofree char *braces = NULL;
  g_autoptr(MpqMessage) ok = NULL;
  g_autoptr(MpqMessage) deep = NULL;
  g_autoptr(MpqMessage) bomb = NULL;
  g_autoptr(MpqMessage) bomb2 = NULL;
  GString *objects = g_string_new ("[\"DO\",1,null,");

  ok = mpq_message_new_from_json (at_limit, -1, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ok);

  deep = mpq_message_new_from_json (over_limit, -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_clear_error (&error);

  bomb = mpq_message_new_from_json (brackets, -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_clear_error (&error);

  for (guint i = 0; i < 100000; i++)
    g_string_append (objects, "{\"a\":");
  braces = g_string_free (objects, FALSE);
  bomb2 = mpq_message_new_from_json (braces, -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
}

/* Brackets inside strings do not count as nesting. */
static void
test_decode_brackets_in_strings (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *many = g_strnfill (1000, '[');
  g_autofree char *line = g_strdup_printf ("[\"%s\",1,null,\"\\\"%s\\\\\"]", many, many);
  g_autoptr(MpqMessage) message = mpq_message_new_from_json (line, -1, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (message), ==, many);
}

/* Numbers and strings survive exactly; what cannot is refused when sent. */
static void
test_exact_values (void)
{
  static const struct { const char *in; const char *out; } cases[] = {
    { "1e22", "1e+22" },
    { "1e-300", "1e-300" },
    { "-1e21", "-1e+21" },
    { "3.0", "3.0" },
    { "0.1", "0.1" },
    { "-0.0", "-0.0" },
    { "9223372036854775807", "9223372036854775807" },
    { "-9223372036854775808", "-9223372036854775808" },
    { "\"\\u001f\\u00e9\\ud83d\\ude00\"", "\"\\u001f\xc3\xa9\xf0\x9f\x98\x80\"" },
    { "{\"b\":1,\"a\":2,\"b\":3}", "{\"b\":3,\"a\":2}" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_message_new_with_data_json (MPQ_REQ_DO, 1, 0, cases[i].in, &error);
      g_autofree char *json = NULL;

      g_autoptr(MpqMessage) rebuilt = NULL;
      g_autofree char *rebuilt_json = NULL;

      g_assert_no_error (error);
      /* Compact text is kept as it came (it is what the sender meant)... */
      json = mpq_message_dup_data_json (message);
      g_assert_cmpstr (json, ==, cases[i].in);

      /* ... and the values it holds are written exactly from a JsonNode. */
      rebuilt = mpq_message_new (MPQ_REQ_DO, 1, 0, mpq_message_get_data (message));
      rebuilt_json = mpq_message_dup_data_json (rebuilt);
      g_assert_cmpstr (rebuilt_json, ==, cases[i].out);
    }
}

static void
test_unsendable_data (void)
{
  g_autoptr(JsonNode) nan = json_node_init_double (json_node_alloc (), NAN);
  g_autoptr(JsonNode) deep = json_node_init_null (json_node_alloc ());
  g_autoptr(MpqMessage) with_nan = mpq_message_new (MPQ_REQ_DO, 1, 0, nan);
  g_autoptr(MpqMessage) with_deep = NULL;
  g_autoptr(MpqMessage) ok = NULL;
  g_autofree char *nan_json = NULL;
  g_autofree char *deep_json = NULL;
  g_autofree char *ok_json = NULL;

  /* 127 levels of data in the message array make 128: the limit. */
  for (int i = 0; i < MPQ_MAX_DEPTH - 1; i++)
    {
      JsonArray *array = json_array_new ();
      JsonNode *node = json_node_init_array (json_node_alloc (), array);

      json_array_add_element (array, g_steal_pointer (&deep));
      json_array_unref (array);
      deep = node;
    }
  ok = mpq_message_new (MPQ_REQ_DO, 1, 0, deep);
  ok_json = mpq_message_to_json (ok, NULL);
  g_assert_nonnull (ok_json);

  {
    JsonArray *array = json_array_new ();
    JsonNode *node = json_node_init_array (json_node_alloc (), array);

    json_array_add_element (array, g_steal_pointer (&deep));
    json_array_unref (array);
    deep = node;
  }
  with_deep = mpq_message_new (MPQ_REQ_DO, 1, 0, deep);

  nan_json = mpq_message_to_json (with_nan, NULL);
  deep_json = mpq_message_to_json (with_deep, NULL);
  g_assert_null (nan_json);
  g_assert_null (deep_json);
}

/* Mutated lines never crash the decoder: each one is a message or a
 * protocol error, and a message decoded re-encodes to a line that decodes
 * to the same message. */
static void
test_fuzz_mutations (void)
{
  static const char * const seeds[] = {
    "[\"DO\",1234,null,{\"value\":20,\"payload\":\"abcdefghijklmnop\"}]",
    "[\"FINISHED\",5,6,[1,-2.5e3,true,false,null,\"\\u00e9\\n\",{\"a\":[[{}]]}]]",
  };
  GRand *rand = g_rand_new_with_seed (1234);
  guint iterations = mpq_test_fuzz_iterations ();

  for (guint i = 0; i < iterations; i++)
    {
      const char *seed = seeds[g_rand_int_range (rand, 0, G_N_ELEMENTS (seeds))];
      g_autoptr(GString) line = g_string_new (seed);
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = NULL;

      mpq_test_fuzz_mutate (rand, line);
      message = mpq_message_new_from_json (line->str, line->len, &error);
      if (message == NULL)
        g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      else
        {
          g_autofree char *again = mpq_message_to_json (message, NULL);
          g_autoptr(MpqMessage) back = mpq_message_new_from_json (again, -1, &error);

          g_assert_no_error (error);
          g_assert_cmpstr (mpq_message_get_request (back), ==, mpq_message_get_request (message));
          g_assert_true ((mpq_message_get_data (back) == NULL && mpq_message_get_data (message) == NULL)
                         || json_node_equal (mpq_message_get_data (back), mpq_message_get_data (message)));
        }
    }

  g_rand_free (rand);
}

/* Compact data is only checked when a message is made or read, and built
 * into a JsonNode later, when asked; data with whitespace is built at
 * once. Both ways must accept the same texts and give the same values:
 * each mutated text is tried as it is and with a space in front. */
static void
test_fuzz_checked_equals_built (void)
{
  static const char * const seeds[] = {
    "{\"value\":20,\"payload\":\"abcdefghijklmnop\"}",
    "[1,-2.5e3,true,false,null,\"\\u00e9\\n\\ud83d\\ude00\",{\"a\":[[{}]]},18446744073709551615]",
    "-9223372036854775808",
    "\"\\\"x\\\\\"",
  };
  GRand *rand = g_rand_new_with_seed (4321);
  guint iterations = mpq_test_fuzz_iterations ();
  guint accepted = 0;

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr(GString) text = mpq_test_fuzz_case (rand, seeds, G_N_ELEMENTS (seeds), i);
      g_autofree char *spaced = NULL;
      g_autoptr(GError) checked_error = NULL;
      g_autoptr(GError) built_error = NULL;
      g_autoptr(MpqMessage) checked = NULL;
      g_autoptr(MpqMessage) built = NULL;

      spaced = g_strconcat (" ", text->str, NULL);
      checked = mpq_message_new_with_data_json (MPQ_REQ_DO, 1, 0, text->str, &checked_error);
      built = mpq_message_new_with_data_json (MPQ_REQ_DO, 1, 0, spaced, &built_error);

      if (built == NULL)
        {
          g_assert_error (built_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          g_assert_error (checked_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          continue;
        }
      g_assert_no_error (checked_error);
      g_assert_nonnull (checked);
      g_assert_true ((mpq_message_get_data (checked) == NULL && mpq_message_get_data (built) == NULL)
                     || json_node_equal (mpq_message_get_data (checked), mpq_message_get_data (built)));
      accepted++;
    }

  /* The mutations leave a fair share valid, or the test proves little. */
  g_assert_cmpuint (accepted, >, iterations / 20);
  g_rand_free (rand);
}

static void
test_properties (void)
{
  g_autoptr(JsonNode) data = json_from_string ("[1]", NULL);
  g_autoptr(MpqMessage) message = mpq_message_new ("X", 0, 8, data);
  GObjectClass *klass = G_OBJECT_GET_CLASS (message);
  const char *names[] = { "request", "sender-pid", "recipient-pid", "data" };
  g_autofree char *request = NULL;
  g_autoptr(JsonNode) got = NULL;
  gint sender, recipient;

  g_object_get (message,
                "request", &request,
                "sender-pid", &sender,
                "recipient-pid", &recipient,
                "data", &got,
                NULL);
  g_assert_cmpstr (request, ==, "X");
  g_assert_cmpint (sender, ==, getpid ());
  g_assert_cmpint (recipient, ==, 8);
  g_assert_true (json_node_equal (got, data));

  /* Read-only: a message is made by its constructors (a construct
   * property costs every message received a GValue round). */
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      GParamSpec *pspec = g_object_class_find_property (klass, names[i]);

      g_assert_nonnull (pspec);
      g_assert_cmpint (pspec->flags & (G_PARAM_WRITABLE | G_PARAM_CONSTRUCT | G_PARAM_CONSTRUCT_ONLY), ==, 0);
    }
}

static void
test_preconditions (void)
{
  if (g_test_subprocess ())
    {
      MpqMessage *message = mpq_message_new ("", 1, 0, NULL);

      g_assert_null (message);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*request != NULL*");
}

static void
test_constants (void)
{
  g_assert_cmpstr (MPQ_REQ_DO, ==, "DO");
  g_assert_cmpstr (MPQ_REQ_FINISHED, ==, "FINISHED");
  g_assert_cmpstr (MPQ_REQ_DIE, ==, "DIE");
  g_assert_cmpstr (MPQ_REQ_TEST_PARENT, ==, "I'M PARENT PROCESS");
  g_assert_cmpstr (MPQ_REQ_TEST_CHILD, ==, "I'M CHILD PROCESS");
  g_assert_cmpint (MPQ_S_PID_OFFSET, ==, 1);
  g_assert_cmpint (MPQ_R_PID_OFFSET, ==, 2);
  g_assert_cmpint (MPQ_ROLE_PARENT, ==, 1);
  g_assert_cmpint (MPQ_ROLE_CHILD, ==, 2);
  g_assert_true (MPQ_ERROR == g_quark_from_static_string ("mpq-error-quark"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Message/new-getters", test_new_getters);
  g_test_add_func ("/Mpq/Message/sender-zero-is-own-pid", test_sender_zero_is_own_pid);
  g_test_add_func ("/Mpq/Message/is-for", test_is_for);
  g_test_add_func ("/Mpq/Message/to-json", test_to_json);
  g_test_add_func ("/Mpq/Message/round-trip-types", test_round_trip_types);
  g_test_add_func ("/Mpq/Message/null-data", test_null_data);
  g_test_add_func ("/Mpq/Message/data-json", test_data_json);
  g_test_add_func ("/Mpq/Message/decode-good", test_decode_good);
  g_test_add_func ("/Mpq/Message/decode-bad", test_decode_bad);
  g_test_add_func ("/Mpq/Message/decode-embedded-nul", test_decode_embedded_nul);
  g_test_add_func ("/Mpq/Message/decode-depth", test_decode_depth);
  g_test_add_func ("/Mpq/Message/decode-brackets-in-strings", test_decode_brackets_in_strings);
  g_test_add_func ("/Mpq/Message/exact-values", test_exact_values);
  g_test_add_func ("/Mpq/Message/unsendable-data", test_unsendable_data);
  g_test_add_func ("/Mpq/Message/fuzz-mutations", test_fuzz_mutations);
  g_test_add_func ("/Mpq/Message/fuzz-checked-equals-built", test_fuzz_checked_equals_built);
  g_test_add_func ("/Mpq/Message/properties", test_properties);
  g_test_add_func ("/Mpq/Message/preconditions", test_preconditions);
  g_test_add_func ("/Mpq/Message/constants", test_constants);

  return g_test_run ();
}
