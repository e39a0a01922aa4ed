/* Live tests of the Engine API backend against the real dockerd and Podman
 * service: every case runs once per engine in RBX_ENGINES (default "docker
 * podman") and ends by checking that nothing of this process is left. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/live_common.h"

#define MIB (1024 * 1024)

/* argv for `sh -c script`, valid in the enclosing block. */
#define SH(script) ((const char *const[]){"sh", "-c", (script), NULL})

static struct rbx_spec spec_of(const char *const *argv,
                               const struct rbx_policy *policy)
{
  struct rbx_spec spec = {0};

  spec.argv = argv;
  spec.policy = policy;
  return spec;
}

/* Runs one execution with rbx_run on a private context. */
static void run_single(const struct live_engine *engine,
                       const struct rbx_spec *spec,
                       struct live_outcome *outcome)
{
  struct rbx_options opts;
  int rc;

  live_options(engine, &opts);
  memset(outcome, 0, sizeof(*outcome));
  outcome->spawn_ms = live_now_ms();
  rc = rbx_run(&opts, spec, &outcome->result, &outcome->error);
  outcome->done = true;
  outcome->done_ms = live_now_ms();
  outcome->failed = rc < 0;
}

/* Runs count copies of spec on one context, at most concurrency at once. */
static struct live_outcome *run_many(const struct live_engine *engine,
                                     const struct rbx_spec *spec,
                                     size_t count, unsigned concurrency)
{
  struct rbx_options opts;
  struct rbx_context *ctx;
  struct live_outcome *outcomes = calloc(count, sizeof(*outcomes));

  assert_non_null(outcomes);
  live_options(engine, &opts);
  opts.max_in_flight = concurrency;
  ctx = live_context_new(&opts);
  for (size_t i = 0; i < count; i++)
    live_spawn(ctx, spec, &outcomes[i], NULL);
  live_run_loop(ctx);
  live_context_free(ctx);
  return outcomes;
}

static bool output_equals(const struct rbx_output *out, const char *expected)
{
  size_t len = strlen(expected);

  return out->len == len && (len == 0 || memcmp(out->data, expected, len) == 0);
}

/* Counts outcomes that differ from the expected exit and outputs, printing
 * the first few. */
static size_t count_mismatches(const struct live_outcome *outcomes,
                               size_t count, int exit_code, const char *out,
                               const char *err)
{
  size_t bad = 0;

  for (size_t i = 0; i < count; i++) {
    const struct live_outcome *o = &outcomes[i];
    const struct rbx_result *r = &o->result;
    bool ok = o->done && !o->failed && r->end == RBX_END_EXITED &&
              r->exit_code == exit_code && output_equals(&r->out, out) &&
              output_equals(&r->err, err);

    if (ok)
      continue;
    if (bad < 5) {
      if (!o->done)
        print_message("execution %zu never finished\n", i);
      else if (o->failed)
        print_message("execution %zu failed (%s): %s\n", i,
                      rbx_error_kind_name(o->error.kind), o->error.message);
      else
        print_message("execution %zu: end %s exit %d stdout %zu bytes "
                      "stderr %zu bytes, container %.12s\n",
                      i, rbx_end_name(r->end), r->exit_code, r->out.len,
                      r->err.len, r->id);
    }
    bad++;
  }
  return bad;
}

static void free_outcomes(struct live_outcome *outcomes, size_t count)
{
  for (size_t i = 0; i < count; i++)
    live_outcome_clear(&outcomes[i]);
  free(outcomes);
}

/* ---- streams and exit ---- */

static void test_echo_streams_and_exit_code(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;

  live_policy(&policy);
  struct rbx_spec spec =
      spec_of(SH("echo out; echo err >&2; exit 3"), &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 3, "out\n", "err\n");
  live_outcome_clear(&outcome);
}

static void test_early_output_repeated(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  const size_t count = 200;

  live_policy(&policy);
  struct rbx_spec spec = spec_of(SH("echo early; exit 3"), &policy);
  uint64_t start = live_now_ms();
  struct live_outcome *outcomes = run_many(engine, &spec, count, 32);
  size_t bad = count_mismatches(outcomes, count, 3, "early\n", "");

  print_message("%zu executions at concurrency 32 in %llu ms\n", count,
                (unsigned long long)(live_now_ms() - start));
  free_outcomes(outcomes, count);
  assert_int_equal(bad, 0);
}

