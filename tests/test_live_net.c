/* Live tests of network limited against real dockerd and Podman: a sandbox
 * on its internal network reaches upstream containers of the test only
 * through the egress proxy, only allowed hosts, and nothing of an
 * execution is left afterwards. Engines: RBX_ENGINES (default both). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/docker.h"
#include "engine/engine.h"
#include "engine/error.h"
#include "tests/live_common.h"

#define PAGE_ALLOWED "PAGE-allowed\n"
#define UPSTREAM_READY "upstream-ready"
#define UPSTREAM_READY_TIMEOUT_MS 30000
/* Background removals after the last result (proxies, networks). */
#define REAP_TIMEOUT_MS 120000
#define SHARED_RUNS 20
#define SHARED_IN_FLIGHT 5
#define CLI_OUTPUT_MAX (64 * 1024)
#define CLI_TIMEOUT_MS 120000
#define FIXTURE_LABEL "ringbox-test"
/* Shown when the sandbox cannot connect to its proxy. */
#define FORWARD_HINT                                                           \
  "; if the host runs dockerd, its iptables FORWARD policy DROP also drops "   \
  "traffic between containers on one Podman internal network (netavark 1.4 "   \
  "adds no rule for internal networks): see `iptables -L FORWARD -v`"

extern char **environ;

struct upstream {
  const char *alias; /* network alias on the egress network */
  const char *page;  /* body it serves at / */
  char name[96];
  char id[72];
  char ip[48];
  bool created;
};

/* One engine's fixtures: the egress network, two upstream HTTP servers on
 * it, and a context used only for the fixtures' Engine API requests. */
struct net_test {
  struct live_engine *engine;
  struct rbx_context *fixture;
  struct rbx_context *ctx;
  char egress[96];
  char shared_proxy[96];
  bool egress_created;
  struct upstream upstreams[2];
};

/* ---- Engine API requests for fixtures ---- */

static struct docker_backend *fixture_backend(struct net_test *nt)
{
  return nt->fixture->backend_state;
}

/* Sends one request through the fixture context. Returns the status, or a
 * negative code with err filled. */
static int api(struct net_test *nt, const char *method, const char *target,
               cJSON *body, cJSON **json, struct rbx_error *err)
{
  return docker_request_sync(fixture_backend(nt), method, target, body, json,
                             err);
}

static cJSON *labels_object(void)
{
  cJSON *labels = cJSON_CreateObject();
  char pid[32];

  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  cJSON_AddStringToObject(labels, FIXTURE_LABEL, pid);
  return labels;
}

static void create_egress(struct net_test *nt)
{
  cJSON *body = cJSON_CreateObject();
  struct rbx_error err;
  int rc;

  cJSON_AddStringToObject(body, "Name", nt->egress);
  cJSON_AddStringToObject(body, "Driver", "bridge");
  cJSON_AddBoolToObject(body, "CheckDuplicate", true);
  cJSON_AddItemToObject(body, "Labels", labels_object());
  rc = api(nt, "POST", "/networks/create", body, NULL, &err);
  if (rc < 0)
    fail_msg("create egress network %s: %s", nt->egress, err.message);
  nt->egress_created = true;
}

