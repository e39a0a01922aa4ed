/* The Engine API backend (Docker and Podman): per execution, create,
 * attach, wait for the next exit, start, stream stdin and output, read the
 * exit, inspect for OOM when needed, deliver, then remove. */
#include "backends/docker.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/error.h"

#define ATTACH_RECV_BUF (4 * 1024)
/* Receive buffers kept for reuse when no stream needs them. */
#define ATTACH_SPARES_MAX 16
#define API_VERSION_MIN_MINOR 40 /* 1.40: Docker 19.03 */
#define API_VERSION_MAX_MINOR 43

enum phase {
  PHASE_NET,
  PHASE_CREATE,
  PHASE_ATTACH,
  PHASE_START,
  PHASE_RUNNING,
  PHASE_INSPECT,
  PHASE_DELIVERED,
  PHASE_REMOVE,
};

struct docker_exec {
  struct docker_backend *be;
  struct rbx_exec *exec; /* NULL once the result is delivered */
  struct docker_exec *next, *prev; /* be->reaping */
  struct docker_exec *live_next, *live_prev; /* be->live */
  bool is_live;
  bool fallback_wait; /* events dropped while start was in flight */
  enum phase phase;
  char name[64];
  char id[72];
  struct docker_net *net;
  struct docker_holder *holder; /* network namespace lent for network none */
  bool holder_broken;
  bool no_holder;              /* retrying after a holder failed */
  struct http_call *call;      /* the short request in flight */
  struct http_call *wait_call; /* the wait, until its response */
  int attach_fd;
  /* Taken at the stream's first data: until then the stream waits with a
   * poll, which needs no buffer. */
  uint8_t *recv_buf;
  bool recv_polling; /* recv_op is the poll, not the receive */
  struct http_demux demux;
  struct eng_op recv_op;
  struct eng_op send_op;
  struct eng_op start_op;    /* bounds create, attach and start */
  struct eng_op deadline_op; /* the command's timeout, from its start */
  struct eng_op grace_op;
  struct eng_op exit_check_op; /* from the attach stream's end to the exit */
  size_t stdin_sent;
  bool stdin_done;
  bool wait_registered;
  bool started;
  bool attach_eof;
  bool attach_closing; /* no receive is queued again */
  bool exit_known;
  bool kill_sent;
  bool oom;
  int exit_code;
  enum rbx_end end;
  bool end_set;
  bool failed;
  bool retry_without_holder;
  bool inspected;
  bool oom_waiting;   /* grace_op waits for a late oom event */
  bool oom_wait_done;
  bool in_step;
  bool step_again;
  struct rbx_error err;
};

static void step(struct docker_exec *dx);
static void start_remove(struct docker_exec *dx);

/* ---- requests ---- */

struct http_call *docker_request(struct docker_backend *be, const char *method,
                                 const char *target, cJSON *body,
                                 http_done_fn done, void *data,
                                 struct rbx_error *err)
{
  return docker_request_ex(be, method, target, body, false, done, data, err);
}

struct http_call *docker_request_ex(struct docker_backend *be,
                                    const char *method, const char *target,
                                    cJSON *body, bool urgent,
                                    http_done_fn done, void *data,
                                    struct rbx_error *err)
{
  return docker_request_timed(be, method, target, body, urgent,
                              DOCKER_REQUEST_TIMEOUT_MS, done, data, err);
}

struct http_call *docker_request_timed(struct docker_backend *be,
                                       const char *method, const char *target,
                                       cJSON *body, bool urgent,
                                       uint64_t timeout_ms, http_done_fn done,
                                       void *data, struct rbx_error *err)
{
  char full[1024];
  struct http_request req = {0};
  char *text = NULL;
  struct http_call *call;

  if ((size_t)snprintf(full, sizeof(full), "%s%s", be->api_prefix, target) >=
      sizeof(full)) {
    cJSON_Delete(body);
    rbx_err_set(err, RBX_ERR_INVALID, -ENAMETOOLONG,
                "request target is too long: %.80s...", target);
    return NULL;
  }
  if (body) {
    text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
      rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
      return NULL;
    }
    req.body = text;
    req.body_len = strlen(text);
    req.content_type = "application/json";
  }
  req.method = method;
  req.target = full;
  req.timeout_ms = timeout_ms;
  req.urgent = urgent;
  call = http_request(be->http, &req, done, data, err);
  free(text);
  return call;
}

int docker_error_from_response(const struct docker_backend *be,
                               const struct http_response *resp,
                               const char *what, struct rbx_error *err)
{
  cJSON *json = resp->body_len ? cJSON_ParseWithLength(resp->body,
                                                       resp->body_len)
                               : NULL;
  const cJSON *message = cJSON_GetObjectItemCaseSensitive(json, "message");
  const char *text = cJSON_IsString(message) ? message->valuestring : NULL;
  int code = resp->status == 404 ? -ENOENT
             : resp->status == 409 ? -EEXIST
                                   : -EIO;

  /* Podman adds "cause" and "response" next to "message"; "message" alone
   * carries the whole reason on both engines. */
  if (!text && resp->body_len)
    text = resp->body;
  rbx_err_set(err, RBX_ERR_DAEMON, code, "%s: %s answered %d: %.300s", what,
              be ? be->engine_name : "daemon", resp->status,
              text ? text : "(no message)");
  cJSON_Delete(json);
  /* Strip the newline the daemon puts at the end of plain-text bodies. */
  size_t len = strlen(err->message);

  while (len && (err->message[len - 1] == '\n' || err->message[len - 1] == '\r'))
    err->message[--len] = '\0';
  return code;
}

struct sync_state {
  bool done;
  int status;
  cJSON *json;
  struct rbx_error err;
  bool failed;
};

static void on_sync_done(struct http_call *call, struct http_response *resp,
                         const struct rbx_error *err, void *data)
{
  struct sync_state *state = data;

  (void)call;
  state->done = true;
  if (err) {
    state->failed = true;
    state->err = *err;
    return;
  }
  state->status = resp->status;
  if (resp->body_len)
    state->json = cJSON_ParseWithLength(resp->body, resp->body_len);
  if (resp->status >= 300) {
    state->failed = true;
    docker_error_from_response(NULL, resp, "request", &state->err);
  }
}

int docker_request_sync(struct docker_backend *be, const char *method,
                        const char *target, cJSON *body, cJSON **body_out,
                        struct rbx_error *err)
{
  struct sync_state state = {0};

  if (!docker_request(be, method, target, body, on_sync_done, &state, err))
    return err ? err->code : -EIO;
  while (!state.done) {
    int rc = eng_run_once(be->ctx->loop, true);

    if (rc < 0) {
      cJSON_Delete(state.json);
      return rbx_err_set(err, RBX_ERR_IO, rc, "loop failed: %s",
                         strerror(-rc));
    }
  }
  if (state.failed) {
    cJSON_Delete(state.json);
    if (err)
      *err = state.err;
    return state.err.code < 0 ? state.err.code : -EIO;
  }
  if (body_out)
    *body_out = state.json;
  else
    cJSON_Delete(state.json);
  return state.status;
}

/* ---- labels and ownership ---- */

int docker_proc_start_time(int pid, unsigned long long *start)
{
  char path[64];
  char buf[1024];
  FILE *f;
  size_t n;
  char *p;

  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  f = fopen(path, "re");
  if (!f)
    return -errno;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces and parentheses: fields start after
   * the last ')'. Field 22 is the start time. */
  p = strrchr(buf, ')');
  if (!p)
    return -EINVAL;
  p++;
  /* Field 3 is the state: a zombie has ended and only waits for its
   * parent to read its status. */
  if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X'))
    return -ESRCH;
  for (int field = 3; field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (!p)
      return -EINVAL;
  }
  *start = strtoull(p + 1, NULL, 10);
  return 0;
}

unsigned long long docker_pid_namespace(void)
{
  struct stat st;

  if (stat("/proc/self/ns/pid", &st) < 0)
    return 0;
  return (unsigned long long)st.st_ino;
}

