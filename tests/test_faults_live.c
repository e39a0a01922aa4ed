/* Live fault tests: a Podman service killed while executions are in flight
 * (the test starts that service on a socket of its own), and a client killed
 * with executions in flight while another client keeps running. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/live_common.h"

#define SERVICE_EXECUTIONS 50
/* How long the executions may take to fail once their daemon is gone. */
#define SERVICE_DEATH_BOUND_MS 90000
#define SERVICE_START_TIMEOUT_MS 60000
#define DOOMED_EXECUTIONS 5
#define CHILD_READY_TIMEOUT_MS 180000
#define PODMAN_BINARY "/usr/bin/podman"

/* ---- a Podman service of the test's own ---- */

struct service {
  char dir[64];
  char socket_path[LIVE_SOCKET_PATH_MAX];
  char url[LIVE_SOCKET_PATH_MAX + 8];
  pid_t pid;
};

static struct service service = {.pid = -1};

/* Waits up to ms for pid to exit; returns true once it is reaped. */
static bool reap_within(pid_t pid, uint64_t ms, int *status)
{
  uint64_t until = live_now_ms() + ms;

  while (live_now_ms() < until) {
    pid_t done = waitpid(pid, status, WNOHANG);

    if (done == pid || (done < 0 && errno == ECHILD))
      return true;
    usleep(20000);
  }
  return false;
}

static void service_start(struct service *svc)
{
  char *log_path = live_strdupf("%s/podman.log", svc->dir);
  uint64_t until;
  pid_t pid;

  /* A socket left by a killed service would make the new one fail. */
  unlink(svc->socket_path);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                      0644);

    setpgid(0, 0);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    execl(PODMAN_BINARY, "podman", "system", "service", "--time=0",
          svc->url, (char *)NULL);
    _exit(127);
  }
  free(log_path);
  svc->pid = pid;
  until = live_now_ms() + SERVICE_START_TIMEOUT_MS;
  while (live_api(svc->socket_path, "GET", "/_ping", NULL) != 200) {
    int status;

    if (waitpid(pid, &status, WNOHANG) == pid) {
      svc->pid = -1;
      fail_msg("podman system service exited with status %d; see %s/"
               "podman.log",
               status, svc->dir);
    }
    if (live_now_ms() > until)
      fail_msg("podman system service did not answer on %s within %d ms",
               svc->socket_path, SERVICE_START_TIMEOUT_MS);
    usleep(100000);
  }
  print_message("podman service pid %d answers on %s\n", (int)pid,
                svc->socket_path);
}

static void service_kill(struct service *svc, int sig)
{
  int status;

  if (svc->pid <= 0)
    return;
  kill(svc->pid, sig);
  if (!reap_within(svc->pid, 30000, &status)) {
    kill(svc->pid, SIGKILL);
    reap_within(svc->pid, 30000, &status);
  }
  svc->pid = -1;
}

/* Stops the service, after removing what this process left on it. */
static int service_teardown(void **state)
{
  struct live_engine *engine = *state;

  if (service.pid > 0) {
    live_remove_owned(service.socket_path, (int)getpid());
    service_kill(&service, SIGTERM);
  }
  if (service.dir[0]) {
    char *command = live_strdupf("rm -rf '%s'", service.dir);

    if (system(command) != 0)
      print_message("could not remove %s\n", service.dir);
    free(command);
    service.dir[0] = '\0';
  }
  /* The test's service shares its storage with the main service, which
   * therefore lists anything left behind. */
  if (engine->available)
    live_assert_nothing_left(engine, (int)getpid());
  return 0;
}

static size_t count_running_sandboxes(const char *socket_path, int owner)
{
  struct live_object objects[SERVICE_EXECUTIONS + 8];
  int count = live_list_objects(socket_path, owner, false, objects,
                                SERVICE_EXECUTIONS + 8);
  size_t running = 0;

  for (int i = 0; i < count && i < SERVICE_EXECUTIONS + 8; i++)
    running += strcmp(objects[i].role, "sandbox") == 0 &&
               strcmp(objects[i].state, "running") == 0;
  return running;
}

