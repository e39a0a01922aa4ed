/* One /events stream per context, filtered to this process's containers,
 * carries every exit code and out-of-memory event, in place of one wait
 * connection per execution. While the stream is down, executions fall back
 * to their own wait requests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker.h"
#include "engine/error.h"

/* Largest single event object kept; Docker's are about 1 KiB. */
#define EVENT_OBJECT_MAX (64 * 1024)
#define EVENTS_CONNECT_TIMEOUT_MS 5000
#define EVENTS_RETRY_MS 1000

struct docker_events {
  struct docker_backend *be;
  struct http_call *call;
  bool ready;    /* headers arrived: events from now on are seen */
  bool stopping;
  struct eng_op retry_op;
  /* The object being assembled from the stream. */
  char *object;
  size_t object_len;
  int depth;
  bool in_string;
  bool escaped;
};

static void events_connect(struct docker_events *ev);

static void handle_object(struct docker_events *ev, const char *text,
                          size_t len)
{
  cJSON *json = cJSON_ParseWithLength(text, len);
  const cJSON *action = cJSON_GetObjectItemCaseSensitive(json, "Action");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(json, "status");
  const cJSON *actor = cJSON_GetObjectItemCaseSensitive(json, "Actor");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(actor, "ID");
  const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(attrs, "exitCode");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
  const char *event_name = cJSON_IsString(action)   ? action->valuestring
                     : cJSON_IsString(status) ? status->valuestring
                                              : NULL;

  if (cJSON_IsString(error)) {
    rbx_log(&ev->be->ctx->log, RBX_LOG_WARN, "events stream error: %s",
            error->valuestring);
  } else if (event_name && cJSON_IsString(id)) {
    if (strcmp(event_name, "oom") == 0)
      docker_exec_event(ev->be, id->valuestring, true, -1);
    else if (strcmp(event_name, "die") == 0 && cJSON_IsString(code))
      docker_exec_event(ev->be, id->valuestring, false,
                        atoi(code->valuestring));
  }
  cJSON_Delete(json);
}

/* Splits the body into JSON objects by brace depth, so objects sent back
 * to back without a newline, or split across chunks, are still whole. */
static int on_events_body(void *data, const char *buf, size_t len)
{
  struct docker_events *ev = data;

  for (size_t i = 0; i < len; i++) {
    char c = buf[i];

    if (ev->depth == 0 && c != '{')
      continue; /* newlines between objects */
    if (ev->object_len >= EVENT_OBJECT_MAX) {
      rbx_log(&ev->be->ctx->log, RBX_LOG_WARN,
              "events stream: object over %d bytes; reconnecting",
              EVENT_OBJECT_MAX);
      return -EMSGSIZE;
    }
    ev->object[ev->object_len++] = c;
    if (ev->in_string) {
      if (ev->escaped)
        ev->escaped = false;
      else if (c == '\\')
        ev->escaped = true;
      else if (c == '"')
        ev->in_string = false;
      continue;
    }
    if (c == '"')
      ev->in_string = true;
    else if (c == '{')
      ev->depth++;
    else if (c == '}' && --ev->depth == 0) {
      handle_object(ev, ev->object, ev->object_len);
      ev->object_len = 0;
    }
  }
  return 0;
}

static void on_events_headers(void *data, int status)
{
  struct docker_events *ev = data;

  if (status != 200)
    return;
  ev->ready = true;
  rbx_log(&ev->be->ctx->log, RBX_LOG_DEBUG, "events stream connected");
}

static void on_retry(struct eng_op *op, int res)
{
  struct docker_events *ev = op->data;

  if (res == -ETIME && !ev->stopping)
    events_connect(ev);
}

static void on_events_done(struct http_call *call, struct http_response *resp,
                           const struct rbx_error *err, void *data)
{
  struct docker_events *ev = data;
  bool was_ready = ev->ready;

  (void)call;
  ev->call = NULL;
  ev->ready = false;
  ev->object_len = 0;
  ev->depth = 0;
  ev->in_string = ev->escaped = false;
  if (ev->stopping)
    return;
  if (err)
    rbx_log(&ev->be->ctx->log, was_ready ? RBX_LOG_WARN : RBX_LOG_DEBUG,
            "events stream ended: %s; executions wait on their own",
            err->message);
  else
    rbx_log(&ev->be->ctx->log, RBX_LOG_WARN,
            "events stream ended with status %d; executions wait on their "
            "own",
            resp->status);
  if (was_ready)
    docker_exec_events_lost(ev->be);
  eng_timer(&ev->retry_op, EVENTS_RETRY_MS);
}

static void events_connect(struct docker_events *ev)
{
  struct docker_backend *be = ev->be;
  char filters[512];
  char escaped[1024];
  char target[1200];
  struct http_request req = {0};
  struct rbx_error err;

  snprintf(filters, sizeof(filters),
           "{\"type\":[\"container\"],%s\"label\":[\"%s=%s\"]}",
           be->quirks.no_event_name_filter ? ""
                                           : "\"event\":[\"die\",\"oom\"],",
           DOCKER_LABEL_OWNER, be->owner);
  if (http_query_escape(filters, escaped, sizeof(escaped)) < 0)
    return;
  snprintf(target, sizeof(target), "%s/events?filters=%s", be->api_prefix,
           escaped);
  req.method = "GET";
  req.target = target;
  req.dedicated = true;
  req.on_body = on_events_body;
  req.on_headers = on_events_headers;
  ev->call = http_request(be->http, &req, on_events_done, ev, &err);
  if (!ev->call) {
    rbx_log(&be->ctx->log, RBX_LOG_WARN, "events stream: %s", err.message);
    eng_timer(&ev->retry_op, EVENTS_RETRY_MS);
  }
}

int docker_events_start(struct docker_backend *be, struct rbx_error *err)
{
  struct docker_events *ev = calloc(1, sizeof(*ev));
  uint64_t until = eng_now_ms() + EVENTS_CONNECT_TIMEOUT_MS;

  if (!ev)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  ev->object = malloc(EVENT_OBJECT_MAX);
  if (!ev->object) {
    free(ev);
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  }
  ev->be = be;
  eng_op_init(&ev->retry_op, be->ctx->loop, on_retry, ev);
  be->events = ev;
  events_connect(ev);
  /* Wait for the headers so the first executions already use the stream;
   * if they are slow, executions wait on their own until they come. */
  while (ev->call && !ev->ready && eng_now_ms() < until)
    if (eng_run_once(be->ctx->loop, true) < 0)
      break;
  return 0;
}

bool docker_events_ready(const struct docker_backend *be)
{
  return be->events && be->events->ready;
}

void docker_events_stop(struct docker_backend *be)
{
  struct docker_events *ev = be->events;

  if (!ev)
    return;
  ev->stopping = true;
  if (ev->call)
    http_call_cancel(ev->call);
  if (ev->retry_op.in_flight)
    eng_cancel(&ev->retry_op);
  while (ev->retry_op.in_flight)
    if (eng_run_once(be->ctx->loop, true) < 0)
      break;
  free(ev->object);
  free(ev);
  be->events = NULL;
}