int docker_boot_id(char *out, size_t size)
{
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  size_t n;

  if (!f)
    return -errno;
  n = fread(out, 1, size - 1, f);
  fclose(f);
  while (n && (out[n - 1] == '\n'))
    n--;
  out[n] = '\0';
  return 0;
}

cJSON *docker_labels(const struct docker_backend *be, const char *role,
                     uint64_t timeout_ms)
{
  cJSON *labels = cJSON_CreateObject();
  char deadline[32] = "0";

  if (timeout_ms)
    snprintf(deadline, sizeof(deadline), "%lld",
             (long long)time(NULL) + (long long)(timeout_ms / 1000) + 1 +
                 DOCKER_DEADLINE_GRACE_S);
  cJSON_AddStringToObject(labels, DOCKER_LABEL, "1");
  cJSON_AddStringToObject(labels, DOCKER_LABEL_OWNER, be->owner);
  cJSON_AddStringToObject(labels, DOCKER_LABEL_DEADLINE, deadline);
  cJSON_AddStringToObject(labels, DOCKER_LABEL_ROLE, role);
  return labels;
}

/* ---- the execution ---- */

static void dx_set_end(struct docker_exec *dx, enum rbx_end end)
{
  if (!dx->end_set) {
    dx->end = end;
    dx->end_set = true;
  }
}

static void dx_fail(struct docker_exec *dx, const struct rbx_error *err)
{
  if (!dx->failed) {
    dx->failed = true;
    dx->err = *err;
  }
}

static void dx_fail_daemon(struct docker_exec *dx, struct http_response *resp,
                           const char *what)
{
  struct rbx_error err;

  docker_error_from_response(dx->be, resp, what, &err);
  dx_fail(dx, &err);
}

static void send_kill(struct docker_exec *dx);

static bool io_idle(struct docker_exec *dx)
{
  return !dx->recv_op.in_flight && !dx->send_op.in_flight &&
         !dx->deadline_op.in_flight && !dx->grace_op.in_flight &&
         !dx->exit_check_op.in_flight && !dx->start_op.in_flight &&
         !dx->call &&
         !dx->wait_call;
}

static void close_attach(struct docker_exec *dx)
{
  dx->attach_closing = true;
  if (dx->recv_op.in_flight)
    eng_cancel(&dx->recv_op);
  if (dx->send_op.in_flight)
    eng_cancel(&dx->send_op);
  if (dx->attach_fd >= 0 && !dx->recv_op.in_flight &&
      !dx->send_op.in_flight) {
    close(dx->attach_fd);
    dx->attach_fd = -1;
  }
}

static void stop_timers(struct docker_exec *dx)
{
  if (dx->start_op.in_flight)
    eng_cancel(&dx->start_op);
  if (dx->deadline_op.in_flight)
    eng_cancel(&dx->deadline_op);
  if (dx->grace_op.in_flight)
    eng_cancel(&dx->grace_op);
  if (dx->exit_check_op.in_flight)
    eng_cancel(&dx->exit_check_op);
}

static void live_add(struct docker_exec *dx)
{
  struct docker_backend *be = dx->be;

  dx->live_prev = NULL;
  dx->live_next = be->live;
  if (be->live)
    be->live->live_prev = dx;
  be->live = dx;
  dx->is_live = true;
}

static void live_remove(struct docker_exec *dx)
{
  struct docker_backend *be = dx->be;

  if (!dx->is_live)
    return;
  if (dx->live_prev)
    dx->live_prev->live_next = dx->live_next;
  else
    be->live = dx->live_next;
  if (dx->live_next)
    dx->live_next->live_prev = dx->live_prev;
  dx->live_next = dx->live_prev = NULL;
  dx->is_live = false;
}

void docker_exec_event(struct docker_backend *be, const char *id, bool oom,
                       int exit_code)
{
  for (struct docker_exec *dx = be->live; dx; dx = dx->live_next) {
    if (strcmp(dx->id, id) != 0)
      continue;
    if (oom) {
      dx->oom = true;
    } else if (!dx->exit_known) {
      dx->exit_code = exit_code;
      dx->exit_known = true;
    }
    step(dx);
    return;
  }
}

static void send_wait(struct docker_exec *dx, const char *condition);

void docker_exec_events_lost(struct docker_backend *be)
{
  struct docker_exec *dx = be->live;

  while (dx) {
    struct docker_exec *next = dx->live_next;

    if (!dx->exit_known && !dx->wait_call && !dx->failed) {
      if (dx->started)
        send_wait(dx, "not-running");
      else if (dx->phase == PHASE_START)
        dx->fallback_wait = true;
      else {
        dx->wait_registered = false;
        send_wait(dx, "next-exit");
      }
    }
    dx = next;
  }
}

/* Hands the result or error to the user once all I/O of the execution
 * itself is done; the container's removal goes on in the background. */
static void deliver(struct docker_exec *dx)
{
  struct rbx_exec *exec = dx->exec;
  struct docker_backend *be = dx->be;

  dx->phase = PHASE_DELIVERED;
  dx->exec = NULL;
  live_remove(dx);
  snprintf(exec->result.id, sizeof(exec->result.id), "%s", dx->id);
  exec->result.wall_ms = eng_now_ms() - exec->start_ms;
  if (!dx->failed) {
    enum rbx_end end = dx->end_set ? dx->end : RBX_END_EXITED;

    if (!dx->end_set && dx->oom)
      end = RBX_END_OOM;
    else if (!dx->end_set && dx->exit_code == 137)
      end = RBX_END_SIGNALED;
    exec->result.end = end;
    exec->result.exit_code = dx->exit_code;
    exec->result.signal = end == RBX_END_SIGNALED ? 9 : 0;
  }
  dx->next = be->reaping;
  if (be->reaping)
    be->reaping->prev = dx;
  be->reaping = dx;
  be->reaping_count++;
  exec_finish(exec, dx->failed ? &dx->err : NULL);
  start_remove(dx);
}

static uint8_t *recv_buffer_take(struct docker_backend *be)
{
  uint8_t *buf = be->recv_spares;

  if (!buf)
    return malloc(ATTACH_RECV_BUF);
  memcpy(&be->recv_spares, buf, sizeof(void *));
  be->recv_spares_count--;
  return buf;
}

static void recv_buffer_put(struct docker_backend *be, uint8_t *buf)
{
  if (!buf)
    return;
  if (be->recv_spares_count >= ATTACH_SPARES_MAX) {
    free(buf);
    return;
  }
  memcpy(buf, &be->recv_spares, sizeof(void *));
  be->recv_spares = buf;
  be->recv_spares_count++;
}

static void dx_free(struct docker_exec *dx)
{
  struct docker_backend *be = dx->be;

  if (dx->prev)
    dx->prev->next = dx->next;
  else if (be->reaping == dx)
    be->reaping = dx->next;
  if (dx->next)
    dx->next->prev = dx->prev;
  be->reaping_count--;
  recv_buffer_put(be, dx->recv_buf);
  free(dx);
}

static void on_net_gone(void *data, const struct rbx_error *err)
{
  struct docker_exec *dx = data;

  if (err)
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "network teardown failed container=%.12s error=%s", dx->id,
            err->message);
  dx->net = NULL;
  dx_free(dx);
}

static void on_removed(struct http_call *call, struct http_response *resp,
                       const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;

  (void)call;
  dx->call = NULL;
  if (dx->holder) {
    /* A holder whose borrower could not be removed may still share its
     * namespace with a live process: it is never lent again. */
    docker_holder_release(dx->holder,
                          dx->holder_broken || err != NULL ||
                              (resp && resp->status >= 300 &&
                               resp->status != 404));
    dx->holder = NULL;
  }
  if (err) {
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "remove failed container=%.12s error=%s; the sweep will retry",
            dx->id, err->message);
  } else if (resp && resp->status >= 300 && resp->status != 404 &&
             resp->status != 409 &&
             !(resp->status == 500 && dx->be->quirks.conflict_as_500)) {
    struct rbx_error derr;

    docker_error_from_response(dx->be, resp, "remove container", &derr);
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN, "%s container=%.12s",
            derr.message, dx->id);
  }
  if (dx->net) {
    docker_net_teardown(dx->net, on_net_gone, dx);
    return;
  }
  dx_free(dx);
}

