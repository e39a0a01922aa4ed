/* Helpers shared by the live test suites: engines, contexts, a blocking
 * Engine API client over the Unix socket, and the leak check. */
#include "tests/live_common.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Contexts a test may leave open when an assertion fails mid-way. */
#define LIVE_CONTEXTS_MAX 32
/* The filter query for objects carrying the ringbox label. */
#define LIVE_LABEL_FILTER "filters=%7B%22label%22%3A%5B%22ringbox%22%5D%7D"
/* The Engine API version used for checks; both engines here speak it. */
#define LIVE_API_PREFIX "/v1.41"

static struct rbx_context *open_contexts[LIVE_CONTEXTS_MAX];

uint64_t live_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

char *live_strdupf(const char *fmt, ...)
{
  va_list ap;
  char *text = NULL;
  int rc;

  va_start(ap, fmt);
  rc = vasprintf(&text, fmt, ap);
  va_end(ap);
  if (rc < 0)
    fail_msg("out of memory formatting '%s'", fmt);
  return text;
}

/* ---- engines ---- */

static void set_socket(struct live_engine *engine, const char *path)
{
  snprintf(engine->socket_path, sizeof(engine->socket_path), "%s", path);
  snprintf(engine->daemon_url, sizeof(engine->daemon_url), "unix://%s",
           engine->socket_path);
}

void live_engine_init(struct live_engine *engine, const char *name,
                      enum rbx_runtime runtime)
{
  const char *url = NULL;

  memset(engine, 0, sizeof(*engine));
  engine->name = name;
  engine->runtime = runtime;
  if (runtime == RBX_RUNTIME_PODMAN) {
    url = getenv("PODMAN_SOCKET");
    if (!url || strncmp(url, "unix://", 7) != 0)
      url = "unix:///run/podman/podman.sock";
  } else {
    url = getenv("DOCKER_HOST");
    if (!url || strncmp(url, "unix://", 7) != 0)
      url = "unix:///var/run/docker.sock";
  }
  set_socket(engine, url + 7);
}

size_t live_engines(struct live_engine *out, size_t max, const char *env_name,
                    const char *fallback)
{
  const char *value = env_name ? getenv(env_name) : NULL;
  char list[256];
  char *save = NULL;
  size_t count = 0;

  snprintf(list, sizeof(list), "%s", value && *value ? value : fallback);
  for (char *name = strtok_r(list, " ,", &save); name;
       name = strtok_r(NULL, " ,", &save)) {
    if (count == max) {
      fprintf(stderr, "%s lists more than %zu engines\n", env_name, max);
      exit(2);
    }
    if (strcmp(name, "docker") == 0) {
      live_engine_init(&out[count++], "docker", RBX_RUNTIME_DOCKER);
    } else if (strcmp(name, "podman") == 0) {
      live_engine_init(&out[count++], "podman", RBX_RUNTIME_PODMAN);
    } else {
      fprintf(stderr,
              "%s: unknown engine '%s'; use docker and/or podman, "
              "separated by spaces\n",
              env_name ? env_name : "engines", name);
      exit(2);
    }
  }
  return count;
}

const char *live_image(void)
{
  const char *image = getenv("RBX_IMAGE");

  return image && *image ? image : "ringbox-tools:" RBX_VERSION;
}

static bool daemons_required(void)
{
  const char *value = getenv("RBX_REQUIRE_DAEMONS");

  return value && strcmp(value, "1") == 0;
}

static void probe(struct live_engine *engine)
{
  int status;
  char *target;

  engine->probed = true;
  status = live_api(engine->socket_path, "GET", "/_ping", NULL);
  if (status != 200) {
    snprintf(engine->unavailable_reason, sizeof(engine->unavailable_reason),
             "the %s daemon does not respond on %s (%s); start it with "
             "scripts/start-daemons",
             engine->name, engine->socket_path,
             status < 0 ? strerror(-status) : "unexpected status");
    return;
  }
  engine->available = true;
  target = live_strdupf("/images/%s/json", live_image());
  status = live_api(engine->socket_path, "GET", target, NULL);
  free(target);
  if (status != 200)
    snprintf(engine->unavailable_reason, sizeof(engine->unavailable_reason),
             "%s has no image %s (status %d); build it with "
             "scripts/build-images",
             engine->name, live_image(), status);
}