static void test_daemon_killed_executions_fail(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_outcome outcomes[SERVICE_EXECUTIONS];
  struct live_outcome after;
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct rbx_error err = {0};
  const char *const argv[] = {"sleep", "300", NULL};
  uint64_t until, killed_at;
  size_t running = 0, failed = 0, pending = SERVICE_EXECUTIONS;
  int swept;

  if (access(PODMAN_BINARY, X_OK) != 0)
    fail_msg("%s not found: install podman", PODMAN_BINARY);
  snprintf(service.dir, sizeof(service.dir), "/tmp/rbx-test-%d",
           (int)getpid());
  assert_true(mkdir(service.dir, 0700) == 0 || errno == EEXIST);
  snprintf(service.socket_path, sizeof(service.socket_path), "%s/podman.sock",
           service.dir);
  snprintf(service.url, sizeof(service.url), "unix://%s",
           service.socket_path);
  service_start(&service);

  live_options(engine, &opts);
  opts.daemon_url = service.url;
  opts.max_in_flight = SERVICE_EXECUTIONS;
  ctx = live_context_new(&opts);
  live_policy(&policy);
  policy.timeout_ms = 600000;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};

  for (size_t i = 0; i < SERVICE_EXECUTIONS; i++)
    live_spawn(ctx, &spec, &outcomes[i], NULL);

  /* Kill the service once every execution runs (or after two minutes). */
  until = live_now_ms() + 120000;
  while (live_now_ms() < until) {
    live_drive(ctx, 500);
    running = count_running_sandboxes(service.socket_path, (int)getpid());
    if (running == SERVICE_EXECUTIONS)
      break;
  }
  print_message("%zu of %d executions running; killing podman service pid "
                "%d\n",
                running, SERVICE_EXECUTIONS, (int)service.pid);
  assert_true(running > 0);
  service_kill(&service, SIGKILL);

  killed_at = live_now_ms();
  while (pending > 0 && live_now_ms() < killed_at + SERVICE_DEATH_BOUND_MS) {
    live_drive(ctx, 200);
    pending = 0;
    for (size_t i = 0; i < SERVICE_EXECUTIONS; i++)
      pending += !outcomes[i].done;
  }
  print_message("%zu executions still pending %llu ms after the kill\n",
                pending, (unsigned long long)(live_now_ms() - killed_at));
  for (size_t i = 0; i < SERVICE_EXECUTIONS; i++) {
    if (!outcomes[i].done)
      continue;
    if (outcomes[i].failed) {
      if (failed++ < 3)
        print_message("execution %zu: %s error after %llu ms: %s\n", i,
                      rbx_error_kind_name(outcomes[i].error.kind),
                      (unsigned long long)(outcomes[i].done_ms - killed_at),
                      outcomes[i].error.message);
    } else {
      print_message("execution %zu ended as %s with exit %d\n", i,
                    rbx_end_name(outcomes[i].result.end),
                    outcomes[i].result.exit_code);
    }
    live_outcome_clear(&outcomes[i]);
  }
  assert_int_equal(pending, 0);
  assert_int_equal(failed, SERVICE_EXECUTIONS);

  /* Back on the same socket, the same context works again. */
  service_start(&service);
  {
    const char *const echo[] = {"echo", "after-restart", NULL};
    struct rbx_spec again = {.argv = echo, .policy = &policy};

    live_spawn(ctx, &again, &after, NULL);
    live_run_loop(ctx);
    live_assert_result(&after, RBX_END_EXITED, 0, "after-restart\n", "");
    live_outcome_clear(&after);
  }
  swept = rbx_gc(ctx, &err);
  print_message("rbx_gc removed %d objects%s%s\n", swept,
                swept < 0 ? ": " : "", swept < 0 ? err.message : "");
  assert_true(swept >= 0);
  /* Freeing the context removes everything it created, including the
   * containers that the dead service could not remove. */
  live_context_free(ctx);
  {
    struct live_object left[8];
    int count = live_list_objects(service.socket_path, (int)getpid(), true,
                                  left, 8);

    assert_true(count >= 0);
    for (int i = 0; i < count && i < 8; i++)
      print_message("left: %.12s %s role=%s state=%s\n", left[i].id,
                    left[i].name, left[i].role, left[i].state);
    if (count > 0)
      print_message("removed %d leftovers by force\n",
                    live_remove_owned(service.socket_path, (int)getpid()));
    /* NOTE: a create the service received just before it died sometimes
     * leaves a container that the sweep right after the restart does not
     * list (seen once in five runs, a holder, with Podman 4.3). Only the
     * executions that were not running at the kill can leave one. */
    assert_true((size_t)count <= SERVICE_EXECUTIONS - running);
    count = live_list_objects(service.socket_path, (int)getpid(), true, left,
                              8);
    assert_int_equal(count, 0);
  }
}

/* ---- a client killed with executions in flight ---- */

/* A child process that runs executions of its own. It never returns into
 * cmocka: every path ends in _exit. */
struct child {
  pid_t pid;
  int ready_fd; /* parent reads "ready\n" */
  int stop_fd;  /* parent writes to end the child properly */
};

