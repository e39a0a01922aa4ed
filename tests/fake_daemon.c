/* The scripted fake Engine API daemon used by the HTTP and backend tests:
 * an accept thread and one thread per connection, with blocking sockets,
 * since none of this runs on the library's loop. */
#include "fake_daemon.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define POLL_SLICE_MS 20
#define AWAIT_MAX_MS 10000

struct route_state {
  struct fake_route route;
  unsigned hits;
  unsigned write_seq[FAKE_WRITES_MAX];
};

struct conn_thread {
  struct fake_daemon *daemon;
  pthread_t thread;
  int fd;
  unsigned index;
};

struct fake_daemon {
  char dir[64];
  char path[96];
  char url[160];
  int listen_fd;
  pthread_t accept_thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  bool stopping;
  struct route_state routes[FAKE_ROUTES_MAX];
  size_t route_count;
  struct fake_request requests[FAKE_REQUESTS_MAX];
  unsigned request_count;
  struct conn_thread conns[FAKE_CONNS_MAX];
  unsigned accepts;
  unsigned closed;
  unsigned unmatched;
  unsigned seq;
};

static void deadline_after(struct timespec *ts, unsigned ms)
{
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

/* Sleeps ms unless the daemon stops first. Returns false when stopping. */
static bool pause_ms(struct fake_daemon *fd, unsigned ms)
{
  struct timespec until;
  bool go_on;

  deadline_after(&until, ms);
  pthread_mutex_lock(&fd->lock);
  while (!fd->stopping &&
         pthread_cond_timedwait(&fd->changed, &fd->lock, &until) == 0)
    ;
  go_on = !fd->stopping;
  pthread_mutex_unlock(&fd->lock);
  return go_on;
}

static const char *route_name(const struct fake_route *route)
{
  return route->name ? route->name : route->path;
}

static int route_index(struct fake_daemon *fd, const char *name)
{
  for (size_t i = 0; i < fd->route_count; i++)
    if (strcmp(route_name(&fd->routes[i].route), name) == 0)
      return (int)i;
  return -1;
}

/* Waits until the named route has served a request. */
static bool await_route(struct fake_daemon *fd, const char *name)
{
  struct timespec until;
  int index = route_index(fd, name);
  bool seen;

  if (index < 0)
    return true;
  deadline_after(&until, AWAIT_MAX_MS);
  pthread_mutex_lock(&fd->lock);
  while (!fd->stopping && fd->routes[index].hits == 0 &&
         pthread_cond_timedwait(&fd->changed, &fd->lock, &until) == 0)
    ;
  seen = !fd->stopping;
  pthread_mutex_unlock(&fd->lock);
  return seen;
}

/* Matches pattern against a prefix of text; '*' takes any run of
 * characters other than '/' and '?'. */
static bool match_prefix(const char *pattern, const char *text)
{
  if (!*pattern)
    return true;
  if (*pattern == '*') {
    for (size_t n = 0;; n++) {
      if (match_prefix(pattern + 1, text + n))
        return true;
      if (!text[n] || text[n] == '/' || text[n] == '?')
        return false;
    }
  }
  return *pattern == *text && match_prefix(pattern + 1, text + 1);
}

/* Skips a leading /vN.NN API version. */
static const char *strip_version(const char *target)
{
  const char *p = target;

  if (p[0] != '/' || p[1] != 'v')
    return target;
  p += 2;
  if (*p < '0' || *p > '9')
    return target;
  while (*p >= '0' && *p <= '9')
    p++;
  if (*p++ != '.')
    return target;
  while (*p >= '0' && *p <= '9')
    p++;
  return *p == '/' ? p : target;
}

/* Picks the route for a request and counts the hit, under the lock. */
static int pick_route(struct fake_daemon *fd, const char *method,
                      const char *target)
{
  const char *path = strip_version(target);

  for (size_t i = 0; i < fd->route_count; i++) {
    struct route_state *rs = &fd->routes[i];

    if (rs->route.max_hits && rs->hits >= rs->route.max_hits)
      continue;
    if (rs->route.method && strcmp(rs->route.method, method) != 0)
      continue;
    if (!match_prefix(rs->route.path, path))
      continue;
    return (int)i;
  }
  return -1;
}

static bool send_all(int sock, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = send(sock, data, len, MSG_NOSIGNAL);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

/* Reads into buf[*have..size), waiting in slices so stop is noticed.
 * Returns the count read, 0 at end of stream, -1 on error or stop. */
static ssize_t read_some(struct fake_daemon *fd, int sock, char *buf,
                         size_t size)
{
  for (;;) {
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int rc;
    bool stopping;

    pthread_mutex_lock(&fd->lock);
    stopping = fd->stopping;
    pthread_mutex_unlock(&fd->lock);
    if (stopping)
      return -1;
    rc = poll(&pfd, 1, POLL_SLICE_MS);
    if (rc < 0 && errno != EINTR)
      return -1;
    if (rc <= 0)
      continue;
    ssize_t n = recv(sock, buf, size, 0);

    if (n < 0 && errno == EINTR)
      continue;
    return n;
  }
}

static size_t content_length(const char *head, size_t head_len)
{
  const char *p = head;
  const char *end = head + head_len;

  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));

    if (!eol)
      break;
    if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
      return strtoul(p + 15, NULL, 10);
    p = eol + 1;
  }
  return 0;
}

