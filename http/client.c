/* The HTTP/1.1 client: requests queue on the client, run on pooled
 * keep-alive connections (or a connection of their own for hijacked and
 * dedicated calls), and responses are parsed by llhttp as bytes arrive. */
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/error.h"
#include "http/http.h"

#define CONN_RECV_BUF (4 * 1024)
#define REQUEST_HEAD_MAX 4096

struct http_conn;

struct http_call {
  struct http_client *client;
  struct http_call *next, *prev; /* client's pending list, or detached */
  struct http_conn *conn;
  http_done_fn done;
  void *data;
  http_body_fn on_body;
  http_headers_fn on_headers;
  bool hijack;
  bool dedicated;
  bool urgent;
  bool retried;        /* already re-sent once after a stale keep-alive */
  bool finished;
  char *request;       /* head and body, ready to send */
  size_t request_len;
  size_t sent;
  struct eng_op timer_op;
  uint64_t timeout_ms;
  /* Response state. */
  int status;
  bool headers_done;
  bool streaming;      /* body goes to on_body */
  bool complete;
  bool upgrade;
  size_t header_bytes;
  bool in_content_type;
  char header_name[32];
  size_t header_name_len;
  char content_type[128];
  char *body;
  size_t body_len;
  size_t body_cap;
  size_t received;     /* response bytes seen on this connection */
};

enum conn_state { CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct http_conn {
  struct http_client *client;
  struct http_conn *next, *prev; /* client's connection list */
  int fd;
  enum conn_state state;
  bool pooled;   /* counts against max_conns */
  bool closing;  /* close once the op in flight returns */
  bool reused;   /* served a call before */
  struct eng_op io_op;
  struct http_call *call;
  llhttp_t parser;
  uint8_t buf[CONN_RECV_BUF];
};

struct http_client {
  struct eng_loop *loop;
  struct http_endpoint ep;
  const struct rbx_logger *log;
  unsigned max_conns;
  unsigned pooled_conns;
  unsigned conn_count;
  unsigned call_count;
  struct http_call *pending_head, *pending_tail;
  struct http_conn *conns;
  struct eng_op kick_op;
  bool closing;
  bool in_close; /* http_client_close is running: do not free yet */
};

static llhttp_settings_t parser_settings;
static bool parser_settings_ready;

static void dispatch(struct http_client *client);
static void conn_start_send(struct http_conn *conn);
static void conn_start_recv(struct http_conn *conn);
static void conn_release(struct http_conn *conn, bool reusable);
static void maybe_free_client(struct http_client *client);

/* ---- calls ---- */

static void pending_remove(struct http_client *client, struct http_call *call)
{
  if (call->prev)
    call->prev->next = call->next;
  else if (client->pending_head == call)
    client->pending_head = call->next;
  if (call->next)
    call->next->prev = call->prev;
  else if (client->pending_tail == call)
    client->pending_tail = call->prev;
  call->next = call->prev = NULL;
}

static void pending_push(struct http_client *client, struct http_call *call,
                         bool front)
{
  call->next = call->prev = NULL;
  if (!client->pending_head) {
    client->pending_head = client->pending_tail = call;
  } else if (front) {
    call->next = client->pending_head;
    client->pending_head->prev = call;
    client->pending_head = call;
  } else {
    call->prev = client->pending_tail;
    client->pending_tail->next = call;
    client->pending_tail = call;
  }
}

/* Inserts call after the last urgent call in the queue. */
static void pending_push_urgent(struct http_client *client,
                                struct http_call *call)
{
  struct http_call *after = NULL;