static void start_remove(struct docker_exec *dx)
{
  char target[160];
  struct rbx_error err;

  dx->phase = PHASE_REMOVE;
  if (!dx->id[0]) {
    on_removed(NULL, NULL, NULL, dx);
    return;
  }
  snprintf(target, sizeof(target), "/containers/%s?force=1&v=1", dx->id);
  dx->call = docker_request(dx->be, "DELETE", target, NULL, on_removed, dx,
                            &err);
  if (!dx->call)
    on_removed(NULL, NULL, &err, dx);
}

static void inspect_for_oom(struct docker_exec *dx);
static void send_create(struct docker_exec *dx);

static void on_discarded(struct http_call *call, struct http_response *resp,
                         const struct rbx_error *err, void *data)
{
  struct docker_backend *be = data;

  (void)call;
  if (err)
    rbx_log(&be->ctx->log, RBX_LOG_WARN,
            "background remove failed error=%s; the sweep will retry",
            err->message);
  else if (resp->status >= 300 && resp->status != 404)
    rbx_log(&be->ctx->log, RBX_LOG_WARN,
            "background remove failed status=%d; the sweep will retry",
            resp->status);
  be->background--;
}

void docker_discard_container(struct docker_backend *be, const char *id)
{
  char target[160];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s?force=1&v=1", id);
  be->background++;
  if (!docker_request(be, "DELETE", target, NULL, on_discarded, be, &err)) {
    be->background--;
    rbx_log(&be->ctx->log, RBX_LOG_WARN,
            "remove failed container=%.12s error=%s; the sweep will retry",
            id, err.message);
  }
}

/* The holder's namespace was gone at start (a daemon restart stops every
 * holder): drop the holder and its idle peers and run the execution again
 * with a namespace of its own. Nothing of the command ran. */
static void retry_without_holder(struct docker_exec *dx)
{
  rbx_log(&dx->be->ctx->log, RBX_LOG_INFO,
          "network holder failed; retrying without it container=%.12s "
          "error=%s",
          dx->id, dx->err.message);
  if (dx->id[0])
    docker_discard_container(dx->be, dx->id);
  live_remove(dx);
  docker_holder_release(dx->holder, true);
  dx->holder = NULL;
  dx->no_holder = true;
  dx->retry_without_holder = false;
  dx->id[0] = '\0';
  /* The discarded container keeps its name until its removal is done, and
   * that request may still be on its way, so the retry takes a new name. */
  if (strlen(dx->name) + sizeof("-n") <= sizeof(dx->name))
    strcat(dx->name, "-n");
  dx->failed = false;
  dx->started = dx->kill_sent = dx->attach_eof = dx->exit_known = false;
  dx->wait_registered = dx->stdin_done = false;
  dx->attach_closing = false;
  dx->stdin_sent = 0;
  memset(&dx->demux, 0, sizeof(dx->demux));
  recv_buffer_put(dx->be, dx->recv_buf);
  dx->recv_buf = NULL;
  send_create(dx);
}

/* Ends an execution stopped before its container ran: a cancel is an
 * error (nothing ran), a deadline is a timeout with no exit status. */
static void end_before_start(struct docker_exec *dx)
{
  if (dx->end == RBX_END_CANCELLED) {
    struct rbx_error err;

    rbx_err_set(&err, RBX_ERR_CANCELLED, -ECANCELED,
                "execution cancelled before its container started");
    dx_fail(dx, &err);
    return;
  }
  dx->attach_eof = true;
  dx->exit_known = true;
  dx->exit_code = -1;
}

/* One pass over the execution's state. Returns true when the result was
 * delivered: dx may be gone then. */
static bool step_once(struct docker_exec *dx)
{
  if (dx->phase == PHASE_DELIVERED || dx->phase == PHASE_REMOVE)
    return false;
  if (dx->failed) {
    if (!dx->kill_sent && dx->started && !dx->call)
      send_kill(dx);
    if (dx->wait_call)
      http_call_cancel(dx->wait_call);
    close_attach(dx);
    if (dx->retry_without_holder) {
      if (!dx->recv_op.in_flight && !dx->send_op.in_flight && !dx->call &&
          !dx->wait_call && dx->attach_fd < 0)
        retry_without_holder(dx);
      return false;
    }
    stop_timers(dx);
    if (io_idle(dx) && dx->attach_fd < 0) {
      deliver(dx);
      return true;
    }
    return false;
  }
  if (dx->exit_known && dx->wait_call)
    http_call_cancel(dx->wait_call);
  if (!dx->attach_eof || !dx->exit_known || dx->call || dx->wait_call)
    return false;
  if (dx->exit_code == 137 && !dx->end_set && !dx->oom && !dx->inspected) {
    /* dockerd may handle the exit before the OOM notice of the same
     * kill, so both its oom event and State.OOMKilled can lag the exit:
     * give the event a moment before reading the state. */
    if (!dx->oom_wait_done) {
      if (!dx->grace_op.in_flight &&
          eng_timer(&dx->grace_op, DOCKER_OOM_EVENT_WAIT_MS) == 0)
        dx->oom_waiting = true;
      else
        dx->oom_wait_done = true;
      if (dx->oom_waiting)
        return false;
    }
    dx->inspected = true;
    inspect_for_oom(dx);
    return false;
  }
  stop_timers(dx);
  close_attach(dx);
  if (io_idle(dx) && dx->attach_fd < 0) {
    deliver(dx);
    return true;
  }
  return false;
}

/* Moves the execution on once every piece it waits for has arrived.
 * Callbacks run from inside it (a cancelled call reports at once) only
 * mark it to run again. */
static void step(struct docker_exec *dx)
{
  if (dx->in_step) {
    dx->step_again = true;
    return;
  }
  dx->in_step = true;
  do {
    dx->step_again = false;
    if (step_once(dx))
      return;
  } while (dx->step_again);
  dx->in_step = false;
}

static void on_inspect(struct http_call *call, struct http_response *resp,
                       const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;
  cJSON *json;

  (void)call;
  dx->call = NULL;
  if (err) {
    dx_fail(dx, err);
  } else if (resp->status != 200) {
    dx_fail_daemon(dx, resp, "inspect container");
  } else {
    json = cJSON_ParseWithLength(resp->body, resp->body_len);
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(json, "State");
    const cJSON *oom = cJSON_GetObjectItemCaseSensitive(state, "OOMKilled");

    dx->oom = cJSON_IsTrue(oom);
    cJSON_Delete(json);
  }
  step(dx);
}

/* Exit 137 is any SIGKILL. Only the container's state records whether
 * memory ran out, and it is gone after removal, so it is read first. */
static void inspect_for_oom(struct docker_exec *dx)
{
  char target[160];
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s/json", dx->id);
  dx->call = docker_request_ex(dx->be, "GET", target, NULL, true, on_inspect,
                               dx, &err);
  if (!dx->call)
    dx_fail(dx, &err);
}

static void on_wait(struct http_call *call, struct http_response *resp,
                    const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;

  (void)call;
  dx->wait_call = NULL;
  if (err) {
    if (err->kind != RBX_ERR_CANCELLED) {
      struct rbx_error werr = *err;

      rbx_err_prefix(&werr, "wait for container %.12s", dx->id);
      dx_fail(dx, &werr);
    }
    step(dx);
    return;
  }
  if (dx->exit_known) {
    step(dx);
    return;
  }
  if (resp->status != 200) {
    dx_fail_daemon(dx, resp, "wait for container");
    step(dx);
    return;
  }

  cJSON *json = cJSON_ParseWithLength(resp->body, resp->body_len);
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(json, "StatusCode");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "Error");
  const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "Message");

  if (cJSON_IsString(message) && message->valuestring[0]) {
    struct rbx_error werr;

    rbx_err_set(&werr, RBX_ERR_DAEMON, -EIO, "wait for container %.12s: %s",
                dx->id, message->valuestring);
    dx_fail(dx, &werr);
  } else if (!cJSON_IsNumber(code)) {
    struct rbx_error werr;

    rbx_err_set(&werr, RBX_ERR_IO, -EPROTO,
                "wait for container %.12s: answer has no StatusCode: %.100s",
                dx->id, resp->body);
    dx_fail(dx, &werr);
  } else {
    dx->exit_code = code->valueint;
    dx->exit_known = true;
  }
  cJSON_Delete(json);
  step(dx);
}

