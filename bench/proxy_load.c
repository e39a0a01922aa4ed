/* Load test of the egress proxy: many CONNECT tunnels at once through a
 * ringbox-proxy child on loopback to an echo server in this process, each
 * moving a pattern both ways and checking it byte for byte. Prints the
 * proxy's CPU time and memory, read from /proc, as one JSON line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PROXY_EXE
#define PROXY_EXE "ringbox-proxy"
#endif

#define CHUNK (64 * 1024)
#define RUN_TIMEOUT_MS 120000
#define EVENTS_MAX 256

static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

enum kind { KIND_LISTENER, KIND_ECHO, KIND_CLIENT };

/* A socket of the bench: the echo listener, an echo connection, or a
 * client tunnel. */
struct peer {
  enum kind kind;
  int fd;
  unsigned index;
  /* echo: bytes read but not yet written back */
  char *buf;
  size_t len, off;
  bool eof;
  /* client */
  bool connected, tunnel_open, write_shut, done, failed;
  char head[sizeof(established)];
  size_t head_len;
  size_t request_sent;
  char request[128];
  size_t request_len;
  uint64_t sent, received;
};

struct bench {
  int epfd;
  unsigned tunnels;
  uint64_t bytes;
  unsigned finished;
  unsigned failed;
  uint16_t echo_port;
  uint16_t proxy_port;
  char first_error[160];
};

static uint64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The byte at offset i of tunnel index's stream. */
static uint8_t pattern(unsigned index, uint64_t i)
{
  return (uint8_t)(i * 31 + (i >> 9) + index * 7);
}

static void fail(struct bench *b, struct peer *p, const char *what)
{
  if (p->failed || p->done)
    return;
  p->failed = true;
  b->failed++;
  b->finished++;
  if (!b->first_error[0])
    snprintf(b->first_error, sizeof(b->first_error), "tunnel %u: %s", p->index,
             what);
  epoll_ctl(b->epfd, EPOLL_CTL_DEL, p->fd, NULL);
  close(p->fd);
}