struct live_engine *live_engine_ready(void **state)
{
  struct live_engine *engine = *state;

  if (!engine->probed)
    probe(engine);
  if (!engine->available) {
    if (daemons_required())
      fail_msg("%s (RBX_REQUIRE_DAEMONS=1)", engine->unavailable_reason);
    print_message("skipped: %s\n", engine->unavailable_reason);
    skip();
  }
  if (engine->unavailable_reason[0])
    fail_msg("%s", engine->unavailable_reason);
  return engine;
}

static void log_to_stderr(enum rbx_log_level level, const char *line,
                          void *userdata)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};
  const struct live_engine *engine = userdata;

  fprintf(stderr, "[ringbox %s %s] %s\n", engine ? engine->name : "-",
          names[level], line);
}

static enum rbx_log_level log_level_from_env(void)
{
  const char *value = getenv("RBX_LIVE_LOG");

  if (!value)
    return RBX_LOG_WARN;
  if (strcmp(value, "error") == 0)
    return RBX_LOG_ERROR;
  if (strcmp(value, "info") == 0)
    return RBX_LOG_INFO;
  if (strcmp(value, "debug") == 0)
    return RBX_LOG_DEBUG;
  return RBX_LOG_WARN;
}

void live_options(const struct live_engine *engine, struct rbx_options *opts)
{
  rbx_options_init(opts);
  opts->runtime = engine->runtime;
  opts->daemon_url = engine->daemon_url;
  opts->log_fn = log_to_stderr;
  opts->log_userdata = (void *)engine;
  opts->log_level = log_level_from_env();
}

void live_policy(struct rbx_policy *policy)
{
  rbx_policy_init(policy);
  policy->image = live_image();
}

/* ---- contexts and executions ---- */

struct rbx_context *live_context_new(const struct rbx_options *opts)
{
  struct rbx_context *ctx = NULL;
  struct rbx_error err = {0};
  int rc = rbx_context_new(&ctx, opts, &err);

  if (rc < 0)
    fail_msg("rbx_context_new failed (%s, %d): %s",
             rbx_error_kind_name(err.kind), rc, err.message);
  for (size_t i = 0; i < LIVE_CONTEXTS_MAX; i++) {
    if (!open_contexts[i]) {
      open_contexts[i] = ctx;
      return ctx;
    }
  }
  rbx_context_free(ctx);
  fail_msg("more than %d contexts open at once in one test",
           LIVE_CONTEXTS_MAX);
  return NULL;
}

void live_context_free(struct rbx_context *ctx)
{
  if (!ctx)
    return;
  for (size_t i = 0; i < LIVE_CONTEXTS_MAX; i++) {
    if (open_contexts[i] == ctx)
      open_contexts[i] = NULL;
  }
  rbx_context_free(ctx);
}

void live_on_done(struct rbx_exec *exec, const struct rbx_result *result,
                  const struct rbx_error *error, void *userdata)
{
  struct live_outcome *outcome = userdata;

  (void)exec;
  outcome->done = true;
  outcome->done_ms = live_now_ms();
  if (result) {
    rbx_result_move(&outcome->result, result);
  } else {
    outcome->failed = true;
    outcome->error = *error;
  }
}

void live_spawn(struct rbx_context *ctx, const struct rbx_spec *spec,
                struct live_outcome *outcome, struct rbx_exec **exec_out)
{
  struct rbx_error err = {0};
  int rc;

