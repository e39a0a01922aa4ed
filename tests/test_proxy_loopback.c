/* End-to-end tests of the egress proxy on loopback: the proxy runs in a
 * child process (proxy_main) on 127.0.0.1 with an ephemeral port, and the
 * test's own threads play the client and the upstream servers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/proxy.h"

#define IO_TIMEOUT_S 10
#define CAPTURE_MAX (1024 * 1024)
#define TUNNEL_BYTES (512 * 1024)

struct proxy_child {
  pid_t pid;
  uint16_t port;
  char log_path[64];
  char hosts_path[64];
};

static void set_timeouts(int fd)
{
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};

  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void sleep_ms(long ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};

  nanosleep(&ts, NULL);
}

/* Reads the whole log file of the proxy into a static buffer. */
static const char *read_log(const struct proxy_child *p)
{
  static char text[256 * 1024];
  int fd = open(p->log_path, O_RDONLY);
  ssize_t n;

  text[0] = '\0';
  if (fd < 0)
    return text;
  n = read(fd, text, sizeof(text) - 1);
  text[n > 0 ? n : 0] = '\0';
  close(fd);
  return text;
}

/* Starts the proxy with the given allowlist and ports; allowed.test and
 * denied.test map to 127.0.0.1 in its hosts file. */
static void proxy_spawn(struct proxy_child *p, const char *hosts,
                        const char *ports, bool loopback_upstream)
{
  static const char hosts_file[] = "127.0.0.1 allowed.test denied.test\n";
  int log_fd, hosts_fd;

  snprintf(p->log_path, sizeof(p->log_path), "/tmp/rbx-proxy-log-XXXXXX");
  snprintf(p->hosts_path, sizeof(p->hosts_path), "/tmp/rbx-proxy-hosts-XXXXXX");
  log_fd = mkstemp(p->log_path);
  hosts_fd = mkstemp(p->hosts_path);
  assert_true(log_fd >= 0);
  assert_true(hosts_fd >= 0);
  assert_int_equal(write(hosts_fd, hosts_file, sizeof(hosts_file) - 1),
                   (ssize_t)sizeof(hosts_file) - 1);
  close(hosts_fd);

  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    setenv("PROXY_ALLOW_HOSTS", hosts, 1);
    setenv("PROXY_ALLOW_PORTS", ports, 1);
    setenv("PROXY_LISTEN", "127.0.0.1:0", 1);
    setenv("PROXY_LOG", "debug", 1);
    setenv("PROXY_HOSTS_FILE", p->hosts_path, 1);
    setenv("PROXY_RESOLV_CONF", "/dev/null", 1);
    if (loopback_upstream)
      setenv("PROXY_ALLOW_LOOPBACK_UPSTREAM", "1", 1);
    else
      unsetenv("PROXY_ALLOW_LOOPBACK_UPSTREAM");
    dup2(log_fd, STDERR_FILENO);
    _exit(proxy_main());
  }
  close(log_fd);
  for (int i = 0; i < 500; i++) {
    const char *line = strstr(read_log(p), "msg=listening addr=127.0.0.1:");

    if (line) {
      p->port = (uint16_t)atoi(line + strlen("msg=listening addr=127.0.0.1:"));
      return;
    }
    sleep_ms(10);
  }
  fail_msg("the proxy did not start; its log:\n%s", read_log(p));
}

/* Stops the proxy with SIGTERM and checks that it exits with status 0. */
static void proxy_stop(struct proxy_child *p)
{
  int status = 0;

  assert_int_equal(kill(p->pid, SIGTERM), 0);
  assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_non_null(strstr(read_log(p), "msg=stopped"));
  unlink(p->log_path);
  unlink(p->hosts_path);
}

static int listen_loopback(uint16_t *port)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  socklen_t len = sizeof(addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

static int connect_proxy(const struct proxy_child *p)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(p->port);
  assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  set_timeouts(fd);
  return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
  const char *p = data;

  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

    assert_true(n > 0);
    p += n;
    len -= (size_t)n;
  }
}