static cJSON *upstream_config(const struct net_test *nt,
                              const struct upstream *up)
{
  cJSON *config = cJSON_CreateObject();
  cJSON *cmd = cJSON_AddArrayToObject(config, "Cmd");
  cJSON *hc = cJSON_AddObjectToObject(config, "HostConfig");
  cJSON *tmpfs = cJSON_AddObjectToObject(hc, "Tmpfs");
  cJSON *endpoints = cJSON_AddObjectToObject(
      cJSON_AddObjectToObject(config, "NetworkingConfig"), "EndpointsConfig");
  cJSON *endpoint = cJSON_AddObjectToObject(endpoints, nt->egress);
  cJSON *aliases = cJSON_AddArrayToObject(endpoint, "Aliases");
  char *script;

  /* httpd without -f binds and listens before it goes to the background,
   * so the ready line comes after the port is open. Root may bind 80. */
  script = live_strdupf("mkdir -p /tmp/www && echo %.*s > "
                        "/tmp/www/index.html && httpd -p 80 -h /tmp/www && "
                        "echo " UPSTREAM_READY " && exec sleep 2147483647",
                        (int)strlen(up->page) - 1, up->page);
  cJSON_AddStringToObject(config, "Image", live_image());
  cJSON_AddStringToObject(config, "User", "0:0");
  cJSON_AddItemToArray(cmd, cJSON_CreateString("sh"));
  cJSON_AddItemToArray(cmd, cJSON_CreateString("-c"));
  cJSON_AddItemToArray(cmd, cJSON_CreateString(script));
  /* A TTY gives a plain-text attach stream to wait on. */
  cJSON_AddBoolToObject(config, "Tty", true);
  cJSON_AddItemToObject(config, "Labels", labels_object());
  cJSON_AddStringToObject(hc, "NetworkMode", nt->egress);
  cJSON_AddBoolToObject(hc, "ReadonlyRootfs", true);
  cJSON_AddStringToObject(tmpfs, "/tmp", "rw,size=1m");
  cJSON_AddItemToArray(aliases, cJSON_CreateString(up->alias));
  free(script);
  return config;
}

struct attach_state {
  bool done;
  int fd;
  struct rbx_error err;
  char seen[4096]; /* output read so far, NUL-terminated */
  size_t seen_len;
};

static void on_fixture_attached(struct http_call *call,
                                struct http_response *resp,
                                const struct rbx_error *err, void *data)
{
  struct attach_state *state = data;

  (void)call;
  state->done = true;
  state->fd = -1;
  if (err)
    state->err = *err;
  else if (resp->fd < 0)
    rbx_err_set(&state->err, RBX_ERR_IO, -EPROTO, "attach answered %d",
                resp->status);
  else
    state->fd = resp->fd;
  if (state->fd >= 0) {
    size_t n = resp->extra_len < sizeof(state->seen) - 1
                   ? resp->extra_len
                   : sizeof(state->seen) - 1;

    memcpy(state->seen, resp->extra, n);
    state->seen_len = n;
    state->seen[n] = '\0';
  }
}

/* Attaches to a container's output (from its start on) and reads until
 * marker appears. Blocking: the test is not on a loop here. */
static void wait_for_output(struct net_test *nt, const char *id,
                            const char *marker)
{
  struct docker_backend *be = fixture_backend(nt);
  struct attach_state state = {.fd = -1, .seen = ""};
  struct http_request req = {0};
  struct rbx_error err;
  char target[256];
  uint64_t until = live_now_ms() + UPSTREAM_READY_TIMEOUT_MS;

  snprintf(target, sizeof(target),
           "%s/containers/%s/attach?logs=1&stream=1&stdout=1&stderr=1",
           be->api_prefix, id);
  req.method = "POST";
  req.target = target;
  req.hijack = true;
  req.timeout_ms = UPSTREAM_READY_TIMEOUT_MS;
  if (!http_request(be->http, &req, on_fixture_attached, &state, &err))
    fail_msg("attach to upstream %.12s: %s", id, err.message);
  while (!state.done)
    assert_true(eng_run_once(nt->fixture->loop, true) >= 0);
  if (state.fd < 0)
    fail_msg("attach to upstream %.12s: %s", id, state.err.message);
  while (!strstr(state.seen, marker)) {
    struct pollfd pfd = {.fd = state.fd, .events = POLLIN};
    uint64_t now = live_now_ms();
    ssize_t n;

    if (now >= until || poll(&pfd, 1, (int)(until - now)) <= 0)
      break;
    n = recv(state.fd, state.seen + state.seen_len,
             sizeof(state.seen) - 1 - state.seen_len, 0);
    if (n <= 0)
      break;
    state.seen_len += (size_t)n;
    state.seen[state.seen_len] = '\0';
    if (state.seen_len == sizeof(state.seen) - 1)
      break;
  }
  close(state.fd);
  if (!strstr(state.seen, marker))
    fail_msg("upstream %.12s did not print \"%s\" within %d ms; output: %s", id,
             marker, UPSTREAM_READY_TIMEOUT_MS, state.seen);
}