  for (struct http_call *c = client->pending_head; c && c->urgent;
       c = c->next)
    after = c;
  if (!after) {
    pending_push(client, call, true);
    return;
  }
  call->prev = after;
  call->next = after->next;
  if (after->next)
    after->next->prev = call;
  else
    client->pending_tail = call;
  after->next = call;
}

static bool call_is_pending(struct http_client *client, struct http_call *call)
{
  return call->prev || call->next || client->pending_head == call;
}

static void call_free_if_idle(struct http_call *call)
{
  struct http_client *client = call->client;

  if (!call->finished || call->timer_op.in_flight)
    return;
  free(call->request);
  free(call->body);
  free(call);
  client->call_count--;
  maybe_free_client(client);
}

/* Delivers the outcome of a call exactly once. */
static void call_complete(struct http_call *call, struct http_response *resp,
                          const struct rbx_error *err)
{
  if (call->finished)
    return;
  call->finished = true;
  if (call->timer_op.in_flight)
    eng_cancel(&call->timer_op);
  call->done(call, resp, err, call->data);
}

static void on_call_timer(struct eng_op *op, int res)
{
  struct http_call *call = op->data;
  struct http_client *client = call->client;

  if (res == -ETIME && !call->finished) {
    if (call_is_pending(client, call))
      pending_remove(client, call);
    if (call->conn) {
      struct http_conn *conn = call->conn;

      call->conn = NULL;
      conn->call = NULL;
      conn_release(conn, false);
    }
    struct rbx_error err;

    rbx_err_set(&err, RBX_ERR_TIMEOUT, -ETIMEDOUT,
                "no answer from the daemon at %s within %llu ms",
                client->ep.url, (unsigned long long)call->timeout_ms);
    call_complete(call, NULL, &err);
  }
  call_free_if_idle(call);
}

static int build_request(struct http_call *call, const struct http_request *req,
                         const char *host, struct rbx_error *err)
{
  char head[REQUEST_HEAD_MAX];
  int n;

  if (req->hijack)
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ringbox/"
                 RBX_VERSION "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n",
                 req->method, req->target, host);
  else
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ringbox/"
                 RBX_VERSION "\r\n",
                 req->method, req->target, host);
  if (n < 0 || (size_t)n >= sizeof(head) - 128)
    return rbx_err_set(err, RBX_ERR_INVALID, -ENAMETOOLONG,
                       "request %s %.64s...: target is too long",
                       req->method, req->target);
  if (req->body) {
    n += snprintf(head + n, sizeof(head) - (size_t)n,
                  "Content-Type: %s\r\nContent-Length: %zu\r\n",
                  req->content_type ? req->content_type : "application/json",
                  req->body_len);
  } else if (strcmp(req->method, "POST") == 0 && !req->hijack) {
    n += snprintf(head + n, sizeof(head) - (size_t)n,
                  "Content-Length: 0\r\n");
  }
  n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");

  call->request_len = (size_t)n + (req->body ? req->body_len : 0);
  call->request = malloc(call->request_len);
  if (!call->request)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  memcpy(call->request, head, (size_t)n);
  if (req->body)
    memcpy(call->request + n, req->body, req->body_len);
  return 0;
}

struct http_call *http_request(struct http_client *client,
                               const struct http_request *req,
                               http_done_fn done, void *data,
                               struct rbx_error *err)
{
  struct http_call *call;

  if (client->closing) {
    rbx_err_set(err, RBX_ERR_CANCELLED, -ECANCELED,
                "http client for %s is closing", client->ep.url);
    return NULL;
  }
  call = calloc(1, sizeof(*call));
  if (!call) {
    rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
    return NULL;
  }
  if (build_request(call, req, client->ep.host_header, err) < 0) {
    free(call);
    return NULL;
  }
  call->client = client;
  call->done = done;
  call->data = data;
  call->on_body = req->on_body;
  call->on_headers = req->on_headers;
  call->hijack = req->hijack;
  call->dedicated = req->dedicated || req->hijack;
  call->timeout_ms = req->timeout_ms;
  eng_op_init(&call->timer_op, client->loop, on_call_timer, call);
  client->call_count++;
  call->urgent = req->urgent;
  if (call->urgent)
    pending_push_urgent(client, call);
  else
    pending_push(client, call, false);
  if (!client->kick_op.in_flight)
    eng_defer(&client->kick_op);
  return call;
}

bool http_call_cancel_queued(struct http_call *call)
{
  if (call->finished || !call_is_pending(call->client, call))
    return false;
  http_call_cancel(call);
  return true;
}

void http_call_cancel(struct http_call *call)
{
  struct http_client *client = call->client;
  struct rbx_error err;

  if (call->finished)
    return;
  if (call_is_pending(client, call))
    pending_remove(client, call);
  if (call->conn) {
    struct http_conn *conn = call->conn;

    call->conn = NULL;
    conn->call = NULL;
    conn_release(conn, false);
  }
  rbx_err_set(&err, RBX_ERR_CANCELLED, -ECANCELED, "request cancelled");
  call_complete(call, NULL, &err);
  call_free_if_idle(call);
}

/* ---- response parsing ---- */

