/* The egress proxy's server: accepts clients, judges each request, resolves
 * and connects upstream, and relays bytes with bounded buffers, all from
 * one thread on the io_uring loop. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/error.h"
#include "engine/log.h"
#include "proxy/request.h"
#include "proxy/resolve.h"
#include "proxy/rules.h"

/* Bytes buffered per direction of a connection; the client's direction
 * also stores the request head, so it is at least PROXY_HEAD_MAX. */
#define PROXY_RELAY_BUF_SIZE PROXY_HEAD_MAX
#define PROXY_HEAD_TIMEOUT_MS 30000    /* for the whole request head */
#define PROXY_CONNECT_TIMEOUT_MS 10000 /* resolution and connect together */
#define PROXY_LINGER_MS 2000 /* draining a client after the last reply */
#define PROXY_LINGER_MAX (64 * 1024)
#define PROXY_LISTEN_BACKLOG 1024
#define PROXY_ACCEPT_RETRY_MS 100
#define PROXY_LOG_VALUE_MAX 160

static const char connect_ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

enum conn_state {
  CONN_HEAD,    /* reading the request head */
  CONN_RESOLVE, /* looking up the target's name */
  CONN_CONNECT, /* connecting upstream */
  CONN_RELAY,   /* forwarding a request or a tunnel */
  CONN_REPLY,   /* sending a response made by the proxy */
  CONN_LINGER,  /* reading and dropping client bytes before closing */
};

struct conn;

/* One direction of a connection: bytes read from one socket are sent to
 * the other before the next read, so a direction needs one buffer. */
struct relay_dir {
  struct conn *conn;
  char buf[PROXY_RELAY_BUF_SIZE];
  size_t len;
  const char *out; /* bytes being sent: buf, or the upstream head */
  size_t out_len;
  size_t out_sent;
  bool sending;
  bool done; /* no more bytes will move this way */
  uint64_t bytes;
  struct eng_op op;
};

struct proxy;

struct conn {
  struct proxy *px;
  struct conn *prev, *next;
  uint64_t id;
  enum conn_state state;
  int cfd; /* client */
  int ufd; /* upstream */
  char client[64];
  struct proxy_head head;
  struct proxy_decision decision;
  char *upstream_head;
  size_t upstream_head_len;
  bool body_done;        /* the whole request body has been read */
  struct relay_dir up;   /* client to upstream */
  struct relay_dir down; /* upstream to client */
  struct proxy_query query;
  bool query_active;
  struct proxy_addrs addrs;
  size_t addr_next;
  char upstream[64];
  struct eng_op connect_op;
  struct eng_op timer_op;
  uint64_t deadline_ms;
  uint64_t timer_due_ms;
  uint64_t last_activity_ms;
  uint64_t started_ms;
  bool relayed; /* bytes moved between client and upstream */
  bool linger_started;
  uint64_t linger_bytes;
  unsigned pending; /* operations in flight, the query counting as one */
  bool closing;
};

struct proxy {
  const struct proxy_config *cfg;
  struct eng_loop *loop;
  struct rbx_logger log;
  struct proxy_resolver resolver;
  int listen_fd;
  struct eng_op accept_op;
  struct eng_op accept_timer;
  bool accept_paused;
  int signal_fd;
  struct signalfd_siginfo siginfo;
  struct eng_op signal_op;
  struct conn *conns;
  unsigned conn_count;
  uint64_t next_id;
  bool stopping;
};

static void conn_close(struct conn *c, const char *reason);
static void relay_step(struct relay_dir *d);
static void accept_next(struct proxy *px);

static const char *level_name(enum rbx_log_level level)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};

  return level <= RBX_LOG_DEBUG ? names[level] : "info";
}

static void stderr_sink(enum rbx_log_level level, const char *line,
                        void *userdata)
{
  struct timespec now;
  struct tm tm;
  char stamp[32];

  (void)userdata;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "ts=%s.%03ldZ level=%s %s\n", stamp, now.tv_nsec / 1000000,
          level_name(level), line);
}

/* Writes text as a log value: bare when it is made of safe characters,
 * else quoted with escapes, and cut at PROXY_LOG_VALUE_MAX bytes. */