  memset(outcome, 0, sizeof(*outcome));
  outcome->spawn_ms = live_now_ms();
  rc = rbx_spawn(ctx, spec, live_on_done, outcome, exec_out, &err);
  if (rc < 0)
    fail_msg("rbx_spawn failed (%s, %d): %s", rbx_error_kind_name(err.kind),
             rc, err.message);
}

void live_outcome_clear(struct live_outcome *outcome)
{
  rbx_result_clear(&outcome->result);
}

void live_run_loop(struct rbx_context *ctx)
{
  int rc = rbx_run_loop(ctx);

  if (rc < 0)
    fail_msg("rbx_run_loop failed: %s", strerror(-rc));
}

void live_drive(struct rbx_context *ctx, uint64_t ms)
{
  uint64_t until = live_now_ms() + ms;
  struct pollfd pfd = {.fd = rbx_fd(ctx), .events = POLLIN};

  while (live_now_ms() < until) {
    int rc = rbx_process(ctx);

    if (rc < 0)
      fail_msg("rbx_process failed: %s", strerror(-rc));
    poll(&pfd, 1, 20);
  }
  rbx_process(ctx);
}

/* Prints up to max bytes of an output with control bytes escaped. */
static void print_output(const char *label, const struct rbx_output *out)
{
  size_t shown = out->len < 400 ? out->len : 400;

  print_message("  %s (%zu bytes, dropped %llu%s): \"", label, out->len,
                (unsigned long long)out->dropped,
                out->truncated ? ", truncated" : "");
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = out->data[i];

    if (c == '\n')
      print_message("\\n");
    else if (c < 0x20 || c >= 0x7f)
      print_message("\\x%02x", c);
    else
      print_message("%c", c);
  }
  print_message("%s\"\n", shown < out->len ? "..." : "");
}

static bool output_is(const struct rbx_output *out, const char *expected)
{
  size_t len = strlen(expected);

  return out->len == len && (len == 0 || memcmp(out->data, expected, len) == 0);
}

void live_assert_result(const struct live_outcome *outcome,
                        enum rbx_end end, int exit_code, const char *out,
                        const char *err)
{
  const struct rbx_result *r = &outcome->result;

  if (!outcome->done)
    fail_msg("the execution never finished");
  if (outcome->failed)
    fail_msg("the execution failed (%s, %d): %s",
             rbx_error_kind_name(outcome->error.kind), outcome->error.code,
             outcome->error.message);
  if (r->end != end || r->exit_code != exit_code ||
      (out && !output_is(&r->out, out)) || (err && !output_is(&r->err, err))) {
    print_message("unexpected result: end %s (expected %s), exit %d "
                  "(expected %d), container %.12s\n",
                  rbx_end_name(r->end), rbx_end_name(end), r->exit_code,
                  exit_code, r->id);
    print_output("stdout", &r->out);
    print_output("stderr", &r->err);
  }
  assert_string_equal(rbx_end_name(r->end), rbx_end_name(end));
  assert_int_equal(r->exit_code, exit_code);
  if (out) {
    assert_int_equal(r->out.len, strlen(out));
    assert_memory_equal(r->out.data, out, strlen(out));
  }
  if (err) {
    assert_int_equal(r->err.len, strlen(err));
    assert_memory_equal(r->err.data, err, strlen(err));
  }
}

/* ---- the Engine API client ---- */