static void start_upstream(struct net_test *nt, struct upstream *up)
{
  struct rbx_error err;
  cJSON *json = NULL;
  const cJSON *id, *networks, *ip;
  char *target;
  int rc;

  target = live_strdupf("/containers/create?name=%s", up->name);
  rc = api(nt, "POST", target, upstream_config(nt, up), &json, &err);
  free(target);
  if (rc < 0)
    fail_msg("create upstream %s: %s", up->name, err.message);
  up->created = true;
  id = cJSON_GetObjectItemCaseSensitive(json, "Id");
  assert_true(cJSON_IsString(id));
  snprintf(up->id, sizeof(up->id), "%s", id->valuestring);
  cJSON_Delete(json);

  target = live_strdupf("/containers/%s/start", up->id);
  rc = api(nt, "POST", target, NULL, NULL, &err);
  free(target);
  if (rc < 0)
    fail_msg("start upstream %s: %s", up->name, err.message);
  wait_for_output(nt, up->id, UPSTREAM_READY);

  target = live_strdupf("/containers/%s/json", up->id);
  rc = api(nt, "GET", target, NULL, &json, &err);
  free(target);
  if (rc < 0)
    fail_msg("inspect upstream %s: %s", up->name, err.message);
  networks = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(json, "NetworkSettings"), "Networks");
  ip = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(networks, nt->egress), "IPAddress");
  assert_true(cJSON_IsString(ip) && ip->valuestring[0]);
  snprintf(up->ip, sizeof(up->ip), "%s", ip->valuestring);
  cJSON_Delete(json);
}

static void remove_object(struct net_test *nt, const char *target)
{
  struct rbx_error err;
  int rc = api(nt, "DELETE", target, NULL, NULL, &err);

  if (rc < 0 && err.code != -ENOENT)
    print_message("cleanup: DELETE %s failed: %s\n", target, err.message);
}

/* ---- set-up and teardown of each test ---- */

static void fixtures_up(struct net_test *nt)
{
  struct rbx_options opts;
  struct rbx_error err = {0};
  char *target;
  void *engine_state = nt->engine;
  int rc;

  live_engine_ready(&engine_state);
  live_options(nt->engine, &opts);
  opts.no_startup_sweep = true;
  rc = rbx_context_new(&nt->fixture, &opts, &err);
  if (rc < 0)
    fail_msg("fixture context: %s", err.message);
  target = live_strdupf("/images/ringbox-proxy:%s/json", RBX_VERSION);
  rc = api(nt, "GET", target, NULL, NULL, &err);
  free(target);
  if (rc < 0)
    fail_msg("%s has no image ringbox-proxy:%s (%s); build it with "
             "scripts/build-images",
             nt->engine->name, RBX_VERSION, err.message);
  create_egress(nt);
  for (size_t i = 0; i < 2; i++)
    start_upstream(nt, &nt->upstreams[i]);
}

static int setup_test(void **state)
{
  struct net_test *nt = *state;

  memset(nt->upstreams, 0, sizeof(nt->upstreams));
  nt->upstreams[0].alias = "allowed.test";
  nt->upstreams[0].page = PAGE_ALLOWED;
  nt->upstreams[1].alias = "denied.test";
  nt->upstreams[1].page = "PAGE-denied\n";
  for (size_t i = 0; i < 2; i++)
    snprintf(nt->upstreams[i].name, sizeof(nt->upstreams[i].name),
             "ringbox-test-upstream-%d-%s", (int)getpid(),
             i == 0 ? "allowed" : "denied");
  snprintf(nt->egress, sizeof(nt->egress), "ringbox-test-egress-%d",
           (int)getpid());
  snprintf(nt->shared_proxy, sizeof(nt->shared_proxy),
           "ringbox-test-shared-proxy-%d", (int)getpid());
  nt->egress_created = false;
  nt->fixture = NULL;
  nt->ctx = NULL;
  return 0;
}