static void test_missing_command_daemon_error(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"rbx-no-such-command", NULL};

  live_policy(&policy);
  struct rbx_spec spec = spec_of(argv, &policy);

  run_single(engine, &spec, &outcome);
  print_message("error after %llu ms: %s\n",
                (unsigned long long)(outcome.done_ms - outcome.spawn_ms),
                outcome.error.message);
  assert_true(outcome.failed);
  assert_string_equal(rbx_error_kind_name(outcome.error.kind),
                      rbx_error_kind_name(RBX_ERR_DAEMON));
  assert_non_null(strstr(outcome.error.message, "rbx-no-such-command"));
  assert_non_null(strstr(outcome.error.message, "not found"));
  assert_true(outcome.done_ms - outcome.spawn_ms < 10000);
  live_outcome_clear(&outcome);
}

static void test_output_without_newline(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"printf", "x", NULL};

  live_policy(&policy);
  struct rbx_spec spec = spec_of(argv, &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "x", "");
  live_outcome_clear(&outcome);
}

static char *numbered_lines(const char *prefix, int count)
{
  size_t cap = (size_t)count * 16 + 1, len = 0;
  char *text = malloc(cap);

  assert_non_null(text);
  for (int i = 0; i < count; i++)
    len += (size_t)snprintf(text + len, cap - len, "%s%d\n", prefix, i);
  return text;
}

static void test_interleaved_lines_separated(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  char *out = numbered_lines("out", 2000);
  char *err = numbered_lines("err", 2000);

  live_policy(&policy);
  struct rbx_spec spec =
      spec_of(SH("i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; "
                 "i=$((i+1)); done"),
              &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, out, err);
  live_outcome_clear(&outcome);
  free(out);
  free(err);
}

/* ---- stdin ---- */

static void run_with_stdin(const struct live_engine *engine,
                           const char *const *argv, const void *data,
                           size_t len, struct live_outcome *outcome)
{
  struct rbx_policy policy;

  live_policy(&policy);
  policy.timeout_ms = 120000;
  struct rbx_spec spec = spec_of(argv, &policy);

  spec.stdin_data = data;
  spec.stdin_len = len;
  run_single(engine, &spec, outcome);
}

static void test_stdin_sorted(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_outcome outcome;
  const char *const argv[] = {"sort", NULL};

  run_with_stdin(engine, argv, "3\n1\n2\n", 6, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "1\n2\n3\n", "");
  live_outcome_clear(&outcome);
}

static void test_stdin_eof_then_output(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_outcome outcome;

  run_with_stdin(engine, SH("cat; sleep 1; echo after-eof"), "x", 1,
                 &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "xafter-eof\n", "");
  live_outcome_clear(&outcome);
}

static void test_stdin_8mib_roundtrip(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_outcome outcome;
  const char *const argv[] = {"cat", NULL};
  const size_t len = 8 * MIB;
  uint8_t *data = malloc(len);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  size_t zeros = 0;

  assert_non_null(data);
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data[i] = (uint8_t)(x >> 24);
    zeros += data[i] == 0;
  }
  assert_true(zeros > 0);
  run_with_stdin(engine, argv, data, len, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, NULL, "");
  assert_int_equal(outcome.result.out.len, len);
  assert_memory_equal(outcome.result.out.data, data, len);
  print_message("8 MiB through cat in %llu ms\n",
                (unsigned long long)outcome.result.wall_ms);
  live_outcome_clear(&outcome);
  free(data);
}

static void test_stdin_exact_bytes(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_outcome outcome;
  const char *const argv[] = {"cat", NULL};

  run_with_stdin(engine, argv, "ping\n", 5, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "ping\n", "");
  live_outcome_clear(&outcome);
}

/* ---- wait, exit and kill ---- */

static void test_exit_status_repeated(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  const size_t count = 500;

  live_policy(&policy);
  struct rbx_spec spec = spec_of(SH("exit 7"), &policy);
  uint64_t start = live_now_ms();
  struct live_outcome *outcomes = run_many(engine, &spec, count, 64);
  size_t bad = count_mismatches(outcomes, count, 7, "", "");

  print_message("%zu executions at concurrency 64 in %llu ms\n", count,
                (unsigned long long)(live_now_ms() - start));
  free_outcomes(outcomes, count);
  assert_int_equal(bad, 0);
}

static void test_memory_limit_oom(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;

  live_policy(&policy);
  policy.memory_mib = 64;
  policy.timeout_ms = 60000;
  struct rbx_spec spec = spec_of(SH("tail /dev/zero"), &policy);

  run_single(engine, &spec, &outcome);
  assert_false(outcome.failed);
  print_message("end %s exit %d after %llu ms\n",
                rbx_end_name(outcome.result.end), outcome.result.exit_code,
                (unsigned long long)outcome.result.wall_ms);
  if (engine->runtime == RBX_RUNTIME_PODMAN &&
      outcome.result.end == RBX_END_SIGNALED) {
    /* Podman 4.3 with cgroup v1 and runc never sets State.OOMKilled, so the
     * kill cannot be distinguished from any other SIGKILL there. */
    print_message("note: podman reported no OOMKilled; accepted as "
                  "signaled\n");
    assert_int_equal(outcome.result.exit_code, 137);
  } else {
    assert_string_equal(rbx_end_name(outcome.result.end),
                        rbx_end_name(RBX_END_OOM));
  }
  live_outcome_clear(&outcome);
}

