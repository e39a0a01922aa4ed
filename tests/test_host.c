/* Tests of the host backend through the public API: real commands run as
 * child processes of this test. Built only with -Dunsafe_host=true. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/exec.h"

struct capture {
  int calls;
  bool has_error;
  struct rbx_result result;
  struct rbx_error error;
};

static void on_done(struct rbx_exec *exec, const struct rbx_result *result,
                    const struct rbx_error *error, void *userdata)
{
  struct capture *cap = userdata;

  (void)exec;
  cap->calls++;
  if (result) {
    rbx_result_move(&cap->result, result);
  } else {
    cap->has_error = true;
    cap->error = *error;
  }
}

static struct rbx_context *new_context(void)
{
  struct rbx_options opts;
  struct rbx_context *ctx = NULL;
  struct rbx_error err = {0};

  rbx_options_init(&opts);
  opts.runtime = RBX_RUNTIME_HOST;
  if (rbx_context_new(&ctx, &opts, &err) < 0)
    fail_msg("rbx_context_new: %s", err.message);
  return ctx;
}

/* Runs the loop until nothing is pending, then checks that the backend
 * left no operation in flight, and frees the context. */
static void finish_context(struct rbx_context *ctx)
{
  assert_int_equal(rbx_run_loop(ctx), 0);
  assert_int_equal(rbx_pending(ctx), 0);
  assert_int_equal(eng_in_flight(ctx->loop), 0);
  rbx_context_free(ctx);
}

/* Runs one spec to the end; returns the wall time in milliseconds. */
static uint64_t run_spec(const struct rbx_spec *spec, struct capture *cap)
{
  struct rbx_context *ctx = new_context();
  struct rbx_error err = {0};
  uint64_t start = eng_now_ms();

  memset(cap, 0, sizeof(*cap));
  if (rbx_spawn(ctx, spec, on_done, cap, NULL, &err) < 0)
    fail_msg("rbx_spawn: %s", err.message);
  finish_context(ctx);
  assert_int_equal(cap->calls, 1);
  return eng_now_ms() - start;
}

static void assert_result(const struct capture *cap)
{
  if (cap->has_error)
    fail_msg("expected a result, got %s error: %s",
             rbx_error_kind_name(cap->error.kind), cap->error.message);
}

static void assert_output(const struct rbx_output *out, const char *text)
{
  size_t len = strlen(text);

  if (out->len != len || (len && memcmp(out->data, text, len) != 0))
    fail_msg("output is \"%.*s\" (%zu bytes), expected \"%s\"",
             (int)(out->len > 200 ? 200 : out->len),
             out->data ? (const char *)out->data : "", out->len, text);
  assert_false(out->truncated);
  assert_int_equal(out->dropped, 0);
}

/* Orphans of a killed group are reparented to this process, a subreaper
 * (see main), and stay zombies until reaped here. A zombie still counts
 * for kill(), so they are reaped before the group is checked. */
static void assert_group_gone(pid_t pgid)
{
  uint64_t until = eng_now_ms() + 1000;

  for (;;) {
    while (waitpid(-pgid, NULL, WNOHANG) > 0)
      ;
    errno = 0;
    if (kill(-pgid, 0) < 0 && errno == ESRCH)
      return;
    if (eng_now_ms() > until)
      fail_msg("process group %d still has live processes", (int)pgid);
    usleep(10000);
  }
}

static pid_t result_pid(const struct capture *cap)
{
  long pid = strtol(cap->result.id, NULL, 10);

  assert_true(pid > 1);
  return (pid_t)pid;
}

static void test_host_exit_code_and_streams(void **state)
{
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 3);
  assert_int_equal(cap.result.signal, 0);
  assert_output(&cap.result.out, "out\n");
  assert_output(&cap.result.err, "err\n");
  assert_true(cap.result.wall_ms < 5000);
  result_pid(&cap);
  rbx_result_clear(&cap.result);
}

static void test_host_stdin_sort(void **state)
{
  const char *argv[] = {"sort", NULL};
  const char input[] = "pear\napple\nfig\n";
  struct rbx_spec spec = {.argv = argv,
                          .stdin_data = (const uint8_t *)input,
                          .stdin_len = sizeof(input) - 1};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "apple\nfig\npear\n");
  assert_output(&cap.result.err, "");
  rbx_result_clear(&cap.result);
}

