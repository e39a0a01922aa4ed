/* Unit tests of the ringbox command's pure parts: option, size and
 * duration parsing, base64, UTF-8 checks, JSON result encoding and batch
 * request decoding. No daemon is needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "cli/cli.h"

#define MIB ((uint64_t)1 << 20)

/* ---- sizes, durations, CPUs */

struct size_case {
  const char *text;
  uint64_t default_unit;
  uint64_t bytes;
};

static void test_size_valid_forms(void **state)
{
  static const struct size_case cases[] = {
      {"64", MIB, 64 * MIB},
      {"64", 1, 64},
      {"64m", 1, 64 * MIB},
      {"64M", 1, 64 * MIB},
      {"1g", 1, 1024 * MIB},
      {"1.5g", 1, 1536 * MIB},
      {"512k", 1, 512 * 1024},
      {"2MiB", 1, 2 * MIB},
      {"1kb", 1, 1024},
      {"10b", MIB, 10},
      {"1t", 1, 1024 * 1024 * MIB},
      {"0.5k", 1, 512},
      {".5k", 1, 512},
      {"0", 1, 0},
  };
  char reason[256];

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t bytes = 1;

    assert_int_equal(cli_parse_size(cases[i].text, cases[i].default_unit,
                                    &bytes, reason, sizeof(reason)),
                     0);
    assert_int_equal(bytes, cases[i].bytes);
  }
}

static void test_size_invalid_forms(void **state)
{
  static const char *const bad[] = {
      "",      "m",    "-1",  "1x",  "1e3", " 1",
      "1.2.3", "0x10", "1 m", "1mm", "inf", "99999999999999999999g"};
  char reason[256];
  uint64_t bytes;

  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    reason[0] = '\0';
    assert_int_equal(cli_parse_size(bad[i], 1, &bytes, reason, sizeof(reason)),
                     -EINVAL);
    assert_true(reason[0] != '\0');
  }
}

static void test_memory_minimum_and_units(void **state)
{
  char reason[256];
  uint64_t mib = 0;

  (void)state;
  assert_int_equal(cli_parse_memory_mib("6", &mib, reason, sizeof(reason)), 0);
  assert_int_equal(mib, 6);
  assert_int_equal(cli_parse_memory_mib("1g", &mib, reason, sizeof(reason)), 0);
  assert_int_equal(mib, 1024);
  assert_int_equal(
      cli_parse_memory_mib("6291456b", &mib, reason, sizeof(reason)), 0);
  assert_int_equal(mib, 6);
  assert_int_equal(cli_parse_memory_mib("512k", &mib, reason, sizeof(reason)),
                   -EINVAL);
  assert_non_null(strstr(reason, "minimum of 6 MiB"));
  assert_int_equal(cli_parse_memory_mib("5", &mib, reason, sizeof(reason)),
                   -EINVAL);
  assert_int_equal(cli_parse_memory_mib("6.5m", &mib, reason, sizeof(reason)),
                   -EINVAL);
  assert_non_null(strstr(reason, "whole number of MiB"));
}

struct duration_case {
  const char *text;
  uint64_t ms;
};

static void test_duration_valid_forms(void **state)
{
  static const struct duration_case cases[] = {
      {"30", 30000},   {"2.5", 2500},
      {"0", 0},        {"0.001", 1},
      {"1m", 60000},   {"100ms", 100},
      {"2h", 7200000}, {"1d", 86400000},
      {"1.5s", 1500},  {"30d", 30ULL * 86400000},
  };
  char reason[256];

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t ms = 7;

    assert_int_equal(
        cli_parse_duration_ms(cases[i].text, &ms, reason, sizeof(reason)), 0);
    assert_int_equal(ms, cases[i].ms);
  }
}

static void test_duration_invalid_forms(void **state)
{
  static const char *const bad[] = {"",    "abc",    "-1",  "1x",
                                    "31d", "0.0001", "1e2", "5 s"};
  char reason[256];
  uint64_t ms;

  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    reason[0] = '\0';
    assert_int_equal(cli_parse_duration_ms(bad[i], &ms, reason, sizeof(reason)),
                     -EINVAL);
    assert_true(reason[0] != '\0');
  }
}