static void test_timeout_not_oom(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"sleep", "600", NULL};

  live_policy(&policy);
  policy.timeout_ms = 2000;
  struct rbx_spec spec = spec_of(argv, &policy);

  run_single(engine, &spec, &outcome);
  assert_false(outcome.failed);
  assert_string_equal(rbx_end_name(outcome.result.end),
                      rbx_end_name(RBX_END_TIMED_OUT));
  assert_true(outcome.done_ms - outcome.spawn_ms < 10000);
  live_outcome_clear(&outcome);
}

static void test_timeout_stops_stubborn_commands(void **state)
{
  static const char *const scripts[] = {
      "trap '' TERM; while :; do :; done",
      /* A child, because pid 1 of the container ignores SIGSTOP sent from
       * inside; the parent shell then waits for it forever. */
      "sh -c 'kill -STOP $$'; echo resumed",
      "sleep 600 & wait",
  };
  enum { COUNT = sizeof(scripts) / sizeof(scripts[0]) };
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_options opts;
  struct rbx_policy policy;
  struct live_outcome outcomes[COUNT];
  struct rbx_context *ctx;

  live_policy(&policy);
  policy.timeout_ms = 2000;
  live_options(engine, &opts);
  ctx = live_context_new(&opts);
  for (size_t i = 0; i < COUNT; i++) {
    struct rbx_spec spec = spec_of(SH(scripts[i]), &policy);

    live_spawn(ctx, &spec, &outcomes[i], NULL);
  }
  live_run_loop(ctx);
  live_context_free(ctx);
  for (size_t i = 0; i < COUNT; i++) {
    uint64_t took = outcomes[i].done_ms - outcomes[i].spawn_ms;

    print_message("'%s': %s after %llu ms\n", scripts[i],
                  outcomes[i].failed ? outcomes[i].error.message
                                     : rbx_end_name(outcomes[i].result.end),
                  (unsigned long long)took);
    assert_false(outcomes[i].failed);
    assert_string_equal(rbx_end_name(outcomes[i].result.end),
                        rbx_end_name(RBX_END_TIMED_OUT));
    assert_true(took < 10000);
    live_outcome_clear(&outcomes[i]);
  }
  live_assert_nothing_left(engine, (int)getpid());
}

/* ---- output limits ---- */

struct limit_case {
  const char *script;
  bool on_stderr;
  const char *pattern; /* the kept bytes repeat this */
};

static void check_pattern(const struct rbx_output *out, const char *pattern)
{
  size_t period = strlen(pattern);

  for (size_t i = 0; i < out->len; i++) {
    if (out->data[i] != (uint8_t)pattern[i % period])
      fail_msg("byte %zu is 0x%02x, expected 0x%02x", i, out->data[i],
               (uint8_t)pattern[i % period]);
  }
}

/* AddressSanitizer holds freed blocks back from reuse, so the peak RSS of
 * a sanitized build grows with the bytes that passed through, not with what
 * was kept. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_IS_MEANINGFUL false
#else
#define RSS_IS_MEANINGFUL true
#endif

static void test_output_limit_bounded(void **state)
{
  static const struct limit_case cases[] = {
      {"yes 0123456789abcdef", false, "0123456789abcdef\n"},
      {"head -c 6700000 /dev/zero | tr '\\0' a", false, "a"},
      {"yes >&2", true, "y\n"},
  };
  struct live_engine *engine = live_engine_ready(state);
  const uint64_t limit = MIB;
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;

  live_policy(&policy);
  policy.output_limit = limit;
  policy.timeout_ms = 60000;
  live_options(engine, &opts);
  ctx = live_context_new(&opts);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct limit_case *c = &cases[i];
    struct rbx_spec spec = spec_of(SH(c->script), &policy);
    struct live_outcome outcome;
    long before, after;
    const struct rbx_output *kept, *other;

    assert_int_equal(live_reset_peak_rss(), 0);
    before = live_peak_rss_kib();
    live_spawn(ctx, &spec, &outcome, NULL);
    live_run_loop(ctx);
    after = live_peak_rss_kib();
    assert_false(outcome.failed);
    kept = c->on_stderr ? &outcome.result.err : &outcome.result.out;
    other = c->on_stderr ? &outcome.result.out : &outcome.result.err;
    print_message("'%s': end %s kept %zu dropped %llu; peak RSS %ld -> %ld "
                  "KiB (+%ld)\n",
                  c->script, rbx_end_name(outcome.result.end), kept->len,
                  (unsigned long long)kept->dropped, before, after,
                  after - before);
    assert_string_equal(rbx_end_name(outcome.result.end),
                        rbx_end_name(RBX_END_OUTPUT_LIMIT));
    assert_int_equal(kept->len, limit);
    assert_true(kept->truncated);
    assert_true(kept->dropped > 0);
    check_pattern(kept, c->pattern);
    assert_int_equal(other->len, 0);
    assert_false(other->truncated);
    if (RSS_IS_MEANINGFUL)
      assert_true(after - before < (long)((2 * limit + 8 * MIB) / 1024));
    else
      print_message("peak RSS not compared: AddressSanitizer keeps freed "
                    "memory in quarantine; the plain build compares it\n");
    live_outcome_clear(&outcome);
  }
  live_context_free(ctx);
}

/* ---- mounts ---- */