static void on_killed(struct http_call *call, struct http_response *resp,
                      const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;

  (void)call;
  dx->call = NULL;
  /* 404 and 409 mean it is already gone or not running: nothing to stop. */
  if (err)
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "kill failed container=%.12s error=%s", dx->id, err->message);
  else if (resp->status >= 300 && resp->status != 404 && resp->status != 409)
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "kill refused container=%.12s status=%d", dx->id, resp->status);
  step(dx);
}

static void on_grace(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;

  if (dx->oom_waiting) {
    dx->oom_waiting = false;
    dx->oom_wait_done = true;
    step(dx);
    return;
  }
  if (res == -ETIME && !dx->failed) {
    struct rbx_error err;

    rbx_err_set(&err, RBX_ERR_DAEMON, -ETIMEDOUT,
                "container %.12s did not exit within %d ms of being killed",
                dx->id, DOCKER_KILL_GRACE_MS);
    if (!dx->end_set)
      dx_fail(dx, &err);
    else {
      /* The end is known (timeout, limit, cancel); report it even though
       * the exit status never came. */
      dx->exit_known = true;
      dx->attach_eof = true;
      dx->exit_code = 137;
      if (dx->wait_call)
        http_call_cancel(dx->wait_call);
    }
  }
  step(dx);
}

static void on_exit_check(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;

  if (res == -ETIME && !dx->exit_known && !dx->wait_call && !dx->failed) {
    rbx_log(&dx->be->ctx->log, RBX_LOG_INFO,
            "no exit event %d ms after the attach stream ended; asking with "
            "a wait container=%.12s",
            DOCKER_EXIT_EVENT_WAIT_MS, dx->id);
    send_wait(dx, "not-running");
  }
  step(dx);
}

static void send_kill(struct docker_exec *dx)
{
  char target[160];
  struct rbx_error err;

  if (dx->kill_sent || dx->call)
    return;
  dx->kill_sent = true;
  snprintf(target, sizeof(target), "/containers/%s/kill?signal=KILL", dx->id);
  dx->call = docker_request_ex(dx->be, "POST", target, NULL, true, on_killed,
                               dx, &err);
  if (!dx->call)
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "kill failed container=%.12s error=%s", dx->id, err.message);
  if (!dx->grace_op.in_flight)
    eng_timer(&dx->grace_op, DOCKER_KILL_GRACE_MS);
}

/* Ends the execution early for `end`: kill now, then wait for the exit. */
static void stop_for(struct docker_exec *dx, enum rbx_end end)
{
  dx_set_end(dx, end);
  /* A create or start still queued in the client never reached the
   * daemon: drop it, so a slow daemon cannot hold the execution past its
   * deadline. Its callback ends the execution. */
  if (!dx->started && dx->call && http_call_cancel_queued(dx->call))
    return;
  if (!dx->started) {
    /* Each step before start checks end_set, but between attach and
     * start the next step waits for the wait's headers, which a stuck
     * daemon may never send: stop waiting for them. */
    if (dx->phase == PHASE_ATTACH && dx->wait_call && !dx->wait_registered) {
      end_before_start(dx);
      http_call_cancel(dx->wait_call);
    }
    return;
  }
  send_kill(dx);
}

/* How long create, attach and start may take: the command's own timeout
 * plus a margin, and never more than DOCKER_START_TIMEOUT_MS. */
static uint64_t start_bound_ms(const struct rbx_policy *policy)
{
  uint64_t bound = DOCKER_START_TIMEOUT_MS;

  if (policy->timeout_ms &&
      policy->timeout_ms + DOCKER_START_MARGIN_MS < bound)
    bound = policy->timeout_ms + DOCKER_START_MARGIN_MS;
  return bound;
}

static void on_start_timer(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;

  if (res == -ETIME && dx->phase == PHASE_NET) {
    /* The network or holder set-up is still running and checks end_set
     * when it calls back. */
    dx_set_end(dx, RBX_END_TIMED_OUT);
  } else if (res == -ETIME && !dx->started && !dx->failed && !dx->end_set) {
    struct rbx_error err;

    rbx_err_set(&err, RBX_ERR_TIMEOUT, -ETIMEDOUT,
                "container %.*s did not start within %llu ms; the daemon is "
                "overloaded or stuck",
                dx->id[0] ? 12 : (int)sizeof(dx->name),
                dx->id[0] ? dx->id : dx->name,
                (unsigned long long)start_bound_ms(
                    &dx->exec->spec.policy));
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN, "%s", err.message);
    dx->phase = PHASE_RUNNING;
    /* Recorded before the cancel, whose callback runs at once and would
     * otherwise report "request cancelled" in place of the timeout. */
    dx_fail(dx, &err);
    if (dx->call)
      http_call_cancel_queued(dx->call);
  }
  step(dx);
}

static void on_deadline(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;

  if (res == -ETIME) {
    rbx_log(&dx->be->ctx->log, RBX_LOG_INFO,
            "timeout container=%.12s timeout_ms=%llu", dx->id,
            (unsigned long long)dx->exec->spec.policy.timeout_ms);
    stop_for(dx, RBX_END_TIMED_OUT);
  }
  step(dx);
}

static int on_frame(void *data, int stream, const uint8_t *buf, size_t len)
{
  struct docker_exec *dx = data;
  struct rbx_exec *exec = dx->exec;
  struct rbx_output *out = stream == 2 ? &exec->result.err : &exec->result.out;

  if (exec_output_append(out, exec->spec.policy.output_limit, buf, len) &&
      !dx->end_set)
    stop_for(dx, RBX_END_OUTPUT_LIMIT);
  return 0;
}

/* Waits for the attach stream to become readable. */
static void poll_attach(struct docker_exec *dx)
{
  dx->recv_polling = true;
  eng_poll(&dx->recv_op, dx->attach_fd, POLLIN);
}

static void on_attach_recv(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;
  struct rbx_error err;
  bool polled = dx->recv_polling;

  dx->recv_polling = false;
  if (!polled && (res <= 0 || dx->failed || dx->attach_closing)) {
    recv_buffer_put(dx->be, dx->recv_buf);
    dx->recv_buf = NULL;
  }
  if (dx->failed || res == -ECANCELED || dx->attach_closing) {
    step(dx);
    return;
  }
  if (polled && res >= 0) {
    /* Readable, or at its end: the receive's result shows which. A stream
     * polls only before its first data, so it has no buffer yet. */
    dx->recv_buf = recv_buffer_take(dx->be);
    if (!dx->recv_buf) {
      rbx_err_set(&err, RBX_ERR_IO, -ENOMEM, "out of memory");
      dx_fail(dx, &err);
      step(dx);
      return;
    }
    eng_recv(&dx->recv_op, dx->attach_fd, dx->recv_buf, ATTACH_RECV_BUF);
    return;
  }
  if (res <= 0) {
    if (res < 0 && !dx->end_set) {
      rbx_err_set(&err, RBX_ERR_IO, res,
                  "attach stream of container %.12s failed: %s", dx->id,
                  strerror(-res));
      dx_fail(dx, &err);
    } else if (!http_demux_at_boundary(&dx->demux) && !dx->end_set) {
      rbx_err_set(&err, RBX_ERR_IO, -EPROTO,
                  "attach stream of container %.12s ended inside a frame",
                  dx->id);
      dx_fail(dx, &err);
    }
    dx->attach_eof = true;
    /* The exit event normally follows the stream's end at once. If it is
     * lost, a command without a timeout would wait for ever, so a wait
     * request reads the exit after a delay. */
    if (dx->started && !dx->exit_known && !dx->wait_call && !dx->failed)
      eng_timer(&dx->exit_check_op, DOCKER_EXIT_EVENT_WAIT_MS);
    step(dx);
    return;
  }
  if (http_demux_feed(&dx->demux, dx->recv_buf, (size_t)res, on_frame, dx,
                      &err) < 0) {
    dx_fail(dx, &err);
    step(dx);
    return;
  }
  /* Once output flows, the stream keeps its buffer and a receive armed. A
   * reader that polled between chunks was slow enough to lose the end of
   * an 8 MiB output: dockerd closed the stream after the exit first. */
  eng_recv(&dx->recv_op, dx->attach_fd, dx->recv_buf, ATTACH_RECV_BUF);
}