static void log_value(char *out, size_t size, const char *text, size_t len)
{
  bool bare = len > 0;
  size_t used = 0;

  for (size_t i = 0; i < len && bare; i++) {
    unsigned char ch = (unsigned char)text[i];

    bare = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && ch != '=';
  }
  if (bare && len < size && len <= PROXY_LOG_VALUE_MAX) {
    memcpy(out, text, len);
    out[len] = '\0';
    return;
  }
  out[used++] = '"';
  for (size_t i = 0; i < len && i < PROXY_LOG_VALUE_MAX; i++) {
    unsigned char ch = (unsigned char)text[i];

    if (used + 6 >= size)
      break;
    if (ch == '"' || ch == '\\')
      used += (size_t)snprintf(out + used, size - used, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      used += (size_t)snprintf(out + used, size - used, "\\x%02x", ch);
    else
      out[used++] = (char)ch;
  }
  if (len > PROXY_LOG_VALUE_MAX && used + 5 < size) {
    memcpy(out + used, "...", 3);
    used += 3;
  }
  out[used++] = '"';
  out[used] = '\0';
}

static const char *method_of(const struct conn *c)
{
  if (!c->head.complete)
    return "-";
  return llhttp_method_name((llhttp_method_t)c->head.method);
}

/* Logs a verdict on a request with its parsed host and port. A request
 * whose target did not parse is logged with its raw target instead. */
static void log_decision(struct conn *c, enum rbx_log_level level,
                         const char *verdict, int status, const char *why)
{
  const struct proxy_decision *d = &c->decision;
  char reason[PROXY_LOG_VALUE_MAX + 16];
  char target[PROXY_LOG_VALUE_MAX + 16] = "-";
  const char *host = "-";
  char port[8] = "-";
  char code[8] = "-";

  if (!RBX_LOG_ENABLED(&c->px->log, level))
    return;
  if (d->target_parsed) {
    host = d->target.host.name;
    snprintf(port, sizeof(port), "%u", d->target.port);
  } else if (c->head.complete) {
    log_value(target, sizeof(target), c->up.buf + c->head.url.off,
              c->head.url.len);
  }
  if (status)
    snprintf(code, sizeof(code), "%d", status);
  log_value(reason, sizeof(reason), why ? why : "-", why ? strlen(why) : 1);
  rbx_log(&c->px->log, level,
          "msg=decision conn=%llu client=%s method=%s host=%s port=%s "
          "verdict=%s status=%s reason=%s upstream=%s target=%s",
          (unsigned long long)c->id, c->client, method_of(c), host, port,
          verdict, code, reason, c->upstream[0] ? c->upstream : "-", target);
}

/* Counts an operation as in flight when its submission succeeded. */
static int submitted(struct conn *c, int rc)
{
  if (rc == 0)
    c->pending++;
  return rc;
}

static void conn_free(struct conn *c)
{
  struct proxy *px = c->px;

  if (c->prev)
    c->prev->next = c->next;
  else
    px->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  px->conn_count--;
  free(c->upstream_head);
  free(c);
  if (px->accept_paused && !px->stopping) {
    px->accept_paused = false;
    accept_next(px);
  }
}

/* Frees c once its last operation has completed. */
static void conn_maybe_free(struct conn *c)
{
  if (c->closing && c->pending == 0)
    conn_free(c);
}

/* Keeps c allocated across a call that may close it. */
static void conn_hold(struct conn *c)
{
  c->pending++;
}

/* Called first by every completion of c, and after conn_hold: returns
 * false when c is closing, in which case the caller must return at once
 * without touching c. */
static bool conn_release(struct conn *c)
{
  c->pending--;
  if (!c->closing)
    return true;
  conn_maybe_free(c);
  return false;
}

static void close_fd(int *fd)
{
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* Closes both sockets and frees c after its operations finish. c must not
 * be used after this call. */
static void conn_close(struct conn *c, const char *reason)
{
  if (c->closing)
    return;
  c->closing = true;
  if (c->relayed)
    rbx_log(&c->px->log, RBX_LOG_INFO,
            "msg=close conn=%llu client=%s host=%s bytes_up=%llu "
            "bytes_down=%llu duration_ms=%llu reason=\"%s\"",
            (unsigned long long)c->id, c->client,
            c->decision.target_parsed ? c->decision.target.host.name : "-",
            (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes,
            (unsigned long long)(eng_now_ms() - c->started_ms), reason);
  else
    rbx_log(&c->px->log, RBX_LOG_DEBUG,
            "msg=close conn=%llu client=%s reason=\"%s\"",
            (unsigned long long)c->id, c->client, reason);
  eng_cancel(&c->up.op);
  eng_cancel(&c->down.op);
  eng_cancel(&c->connect_op);
  eng_cancel(&c->timer_op);
  if (c->query_active)
    proxy_resolve_cancel(&c->query);
  close_fd(&c->cfd);
  close_fd(&c->ufd);
  conn_maybe_free(c);
}

static uint64_t conn_deadline(const struct conn *c)
{
  if (c->state == CONN_RELAY)
    return c->last_activity_ms + c->px->cfg->idle_timeout_ms;
  return c->deadline_ms;
}

static void arm_timer(struct conn *c)
{
  uint64_t now = eng_now_ms();
  uint64_t due = conn_deadline(c);
  uint64_t wait_ms = due > now ? due - now : 0;

  c->timer_due_ms = now + wait_ms;
  if (submitted(c, eng_timer(&c->timer_op, wait_ms)) < 0)
    conn_close(c, "cannot arm timer");
}

/* Sets the deadline of a state that is not CONN_RELAY, re-arming the
 * timer when it would fire too late. */
static void set_deadline(struct conn *c, uint64_t ms)
{
  c->deadline_ms = eng_now_ms() + ms;
  if (c->timer_op.in_flight && c->timer_due_ms > c->deadline_ms)
    eng_cancel(&c->timer_op);
}

static void touch(struct conn *c)
{
  c->last_activity_ms = eng_now_ms();
}

static const char *status_text(int status)
{
  switch (status) {
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 431:
    return "Request Header Fields Too Large";
  case 502:
    return "Bad Gateway";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Error";
  }
}

/* Sends a response made by the proxy, then lingers and closes. Only called
 * while the client's direction has no operation in flight. */
static void reply_error(struct conn *c, int status, const char *why)
{
  struct relay_dir *d = &c->down;
  int len;

  if (c->query_active)
    proxy_resolve_cancel(&c->query);
  eng_cancel(&c->connect_op);
  close_fd(&c->ufd);
  len = snprintf(d->buf, sizeof(d->buf),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                 status, status_text(status), strlen(why) + 1, why);
  c->state = CONN_REPLY;
  set_deadline(c, PROXY_LINGER_MS);
  d->out = d->buf;
  d->out_len = (size_t)len < sizeof(d->buf) ? (size_t)len : sizeof(d->buf);
  d->out_sent = 0;
  d->sending = true;
  if (submitted(c, eng_send(&d->op, c->cfd, d->out, d->out_len)) < 0)
    conn_close(c, "cannot send reply");
}

/* Reads and drops what the client still sends, so that closing does not
 * reset the connection before the client has read the last response. */
static void linger_recv(struct conn *c)
{
  if (submitted(c, eng_recv(&c->up.op, c->cfd, c->up.buf, sizeof(c->up.buf))) <
      0)
    conn_close(c, "cannot read client");
}

static void start_linger(struct conn *c)
{
  c->state = CONN_LINGER;
  set_deadline(c, PROXY_LINGER_MS);
  close_fd(&c->ufd);
  shutdown(c->cfd, SHUT_WR);
  if (c->up.op.in_flight) {
    /* The client direction's last operation ends first; its completion
     * starts the linger read. */
    eng_cancel(&c->up.op);
    return;
  }
  c->linger_started = true;
  linger_recv(c);
}

static void on_linger_data(struct conn *c, int res)
{
  if (!c->linger_started) {
    c->linger_started = true;
    linger_recv(c);
    return;
  }
  if (res <= 0) {
    conn_close(c, c->down.bytes ? "done" : "reply sent");
    return;
  }
  c->linger_bytes += (uint64_t)res;
  if (c->linger_bytes > PROXY_LINGER_MAX) {
    conn_close(c, "client kept sending after the reply");
    return;
  }
  linger_recv(c);
}

static void relay_begin(struct conn *c)
{
  c->state = CONN_RELAY;
  c->relayed = true;
  touch(c);
  if (c->timer_op.in_flight && c->timer_due_ms > conn_deadline(c))
    eng_cancel(&c->timer_op);
  c->up.bytes += c->up.len;
  c->up.out = c->up.buf;
  c->up.out_len = c->up.len;
  c->up.out_sent = 0;
  c->down.len = 0;
  c->down.out_sent = 0;
  if (c->decision.is_connect) {
    memcpy(c->down.buf, connect_ok, sizeof(connect_ok) - 1);
    c->down.out = c->down.buf;
    c->down.out_len = sizeof(connect_ok) - 1;
  } else {
    c->up.out = c->upstream_head;
    c->up.out_len = c->upstream_head_len;
    c->down.out_len = 0;
  }
  conn_hold(c);
  relay_step(&c->up);
  if (conn_release(c))
    relay_step(&c->down);
}

static int dir_from(const struct relay_dir *d)
{
  return d == &d->conn->up ? d->conn->cfd : d->conn->ufd;
}

static int dir_to(const struct relay_dir *d)
{
  return d == &d->conn->up ? d->conn->ufd : d->conn->cfd;
}

/* Starts the next operation of a direction: sends what is left to send,
 * else reads more unless the direction is finished. */
static void relay_step(struct relay_dir *d)
{
  struct conn *c = d->conn;
  int rc;

  if (d->out_sent < d->out_len) {
    d->sending = true;
    rc = eng_send(&d->op, dir_to(d), d->out + d->out_sent,
                  d->out_len - d->out_sent);
  } else if (d->out == c->upstream_head && c->upstream_head) {
    /* The head is out; the body bytes read with it go next. */
    free(c->upstream_head);
    c->upstream_head = NULL;
    d->out = d->buf;
    d->out_len = d->len;
    d->out_sent = 0;
    relay_step(d);
    return;
  } else if (d == &c->up && !c->decision.is_connect && c->body_done) {
    d->done = true;
    return;
  } else {
    d->sending = false;
    rc = eng_recv(&d->op, dir_from(d), d->buf, sizeof(d->buf));
  }
  if (submitted(c, rc) < 0)
    conn_close(c, "cannot submit relay operation");
}

/* The source of a direction reached its end. */
static void relay_eof(struct relay_dir *d)
{
  struct conn *c = d->conn;

  if (!c->decision.is_connect) {
    if (d == &c->up) {
      conn_close(c, "client closed before the request body ended");
      return;
    }
    if (d->bytes == 0) {
      conn_close(c, "upstream closed without a response");
      return;
    }
    start_linger(c);
    return;
  }
  d->done = true;
  shutdown(dir_to(d), SHUT_WR);
  if (c->up.done && c->down.done)
    conn_close(c, "both sides closed");
}

/* Takes bytes read from the client of a plain request: only the bytes of
 * this request's body are forwarded. */
static int take_body(struct conn *c, size_t len)
{
  const char *why = NULL;
  size_t consumed = 0;
  int rc = proxy_body_feed(&c->head, c->up.buf, len, &consumed, &why);

  if (rc < 0) {
    rbx_log(&c->px->log, RBX_LOG_INFO,
            "msg=bad_body conn=%llu client=%s reason=\"%s\"",
            (unsigned long long)c->id, c->client, why);
    return rc;
  }
  if (rc == PROXY_FEED_DONE)
    c->body_done = true;
  c->up.len = consumed;
  return 0;
}

static void on_relay(struct relay_dir *d, int res)
{
  struct conn *c = d->conn;

  if (res < 0) {
    if (d->sending && d == &c->up && !c->decision.is_connect) {
      /* The upstream may respond early and stop reading the body; its
       * response still goes back to the client. */
      d->done = true;
      return;
    }
    conn_close(c, d == &c->up ? "client or upstream error on the way up"
                              : "upstream or client error on the way down");
    return;
  }
  touch(c);
  if (d->sending) {
    d->out_sent += (size_t)res;
    relay_step(d);
    return;
  }
  if (res == 0) {
    relay_eof(d);
    return;
  }
  d->len = (size_t)res;
  if (d == &c->up && !c->decision.is_connect && take_body(c, d->len) < 0) {
    conn_close(c, "malformed request body");
    return;
  }
  d->bytes += d->len;
  d->out = d->buf;
  d->out_len = d->len;
  d->out_sent = 0;
  relay_step(d);
}

static void start_connect(struct conn *c);

static void on_connect(struct eng_op *op, int res)
{
  struct conn *c = op->data;

  if (!conn_release(c) || c->state != CONN_CONNECT)
    return;
  if (res < 0) {
    rbx_log(&c->px->log, RBX_LOG_WARN,
            "msg=upstream_failed conn=%llu host=%s upstream=%s error=\"%s\"",
            (unsigned long long)c->id, c->decision.target.host.name,
            c->upstream, strerror(-res));
    close_fd(&c->ufd);
    if (c->addr_next < c->addrs.count) {
      start_connect(c);
      return;
    }
    reply_error(c, 502, "upstream connection failed");
    return;
  }
  relay_begin(c);
}

static void start_connect(struct conn *c)
{
  const union proxy_sockaddr *addr = &c->addrs.addr[c->addr_next++];
  socklen_t len =
      addr->sa.sa_family == AF_INET ? sizeof(addr->in) : sizeof(addr->in6);
  int one = 1;

  c->state = CONN_CONNECT;
  proxy_format_addr(&addr->sa, c->upstream, sizeof(c->upstream));
  c->ufd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->ufd < 0) {
    reply_error(c, 502, "cannot create upstream socket");
    return;
  }
  setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (submitted(c, eng_connect(&c->connect_op, c->ufd, &addr->sa, len)) < 0)
    reply_error(c, 502, "cannot start upstream connection");
}

/* Checks every resolved address before any is used, so that a name cannot
 * mix an allowed address with a refused one. */
static void check_and_connect(struct conn *c)
{
  const char *why = NULL;

  for (size_t i = 0; i < c->addrs.count; i++) {
    if (proxy_address_check(&c->addrs.addr[i].sa,
                            c->px->cfg->allow_loopback_upstream, &why) < 0) {
      proxy_format_addr(&c->addrs.addr[i].sa, c->upstream, sizeof(c->upstream));
      log_decision(c, RBX_LOG_INFO, "deny", 403, why);
      reply_error(c, 403, why);
      return;
    }
  }
  proxy_format_addr(&c->addrs.addr[0].sa, c->upstream, sizeof(c->upstream));
  log_decision(c, RBX_LOG_INFO, "allow", 0, NULL);
  c->upstream[0] = '\0';
  c->addr_next = 0;
  start_connect(c);
}

static const char *resolve_error_text(int status)
{
  switch (status) {
  case -ENOENT:
    return "host name not found";
  case -ETIMEDOUT:
    return "name resolution timed out";
  default:
    return "name resolution failed";
  }
}

static void on_resolved(struct proxy_query *q, int status, void *data)
{
  struct conn *c = data;

  (void)q;
  c->query_active = false;
  if (!conn_release(c) || c->state != CONN_RESOLVE)
    return;
  if (status < 0) {
    log_decision(c, RBX_LOG_WARN, "error", 502, resolve_error_text(status));
    reply_error(c, 502, resolve_error_text(status));
    return;
  }
  c->addrs = q->result;
  check_and_connect(c);
}

static void literal_address(struct conn *c)
{
  const struct proxy_target *t = &c->decision.target;
  union proxy_sockaddr *addr = &c->addrs.addr[0];

  memset(addr, 0, sizeof(*addr));
  if (t->host.kind == PROXY_HOST_IPV4) {
    addr->in.sin_family = AF_INET;
    addr->in.sin_addr = t->host.addr.v4;
    addr->in.sin_port = htons(t->port);
  } else {
    addr->in6.sin6_family = AF_INET6;
    addr->in6.sin6_addr = t->host.addr.v6;
    addr->in6.sin6_port = htons(t->port);
  }
  c->addrs.count = 1;
}

/* Prepares what goes upstream for an allowed plain request: the rewritten
 * head, and the body bytes that came with the head. */
static int prepare_forward(struct conn *c, size_t *leftover)
{
  size_t size = c->head.head_len + PROXY_UPSTREAM_HEAD_EXTRA;
  const char *why = NULL;
  size_t consumed = 0;
  int len, rc;

  c->upstream_head = malloc(size);
  if (!c->upstream_head)
    return -ENOMEM;
  len = proxy_upstream_head(&c->head, c->up.buf, &c->decision, c->upstream_head,
                            size);
  if (len < 0)
    return len;
  c->upstream_head_len = (size_t)len;
  rc = proxy_body_feed(&c->head, c->up.buf + c->head.head_len, *leftover,
                       &consumed, &why);
  if (rc < 0) {
    c->decision.why = why;
    return -EINVAL;
  }
  c->body_done = rc == PROXY_FEED_DONE;
  *leftover = consumed;
  return 0;
}

static void on_head_complete(struct conn *c)
{
  struct proxy_decision *d = &c->decision;
  size_t leftover = c->up.len - c->head.head_len;
  int rc;

  proxy_decide(c->px->cfg, &c->head, c->up.buf, d);
  if (d->status) {
    log_decision(c, RBX_LOG_INFO, d->status == 403 ? "deny" : "invalid",
                 d->status, d->why);
    reply_error(c, d->status, d->why);
    return;
  }
  if (!d->is_connect) {
    rc = prepare_forward(c, &leftover);
    if (rc < 0) {
      const char *why = rc == -EINVAL ? d->why : "request head too large";

      log_decision(c, RBX_LOG_INFO, "invalid", 400, why);
      reply_error(c, 400, why);
      return;
    }
  }
  memmove(c->up.buf, c->up.buf + c->head.head_len, leftover);
  c->up.len = leftover;
  set_deadline(c, PROXY_CONNECT_TIMEOUT_MS);
  if (d->target.host.kind != PROXY_HOST_NAME) {
    literal_address(c);
    check_and_connect(c);
    return;
  }
  c->state = CONN_RESOLVE;
  rc = proxy_resolve_start(&c->px->resolver, &c->query, d->target.host.name,
                           d->target.port, on_resolved, c);
  if (rc < 0) {
    log_decision(c, RBX_LOG_WARN, "error", 502, "name resolution failed");
    reply_error(c, 502, "name resolution failed");
    return;
  }
  c->query_active = true;
  c->pending++;
}

static void head_recv(struct conn *c)
{
  struct relay_dir *d = &c->up;

  d->sending = false;
  if (submitted(c, eng_recv(&d->op, c->cfd, d->buf + d->len,
                            PROXY_HEAD_MAX - d->len)) < 0)
    conn_close(c, "cannot read client");
}

static void on_head_data(struct conn *c, int res)
{
  const char *why = NULL;
  int rc, status;

  if (res <= 0) {
    conn_close(c, res == 0 ? "client closed before a full request head"
                           : "client read error");
    return;
  }
  c->up.len += (size_t)res;
  rc = proxy_head_feed(&c->head, c->up.buf, c->up.len, &why);
  if (rc == PROXY_FEED_MORE) {
    head_recv(c);
    return;
  }
  if (rc == PROXY_FEED_DONE) {
    on_head_complete(c);
    return;
  }
  if (rc == -E2BIG)
    status = 431;
  else if (rc == -EPROTONOSUPPORT)
    status = 505;
  else
    status = 400;
  log_decision(c, RBX_LOG_INFO, "invalid", status, why);
  reply_error(c, status, why);
}

static void on_up_op(struct eng_op *op, int res)
{
  struct conn *c = op->data;

  if (!conn_release(c))
    return;
  switch (c->state) {
  case CONN_HEAD:
    on_head_data(c, res);
    break;
  case CONN_RELAY:
    on_relay(&c->up, res);
    break;
  case CONN_LINGER:
    on_linger_data(c, res);
    break;
  default:
    break;
  }
}

static void on_down_op(struct eng_op *op, int res)
{
  struct conn *c = op->data;
  struct relay_dir *d = &c->down;

  if (!conn_release(c))
    return;
  if (c->state == CONN_RELAY) {
    on_relay(d, res);
    return;
  }
  if (c->state != CONN_REPLY)
    return;
  if (res <= 0) {
    conn_close(c, "cannot send reply");
    return;
  }
  d->out_sent += (size_t)res;
  if (d->out_sent < d->out_len) {
    if (submitted(c, eng_send(&d->op, c->cfd, d->out + d->out_sent,
                              d->out_len - d->out_sent)) < 0)
      conn_close(c, "cannot send reply");
    return;
  }
  start_linger(c);
}

static void on_deadline(struct conn *c)
{
  switch (c->state) {
  case CONN_HEAD:
    conn_close(c, "request head timed out");
    break;
  case CONN_RESOLVE:
    log_decision(c, RBX_LOG_WARN, "error", 502, "name resolution timed out");
    reply_error(c, 502, "name resolution timed out");
    break;
  case CONN_CONNECT:
    rbx_log(&c->px->log, RBX_LOG_WARN,
            "msg=upstream_failed conn=%llu host=%s upstream=%s "
            "error=\"connect timed out\"",
            (unsigned long long)c->id, c->decision.target.host.name,
            c->upstream);
    reply_error(c, 502, "upstream connect timed out");
    break;
  case CONN_RELAY:
    conn_close(c, "idle timeout");
    break;
  case CONN_REPLY:
  case CONN_LINGER:
    conn_close(c, "linger timeout");
    break;
  }
}

static void on_timer(struct eng_op *op, int res)
{
  struct conn *c = op->data;

  (void)res;
  if (!conn_release(c))
    return;
  if (eng_now_ms() >= conn_deadline(c)) {
    conn_hold(c);
    on_deadline(c);
    if (!conn_release(c))
      return;
  }
  arm_timer(c);
}

static void conn_start(struct proxy *px, int fd)
{
  struct conn *c = calloc(1, sizeof(*c));
  union proxy_sockaddr peer;
  socklen_t peer_len = sizeof(peer);
  int one = 1;

  if (!c) {
    rbx_log(&px->log, RBX_LOG_ERROR,
            "msg=accept_dropped error=\"out of "
            "memory\"");
    close(fd);
    return;
  }
  c->px = px;
  c->id = ++px->next_id;
  c->cfd = fd;
  c->ufd = -1;
  c->started_ms = eng_now_ms();
  c->up.conn = c;
  c->down.conn = c;
  if (getpeername(fd, &peer.sa, &peer_len) == 0)
    proxy_format_addr(&peer.sa, c->client, sizeof(c->client));
  else
    snprintf(c->client, sizeof(c->client), "-");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  proxy_head_init(&c->head);
  eng_op_init(&c->up.op, px->loop, on_up_op, c);
  eng_op_init(&c->down.op, px->loop, on_down_op, c);
  eng_op_init(&c->connect_op, px->loop, on_connect, c);
  eng_op_init(&c->timer_op, px->loop, on_timer, c);
  c->next = px->conns;
  if (px->conns)
    px->conns->prev = c;
  px->conns = c;
  px->conn_count++;
  c->state = CONN_HEAD;
  c->deadline_ms = c->started_ms + PROXY_HEAD_TIMEOUT_MS;
  rbx_log(&px->log, RBX_LOG_DEBUG, "msg=accepted conn=%llu client=%s",
          (unsigned long long)c->id, c->client);
  conn_hold(c);
  arm_timer(c);
  if (conn_release(c))
    head_recv(c);
}

static void accept_next(struct proxy *px)
{
  if (px->stopping)
    return;
  if (px->conn_count >= px->cfg->max_conns) {
    if (!px->accept_paused)
      rbx_log(&px->log, RBX_LOG_WARN,
              "msg=accept_paused connections=%u max_conns=%u", px->conn_count,
              px->cfg->max_conns);
    px->accept_paused = true;
    return;
  }
  if (eng_accept(&px->accept_op, px->listen_fd) < 0 &&
      eng_timer(&px->accept_timer, PROXY_ACCEPT_RETRY_MS) < 0)
    rbx_log(&px->log, RBX_LOG_ERROR,
            "msg=accept_stopped error=\"cannot "
            "submit accept\"");
}

static void on_accept(struct eng_op *op, int res)
{
  struct proxy *px = op->data;

  if (px->stopping) {
    if (res >= 0)
      close(res);
    return;
  }
  if (res >= 0) {
    conn_start(px, res);
    accept_next(px);
    return;
  }
  rbx_log(&px->log, RBX_LOG_WARN, "msg=accept_failed error=\"%s\"",
          strerror(-res));
  if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    /* Out of descriptors or memory: wait for connections to close. */
    if (eng_timer(&px->accept_timer, PROXY_ACCEPT_RETRY_MS) == 0)
      return;
  }
  accept_next(px);
}

static void on_accept_timer(struct eng_op *op, int res)
{
  (void)res;
  accept_next(op->data);
}

static void proxy_stop(struct proxy *px, const char *why)
{
  px->stopping = true;
  rbx_log(&px->log, RBX_LOG_INFO, "msg=stopping reason=%s connections=%u", why,
          px->conn_count);
  eng_cancel(&px->accept_op);
  eng_cancel(&px->accept_timer);
  close_fd(&px->listen_fd);
  for (struct conn *c = px->conns, *next; c; c = next) {
    /* conn_close may free c; closing conns stay listed until freed. */
    next = c->next;
    conn_close(c, "proxy stopping");
  }
}

static void on_signal(struct eng_op *op, int res)
{
  struct proxy *px = op->data;

  if (res < 0 && res != -ECANCELED) {
    rbx_log(&px->log, RBX_LOG_ERROR, "msg=signal_read_failed error=\"%s\"",
            strerror(-res));
    return;
  }
  if (res < 0)
    return;
  proxy_stop(px, px->siginfo.ssi_signo == SIGINT ? "sigint" : "sigterm");
}

static int watch_signals(struct proxy *px, struct rbx_error *err)
{
  sigset_t mask;

  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
    return rbx_err_set(err, RBX_ERR_IO, -errno, "block signals: %s",
                       strerror(errno));
  px->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (px->signal_fd < 0)
    return rbx_err_set(err, RBX_ERR_IO, -errno, "signalfd: %s",
                       strerror(errno));
  eng_op_init(&px->signal_op, px->loop, on_signal, px);
  if (eng_read(&px->signal_op, px->signal_fd, &px->siginfo,
               sizeof(px->siginfo)) < 0)
    return rbx_err_set(err, RBX_ERR_IO, -EIO, "cannot watch signals");
  return 0;
}

static int open_listener(struct proxy *px, struct rbx_error *err)
{
  const struct proxy_config *cfg = px->cfg;
  union proxy_sockaddr bound;
  socklen_t bound_len = sizeof(bound);
  char text[64];
  int one = 1;

  proxy_format_addr((const struct sockaddr *)&cfg->listen_addr, text,
                    sizeof(text));
  px->listen_fd =
      socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (px->listen_fd < 0)
    return rbx_err_set(err, RBX_ERR_IO, -errno, "socket: %s", strerror(errno));
  setsockopt(px->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(px->listen_fd, (const struct sockaddr *)&cfg->listen_addr,
           cfg->listen_len) < 0)
    return rbx_err_set(err, RBX_ERR_IO, -errno,
                       "bind %s: %s; set PROXY_LISTEN to a free address", text,
                       strerror(errno));
  if (listen(px->listen_fd, PROXY_LISTEN_BACKLOG) < 0)
    return rbx_err_set(err, RBX_ERR_IO, -errno, "listen %s: %s", text,
                       strerror(errno));
  if (getsockname(px->listen_fd, &bound.sa, &bound_len) == 0)
    proxy_format_addr(&bound.sa, text, sizeof(text));
  rbx_log(&px->log, RBX_LOG_INFO, "msg=listening addr=%s", text);
  return 0;
}

/* Each tunnel uses two descriptors, so the soft limit is raised to the
 * hard one. */
static void raise_fd_limit(void)
{
  struct rlimit lim;

  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

static void log_config(struct proxy *px)
{
  const struct proxy_config *cfg = px->cfg;
  char hosts[512] = "";
  char ports[256] = "";
  size_t used = 0;

  for (size_t i = 0; i < cfg->allow_count && used < sizeof(hosts); i++)
    used += (size_t)snprintf(hosts + used, sizeof(hosts) - used, "%s%s%s",
                             i ? "," : "", cfg->allow[i].wildcard ? "*." : "",
                             cfg->allow[i].host.name);
  used = 0;
  for (size_t i = 0; i < cfg->port_count && used < sizeof(ports); i++)
    used += (size_t)snprintf(ports + used, sizeof(ports) - used, "%s%u",
                             i ? "," : "", cfg->ports[i]);
  rbx_log(&px->log, RBX_LOG_INFO,
          "msg=config allow_hosts=%s allow_ports=%s nameservers=%zu "
          "hosts_entries=%zu idle_timeout_ms=%llu max_conns=%u",
          hosts[0] ? hosts : "-", ports, px->resolver.ns_count,
          px->resolver.hosts_count, (unsigned long long)cfg->idle_timeout_ms,
          cfg->max_conns);
  if (cfg->allow_count == 0)
    rbx_log(&px->log, RBX_LOG_WARN,
            "msg=empty_allowlist detail=\"PROXY_ALLOW_HOSTS is empty or "
            "unset, so every request is denied\"");
  if (cfg->allow_loopback_upstream)
    rbx_log(&px->log, RBX_LOG_WARN,
            "msg=loopback_upstream_allowed detail=\"PROXY_ALLOW_LOOPBACK_"
            "UPSTREAM=1 is for tests only\"");
}

static int proxy_start(struct proxy *px, struct rbx_error *err)
{
  const struct proxy_config *cfg = px->cfg;
  int rc;

  px->listen_fd = -1;
  px->signal_fd = -1;
  raise_fd_limit();
  rc = eng_loop_new(&px->loop, 1024, err);
  if (rc < 0)
    return rc;
  rc = proxy_resolver_init(&px->resolver, px->loop, cfg->resolv_conf,
                           cfg->hosts_file, err);
  if (rc < 0)
    return rc;
  log_config(px);
  rc = watch_signals(px, err);
  if (rc < 0)
    return rc;
  rc = open_listener(px, err);
  if (rc < 0)
    return rc;
  eng_op_init(&px->accept_op, px->loop, on_accept, px);
  eng_op_init(&px->accept_timer, px->loop, on_accept_timer, px);
  accept_next(px);
  return 0;
}

static void proxy_cleanup(struct proxy *px)
{
  close_fd(&px->listen_fd);
  close_fd(&px->signal_fd);
  proxy_resolver_free(&px->resolver);
  if (px->loop && eng_in_flight(px->loop) == 0)
    eng_loop_free(px->loop);
}

int proxy_main(void)
{
  static struct proxy_config cfg;
  struct proxy px = {0};
  struct rbx_error err = {0};
  int rc;

  px.log.fn = stderr_sink;
  px.log.level = RBX_LOG_INFO;
  if (proxy_config_load(&cfg, &err) < 0) {
    rbx_log(&px.log, RBX_LOG_ERROR, "msg=invalid_config error=\"%s\"",
            err.message);
    return 2;
  }
  px.cfg = &cfg;
  px.log.level = cfg.log_level;
  rc = proxy_start(&px, &err);
  if (rc < 0) {
    rbx_log(&px.log, RBX_LOG_ERROR, "msg=start_failed error=\"%s\"",
            err.message);
    proxy_cleanup(&px);
    return 1;
  }
  rc = eng_run(px.loop);
  if (rc < 0)
    rbx_log(&px.log, RBX_LOG_ERROR, "msg=loop_failed error=\"%s\"",
            strerror(-rc));
  else
    rbx_log(&px.log, RBX_LOG_INFO, "msg=stopped");
  proxy_cleanup(&px);
  return rc < 0 ? 1 : 0;
}