static const char *find_head_end(const char *buf, size_t len)
{
  for (size_t i = 3; i < len; i++)
    if (memcmp(buf + i - 3, "\r\n\r\n", 4) == 0)
      return buf + i + 1;
  return NULL;
}

/* Stores a received request and returns its route, under the lock. */
static int record_request(struct fake_daemon *fd, unsigned conn,
                          const char *buf, size_t head_len, size_t total,
                          size_t extra)
{
  struct fake_request *req;
  char method[16] = "";
  char target[512] = "";
  char *raw;
  int route;

  sscanf(buf, "%15s %511s", method, target);
  raw = malloc(total + 1);
  if (raw) {
    memcpy(raw, buf, total);
    raw[total] = '\0';
  }
  pthread_mutex_lock(&fd->lock);
  route = pick_route(fd, method, target);
  if (route >= 0)
    fd->routes[route].hits++;
  else
    fd->unmatched++;
  if (fd->request_count < FAKE_REQUESTS_MAX && raw) {
    req = &fd->requests[fd->request_count++];
    snprintf(req->method, sizeof(req->method), "%s", method);
    snprintf(req->target, sizeof(req->target), "%s", target);
    req->raw = raw;
    req->raw_len = total;
    req->head_len = head_len;
    req->extra_len = extra;
    req->route = route;
    req->conn = conn;
    req->seq = ++fd->seq;
  } else {
    free(raw);
  }
  pthread_cond_broadcast(&fd->changed);
  pthread_mutex_unlock(&fd->lock);
  return route;
}

static void note_write(struct fake_daemon *fd, int route, unsigned index)
{
  pthread_mutex_lock(&fd->lock);
  fd->seq++;
  if (fd->routes[route].write_seq[index] == 0)
    fd->routes[route].write_seq[index] = fd->seq;
  pthread_mutex_unlock(&fd->lock);
}

/* Plays a route's writes. Returns false when the connection must end. */
static bool play(struct fake_daemon *fd, int sock, int route)
{
  const struct fake_route *r = &fd->routes[route].route;

  for (unsigned i = 0; i < FAKE_WRITES_MAX && r->writes[i].data; i++) {
    const struct fake_write *w = &r->writes[i];
    size_t len = w->len ? w->len : strlen(w->data);
    const char *data = w->data;

    if (w->await && !await_route(fd, w->await))
      return false;
    if (w->delay_ms && !pause_ms(fd, w->delay_ms))
      return false;
    note_write(fd, route, i);
    if (!w->byte_delay_ms) {
      if (!send_all(sock, data, len))
        return false;
      continue;
    }
    for (size_t b = 0; b < len; b++) {
      if (b && !pause_ms(fd, w->byte_delay_ms))
        return false;
      if (!send_all(sock, data + b, 1))
        return false;
    }
  }
  return true;
}

static void answer_unmatched(int sock, const char *request)
{
  char body[700];
  char head[200];
  char line[600];
  const char *eol = strstr(request, "\r\n");
  size_t line_len = eol ? (size_t)(eol - request) : 0;
  int body_len;
  int head_len;

  if (line_len >= sizeof(line))
    line_len = sizeof(line) - 1;
  memcpy(line, request, line_len);
  line[line_len] = '\0';
  body_len = snprintf(body, sizeof(body),
                      "{\"message\":\"fake daemon: no route for %s\"}", line);
  head_len = snprintf(head, sizeof(head),
                      "HTTP/1.1 404 Not Found\r\nContent-Type: "
                      "application/json\r\nContent-Length: %d\r\n\r\n",
                      body_len);
  send_all(sock, head, (size_t)head_len);
  send_all(sock, body, (size_t)body_len);
}

static void hold(struct fake_daemon *fd, int sock)
{
  char sink[4096];

  while (read_some(fd, sock, sink, sizeof(sink)) > 0)
    ;
}