struct workspace {
  char root[64];
  char file[128];
};

static void workspace_make(struct workspace *ws)
{
  FILE *f;

  snprintf(ws->root, sizeof(ws->root), "/tmp/rbx-live-ws-XXXXXX");
  assert_non_null(mkdtemp(ws->root));
  /* The sandbox runs as 65534, which must be able to write here. */
  assert_int_equal(chmod(ws->root, 0777), 0);
  snprintf(ws->file, sizeof(ws->file), "%s/file", ws->root);
  f = fopen(ws->file, "we");
  assert_non_null(f);
  fputs("hello from the host\n", f);
  fclose(f);
}

static void workspace_remove(struct workspace *ws)
{
  char *command = live_strdupf("rm -rf '%s'", ws->root);

  assert_int_equal(system(command), 0);
  free(command);
}

static void test_mount_missing_source_rejected(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct workspace ws;
  struct rbx_policy policy;
  struct rbx_options opts;
  struct rbx_context *ctx;
  struct rbx_error err = {0};
  struct live_outcome outcome;
  struct stat st;
  const char *const argv[] = {"true", NULL};
  char *missing;
  int rc;

  workspace_make(&ws);
  missing = live_strdupf("%s/missing", ws.root);
  live_policy(&policy);
  policy.workspace_root = ws.root;
  struct rbx_mount mount = {missing, "/mnt", true};
  struct rbx_spec spec = spec_of(argv, &policy);

  spec.mounts = &mount;
  spec.mounts_count = 1;
  live_options(engine, &opts);
  ctx = live_context_new(&opts);
  rc = rbx_spawn(ctx, &spec, live_on_done, &outcome, NULL, &err);
  print_message("spawn: %s\n", err.message);
  assert_true(rc < 0);
  assert_string_equal(rbx_error_kind_name(err.kind),
                      rbx_error_kind_name(RBX_ERR_POLICY));
  assert_non_null(strstr(err.message, missing));
  /* Nothing was queued, so nothing reached the daemon. */
  assert_int_equal(rbx_pending(ctx), 0);
  live_context_free(ctx);
  assert_int_equal(stat(missing, &st), -1);
  assert_int_equal(errno, ENOENT);
  free(missing);
  workspace_remove(&ws);
}

static void test_mount_read_only(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct workspace ws;
  struct rbx_policy policy;
  struct live_outcome outcome;
  struct stat st;
  char *created;

  workspace_make(&ws);
  live_policy(&policy);
  policy.workspace_root = ws.root;
  struct rbx_mount mount = {ws.root, "/mnt", true};
  struct rbx_spec spec =
      spec_of(SH("cat /mnt/file; if echo x > /mnt/new; then echo wrote; "
                 "else echo denied; fi"),
              &policy);

  spec.mounts = &mount;
  spec.mounts_count = 1;
  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0,
                     "hello from the host\ndenied\n", NULL);
  created = live_strdupf("%s/new", ws.root);
  assert_int_equal(stat(created, &st), -1);
  free(created);
  live_outcome_clear(&outcome);
  workspace_remove(&ws);
}

static void test_mount_read_write(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct workspace ws;
  struct rbx_policy policy;
  struct live_outcome outcome;
  char *written;
  char text[64] = "";
  FILE *f;

  workspace_make(&ws);
  live_policy(&policy);
  policy.workspace_root = ws.root;
  struct rbx_mount mount = {ws.root, "/mnt", false};
  struct rbx_spec spec = spec_of(SH("echo written > /mnt/out.txt"), &policy);

  spec.mounts = &mount;
  spec.mounts_count = 1;
  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "", "");
  written = live_strdupf("%s/out.txt", ws.root);
  f = fopen(written, "re");
  assert_non_null(f);
  assert_non_null(fgets(text, sizeof(text), f));
  fclose(f);
  assert_string_equal(text, "written\n");
  free(written);
  live_outcome_clear(&outcome);
  workspace_remove(&ws);
}