static int connect_unix(const char *path)
{
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  struct timeval tv = {.tv_sec = LIVE_API_TIMEOUT_S};
  int fd;

  if (strlen(path) >= sizeof(addr.sun_path))
    return -ENAMETOOLONG;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  memcpy(addr.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    int rc = -errno;

    close(fd);
    return rc;
  }
  return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, buf, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads until the peer closes, which is where an HTTP/1.0 response ends. */
static int read_all(int fd, char **out, size_t *out_len)
{
  size_t cap = 64 * 1024, len = 0;
  char *buf = malloc(cap + 1);

  if (!buf)
    return -ENOMEM;
  for (;;) {
    ssize_t n;

    if (len == cap) {
      char *bigger;

      if (cap >= LIVE_API_BODY_MAX) {
        free(buf);
        return -E2BIG;
      }
      cap *= 2;
      bigger = realloc(buf, cap + 1);
      if (!bigger) {
        free(buf);
        return -ENOMEM;
      }
      buf = bigger;
    }
    n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int rc = errno == EAGAIN ? -ETIMEDOUT : -errno;

      free(buf);
      return rc;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  *out = buf;
  *out_len = len;
  return 0;
}

int live_api(const char *socket_path, const char *method, const char *target,
             cJSON **json)
{
  char request[1024];
  char *response = NULL;
  size_t response_len = 0;
  const char *body;
  int status = 0;
  int fd, rc, n;

  if (json)
    *json = NULL;
  n = snprintf(request, sizeof(request),
               "%s %s%s HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n",
               method, strcmp(target, "/_ping") == 0 ? "" : LIVE_API_PREFIX,
               target);
  if (n < 0 || (size_t)n >= sizeof(request))
    return -ENAMETOOLONG;
  fd = connect_unix(socket_path);
  if (fd < 0)
    return fd;
  rc = write_all(fd, request, (size_t)n);
  if (rc == 0)
    rc = read_all(fd, &response, &response_len);
  close(fd);
  if (rc < 0)
    return rc;
  if (sscanf(response, "HTTP/1.%*d %d", &status) != 1) {
    free(response);
    return -EPROTO;
  }
  body = strstr(response, "\r\n\r\n");
  if (json && body && body[4])
    *json = cJSON_Parse(body + 4);
  free(response);
  return status;
}

/* ---- objects left behind ---- */

static const char *label_of(const cJSON *labels, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(labels, key);

  return cJSON_IsString(item) ? item->valuestring : "";
}

static void fill_object(struct live_object *object, const cJSON *item,
                        bool network)
{
  const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "Labels");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
  const cJSON *names = cJSON_GetObjectItemCaseSensitive(item, "Names");
  const cJSON *name = network ? cJSON_GetObjectItemCaseSensitive(item, "Name")
                              : cJSON_GetArrayItem(names, 0);
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(item, "State");

  memset(object, 0, sizeof(*object));
  object->network = network;
  snprintf(object->id, sizeof(object->id), "%s",
           cJSON_IsString(id) ? id->valuestring : "");
  snprintf(object->name, sizeof(object->name), "%s",
           cJSON_IsString(name) ? name->valuestring : "");
  snprintf(object->role, sizeof(object->role), "%s",
           label_of(labels, "ringbox.role"));
  snprintf(object->state, sizeof(object->state), "%s",
           cJSON_IsString(state) ? state->valuestring : "");
  object->owner_pid = atoi(label_of(labels, "ringbox.owner"));
}

static int collect(const char *socket_path, const char *target, bool network,
                   int owner_pid, struct live_object *out, size_t max,
                   size_t *count)
{
  cJSON *list = NULL;
  const cJSON *item;
  int status = live_api(socket_path, "GET", target, &list);

  if (status < 0)
    return status;
  if (status != 200 || !cJSON_IsArray(list)) {
    cJSON_Delete(list);
    return -EPROTO;
  }
  cJSON_ArrayForEach(item, list)
  {
    struct live_object object;

    fill_object(&object, item, network);
    if (owner_pid && object.owner_pid != owner_pid)
      continue;
    if (*count < max)
      out[*count] = object;
    (*count)++;
  }
  cJSON_Delete(list);
  return 0;
}

int live_list_objects(const char *socket_path, int owner_pid,
                      bool with_networks, struct live_object *out,
                      size_t max)
{
  size_t count = 0;
  int rc = collect(socket_path, "/containers/json?all=1&" LIVE_LABEL_FILTER,
                   false, owner_pid, out, max, &count);

  if (rc == 0 && with_networks)
    rc = collect(socket_path, "/networks?" LIVE_LABEL_FILTER, true, owner_pid,
                 out, max, &count);
  return rc < 0 ? rc : (int)count;
}

void live_assert_nothing_left(const struct live_engine *engine, int owner_pid)
{
  struct live_object objects[32];
  int count = live_list_objects(engine->socket_path, owner_pid, true, objects,
                                32);
  int left = 0;

  if (count < 0)
    fail_msg("listing %s objects failed: %s", engine->name,
             strerror(-count));
  for (int i = 0; i < count && i < 32; i++) {
    if (strcmp(objects[i].role, "shared-proxy") == 0)
      continue;
    print_message("left on %s: %s %.12s %s role=%s state=%s\n", engine->name,
                  objects[i].network ? "network" : "container", objects[i].id,
                  objects[i].name, objects[i].role, objects[i].state);
    left++;
  }
  if (count > 32)
    left += count - 32;
  assert_int_equal(left, 0);
}

/* Removal order: sandboxes before the holders and proxies they depend on
 * (Podman rejects removing a container that others still join), and
 * networks last. */
static int removal_rank(const struct live_object *object)
{
  if (object->network)
    return 2;
  return strcmp(object->role, "sandbox") == 0 ? 0 : 1;
}

int live_remove_owned(const char *socket_path, int owner_pid)
{
  static struct live_object objects[1024];
  int count = live_list_objects(socket_path, owner_pid, true, objects, 1024);
  int removed = 0;

  for (int rank = 0; rank <= 2; rank++) {
    for (int i = 0; i < count && i < 1024; i++) {
      char *target;

      if (removal_rank(&objects[i]) != rank)
        continue;
      target = objects[i].network
                   ? live_strdupf("/networks/%s", objects[i].id)
                   : live_strdupf("/containers/%s?force=1&v=1",
                                  objects[i].id);
      if (live_api(socket_path, "DELETE", target, NULL) / 100 == 2)
        removed++;
      free(target);
    }
  }
  return removed;
}

/* ---- memory ---- */

long live_peak_rss_kib(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long kib = -1;

  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  }
  fclose(f);
  return kib;
}