static void test_cpus_range(void **state)
{
  char reason[256];
  double cpus = 0;

  (void)state;
  assert_int_equal(cli_parse_cpus("1.5", &cpus, reason, sizeof(reason)), 0);
  assert_true(cpus == 1.5);
  assert_int_equal(cli_parse_cpus("0.01", &cpus, reason, sizeof(reason)), 0);
  assert_int_equal(cli_parse_cpus("0.001", &cpus, reason, sizeof(reason)),
                   -EINVAL);
  assert_int_equal(cli_parse_cpus("2000", &cpus, reason, sizeof(reason)),
                   -EINVAL);
  assert_int_equal(cli_parse_cpus("1c", &cpus, reason, sizeof(reason)),
                   -EINVAL);
  assert_int_equal(cli_parse_cpus("", &cpus, reason, sizeof(reason)), -EINVAL);
}

/* ---- option parsing */

/* Parses a NULL-terminated list of words in mode; returns the result. The
 * words stay in a static array because cfg keeps pointers into it. */
static int parse_words(struct cli_config *cfg, enum cli_mode mode, char *msg,
                       size_t size, ...)
{
  static char *words[64];
  int count = 0;
  va_list ap;

  va_start(ap, size);
  for (char *w = va_arg(ap, char *); w; w = va_arg(ap, char *))
    words[count++] = w;
  va_end(ap);
  words[count] = NULL;
  cli_config_init(cfg);
  msg[0] = '\0';
  return cli_parse_args(cfg, mode, count, words, msg, size);
}

static void test_args_run_full_set(void **state)
{
  struct cli_config cfg;
  char msg[512];

  (void)state;
  assert_int_equal(
      parse_words(
          &cfg, CLI_MODE_RUN, msg, sizeof(msg), "--image", "alpine:3",
          "--memory", "1g", "--cpus", "0.5", "--pids-limit", "64",
          "--network=limited", "--allow-host", "pypi.org", "--allow-host",
          "*.example.com", "--proxy-name", "px", "--egress-network", "egress",
          "-e", "A=1", "-eB=2", "--env", "C=x=y", "-w", "/work", "--mount",
          "src=/srv/data,dst=/data,readonly", "--allow-mount", "/srv",
          "--workspace", "/home/w", "--timeout", "2.5", "--output-limit", "64k",
          "--user", "", "--writable-root", "-H", "unix:///run/x.sock", "-ivv",
          "--json", "--", "echo", "hi", NULL),
      0);
  assert_string_equal(cfg.policy.image, "alpine:3");
  assert_int_equal(cfg.policy.memory_mib, 1024);
  assert_true(cfg.policy.cpus == 0.5);
  assert_int_equal(cfg.policy.pids_limit, 64);
  assert_int_equal(cfg.policy.network, RBX_NET_LIMITED);
  assert_int_equal(cfg.policy.allow_hosts_count, 2);
  assert_string_equal(cfg.policy.allow_hosts[1], "*.example.com");
  assert_string_equal(cfg.policy.proxy_name, "px");
  assert_string_equal(cfg.policy.egress_network, "egress");
  assert_int_equal(cfg.env.count, 3);
  assert_string_equal(cfg.env.items[1], "B=2");
  assert_string_equal(cfg.env.items[2], "C=x=y");
  assert_null(cfg.env.items[3]);
  assert_string_equal(cfg.workdir, "/work");
  assert_int_equal(cfg.mounts_count, 1);
  assert_string_equal(cfg.mounts[0].source, "/srv/data");
  assert_string_equal(cfg.mounts[0].target, "/data");
  assert_true(cfg.mounts[0].read_only);
  assert_int_equal(cfg.policy.allowed_roots_count, 1);
  assert_string_equal(cfg.policy.workspace_root, "/home/w");
  assert_int_equal(cfg.policy.timeout_ms, 2500);
  assert_int_equal(cfg.policy.output_limit, 65536);
  assert_string_equal(cfg.policy.user, "");
  assert_true(cfg.policy.writable_root);
  assert_string_equal(cfg.opts.daemon_url, "unix:///run/x.sock");
  assert_true(cfg.pass_stdin);
  assert_int_equal(cfg.verbosity, 2);
  assert_true(cfg.json);
  assert_int_equal(cfg.command_count, 2);
  assert_string_equal(cfg.command[0], "echo");
  cli_config_free(&cfg);
}