/* Reads until EOF or until max bytes; returns the count. */
static size_t recv_all(int fd, char *buf, size_t max)
{
  size_t used = 0;

  while (used < max) {
    ssize_t n = recv(fd, buf + used, max - used, 0);

    if (n <= 0)
      break;
    used += (size_t)n;
  }
  return used;
}

/* An upstream origin server: accepts one connection, reads expect_len
 * bytes, sends response, then closes. */
struct origin {
  int listen_fd;
  uint16_t port;
  size_t expect_len;
  const char *response;
  char received[8192];
  size_t received_len;
  bool accepted;
  pthread_t thread;
};

static void *origin_run(void *arg)
{
  struct origin *o = arg;
  int fd = accept(o->listen_fd, NULL, NULL);

  if (fd < 0)
    return NULL;
  o->accepted = true;
  set_timeouts(fd);
  while (o->received_len < o->expect_len) {
    ssize_t n = recv(fd, o->received + o->received_len,
                     sizeof(o->received) - o->received_len, 0);

    if (n <= 0)
      break;
    o->received_len += (size_t)n;
  }
  send(fd, o->response, strlen(o->response), MSG_NOSIGNAL);
  close(fd);
  return NULL;
}

static void origin_listen(struct origin *o)
{
  memset(o, 0, sizeof(*o));
  o->listen_fd = listen_loopback(&o->port);
}

static void origin_start(struct origin *o, size_t expect_len,
                         const char *response)
{
  o->expect_len = expect_len;
  o->response = response;
  assert_int_equal(pthread_create(&o->thread, NULL, origin_run, o), 0);
}

/* Stops an origin that may never have been connected to. */
static void origin_join(struct origin *o)
{
  shutdown(o->listen_fd, SHUT_RDWR);
  pthread_join(o->thread, NULL);
  close(o->listen_fd);
}

static char *ports_with(uint16_t port)
{
  static char ports[32];

  snprintf(ports, sizeof(ports), "80,%u", port);
  return ports;
}

/* Sends request through a fresh client connection and returns the whole
 * response, up to EOF. */
static size_t exchange(const struct proxy_child *p, const char *request,
                       size_t request_len, char *response, size_t max)
{
  int fd = connect_proxy(p);
  size_t len;

  send_all(fd, request, request_len);
  len = recv_all(fd, response, max);
  close(fd);
  return len;
}

static void test_get_forwarded_exact(void **state)
{
  static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                 "X-Origin: yes\r\n\r\nhello";
  struct proxy_child p;
  struct origin o;
  char request[512], expected[512], reply[4096];
  size_t len;

  (void)state;
  origin_listen(&o);
  snprintf(expected, sizeof(expected),
           "GET /path?q=1 HTTP/1.1\r\n"
           "Host: allowed.test:%u\r\n"
           "User-Agent: t\r\n"
           "Connection: close\r\n\r\n",
           o.port);
  origin_start(&o, strlen(expected), response);
  proxy_spawn(&p, "allowed.test", ports_with(o.port), true);
  len = (size_t)snprintf(request, sizeof(request),
                         "GET http://Allowed.Test:%u/path?q=1 HTTP/1.1\r\n"
                         "Host: allowed.test:%u\r\n"
                         "Proxy-Connection: keep-alive\r\n"
                         "User-Agent: t\r\n\r\n",
                         o.port, o.port);
  len = exchange(&p, request, len, reply, sizeof(reply));
  origin_join(&o);
  assert_int_equal(o.received_len, strlen(expected));
  assert_memory_equal(o.received, expected, o.received_len);
  assert_int_equal(len, strlen(response));
  assert_memory_equal(reply, response, len);
  assert_non_null(strstr(read_log(&p), "host=allowed.test"));
  assert_non_null(strstr(read_log(&p), "verdict=allow"));
  proxy_stop(&p);
}