/* Runs after every test, also after a failed assertion: frees the contexts,
 * checks that no object of this process is left, and removes the
 * fixtures. */
static int teardown_test(void **state)
{
  struct net_test *nt = *state;
  char *target;

  if (nt->ctx)
    rbx_context_free(nt->ctx);
  nt->ctx = NULL;
  if (!nt->fixture)
    return 0;
  target = live_strdupf("/containers/%s?force=1", nt->shared_proxy);
  remove_object(nt, target);
  free(target);
  for (size_t i = 0; i < 2; i++) {
    if (!nt->upstreams[i].created)
      continue;
    target = live_strdupf("/containers/%s?force=1&v=1", nt->upstreams[i].name);
    remove_object(nt, target);
    free(target);
  }
  if (nt->egress_created) {
    target = live_strdupf("/networks/%s", nt->egress);
    remove_object(nt, target);
    free(target);
  }
  rbx_context_free(nt->fixture);
  nt->fixture = NULL;
  live_assert_nothing_left(nt->engine, (int)getpid());
  return 0;
}

/* ---- helpers for executions ---- */

static const char *const allowed_hosts[] = {"allowed.test"};

static void limited_policy(const struct net_test *nt, struct rbx_policy *p)
{
  live_policy(p);
  p->network = RBX_NET_LIMITED;
  p->allow_hosts = allowed_hosts;
  p->allow_hosts_count = 1;
  p->egress_network = nt->egress;
  p->timeout_ms = 60000;
}

static struct rbx_context *exec_context(struct net_test *nt,
                                        unsigned max_in_flight)
{
  struct rbx_options opts;
  struct rbx_error err = {0};
  int rc;

  live_options(nt->engine, &opts);
  opts.no_startup_sweep = true;
  opts.max_in_flight = max_in_flight;
  rc = rbx_context_new(&nt->ctx, &opts, &err);
  if (rc < 0)
    fail_msg("rbx_context_new: %s", err.message);
  return nt->ctx;
}

/* Drives the loop until the background removals of delivered executions
 * (sandbox, proxy, network) have finished, without the shutdown sweep, so
 * that what teardown left behind can be seen. */
static void wait_reaped(struct rbx_context *ctx)
{
  struct docker_backend *be = ctx->backend_state;
  uint64_t until = live_now_ms() + REAP_TIMEOUT_MS;

  while (be->reaping_count > 0) {
    if (live_now_ms() > until)
      fail_msg("%u executions still being removed after %d ms",
               be->reaping_count, REAP_TIMEOUT_MS);
    assert_true(eng_run_once(ctx->loop, true) >= 0);
  }
}

static bool output_contains(const struct rbx_output *out, const char *text)
{
  return out->data && memmem(out->data, out->len, text, strlen(text));
}

static void expect_exit(const struct net_test *nt, const char *what,
                        const struct live_outcome *o, int exit_code)
{
  if (o->failed)
    fail_msg("%s: execution failed (%s): %s", what,
             rbx_error_kind_name(o->error.kind), o->error.message);
  if (o->result.end != RBX_END_EXITED || o->result.exit_code != exit_code)
    fail_msg("%s on %s: end %s exit %d, expected exit %d; stdout \"%.*s\" "
             "stderr \"%.*s\"%s",
             what, nt->engine->name, rbx_end_name(o->result.end),
             o->result.exit_code, exit_code, (int)o->result.out.len,
             o->result.out.data ? (const char *)o->result.out.data : "",
             (int)o->result.err.len,
             o->result.err.data ? (const char *)o->result.err.data : "",
             o->result.exit_code == 7 && exit_code == 0 ? FORWARD_HINT : "");
}

