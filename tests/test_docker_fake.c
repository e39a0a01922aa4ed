/* Tests of the Engine API backend through the public API against the
 * scripted fake daemon: a whole execution (version, create, attach, wait,
 * start, remove) and the daemon faults it must survive. The fake daemon
 * picks its response by request line, so the order in which the client opens
 * its attach and wait connections does not matter. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/docker.h"
#include "fake_daemon.h"

#define LIT(s)                                                                 \
  {                                                                            \
    .data = (s), .len = sizeof(s) - 1                                          \
  }

#define CONTAINER_ID                                                           \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* An execution must end within this time, or the test fails. */
#define RUN_LIMIT_MS 20000

/* stdout "hello\n", stderr "oops\n". */
#define OUTPUT_FRAMES                                                          \
  "\x01\0\0\0\0\0\0\x06"                                                       \
  "hello\n\x02\0\0\0\0\0\0\x05"                                                \
  "oops\n"

static const char version_answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 98\r\n\r\n"
    "{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\",\"MinAPIVersion\":"
    "\"1.12\",\"Components\":[{\"Name\":\"Engine\"}]}";
static const char empty_list[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 3\r\n\r\n[]\n";
static const char created[] =
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    "Content-Length: 88\r\n\r\n{\"Id\":\"" CONTAINER_ID "\",\"Warnings\":[]}\n";
static const char no_content[] = "HTTP/1.1 204 No Content\r\n\r\n";
static const char upgraded[] =
    "HTTP/1.1 101 UPGRADED\r\n"
    "Content-Type: application/vnd.docker.raw-stream\r\n"
    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
static const char wait_head[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";
/* {"Error":null,"StatusCode":N}\n as one chunk, then the last chunk. */
static const char wait_exit_3[] =
    "1E\r\n{\"Error\":null,\"StatusCode\":3}\n\r\n0\r\n\r\n";
static const char wait_exit_137[] =
    "20\r\n{\"Error\":null,\"StatusCode\":137}\n\r\n0\r\n\r\n";
static const char inspect_oom[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 52\r\n\r\n"
    "{\"Id\":\"x\",\"State\":{\"OOMKilled\":true,\"ExitCode\":137}}";
static const char inspect_no_oom[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 53\r\n\r\n"
    "{\"Id\":\"x\",\"State\":{\"OOMKilled\":false,\"ExitCode\":137}}";

/* Route indexes in the table that base_routes fills. */
enum {
  R_VERSION,
  R_CONTAINERS,
  R_NETWORKS,
  R_CREATE,
  R_ATTACH,
  R_WAIT,
  R_START,
  R_KILL,
  R_INSPECT,
  R_REMOVE,
  R_COUNT,
};

/* The happy path: the wait's headers come 100 ms late (so a start sent
 * before them would be seen), output and exit come after start. */
static void base_routes(struct fake_route *r)
{
  memset(r, 0, sizeof(*r) * R_COUNT);
  r[R_VERSION] = (struct fake_route){.name = "version",
                                     .method = "GET",
                                     .path = "/version",
                                     .writes = {LIT(version_answer)}};
  r[R_CONTAINERS] = (struct fake_route){.name = "list containers",
                                        .method = "GET",
                                        .path = "/containers/json",
                                        .writes = {LIT(empty_list)}};
  r[R_NETWORKS] = (struct fake_route){.name = "list networks",
                                      .method = "GET",
                                      .path = "/networks",
                                      .writes = {LIT(empty_list)}};
  r[R_CREATE] = (struct fake_route){.name = "create",
                                    .method = "POST",
                                    .path = "/containers/create?",
                                    .writes = {LIT(created)}};
  r[R_ATTACH] =
      (struct fake_route){.name = "attach",
                          .method = "POST",
                          .path = "/containers/*/attach?",
                          .after = FAKE_CLOSE,
                          .writes = {LIT(upgraded),
                                     {.data = OUTPUT_FRAMES,
                                      .len = sizeof(OUTPUT_FRAMES) - 1,
                                      .await = "start",
                                      .delay_ms = 20}}};
  r[R_WAIT] = (struct fake_route){
      .name = "wait",
      .method = "POST",
      .path = "/containers/*/wait?",
      .after = FAKE_CLOSE,
      .writes = {{.data = wait_head, .delay_ms = 100},
                 {.data = wait_exit_3, .await = "start", .delay_ms = 50}}};
  r[R_START] = (struct fake_route){.name = "start",
                                   .method = "POST",
                                   .path = "/containers/*/start",
                                   .writes = {LIT(no_content)}};
  r[R_KILL] = (struct fake_route){.name = "kill",
                                  .method = "POST",
                                  .path = "/containers/*/kill",
                                  .writes = {LIT(no_content)}};
  r[R_INSPECT] = (struct fake_route){.name = "inspect",
                                     .method = "GET",
                                     .path = "/containers/*/json",
                                     .writes = {LIT(inspect_no_oom)}};
  r[R_REMOVE] = (struct fake_route){.name = "remove",
                                    .method = "DELETE",
                                    .path = "/containers/",
                                    .writes = {LIT(no_content)}};
}

struct outcome {
  bool done;
  bool failed;
  struct rbx_error err;
  struct rbx_result result;
  uint64_t done_ms;
};

static void on_exec_done(struct rbx_exec *exec, const struct rbx_result *result,
                         const struct rbx_error *error, void *userdata)
{
  struct outcome *o = userdata;

  (void)exec;
  assert_false(o->done);
  o->done = true;
  o->done_ms = eng_now_ms();
  if (error) {
    assert_null(result);
    o->failed = true;
    o->err = *error;
    return;
  }
  rbx_result_move(&o->result, result);
}

static void on_log(enum rbx_log_level level, const char *line, void *userdata)
{
  (void)userdata;
  print_message("log %d: %s\n", (int)level, line);
}

struct run {
  struct fake_daemon *daemon;
  struct rbx_context *ctx;
  struct outcome o;
  uint64_t start_ms;
};

/* Drives the context through rbx_fd and rbx_process, the API for callers
 * with their own loop, until done() returns true or RUN_LIMIT_MS passes. */
static bool drive(struct run *run, bool (*done)(struct run *))
{
  uint64_t until = eng_now_ms() + RUN_LIMIT_MS;

  for (;;) {
    struct pollfd pfd = {.fd = rbx_fd(run->ctx), .events = POLLIN};

    assert_true(rbx_process(run->ctx) >= 0);
    if (done(run))
      return true;
    if (eng_now_ms() >= until)
      return false;
    poll(&pfd, 1, 50);
  }
}

static bool exec_done(struct run *run)
{
  return run->o.done && rbx_pending(run->ctx) == 0;
}

/* Removals are done, and the cancels of their timers have come back. */
static bool removals_done(struct run *run)
{
  return rbx_cleanups_pending(run->ctx) == 0 &&
         eng_in_flight(run->ctx->loop) == 0;
}

/* Starts the fake daemon with count routes and a context on it, with the
 * holder pool and the events stream on only when asked for. */
static void start_context_with(struct run *run, const struct fake_route *routes,
                               size_t count, bool holders, bool events)
{
  struct rbx_options opts;
  struct rbx_error err = {0};

  memset(run, 0, sizeof(*run));
  assert_int_equal(fake_daemon_start(&run->daemon, routes, count), 0);
  rbx_options_init(&opts);
  opts.daemon_url = fake_daemon_url(run->daemon);
  opts.no_startup_sweep = true;
  opts.no_holder_pool = !holders;
  opts.no_events_stream = !events;
  opts.log_fn = on_log;
  opts.log_level = RBX_LOG_WARN;
  if (rbx_context_new(&run->ctx, &opts, &err) < 0)
    fail_msg("rbx_context_new: %s", err.message);
}

static void start_context(struct run *run, const struct fake_route *routes)
{
  start_context_with(run, routes, R_COUNT, false, false);
}

/* Spawns `sh -c 'exit 3'` with the given timeout and runs it to the end,
 * then lets the removal finish and checks that nothing is in flight. */
static void spawn_exec(struct run *run, uint64_t timeout_ms)
{
  static const char *const argv[] = {"sh", "-c", "echo hello; exit 3", NULL};
  struct rbx_policy policy;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};
  struct rbx_error err = {0};

  rbx_policy_init(&policy);
  policy.image = "ringbox-tools:test";
  policy.timeout_ms = timeout_ms;
  run->start_ms = eng_now_ms();
  if (rbx_spawn(run->ctx, &spec, on_exec_done, &run->o, NULL, &err) < 0)
    fail_msg("rbx_spawn: %s", err.message);
}

static void run_exec(struct run *run, uint64_t timeout_ms)
{
  spawn_exec(run, timeout_ms);
  if (!drive(run, exec_done))
    fail_msg("the execution did not end within %d ms", RUN_LIMIT_MS);
  if (!drive(run, removals_done))
    fail_msg("the removal did not end within %d ms", RUN_LIMIT_MS);
  assert_int_equal(rbx_pending(run->ctx), 0);
  assert_int_equal(eng_in_flight(run->ctx->loop), 0);
}

/* Frees the context (its shutdown sweep lists containers and networks),
 * checks that every connection was closed, and stops the daemon. */
static void finish(struct run *run)
{
  unsigned accepts;

  rbx_context_free(run->ctx);
  accepts = fake_daemon_accepts(run->daemon);
  assert_true(fake_daemon_wait_closed(run->daemon, accepts, 5000));
  assert_int_equal(fake_daemon_unmatched(run->daemon), 0);
  rbx_result_clear(&run->o.result);
  fake_daemon_stop(run->daemon);
}

static void check_every_request_has_host(struct fake_daemon *daemon)
{
  unsigned count = fake_daemon_request_count(daemon);

  for (unsigned i = 0; i < count; i++) {
    struct fake_request req;
    char host[64];

    assert_true(fake_daemon_request(daemon, i, &req));
    if (!fake_header(&req, "Host", host, sizeof(host)))
      fail_msg("request %s %s has no Host header", req.method, req.target);
    assert_string_equal(host, "localhost");
  }
}

static void test_docker_fake_whole_execution(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  struct fake_request create, attach, wait, start, remove;

  (void)state;
  base_routes(routes);
  start_context(&run, routes);
  run_exec(&run, 30000);

  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.end, RBX_END_EXITED);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(run.o.result.signal, 0);
  assert_int_equal(run.o.result.out.len, 6);
  assert_memory_equal(run.o.result.out.data, "hello\n", 6);
  assert_int_equal(run.o.result.err.len, 5);
  assert_memory_equal(run.o.result.err.data, "oops\n", 5);
  assert_false(run.o.result.out.truncated);
  assert_string_equal(run.o.result.id, CONTAINER_ID);

  assert_true(fake_daemon_find(run.daemon, "create", 0, &create));
  assert_true(fake_daemon_find(run.daemon, "attach", 0, &attach));
  assert_true(fake_daemon_find(run.daemon, "wait", 0, &wait));
  assert_true(fake_daemon_find(run.daemon, "start", 0, &start));
  assert_true(fake_daemon_find(run.daemon, "remove", 0, &remove));
  assert_int_equal(fake_daemon_hits(run.daemon, "start"), 1);
  assert_int_equal(fake_daemon_hits(run.daemon, "kill"), 0);
  assert_int_equal(fake_daemon_hits(run.daemon, "inspect"), 0);

  /* Create, then attach and wait, then start once the wait's headers were
   * sent, then remove. */
  assert_true(create.seq < attach.seq);
  assert_true(create.seq < wait.seq);
  assert_true(fake_daemon_write_seq(run.daemon, "wait", 0) != 0);
  assert_true(start.seq > fake_daemon_write_seq(run.daemon, "wait", 0));
  assert_true(start.seq > attach.seq);
  assert_true(remove.seq > start.seq);
  assert_non_null(strstr(wait.target, "condition=next-exit"));
  assert_non_null(strstr(remove.target, CONTAINER_ID "?force=1"));
  assert_non_null(strstr(start.target, "/v1.41/containers/" CONTAINER_ID));

  /* The attach request has no body, and asks for no stdin. */
  assert_int_equal(attach.raw_len, attach.head_len);
  assert_int_equal(attach.extra_len, 0);
  assert_false(fake_header(&attach, "Content-Length", NULL, 0));
  assert_non_null(strstr(attach.target, "stdin=0"));
  assert_non_null(strstr(attach.target, "stdout=1&stderr=1"));
  /* The attach and the wait each have a connection of their own. */
  assert_int_not_equal(attach.conn, wait.conn);
  assert_int_not_equal(attach.conn, create.conn);
  assert_int_not_equal(wait.conn, create.conn);

  /* The create body carries the command and the locked-down defaults. */
  assert_non_null(strstr(create.raw + create.head_len,
                         "\"Cmd\":[\"sh\",\"-c\",\"echo hello; exit 3\"]"));
  assert_non_null(
      strstr(create.raw + create.head_len, "\"Image\":\"ringbox-tools:test\""));
  assert_non_null(
      strstr(create.raw + create.head_len, "\"CapDrop\":[\"ALL\"]"));
  assert_non_null(
      strstr(create.raw + create.head_len, "\"NetworkMode\":\"none\""));
  check_every_request_has_host(run.daemon);
  finish(&run);
}

/* The daemon sends the wait's headers before the attach response: start must
 * still wait for the attach stream. */
static void test_docker_fake_wait_before_attach(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  struct fake_request start;

  (void)state;
  base_routes(routes);
  routes[R_WAIT].writes[0].delay_ms = 0;
  routes[R_ATTACH].writes[0].delay_ms = 150;
  start_context(&run, routes);
  run_exec(&run, 30000);
  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(run.o.result.out.len, 6);
  assert_true(fake_daemon_find(run.daemon, "start", 0, &start));
  assert_true(start.seq > fake_daemon_write_seq(run.daemon, "attach", 0));
  finish(&run);
}

/* Output frames come in the same write as the 101 headers. */
static void test_docker_fake_frames_with_headers(void **state)
{
  static const char with_frames[] =
      "HTTP/1.1 101 UPGRADED\r\n"
      "Content-Type: application/vnd.docker.raw-stream\r\n"
      "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" OUTPUT_FRAMES;
  struct fake_route routes[R_COUNT];
  struct run run;

  (void)state;
  base_routes(routes);
  routes[R_ATTACH].writes[0] =
      (struct fake_write){.data = with_frames, .len = sizeof(with_frames) - 1};
  routes[R_ATTACH].writes[1] = (struct fake_write){0};
  start_context(&run, routes);
  run_exec(&run, 30000);
  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(run.o.result.out.len, 6);
  assert_memory_equal(run.o.result.out.data, "hello\n", 6);
  assert_int_equal(run.o.result.err.len, 5);
  assert_memory_equal(run.o.result.err.data, "oops\n", 5);
  finish(&run);
}

static void expect_failure(struct run *run, enum rbx_error_kind kind,
                           const char *message)
{
  if (!run->o.failed)
    fail_msg("expected an error containing \"%s\", got end %s", message,
             rbx_end_name(run->o.result.end));
  assert_int_equal(run->o.err.kind, kind);
  assert_true(run->o.err.code < 0);
  if (!strstr(run->o.err.message, message))
    fail_msg("message \"%s\" lacks \"%s\"", run->o.err.message, message);
}

static void test_docker_fake_create_garbage(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;

  (void)state;
  base_routes(routes);
  routes[R_CREATE].writes[0] =
      (struct fake_write){.data = "\x16\x03\x01 this is not HTTP\r\n\r\n"};
  routes[R_CREATE].after = FAKE_CLOSE;
  start_context(&run, routes);
  run_exec(&run, 30000);
  expect_failure(&run, RBX_ERR_IO, "create container");
  assert_non_null(strstr(run.o.err.message, "invalid HTTP response"));
  assert_int_equal(fake_daemon_hits(run.daemon, "attach"), 0);
  assert_int_equal(fake_daemon_hits(run.daemon, "start"), 0);
  assert_int_equal(fake_daemon_hits(run.daemon, "remove"), 0);
  finish(&run);
}

/* A 404 from create carries the daemon's message. */
static void test_docker_fake_create_404(void **state)
{
  static const char missing[] =
      "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
      "Content-Length: 48\r\n\r\n"
      "{\"message\":\"No such image: ringbox-tools:test\"}\n";
  struct fake_route routes[R_COUNT];
  struct run run;

  (void)state;
  base_routes(routes);
  routes[R_CREATE].writes[0] = (struct fake_write){.data = missing};
  start_context(&run, routes);
  run_exec(&run, 30000);
  expect_failure(&run, RBX_ERR_DAEMON, "No such image: ringbox-tools:test");
  assert_non_null(strstr(run.o.err.message, "404"));
  assert_int_equal(fake_daemon_hits(run.daemon, "attach"), 0);
  finish(&run);
}

/* The attach stream ends inside a frame. */
static void test_docker_fake_attach_closed_mid_frame(void **state)
{
  static const char half[] = "\x01\0\0\0\0\0\0\x10"
                             "only part";
  struct fake_route routes[R_COUNT];
  struct run run;

  (void)state;
  base_routes(routes);
  routes[R_ATTACH].writes[1].data = half;
  routes[R_ATTACH].writes[1].len = sizeof(half) - 1;
  start_context(&run, routes);
  run_exec(&run, 30000);
  expect_failure(&run, RBX_ERR_IO, "ended inside a frame");
  assert_int_equal(fake_daemon_hits(run.daemon, "remove"), 1);
  finish(&run);
}

/* A frame header announcing 2 GiB fails at once, without allocating it. */
static void test_docker_fake_attach_huge_frame(void **state)
{
  static const char huge[] = "\x01\0\0\0\x80\0\0\0"
                             "xxxx";
  struct fake_route routes[R_COUNT];
  struct run run;

  (void)state;
  base_routes(routes);
  routes[R_ATTACH].writes[1].data = huge;
  routes[R_ATTACH].writes[1].len = sizeof(huge) - 1;
  routes[R_ATTACH].after = FAKE_HOLD;
  /* A stream the client gave up on: the container is killed. */
  routes[R_WAIT].writes[1].await = "kill";
  routes[R_WAIT].writes[1].data = wait_exit_137;
  start_context(&run, routes);
  run_exec(&run, 30000);
  expect_failure(&run, RBX_ERR_IO, "over the limit");
  assert_int_equal(fake_daemon_hits(run.daemon, "kill"), 1);
  assert_int_equal(fake_daemon_hits(run.daemon, "remove"), 1);
  finish(&run);
}

/* The deadline passes while the container runs: the backend kills it, the
 * daemon then ends the stream and the wait, and the result is a timeout. */
static void test_docker_fake_timeout_kills(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  uint64_t took;

  (void)state;
  base_routes(routes);
  routes[R_ATTACH].writes[1].await = "kill";
  routes[R_WAIT].writes[1].await = "kill";
  routes[R_WAIT].writes[1].data = wait_exit_137;
  start_context(&run, routes);
  run_exec(&run, 1000);
  took = run.o.done_ms - run.start_ms;
  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.end, RBX_END_TIMED_OUT);
  assert_int_equal(fake_daemon_hits(run.daemon, "kill"), 1);
  assert_int_equal(fake_daemon_hits(run.daemon, "inspect"), 0);
  assert_true(took >= 1000);
  assert_true(took < 5000);
  finish(&run);
}

/* The daemon reads the wait request and never responds, not even with
 * headers: the deadline must still end the execution in bounded time. */
static void test_docker_fake_wait_never_answers(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  uint64_t took;

  (void)state;
  base_routes(routes);
  memset(routes[R_WAIT].writes, 0, sizeof(routes[R_WAIT].writes));
  routes[R_WAIT].after = FAKE_HOLD;
  routes[R_ATTACH].writes[1] = (struct fake_write){0};
  routes[R_ATTACH].after = FAKE_HOLD;
  start_context(&run, routes);
  run_exec(&run, 1000);
  took = run.o.done_ms - run.start_ms;
  print_message("ended after %llu ms\n", (unsigned long long)took);
  if (run.o.failed) {
    assert_true(run.o.err.kind == RBX_ERR_TIMEOUT ||
                run.o.err.kind == RBX_ERR_DAEMON);
  } else {
    assert_int_equal(run.o.result.end, RBX_END_TIMED_OUT);
  }
  assert_true(took >= 1000);
  assert_true(took < 15000);
  finish(&run);
}

static bool attach_and_wait_sent(struct run *run)
{
  return fake_daemon_hits(run->daemon, "attach") == 1 &&
         fake_daemon_hits(run->daemon, "wait") == 1;
}

/* rbx_cancel while the wait is not registered ends the execution at once
 * as cancelled, and the container is still removed. */
static void test_docker_fake_cancel_before_start(void **state)
{
  static const char *const argv[] = {"true", NULL};
  struct fake_route routes[R_COUNT];
  struct rbx_spec spec = {.argv = argv};
  struct rbx_error err = {0};
  struct rbx_exec *exec = NULL;
  struct run run;
  uint64_t cancelled_ms;

  (void)state;
  base_routes(routes);
  memset(routes[R_WAIT].writes, 0, sizeof(routes[R_WAIT].writes));
  routes[R_WAIT].after = FAKE_HOLD;
  routes[R_ATTACH].writes[1] = (struct fake_write){0};
  routes[R_ATTACH].after = FAKE_HOLD;
  start_context(&run, routes);
  if (rbx_spawn(run.ctx, &spec, on_exec_done, &run.o, &exec, &err) < 0)
    fail_msg("rbx_spawn: %s", err.message);
  assert_true(drive(&run, attach_and_wait_sent));
  /* Let the attach answer arrive too. */
  for (int i = 0; i < 5; i++) {
    poll(NULL, 0, 20);
    rbx_process(run.ctx);
  }
  assert_false(run.o.done);
  cancelled_ms = eng_now_ms();
  rbx_cancel(exec);
  assert_true(drive(&run, exec_done));
  assert_true(run.o.done_ms - cancelled_ms < 2000);
  expect_failure(&run, RBX_ERR_CANCELLED, "cancelled");
  assert_int_equal(fake_daemon_hits(run.daemon, "start"), 0);
  assert_true(drive(&run, removals_done));
  assert_int_equal(fake_daemon_hits(run.daemon, "remove"), 1);
  finish(&run);
}

/* The wait's headers come, then nothing: the container never exits after
 * the kill either. The kill grace period bounds the execution. */
static void test_docker_fake_wait_body_never_comes(void **state)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  uint64_t took;

  (void)state;
  base_routes(routes);
  routes[R_WAIT].writes[1] = (struct fake_write){0};
  routes[R_WAIT].after = FAKE_HOLD;
  routes[R_ATTACH].writes[1] = (struct fake_write){0};
  routes[R_ATTACH].after = FAKE_HOLD;
  start_context(&run, routes);
  run_exec(&run, 1000);
  took = run.o.done_ms - run.start_ms;
  print_message("ended after %llu ms\n", (unsigned long long)took);
  if (run.o.failed)
    assert_int_equal(run.o.err.kind, RBX_ERR_DAEMON);
  else
    assert_int_equal(run.o.result.end, RBX_END_TIMED_OUT);
  assert_int_equal(fake_daemon_hits(run.daemon, "kill"), 1);
  assert_true(took < 1000 + DOCKER_KILL_GRACE_MS + 3000);
  finish(&run);
}