static void on_stdin_sent(struct eng_op *op, int res)
{
  struct docker_exec *dx = op->data;
  struct rbx_exec *exec = dx->exec;

  if (dx->failed || res == -ECANCELED || dx->attach_fd < 0) {
    step(dx);
    return;
  }
  if (res < 0) {
    /* The command may exit without reading all of its input: that is its
     * business, not an error of the sandbox. */
    dx->stdin_done = true;
    step(dx);
    return;
  }
  dx->stdin_sent += (size_t)res;
  if (dx->stdin_sent < exec->spec.stdin_len) {
    eng_send(&dx->send_op, dx->attach_fd,
             exec->spec.stdin_data + dx->stdin_sent,
             exec->spec.stdin_len - dx->stdin_sent);
    return;
  }
  dx->stdin_done = true;
  /* The daemon closes the container's stdin when the client half-closes:
   * it needs OpenStdin and StdinOnce, which create sets. */
  shutdown(dx->attach_fd, SHUT_WR);
  step(dx);
}

static void begin_running(struct docker_exec *dx)
{
  struct rbx_exec *exec = dx->exec;

  if (dx->end_set)
    send_kill(dx);
  if (dx->attach_fd < 0 || dx->attach_eof) {
    step(dx);
    return;
  }
  if (exec->spec.has_stdin && exec->spec.stdin_len > 0)
    eng_send(&dx->send_op, dx->attach_fd, exec->spec.stdin_data,
             exec->spec.stdin_len);
  else if (exec->spec.has_stdin)
    shutdown(dx->attach_fd, SHUT_WR);
  step(dx);
}

/* A daemon error that names the lent holder means its namespace is gone:
 * Docker reports that at start, Podman at create or attach. The execution
 * then runs again without a holder. */
static void check_holder_failure(struct docker_exec *dx)
{
  if (dx->failed && dx->holder && !dx->end_set &&
      strstr(dx->err.message, docker_holder_id(dx->holder)))
    dx->retry_without_holder = true;
}

static void on_started(struct http_call *call, struct http_response *resp,
                       const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;

  (void)call;
  dx->call = NULL;
  if (err && err->kind == RBX_ERR_CANCELLED && dx->end_set) {
    end_before_start(dx);
    step(dx);
    return;
  }
  if (err) {
    struct rbx_error serr = *err;

    rbx_err_prefix(&serr, "start container %.12s", dx->id);
    dx_fail(dx, &serr);
  } else if (resp->status != 204 && resp->status != 304) {
    dx_fail_daemon(dx, resp, "start container");
    check_holder_failure(dx);
  } else {
    dx->started = true;
    /* The command's timeout counts from its start: a daemon slow to create
     * containers does not eat into it. */
    eng_cancel(&dx->start_op);
    if (dx->exec->spec.policy.timeout_ms && !dx->end_set)
      eng_timer(&dx->deadline_op, dx->exec->spec.policy.timeout_ms);
    if (dx->fallback_wait && !dx->exit_known && !dx->wait_call)
      send_wait(dx, "not-running");
    begin_running(dx);
    return;
  }
  step(dx);
}

static void send_start(struct docker_exec *dx)
{
  char target[160];
  struct rbx_error err;

  dx->phase = PHASE_START;
  if (dx->end_set) {
    end_before_start(dx);
    step(dx);
    return;
  }
  snprintf(target, sizeof(target), "/containers/%s/start", dx->id);
  dx->call = docker_request_ex(dx->be, "POST", target, NULL, true,
                               on_started, dx, &err);
  if (!dx->call) {
    dx->phase = PHASE_RUNNING;
    dx_fail(dx, &err);
    step(dx);
  }
}

/* The answer's headers mean the daemon has registered the wait, so a fast
 * exit after start can no longer be missed. */
static void on_wait_headers(void *data, int status)
{
  struct docker_exec *dx = data;

  if (status != 200 || dx->wait_registered)
    return;
  dx->wait_registered = true;
  if (dx->phase == PHASE_ATTACH && dx->attach_fd >= 0)
    send_start(dx);
}

static void send_wait(struct docker_exec *dx, const char *condition)
{
  char target[200];
  char full[256];
  struct http_request req = {0};
  struct rbx_error err;

  snprintf(target, sizeof(target), "/containers/%s/wait?condition=%s", dx->id,
           condition);
  snprintf(full, sizeof(full), "%s%s", dx->be->api_prefix, target);
  req.method = "POST";
  req.target = full;
  req.dedicated = true;
  req.on_headers = on_wait_headers;
  dx->wait_call = http_request(dx->be->http, &req, on_wait, dx, &err);
  if (!dx->wait_call) {
    dx->phase = PHASE_RUNNING;
    dx_fail(dx, &err);
    step(dx);
  }
}

static void on_attached(struct http_call *call, struct http_response *resp,
                        const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;
  struct rbx_error ferr;

  (void)call;
  dx->call = NULL;
  if (err) {
    ferr = *err;
    rbx_err_prefix(&ferr, "attach to container %.12s", dx->id);
    goto fail;
  }
  if (resp->fd < 0) {
    if (resp->status < 300)
      rbx_err_set(&ferr, RBX_ERR_IO, -EPROTO,
                  "attach to container %.12s: answer %d is not a stream",
                  dx->id, resp->status);
    else
      docker_error_from_response(dx->be, resp, "attach to container", &ferr);
    goto fail;
  }
  dx->attach_fd = resp->fd;
  if (resp->extra_len &&
      http_demux_feed(&dx->demux, resp->extra, resp->extra_len, on_frame, dx,
                      &ferr) < 0)
    goto fail;
  poll_attach(dx);
  /* send_start ends an execution whose end came before start. */
  if (dx->wait_registered || dx->end_set)
    send_start(dx);
  return;
fail:
  dx->phase = PHASE_RUNNING;
  dx_fail(dx, &ferr);
  check_holder_failure(dx);
  step(dx);
}

static void send_attach(struct docker_exec *dx)
{
  char target[200];
  char full[256];
  struct http_request req = {0};
  struct rbx_error err;

  dx->phase = PHASE_ATTACH;
  /* Options go in the query string and the request has no body: Podman
   * passes any body bytes on to the container's stdin. */
  snprintf(target, sizeof(target),
           "/containers/%s/attach?stream=1&stdin=%d&stdout=1&stderr=1",
           dx->id, dx->exec->spec.has_stdin ? 1 : 0);
  snprintf(full, sizeof(full), "%s%s", dx->be->api_prefix, target);
  req.method = "POST";
  req.target = full;
  req.hijack = true;
  req.timeout_ms = DOCKER_REQUEST_TIMEOUT_MS;
  dx->call = http_request(dx->be->http, &req, on_attached, dx, &err);
  if (!dx->call) {
    dx->phase = PHASE_RUNNING;
    dx_fail(dx, &err);
    step(dx);
    return;
  }
  /* With the events stream connected, the exit is seen there. */
  if (docker_events_ready(dx->be))
    dx->wait_registered = true;
  else
    send_wait(dx, "next-exit");
}

static cJSON *string_array(char *const *items)
{
  cJSON *array = cJSON_CreateArray();

  for (size_t i = 0; items && items[i]; i++)
    cJSON_AddItemToArray(array, cJSON_CreateString(items[i]));
  return array;
}