static void expect_page(const struct net_test *nt, const char *what,
                        const struct live_outcome *o)
{
  expect_exit(nt, what, o, 0);
  assert_int_equal(o->result.out.len, strlen(PAGE_ALLOWED));
  assert_memory_equal(o->result.out.data, PAGE_ALLOWED, strlen(PAGE_ALLOWED));
}

/* Counts this process's objects with the given role. */
static int count_role(const struct net_test *nt, const char *role)
{
  struct live_object objects[64];
  int count = live_list_objects(nt->engine->socket_path, (int)getpid(), true,
                                objects, 64);
  int matched = 0;

  assert_true(count >= 0);
  for (int i = 0; i < count && i < 64; i++)
    if (strcmp(objects[i].role, role) == 0)
      matched++;
  return matched;
}

/* ---- tests ---- */

enum probe {
  PROBE_PLAIN,
  PROBE_CONNECT,
  PROBE_DENIED,
  PROBE_TCP_ALLOWED,
  PROBE_TCP_DENIED,
  PROBE_LOOKUP,
  PROBE_HOST,
  PROBE_COUNT,
};

/* Opens a TCP listener on every host address and returns its port, so
 * that a sandbox that could reach the host would connect. */
static int listen_on_host(int *port)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  socklen_t len = sizeof(addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

/* Checks one proxy per execution, with each probe in its own sandbox and
 * all of them at once. The probes: the allowed host through HTTP_PROXY and
 * through a CONNECT tunnel, a denied host, direct TCP to either upstream, a
 * name lookup, and TCP to the host through the network's gateway. */
static void test_limited_proxy_filters(void **state)
{
  struct net_test *nt = *state;
  struct rbx_policy policy;
  struct rbx_spec spec = {0};
  struct live_outcome outcomes[PROBE_COUNT];
  const char *argvs[PROBE_COUNT][5] = {
      [PROBE_PLAIN] = {"rbx-fetch", "http://allowed.test/", NULL},
      [PROBE_CONNECT] = {"rbx-fetch", "--connect", "http://allowed.test/",
                         NULL},
      [PROBE_DENIED] = {"rbx-fetch", "http://denied.test/", NULL},
      [PROBE_TCP_ALLOWED] = {"rbx-fetch", "--tcp", NULL, "80", NULL},
      [PROBE_TCP_DENIED] = {"rbx-fetch", "--tcp", NULL, "80", NULL},
      [PROBE_LOOKUP] = {"rbx-fetch", "--lookup", "allowed.test", NULL},
      [PROBE_HOST] = {"sh", "-c", NULL, NULL},
  };
  struct rbx_context *ctx;
  int host_port;
  int host_fd = listen_on_host(&host_port);
  char *host_script;

  /* Exit 3: no default route at all (Podman's internal network without
   * DNS has no gateway). */
  host_script = live_strdupf(
      "gw=$(ip route | awk '/^default/ {print $3}'); [ -n \"$gw\" ] || "
      "exit 3; exec rbx-fetch --tcp \"$gw\" %d",
      host_port);
  argvs[PROBE_HOST][2] = host_script;
  fixtures_up(nt);
  argvs[PROBE_TCP_ALLOWED][2] = nt->upstreams[0].ip;
  argvs[PROBE_TCP_DENIED][2] = nt->upstreams[1].ip;
  limited_policy(nt, &policy);
  spec.policy = &policy;
  ctx = exec_context(nt, PROBE_COUNT);
  for (int i = 0; i < PROBE_COUNT; i++) {
    spec.argv = argvs[i];
    live_spawn(ctx, &spec, &outcomes[i], NULL);
  }
  live_run_loop(ctx);

  /* What must fail is checked first: it does not depend on the proxy. */
  /* rbx-fetch exits 7 when the connection fails and 6 when the name does
   * not resolve. */
  expect_exit(nt, "direct TCP to the allowed upstream",
              &outcomes[PROBE_TCP_ALLOWED], 7);
  expect_exit(nt, "direct TCP to the denied upstream",
              &outcomes[PROBE_TCP_DENIED], 7);
  expect_exit(nt, "name lookup", &outcomes[PROBE_LOOKUP], 6);
  /* Docker gives the bridge of the internal network no address, so the
   * gateway in the sandbox's route leads nowhere. */
  expect_exit(nt, "TCP to the host through the gateway", &outcomes[PROBE_HOST],
              nt->engine->runtime == RBX_RUNTIME_PODMAN ? 3 : 7);
  expect_page(nt, "fetch through HTTP_PROXY", &outcomes[PROBE_PLAIN]);
  expect_page(nt, "fetch through CONNECT", &outcomes[PROBE_CONNECT]);
  expect_exit(nt, "fetch of a denied host", &outcomes[PROBE_DENIED], 22);
  assert_true(output_contains(&outcomes[PROBE_DENIED].result.err, "HTTP 403"));
  for (int i = 0; i < PROBE_COUNT; i++)
    live_outcome_clear(&outcomes[i]);
  close(host_fd);
  free(host_script);

  wait_reaped(ctx);
  assert_int_equal(count_role(nt, "proxy"), 0);
  assert_int_equal(count_role(nt, "network"), 0);
  assert_int_equal(count_role(nt, "sandbox"), 0);
}

/* A shared named proxy serves 20 executions, 5 at a time: it is created
 * once (concurrent creates meet 409 and use the winner's), stays after
 * them, and no per-execution network remains. */
static void test_limited_shared_proxy(void **state)
{
  struct net_test *nt = *state;
  struct rbx_policy policy;
  struct rbx_spec spec = {0};
  const char *argv[] = {"rbx-fetch", "http://allowed.test/", NULL};
  struct live_outcome *outcomes = calloc(SHARED_RUNS, sizeof(*outcomes));
  struct rbx_context *ctx;
  struct rbx_error err;
  cJSON *json = NULL;
  char *target;
  int rc;

  assert_non_null(outcomes);
  fixtures_up(nt);
  limited_policy(nt, &policy);
  policy.proxy_name = nt->shared_proxy;
  spec.policy = &policy;
  spec.argv = argv;
  ctx = exec_context(nt, SHARED_IN_FLIGHT);
  for (int i = 0; i < SHARED_RUNS; i++)
    live_spawn(ctx, &spec, &outcomes[i], NULL);
  live_run_loop(ctx);
  for (int i = 0; i < SHARED_RUNS; i++) {
    expect_page(nt, "fetch through the shared proxy", &outcomes[i]);
    live_outcome_clear(&outcomes[i]);
  }
  free(outcomes);

  wait_reaped(ctx);
  assert_int_equal(count_role(nt, "network"), 0);
  assert_int_equal(count_role(nt, "proxy"), 0);
  target = live_strdupf("/containers/%s/json", nt->shared_proxy);
  rc = api(nt, "GET", target, NULL, &json, &err);
  free(target);
  if (rc < 0)
    fail_msg("the shared proxy %s is gone: %s", nt->shared_proxy, err.message);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(json, "State"), "Running")));
  cJSON_Delete(json);

  target = live_strdupf("/containers/%s?force=1", nt->shared_proxy);
  rc = api(nt, "DELETE", target, NULL, NULL, &err);
  free(target);
  if (rc < 200 || rc > 299)
    fail_msg("remove the shared proxy %s: %s", nt->shared_proxy,
             rc < 0 ? err.message : "unexpected status");
}