static void run_exit_137(const char *inspect, enum rbx_end expected)
{
  struct fake_route routes[R_COUNT];
  struct run run;
  struct fake_request insp, remove;

  base_routes(routes);
  routes[R_WAIT].writes[1].data = wait_exit_137;
  routes[R_INSPECT].writes[0] = (struct fake_write){.data = inspect};
  start_context(&run, routes);
  run_exec(&run, 30000);
  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.end, expected);
  assert_int_equal(run.o.result.exit_code, 137);
  assert_int_equal(fake_daemon_hits(run.daemon, "inspect"), 1);
  /* The state is read before the container is removed. */
  assert_true(fake_daemon_find(run.daemon, "inspect", 0, &insp));
  assert_true(fake_daemon_find(run.daemon, "remove", 0, &remove));
  assert_true(insp.seq < remove.seq);
  assert_non_null(strstr(insp.target, CONTAINER_ID "/json"));
  finish(&run);
}

static void test_docker_fake_exit_137_oom(void **state)
{
  (void)state;
  run_exit_137(inspect_oom, RBX_END_OOM);
}

static void test_docker_fake_exit_137_not_oom(void **state)
{
  (void)state;
  run_exit_137(inspect_no_oom, RBX_END_SIGNALED);
}

#define HOLDER_ID                                                              \
  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static const char holder_created[] =
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    "Content-Length: 88\r\n\r\n{\"Id\":\"" HOLDER_ID "\",\"Warnings\":[]}\n";
/* dockerd's response to a start when the namespace's owner has stopped. */
static const char holder_gone[] =
    "HTTP/1.1 500 Internal Server Error\r\n"
    "Content-Type: application/json\r\nContent-Length: 127\r\n\r\n"
    "{\"message\":\"cannot join network of a non running container: " HOLDER_ID
    "\"}\n";