static cJSON *host_config(struct docker_exec *dx, const char *network_mode)
{
  const struct exec_spec *spec = &dx->exec->spec;
  const struct rbx_policy *policy = &spec->policy;
  cJSON *hc = cJSON_CreateObject();
  int64_t memory = (int64_t)policy->memory_mib * 1024 * 1024;

  cJSON_AddStringToObject(hc, "NetworkMode", network_mode);
  /* Output reaches the caller through the attach stream alone. The default
   * log driver would also copy every byte to the daemon's disk, past the
   * output limit. */
  cJSON_AddStringToObject(cJSON_AddObjectToObject(hc, "LogConfig"), "Type",
                          "none");
  cJSON_AddNumberToObject(hc, "Memory", (double)memory);
  /* Equal to Memory: no swap on top of the limit. */
  cJSON_AddNumberToObject(hc, "MemorySwap", (double)memory);
  cJSON_AddNumberToObject(hc, "NanoCpus", policy->cpus * 1e9);
  cJSON_AddNumberToObject(hc, "PidsLimit", (double)policy->pids_limit);
  cJSON_AddBoolToObject(hc, "ReadonlyRootfs", !policy->writable_root);
  if (!policy->keep_capabilities) {
    cJSON *drop = cJSON_AddArrayToObject(hc, "CapDrop");

    cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
  }
  if (!policy->allow_new_privileges) {
    cJSON *opts = cJSON_AddArrayToObject(hc, "SecurityOpt");

    cJSON_AddItemToArray(opts, cJSON_CreateString("no-new-privileges"));
  }
  if (!policy->writable_root && policy->tmp_size_mib) {
    cJSON *tmpfs = cJSON_AddObjectToObject(hc, "Tmpfs");
    char options[96];

    snprintf(options, sizeof(options), "rw,nosuid,nodev,size=%llum,mode=1777",
             (unsigned long long)policy->tmp_size_mib);
    cJSON_AddStringToObject(tmpfs, "/tmp", options);
  }
  if (policy->nofile_limit) {
    cJSON *ulimits = cJSON_AddArrayToObject(hc, "Ulimits");
    cJSON *nofile = cJSON_CreateObject();

    cJSON_AddStringToObject(nofile, "Name", "nofile");
    cJSON_AddNumberToObject(nofile, "Soft", (double)policy->nofile_limit);
    cJSON_AddNumberToObject(nofile, "Hard", (double)policy->nofile_limit);
    cJSON_AddItemToArray(ulimits, nofile);
    if (dx->be->quirks.ulimits_replace_defaults) {
      cJSON *nproc = cJSON_CreateObject();

      cJSON_AddStringToObject(nproc, "Name", "nproc");
      cJSON_AddNumberToObject(nproc, "Soft", DOCKER_PODMAN_NPROC);
      cJSON_AddNumberToObject(nproc, "Hard", DOCKER_PODMAN_NPROC);
      cJSON_AddItemToArray(ulimits, nproc);
    }
  }
  /* Mounts, never Binds: Binds creates a missing source on the host and
   * splits paths at ':'. Sources were checked and resolved at spawn. */
  if (spec->mounts_count) {
    cJSON *mounts = cJSON_AddArrayToObject(hc, "Mounts");

    for (size_t i = 0; i < spec->mounts_count; i++) {
      cJSON *m = cJSON_CreateObject();

      cJSON_AddStringToObject(m, "Type", "bind");
      cJSON_AddStringToObject(m, "Source", spec->mounts[i].source);
      cJSON_AddStringToObject(m, "Target", spec->mounts[i].target);
      cJSON_AddBoolToObject(m, "ReadOnly", spec->mounts[i].read_only);
      cJSON_AddItemToArray(mounts, m);
    }
  }
  return hc;
}

static cJSON *proxy_env(cJSON *env, const char *proxy_url)
{
  static const char *const names[] = {"HTTP_PROXY", "HTTPS_PROXY",
                                      "http_proxy", "https_proxy"};
  char entry[160];

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    snprintf(entry, sizeof(entry), "%s=%s", names[i], proxy_url);
    cJSON_AddItemToArray(env, cJSON_CreateString(entry));
  }
  cJSON_AddItemToArray(env, cJSON_CreateString("NO_PROXY=localhost,127.0.0.1"));
  cJSON_AddItemToArray(env, cJSON_CreateString("no_proxy=localhost,127.0.0.1"));
  return env;
}

static cJSON *container_config(struct docker_exec *dx)
{
  const struct exec_spec *spec = &dx->exec->spec;
  const struct rbx_policy *policy = &spec->policy;
  cJSON *config = cJSON_CreateObject();
  cJSON *env = string_array(spec->env);
  const char *network_mode = "none";

  char holder_mode[96];

  if (dx->holder) {
    snprintf(holder_mode, sizeof(holder_mode), "container:%s",
             docker_holder_id(dx->holder));
    network_mode = holder_mode;
  }
  if (policy->network == RBX_NET_FULL)
    network_mode = "bridge";
  else if (policy->network == RBX_NET_LIMITED && dx->net)
    network_mode = docker_net_name(dx->net);
  if (dx->net)
    proxy_env(env, docker_net_proxy_url(dx->net));

  cJSON_AddStringToObject(config, "Image", policy->image);
  cJSON_AddItemToObject(config, "Cmd", string_array(spec->argv));
  /* Clear the image's entrypoint so argv runs as given. */
  cJSON_AddItemToObject(config, "Entrypoint", cJSON_CreateArray());
  cJSON_AddItemToObject(config, "Env", env);
  if (spec->workdir)
    cJSON_AddStringToObject(config, "WorkingDir", spec->workdir);
  if (policy->user && policy->user[0])
    cJSON_AddStringToObject(config, "User", policy->user);
  cJSON_AddBoolToObject(config, "AttachStdin", spec->has_stdin);
  cJSON_AddBoolToObject(config, "AttachStdout", true);
  cJSON_AddBoolToObject(config, "AttachStderr", true);
  /* OpenStdin and StdinOnce make the daemon close the container's stdin
   * when the attach stream is half-closed, so the command sees EOF. */
  cJSON_AddBoolToObject(config, "OpenStdin", spec->has_stdin);
  cJSON_AddBoolToObject(config, "StdinOnce", spec->has_stdin);
  cJSON_AddBoolToObject(config, "Tty", false);
  cJSON_AddItemToObject(config, "Labels",
                        docker_labels(dx->be, "sandbox", policy->timeout_ms));
  cJSON_AddItemToObject(config, "HostConfig", host_config(dx, network_mode));
  return config;
}

static void on_created(struct http_call *call, struct http_response *resp,
                       const struct rbx_error *err, void *data)
{
  struct docker_exec *dx = data;
  cJSON *json;
  const cJSON *id;

  (void)call;
  dx->call = NULL;
  dx->phase = PHASE_RUNNING;
  if (err && err->kind == RBX_ERR_CANCELLED && dx->end_set) {
    end_before_start(dx);
    step(dx);
    return;
  }
  if (err) {
    struct rbx_error cerr = *err;

    rbx_err_prefix(&cerr, "create container");
    dx_fail(dx, &cerr);
    step(dx);
    return;
  }
  if (resp->status == 404) {
    struct rbx_error cerr;

    docker_error_from_response(dx->be, resp, "create container", &cerr);
    snprintf(cerr.message + strlen(cerr.message),
             sizeof(cerr.message) - strlen(cerr.message),
             "; nothing is pulled: build the image locally "
             "(scripts/build-images) or pass --image");
    dx_fail(dx, &cerr);
    check_holder_failure(dx);
    step(dx);
    return;
  }
  if (resp->status != 201) {
    dx_fail_daemon(dx, resp, "create container");
    check_holder_failure(dx);
    step(dx);
    return;
  }
  json = cJSON_ParseWithLength(resp->body, resp->body_len);
  id = cJSON_GetObjectItemCaseSensitive(json, "Id");
  if (!cJSON_IsString(id) || !id->valuestring[0] ||
      strlen(id->valuestring) >= sizeof(dx->id) ||
      strspn(id->valuestring, "0123456789abcdef") !=
          strlen(id->valuestring)) {
    struct rbx_error cerr;

    rbx_err_set(&cerr, RBX_ERR_IO, -EPROTO,
                "create container: answer has no valid Id: %.100s",
                resp->body);
    cJSON_Delete(json);
    /* The name is unique, so the sweep can still find it by its labels. */
    dx_fail(dx, &cerr);
    step(dx);
    return;
  }
  snprintf(dx->id, sizeof(dx->id), "%s", id->valuestring);
  cJSON_Delete(json);
  live_add(dx);
  rbx_log(&dx->be->ctx->log, RBX_LOG_DEBUG, "created container=%.12s name=%s",
          dx->id, dx->name);
  if (dx->end_set) {
    end_before_start(dx);
    step(dx);
    return;
  }
  /* Bounds attach and start; create had the same bound as its request
   * timeout. */
  eng_timer(&dx->start_op, start_bound_ms(&dx->exec->spec.policy));
  send_attach(dx);
}

