/* Limited network for the Engine API backend: per execution an internal
 * network with no way out, and an egress proxy container attached to it and
 * to the egress network (one proxy per execution, or a shared named one). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/docker.h"
#include "engine/error.h"

/* From the attach to the proxy's output to the line saying it listens. */
#define NET_PROXY_READY_TIMEOUT_MS 20000
/* The proxy prints a line containing this once its socket listens. */
#define NET_PROXY_READY_TEXT "listening"
/* Proxy output kept while waiting: searched for the ready text and quoted
 * when the proxy exits first. */
#define NET_PROXY_OUTPUT_MAX 2048
#define NET_RECV_BUF 2048
#define NET_PROXY_MEMORY_BYTES (64 * 1024 * 1024)
#define NET_PROXY_PIDS_LIMIT 64
#define NET_PROXY_USER "65534:65534"
/* Entries of PROXY_ALLOW_HOSTS; the proxy reads at most 256. */
#define NET_ALLOW_HOSTS_MAX 256
/* Lookups of a shared proxy after its create failed with 409 (another
 * client created it first, or removed it again in between). */
#define NET_SHARED_ATTEMPTS_MAX 3
/* Podman 4 and 5 serve the libpod API under this version. */
#define NET_LIBPOD_PREFIX "/v4.0.0/libpod"
/* Container and network names from the policy are at most 255 bytes. */
#define NET_TARGET_MAX 600

/* A shared proxy that executions of this context use. The first execution
 * that needs it prepares it (looks it up, creates or starts it, waits until
 * it listens) while the others wait, so that they do not race each other
 * to create it. Freed when its last execution is torn down. */
struct docker_net_shared {
  struct docker_net_shared *next; /* be->shared_proxies */
  char name[256];
  unsigned users;
  bool ready;              /* it listened once for an execution */
  struct docker_net *busy; /* the execution preparing it, or NULL */
  struct docker_net *waiters;
};

struct docker_net {
  struct docker_backend *be;
  /* ready during set-up, then gone during teardown. */
  docker_net_fn done;
  void *done_data;
  uint64_t start_ms;
  char network[96];
  char proxy[256]; /* container name */
  char proxy_id[72];
  char proxy_url[96];
  char *allow_hosts; /* normalized list: lower case, sorted, unique */
  char *proxy_image;
  char *egress_network;
  uint16_t proxy_port;
  uint64_t timeout_ms;
  bool shared;
  unsigned shared_attempts;
  struct docker_net_shared *entry;
  struct docker_net *next_waiter;
  struct eng_op wake_op;
  /* Objects that may exist, which teardown removes or disconnects. */
  bool network_requested;
  bool proxy_requested;
  bool connect_requested;
  struct http_call *call;
  /* The wait for the proxy to listen: attach, start, output, timer. */
  bool needs_start;
  bool start_done;
  bool listening;
  bool output_eof;
  bool watch_stopping;
  bool in_check;
  bool check_again;
  int output_fd;
  struct eng_op recv_op;
  struct eng_op timer_op;
  size_t output_len;
  char output[NET_PROXY_OUTPUT_MAX + 1];
  uint8_t recv_buf[NET_RECV_BUF];
  bool failed;
  struct rbx_error err;
  /* Teardown: the endpoints still on the network, disconnected one by
   * one before the single retry of its removal. */
  cJSON *endpoints;
  const cJSON *endpoint;
  bool delete_retried;
};

static void send_proxy_create(struct docker_net *net);
static void send_proxy_lookup(struct docker_net *net);
static void check_watch(struct docker_net *net);

/* ---- small helpers ---- */