static void test_host_cat_8mib(void **state)
{
  const size_t len = 8 * 1024 * 1024;
  const char *argv[] = {"cat", NULL};
  uint8_t *input = malloc(len);
  struct rbx_spec spec = {.argv = argv, .stdin_data = input, .stdin_len = len};
  struct capture cap;

  (void)state;
  assert_non_null(input);
  for (size_t i = 0; i < len; i++)
    input[i] = (uint8_t)(i * 7 + i / 4096);
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_int_equal(cap.result.out.len, len);
  assert_false(cap.result.out.truncated);
  assert_memory_equal(cap.result.out.data, input, len);
  free(input);
  rbx_result_clear(&cap.result);
}

static void test_host_stdin_left_unread(void **state)
{
  const size_t len = 8 * 1024 * 1024;
  const char *argv[] = {"head", "-c", "10", NULL};
  uint8_t *input = malloc(len);
  struct rbx_spec spec = {.argv = argv, .stdin_data = input, .stdin_len = len};
  struct capture cap;

  (void)state;
  assert_non_null(input);
  memset(input, 'x', len);
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "xxxxxxxxxx");
  free(input);
  rbx_result_clear(&cap.result);
}

static void test_host_no_stdin_is_eof(void **state)
{
  const char *argv[] = {"cat", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "");
  rbx_result_clear(&cap.result);
}

static void test_host_env_cleared(void **state)
{
  const char *argv[] = {"env", NULL};
  const char *env[] = {"A=1", "B=two words", NULL};
  struct rbx_spec spec = {.argv = argv, .env = env};
  struct capture cap;

  (void)state;
  assert_int_equal(setenv("RBX_HOST_TEST_SECRET", "leak", 1), 0);
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "A=1\nB=two words\n");
  unsetenv("RBX_HOST_TEST_SECRET");
  rbx_result_clear(&cap.result);
}

static void test_host_path_from_spec(void **state)
{
  const char *argv[] = {"sh", "-c", "echo \"$PATH\"", NULL};
  const char *env[] = {"PATH=/nowhere:/bin", NULL};
  struct rbx_spec spec = {.argv = argv, .env = env};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_output(&cap.result.out, "/nowhere:/bin\n");
  rbx_result_clear(&cap.result);
}

static void test_host_workdir(void **state)
{
  char tmpl[] = "/tmp/rbx-host-XXXXXX";
  char resolved[PATH_MAX], expected[PATH_MAX + 2];
  const char *argv[] = {"pwd", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  assert_non_null(mkdtemp(tmpl));
  assert_non_null(realpath(tmpl, resolved));
  spec.workdir = resolved;
  snprintf(expected, sizeof(expected), "%s\n", resolved);
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, expected);
  assert_int_equal(rmdir(tmpl), 0);
  rbx_result_clear(&cap.result);
}

static void test_host_workdir_missing(void **state)
{
  const char *argv[] = {"pwd", NULL};
  struct rbx_spec spec = {.argv = argv, .workdir = "/nonexistent/rbx-host"};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_true(cap.has_error);
  assert_int_equal(cap.error.kind, RBX_ERR_INVALID);
  assert_non_null(strstr(cap.error.message,
                         "workdir '/nonexistent/rbx-host' is not a folder"));
}

static void test_host_command_not_found(void **state)
{
  const char *argv[] = {"rbx-no-such-command", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_true(cap.has_error);
  assert_int_equal(cap.error.kind, RBX_ERR_INVALID);
  assert_int_equal(cap.error.code, -ENOENT);
  assert_non_null(strstr(cap.error.message,
                         "command 'rbx-no-such-command' not found in PATH "
                         "/usr/local/bin:/usr/bin:/bin"));
}

static void test_host_exec_failure_status(void **state)
{
  const char *argv[] = {"/nonexistent/rbx-tool", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 127);
  assert_output(&cap.result.err, "ringbox host: cannot execute "
                                 "'/nonexistent/rbx-tool': ENOENT\n");
  rbx_result_clear(&cap.result);
}

static void test_host_timeout_kills_group(void **state)
{
  const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
  struct rbx_policy policy;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};
  struct capture cap;
  uint64_t elapsed;

  (void)state;
  rbx_policy_init(&policy);
  policy.timeout_ms = 1000;
  elapsed = run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_TIMED_OUT);
  assert_int_equal(cap.result.exit_code, 128 + SIGKILL);
  assert_int_equal(cap.result.signal, 0);
  assert_true(elapsed >= 1000);
  assert_true(elapsed < 2000);
  assert_group_gone(result_pid(&cap));
  rbx_result_clear(&cap.result);
}