static int grow_body(struct http_call *call, const char *at, size_t len)
{
  /* The limit counts body bytes; the buffer has one more for the NUL. */
  if (call->body_len + len > HTTP_BODY_MAX)
    return -1;
  if (call->body_len + len + 1 > call->body_cap) {
    size_t cap = call->body_cap ? call->body_cap : 1024;
    char *body;

    while (cap < call->body_len + len + 1)
      cap *= 2;
    if (cap > HTTP_BODY_MAX + 1)
      cap = HTTP_BODY_MAX + 1;
    body = realloc(call->body, cap);
    if (!body)
      return -1;
    call->body = body;
    call->body_cap = cap;
  }
  memcpy(call->body + call->body_len, at, len);
  call->body_len += len;
  call->body[call->body_len] = '\0';
  return 0;
}

static struct http_call *parser_call(llhttp_t *parser)
{
  struct http_conn *conn = parser->data;

  return conn->call;
}

static int count_header_bytes(struct http_call *call, size_t len)
{
  call->header_bytes += len;
  return call->header_bytes > HTTP_HEADERS_MAX ? -1 : 0;
}

static int on_status(llhttp_t *parser, const char *at, size_t len)
{
  (void)at;
  return count_header_bytes(parser_call(parser), len);
}

static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
  struct http_call *call = parser_call(parser);

  if (count_header_bytes(call, len) < 0)
    return -1;
  if (call->header_name_len + len < sizeof(call->header_name)) {
    memcpy(call->header_name + call->header_name_len, at, len);
    call->header_name_len += len;
    call->header_name[call->header_name_len] = '\0';
  } else {
    call->header_name_len = sizeof(call->header_name);
  }
  return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
  struct http_call *call = parser_call(parser);

  if (count_header_bytes(call, len) < 0)
    return -1;
  if (call->header_name_len < sizeof(call->header_name) &&
      strcasecmp(call->header_name, "content-type") == 0) {
    size_t have = strlen(call->content_type);

    if (have + len < sizeof(call->content_type)) {
      memcpy(call->content_type + have, at, len);
      call->content_type[have + len] = '\0';
    }
  }
  return 0;
}

static int on_header_value_complete(llhttp_t *parser)
{
  struct http_call *call = parser_call(parser);

  call->header_name_len = 0;
  call->header_name[0] = '\0';
  return 0;
}

static bool is_raw_stream_type(const char *type)
{
  return strncasecmp(type, "application/vnd.docker.raw-stream", 33) == 0 ||
         strncasecmp(type, "application/vnd.docker.multiplexed-stream",
                     41) == 0;
}

static int on_headers_complete(llhttp_t *parser)
{
  struct http_call *call = parser_call(parser);
  bool framed = parser->flags & (F_CONTENT_LENGTH | F_CHUNKED);

  call->status = parser->status_code;
  call->headers_done = true;
  if (call->hijack) {
    /* A stream is a 101, or a 200 whose body is an unframed raw stream. A
     * 200 with a length or chunks is an ordinary response. */
    if (call->status == 101 ||
        (call->status == 200 && !framed &&
         is_raw_stream_type(call->content_type))) {
      call->upgrade = true;
      return 2;
    }
  }
  if (call->on_body && call->status >= 200 && call->status < 300)
    call->streaming = true;
  if (call->on_headers)
    call->on_headers(call->data, call->status);
  return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
  struct http_call *call = parser_call(parser);

  if (call->streaming)
    return call->on_body(call->data, at, len) < 0 ? HPE_USER : 0;
  return grow_body(call, at, len) < 0 ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *parser)
{
  struct http_call *call = parser_call(parser);

  call->complete = true;
  return HPE_PAUSED;
}

static void init_parser_settings(void)
{
  if (parser_settings_ready)
    return;
  llhttp_settings_init(&parser_settings);
  parser_settings.on_status = on_status;
  parser_settings.on_header_field = on_header_field;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_message_complete = on_message_complete;
  parser_settings_ready = true;
}

/* ---- connections ---- */

static void conn_unlink(struct http_conn *conn)
{
  struct http_client *client = conn->client;

  if (conn->prev)
    conn->prev->next = conn->next;
  else
    client->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  client->conn_count--;
  if (conn->pooled)
    client->pooled_conns--;
}

static void conn_destroy(struct http_conn *conn)
{
  struct http_client *client = conn->client;

  if (conn->fd >= 0)
    close(conn->fd);
  conn_unlink(conn);
  free(conn);
  dispatch(client);
  maybe_free_client(client);
}