/* The network holder's namespace is gone when the sandbox starts, after
 * its attach stream was open: the execution runs again in a container with
 * a namespace of its own, and the first attempt's stream and buffers are
 * released. */
static void test_docker_fake_holder_gone_retry(void **state)
{
  enum { HOLDER_ROUTES = 3 };
  struct fake_route routes[HOLDER_ROUTES + R_COUNT];
  struct fake_request holder_create, first, second;
  struct run run;

  (void)state;
  routes[0] = (struct fake_route){
      .name = "holder create",
      .method = "POST",
      .path = "/containers/create?name=ringbox-holder-",
      .writes = {LIT(holder_created)}};
  routes[1] = (struct fake_route){.name = "holder start",
                                  .method = "POST",
                                  .path = "/containers/" HOLDER_ID "/start",
                                  .writes = {LIT(no_content)}};
  routes[2] = (struct fake_route){.name = "start with holder gone",
                                  .method = "POST",
                                  .path = "/containers/*/start",
                                  .max_hits = 1,
                                  .writes = {LIT(holder_gone)}};
  base_routes(routes + HOLDER_ROUTES);

  start_context_with(&run, routes, HOLDER_ROUTES + R_COUNT, true, false);
  run_exec(&run, 30000);

  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.end, RBX_END_EXITED);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(run.o.result.out.len, 6);
  assert_memory_equal(run.o.result.out.data, "hello\n", 6);
  assert_int_equal(fake_daemon_hits(run.daemon, "holder create"), 1);
  assert_int_equal(fake_daemon_hits(run.daemon, "start with holder gone"), 1);
  assert_int_equal(fake_daemon_hits(run.daemon, "create"), 2);
  assert_int_equal(fake_daemon_hits(run.daemon, "attach"), 2);
  assert_int_equal(fake_daemon_hits(run.daemon, "start"), 1);

  /* The first container joined the holder's namespace, the second has a
   * namespace of its own. */
  assert_true(fake_daemon_find(run.daemon, "holder create", 0,
                               &holder_create));
  assert_true(fake_daemon_find(run.daemon, "create", 0, &first));
  assert_true(fake_daemon_find(run.daemon, "create", 1, &second));
  assert_non_null(memmem(first.raw, first.raw_len,
                         "\"container:" HOLDER_ID "\"",
                         sizeof("\"container:" HOLDER_ID "\"") - 1));
  assert_null(memmem(second.raw, second.raw_len, HOLDER_ID,
                     sizeof(HOLDER_ID) - 1));
  finish(&run);
}