/* A shared proxy's allowlist is fixed when it is created: an execution
 * that names it with other hosts fails with a policy error, and its own
 * network is removed. */
static void test_limited_shared_proxy_hosts_fixed(void **state)
{
  struct net_test *nt = *state;
  static const char *const other_hosts[] = {"denied.test"};
  struct rbx_policy policy;
  struct rbx_spec spec = {0};
  const char *argv[] = {"rbx-fetch", "http://allowed.test/", NULL};
  struct live_outcome first, second;
  struct rbx_context *ctx;

  fixtures_up(nt);
  limited_policy(nt, &policy);
  policy.proxy_name = nt->shared_proxy;
  spec.policy = &policy;
  spec.argv = argv;
  ctx = exec_context(nt, 1);
  live_spawn(ctx, &spec, &first, NULL);
  live_run_loop(ctx);
  expect_page(nt, "fetch through the shared proxy", &first);
  live_outcome_clear(&first);

  policy.allow_hosts = other_hosts;
  live_spawn(ctx, &spec, &second, NULL);
  live_run_loop(ctx);
  assert_true(second.failed);
  assert_int_equal(second.error.kind, RBX_ERR_POLICY);
  assert_non_null(strstr(second.error.message, "fixed when it is created"));
  live_outcome_clear(&second);

  wait_reaped(ctx);
  assert_int_equal(count_role(nt, "network"), 0);
}