/* Returns a connection to the pool, or closes it. A connection with an
 * operation in flight is closed when that operation comes back. */
static void conn_release(struct http_conn *conn, bool reusable)
{
  conn->call = NULL;
  if (reusable && conn->pooled && !conn->client->closing) {
    conn->state = CONN_IDLE;
    conn->reused = true;
    dispatch(conn->client);
    return;
  }
  conn->closing = true;
  if (conn->io_op.in_flight) {
    eng_cancel(&conn->io_op);
    return;
  }
  conn_destroy(conn);
}

/* Fails the call on conn and drops the connection. */
static void conn_fail(struct http_conn *conn, enum rbx_error_kind kind,
                      int code, const char *what)
{
  struct http_call *call = conn->call;
  struct rbx_error err;

  conn_release(conn, false);
  if (!call)
    return;
  call->conn = NULL;
  rbx_err_set(&err, kind, code, "%s (daemon %s)", what, call->client->ep.url);
  call_complete(call, NULL, &err);
  call_free_if_idle(call);
}

static void deliver_response(struct http_conn *conn, const uint8_t *extra,
                             size_t extra_len)
{
  struct http_call *call = conn->call;
  struct http_response resp;
  bool reusable;

  memset(&resp, 0, sizeof(resp));
  resp.status = call->status;
  resp.body = call->body ? call->body : (char *)"";
  resp.body_len = call->body_len;
  resp.fd = -1;
  snprintf(resp.content_type, sizeof(resp.content_type), "%s",
           call->content_type);
  call->conn = NULL;
  if (call->upgrade) {
    resp.fd = conn->fd;
    resp.extra = (uint8_t *)extra;
    resp.extra_len = extra_len;
    conn->fd = -1;
    call_complete(call, &resp, NULL);
    conn_release(conn, false);
    call_free_if_idle(call);
    return;
  }
  /* Bytes after a complete response mean the peer is out of step, so such
   * a connection is never reused. */
  reusable = llhttp_should_keep_alive(&conn->parser) && extra_len == 0;
  conn_release(conn, reusable);
  call_complete(call, &resp, NULL);
  call_free_if_idle(call);
}

static void conn_parse(struct http_conn *conn, const uint8_t *data, size_t len)
{
  struct http_call *call = conn->call;
  llhttp_errno_t rc = llhttp_execute(&conn->parser, (const char *)data, len);
  size_t used;

  if (rc == HPE_OK) {
    conn_start_recv(conn);
    return;
  }
  if (rc == HPE_PAUSED_UPGRADE || (rc == HPE_PAUSED && call->complete)) {
    const char *pos = llhttp_get_error_pos(&conn->parser);

    used = pos ? (size_t)(pos - (const char *)data) : len;
    if (used > len)
      used = len;
    /* llhttp reports a 101 as a complete message before it pauses for
     * the upgrade, so the status decides. */
    if ((rc == HPE_PAUSED_UPGRADE || call->status == 101) &&
        !call->upgrade) {
      conn_fail(conn, RBX_ERR_IO, -EPROTO,
                "daemon switched protocols on a plain request");
      return;
    }
    deliver_response(conn, data + used, len - used);
    return;
  }
  if (rc == HPE_USER && call->header_bytes > HTTP_HEADERS_MAX) {
    conn_fail(conn, RBX_ERR_IO, -EMSGSIZE,
              "response headers exceed " "64 KiB");
    return;
  }
  if (rc == HPE_USER && !call->streaming) {
    conn_fail(conn, RBX_ERR_IO, -EMSGSIZE,
              "response body exceeds the limit of 8 MiB");
    return;
  }
  if (rc == HPE_USER) {
    conn_fail(conn, RBX_ERR_IO, -ECANCELED, "response stream aborted");
    return;
  }
  {
    char what[200];

    snprintf(what, sizeof(what), "invalid HTTP response: %s",
             llhttp_errno_name(rc));
    conn_fail(conn, RBX_ERR_IO, -EPROTO, what);
  }
}

static void on_conn_io(struct eng_op *op, int res);

static void conn_start_recv(struct http_conn *conn)
{
  int rc = eng_recv(&conn->io_op, conn->fd, conn->buf, sizeof(conn->buf));

  if (rc < 0)
    conn_fail(conn, RBX_ERR_IO, rc, "cannot queue a receive");
}