static void test_args_command_without_dashes(void **state)
{
  struct cli_config cfg;
  char msg[512];

  (void)state;
  assert_int_equal(parse_words(&cfg, CLI_MODE_RUN, msg, sizeof(msg),
                               "--timeout", "0", "ls", "-l", "--json", NULL),
                   0);
  assert_int_equal(cfg.command_count, 3);
  assert_string_equal(cfg.command[1], "-l");
  assert_false(cfg.json);
  assert_int_equal(cfg.policy.timeout_ms, 0);
  cli_config_free(&cfg);
}

struct bad_args_case {
  enum cli_mode mode;
  const char *words[6];
  const char *expect; /* a part of the message */
};

static void test_args_rejected_with_message(void **state)
{
  static const struct bad_args_case cases[] = {
      {CLI_MODE_RUN, {"-e", "HOME", "true"}, "never copies the host"},
      {CLI_MODE_RUN, {"-e", "=x", "true"}, "empty name"},
      {CLI_MODE_RUN,
       {"--memory", "3m", "true"},
       "invalid --memory value \"3m\""},
      {CLI_MODE_RUN, {"-m", "lots", "true"}, "invalid -m value"},
      {CLI_MODE_RUN, {"--bogus", "true"}, "unknown option --bogus"},
      {CLI_MODE_RUN, {"-x", "true"}, "unknown option -x"},
      {CLI_MODE_RUN, {"--memory"}, "--memory needs a value"},
      {CLI_MODE_RUN, {"--json=1", "true"}, "takes no value"},
      {CLI_MODE_RUN, {"--timeout", "-5", "true"}, "invalid --timeout value"},
      {CLI_MODE_RUN, {"--network", "bridge", "true"}, "none, full or limited"},
      {CLI_MODE_RUN, {"--network", "limited", "true"}, "at least one"},
      {CLI_MODE_RUN, {"--allow-host", "a.org", "true"}, "--network limited"},
      {CLI_MODE_RUN, {"--proxy-name", "p", "true"}, "--proxy-name only"},
      {CLI_MODE_RUN, {"--runtime", "host", "true"}, "add --unsafe"},
      {CLI_MODE_RUN, {"--unsafe", "true"}, "only applies to --runtime host"},
      {CLI_MODE_RUN, {"--runtime", "lxc", "true"}, "docker, podman or host"},
      {CLI_MODE_RUN, {"--pids-limit", "0", "true"}, "out of range"},
      {CLI_MODE_RUN, {"--output-limit", "0", "true"}, "below the minimum of 1k"},
      {CLI_MODE_RUN, {"--output-limit", "100", "true"}, "--output-limit"},
      {CLI_MODE_RUN, {"--workspace", "ws", "true"}, "absolute path"},
      {CLI_MODE_RUN, {"--allow-mount", "ws", "true"}, "--allow-mount"},
      {CLI_MODE_RUN, {"--mount", "src=/a,dst=b", "true"}, "dst=/data"},
      {CLI_MODE_BATCH, {"--json"}, "always writes JSON"},
      {CLI_MODE_RUN, {"-w", "rel", "true"}, "absolute path"},
      {CLI_MODE_RUN, {"-H", "http://x", "true"}, "not a daemon URL"},
      {CLI_MODE_RUN, {"--image", "", "true"}, "is empty"},
      {CLI_MODE_RUN, {"--timeout", "5"}, "missing command"},
      {CLI_MODE_RUN, {"--concurrency", "2", "true"}, "only a batch option"},
      {CLI_MODE_RUN,
       {"--mount", "src=/a,dst=/b", "true"},
       "needs --workspace DIR or --allow-mount"},
      {CLI_MODE_BATCH, {"-e", "A=1"}, "not a batch option"},
      {CLI_MODE_BATCH, {"--json"}, "not a batch option"},
      {CLI_MODE_BATCH, {"--concurrency", "0"}, "from 1 to"},
      {CLI_MODE_BATCH, {"a.jsonl", "b.jsonl"}, "unexpected argument"},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cli_config cfg;
    char msg[512] = "";
    int count = 0;

    while (count < 6 && cases[i].words[count])
      count++;
    cli_config_init(&cfg);
    assert_int_equal(cli_parse_args(&cfg, cases[i].mode, count,
                                    (char **)cases[i].words, msg, sizeof(msg)),
                     -EINVAL);
    if (!strstr(msg, cases[i].expect))
      fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, msg,
               cases[i].expect);
    cli_config_free(&cfg);
  }
}