static struct child doomed = {-1, -1, -1};
static struct child survivor = {-1, -1, -1};

/* Counts this process's sandbox containers that run. */
static int child_running(const struct live_engine *engine)
{
  struct live_object objects[16];
  int count = live_list_objects(engine->socket_path, (int)getpid(), false,
                                objects, 16);
  int running = 0;

  for (int i = 0; i < count && i < 16; i++)
    running += strcmp(objects[i].role, "sandbox") == 0 &&
               strcmp(objects[i].state, "running") == 0;
  return count < 0 ? count : running;
}

static void child_done(struct rbx_exec *exec, const struct rbx_result *result,
                       const struct rbx_error *error, void *userdata)
{
  (void)exec;
  (void)result;
  (void)error;
  (void)userdata;
}

/* Runs `executions` sleeps, reports "ready" once they all run, then drives
 * the loop until the parent writes to stop_fd. */
static void child_main(const struct live_engine *engine, int executions,
                       int ready_fd, int stop_fd)
{
  const char *const argv[] = {"sleep", "600", NULL};
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  struct rbx_error err = {0};
  uint64_t until = live_now_ms() + CHILD_READY_TIMEOUT_MS;
  bool ready = false;

  live_options(engine, &opts);
  live_policy(&policy);
  policy.timeout_ms = 900000;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};

  if (rbx_context_new(&ctx, &opts, &err) < 0) {
    fprintf(stderr, "child %d: %s\n", (int)getpid(), err.message);
    _exit(3);
  }
  for (int i = 0; i < executions; i++) {
    if (rbx_spawn(ctx, &spec, child_done, NULL, NULL, &err) < 0) {
      fprintf(stderr, "child %d: %s\n", (int)getpid(), err.message);
      _exit(4);
    }
  }
  for (;;) {
    struct pollfd fds[2] = {{.fd = rbx_fd(ctx), .events = POLLIN},
                            {.fd = stop_fd, .events = POLLIN}};

    rbx_process(ctx);
    poll(fds, 2, 100);
    if (fds[1].revents)
      break;
    if (!ready && child_running(engine) == executions) {
      ready = true;
      if (write(ready_fd, "ready\n", 6) != 6)
        _exit(5);
    }
    if (!ready && live_now_ms() > until) {
      fprintf(stderr, "child %d: executions did not start\n", (int)getpid());
      _exit(6);
    }
  }
  rbx_cancel_all(ctx);
  rbx_run_loop(ctx);
  rbx_context_free(ctx);
  _exit(0);
}

static void child_start(struct child *child, const struct live_engine *engine,
                        int executions)
{
  int ready[2], stop[2];

  assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
  assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
  fflush(NULL);
  child->pid = fork();
  assert_true(child->pid >= 0);
  if (child->pid == 0) {
    close(ready[0]);
    close(stop[1]);
    child_main(engine, executions, ready[1], stop[0]);
  }
  close(ready[1]);
  close(stop[0]);
  child->ready_fd = ready[0];
  child->stop_fd = stop[1];
}

static void child_wait_ready(const struct child *child)
{
  struct pollfd pfd = {.fd = child->ready_fd, .events = POLLIN};
  char line[16] = "";

  if (poll(&pfd, 1, CHILD_READY_TIMEOUT_MS) != 1)
    fail_msg("child %d did not report its executions running within %d ms",
             (int)child->pid, CHILD_READY_TIMEOUT_MS);
  if (read(child->ready_fd, line, sizeof(line) - 1) <= 0)
    fail_msg("child %d exited before its executions ran", (int)child->pid);
  assert_string_equal(line, "ready\n");
}

static void child_close(struct child *child)
{
  if (child->ready_fd >= 0)
    close(child->ready_fd);
  if (child->stop_fd >= 0)
    close(child->stop_fd);
  child->ready_fd = child->stop_fd = -1;
  child->pid = -1;
}

/* Kills and reaps a child still running after a failure, and removes its
 * objects so that nothing outlives the test. */
static int children_teardown(void **state)
{
  struct live_engine *engine = *state;
  struct child *children[] = {&doomed, &survivor};

  for (size_t i = 0; i < 2; i++) {
    struct child *child = children[i];
    int status;

    if (child->pid <= 0)
      continue;
    kill(child->pid, SIGKILL);
    reap_within(child->pid, 30000, &status);
    if (engine->available)
      live_remove_owned(engine->socket_path, (int)child->pid);
    child_close(child);
  }
  if (engine->available)
    live_assert_nothing_left(engine, (int)getpid());
  return 0;
}