static void conn_start_send(struct http_conn *conn)
{
  struct http_call *call = conn->call;
  int rc = eng_send(&conn->io_op, conn->fd, call->request + call->sent,
                    call->request_len - call->sent);

  if (rc < 0)
    conn_fail(conn, RBX_ERR_IO, rc, "cannot queue a send");
}

/* A kept-alive connection may have been closed by the daemon while idle.
 * A call that saw no byte of response on it is sent again once, on a new
 * connection. */
static bool retry_on_stale(struct http_conn *conn)
{
  struct http_call *call = conn->call;

  if (!call || !conn->reused || call->retried || call->received > 0)
    return false;
  call->retried = true;
  call->sent = 0;
  call->conn = NULL;
  conn->call = NULL;
  conn->reused = false;
  conn_release(conn, false);
  pending_push(call->client, call, true);
  dispatch(call->client);
  return true;
}

static void on_recv_done(struct http_conn *conn, int res)
{
  struct http_call *call = conn->call;

  if (res < 0) {
    if ((res == -ECONNRESET || res == -EPIPE) && retry_on_stale(conn))
      return;
    conn_fail(conn, RBX_ERR_IO, res, "receive from daemon failed");
    return;
  }
  if (res == 0) {
    if (retry_on_stale(conn))
      return;
    if (call->headers_done && llhttp_finish(&conn->parser) == HPE_OK &&
        call->complete) {
      deliver_response(conn, NULL, 0);
      return;
    }
    if (call->headers_done && call->complete) {
      deliver_response(conn, NULL, 0);
      return;
    }
    conn_fail(conn, RBX_ERR_IO, -ECONNRESET,
              call->headers_done ? "daemon closed the connection mid-body"
                                 : "daemon closed the connection before "
                                   "answering");
    return;
  }
  call->received += (size_t)res;
  conn_parse(conn, conn->buf, (size_t)res);
}

static void on_conn_io(struct eng_op *op, int res)
{
  struct http_conn *conn = op->data;
  struct http_call *call = conn->call;

  if (conn->closing) {
    conn_destroy(conn);
    return;
  }
  switch (conn->state) {
  case CONN_CONNECTING:
    if (res < 0) {
      char what[160];

      snprintf(what, sizeof(what),
               "cannot connect: %s", strerror(-res));
      conn_fail(conn, RBX_ERR_UNAVAILABLE, res, what);
      return;
    }
    conn->state = CONN_BUSY;
    conn_start_send(conn);
    return;
  case CONN_BUSY:
    if (call->sent < call->request_len) {
      if (res < 0) {
        if ((res == -EPIPE || res == -ECONNRESET) && retry_on_stale(conn))
          return;
        conn_fail(conn, RBX_ERR_IO, res, "send to daemon failed");
        return;
      }
      call->sent += (size_t)res;
      if (call->sent < call->request_len)
        conn_start_send(conn);
      else
        conn_start_recv(conn);
      return;
    }
    on_recv_done(conn, res);
    return;
  case CONN_IDLE:
    return;
  }
}

static void conn_attach_call(struct http_conn *conn, struct http_call *call)
{
  /* The timeout measures the daemon, so it starts when the request gets a
   * connection, not while it waits in the client's queue. A retry keeps
   * the timer already running. */
  if (call->timeout_ms && !call->timer_op.in_flight)
    eng_timer(&call->timer_op, call->timeout_ms);
  conn->call = call;
  call->conn = conn;
  call->sent = 0;
  call->received = 0;
  call->status = 0;
  call->headers_done = call->complete = call->upgrade = false;
  call->streaming = false;
  call->header_bytes = 0;
  call->header_name_len = 0;
  call->content_type[0] = '\0';
  call->body_len = 0;
  llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
  conn->parser.data = conn;
}

static struct http_conn *conn_open(struct http_client *client, bool pooled,
                                   struct http_call *call)
{
  struct http_conn *conn = calloc(1, sizeof(*conn));