static void test_args_batch_defaults_and_file(void **state)
{
  struct cli_config cfg;
  char msg[512];

  (void)state;
  assert_int_equal(parse_words(&cfg, CLI_MODE_BATCH, msg, sizeof(msg),
                               "--concurrency", "32", "--memory", "64",
                               "--timeout", "10", "-v", "requests.jsonl", NULL),
                   0);
  assert_int_equal(cfg.concurrency, 32);
  assert_int_equal(cfg.policy.memory_mib, 64);
  assert_int_equal(cfg.policy.timeout_ms, 10000);
  assert_int_equal(cfg.verbosity, 1);
  assert_string_equal(cfg.input_path, "requests.jsonl");
  cli_config_free(&cfg);
  assert_int_equal(parse_words(&cfg, CLI_MODE_BATCH, msg, sizeof(msg), NULL),
                   0);
  assert_null(cfg.input_path);
  assert_int_equal(cfg.concurrency, 8);
  cli_config_free(&cfg);
}

static void test_args_help_skips_checks(void **state)
{
  struct cli_config cfg;
  char msg[512];

  (void)state;
  assert_int_equal(
      parse_words(&cfg, CLI_MODE_RUN, msg, sizeof(msg), "-h", NULL), 0);
  assert_true(cfg.help);
  cli_config_free(&cfg);
}

static void test_mount_spellings(void **state)
{
  struct rbx_mount mount;
  char reason[256];

  (void)state;
  assert_int_equal(cli_parse_mount("type=bind,source=/a,target=/b,ro", &mount,
                                   reason, sizeof(reason)),
                   0);
  assert_string_equal(mount.source, "/a");
  assert_string_equal(mount.target, "/b");
  assert_true(mount.read_only);
  free((char *)mount.source);
  free((char *)mount.target);
  assert_int_equal(cli_parse_mount("src=/a,destination=/b,readonly=false",
                                   &mount, reason, sizeof(reason)),
                   0);
  assert_false(mount.read_only);
  free((char *)mount.source);
  free((char *)mount.target);
  assert_int_equal(cli_parse_mount("src=/a", &mount, reason, sizeof(reason)),
                   -EINVAL);
  assert_non_null(strstr(reason, "needs both"));
  assert_int_equal(
      cli_parse_mount("src=rel,dst=/b", &mount, reason, sizeof(reason)),
      -EINVAL);
  assert_non_null(strstr(reason, "absolute path"));
  assert_int_equal(cli_parse_mount("type=volume,src=/a,dst=/b", &mount, reason,
                                   sizeof(reason)),
                   -EINVAL);
  assert_int_equal(
      cli_parse_mount("src=/a,src=/c,dst=/b", &mount, reason, sizeof(reason)),
      -EINVAL);
  assert_non_null(strstr(reason, "twice"));
  assert_int_equal(
      cli_parse_mount("src=/a,dst=/b,bogus=1", &mount, reason, sizeof(reason)),
      -EINVAL);
  assert_non_null(strstr(reason, "bogus"));
}

/* ---- base64 and UTF-8 */

static void test_base64_rfc4648_vectors(void **state)
{
  static const char *const plain[] = {"",     "f",     "fo",    "foo",
                                      "foob", "fooba", "foobar"};
  static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

  (void)state;
  for (size_t i = 0; i < 7; i++) {
    char out[16];
    uint8_t back[16];
    size_t len = 99, n = strlen(plain[i]);

    assert_int_equal(cli_base64_encoded_len(n), strlen(coded[i]) + 1);
    cli_base64_encode((const uint8_t *)plain[i], n, out);
    assert_string_equal(out, coded[i]);
    assert_int_equal(cli_base64_decode(coded[i], strlen(coded[i]), back, &len),
                     0);
    assert_int_equal(len, n);
    assert_memory_equal(back, plain[i], n);
  }
}