static void test_host_background_killed_at_exit(void **state)
{
  const char *argv[] = {"sh", "-c", "sleep 30 & echo started", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;
  uint64_t elapsed;

  (void)state;
  elapsed = run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "started\n");
  assert_true(elapsed < 1000);
  assert_group_gone(result_pid(&cap));
  rbx_result_clear(&cap.result);
}

static void test_host_escaped_descendant(void **state)
{
  /* setsid leaves the group, so the kill at exit misses the sleep that
   * keeps stdout open: only the drain timeout ends the reads. */
  const char *argv[] = {"sh", "-c", "setsid sleep 30 & echo $!", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;
  uint64_t elapsed;
  long escaped;

  (void)state;
  elapsed = run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_EXITED);
  assert_int_equal(cap.result.exit_code, 0);
  assert_true(cap.result.out.len > 1);
  escaped = strtol((const char *)cap.result.out.data, NULL, 10);
  assert_true(escaped > 1);
  assert_true(elapsed < 3000);
  assert_int_equal(kill((pid_t)escaped, SIGKILL), 0);
  assert_int_equal(waitpid((pid_t)escaped, NULL, 0), (pid_t)escaped);
  rbx_result_clear(&cap.result);
}

static void test_host_output_limit(void **state)
{
  const char *argv[] = {"yes", NULL};
  struct rbx_policy policy;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};
  struct capture cap;

  (void)state;
  rbx_policy_init(&policy);
  policy.output_limit = 65536;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_OUTPUT_LIMIT);
  assert_int_equal(cap.result.out.len, 65536);
  assert_true(cap.result.out.truncated);
  assert_true(cap.result.out.dropped > 0);
  assert_memory_equal(cap.result.out.data, "y\ny\n", 4);
  assert_group_gone(result_pid(&cap));
  rbx_result_clear(&cap.result);
}

static void test_host_signal_death(void **state)
{
  const char *argv[] = {"sh", "-c", "kill -TERM $$", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct capture cap;

  (void)state;
  run_spec(&spec, &cap);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_SIGNALED);
  assert_int_equal(cap.result.signal, SIGTERM);
  assert_int_equal(cap.result.exit_code, 128 + SIGTERM);
  rbx_result_clear(&cap.result);
}

static void test_host_signals_reset(void **state)
{
  /* This process ignores SIGPIPE and blocks SIGUSR1; the command must start
   * with every signal at its default action and none blocked. */
  const char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status",
                        NULL};
  struct rbx_spec spec = {.argv = argv};
  struct sigaction ignore = {.sa_handler = SIG_IGN}, old_action;
  sigset_t usr1, old_mask;
  struct capture cap;

  (void)state;
  sigemptyset(&ignore.sa_mask);
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  assert_int_equal(sigaction(SIGPIPE, &ignore, &old_action), 0);
  assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
  run_spec(&spec, &cap);
  assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
  assert_int_equal(sigaction(SIGPIPE, &old_action, NULL), 0);
  assert_result(&cap);
  assert_int_equal(cap.result.exit_code, 0);
  assert_output(&cap.result.out, "SigBlk:\t0000000000000000\n"
                                 "SigIgn:\t0000000000000000\n");
  rbx_result_clear(&cap.result);
}

struct cancel_request {
  struct eng_op op;
  struct rbx_exec *exec;
};

static void on_cancel_timer(struct eng_op *op, int res)
{
  struct cancel_request *request = op->data;

  assert_int_equal(res, -ETIME);
  rbx_cancel(request->exec);
}