static void test_mount_outside_roots_rejected(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct workspace ws;
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"true", NULL};

  workspace_make(&ws);
  live_policy(&policy);
  policy.workspace_root = ws.root;
  struct rbx_mount mount = {"/etc", "/mnt", true};
  struct rbx_spec spec = spec_of(argv, &policy);

  spec.mounts = &mount;
  spec.mounts_count = 1;
  run_single(engine, &spec, &outcome);
  print_message("run: %s\n", outcome.error.message);
  assert_true(outcome.failed);
  assert_string_equal(rbx_error_kind_name(outcome.error.kind),
                      rbx_error_kind_name(RBX_ERR_POLICY));
  assert_non_null(strstr(outcome.error.message, "/etc"));
  live_outcome_clear(&outcome);
  workspace_remove(&ws);
}

/* ---- environment, user and filesystem ---- */

/* Whether a variable in the sandbox comes from the spec, the image (PATH)
 * or the engine: HOSTNAME and HOME from both engines, and `container` and
 * TERM=xterm from Podman's defaults (containers.conf). */
static bool variable_allowed(const struct live_engine *engine,
                             const char *line)
{
  static const char *const names[] = {"PATH", "HOSTNAME", "HOME",
                                      "RBX_SPEC_VAR"};
  size_t name_len = strcspn(line, "=");

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strlen(names[i]) == name_len && memcmp(line, names[i], name_len) == 0)
      return true;
  }
  return engine->runtime == RBX_RUNTIME_PODMAN &&
         (strcmp(line, "container=podman") == 0 ||
          strcmp(line, "TERM=xterm") == 0);
}

static void test_env_only_spec_variables(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"env", NULL};
  const char *const env[] = {"RBX_SPEC_VAR=from spec", NULL};
  const char *term = getenv("TERM");
  char *saved_term = term ? strdup(term) : NULL;
  char *text, *save = NULL;
  bool seen_spec_var = false;

  /* Values that would show up if the test's environment went through. */
  assert_int_equal(setenv("RBX_SECRET_MARKER", "must-not-leak", 1), 0);
  assert_int_equal(setenv("TERM", "rbx-test-term", 1), 0);
  live_policy(&policy);
  struct rbx_spec spec = spec_of(argv, &policy);

  spec.env = env;
  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, NULL, "");
  text = strndup((const char *)outcome.result.out.data,
                 outcome.result.out.len);
  assert_non_null(text);
  print_message("sandbox environment:\n%s", text);
  assert_null(strstr(text, "RBX_SECRET_MARKER"));
  assert_null(strstr(text, "must-not-leak"));
  assert_null(strstr(text, "rbx-test-term"));
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (!variable_allowed(engine, line))
      fail_msg("unexpected variable in the sandbox: %s", line);
    if (strcmp(line, "RBX_SPEC_VAR=from spec") == 0)
      seen_spec_var = true;
  }
  assert_true(seen_spec_var);
  free(text);
  unsetenv("RBX_SECRET_MARKER");
  if (saved_term)
    setenv("TERM", saved_term, 1);
  else
    unsetenv("TERM");
  free(saved_term);
  live_outcome_clear(&outcome);
}

static void test_workdir_honoured(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"pwd", NULL};

  live_policy(&policy);
  struct rbx_spec spec = spec_of(argv, &policy);

  spec.workdir = "/etc";
  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "/etc\n", "");
  live_outcome_clear(&outcome);
}

static void test_root_read_only_tmp_writable(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;

  live_policy(&policy);
  struct rbx_spec spec =
      spec_of(SH("if touch /x 2>/dev/null; then echo root-writable; "
                 "else echo root-read-only; fi; "
                 "echo data > /tmp/y && cat /tmp/y"),
              &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "root-read-only\ndata\n",
                     "");
  live_outcome_clear(&outcome);
}

static void test_user_nobody(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;

  live_policy(&policy);
  struct rbx_spec spec = spec_of(SH("id -u; id -g"), &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "65534\n65534\n", "");
  live_outcome_clear(&outcome);
}