static void test_base64_unpadded_and_invalid(void **state)
{
  static const char *const bad[] = {
      "Zg=", "Z", "Zm9v!", "Zg==Zg==", "Zm9vY", "====", "Zm 9v"};
  uint8_t out[16];
  size_t len;

  (void)state;
  assert_int_equal(cli_base64_decode("Zm9vYg", 6, out, &len), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(out, "foob", 4);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (cli_base64_decode(bad[i], strlen(bad[i]), out, &len) != -EINVAL)
      fail_msg("\"%s\" decoded", bad[i]);
  }
}

static void test_base64_binary_roundtrip(void **state)
{
  uint8_t data[256], back[300];
  char text[400];
  size_t len;

  (void)state;
  for (int i = 0; i < 256; i++)
    data[i] = (uint8_t)(255 - i);
  for (size_t n = 0; n <= 256; n += 37) {
    cli_base64_encode(data, n, text);
    assert_int_equal(cli_base64_decode(text, strlen(text), back, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
  }
}

struct utf8_case {
  const char *bytes;
  size_t len;
  bool valid;
};

static void test_utf8_strict(void **state)
{
  static const struct utf8_case cases[] = {
      {"", 0, true},
      {"hello\n", 6, true},
      {"a\0b", 3, true},
      {"\xc3\xa9", 2, true},          /* é */
      {"\xe2\x82\xac", 3, true},      /* € */
      {"\xf0\x9f\x98\x80", 4, true},  /* emoji */
      {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF */
      {"\xc0\x80", 2, false},         /* overlong NUL */
      {"\xe0\x80\xaf", 3, false},     /* overlong '/' */
      {"\xed\xa0\x80", 3, false},     /* surrogate */
      {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
      {"\xf5\x80\x80\x80", 4, false},
      {"\xc3", 1, false}, /* cut short */
      {"\xe2\x82", 2, false},
      {"\x80", 1, false}, /* lone continuation */
      {"\xff", 1, false},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (cli_utf8_valid((const uint8_t *)cases[i].bytes, cases[i].len) !=
        cases[i].valid)
      fail_msg("case %zu: expected %s", i,
               cases[i].valid ? "valid" : "invalid");
  }
}

/* ---- JSON encoding */

static void test_json_string_escapes(void **state)
{
  struct cli_buf buf = {0};
  static const uint8_t input[] = "q\"b\\n\n\t\x01\x7f\xc3\xa9\xff\0z";

  (void)state;
  cli_json_string(&buf, input, sizeof(input) - 1);
  assert_false(buf.failed);
  assert_string_equal(buf.data,
                      "\"q\\\"b\\\\n\\n\\t\\u0001\\u007f\xc3\xa9\\ufffd"
                      "\\u0000z\"");
  cli_buf_free(&buf);
}

static void test_json_result_run_text(void **state)
{
  struct rbx_result result = {0};
  struct cli_buf buf = {0};

  (void)state;
  result.end = RBX_END_EXITED;
  result.exit_code = 3;
  result.out.data = (uint8_t *)"hi\n";
  result.out.len = 3;
  result.err.data = (uint8_t *)"\xff\x00";
  result.err.len = 2;
  result.err.truncated = true;
  result.err.dropped = 10;
  result.wall_ms = 250;
  strcpy(result.id, "abc123");
  cli_json_result(&buf, NULL, &result);
  assert_string_equal(
      buf.data,
      "{\"id\":\"abc123\",\"exit_code\":3,\"end\":\"exited\",\"signal\":0,"
      "\"stdout\":\"hi\\n\",\"stdout_truncated\":false,\"stdout_dropped\":0,"
      "\"stderr\":null,\"stderr_b64\":\"/wA=\",\"stderr_truncated\":true,"
      "\"stderr_dropped\":10,\"wall_ms\":250,\"container_id\":\"abc123\"}\n");
  cli_buf_free(&buf);
}

static void test_json_result_batch_tag(void **state)
{
  struct rbx_result result = {0};
  struct cli_result_tag tag = {"{\"k\": [1, 2]}", 13, 7};
  struct cli_buf buf = {0};
  cJSON *parsed;

  (void)state;
  result.end = RBX_END_TIMED_OUT;
  result.exit_code = 137;
  cli_json_result(&buf, &tag, &result);
  assert_non_null(strstr(buf.data, "{\"id\":{\"k\": [1, 2]},\"line\":7,"));
  assert_non_null(strstr(buf.data, "\"end\":\"timed_out\""));
  assert_non_null(strstr(buf.data, "\"stdout\":\"\""));
  parsed = cJSON_Parse(buf.data);
  assert_non_null(parsed);
  assert_int_equal(cJSON_GetObjectItem(parsed, "exit_code")->valueint, 137);
  cJSON_Delete(parsed);
  cli_buf_free(&buf);
}

static void test_json_error_forms(void **state)
{
  struct cli_result_tag tag = {NULL, 0, 4};
  struct cli_buf buf = {0};

  (void)state;
  cli_json_error(&buf, NULL, "daemon", "no such image \"x\"");
  assert_string_equal(buf.data, "{\"error\":{\"kind\":\"daemon\",\"message\":"
                                "\"no such image \\\"x\\\"\"}}\n");
  cli_buf_free(&buf);
  cli_json_error(&buf, &tag, "invalid", "bad\xff");
  assert_string_equal(buf.data,
                      "{\"id\":null,\"line\":4,\"error\":{\"kind\":\"invalid\","
                      "\"message\":\"bad\\ufffd\"}}\n");
  cli_buf_free(&buf);
}

static void test_end_names(void **state)
{
  (void)state;
  assert_string_equal(rbx_end_name(RBX_END_EXITED), "exited");
  assert_string_equal(rbx_end_name(RBX_END_TIMED_OUT), "timed_out");
  assert_string_equal(rbx_end_name(RBX_END_OOM), "oom");
  assert_string_equal(rbx_end_name(RBX_END_OUTPUT_LIMIT), "output_limit");
  assert_string_equal(rbx_end_name(RBX_END_SIGNALED), "signaled");
  assert_string_equal(rbx_end_name(RBX_END_CANCELLED), "cancelled");
}

/* ---- batch request decoding */

static int decode(struct cli_request *req, struct cli_config *defaults,
                  const char *line, char *msg, size_t size)
{
  msg[0] = '\0';
  return cli_request_decode(req, line, strlen(line), defaults, msg, size);
}

static void test_request_full(void **state)
{
  struct cli_config defaults;
  struct cli_request req;
  struct rbx_spec spec;
  char msg[512];
  const char *line =
      "{\"id\": 12345678901234567890, \"cmd\":[\"sh\",\"-c\",\"cat\"],"
      "\"env\":{\"A\":\"1\",\"B\":\"x=y\"},\"stdin_b64\":\"AAH/\","
      "\"workdir\":\"/w\",\"mounts\":[{\"source\":\"/s\",\"target\":\"/t\","
      "\"readonly\":true}],\"timeout\":1.5,\"image\":\"img:1\","
      "\"memory\":\"128m\",\"cpus\":0.5,\"pids_limit\":32,"
      "\"network\":\"limited\",\"allow_hosts\":[\"a.org\"],"
      "\"output_limit\":4096,\"user\":\"1000:1000\"}";

  (void)state;
  cli_config_init(&defaults);
  assert_int_equal(decode(&req, &defaults, line, msg, sizeof(msg)), 0);
  assert_string_equal(req.id_json, "12345678901234567890");
  assert_int_equal(req.argv.count, 3);
  assert_string_equal(req.argv.items[2], "cat");
  assert_int_equal(req.env.count, 2);
  assert_string_equal(req.env.items[1], "B=x=y");
  assert_true(req.has_stdin);
  assert_int_equal(req.stdin_len, 3);
  assert_memory_equal(req.stdin_data, "\x00\x01\xff", 3);
  assert_string_equal(req.workdir, "/w");
  assert_int_equal(req.mounts_count, 1);
  assert_true(req.mounts[0].read_only);
  assert_int_equal(req.policy.timeout_ms, 1500);
  assert_string_equal(req.policy.image, "img:1");
  assert_int_equal(req.policy.memory_mib, 128);
  assert_true(req.policy.cpus == 0.5);
  assert_int_equal(req.policy.pids_limit, 32);
  assert_int_equal(req.policy.network, RBX_NET_LIMITED);
  assert_int_equal(req.policy.allow_hosts_count, 1);
  assert_int_equal(req.policy.output_limit, 4096);
  assert_string_equal(req.policy.user, "1000:1000");
  cli_request_spec(&req, &spec);
  assert_ptr_equal(spec.policy, &req.policy);
  assert_string_equal(spec.argv[0], "sh");
  assert_null(spec.argv[3]);
  assert_string_equal(spec.env[0], "A=1");
  assert_int_equal(spec.stdin_len, 3);
  cli_request_free(&req);
  cli_config_free(&defaults);
}

static void test_request_defaults_apply(void **state)
{
  struct cli_config defaults;
  struct cli_request req;
  struct rbx_spec spec;
  char msg[512];

  (void)state;
  cli_config_init(&defaults);
  defaults.policy.memory_mib = 64;
  defaults.policy.timeout_ms = 9000;
  assert_int_equal(decode(&req, &defaults,
                          "{\"argv\":[\"true\"],\"env\":[\"K=V\"],"
                          "\"stdin\":\"\"}",
                          msg, sizeof(msg)),
                   0);
  assert_null(req.id_json);
  assert_int_equal(req.policy.memory_mib, 64);
  assert_int_equal(req.policy.timeout_ms, 9000);
  cli_request_spec(&req, &spec);
  assert_non_null(spec.stdin_data);
  assert_int_equal(spec.stdin_len, 0);
  assert_null(spec.workdir);
  assert_null(spec.mounts);
  cli_request_free(&req);
  cli_config_free(&defaults);
}

static void test_request_limited_defaults_dropped(void **state)
{
  static const char *const hosts[] = {"a.org", NULL};
  struct cli_config defaults;
  struct cli_request req;
  char msg[512];

  (void)state;
  cli_config_init(&defaults);
  defaults.policy.network = RBX_NET_LIMITED;
  defaults.policy.allow_hosts = hosts;
  defaults.policy.allow_hosts_count = 1;
  defaults.policy.proxy_name = "px";
  assert_int_equal(decode(&req, &defaults,
                          "{\"cmd\":[\"true\"],\"network\":\"none\"}", msg,
                          sizeof(msg)),
                   0);
  assert_int_equal(req.policy.allow_hosts_count, 0);
  assert_null(req.policy.proxy_name);
  cli_request_free(&req);
  assert_int_equal(
      decode(&req, &defaults, "{\"cmd\":[\"true\"]}", msg, sizeof(msg)), 0);
  assert_int_equal(req.policy.allow_hosts_count, 1);
  assert_string_equal(req.policy.proxy_name, "px");
  cli_request_free(&req);
  cli_config_free(&defaults);
}

struct bad_request_case {
  const char *line;
  const char *expect;
  const char *id; /* the raw id echoed, NULL when none */
};

static void test_request_rejected_with_message(void **state)
{
  static const struct bad_request_case cases[] = {
      {"{\"cmd\":[\"a\"]", "not valid JSON", NULL},
      {"[1,2]", "must be a JSON object", NULL},
      {"{\"cmd\":[\"a\"]} x", "text after the JSON object", NULL},
      {"{\"id\":\"r1\",\"cmd\":\"ls -l\"}", "[\"sh\",\"-c\"", "\"r1\""},
      {"{\"id\":[1, {\"x\":\"}\"}],\"timout\":5,\"cmd\":[\"a\"]}",
       "unknown field \"timout\"", "[1, {\"x\":\"}\"}]"},
      {"{\"cmd\":[\"a\"],\"cmd\":[\"b\"]}", "appears twice", NULL},
      {"{\"id\":2}", "missing \"cmd\"", "2"},
      {"{\"cmd\":[]}", "is empty", NULL},
      {"{\"cmd\":[\"a\",3]}", "item 2 is not a string", NULL},
      {"{\"cmd\":[\"a\"],\"argv\":[\"a\"]}", "\"cmd\" or \"argv\"", NULL},
      {"{\"cmd\":[\"a\"],\"env\":[\"HOME\"]}", "never copies the host", NULL},
      {"{\"cmd\":[\"a\"],\"env\":{\"A\":1}}", "must be a string", NULL},
      {"{\"cmd\":[\"a\"],\"stdin\":\"x\",\"stdin_b64\":\"eA==\"}", "not both",
       NULL},
      {"{\"cmd\":[\"a\"],\"stdin_b64\":\"@@@@\"}", "not valid base64", NULL},
      {"{\"cmd\":[\"a\"],\"stdin\":\"a\\u0000b\"}", "stdin_b64", NULL},
      {"{\"cmd\":[\"a\"],\"workdir\":\"rel\"}", "absolute path", NULL},
      {"{\"cmd\":[\"a\"],\"mounts\":[{\"source\":\"/a\"}]}",
       "needs \"source\" and \"target\"", NULL},
      {"{\"cmd\":[\"a\"],\"mounts\":[{\"source\":\"/a\",\"target\":\"/b\","
       "\"ro\":true}]}",
       "mounts[1].ro", NULL},
      {"{\"cmd\":[\"a\"],\"memory\":3}", "minimum of 6 MiB", NULL},
      {"{\"cmd\":[\"a\"],\"memory\":true}", "number or a string", NULL},
      {"{\"cmd\":[\"a\"],\"timeout\":-1}", "must not be negative", NULL},
      {"{\"cmd\":[\"a\"],\"cpus\":\"fast\"}", "\"cpus\" \"fast\"", NULL},
      {"{\"cmd\":[\"a\"],\"pids_limit\":1.5}", "pids_limit", NULL},
      {"{\"cmd\":[\"a\"],\"output_limit\":0}", "is zero", NULL},
      {"{\"cmd\":[\"a\"],\"network\":\"host\"}", "none, full or limited", NULL},
      {"{\"cmd\":[\"a\"],\"network\":\"limited\"}", "non-empty", NULL},
      {"{\"cmd\":[\"a\"],\"allow_hosts\":[\"a.org\"]}", "only applies", NULL},
      {"{\"cmd\":[\"a\"],\"image\":\"\"}", "non-empty string", NULL},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cli_config defaults;
    struct cli_request req;
    char msg[512];

    cli_config_init(&defaults);
    assert_int_equal(decode(&req, &defaults, cases[i].line, msg, sizeof(msg)),
                     -EINVAL);
    if (!strstr(msg, cases[i].expect))
      fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, msg,
               cases[i].expect);
    if (cases[i].id)
      assert_string_equal(req.id_json, cases[i].id);
    else
      assert_null(req.id_json);
    cli_request_free(&req);
    cli_config_free(&defaults);
  }
}

static void test_request_escaped_backslash_not_nul(void **state)
{
  struct cli_config defaults;
  struct cli_request req;
  char msg[512];

  (void)state;
  cli_config_init(&defaults);
  assert_int_equal(decode(&req, &defaults,
                          "{\"cmd\":[\"printf\",\"\\\\u0000\"]}", msg,
                          sizeof(msg)),
                   0);
  assert_string_equal(req.argv.items[1], "\\u0000");
  cli_request_free(&req);
  cli_config_free(&defaults);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_valid_forms),
      cmocka_unit_test(test_size_invalid_forms),
      cmocka_unit_test(test_memory_minimum_and_units),
      cmocka_unit_test(test_duration_valid_forms),
      cmocka_unit_test(test_duration_invalid_forms),
      cmocka_unit_test(test_cpus_range),
      cmocka_unit_test(test_args_run_full_set),
      cmocka_unit_test(test_args_command_without_dashes),
      cmocka_unit_test(test_args_rejected_with_message),
      cmocka_unit_test(test_args_batch_defaults_and_file),
      cmocka_unit_test(test_args_help_skips_checks),
      cmocka_unit_test(test_mount_spellings),
      cmocka_unit_test(test_base64_rfc4648_vectors),
      cmocka_unit_test(test_base64_unpadded_and_invalid),
      cmocka_unit_test(test_base64_binary_roundtrip),
      cmocka_unit_test(test_utf8_strict),
      cmocka_unit_test(test_json_string_escapes),
      cmocka_unit_test(test_json_result_run_text),
      cmocka_unit_test(test_json_result_batch_tag),
      cmocka_unit_test(test_json_error_forms),
      cmocka_unit_test(test_end_names),
      cmocka_unit_test(test_request_full),
      cmocka_unit_test(test_request_defaults_apply),
      cmocka_unit_test(test_request_limited_defaults_dropped),
      cmocka_unit_test(test_request_rejected_with_message),
      cmocka_unit_test(test_request_escaped_backslash_not_nul),
  };

  return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