static void watch(struct bench *b, struct peer *p, uint32_t events, int op)
{
  struct epoll_event ev = {.events = events, .data.ptr = p};

  if (epoll_ctl(b->epfd, op, p->fd, &ev) < 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

static void echo_accept(struct bench *b, struct peer *listener)
{
  for (;;) {
    int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK);
    struct peer *p;

    if (fd < 0)
      return;
    p = calloc(1, sizeof(*p));
    p->kind = KIND_ECHO;
    p->fd = fd;
    p->buf = malloc(CHUNK);
    watch(b, p, EPOLLIN, EPOLL_CTL_ADD);
  }
}

static void echo_close(struct bench *b, struct peer *p)
{
  epoll_ctl(b->epfd, EPOLL_CTL_DEL, p->fd, NULL);
  close(p->fd);
  free(p->buf);
  free(p);
}

/* Echoes what arrives; while a write is pending, reading stops so that a
 * connection never buffers more than CHUNK bytes. */
static void echo_ready(struct bench *b, struct peer *p)
{
  for (;;) {
    if (p->off < p->len) {
      ssize_t n = send(p->fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);

      if (n < 0 && errno == EAGAIN) {
        watch(b, p, EPOLLOUT, EPOLL_CTL_MOD);
        return;
      }
      if (n < 0) {
        echo_close(b, p);
        return;
      }
      p->off += (size_t)n;
      continue;
    }
    if (p->eof) {
      shutdown(p->fd, SHUT_WR);
      echo_close(b, p);
      return;
    }
    ssize_t n = recv(p->fd, p->buf, CHUNK, 0);

    if (n < 0 && errno == EAGAIN) {
      watch(b, p, EPOLLIN, EPOLL_CTL_MOD);
      return;
    }
    if (n <= 0) {
      p->eof = true;
      p->len = p->off = 0;
      continue;
    }
    p->len = (size_t)n;
    p->off = 0;
  }
}

static void client_send(struct bench *b, struct peer *p)
{
  static char chunk[CHUNK];

  while (p->sent < b->bytes) {
    size_t len = b->bytes - p->sent < CHUNK ? b->bytes - p->sent : CHUNK;
    ssize_t n;

    for (size_t i = 0; i < len; i++)
      chunk[i] = (char)pattern(p->index, p->sent + i);
    n = send(p->fd, chunk, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN)
      return;
    if (n < 0) {
      fail(b, p, strerror(errno));
      return;
    }
    p->sent += (uint64_t)n;
  }
  if (!p->write_shut) {
    shutdown(p->fd, SHUT_WR);
    p->write_shut = true;
  }
}

static void client_recv(struct bench *b, struct peer *p)
{
  static char chunk[CHUNK];

  for (;;) {
    ssize_t n = recv(p->fd, chunk, sizeof(chunk), 0);

    if (n < 0 && errno == EAGAIN)
      return;
    if (n < 0) {
      fail(b, p, strerror(errno));
      return;
    }
    if (n == 0) {
      if (p->received != b->bytes) {
        fail(b, p, "tunnel closed early");
        return;
      }
      p->done = true;
      b->finished++;
      epoll_ctl(b->epfd, EPOLL_CTL_DEL, p->fd, NULL);
      close(p->fd);
      return;
    }
    for (ssize_t i = 0; i < n; i++) {
      if ((uint8_t)chunk[i] != pattern(p->index, p->received + (uint64_t)i)) {
        fail(b, p, "echoed byte differs");
        return;
      }
    }
    p->received += (uint64_t)n;
    if (p->received > b->bytes) {
      fail(b, p, "more bytes than sent");
      return;
    }
  }
}

/* Reads the proxy's reply to CONNECT, which must be exactly the 200 line,
 * before any tunnel byte. */
static bool client_head(struct bench *b, struct peer *p)
{
  size_t want = sizeof(established) - 1;

  while (p->head_len < want) {
    ssize_t n = recv(p->fd, p->head + p->head_len, want - p->head_len, 0);

    if (n < 0 && errno == EAGAIN)
      return false;
    if (n <= 0) {
      fail(b, p, "no reply to CONNECT");
      return false;
    }
    p->head_len += (size_t)n;
  }
  if (memcmp(p->head, established, want) != 0) {
    fail(b, p, "unexpected reply to CONNECT");
    return false;
  }
  p->tunnel_open = true;
  return true;
}

static void client_ready(struct bench *b, struct peer *p, uint32_t events)
{
  if (!p->connected) {
    int err = 0;
    socklen_t len = sizeof(err);

    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      fail(b, p, strerror(err));
      return;
    }
    p->connected = true;
  }
  while (p->request_sent < p->request_len) {
    ssize_t n = send(p->fd, p->request + p->request_sent,
                     p->request_len - p->request_sent, MSG_NOSIGNAL);

    if (n < 0 && errno == EAGAIN)
      return;
    if (n < 0) {
      fail(b, p, strerror(errno));
      return;
    }
    p->request_sent += (size_t)n;
  }
  if (!p->tunnel_open && !client_head(b, p))
    return;
  (void)events;
  client_send(b, p);
  if (p->failed)
    return;
  client_recv(b, p);
  if (p->failed || p->done)
    return;
  watch(b, p, p->sent < b->bytes ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
}

static int listen_loopback(uint16_t *port)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  socklen_t len = sizeof(addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
      listen(fd, 1024) < 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
    perror("echo listener");
    exit(1);
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

static struct peer *client_start(struct bench *b, unsigned index)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  struct peer *p = calloc(1, sizeof(*p));

  p->kind = KIND_CLIENT;
  p->index = index;
  p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  p->request_len = (size_t)snprintf(p->request, sizeof(p->request),
                                    "CONNECT echo.test:%u HTTP/1.1\r\n"
                                    "Host: echo.test:%u\r\n\r\n",
                                    b->echo_port, b->echo_port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(b->proxy_port);
  if (connect(p->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
      errno != EINPROGRESS) {
    perror("connect to proxy");
    exit(1);
  }
  watch(b, p, EPOLLOUT | EPOLLIN, EPOLL_CTL_ADD);
  return p;
}

/* Starts the proxy with its stderr in log_path and returns its pid; the
 * port it listens on is read from its "msg=listening" log line. */
static pid_t proxy_spawn(const char *exe, struct bench *b, const char *log_path,
                         const char *hosts_path)
{
  char ports[16];
  pid_t pid;

  snprintf(ports, sizeof(ports), "%u", b->echo_port);
  pid = fork();
  if (pid == 0) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    dup2(fd, STDERR_FILENO);
    setenv("PROXY_ALLOW_HOSTS", "echo.test", 1);
    setenv("PROXY_ALLOW_PORTS", ports, 1);
    setenv("PROXY_LISTEN", "127.0.0.1:0", 1);
    setenv("PROXY_HOSTS_FILE", hosts_path, 1);
    setenv("PROXY_RESOLV_CONF", "/dev/null", 1);
    setenv("PROXY_ALLOW_LOOPBACK_UPSTREAM", "1", 1);
    setenv("PROXY_LOG", "info", 1);
    execl(exe, exe, (char *)NULL);
    perror(exe);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    char text[4096] = "";
    int fd = open(log_path, O_RDONLY);
    const char *line;

    if (fd >= 0) {
      ssize_t n = read(fd, text, sizeof(text) - 1);

      text[n > 0 ? n : 0] = '\0';
      close(fd);
    }
    line = strstr(text, "msg=listening addr=127.0.0.1:");
    if (line) {
      b->proxy_port =
          (uint16_t)atoi(line + strlen("msg=listening addr=127.0.0.1:"));
      return pid;
    }
    usleep(10000);
  }
  fprintf(stderr, "proxy_load: %s did not start; see %s\n", exe, log_path);
  kill(pid, SIGTERM);
  exit(1);
}

/* CPU time (user + system) of pid in milliseconds. */
static uint64_t proc_cpu_ms(pid_t pid)
{
  char path[64], text[1024];
  unsigned long utime = 0, stime = 0;
  FILE *f;
  char *p;

  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  f = fopen(path, "r");
  if (!f || !fgets(text, sizeof(text), f)) {
    if (f)
      fclose(f);
    return 0;
  }
  fclose(f);
  /* Fields after the command name, which ends at the last ')'. */
  p = strrchr(text, ')');
  if (!p || sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu "
                   "%lu",
                   &utime, &stime) != 2)
    return 0;
  return (uint64_t)(utime + stime) * 1000 / (uint64_t)sysconf(_SC_CLK_TCK);
}

/* A "Vm...:" value of /proc/pid/status in KiB. */
static long proc_status_kib(pid_t pid, const char *key)
{
  char path[64], line[256];
  long value = -1;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, strlen(key)) == 0)
      value = strtol(line + strlen(key), NULL, 10);
  fclose(f);
  return value;
}