static void serve(struct fake_daemon *fd, int sock, unsigned conn)
{
  char *buf = malloc(FAKE_REQUEST_BYTES_MAX);
  size_t have = 0;

  if (!buf)
    return;
  for (;;) {
    const char *head_end = find_head_end(buf, have);
    size_t head_len, total;
    int route;

    if (!head_end) {
      ssize_t n;

      if (have == FAKE_REQUEST_BYTES_MAX)
        break;
      n = read_some(fd, sock, buf + have, FAKE_REQUEST_BYTES_MAX - have);
      if (n <= 0)
        break;
      have += (size_t)n;
      continue;
    }
    head_len = (size_t)(head_end - buf);
    total = head_len + content_length(buf, head_len);
    if (total > FAKE_REQUEST_BYTES_MAX)
      break;
    while (have < total) {
      ssize_t n = read_some(fd, sock, buf + have, total - have);

      if (n <= 0)
        goto out;
      have += (size_t)n;
    }
    route = record_request(fd, conn, buf, head_len, total, have - total);
    if (route < 0) {
      buf[have < FAKE_REQUEST_BYTES_MAX ? have : have - 1] = '\0';
      answer_unmatched(sock, buf);
    } else if (!play(fd, sock, route)) {
      break;
    }
    memmove(buf, buf + total, have - total);
    have -= total;
    if (route >= 0 && fd->routes[route].route.after == FAKE_CLOSE)
      break;
    if (route >= 0 && fd->routes[route].route.after == FAKE_HOLD) {
      hold(fd, sock);
      break;
    }
  }
out:
  free(buf);
}

static void *conn_main(void *arg)
{
  struct conn_thread *ct = arg;
  struct fake_daemon *fd = ct->daemon;

  serve(fd, ct->fd, ct->index);
  pthread_mutex_lock(&fd->lock);
  close(ct->fd);
  ct->fd = -1;
  fd->closed++;
  pthread_cond_broadcast(&fd->changed);
  pthread_mutex_unlock(&fd->lock);
  return NULL;
}