static int compare_strings(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes hosts as one comma-separated list in lower case, sorted and
 * without duplicates, so that two lists with the same entries compare
 * equal. Changes the strings and their order; *out is malloc'ed. */
static int join_hosts(char **hosts, size_t count, char **out,
                      struct rbx_error *err)
{
  size_t total = 1;
  size_t used = 0;
  char *text;

  for (size_t i = 0; i < count; i++) {
    for (char *p = hosts[i]; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    total += strlen(hosts[i]) + 1;
  }
  qsort(hosts, count, sizeof(*hosts), compare_strings);
  text = malloc(total);
  if (!text)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  text[0] = '\0';
  for (size_t i = 0; i < count; i++) {
    if (i > 0 && strcmp(hosts[i], hosts[i - 1]) == 0)
      continue;
    used += (size_t)snprintf(text + used, total - used, "%s%s", used ? "," : "",
                             hosts[i]);
  }
  *out = text;
  return 0;
}

/* Splits a comma-separated list (blanks around entries ignored) and joins
 * it again with join_hosts. Returns -E2BIG past NET_ALLOW_HOSTS_MAX. */
static int normalize_host_list(const char *list, char **out,
                               struct rbx_error *err)
{
  char *copy = strdup(list);
  char *hosts[NET_ALLOW_HOSTS_MAX];
  size_t count = 0;
  char *save = NULL;
  int rc;

  if (!copy)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  for (char *item = strtok_r(copy, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    size_t len;

    while (*item == ' ' || *item == '\t')
      item++;
    len = strlen(item);
    while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
      item[--len] = '\0';
    if (!len)
      continue;
    if (count == NET_ALLOW_HOSTS_MAX) {
      free(copy);
      return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                         "more than %d allowed hosts", NET_ALLOW_HOSTS_MAX);
    }
    hosts[count++] = item;
  }
  rc = join_hosts(hosts, count, out, err);
  free(copy);
  return rc;
}

static int policy_hosts(const struct rbx_policy *policy, char **out,
                        struct rbx_error *err)
{
  char **hosts;
  int rc = 0;

  if (policy->allow_hosts_count > NET_ALLOW_HOSTS_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "network limited: %zu allowed hosts are more than "
                       "the proxy's maximum of %d; allow a wildcard such "
                       "as *.example.com instead",
                       policy->allow_hosts_count, NET_ALLOW_HOSTS_MAX);
  hosts = calloc(policy->allow_hosts_count + 1, sizeof(*hosts));
  if (!hosts)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  for (size_t i = 0; i < policy->allow_hosts_count && rc == 0; i++) {
    hosts[i] = strdup(policy->allow_hosts[i]);
    if (!hosts[i])
      rc = rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  }
  if (rc == 0)
    rc = join_hosts(hosts, policy->allow_hosts_count, out, err);
  for (size_t i = 0; i < policy->allow_hosts_count; i++)
    free(hosts[i]);
  free(hosts);
  return rc;
}

static const char *json_string(const cJSON *object, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

  return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Copies the Id (Docker) or id (libpod) of a create response into out.
 * Returns false when it is missing or not a hex string that fits. */
static bool read_id(const struct http_response *resp, char *out, size_t size)
{
  cJSON *json = cJSON_ParseWithLength(resp->body, resp->body_len);
  const char *id = json_string(json, "Id");
  bool ok;

  if (!id)
    id = json_string(json, "id");
  ok = id && id[0] && strlen(id) < size &&
       strspn(id, "0123456789abcdef") == strlen(id);
  if (ok)
    snprintf(out, size, "%s", id);
  cJSON_Delete(json);
  return ok;
}

/* Returns an environment entry's value from a Config.Env array, or NULL. */
static const char *env_value(const cJSON *env, const char *name)
{
  const cJSON *entry;
  size_t len = strlen(name);

  cJSON_ArrayForEach(entry, env)
  {
    if (cJSON_IsString(entry) && strncmp(entry->valuestring, name, len) == 0 &&
        entry->valuestring[len] == '=')
      return entry->valuestring + len + 1;
  }
  return NULL;
}

/* Tells whether a Docker version's embedded DNS server forwards queries
 * from containers on internal networks to the host's resolvers when those
 * listen on a loopback address (CVE-2024-29018, GHSA-mq39-4gv4-mvpx). The
 * release notes of 23.0.11, 25.0.5 and 26.0.0 list the fix (moby/moby pull
 * request 47589). An unreadable version counts as affected. */
static bool docker_forwards_internal_dns(const char *version)
{
  unsigned major, minor, patch;

  if (sscanf(version, "%u.%u.%u", &major, &minor, &patch) != 3)
    return true;
  if (major >= 26)
    return false;
  if (major == 25)
    return minor == 0 && patch < 5;
  if (major == 23)
    return minor == 0 && patch < 11;
  return true;
}

/* Logs what the engine means for network limited, once per context, and
 * notes whether Docker's default seccomp profile rejects io_uring. */
static void check_engine(struct docker_backend *be)
{
  unsigned major = 0;

  if (be->net_engine_checked)
    return;
  be->net_engine_checked = true;
  if (!be->quirks.podman && sscanf(be->engine_version, "%u.", &major) == 1 &&
      major >= 25)
    be->quirks.seccomp_blocks_io_uring = true;
  if (be->quirks.seccomp_blocks_io_uring)
    rbx_log(&be->ctx->log, RBX_LOG_INFO,
            "network limited engine=%s version=%s: the default seccomp "
            "profile rejects io_uring, so proxies run without seccomp",
            be->engine_name, be->engine_version);
  if (be->quirks.libpod_internal_network) {
    rbx_log(&be->ctx->log, RBX_LOG_INFO,
            "network limited engine=%s version=%s: internal networks are "
            "created without a DNS server",
            be->engine_name, be->engine_version);
    return;
  }
  if (docker_forwards_internal_dns(be->engine_version)) {
    rbx_log(&be->ctx->log, RBX_LOG_WARN,
            "network limited engine=%s version=%s: this version forwards "
            "DNS queries from internal networks to the host's resolver when "
            "that listens on a loopback address (CVE-2024-29018), so a "
            "sandbox could send data out through name lookups; upgrade to "
            "23.0.11, 25.0.5, 26.0.0 or later",
            be->engine_name, be->engine_version);
    return;
  }
  rbx_log(&be->ctx->log, RBX_LOG_INFO, "network limited engine=%s version=%s",
          be->engine_name, be->engine_version);
}

/* Sends a request to Podman's libpod API, which is served under its own
 * version prefix instead of the Engine API's. Takes and frees body. */
static struct http_call *libpod_request(struct docker_backend *be,
                                        const char *method, const char *target,
                                        cJSON *body, http_done_fn done,
                                        void *data, struct rbx_error *err)
{
  char full[NET_TARGET_MAX];
  struct http_request req = {0};
  char *text = cJSON_PrintUnformatted(body);
  struct http_call *call;

  cJSON_Delete(body);
  if (!text) {
    rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
    return NULL;
  }
  snprintf(full, sizeof(full), "%s%s", NET_LIBPOD_PREFIX, target);
  req.method = method;
  req.target = full;
  req.body = text;
  req.body_len = strlen(text);
  req.content_type = "application/json";
  req.timeout_ms = DOCKER_REQUEST_TIMEOUT_MS;
  call = http_request(be->http, &req, done, data, err);
  free(text);
  return call;
}

/* Requests name the network, never its ID: Podman 4.3 removes a network
 * given by ID even while containers are still attached to it (given by
 * name it rejects that with 500), which breaks those containers. The name
 * is unique. */
static const char *network_ref(const struct docker_net *net)
{
  return net->network;
}

static const char *proxy_ref(const struct docker_net *net)
{
  return net->proxy_id[0] ? net->proxy_id : net->proxy;
}

/* ---- shared proxies of this context ---- */

static void shared_detach(struct docker_net *net)
{
  struct docker_net_shared *entry = net->entry;
  struct docker_net_shared **link = &net->be->shared_proxies;

  if (!entry || --entry->users > 0)
    return;
  while (*link && *link != entry)
    link = &(*link)->next;
  if (*link)
    *link = entry->next;
  free(entry);
}

static struct docker_net_shared *shared_entry(struct docker_net *net)
{
  struct docker_net_shared *entry = net->be->shared_proxies;

  while (entry && strcmp(entry->name, net->proxy) != 0)
    entry = entry->next;
  if (!entry) {
    entry = calloc(1, sizeof(*entry));
    if (!entry)
      return NULL;
    snprintf(entry->name, sizeof(entry->name), "%s", net->proxy);
    entry->next = net->be->shared_proxies;
    net->be->shared_proxies = entry;
  }
  entry->users++;
  return entry;
}

/* Goes on with the shared proxy, or waits while another execution of this
 * context prepares it. */
static void shared_acquire(struct docker_net *net)
{
  struct docker_net_shared *entry = net->entry;

  if (!entry->ready && entry->busy && entry->busy != net) {
    struct docker_net **link = &entry->waiters;

    while (*link)
      link = &(*link)->next_waiter;
    net->next_waiter = NULL;
    *link = net;
    return;
  }
  if (!entry->ready)
    entry->busy = net;
  send_proxy_lookup(net);
}

static void on_wake(struct eng_op *op, int res)
{
  (void)res;
  shared_acquire(op->data);
}

/* Ends this execution's preparation of the shared proxy. After a success
 * the other executions no longer wait for their turn. Either way the
 * waiting ones go on, from the next turn of the loop. */
static void shared_release(struct docker_net *net, bool ready)
{
  struct docker_net_shared *entry = net->entry;
  struct docker_net *waiter;

  if (!entry || entry->busy != net)
    return;
  entry->busy = NULL;
  entry->ready = ready;
  waiter = entry->waiters;
  entry->waiters = NULL;
  while (waiter) {
    struct docker_net *next = waiter->next_waiter;

    eng_defer(&waiter->wake_op);
    waiter = next;
  }
}

static void net_free(struct docker_net *net)
{
  shared_detach(net);
  cJSON_Delete(net->endpoints);
  free(net->allow_hosts);
  free(net->proxy_image);
  free(net->egress_network);
  free(net);
}

/* ---- set-up ---- */

static void fail(struct docker_net *net, const struct rbx_error *err)
{
  if (!net->failed) {
    net->failed = true;
    net->err = *err;
  }
}

static void fail_response(struct docker_net *net,
                          const struct http_response *resp, const char *what)
{
  struct rbx_error err;

  docker_error_from_response(net->be, resp, what, &err);
  fail(net, &err);
}

/* Ends set-up: calls ready once, as the last use of net, because the
 * caller may tear it down from inside the callback. */
static void report(struct docker_net *net)
{
  docker_net_fn ready = net->done;
  void *data = net->done_data;
  struct rbx_error err = net->err;
  bool failed = net->failed;

  shared_release(net, !failed);
  if (failed) {
    rbx_err_prefix(&err, "network limited");
    rbx_log(&net->be->ctx->log, RBX_LOG_INFO,
            "network limited set-up failed network=%s proxy=%s error=%s",
            net->network, net->proxy, err.message);
  } else {
    rbx_log(&net->be->ctx->log, RBX_LOG_INFO,
            "network limited ready network=%s proxy=%s proxy_url=%s "
            "elapsed_ms=%" PRIu64,
            net->network, net->proxy, net->proxy_url,
            eng_now_ms() - net->start_ms);
  }
  ready(data, failed ? &err : NULL);
}

/* Reports a failure of a step that had nothing else in flight. */
static void fail_now(struct docker_net *net, const struct rbx_error *err)
{
  fail(net, err);
  report(net);
}

static void on_inspected(struct http_call *call, struct http_response *resp,
                         const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  cJSON *json;
  const cJSON *networks, *endpoint;
  const char *ip;

  (void)call;
  net->call = NULL;
  if (err) {
    fail_now(net, err);
    return;
  }
  if (resp->status != 200) {
    fail_response(net, resp, "inspect proxy container");
    report(net);
    return;
  }
  json = cJSON_ParseWithLength(resp->body, resp->body_len);
  networks = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(json, "NetworkSettings"), "Networks");
  endpoint = cJSON_GetObjectItemCaseSensitive(networks, net->network);
  ip = json_string(endpoint, "IPAddress");
  if (!ip || !ip[0] || strlen(ip) > 45) {
    struct rbx_error ierr;

    rbx_err_set(&ierr, RBX_ERR_DAEMON, -EPROTO,
                "proxy container %s has no address on network %s after "
                "start; inspect the container",
                net->proxy, net->network);
    cJSON_Delete(json);
    fail_now(net, &ierr);
    return;
  }
  snprintf(net->proxy_url, sizeof(net->proxy_url), "http://%s:%u", ip,
           (unsigned)net->proxy_port);
  cJSON_Delete(json);
  report(net);
}

/* Reads the proxy's address from inspect. The sandbox reaches the proxy by
 * IP, so the sandbox needs no name lookups at all. */
static void send_inspect(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s/json", proxy_ref(net));
  net->call =
      docker_request(net->be, "GET", target, NULL, on_inspected, net, &err);
  if (!net->call)
    fail_now(net, &err);
}

/* ---- waiting for the proxy to listen ---- */

static bool watch_idle(const struct docker_net *net)
{
  return !net->call && !net->recv_op.in_flight && !net->timer_op.in_flight &&
         net->output_fd < 0;
}

static void stop_watch(struct docker_net *net)
{
  if (!net->watch_stopping) {
    net->watch_stopping = true;
    if (net->timer_op.in_flight)
      eng_cancel(&net->timer_op);
    if (net->recv_op.in_flight)
      eng_cancel(&net->recv_op);
    if (net->call && net->failed)
      http_call_cancel(net->call);
  }
  if (net->output_fd >= 0 && !net->recv_op.in_flight) {
    close(net->output_fd);
    net->output_fd = -1;
  }
}

/* Tells whether the ready text is in buf, or straddles the end of the
 * output kept so far and the start of buf. */
static bool ready_text_in(const struct docker_net *net, const uint8_t *buf,
                          size_t len)
{
  const size_t text_len = strlen(NET_PROXY_READY_TEXT);
  char joint[2 * sizeof(NET_PROXY_READY_TEXT)];
  size_t tail = net->output_len < text_len - 1 ? net->output_len : text_len - 1;
  size_t head = len < text_len - 1 ? len : text_len - 1;

  if (memmem(buf, len, NET_PROXY_READY_TEXT, text_len))
    return true;
  memcpy(joint, net->output + net->output_len - tail, tail);
  memcpy(joint + tail, buf, head);
  return memmem(joint, tail + head, NET_PROXY_READY_TEXT, text_len) != NULL;
}

/* Looks for the ready text in new proxy output, then keeps the newest
 * NET_PROXY_OUTPUT_MAX bytes of the output for messages. */
static void keep_output(struct docker_net *net, const uint8_t *buf, size_t len)
{
  if (ready_text_in(net, buf, len))
    net->listening = true;
  if (len > NET_PROXY_OUTPUT_MAX) {
    buf += len - NET_PROXY_OUTPUT_MAX;
    len = NET_PROXY_OUTPUT_MAX;
  }
  if (net->output_len + len > NET_PROXY_OUTPUT_MAX) {
    size_t drop = net->output_len + len - NET_PROXY_OUTPUT_MAX;

    memmove(net->output, net->output + drop, net->output_len - drop);
    net->output_len -= drop;
  }
  memcpy(net->output + net->output_len, buf, len);
  net->output_len += len;
  net->output[net->output_len] = '\0';
}

/* The proxy's output as one line for a message: line breaks and other
 * control bytes become spaces. */
static void output_for_message(const struct docker_net *net, char *out,
                               size_t size)
{
  size_t n = 0;

  for (size_t i = 0; i < net->output_len && n + 1 < size; i++) {
    unsigned char c = (unsigned char)net->output[i];

    out[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
  }
  out[n] = '\0';
  if (n == 0)
    snprintf(out, size, "(no output)");
}

static void on_output(struct eng_op *op, int res)
{
  struct docker_net *net = op->data;

  if (res > 0 && !net->failed && !net->listening) {
    keep_output(net, net->recv_buf, (size_t)res);
    if (!net->listening) {
      eng_recv(&net->recv_op, net->output_fd, net->recv_buf, NET_RECV_BUF);
      return;
    }
  } else if (res <= 0 && res != -ECANCELED && !net->listening) {
    net->output_eof = true;
  }
  check_watch(net);
}

static void on_ready_timer(struct eng_op *op, int res)
{
  struct docker_net *net = op->data;

  if (res == -ETIME && !net->listening) {
    struct rbx_error err;
    char output[NET_PROXY_OUTPUT_MAX + 1];

    output_for_message(net, output, sizeof(output));
    rbx_err_set(&err, RBX_ERR_TIMEOUT, -ETIMEDOUT,
                "proxy container %s did not print \"%s\" within %d ms; its "
                "output: %.300s",
                net->proxy, NET_PROXY_READY_TEXT, NET_PROXY_READY_TIMEOUT_MS,
                output);
    fail(net, &err);
  }
  check_watch(net);
}

/* Moves the wait on once both pieces have arrived: the ready line in the
 * proxy's output and the response to start. Returns true when the wait is
 * over and net was handed on (to inspect, or back to the caller, which may
 * free it). */
static bool check_watch_once(struct docker_net *net)
{
  if (!net->failed && net->output_eof && !net->listening) {
    struct rbx_error err;
    char output[NET_PROXY_OUTPUT_MAX + 1];

    output_for_message(net, output, sizeof(output));
    /* A proxy that printed nothing usually never ran: the engine could not
     * attach its egress network, e.g. one that does not exist. */
    if (net->output_len == 0)
      rbx_err_set(&err, RBX_ERR_UNAVAILABLE, -EPIPE,
                  "proxy container %s (image %s) stopped before it was "
                  "listening, with no output; check that the egress network "
                  "'%s' exists",
                  net->proxy, net->proxy_image, net->egress_network);
    else
      rbx_err_set(&err, RBX_ERR_UNAVAILABLE, -EPIPE,
                  "proxy container %s (image %s) stopped before it was "
                  "listening; its output: %.300s",
                  net->proxy, net->proxy_image, output);
    fail(net, &err);
  }
  if (!net->failed && !(net->listening && net->start_done))
    return false;
  stop_watch(net);
  if (!watch_idle(net))
    return false;
  net->in_check = false;
  if (net->failed)
    report(net);
  else
    send_inspect(net);
  return true;
}

/* Callbacks that run inside check_watch (a cancelled call reports at once)
 * only mark it to run again. */
static void check_watch(struct docker_net *net)
{
  if (net->in_check) {
    net->check_again = true;
    return;
  }
  net->in_check = true;
  do {
    net->check_again = false;
    if (check_watch_once(net))
      return;
  } while (net->check_again);
  net->in_check = false;
}

static void on_started(struct http_call *call, struct http_response *resp,
                       const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;

  (void)call;
  net->call = NULL;
  if (err)
    fail(net, err);
  else if (resp->status == 204 || resp->status == 304)
    net->start_done = true;
  else
    fail_response(net, resp, "start proxy container");
  check_watch(net);
}

static void send_start(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s/start", proxy_ref(net));
  net->call =
      docker_request(net->be, "POST", target, NULL, on_started, net, &err);
  if (!net->call)
    fail(net, &err);
}

static void on_attached(struct http_call *call, struct http_response *resp,
                        const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  struct rbx_error aerr;

  (void)call;
  net->call = NULL;
  if (err) {
    fail(net, err);
  } else if (resp->fd < 0) {
    if (resp->status < 300)
      rbx_err_set(&aerr, RBX_ERR_IO, -EPROTO,
                  "attach to proxy container %s: answer %d is not a stream",
                  net->proxy, resp->status);
    else
      docker_error_from_response(net->be, resp, "attach to proxy container",
                                 &aerr);
    fail(net, &aerr);
  } else {
    net->output_fd = resp->fd;
    if (resp->extra_len)
      keep_output(net, resp->extra, resp->extra_len);
    if (!net->listening)
      eng_recv(&net->recv_op, net->output_fd, net->recv_buf, NET_RECV_BUF);
    if (net->needs_start)
      send_start(net);
    else
      net->start_done = true;
  }
  check_watch(net);
}

/* Attaches to the proxy's output (with what it printed so far, for a shared
 * proxy that already runs), starts it when needed, and waits for the ready
 * line. The proxy runs with a TTY, so the stream is plain text without
 * frame headers.
 * NOTE: a shared proxy that was stopped and is started again still has the
 * ready line of its previous run in its log, so the wait may end a few
 * milliseconds before the new process listens. */
static void start_watch(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  char full[NET_TARGET_MAX + 32];
  struct http_request req = {0};
  struct rbx_error err;

  snprintf(target, sizeof(target),
           "/containers/%s/attach?logs=1&stream=1&stdin=0&stdout=1&stderr=1",
           proxy_ref(net));
  snprintf(full, sizeof(full), "%s%s", net->be->api_prefix, target);
  req.method = "POST";
  req.target = full;
  req.hijack = true;
  req.timeout_ms = DOCKER_REQUEST_TIMEOUT_MS;
  eng_timer(&net->timer_op, NET_PROXY_READY_TIMEOUT_MS);
  net->call = http_request(net->be->http, &req, on_attached, net, &err);
  if (!net->call)
    fail(net, &err);
  check_watch(net);
}

static void on_connected(struct http_call *call, struct http_response *resp,
                         const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;

  (void)call;
  net->call = NULL;
  if (err) {
    fail_now(net, err);
    return;
  }
  if (resp->status != 200) {
    fail_response(net, resp, "connect proxy container to network");
    report(net);
    return;
  }
  start_watch(net);
}

static void send_connect(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  cJSON *body = cJSON_CreateObject();
  struct rbx_error err;

  cJSON_AddStringToObject(body, "Container", proxy_ref(net));
  snprintf(target, sizeof(target), "/networks/%s/connect", network_ref(net));
  net->connect_requested = true;
  net->call =
      docker_request(net->be, "POST", target, body, on_connected, net, &err);
  if (!net->call)
    fail_now(net, &err);
}

/* Checks that an existing container named like the shared proxy is one,
 * with the same allowlist and port, and notes whether it must be started.
 * Returns 0 or a negative code with err filled (RBX_ERR_POLICY). */
static int check_shared(struct docker_net *net, const cJSON *json,
                        struct rbx_error *err)
{
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(json, "Config");
  const cJSON *labels = cJSON_GetObjectItemCaseSensitive(config, "Labels");
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(config, "Env");
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(json, "State");
  const char *role = json_string(labels, DOCKER_LABEL_ROLE);
  const char *hosts = env_value(env, "PROXY_ALLOW_HOSTS");
  const char *listen = env_value(env, "PROXY_LISTEN");
  const char *port = listen ? strrchr(listen, ':') : NULL;
  const char *id = json_string(json, "Id");
  char *normalized = NULL;
  struct rbx_error nerr;
  bool same;

  if (!role || strcmp(role, "shared-proxy") != 0)
    return rbx_err_set(err, RBX_ERR_POLICY, -EEXIST,
                       "container %s exists but is not a ringbox shared "
                       "proxy (label %s=shared-proxy missing); choose "
                       "another proxy_name",
                       net->proxy, DOCKER_LABEL_ROLE);
  if (!id || strlen(id) >= sizeof(net->proxy_id))
    return rbx_err_set(err, RBX_ERR_IO, -EPROTO,
                       "inspect shared proxy %s: answer has no valid Id",
                       net->proxy);
  same = hosts && normalize_host_list(hosts, &normalized, &nerr) == 0 &&
         strcmp(normalized, net->allow_hosts) == 0;
  free(normalized);
  /* A shared proxy's allowlist is fixed when it is created: it serves
   * every execution that names it. */
  if (!same)
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "shared proxy %s allows hosts \"%.150s\" but this "
                       "execution allows \"%.150s\"; the allowlist of a "
                       "shared proxy is fixed when it is created: use the "
                       "same hosts, another proxy_name, or remove the "
                       "container",
                       net->proxy, hosts ? hosts : "", net->allow_hosts);
  if (!port || strtoul(port + 1, NULL, 10) != net->proxy_port)
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "shared proxy %s listens on \"%s\" but this execution "
                       "asks for port %u; use the same proxy_port or another "
                       "proxy_name",
                       net->proxy, listen ? listen : "", net->proxy_port);
  snprintf(net->proxy_id, sizeof(net->proxy_id), "%s", id);
  net->needs_start =
      !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running"));
  return 0;
}

static void on_proxy_lookup(struct http_call *call, struct http_response *resp,
                            const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  struct rbx_error cerr;
  cJSON *json;
  int rc;

  (void)call;
  net->call = NULL;
  if (err) {
    fail_now(net, err);
    return;
  }
  if (resp->status == 404 && net->entry->busy != net) {
    /* Removed since it last listened: prepare it again, one at a time. */
    net->entry->ready = false;
    shared_acquire(net);
    return;
  }
  if (resp->status == 404) {
    send_proxy_create(net);
    return;
  }
  if (resp->status != 200) {
    fail_response(net, resp, "inspect shared proxy");
    report(net);
    return;
  }
  json = cJSON_ParseWithLength(resp->body, resp->body_len);
  rc = check_shared(net, json, &cerr);
  cJSON_Delete(json);
  if (rc < 0) {
    fail_now(net, &cerr);
    return;
  }
  send_connect(net);
}

static void send_proxy_lookup(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s/json", net->proxy);
  net->call =
      docker_request(net->be, "GET", target, NULL, on_proxy_lookup, net, &err);
  if (!net->call)
    fail_now(net, &err);
}

static void on_proxy_created(struct http_call *call, struct http_response *resp,
                             const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  struct rbx_error cerr;

  (void)call;
  net->call = NULL;
  if (err) {
    fail_now(net, err);
    return;
  }
  /* Another client created the shared proxy first: use theirs. Podman
   * returns 500 for a name already in use.
   * NOTE: Docker reserves the name before the container can be inspected,
   * so a lookup right after the 409 may still find nothing. After
   * NET_SHARED_ATTEMPTS_MAX tries the execution fails. Executions of one
   * context never race like this, because they wait for each other. */
  if ((resp->status == 409 ||
       (resp->status == 500 && net->be->quirks.conflict_as_500)) &&
      net->shared && ++net->shared_attempts < NET_SHARED_ATTEMPTS_MAX) {
    send_proxy_lookup(net);
    return;
  }
  if (resp->status == 404) {
    docker_error_from_response(net->be, resp, "create proxy container", &cerr);
    snprintf(cerr.message + strlen(cerr.message),
             sizeof(cerr.message) - strlen(cerr.message),
             "; nothing is pulled: build the proxy image "
             "(scripts/build-images) or set proxy_image");
    fail_now(net, &cerr);
    return;
  }
  if (resp->status != 201) {
    fail_response(net, resp, "create proxy container");
    report(net);
    return;
  }
  if (!read_id(resp, net->proxy_id, sizeof(net->proxy_id))) {
    rbx_err_set(&cerr, RBX_ERR_IO, -EPROTO,
                "create proxy container: answer has no valid Id: %.100s",
                resp->body ? resp->body : "");
    fail_now(net, &cerr);
    return;
  }
  net->needs_start = true;
  send_connect(net);
}

static cJSON *proxy_host_config(const struct docker_net *net)
{
  cJSON *hc = cJSON_CreateObject();
  cJSON *drop = cJSON_AddArrayToObject(hc, "CapDrop");
  cJSON *opts = cJSON_AddArrayToObject(hc, "SecurityOpt");
  cJSON *log = cJSON_AddObjectToObject(hc, "LogConfig");
  cJSON *log_options = cJSON_AddObjectToObject(log, "Config");

  cJSON_AddStringToObject(hc, "NetworkMode", net->egress_network);
  /* The proxy's decisions stay readable with `docker logs`, in bounded
   * files. Podman ignores the size options. */
  cJSON_AddStringToObject(log, "Type", "json-file");
  cJSON_AddStringToObject(log_options, "max-size", "1m");
  cJSON_AddStringToObject(log_options, "max-file", "2");
  cJSON_AddBoolToObject(hc, "ReadonlyRootfs", true);
  cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
  cJSON_AddItemToArray(opts, cJSON_CreateString("no-new-privileges"));
  /* The proxy is built on io_uring. Where the default profile rejects it,
   * the proxy runs without seccomp but keeps the rest of its confinement:
   * no capabilities, no new privileges, user 65534, read-only root, memory
   * and PID limits. */
  if (net->be->quirks.seccomp_blocks_io_uring)
    cJSON_AddItemToArray(opts, cJSON_CreateString("seccomp=unconfined"));
  cJSON_AddNumberToObject(hc, "Memory", NET_PROXY_MEMORY_BYTES);
  cJSON_AddNumberToObject(hc, "MemorySwap", NET_PROXY_MEMORY_BYTES);
  cJSON_AddNumberToObject(hc, "PidsLimit", NET_PROXY_PIDS_LIMIT);
  return hc;
}

static cJSON *proxy_config(const struct docker_net *net)
{
  size_t hosts_size = strlen(net->allow_hosts) + sizeof("PROXY_ALLOW_HOSTS=");
  char *hosts_entry = malloc(hosts_size);
  cJSON *config, *env, *labels;
  char listen_entry[64];

  if (!hosts_entry)
    return NULL;
  config = cJSON_CreateObject();
  env = cJSON_AddArrayToObject(config, "Env");
  snprintf(hosts_entry, hosts_size, "PROXY_ALLOW_HOSTS=%s", net->allow_hosts);
  cJSON_AddItemToArray(env, cJSON_CreateString(hosts_entry));
  free(hosts_entry);
  snprintf(listen_entry, sizeof(listen_entry), "PROXY_LISTEN=0.0.0.0:%u",
           (unsigned)net->proxy_port);
  cJSON_AddItemToArray(env, cJSON_CreateString(listen_entry));
  if (net->shared) {
    /* No owner: the sweep keeps shared proxies for other executions. */
    labels = docker_labels(net->be, "shared-proxy", 0);
    cJSON_DeleteItemFromObjectCaseSensitive(labels, DOCKER_LABEL_OWNER);
  } else {
    labels = docker_labels(net->be, "proxy", net->timeout_ms);
  }
  cJSON_AddStringToObject(config, "Image", net->proxy_image);
  cJSON_AddStringToObject(config, "User", NET_PROXY_USER);
  /* A TTY makes the attach stream plain text (stderr merged in, no frame
   * headers), which is searched for the ready line. Podman 4.3 also sends
   * wrong frame lengths when it replays the output of a running container,
   * which a TTY avoids. */
  cJSON_AddBoolToObject(config, "Tty", true);
  cJSON_AddItemToObject(config, "Labels", labels);
  cJSON_AddItemToObject(config, "HostConfig", proxy_host_config(net));
  return config;
}

static void send_proxy_create(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  cJSON *body = proxy_config(net);
  struct rbx_error err;

  if (!body) {
    rbx_err_set(&err, RBX_ERR_IO, -ENOMEM, "out of memory");
    fail_now(net, &err);
    return;
  }
  snprintf(target, sizeof(target), "/containers/create?name=%s", net->proxy);
  net->proxy_requested = true;
  net->call = docker_request(net->be, "POST", target, body, on_proxy_created,
                             net, &err);
  if (!net->call)
    fail_now(net, &err);
}

static void on_network_created(struct http_call *call,
                               struct http_response *resp,
                               const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  struct rbx_error cerr;
  char id[72];

  (void)call;
  net->call = NULL;
  if (err) {
    fail_now(net, err);
    return;
  }
  if (resp->status != 201 && resp->status != 200) {
    fail_response(net, resp, "create network");
    report(net);
    return;
  }
  if (!read_id(resp, id, sizeof(id))) {
    rbx_err_set(&cerr, RBX_ERR_IO, -EPROTO,
                "create network: answer has no valid Id: %.100s",
                resp->body ? resp->body : "");
    fail_now(net, &cerr);
    return;
  }
  rbx_log(&net->be->ctx->log, RBX_LOG_DEBUG,
          "network limited: created network=%s id=%.12s", net->network, id);
  if (!net->shared) {
    send_proxy_create(net);
    return;
  }
  net->entry = shared_entry(net);
  if (!net->entry) {
    rbx_err_set(&cerr, RBX_ERR_IO, -ENOMEM, "out of memory");
    fail_now(net, &cerr);
    return;
  }
  shared_acquire(net);
}

/* Creates the internal network: no route out, and no address of the host
 * on it. For Docker, inhibit_ipv4 leaves the bridge without an IPv4
 * address, because through that address a sandbox could reach every host
 * service that listens on all addresses. On Podman the libpod endpoint
 * turns DNS off, and an internal network without DNS gets no gateway
 * address either. */
static void send_network_create(struct docker_net *net)
{
  cJSON *body = cJSON_CreateObject();
  cJSON *labels = docker_labels(net->be, "network", net->timeout_ms);
  struct rbx_error err;

  net->network_requested = true;
  if (net->be->quirks.libpod_internal_network) {
    cJSON_AddStringToObject(body, "name", net->network);
    cJSON_AddStringToObject(body, "driver", "bridge");
    cJSON_AddBoolToObject(body, "internal", true);
    cJSON_AddBoolToObject(body, "dns_enabled", false);
    cJSON_AddItemToObject(body, "labels", labels);
    net->call = libpod_request(net->be, "POST", "/networks/create", body,
                               on_network_created, net, &err);
  } else {
    cJSON *options = cJSON_CreateObject();

    cJSON_AddStringToObject(body, "Name", net->network);
    cJSON_AddStringToObject(body, "Driver", "bridge");
    cJSON_AddBoolToObject(body, "Internal", true);
    cJSON_AddBoolToObject(body, "CheckDuplicate", true);
    cJSON_AddStringToObject(options, "com.docker.network.bridge.inhibit_ipv4",
                            "true");
    cJSON_AddItemToObject(body, "Options", options);
    cJSON_AddItemToObject(body, "Labels", labels);
    net->call = docker_request(net->be, "POST", "/networks/create", body,
                               on_network_created, net, &err);
  }
  if (!net->call)
    fail_now(net, &err);
}

static int copy_policy(struct docker_net *net, const struct rbx_policy *policy,
                       struct rbx_error *err)
{
  int rc = policy_hosts(policy, &net->allow_hosts, err);

  if (rc < 0)
    return rc;
  net->proxy_image = strdup(policy->proxy_image);
  net->egress_network = strdup(policy->egress_network);
  if (!net->proxy_image || !net->egress_network)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  net->proxy_port = policy->proxy_port;
  net->timeout_ms = policy->timeout_ms;
  net->shared = policy->proxy_name != NULL;
  return 0;
}

int docker_net_set_up(struct docker_backend *be, struct rbx_exec *exec,
                      struct docker_net **out, docker_net_fn ready, void *data,
                      struct rbx_error *err)
{
  const struct rbx_policy *policy = &exec->spec.policy;
  struct docker_net *net = calloc(1, sizeof(*net));
  unsigned rand_part =
      (unsigned)(eng_now_ms() * 2654435761u) ^ (unsigned)exec->seq * 40503u;
  int rc;

  if (!net)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  net->be = be;
  net->done = ready;
  net->done_data = data;
  net->start_ms = eng_now_ms();
  net->output_fd = -1;
  eng_op_init(&net->recv_op, be->ctx->loop, on_output, net);
  eng_op_init(&net->timer_op, be->ctx->loop, on_ready_timer, net);
  eng_op_init(&net->wake_op, be->ctx->loop, on_wake, net);
  rc = copy_policy(net, policy, err);
  if (rc < 0) {
    net_free(net);
    return rc;
  }
  snprintf(net->network, sizeof(net->network),
           "ringbox-net-%d-%" PRIu64 "-%06x", (int)getpid(), exec->seq,
           rand_part & 0xffffff);
  if (net->shared)
    snprintf(net->proxy, sizeof(net->proxy), "%s", policy->proxy_name);
  else
    snprintf(net->proxy, sizeof(net->proxy),
             "ringbox-proxy-%d-%" PRIu64 "-%06x", (int)getpid(), exec->seq,
             rand_part & 0xffffff);
  check_engine(be);
  *out = net;
  send_network_create(net);
  return 0;
}

const char *docker_net_name(const struct docker_net *net)
{
  return net->network;
}

const char *docker_net_proxy_url(const struct docker_net *net)
{
  return net->proxy_url;
}

/* ---- teardown ---- */

static void teardown_fail(struct docker_net *net, const struct rbx_error *err,
                          const char *what)
{
  struct rbx_error terr = *err;

  rbx_err_prefix(&terr, "%s", what);
  rbx_log(&net->be->ctx->log, RBX_LOG_WARN,
          "network limited teardown failed network=%s proxy=%s error=%s",
          net->network, net->proxy, terr.message);
  fail(net, &terr);
}

static void teardown_fail_response(struct docker_net *net,
                                   const struct http_response *resp,
                                   const char *what)
{
  struct rbx_error err;

  docker_error_from_response(net->be, resp, what, &err);
  rbx_log(&net->be->ctx->log, RBX_LOG_WARN,
          "network limited teardown failed network=%s proxy=%s error=%s",
          net->network, net->proxy, err.message);
  fail(net, &err);
}

static void teardown_finish(struct docker_net *net)
{
  docker_net_fn gone = net->done;
  void *data = net->done_data;
  struct rbx_error err = net->err;
  bool failed = net->failed;

  net_free(net);
  gone(data, failed ? &err : NULL);
}

/* Docker rejects the removal of a network with active endpoints with 403,
 * Podman with 500 ("network is being used"); 409 is taken as a conflict
 * too. */
static bool endpoints_remain(const struct docker_net *net, int status)
{
  return status == 403 || status == 409 ||
         (status == 500 && net->be->quirks.conflict_as_500);
}

static void send_network_delete(struct docker_net *net);
static void disconnect_next(struct docker_net *net);

static void on_endpoint_disconnected(struct http_call *call,
                                     struct http_response *resp,
                                     const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;

  (void)call;
  net->call = NULL;
  if (err)
    teardown_fail(net, err, "disconnect from network");
  else if (resp->status >= 300 && resp->status != 404)
    teardown_fail_response(net, resp, "disconnect from network");
  net->endpoint = net->endpoint->next;
  disconnect_next(net);
}

/* Force-disconnects the containers still on the network, one at a time,
 * then tries the removal once more. */
static void disconnect_next(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  cJSON *body;
  struct rbx_error err;

  if (!net->endpoint) {
    send_network_delete(net);
    return;
  }
  rbx_log(&net->be->ctx->log, RBX_LOG_INFO,
          "network limited teardown: disconnecting container=%.12s "
          "network=%s",
          net->endpoint->string, net->network);
  body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "Container", net->endpoint->string);
  cJSON_AddBoolToObject(body, "Force", true);
  snprintf(target, sizeof(target), "/networks/%s/disconnect", network_ref(net));
  net->call = docker_request(net->be, "POST", target, body,
                             on_endpoint_disconnected, net, &err);
  if (!net->call) {
    teardown_fail(net, &err, "disconnect from network");
    net->endpoint = NULL;
    send_network_delete(net);
  }
}