static void test_post_chunked_forwarded(void **state)
{
  static const char body[] = "4\r\nabcd\r\n0\r\n\r\n";
  static const char response[] = "HTTP/1.1 201 Created\r\n\r\n";
  struct proxy_child p;
  struct origin o;
  char request[512], expected[512], reply[4096];
  size_t len, expected_len;

  (void)state;
  origin_listen(&o);
  expected_len = (size_t)snprintf(expected, sizeof(expected),
                                  "POST / HTTP/1.1\r\n"
                                  "Host: allowed.test:%u\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "Connection: close\r\n\r\n%s",
                                  o.port, body);
  origin_start(&o, expected_len, response);
  proxy_spawn(&p, "allowed.test", ports_with(o.port), true);
  /* The bytes after the body are a second request: they must not reach the
   * upstream, which was judged for the first request only. */
  len = (size_t)snprintf(request, sizeof(request),
                         "POST http://allowed.test:%u HTTP/1.1\r\n"
                         "Host: allowed.test:%u\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n%s"
                         "GET http://denied.test/ HTTP/1.1\r\n"
                         "Host: denied.test\r\n\r\n",
                         o.port, o.port, body);
  len = exchange(&p, request, len, reply, sizeof(reply));
  origin_join(&o);
  assert_int_equal(o.received_len, expected_len);
  assert_memory_equal(o.received, expected, expected_len);
  assert_int_equal(len, strlen(response));
  assert_memory_equal(reply, response, len);
  proxy_stop(&p);
}

static void assert_reply(const char *reply, size_t len, int status,
                         const char *body)
{
  char head[64];
  char expected_body[256];

  snprintf(head, sizeof(head), "HTTP/1.1 %d ", status);
  snprintf(expected_body, sizeof(expected_body), "\r\n\r\n%s\n", body);
  assert_true(len > strlen(head));
  assert_memory_equal(reply, head, strlen(head));
  assert_true(len >= strlen(expected_body));
  assert_memory_equal(reply + len - strlen(expected_body), expected_body,
                      strlen(expected_body));
}

static void test_denied_host_403(void **state)
{
  static const char request[] = "GET http://denied.test/ HTTP/1.1\r\n"
                                "Host: denied.test\r\n\r\n";
  static const char expected[] = "HTTP/1.1 403 Forbidden\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 22\r\n"
                                 "Connection: close\r\n\r\n"
                                 "host not in allowlist\n";
  struct proxy_child p;
  char reply[4096];
  size_t len;

  (void)state;
  proxy_spawn(&p, "allowed.test", "80,443", true);
  len = exchange(&p, request, strlen(request), reply, sizeof(reply));
  assert_int_equal(len, strlen(expected));
  assert_memory_equal(reply, expected, len);
  assert_non_null(strstr(read_log(&p),
                         "method=GET host=denied.test port=80 verdict=deny "
                         "status=403 reason=\"host not in allowlist\""));
  proxy_stop(&p);
}

static void test_bad_port_400(void **state)
{
  static const char *const requests[] = {
      "CONNECT allowed.test:080 HTTP/1.1\r\nHost: allowed.test:080\r\n\r\n",
      "CONNECT allowed.test:+443 HTTP/1.1\r\n\r\n",
      "CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n",
      "CONNECT allowed.test: HTTP/1.1\r\n\r\n",
      "GET http://allowed.test:080/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
  };
  struct proxy_child p;

  (void)state;
  proxy_spawn(&p, "allowed.test", "80,443", true);
  for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
    char reply[4096];
    size_t len =
        exchange(&p, requests[i], strlen(requests[i]), reply, sizeof(reply));

    print_message("request %s", requests[i]);
    assert_reply(reply, len, 400, "invalid port");
  }
  assert_non_null(strstr(read_log(&p), "verdict=invalid status=400"));
  proxy_stop(&p);
}