static const char events_head[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

static bool cleanups_done(struct run *run)
{
  return rbx_cleanups_pending(run->ctx) == 0;
}

static bool events_connected(struct run *run)
{
  return eng_now_ms() >= run->start_ms + 300;
}

/* The events stream is up but never reports the exit: once the attach
 * stream has ended, a wait request for a stopped container reads it, so the
 * execution still ends with its exit code. */
static void test_docker_fake_exit_event_lost(void **state)
{
  enum { EVENT_ROUTES = 1 };
  struct fake_route routes[EVENT_ROUTES + R_COUNT];
  struct fake_request wait;
  struct run run;

  (void)state;
  routes[0] = (struct fake_route){.name = "events",
                                  .method = "GET",
                                  .path = "/events?",
                                  .after = FAKE_HOLD,
                                  .writes = {LIT(events_head)}};
  base_routes(routes + EVENT_ROUTES);
  /* The wait is only sent after the attach stream ended, so the fake
   * daemon responds at once. */
  routes[EVENT_ROUTES + R_WAIT].writes[0] =
      (struct fake_write){.data = wait_head};
  routes[EVENT_ROUTES + R_WAIT].writes[1] =
      (struct fake_write){.data = wait_exit_3};

  start_context_with(&run, routes, EVENT_ROUTES + R_COUNT, false, true);
  run.start_ms = eng_now_ms();
  drive(&run, events_connected);
  spawn_exec(&run, 0);
  if (!drive(&run, exec_done))
    fail_msg("the execution did not end within %d ms", RUN_LIMIT_MS);
  /* The events stream keeps a receive in flight, so only the removals are
   * waited for. */
  if (!drive(&run, cleanups_done))
    fail_msg("the removal did not end within %d ms", RUN_LIMIT_MS);

  if (run.o.failed)
    fail_msg("execution failed: %s", run.o.err.message);
  assert_int_equal(run.o.result.end, RBX_END_EXITED);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(fake_daemon_hits(run.daemon, "wait"), 1);
  assert_true(fake_daemon_find(run.daemon, "wait", 0, &wait));
  assert_non_null(strstr(wait.target, "condition=not-running"));
  assert_true(run.o.done_ms - run.start_ms >= DOCKER_EXIT_EVENT_WAIT_MS);
  finish(&run);
}

/* Bytes that JSON cannot carry fail the execution before any request,
 * while valid multi-byte text passes. */
static void test_docker_fake_non_utf8_rejected(void **state)
{
  static const char *const bad[][3] = {
      {"echo", "\xff", NULL},       /* a byte that UTF-8 never uses */
      {"echo", "\xc0\xaf", NULL},   /* an overlong '/' */
      {"echo", "\xed\xa0\x80", NULL}, /* a surrogate */
      {"echo", "\xe2\x82", NULL},   /* cut short */
  };
  static const char *const good[] = {"echo", "h\xc3\xa9 \xf0\x9f\x98\x80",
                                     NULL};
  struct fake_route routes[R_COUNT];
  struct rbx_policy policy;
  struct rbx_error err = {0};
  struct run run;

  (void)state;
  base_routes(routes);
  start_context(&run, routes);
  rbx_policy_init(&policy);
  policy.image = "ringbox-tools:test";
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct rbx_spec spec = {.argv = bad[i], .policy = &policy};

    memset(&run.o, 0, sizeof(run.o));
    assert_int_equal(
        rbx_spawn(run.ctx, &spec, on_exec_done, &run.o, NULL, &err), 0);
    if (!drive(&run, exec_done))
      fail_msg("the execution did not end within %d ms", RUN_LIMIT_MS);
    assert_true(run.o.failed);
    assert_int_equal(run.o.err.kind, RBX_ERR_INVALID);
    assert_non_null(strstr(run.o.err.message, "argv[1] is not valid UTF-8"));
  }
  assert_int_equal(fake_daemon_hits(run.daemon, "create"), 0);

  struct rbx_spec spec = {.argv = good, .policy = &policy};

  memset(&run.o, 0, sizeof(run.o));
  assert_int_equal(rbx_spawn(run.ctx, &spec, on_exec_done, &run.o, NULL, &err),
                   0);
  if (!drive(&run, exec_done))
    fail_msg("the execution did not end within %d ms", RUN_LIMIT_MS);
  if (!drive(&run, removals_done))
    fail_msg("the removal did not end within %d ms", RUN_LIMIT_MS);
  assert_false(run.o.failed);
  assert_int_equal(run.o.result.exit_code, 3);
  assert_int_equal(fake_daemon_hits(run.daemon, "create"), 1);
  finish(&run);
}