static void test_pids_limit_fork_bomb(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_policy policy;
  struct live_outcome outcome;
  uint64_t took;

  live_policy(&policy);
  policy.pids_limit = 64;
  policy.timeout_ms = 5000;
  struct rbx_spec spec = spec_of(
      SH("for i in $(seq 1 400); do sleep 30 & done; wait"), &policy);

  run_single(engine, &spec, &outcome);
  took = outcome.done_ms - outcome.spawn_ms;
  print_message("end %s exit %d after %llu ms, stderr: %.*s\n",
                outcome.failed ? outcome.error.message
                               : rbx_end_name(outcome.result.end),
                outcome.result.exit_code, (unsigned long long)took,
                (int)outcome.result.err.len,
                (const char *)outcome.result.err.data);
  assert_false(outcome.failed);
  assert_true(took < 20000);
  /* busybox sh gives up at the first failed fork, so the limit was hit
   * unless the run timed out with every sleep started. */
  if (outcome.result.end == RBX_END_EXITED)
    assert_non_null(memmem(outcome.result.err.data, outcome.result.err.len,
                           "can't fork", 10));
  else
    assert_string_equal(rbx_end_name(outcome.result.end),
                        rbx_end_name(RBX_END_TIMED_OUT));
  live_outcome_clear(&outcome);

  /* The limit is the cgroup's, as read inside the sandbox (cgroup v2 path
   * first, then v1). */
  struct rbx_spec limit_spec = spec_of(
      SH("cat /sys/fs/cgroup/pids.max 2>/dev/null || "
         "cat /sys/fs/cgroup/pids/pids.max"),
      &policy);

  run_single(engine, &limit_spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "64\n", "");
  live_outcome_clear(&outcome);
}

/* ---- networks ---- */

/* Returns the interface names in /proc/net/dev output, space-separated. */
static void interfaces_of(const struct rbx_output *out, char *names,
                          size_t size)
{
  char *text = strndup((const char *)out->data, out->len);
  char *save = NULL;
  size_t used = 0;

  assert_non_null(text);
  names[0] = '\0';
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *colon = strchr(line, ':');

    if (!colon || strchr(line, '|'))
      continue;
    *colon = '\0';
    line += strspn(line, " ");
    used += (size_t)snprintf(names + used, size - used, "%s%s",
                             used ? " " : "", line);
    if (used >= size)
      break;
  }
  free(text);
}

static void run_interfaces(const struct live_engine *engine,
                           enum rbx_network network, char *names, size_t size)
{
  struct rbx_policy policy;
  struct live_outcome outcome;
  const char *const argv[] = {"cat", "/proc/net/dev", NULL};

  live_policy(&policy);
  policy.network = network;
  struct rbx_spec spec = spec_of(argv, &policy);

  run_single(engine, &spec, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, NULL, "");
  interfaces_of(&outcome.result.out, names, size);
  print_message("interfaces: %s\n", names);
  live_outcome_clear(&outcome);
}

static void test_network_none_loopback_only(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  char names[256];

  run_interfaces(engine, RBX_NET_NONE, names, sizeof(names));
  assert_string_equal(names, "lo");
}

static void test_network_full_has_eth0(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  char names[256];
  char *padded;

  run_interfaces(engine, RBX_NET_FULL, names, sizeof(names));
  padded = live_strdupf(" %s ", names);
  assert_non_null(strstr(padded, " eth0 "));
  assert_non_null(strstr(padded, " lo "));
  free(padded);
}

/* ---- network holders ---- */

/* Fills ids with the holders of this process; returns how many there are. */
static int list_holders(const struct live_engine *engine, char ids[][72],
                        int max)
{
  struct live_object objects[64];
  int count = live_list_objects(engine->socket_path, (int)getpid(), false,
                                objects, 64);
  int holders = 0;

  assert_true(count >= 0);
  for (int i = 0; i < count && i < 64; i++) {
    if (strcmp(objects[i].role, "holder") != 0)
      continue;
    if (holders < max)
      snprintf(ids[holders], 72, "%s", objects[i].id);
    holders++;
  }
  return holders;
}

/* Runs one execution on ctx, then drives the loop until its container is
 * removed, so that its network holder is back in the pool. */
static void run_on(const struct live_engine *engine, struct rbx_context *ctx,
                   const char *const *argv, const struct rbx_policy *policy,
                   struct live_outcome *outcome)
{
  struct rbx_spec spec = spec_of(argv, policy);
  uint64_t until;

  live_spawn(ctx, &spec, outcome, NULL);
  live_run_loop(ctx);
  until = live_now_ms() + 30000;
  while (live_now_ms() < until) {
    struct live_object objects[8];
    int count = live_list_objects(engine->socket_path, (int)getpid(), false,
                                  objects, 8);
    int sandboxes = 0;

    assert_true(count >= 0);
    for (int i = 0; i < count && i < 8; i++)
      sandboxes += strcmp(objects[i].role, "sandbox") == 0;
    if (sandboxes == 0)
      break;
    live_drive(ctx, 50);
  }
  live_drive(ctx, 100);
}