  if (!conn)
    return NULL;
  conn->client = client;
  conn->fd = socket(client->ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (conn->fd < 0) {
    free(conn);
    return NULL;
  }
  conn->pooled = pooled;
  conn->state = CONN_CONNECTING;
  eng_op_init(&conn->io_op, client->loop, on_conn_io, conn);
  conn->next = client->conns;
  if (client->conns)
    client->conns->prev = conn;
  client->conns = conn;
  client->conn_count++;
  if (pooled)
    client->pooled_conns++;
  conn_attach_call(conn, call);
  if (eng_connect(&conn->io_op, conn->fd,
                  (const struct sockaddr *)&client->ep.addr,
                  client->ep.addrlen) < 0) {
    conn->call = NULL;
    call->conn = NULL;
    close(conn->fd);
    conn->fd = -1;
    conn_unlink(conn);
    free(conn);
    return NULL;
  }
  return conn;
}

static struct http_conn *find_idle(struct http_client *client)
{
  for (struct http_conn *c = client->conns; c; c = c->next)
    if (c->state == CONN_IDLE && !c->closing)
      return c;
  return NULL;
}

static void dispatch(struct http_client *client)
{
  struct http_call *call = client->pending_head;

  while (call) {
    struct http_call *next = call->next;
    struct http_conn *conn = NULL;

    if (!call->dedicated) {
      conn = find_idle(client);
      if (conn) {
        pending_remove(client, call);
        conn->state = CONN_BUSY;
        conn_attach_call(conn, call);
        conn_start_send(conn);
        call = next;
        continue;
      }
      if (client->pooled_conns >= client->max_conns) {
        call = next;
        continue;
      }
    }
    pending_remove(client, call);
    conn = conn_open(client, !call->dedicated, call);
    if (!conn) {
      struct rbx_error err;

      rbx_err_set(&err, RBX_ERR_IO, -EMFILE,
                  "cannot open a connection to %s: %s", client->ep.url,
                  strerror(errno));
      call_complete(call, NULL, &err);
      call_free_if_idle(call);
    }
    call = next;
  }
}

static void on_kick(struct eng_op *op, int res)
{
  struct http_client *client = op->data;

  (void)res;
  dispatch(client);
  maybe_free_client(client);
}

/* ---- client ---- */

int http_client_new(struct http_client **out, struct eng_loop *loop,
                    const struct http_endpoint *ep, unsigned max_conns,
                    const struct rbx_logger *log, struct rbx_error *err)
{
  struct http_client *client = calloc(1, sizeof(*client));

  if (!client)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  init_parser_settings();
  client->loop = loop;
  client->ep = *ep;
  client->log = log;
  client->max_conns = max_conns ? max_conns : 8;
  eng_op_init(&client->kick_op, loop, on_kick, client);
  *out = client;
  return 0;
}

static void maybe_free_client(struct http_client *client)
{
  if (!client->closing || client->in_close || client->conn_count ||
      client->call_count || client->kick_op.in_flight)
    return;
  free(client);
}

void http_client_close(struct http_client *client)
{
  struct http_conn *conn;

  if (!client)
    return;
  client->closing = true;
  client->in_close = true;
  while (client->pending_head)
    http_call_cancel(client->pending_head);
  conn = client->conns;
  while (conn) {
    struct http_conn *next = conn->next;

    if (conn->call)
      http_call_cancel(conn->call);
    else if (!conn->closing)
      conn_release(conn, false);
    conn = next;
  }
  client->in_close = false;
  maybe_free_client(client);
}

int http_parse_response_bytes(const uint8_t *data, size_t len, bool hijack,
                              size_t piece)
{
  struct http_conn *conn = calloc(1, sizeof(*conn));
  struct http_call *call = calloc(1, sizeof(*call));
  int rc = 0;

  if (!conn || !call) {
    free(conn);
    free(call);
    return -ENOMEM;
  }
  init_parser_settings();
  conn->fd = -1;
  call->hijack = hijack;
  conn_attach_call(conn, call);
  for (size_t at = 0; at < len && rc == 0;) {
    size_t n = piece && piece < len - at ? piece : len - at;
    llhttp_errno_t e = llhttp_execute(&conn->parser, (const char *)data + at,
                                      n);

    at += n;
    if (e == HPE_OK)
      continue;
    if (e == HPE_PAUSED_UPGRADE || (e == HPE_PAUSED && call->complete))
      rc = call->status == 101 && !call->upgrade ? -EPROTO : call->status;
    else
      rc = e == HPE_USER ? -EMSGSIZE : -EPROTO;
  }
  if (rc == 0 && call->headers_done) {
    /* The end of the input is the end of a body without a length. */
    llhttp_finish(&conn->parser);
    if (call->complete)
      rc = call->status;
  }
  free(call->body);
  free(call);
  free(conn);
  return rc;
}

unsigned http_client_calls(const struct http_client *client)
{
  return client->call_count;
}

unsigned http_client_connections(const struct http_client *client)
{
  return client->conn_count;
}