static void raise_fd_limit(void)
{
  struct rlimit lim;

  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

static void usage(void)
{
  fprintf(stderr,
          "usage: proxy-load [--proxy PATH] [--tunnels N] [--bytes N]\n"
          "  --proxy    ringbox-proxy binary (default %s)\n"
          "  --tunnels  CONNECT tunnels open at once (default 200)\n"
          "  --bytes    bytes sent each way per tunnel (default 1048576)\n",
          PROXY_EXE);
}

int main(int argc, char **argv)
{
  struct bench b = {.tunnels = 200, .bytes = 1024 * 1024};
  const char *exe = PROXY_EXE;
  char log_path[] = "/tmp/proxy-load-log-XXXXXX";
  char hosts_path[] = "/tmp/proxy-load-hosts-XXXXXX";
  struct peer listener = {.kind = KIND_LISTENER};
  struct epoll_event events[EVENTS_MAX];
  struct peer **clients;
  uint64_t start, elapsed, cpu_before, cpu_after;
  long rss_idle, rss, hwm;
  int status = 0, fd;
  pid_t pid;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc)
      exe = argv[++i];
    else if (strcmp(argv[i], "--tunnels") == 0 && i + 1 < argc)
      b.tunnels = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc)
      b.bytes = strtoull(argv[++i], NULL, 10);
    else {
      usage();
      return 2;
    }
  }
  if (b.tunnels == 0 || b.bytes == 0) {
    usage();
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  b.epfd = epoll_create1(EPOLL_CLOEXEC);
  listener.fd = listen_loopback(&b.echo_port);
  watch(&b, &listener, EPOLLIN, EPOLL_CTL_ADD);

  fd = mkstemp(hosts_path);
  if (fd < 0 || write(fd, "127.0.0.1 echo.test\n", 20) != 20) {
    perror("hosts file");
    return 1;
  }
  close(fd);
  fd = mkstemp(log_path);
  close(fd);
  pid = proxy_spawn(exe, &b, log_path, hosts_path);
  rss_idle = proc_status_kib(pid, "VmRSS:");
  cpu_before = proc_cpu_ms(pid);

  clients = calloc(b.tunnels, sizeof(*clients));
  start = now_ms();
  for (unsigned i = 0; i < b.tunnels; i++)
    clients[i] = client_start(&b, i);
  while (b.finished < b.tunnels && now_ms() - start < RUN_TIMEOUT_MS) {
    int n = epoll_wait(b.epfd, events, EVENTS_MAX, 1000);

    for (int i = 0; i < n; i++) {
      struct peer *p = events[i].data.ptr;

      if (p->kind == KIND_LISTENER)
        echo_accept(&b, p);
      else if (p->kind == KIND_ECHO)
        echo_ready(&b, p);
      else if (!p->done && !p->failed)
        client_ready(&b, p, events[i].events);
    }
  }
  elapsed = now_ms() - start;
  cpu_after = proc_cpu_ms(pid);
  rss = proc_status_kib(pid, "VmRSS:");
  hwm = proc_status_kib(pid, "VmHWM:");
  kill(pid, SIGTERM);
  waitpid(pid, &status, 0);
  unlink(hosts_path);
  for (unsigned i = 0; i < b.tunnels; i++)
    free(clients[i]);
  free(clients);

  printf("{\"bench\":\"proxy_load\",\"tunnels\":%u,\"bytes_each_way\":%llu,"
         "\"ok\":%u,\"failed\":%u,\"timed_out\":%u,\"elapsed_ms\":%llu,"
         "\"mib_per_s_both_ways\":%.1f,\"proxy_cpu_ms\":%llu,"
         "\"proxy_rss_idle_kib\":%ld,\"proxy_rss_kib\":%ld,"
         "\"proxy_hwm_kib\":%ld,\"proxy_exit\":%d}\n",
         b.tunnels, (unsigned long long)b.bytes, b.finished - b.failed,
         b.failed, b.tunnels - b.finished, (unsigned long long)elapsed,
         elapsed ? (double)b.tunnels * (double)b.bytes * 2 / 1048576.0 /
                       ((double)elapsed / 1000.0)
                 : 0.0,
         (unsigned long long)(cpu_after - cpu_before), rss_idle, rss, hwm,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (b.first_error[0])
    fprintf(stderr, "proxy_load: first failure: %s\n", b.first_error);
  if (b.failed || b.finished < b.tunnels) {
    fprintf(stderr, "proxy_load: proxy log kept in %s\n", log_path);
    return 1;
  }
  unlink(log_path);
  return 0;
}