static void send_create(struct docker_exec *dx)
{
  char target[128];
  struct rbx_error err;

  dx->phase = PHASE_CREATE;
  snprintf(target, sizeof(target), "/containers/create?name=%s", dx->name);
  /* The command's start bound applies from the moment the request is
   * sent: time queued behind other creates does not count. */
  dx->call = docker_request_timed(dx->be, "POST", target, container_config(dx),
                                  false,
                                  start_bound_ms(&dx->exec->spec.policy),
                                  on_created, dx, &err);
  if (!dx->call) {
    dx->phase = PHASE_RUNNING;
    dx_fail(dx, &err);
    step(dx);
  }
}

static void on_net_ready(void *data, const struct rbx_error *err)
{
  struct docker_exec *dx = data;

  if (err) {
    dx->phase = PHASE_RUNNING;
    dx_fail(dx, err);
    step(dx);
    return;
  }
  if (dx->end_set) {
    dx->phase = PHASE_RUNNING;
    end_before_start(dx);
    step(dx);
    return;
  }
  send_create(dx);
}

static void on_holder(void *data, struct docker_holder *holder,
                      const struct rbx_error *err)
{
  struct docker_exec *dx = data;

  if (err)
    rbx_log(&dx->be->ctx->log, RBX_LOG_WARN,
            "no network holder; the execution gets its own namespace "
            "error=%s", err->message);
  dx->holder = holder;
  if (dx->end_set) {
    dx->phase = PHASE_RUNNING;
    end_before_start(dx);
    step(dx);
    return;
  }
  send_create(dx);
}

/* Returns true when s is well-formed UTF-8: no overlong forms, no
 * surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;

  while (*p) {
    unsigned c = *p++;
    int more;
    unsigned min, cp;

    if (c < 0x80)
      continue;
    if (c >= 0xc2 && c <= 0xdf) {
      more = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int i = 0; i < more; i++, p++) {
      if ((*p & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (*p & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
  }
  return true;
}

/* Rejects a spec whose command, environment or paths are not UTF-8. They
 * travel as JSON text, where such bytes would turn into U+FFFD. */
static int check_text(const struct exec_spec *spec, struct rbx_error *err)
{
  char *const *lists[] = {spec->argv, spec->env};
  static const char *const names[] = {"argv", "env"};

  for (size_t l = 0; l < 2; l++)
    for (size_t i = 0; lists[l] && lists[l][i]; i++)
      if (!utf8_valid(lists[l][i]))
        return rbx_err_set(err, RBX_ERR_INVALID, -EILSEQ,
                           "%s[%zu] is not valid UTF-8, which the Engine "
                           "API cannot carry; pass such bytes through stdin "
                           "or a mounted file",
                           names[l], i);
  if (spec->workdir && !utf8_valid(spec->workdir))
    return rbx_err_set(err, RBX_ERR_INVALID, -EILSEQ,
                       "the working directory is not valid UTF-8, which the "
                       "Engine API cannot carry; rename it");
  for (size_t i = 0; i < spec->mounts_count; i++)
    if (!utf8_valid(spec->mounts[i].source) ||
        !utf8_valid(spec->mounts[i].target))
      return rbx_err_set(err, RBX_ERR_INVALID, -EILSEQ,
                         "mount %zu has a path that is not valid UTF-8, "
                         "which the Engine API cannot carry; rename it",
                         i);
  return 0;
}

static int docker_start(struct rbx_exec *exec, struct rbx_error *err)
{
  struct docker_backend *be = exec->ctx->backend_state;
  struct docker_exec *dx;
  unsigned rand_part = (unsigned)(eng_now_ms() * 2654435761u) ^
                       (unsigned)exec->seq * 40503u;

  if (check_text(&exec->spec, err) < 0)
    return -EILSEQ;
  dx = calloc(1, sizeof(*dx));
  if (!dx)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  dx->be = be;
  dx->exec = exec;
  dx->attach_fd = -1;
  exec->backend_data = dx;
  snprintf(dx->name, sizeof(dx->name), "ringbox-%d-%" PRIu64 "-%06x",
           (int)getpid(), exec->seq, rand_part & 0xffffff);
  eng_op_init(&dx->recv_op, be->ctx->loop, on_attach_recv, dx);
  eng_op_init(&dx->send_op, be->ctx->loop, on_stdin_sent, dx);
  eng_op_init(&dx->start_op, be->ctx->loop, on_start_timer, dx);
  eng_op_init(&dx->deadline_op, be->ctx->loop, on_deadline, dx);
  eng_op_init(&dx->grace_op, be->ctx->loop, on_grace, dx);
  eng_op_init(&dx->exit_check_op, be->ctx->loop, on_exit_check, dx);

  if (exec->spec.policy.network == RBX_NET_LIMITED) {
    int rc;

    dx->phase = PHASE_NET;
    rc = docker_net_set_up(be, exec, &dx->net, on_net_ready, dx, err);
    if (rc < 0) {
      stop_timers(dx);
      /* The timer cancel completes later; keep dx until then. */
      dx->phase = PHASE_RUNNING;
      dx_fail(dx, err);
      step(dx);
      return 0;
    }
    return 0;
  }
  if (exec->spec.policy.network == RBX_NET_NONE &&
      !be->ctx->opts.no_holder_pool) {
    dx->phase = PHASE_NET;
    if (docker_holder_acquire(be, on_holder, dx, err) == 0)
      return 0;
    dx->phase = PHASE_CREATE;
    if (err->code != -EAGAIN)
      rbx_log(&be->ctx->log, RBX_LOG_WARN,
              "no network holder; the execution gets its own namespace "
              "error=%s", err->message);
    rbx_err_clear(err);
  }
  send_create(dx);
  return 0;
}

static void docker_cancel(struct rbx_exec *exec)
{
  struct docker_exec *dx = exec->backend_data;

  if (!dx || dx->phase >= PHASE_DELIVERED)
    return;
  stop_for(dx, RBX_END_CANCELLED);
  if (!dx->started && !dx->call && !dx->wait_call && dx->phase != PHASE_NET)
    end_before_start(dx);
  step(dx);
}

/* ---- set-up ---- */

static int parse_api_version(const char *text, int *minor)
{
  int major;

  if (!text || sscanf(text, "%d.%d", &major, minor) != 2 || major != 1)
    return -EINVAL;
  return 0;
}