static void test_holder_no_listener_leak(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct live_outcome outcome;
  char before[2][72], after[2][72];

  live_policy(&policy);
  live_options(engine, &opts);
  opts.max_in_flight = 1;
  ctx = live_context_new(&opts);

  /* The listener responds inside the execution that started it. */
  run_on(engine, ctx,
         SH("nc -ll -p 7777 -e echo leak & sleep 0.2; "
            "echo | nc -w 1 127.0.0.1 7777"),
         &policy, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "leak\n", NULL);
  live_outcome_clear(&outcome);

  run_on(engine, ctx, SH("nc -ll -p 7777 -e echo leak & sleep 0.2; echo up"),
         &policy, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "up\n", NULL);
  live_outcome_clear(&outcome);
  assert_int_equal(list_holders(engine, before, 2), 1);

  run_on(engine, ctx, SH("echo | nc -w 1 127.0.0.1 7777; echo rc=$?"), &policy,
         &outcome);
  print_message("second execution: %.*s", (int)outcome.result.out.len,
                (const char *)outcome.result.out.data);
  assert_false(outcome.failed);
  assert_null(memmem(outcome.result.out.data, outcome.result.out.len, "leak",
                     4));
  live_assert_result(&outcome, RBX_END_EXITED, 0, "rc=1\n", NULL);
  live_outcome_clear(&outcome);

  /* The same holder served both, so the check above covered reuse. */
  assert_int_equal(list_holders(engine, after, 2), 1);
  assert_string_equal(before[0], after[0]);
  live_context_free(ctx);
}

static void test_holder_not_shared_concurrently(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct live_outcome outcomes[2];

  live_policy(&policy);
  live_options(engine, &opts);
  opts.max_in_flight = 2;
  ctx = live_context_new(&opts);
  for (int round = 0; round < 2; round++) {
    struct rbx_spec spec =
        spec_of(SH("readlink /proc/self/ns/net; sleep 1"), &policy);

    for (int i = 0; i < 2; i++)
      live_spawn(ctx, &spec, &outcomes[i], NULL);
    live_run_loop(ctx);
    for (int i = 0; i < 2; i++)
      live_assert_result(&outcomes[i], RBX_END_EXITED, 0, NULL, "");
    print_message("round %d: %.*s and %.*s", round,
                  (int)outcomes[0].result.out.len,
                  (const char *)outcomes[0].result.out.data,
                  (int)outcomes[1].result.out.len,
                  (const char *)outcomes[1].result.out.data);
    assert_true(outcomes[0].result.out.len > 5);
    assert_false(outcomes[0].result.out.len == outcomes[1].result.out.len &&
                 memcmp(outcomes[0].result.out.data,
                        outcomes[1].result.out.data,
                        outcomes[0].result.out.len) == 0);
    for (int i = 0; i < 2; i++)
      live_outcome_clear(&outcomes[i]);
  }
  live_context_free(ctx);
}

/* Runs one execution, breaks the idle holder it leaves with `method
 * target_format`, and runs again on the same context. */
static void check_holder_broken(const struct live_engine *engine,
                                const char *method, const char *target_format)
{
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct live_outcome outcome;
  char holders[2][72];
  char *target;
  int status;

  live_policy(&policy);
  live_options(engine, &opts);
  opts.max_in_flight = 1;
  ctx = live_context_new(&opts);
  run_on(engine, ctx, SH("echo one"), &policy, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "one\n", "");
  live_outcome_clear(&outcome);

  assert_int_equal(list_holders(engine, holders, 2), 1);
  target = live_strdupf(target_format, holders[0]);
  status = live_api(engine->socket_path, method, target, NULL);
  free(target);
  print_message("%s holder %.12s: status %d\n", method, holders[0], status);
  assert_true(status >= 200 && status < 300);

  run_on(engine, ctx, SH("echo two"), &policy, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "two\n", "");
  live_outcome_clear(&outcome);
  run_on(engine, ctx, SH("echo three"), &policy, &outcome);
  live_assert_result(&outcome, RBX_END_EXITED, 0, "three\n", "");
  live_outcome_clear(&outcome);
  live_context_free(ctx);
}

static void test_holder_killed_behind_back(void **state)
{
  check_holder_broken(live_engine_ready(state), "POST",
                      "/containers/%s/kill?signal=KILL");
}

static void test_holder_removed_behind_back(void **state)
{
  check_holder_broken(live_engine_ready(state), "DELETE",
                      "/containers/%s?force=1");
}

/* ---- cancel ---- */