int live_reset_peak_rss(void)
{
  int fd;
  int rc = 0;

  /* Free heap pages that stay resident would absorb a later allocation
   * without any growth of the peak, so they go back to the kernel first. */
  malloc_trim(0);
  fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (write(fd, "5", 1) != 1)
    rc = -errno;
  close(fd);
  return rc;
}

/* ---- the suite runner ---- */

static int teardown_test(void **state)
{
  struct live_engine *engine = *state;

  for (size_t i = 0; i < LIVE_CONTEXTS_MAX; i++) {
    if (open_contexts[i]) {
      rbx_context_free(open_contexts[i]);
      open_contexts[i] = NULL;
    }
  }
  if (engine->available)
    live_assert_nothing_left(engine, (int)getpid());
  return 0;
}

int live_run_cases(const char *group, const struct live_case *cases,
                   size_t cases_count, struct live_engine *engines,
                   size_t engines_count)
{
  size_t count = cases_count * engines_count;
  struct CMUnitTest *tests = calloc(count ? count : 1, sizeof(*tests));
  const char *filter = getenv("RBX_LIVE_FILTER");
  size_t n = 0;
  int failed;

  if (!tests) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (size_t e = 0; e < engines_count; e++) {
    for (size_t c = 0; c < cases_count; c++) {
      tests[n].name = live_strdupf("%s[%s]", cases[c].name, engines[e].name);
      tests[n].test_func = cases[c].fn;
      tests[n].teardown_func = teardown_test;
      tests[n].initial_state = &engines[e];
      n++;
    }
  }
  if (filter && *filter)
    cmocka_set_test_filter(filter);
  failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
  for (size_t i = 0; i < n; i++)
    free((char *)tests[i].name);
  free(tests);
  return failed;
}