static void on_network_inspected(struct http_call *call,
                                 struct http_response *resp,
                                 const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  const cJSON *containers;

  (void)call;
  net->call = NULL;
  if (err) {
    teardown_fail(net, err, "inspect network");
    teardown_finish(net);
    return;
  }
  if (resp->status != 200) {
    teardown_fail_response(net, resp, "inspect network");
    teardown_finish(net);
    return;
  }
  net->endpoints = cJSON_ParseWithLength(resp->body, resp->body_len);
  containers = cJSON_GetObjectItemCaseSensitive(net->endpoints, "Containers");
  net->endpoint = containers ? containers->child : NULL;
  disconnect_next(net);
}

static void on_network_removed(struct http_call *call,
                               struct http_response *resp,
                               const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  char target[NET_TARGET_MAX];
  struct rbx_error ierr;

  (void)call;
  net->call = NULL;
  if (err) {
    teardown_fail(net, err, "remove network");
  } else if (endpoints_remain(net, resp->status) && !net->delete_retried) {
    net->delete_retried = true;
    snprintf(target, sizeof(target), "/networks/%s", network_ref(net));
    net->call = docker_request(net->be, "GET", target, NULL,
                               on_network_inspected, net, &ierr);
    if (net->call)
      return;
    teardown_fail(net, &ierr, "inspect network");
  } else if (resp->status >= 300 && resp->status != 404) {
    teardown_fail_response(net, resp, "remove network");
  }
  teardown_finish(net);
}