/* Returns the id of this process's network with role "network" in out,
 * driving ctx while it does not exist yet. */
static void find_exec_network(struct net_test *nt, struct rbx_context *ctx,
                              char *out, size_t size)
{
  uint64_t until = live_now_ms() + REAP_TIMEOUT_MS;

  for (;;) {
    struct live_object objects[64];
    int count = live_list_objects(nt->engine->socket_path, (int)getpid(), true,
                                  objects, 64);

    assert_true(count >= 0);
    for (int i = 0; i < count && i < 64; i++) {
      if (objects[i].network && strcmp(objects[i].role, "network") == 0) {
        snprintf(out, size, "%s", objects[i].id);
        return;
      }
    }
    if (live_now_ms() > until || rbx_pending(ctx) == 0)
      fail_msg("no network of the execution appeared on %s", nt->engine->name);
    live_drive(ctx, 50);
  }
}

/* A container that joined the execution's network (here an upstream of the
 * test) keeps the network from being removed: teardown disconnects it by
 * force and removes the network, and the container keeps running. */
static void test_limited_teardown_disconnects_others(void **state)
{
  struct net_test *nt = *state;
  struct rbx_policy policy;
  struct rbx_spec spec = {0};
  const char *argv[] = {"sleep", "3", NULL};
  struct live_outcome outcome;
  struct rbx_context *ctx;
  struct rbx_error err;
  char network[80];
  cJSON *body = cJSON_CreateObject();
  cJSON *json = NULL;
  char *target;
  int rc;

  fixtures_up(nt);
  limited_policy(nt, &policy);
  spec.policy = &policy;
  spec.argv = argv;
  ctx = exec_context(nt, 1);
  live_spawn(ctx, &spec, &outcome, NULL);
  find_exec_network(nt, ctx, network, sizeof(network));
  cJSON_AddStringToObject(body, "Container", nt->upstreams[1].id);
  target = live_strdupf("/networks/%s/connect", network);
  rc = api(nt, "POST", target, body, NULL, &err);
  free(target);
  if (rc < 0)
    fail_msg("connect the upstream to %.12s: %s", network, err.message);
  live_run_loop(ctx);
  expect_exit(nt, "sleep", &outcome, 0);
  live_outcome_clear(&outcome);

  wait_reaped(ctx);
  assert_int_equal(count_role(nt, "network"), 0);
  target = live_strdupf("/containers/%s/json", nt->upstreams[1].id);
  rc = api(nt, "GET", target, NULL, &json, &err);
  free(target);
  assert_int_equal(rc, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(json, "State"), "Running")));
  cJSON_Delete(json);
}