static void test_host_cancel(void **state)
{
  const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct rbx_context *ctx = new_context();
  struct cancel_request request;
  struct rbx_error err = {0};
  struct capture cap = {0};
  uint64_t start = eng_now_ms();

  (void)state;
  assert_int_equal(rbx_spawn(ctx, &spec, on_done, &cap, &request.exec, &err),
                   0);
  eng_op_init(&request.op, ctx->loop, on_cancel_timer, &request);
  assert_int_equal(eng_timer(&request.op, 200), 0);
  finish_context(ctx);
  assert_int_equal(cap.calls, 1);
  assert_result(&cap);
  assert_int_equal(cap.result.end, RBX_END_CANCELLED);
  assert_int_equal(cap.result.exit_code, 128 + SIGKILL);
  assert_true(eng_now_ms() - start < 2000);
  assert_group_gone(result_pid(&cap));
  rbx_result_clear(&cap.result);
}

static void test_host_many_at_once(void **state)
{
  enum { COUNT = 12 };
  static const char *const numbers[COUNT] = {"0", "1", "2", "3", "4",  "5",
                                             "6", "7", "8", "9", "10", "11"};
  const char *argv[COUNT][5];
  struct rbx_spec spec[COUNT];
  struct capture cap[COUNT];
  struct rbx_context *ctx = new_context();
  struct rbx_error err = {0};

  (void)state;
  memset(cap, 0, sizeof(cap));
  for (int i = 0; i < COUNT; i++) {
    argv[i][0] = "sh";
    argv[i][1] = "-c";
    argv[i][2] = "sleep 0.1; echo $0; exit $0";
    argv[i][3] = numbers[i];
    argv[i][4] = NULL;
    memset(&spec[i], 0, sizeof(spec[i]));
    spec[i].argv = argv[i];
    assert_int_equal(rbx_spawn(ctx, &spec[i], on_done, &cap[i], NULL, &err), 0);
  }
  finish_context(ctx);
  for (int i = 0; i < COUNT; i++) {
    char expected[8];

    snprintf(expected, sizeof(expected), "%d\n", i);
    assert_int_equal(cap[i].calls, 1);
    assert_result(&cap[i]);
    assert_int_equal(cap[i].result.exit_code, i);
    assert_output(&cap[i].result.out, expected);
    rbx_result_clear(&cap[i].result);
  }
}

static void test_host_mount_policy_checked(void **state)
{
  const char *argv[] = {"true", NULL};
  struct rbx_mount mount = {"/etc", "/data", true};
  struct rbx_spec spec = {.argv = argv, .mounts = &mount, .mounts_count = 1};
  struct rbx_context *ctx = new_context();
  struct rbx_error err = {0};
  struct capture cap = {0};

  (void)state;
  assert_true(rbx_spawn(ctx, &spec, on_done, &cap, NULL, &err) < 0);
  assert_int_equal(err.kind, RBX_ERR_POLICY);
  assert_non_null(strstr(err.message, "pass --workspace DIR"));
  finish_context(ctx);
  assert_int_equal(cap.calls, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_exit_code_and_streams),
      cmocka_unit_test(test_host_stdin_sort),
      cmocka_unit_test(test_host_cat_8mib),
      cmocka_unit_test(test_host_stdin_left_unread),
      cmocka_unit_test(test_host_no_stdin_is_eof),
      cmocka_unit_test(test_host_env_cleared),
      cmocka_unit_test(test_host_path_from_spec),
      cmocka_unit_test(test_host_workdir),
      cmocka_unit_test(test_host_workdir_missing),
      cmocka_unit_test(test_host_command_not_found),
      cmocka_unit_test(test_host_exec_failure_status),
      cmocka_unit_test(test_host_timeout_kills_group),
      cmocka_unit_test(test_host_background_killed_at_exit),
      cmocka_unit_test(test_host_escaped_descendant),
      cmocka_unit_test(test_host_output_limit),
      cmocka_unit_test(test_host_signal_death),
      cmocka_unit_test(test_host_signals_reset),
      cmocka_unit_test(test_host_cancel),
      cmocka_unit_test(test_host_many_at_once),
      cmocka_unit_test(test_host_mount_policy_checked),
  };

  /* Descendants orphaned by a kill come to this process instead of init,
   * which may never reap them, so the tests can check that they are gone. */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
    perror("prctl(PR_SET_CHILD_SUBREAPER)");
    return 1;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