static void test_port_not_allowed_403(void **state)
{
  static const char request[] = "CONNECT allowed.test:22 HTTP/1.1\r\n\r\n";
  struct proxy_child p;
  char reply[4096];
  size_t len;

  (void)state;
  proxy_spawn(&p, "allowed.test", "80,443", true);
  len = exchange(&p, request, strlen(request), reply, sizeof(reply));
  assert_reply(reply, len, 403, "port not allowed");
  proxy_stop(&p);
}

/* An echo upstream: accepts one connection, sends back what it reads, and
 * shuts down its side after the client's end of stream. */
struct echo {
  int listen_fd;
  uint16_t port;
  size_t echoed;
  pthread_t thread;
};

static void *echo_run(void *arg)
{
  struct echo *e = arg;
  char buf[16384];
  int fd = accept(e->listen_fd, NULL, NULL);

  if (fd < 0)
    return NULL;
  set_timeouts(fd);
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);

    if (n <= 0)
      break;
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
      break;
    e->echoed += (size_t)n;
  }
  shutdown(fd, SHUT_WR);
  close(fd);
  return NULL;
}

struct tunnel_writer {
  int fd;
  const uint8_t *data;
  size_t len;
};

static void *tunnel_write(void *arg)
{
  struct tunnel_writer *w = arg;
  size_t sent = 0;

  while (sent < w->len) {
    ssize_t n = send(w->fd, w->data + sent, w->len - sent, MSG_NOSIGNAL);

    if (n <= 0)
      break;
    sent += (size_t)n;
  }
  /* Half-close: the tunnel must still carry the echo back. */
  shutdown(w->fd, SHUT_WR);
  return NULL;
}

static void test_connect_tunnel_exact(void **state)
{
  static const char established[] =
      "HTTP/1.1 200 Connection established\r\n\r\n";
  static uint8_t data[TUNNEL_BYTES], back[TUNNEL_BYTES + 16];
  struct proxy_child p;
  struct echo e = {0};
  struct tunnel_writer w;
  pthread_t writer;
  char request[128], head[sizeof(established) - 1];
  size_t len;
  int fd;

  (void)state;
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 7 + i / 251);
  e.listen_fd = listen_loopback(&e.port);
  assert_int_equal(pthread_create(&e.thread, NULL, echo_run, &e), 0);
  proxy_spawn(&p, "*.allowed.test", ports_with(e.port), true);

  fd = connect_proxy(&p);
  len = (size_t)snprintf(request, sizeof(request),
                         "CONNECT allowed.test:%u HTTP/1.1\r\n"
                         "Host: allowed.test:%u\r\n\r\n",
                         e.port, e.port);
  send_all(fd, request, len);
  assert_int_equal(recv_all(fd, head, sizeof(head)), sizeof(head));
  assert_memory_equal(head, established, sizeof(head));

  w = (struct tunnel_writer){.fd = fd, .data = data, .len = sizeof(data)};
  assert_int_equal(pthread_create(&writer, NULL, tunnel_write, &w), 0);
  len = recv_all(fd, (char *)back, sizeof(back));
  pthread_join(writer, NULL);
  close(fd);
  pthread_join(e.thread, NULL);
  close(e.listen_fd);

  assert_int_equal(e.echoed, sizeof(data));
  assert_int_equal(len, sizeof(data));
  assert_memory_equal(back, data, sizeof(data));
  for (int i = 0; i < 200 && !strstr(read_log(&p), "msg=close"); i++)
    sleep_ms(10);
  assert_non_null(strstr(read_log(&p), "reason=\"both sides closed\""));
  proxy_stop(&p);
}