static void *accept_main(void *arg)
{
  struct fake_daemon *fd = arg;

  for (;;) {
    struct pollfd pfd = {.fd = fd->listen_fd, .events = POLLIN};
    bool stopping;
    int sock;

    pthread_mutex_lock(&fd->lock);
    stopping = fd->stopping;
    pthread_mutex_unlock(&fd->lock);
    if (stopping)
      break;
    if (poll(&pfd, 1, POLL_SLICE_MS) <= 0)
      continue;
    sock = accept4(fd->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (sock < 0)
      continue;
    pthread_mutex_lock(&fd->lock);
    if (fd->accepts == FAKE_CONNS_MAX) {
      pthread_mutex_unlock(&fd->lock);
      close(sock);
      continue;
    }
    struct conn_thread *ct = &fd->conns[fd->accepts++];

    ct->daemon = fd;
    ct->fd = sock;
    ct->index = fd->accepts;
    if (pthread_create(&ct->thread, NULL, conn_main, ct) != 0) {
      close(sock);
      ct->fd = -1;
      fd->closed++;
      ct->daemon = NULL;
    }
    pthread_cond_broadcast(&fd->changed);
    pthread_mutex_unlock(&fd->lock);
  }
  return NULL;
}

int fake_daemon_start(struct fake_daemon **out, const struct fake_route *routes,
                      size_t count)
{
  struct fake_daemon *fd;
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int rc;

  if (count > FAKE_ROUTES_MAX)
    return -E2BIG;
  fd = calloc(1, sizeof(*fd));
  if (!fd)
    return -ENOMEM;
  snprintf(fd->dir, sizeof(fd->dir), "/tmp/rbx-fake-XXXXXX");
  if (!mkdtemp(fd->dir)) {
    free(fd);
    return -errno;
  }
  snprintf(fd->path, sizeof(fd->path), "%s/docker.sock", fd->dir);
  snprintf(fd->url, sizeof(fd->url), "unix://%s", fd->path);
  for (size_t i = 0; i < count; i++)
    fd->routes[i].route = routes[i];
  fd->route_count = count;
  pthread_mutex_init(&fd->lock, NULL);
  pthread_cond_init(&fd->changed, NULL);
  fd->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memcpy(sun.sun_path, fd->path, strlen(fd->path) + 1);
  if (fd->listen_fd < 0 ||
      bind(fd->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
      listen(fd->listen_fd, 64) < 0) {
    rc = -errno;
    goto fail;
  }
  rc = -pthread_create(&fd->accept_thread, NULL, accept_main, fd);
  if (rc < 0)
    goto fail;
  *out = fd;
  return 0;
fail:
  if (fd->listen_fd >= 0)
    close(fd->listen_fd);
  unlink(fd->path);
  rmdir(fd->dir);
  free(fd);
  return rc;
}

void fake_daemon_stop(struct fake_daemon *fd)
{
  unsigned accepts;

  if (!fd)
    return;
  pthread_mutex_lock(&fd->lock);
  fd->stopping = true;
  pthread_cond_broadcast(&fd->changed);
  pthread_mutex_unlock(&fd->lock);
  pthread_join(fd->accept_thread, NULL);
  accepts = fd->accepts;
  for (unsigned i = 0; i < accepts; i++)
    if (fd->conns[i].daemon)
      pthread_join(fd->conns[i].thread, NULL);
  close(fd->listen_fd);
  for (unsigned i = 0; i < fd->request_count; i++)
    free((char *)fd->requests[i].raw);
  unlink(fd->path);
  rmdir(fd->dir);
  pthread_cond_destroy(&fd->changed);
  pthread_mutex_destroy(&fd->lock);
  free(fd);
}

const char *fake_daemon_url(const struct fake_daemon *fd)
{
  return fd->url;
}

const char *fake_daemon_path(const struct fake_daemon *fd)
{
  return fd->path;
}

static unsigned read_counter(struct fake_daemon *fd, const unsigned *counter)
{
  unsigned value;

  pthread_mutex_lock(&fd->lock);
  value = *counter;
  pthread_mutex_unlock(&fd->lock);
  return value;
}

unsigned fake_daemon_accepts(struct fake_daemon *fd)
{
  return read_counter(fd, &fd->accepts);
}

unsigned fake_daemon_closed(struct fake_daemon *fd)
{
  return read_counter(fd, &fd->closed);
}

unsigned fake_daemon_unmatched(struct fake_daemon *fd)
{
  return read_counter(fd, &fd->unmatched);
}

unsigned fake_daemon_request_count(struct fake_daemon *fd)
{
  return read_counter(fd, &fd->request_count);
}

bool fake_daemon_request(struct fake_daemon *fd, unsigned i,
                         struct fake_request *out)
{
  bool found;

  pthread_mutex_lock(&fd->lock);
  found = i < fd->request_count;
  if (found)
    *out = fd->requests[i];
  pthread_mutex_unlock(&fd->lock);
  return found;
}

bool fake_daemon_find(struct fake_daemon *fd, const char *name, unsigned nth,
                      struct fake_request *out)
{
  int route = route_index(fd, name);
  bool found = false;

  pthread_mutex_lock(&fd->lock);
  for (unsigned i = 0; route >= 0 && i < fd->request_count; i++) {
    if (fd->requests[i].route != route)
      continue;
    if (nth-- == 0) {
      *out = fd->requests[i];
      found = true;
      break;
    }
  }
  pthread_mutex_unlock(&fd->lock);
  return found;
}

unsigned fake_daemon_hits(struct fake_daemon *fd, const char *name)
{
  int route = route_index(fd, name);

  return route < 0 ? 0 : read_counter(fd, &fd->routes[route].hits);
}

unsigned fake_daemon_write_seq(struct fake_daemon *fd, const char *name,
                               unsigned index)
{
  int route = route_index(fd, name);

  if (route < 0 || index >= FAKE_WRITES_MAX)
    return 0;
  return read_counter(fd, &fd->routes[route].write_seq[index]);
}

bool fake_daemon_wait_closed(struct fake_daemon *fd, unsigned n,
                             unsigned timeout_ms)
{
  struct timespec until;
  bool reached;

  deadline_after(&until, timeout_ms);
  pthread_mutex_lock(&fd->lock);
  while (fd->closed < n &&
         pthread_cond_timedwait(&fd->changed, &fd->lock, &until) == 0)
    ;
  reached = fd->closed >= n;
  pthread_mutex_unlock(&fd->lock);
  return reached;
}

bool fake_header(const struct fake_request *req, const char *name, char *value,
                 size_t size)
{
  const char *p = strstr(req->raw, "\r\n");
  const char *end = req->raw + req->head_len;
  size_t name_len = strlen(name);

  while (p && p + 2 < end) {
    const char *line = p + 2;
    const char *eol = strstr(line, "\r\n");

    if (!eol || eol >= end)
      break;
    if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
        strncasecmp(line, name, name_len) == 0) {
      const char *v = line + name_len + 1;
      size_t len;

      while (*v == ' ' || *v == '\t')
        v++;
      len = (size_t)(eol - v);
      while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
      if (size) {
        if (len >= size)
          len = size - 1;
        memcpy(value, v, len);
        value[len] = '\0';
      }
      return true;
    }
    p = eol;
  }
  return false;
}