/* A client killed but not yet reaped is gone for the sweep: its start
 * time reads as ESRCH. */
static void test_docker_proc_zombie_gone(void **state)
{
  unsigned long long start;
  siginfo_t info;
  pid_t child;
  int status;

  (void)state;
  assert_int_equal(docker_proc_start_time((int)getpid(), &start), 0);
  assert_true(start > 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0)
    _exit(0);
  /* Wait for the exit without reaping the child. */
  assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
  assert_int_equal(docker_proc_start_time((int)child, &start), -ESRCH);
  assert_int_equal(waitpid(child, &status, 0), child);
}

/* A daemon whose /version is not an Engine API answer. */
static void test_docker_fake_version_garbage(void **state)
{
  struct fake_route routes[R_COUNT];
  struct fake_daemon *daemon;
  struct rbx_context *ctx = NULL;
  struct rbx_options opts;
  struct rbx_error err = {0};

  (void)state;
  base_routes(routes);
  routes[R_VERSION].writes[0] =
      (struct fake_write){.data = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                  "\r\n{}"};
  assert_int_equal(fake_daemon_start(&daemon, routes, R_COUNT), 0);
  rbx_options_init(&opts);
  opts.daemon_url = fake_daemon_url(daemon);
  opts.no_startup_sweep = true;
  opts.no_events_stream = true;
  assert_true(rbx_context_new(&ctx, &opts, &err) < 0);
  assert_null(ctx);
  assert_int_equal(err.kind, RBX_ERR_DAEMON);
  assert_non_null(strstr(err.message, "ApiVersion"));
  assert_true(
      fake_daemon_wait_closed(daemon, fake_daemon_accepts(daemon), 5000));
  fake_daemon_stop(daemon);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_docker_fake_whole_execution),
      cmocka_unit_test(test_docker_fake_wait_before_attach),
      cmocka_unit_test(test_docker_fake_frames_with_headers),
      cmocka_unit_test(test_docker_fake_create_garbage),
      cmocka_unit_test(test_docker_fake_create_404),
      cmocka_unit_test(test_docker_fake_attach_closed_mid_frame),
      cmocka_unit_test(test_docker_fake_attach_huge_frame),
      cmocka_unit_test(test_docker_fake_timeout_kills),
      cmocka_unit_test(test_docker_fake_wait_never_answers),
      cmocka_unit_test(test_docker_fake_cancel_before_start),
      cmocka_unit_test(test_docker_fake_wait_body_never_comes),
      cmocka_unit_test(test_docker_fake_exit_137_oom),
      cmocka_unit_test(test_docker_fake_exit_137_not_oom),
      cmocka_unit_test(test_docker_fake_version_garbage),
      cmocka_unit_test(test_docker_fake_holder_gone_retry),
      cmocka_unit_test(test_docker_fake_exit_event_lost),
      cmocka_unit_test(test_docker_proc_zombie_gone),
      cmocka_unit_test(test_docker_fake_non_utf8_rejected),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