static void test_client_killed_sweep_spares_live(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  struct live_object before[16], now[16];
  struct rbx_options opts;
  struct rbx_context *ctx;
  int before_count, count, status;
  uint64_t until;
  pid_t doomed_pid;

  child_start(&doomed, engine, DOOMED_EXECUTIONS);
  child_start(&survivor, engine, 1);
  child_wait_ready(&doomed);
  child_wait_ready(&survivor);
  before_count = live_list_objects(engine->socket_path, (int)survivor.pid,
                                   true, before, 16);
  assert_true(before_count >= 1);
  count = live_list_objects(engine->socket_path, (int)doomed.pid, true, now,
                            16);
  print_message("doomed child %d has %d objects, live child %d has %d\n",
                (int)doomed.pid, count, (int)survivor.pid, before_count);
  assert_true(count >= DOOMED_EXECUTIONS);

  doomed_pid = doomed.pid;
  assert_int_equal(kill(doomed_pid, SIGKILL), 0);
  /* Reaped first: a zombie still has its /proc entry, so the sweep would
   * take it for alive. */
  assert_true(reap_within(doomed_pid, 30000, &status));
  assert_true(WIFSIGNALED(status));
  child_close(&doomed);

  live_options(engine, &opts);
  assert_false(opts.no_startup_sweep);
  ctx = live_context_new(&opts);
  live_context_free(ctx);

  /* Other ringbox processes on the same daemon sweep too, and the daemon
   * returns 409 for a removal already in progress, so what one sweep leaves
   * to another may take a moment to go. */
  until = live_now_ms() + 30000;
  for (;;) {
    count = live_list_objects(engine->socket_path, (int)doomed_pid, true,
                              now, 16);
    if (count <= 0 || live_now_ms() > until)
      break;
    usleep(200000);
  }
  for (int i = 0; i < count && i < 16; i++)
    print_message("left of the killed child: %.12s %s role=%s\n", now[i].id,
                  now[i].name, now[i].role);
  assert_int_equal(count, 0);

  count = live_list_objects(engine->socket_path, (int)survivor.pid, true, now,
                            16);
  assert_int_equal(count, before_count);
  for (int i = 0; i < count && i < 16; i++) {
    bool found = false;

    for (int j = 0; j < before_count && j < 16; j++)
      found = found || strcmp(now[i].id, before[j].id) == 0;
    assert_true(found);
    if (!now[i].network)
      assert_string_equal(now[i].state, "running");
  }

  assert_int_equal(write(survivor.stop_fd, "stop\n", 5), 5);
  assert_true(reap_within(survivor.pid, 120000, &status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  count = live_list_objects(engine->socket_path, (int)survivor.pid, true, now,
                            16);
  assert_int_equal(count, 0);
  child_close(&survivor);
}

int main(void)
{
  struct live_engine engines[LIVE_ENGINES_MAX];
  struct live_engine podman[1];
  size_t count = live_engines(engines, LIVE_ENGINES_MAX, "RBX_ENGINES",
                              "docker podman");
  size_t podman_count = 0;
  struct CMUnitTest service_tests[1] = {{0}};
  struct CMUnitTest client_tests[LIVE_ENGINES_MAX] = {{0}};
  char names[LIVE_ENGINES_MAX + 1][96];
  int failed;

  for (size_t i = 0; i < count; i++) {
    if (engines[i].runtime == RBX_RUNTIME_PODMAN && podman_count == 0)
      podman[podman_count++] = engines[i];
  }
  for (size_t i = 0; i < podman_count; i++) {
    snprintf(names[0], sizeof(names[0]),
             "test_daemon_killed_executions_fail[podman]");
    service_tests[i] = (struct CMUnitTest){names[0],
                                           test_daemon_killed_executions_fail,
                                           NULL, service_teardown, &podman[i]};
  }
  for (size_t i = 0; i < count; i++) {
    snprintf(names[i + 1], sizeof(names[i + 1]),
             "test_client_killed_sweep_spares_live[%s]", engines[i].name);
    client_tests[i] = (struct CMUnitTest){names[i + 1],
                                          test_client_killed_sweep_spares_live,
                                          NULL, children_teardown,
                                          &engines[i]};
  }
  if (getenv("RBX_LIVE_FILTER"))
    cmocka_set_test_filter(getenv("RBX_LIVE_FILTER"));
  failed = _cmocka_run_group_tests("faults_service", service_tests,
                                   podman_count, NULL, NULL);
  failed += _cmocka_run_group_tests("faults_client", client_tests, count,
                                    NULL, NULL);
  return failed;
}