/* Runs argv and returns its exit status with its stdout in out. */
static int run_command(char *const argv[], char *out, size_t out_size)
{
  int pipe_fds[2];
  posix_spawn_file_actions_t actions;
  pid_t pid;
  size_t used = 0;
  int status = 0;
  uint64_t until = live_now_ms() + CLI_TIMEOUT_MS;

  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  assert_int_equal(posix_spawn(&pid, argv[0], &actions, NULL, argv, environ),
                   0);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  for (;;) {
    struct pollfd pfd = {.fd = pipe_fds[0], .events = POLLIN};
    uint64_t now = live_now_ms();
    ssize_t n;

    if (now >= until || poll(&pfd, 1, (int)(until - now)) <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    n = read(pipe_fds[0], out + used, out_size - 1 - used);
    if (n <= 0)
      break;
    used += (size_t)n;
    if (used == out_size - 1)
      break;
  }
  out[used] = '\0';
  close(pipe_fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The command line: `ringbox run --network limited` prints the page. The
 * build passes the binary's path in RBX_CLI. */
static void test_limited_cli(void **state)
{
  struct net_test *nt = *state;
  const char *cli = getenv("RBX_CLI");
  char *out = malloc(CLI_OUTPUT_MAX);
  int status;

  assert_non_null(out);
  if (!cli || access(cli, X_OK) != 0) {
    free(out);
    print_message("skipped: RBX_CLI is not an executable ringbox binary\n");
    skip();
  }
  fixtures_up(nt);
  {
    char *const argv[] = {
        (char *)cli,
        "run",
        "--runtime",
        (char *)nt->engine->name,
        "-H",
        nt->engine->daemon_url,
        "--network",
        "limited",
        "--allow-host",
        "allowed.test",
        "--egress-network",
        nt->egress,
        "--image",
        (char *)live_image(),
        "--",
        "rbx-fetch",
        "http://allowed.test/",
        NULL,
    };

    status = run_command(argv, out, CLI_OUTPUT_MAX);
  }
  if (status != 0 || strcmp(out, PAGE_ALLOWED) != 0) {
    fail_msg("ringbox run on %s exited %d with stdout \"%s\"", nt->engine->name,
             status, out);
  }
  free(out);
}

int main(void)
{
  static const struct {
    const char *name;
    CMUnitTestFunction fn;
  } cases[] = {
      {"limited_proxy_filters", test_limited_proxy_filters},
      {"limited_shared_proxy", test_limited_shared_proxy},
      {"limited_shared_proxy_hosts_fixed",
       test_limited_shared_proxy_hosts_fixed},
      {"limited_teardown_disconnects_others",
       test_limited_teardown_disconnects_others},
      {"limited_cli", test_limited_cli},
  };
  enum { CASES = sizeof(cases) / sizeof(cases[0]) };
  struct live_engine engines[LIVE_ENGINES_MAX];
  size_t engine_count =
      live_engines(engines, LIVE_ENGINES_MAX, "RBX_ENGINES", "docker podman");
  struct net_test tests_state[LIVE_ENGINES_MAX];
  struct CMUnitTest tests[LIVE_ENGINES_MAX * CASES];
  size_t n = 0;
  int failed;

  memset(tests_state, 0, sizeof(tests_state));
  for (size_t e = 0; e < engine_count; e++) {
    tests_state[e].engine = &engines[e];
    for (size_t c = 0; c < CASES; c++) {
      tests[n] = (struct CMUnitTest){
          .name = live_strdupf("%s[%s]", cases[c].name, engines[e].name),
          .test_func = cases[c].fn,
          .setup_func = setup_test,
          .teardown_func = teardown_test,
          .initial_state = &tests_state[e],
      };
      n++;
    }
  }
  if (getenv("RBX_LIVE_FILTER") && *getenv("RBX_LIVE_FILTER"))
    cmocka_set_test_filter(getenv("RBX_LIVE_FILTER"));
  failed = _cmocka_run_group_tests("live_net", tests, n, NULL, NULL);
  for (size_t i = 0; i < n; i++)
    free((char *)tests[i].name);
  return failed;
}