static void test_loopback_refused_by_default(void **state)
{
  struct proxy_child p;
  struct origin o;
  char request[128], reply[4096];
  size_t len;

  (void)state;
  origin_listen(&o);
  origin_start(&o, 0, "HTTP/1.1 200 OK\r\n\r\n");
  proxy_spawn(&p, "allowed.test,127.0.0.1", ports_with(o.port), false);
  len = (size_t)snprintf(request, sizeof(request),
                         "CONNECT allowed.test:%u HTTP/1.1\r\n\r\n", o.port);
  len = exchange(&p, request, len, reply, sizeof(reply));
  assert_reply(reply, len, 403, "destination is a loopback address");
  len = (size_t)snprintf(request, sizeof(request),
                         "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", o.port);
  len = exchange(&p, request, len, reply, sizeof(reply));
  assert_reply(reply, len, 403, "destination is a loopback address");
  origin_join(&o);
  assert_false(o.accepted);
  assert_non_null(strstr(read_log(&p), "upstream=127.0.0.1:"));
  proxy_stop(&p);
}

static void test_unreachable_upstream_502(void **state)
{
  struct proxy_child p;
  char request[128], reply[4096];
  uint16_t port;
  size_t len;
  int fd;

  (void)state;
  /* A port that was just free: nothing listens there any more. */
  fd = listen_loopback(&port);
  close(fd);
  proxy_spawn(&p, "allowed.test", ports_with(port), true);
  len = (size_t)snprintf(request, sizeof(request),
                         "CONNECT allowed.test:%u HTTP/1.1\r\n\r\n", port);
  len = exchange(&p, request, len, reply, sizeof(reply));
  assert_reply(reply, len, 502, "upstream connection failed");
  proxy_stop(&p);
}

static void test_head_split_and_slow(void **state)
{
  static const char request[] = "GET http://denied.test/ HTTP/1.1\r\n"
                                "Host: denied.test\r\n\r\n";
  struct proxy_child p;
  char reply[4096];
  size_t len;
  int fd;

  (void)state;
  proxy_spawn(&p, "allowed.test", "80", true);
  fd = connect_proxy(&p);
  for (size_t i = 0; i < strlen(request); i++) {
    send_all(fd, request + i, 1);
    if (i % 8 == 0)
      sleep_ms(1);
  }
  len = recv_all(fd, reply, sizeof(reply));
  close(fd);
  assert_reply(reply, len, 403, "host not in allowlist");
  proxy_stop(&p);
}

static void test_empty_allowlist_denies(void **state)
{
  static const char request[] = "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n";
  struct proxy_child p;
  char reply[4096];
  size_t len;

  (void)state;
  proxy_spawn(&p, "", "443", true);
  len = exchange(&p, request, strlen(request), reply, sizeof(reply));
  assert_reply(reply, len, 403, "host not in allowlist");
  assert_non_null(strstr(read_log(&p), "level=warn msg=empty_allowlist"));
  proxy_stop(&p);
}

static void test_many_connections_at_once(void **state)
{
  enum { CLIENTS = 300 };
  static const char request[] = "CONNECT denied.test:443 HTTP/1.1\r\n\r\n";
  static int fds[CLIENTS];
  struct proxy_child p;

  (void)state;
  proxy_spawn(&p, "allowed.test", "443", true);
  /* Every client connects and sends half a head before any finishes. */
  for (int i = 0; i < CLIENTS; i++) {
    fds[i] = connect_proxy(&p);
    send_all(fds[i], request, 10);
  }
  for (int i = 0; i < CLIENTS; i++) {
    char reply[512];
    size_t len;

    send_all(fds[i], request + 10, strlen(request) - 10);
    len = recv_all(fds[i], reply, sizeof(reply));
    close(fds[i]);
    assert_reply(reply, len, 403, "host not in allowlist");
  }
  proxy_stop(&p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_forwarded_exact),
      cmocka_unit_test(test_post_chunked_forwarded),
      cmocka_unit_test(test_denied_host_403),
      cmocka_unit_test(test_bad_port_400),
      cmocka_unit_test(test_port_not_allowed_403),
      cmocka_unit_test(test_connect_tunnel_exact),
      cmocka_unit_test(test_loopback_refused_by_default),
      cmocka_unit_test(test_unreachable_upstream_502),
      cmocka_unit_test(test_head_split_and_slow),
      cmocka_unit_test(test_empty_allowlist_denies),
      cmocka_unit_test(test_many_connections_at_once),
  };

  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