/* Drives ctx until a sandbox container of this process runs (30 s max). */
/* Waits for this process's sandbox to run and copies its id to id. */
static bool wait_for_running_sandbox(const struct live_engine *engine,
                                     struct rbx_context *ctx, char *id,
                                     size_t id_size)
{
  uint64_t until = live_now_ms() + 30000;

  while (live_now_ms() < until) {
    struct live_object objects[8];
    int count = live_list_objects(engine->socket_path, (int)getpid(), false,
                                  objects, 8);

    for (int i = 0; i < count && i < 8; i++) {
      if (strcmp(objects[i].role, "sandbox") == 0 &&
          strcmp(objects[i].state, "running") == 0) {
        snprintf(id, id_size, "%s", objects[i].id);
        return true;
      }
    }
    live_drive(ctx, 100);
  }
  return false;
}

/* The sandbox's output goes to the caller alone: the engine keeps no log
 * of it. */
static void assert_no_engine_log(const struct live_engine *engine,
                                 const char *id)
{
  char *target = live_strdupf("/containers/%s/json", id);
  cJSON *json = NULL;
  const cJSON *type;

  assert_int_equal(live_api(engine->socket_path, "GET", target, &json), 200);
  type = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(json, "HostConfig"), "LogConfig"),
      "Type");
  assert_true(cJSON_IsString(type));
  assert_string_equal(type->valuestring, "none");
  cJSON_Delete(json);
  free(target);
}

static void test_cancel_running(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct rbx_exec *exec = NULL;
  struct live_outcome outcome;
  const char *const argv[] = {"sleep", "60", NULL};
  uint64_t cancelled_at;
  char id[72];

  live_policy(&policy);
  live_options(engine, &opts);
  ctx = live_context_new(&opts);
  struct rbx_spec spec = spec_of(argv, &policy);

  live_spawn(ctx, &spec, &outcome, &exec);
  assert_true(wait_for_running_sandbox(engine, ctx, id, sizeof(id)));
  assert_false(outcome.done);
  assert_no_engine_log(engine, id);
  cancelled_at = live_now_ms();
  rbx_cancel(exec);
  live_run_loop(ctx);
  print_message("cancelled after %llu ms\n",
                (unsigned long long)(outcome.done_ms - cancelled_at));
  assert_false(outcome.failed);
  assert_string_equal(rbx_end_name(outcome.result.end),
                      rbx_end_name(RBX_END_CANCELLED));
  assert_true(outcome.done_ms - cancelled_at < 5000);
  live_outcome_clear(&outcome);
  live_context_free(ctx);
  live_assert_nothing_left(engine, (int)getpid());
}

int main(void)
{
  static const struct live_case cases[] = {
      LIVE_CASE(test_echo_streams_and_exit_code),
      LIVE_CASE(test_early_output_repeated),
      LIVE_CASE(test_missing_command_daemon_error),
      LIVE_CASE(test_output_without_newline),
      LIVE_CASE(test_interleaved_lines_separated),
      LIVE_CASE(test_stdin_sorted),
      LIVE_CASE(test_stdin_eof_then_output),
      LIVE_CASE(test_stdin_8mib_roundtrip),
      LIVE_CASE(test_stdin_exact_bytes),
      LIVE_CASE(test_exit_status_repeated),
      LIVE_CASE(test_memory_limit_oom),
      LIVE_CASE(test_timeout_not_oom),
      LIVE_CASE(test_timeout_stops_stubborn_commands),
      LIVE_CASE(test_output_limit_bounded),
      LIVE_CASE(test_mount_missing_source_rejected),
      LIVE_CASE(test_mount_read_only),
      LIVE_CASE(test_mount_read_write),
      LIVE_CASE(test_mount_outside_roots_rejected),
      LIVE_CASE(test_env_only_spec_variables),
      LIVE_CASE(test_workdir_honoured),
      LIVE_CASE(test_root_read_only_tmp_writable),
      LIVE_CASE(test_user_nobody),
      LIVE_CASE(test_pids_limit_fork_bomb),
      LIVE_CASE(test_network_none_loopback_only),
      LIVE_CASE(test_network_full_has_eth0),
      LIVE_CASE(test_holder_no_listener_leak),
      LIVE_CASE(test_holder_not_shared_concurrently),
      LIVE_CASE(test_holder_killed_behind_back),
      LIVE_CASE(test_holder_removed_behind_back),
      LIVE_CASE(test_cancel_running),
  };
  struct live_engine engines[LIVE_ENGINES_MAX];
  size_t count = live_engines(engines, LIVE_ENGINES_MAX, "RBX_ENGINES",
                              "docker podman");

  return live_run_cases("live", cases, sizeof(cases) / sizeof(cases[0]),
                        engines, count);
}