static void send_network_delete(struct docker_net *net)
{
  char target[NET_TARGET_MAX];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/networks/%s", network_ref(net));
  net->call = docker_request(net->be, "DELETE", target, NULL,
                             on_network_removed, net, &err);
  if (!net->call) {
    teardown_fail(net, &err, "remove network");
    teardown_finish(net);
  }
}

static void teardown_network(struct docker_net *net)
{
  if (net->network_requested)
    send_network_delete(net);
  else
    teardown_finish(net);
}

static void on_proxy_released(struct http_call *call,
                              struct http_response *resp,
                              const struct rbx_error *err, void *data)
{
  struct docker_net *net = data;
  const char *what =
      net->shared ? "disconnect shared proxy" : "remove proxy container";

  (void)call;
  net->call = NULL;
  /* 404: already gone. 409 on a removal: another removal is under way. */
  if (err)
    teardown_fail(net, err, what);
  else if (resp->status >= 300 && resp->status != 404 &&
           !(resp->status == 409 && !net->shared))
    teardown_fail_response(net, resp, what);
  teardown_network(net);
}

void docker_net_teardown(struct docker_net *net, docker_net_fn gone, void *data)
{
  char target[NET_TARGET_MAX];
  struct rbx_error err;

  if (!net) {
    gone(data, NULL);
    return;
  }
  net->done = gone;
  net->done_data = data;
  net->failed = false;
  rbx_err_clear(&net->err);
  if (net->shared && net->connect_requested) {
    cJSON *body = cJSON_CreateObject();

    cJSON_AddStringToObject(body, "Container", proxy_ref(net));
    cJSON_AddBoolToObject(body, "Force", true);
    snprintf(target, sizeof(target), "/networks/%s/disconnect",
             network_ref(net));
    net->call = docker_request(net->be, "POST", target, body, on_proxy_released,
                               net, &err);
  } else if (!net->shared && net->proxy_requested) {
    snprintf(target, sizeof(target), "/containers/%s?force=1&v=1",
             proxy_ref(net));
    net->call = docker_request(net->be, "DELETE", target, NULL,
                               on_proxy_released, net, &err);
  } else {
    teardown_network(net);
    return;
  }
  if (!net->call) {
    teardown_fail(net, &err,
                  net->shared ? "disconnect shared proxy"
                              : "remove proxy container");
    teardown_network(net);
  }
}