static int negotiate(struct docker_backend *be, struct rbx_error *err)
{
  cJSON *json = NULL;
  const cJSON *api, *version, *components;
  int minor;
  int rc;

  be->api_prefix[0] = '\0';
  rc = docker_request_sync(be, "GET", "/version", NULL, &json, err);
  if (rc < 0)
    return rc;
  api = cJSON_GetObjectItemCaseSensitive(json, "ApiVersion");
  version = cJSON_GetObjectItemCaseSensitive(json, "Version");
  components = cJSON_GetObjectItemCaseSensitive(json, "Components");
  if (!cJSON_IsString(api) || parse_api_version(api->valuestring, &minor) < 0) {
    cJSON_Delete(json);
    return rbx_err_set(err, RBX_ERR_DAEMON, -EPROTO,
                       "the daemon at %s sent no usable ApiVersion in "
                       "/version; is it a Docker-compatible engine?",
                       be->ep.url);
  }
  if (minor < API_VERSION_MIN_MINOR) {
    rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOTSUP,
                "the daemon at %s speaks Engine API %.32s; ringbox needs "
                "1.%d or newer",
                be->ep.url, api->valuestring, API_VERSION_MIN_MINOR);
    cJSON_Delete(json);
    return -ENOTSUP;
  }
  if (minor > API_VERSION_MAX_MINOR)
    minor = API_VERSION_MAX_MINOR;
  snprintf(be->api_prefix, sizeof(be->api_prefix), "/v1.%d", minor);
  snprintf(be->engine_version, sizeof(be->engine_version), "%s",
           cJSON_IsString(version) ? version->valuestring : "unknown");
  snprintf(be->engine_name, sizeof(be->engine_name), "docker");
  {
    const cJSON *component;

    cJSON_ArrayForEach(component, components)
    {
      const cJSON *name = cJSON_GetObjectItemCaseSensitive(component, "Name");

      if (cJSON_IsString(name) && strstr(name->valuestring, "Podman")) {
        /* Podman advertises an older API version than it implements and
         * answers some conflicts with 500. */
        be->quirks.podman = true;
        be->quirks.libpod_internal_network = true;
        be->quirks.seccomp_blocks_io_uring = true;
        be->quirks.conflict_as_500 = true;
        be->quirks.ulimits_replace_defaults = true;
        be->quirks.no_event_name_filter = true;
        snprintf(be->engine_name, sizeof(be->engine_name), "podman");
      }
    }
  }
  rbx_log(&be->ctx->log, RBX_LOG_INFO,
          "connected engine=%s version=%s api=%s daemon=%s", be->engine_name,
          be->engine_version, be->api_prefix + 1, be->ep.url);
  cJSON_Delete(json);
  return 0;
}

static int make_owner(struct docker_backend *be, struct rbx_error *err)
{
  unsigned long long start;
  char boot[64];
  int rc = docker_proc_start_time((int)getpid(), &start);

  if (rc == 0)
    rc = docker_boot_id(boot, sizeof(boot));
  if (rc < 0)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, rc,
                       "cannot read this process's start time or the boot "
                       "id from /proc: %s",
                       strerror(-rc));
  /* The PID namespace is part of the owner: a sweep in another namespace
   * cannot see this pid in /proc and must not take it for gone. */
  snprintf(be->owner, sizeof(be->owner), "%d:%llu:%s:%llu", (int)getpid(),
           start, boot, docker_pid_namespace());
  return 0;
}

static void docker_free(struct rbx_context *ctx);

static unsigned docker_cleanups(struct rbx_context *ctx)
{
  const struct docker_backend *be = ctx->backend_state;

  return be->reaping_count + be->background;
}

static const struct backend_ops docker_ops = {
    .name = "docker",
    .start = docker_start,
    .cancel = docker_cancel,
    .free = docker_free,
    .cleanups = docker_cleanups,
};

const struct backend_ops *docker_backend_ops(void)
{
  return &docker_ops;
}

/* Tries the daemon addresses in order and keeps the first that responds
 * to /version. The error names every address tried. */
static int connect_first(struct docker_backend *be, const char *const *urls,
                         size_t count, struct rbx_error *err)
{
  char tried[RBX_ERROR_MESSAGE_MAX] = "";
  size_t used = 0;
  struct rbx_error last;

  rbx_err_clear(&last);
  for (size_t i = 0; i < count; i++) {
    int rc;

    if (!urls[i] || !urls[i][0])
      continue;
    rc = http_endpoint_parse(urls[i], &be->ep, err);
    if (rc < 0)
      return rc;
    rc = http_client_new(&be->http, be->ctx->loop, &be->ep,
                         be->ctx->opts.max_connections, &be->ctx->log, err);
    if (rc < 0)
      return rc;
    rc = negotiate(be, &last);
    if (rc == 0)
      return 0;
    http_client_close(be->http);
    be->http = NULL;
    while (eng_in_flight(be->ctx->loop) > 0)
      eng_run_once(be->ctx->loop, true);
    if (last.kind != RBX_ERR_UNAVAILABLE && last.kind != RBX_ERR_IO) {
      if (err)
        *err = last;
      return rc;
    }
    used += (size_t)snprintf(tried + used, sizeof(tried) - used, "%s%s",
                             used ? ", " : "", urls[i]);
    if (used >= sizeof(tried))
      used = sizeof(tried) - 1;
  }
  if (be->ctx->opts.runtime == RBX_RUNTIME_PODMAN)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ECONNREFUSED,
                       "no Podman service answered at %s (%s); start one "
                       "(scripts/start-daemons) or set PODMAN_SOCKET to its "
                       "address",
                       tried,
                       last.code < 0 ? strerror(-last.code) : last.message);
  return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ECONNREFUSED,
                     "no Docker daemon answered at %s (%s); start one "
                     "(scripts/start-daemons) or set DOCKER_HOST to its "
                     "address",
                     tried, last.code < 0 ? strerror(-last.code) : last.message);
}

static int pick_daemon(struct docker_backend *be, struct rbx_error *err)
{
  const struct rbx_options *opts = &be->ctx->opts;
  char rootless[300] = "";
  const char *xdg = getenv("XDG_RUNTIME_DIR");

  if (opts->daemon_url) {
    const char *urls[] = {opts->daemon_url};

    return connect_first(be, urls, 1, err);
  }
  if (opts->runtime == RBX_RUNTIME_PODMAN) {
    if (xdg && *xdg)
      snprintf(rootless, sizeof(rootless), "unix://%s/podman/podman.sock",
               xdg);
    const char *urls[] = {getenv("PODMAN_SOCKET"), getenv("CONTAINER_HOST"),
                          "unix:///run/podman/podman.sock", rootless};

    return connect_first(be, urls, 4, err);
  }
  {
    const char *docker_host = getenv("DOCKER_HOST");
    const char *urls[] = {docker_host && *docker_host
                              ? docker_host
                              : "unix:///var/run/docker.sock"};

    return connect_first(be, urls, 1, err);
  }
}

int docker_backend_init(struct rbx_context *ctx, struct rbx_error *err)
{
  struct docker_backend *be = calloc(1, sizeof(*be));
  int rc;

  if (!be)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  be->ctx = ctx;
  ctx->backend = &docker_ops;
  ctx->backend_state = be;
  rc = make_owner(be, err);
  if (rc == 0)
    rc = pick_daemon(be, err);
  if (rc == 0 && !ctx->opts.no_startup_sweep) {
    struct rbx_error serr;

    if (docker_sweep(be, false, &serr) < 0)
      rbx_log(&ctx->log, RBX_LOG_WARN, "start-up sweep failed: %s",
              serr.message);
  }
  if (rc == 0 && !ctx->opts.no_events_stream)
    rc = docker_events_start(be, err);
  if (rc < 0) {
    if (be->http) {
      http_client_close(be->http);
      while (eng_in_flight(ctx->loop) > 0)
        if (eng_run_once(ctx->loop, true) < 0)
          break;
    }
    free(be);
    ctx->backend_state = NULL;
    return rc;
  }
  return 0;
}

static void docker_free(struct rbx_context *ctx)
{
  struct docker_backend *be = ctx->backend_state;
  uint64_t until = eng_now_ms() + DOCKER_REQUEST_TIMEOUT_MS;

  if (!be)
    return;
  /* Let background removals finish, bounded by the request timeout. */
  while (be->reaping_count > 0 && eng_now_ms() < until)
    if (eng_run_once(ctx->loop, true) < 0)
      break;
  docker_holder_flush(be);
  while (be->background > 0 && eng_now_ms() < until)
    if (eng_run_once(ctx->loop, true) < 0)
      break;
  {
    struct rbx_error err;

    if (docker_sweep(be, true, &err) < 0)
      rbx_log(&ctx->log, RBX_LOG_WARN, "shutdown sweep failed: %s",
              err.message);
  }
  docker_events_stop(be);
  http_client_close(be->http);
  while (eng_in_flight(ctx->loop) > 0)
    if (eng_run_once(ctx->loop, true) < 0)
      break;
  while (be->recv_spares)
    free(recv_buffer_take(be));
  free(be);
}
