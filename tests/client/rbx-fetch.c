/* rbx-fetch: a small static HTTP/1.1 client that tests run inside containers,
 * where busybox wget crashes. It fetches one URL directly, through a proxy, or
 * through a CONNECT tunnel, and checks TCP reachability and name lookups.
 * Exit codes follow curl's where curl has one. */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_UNSUPPORTED 1
#define EXIT_USAGE 2
#define EXIT_BAD_URL 3
#define EXIT_NO_PROXY_HOST 5
#define EXIT_NO_HOST 6
#define EXIT_CONNECT 7
#define EXIT_BAD_REPLY 8
#define EXIT_PARTIAL 18
#define EXIT_HTTP 22
#define EXIT_WRITE 23
#define EXIT_TIMEOUT 28
#define EXIT_EMPTY_REPLY 52
#define EXIT_SEND 55
#define EXIT_RECV 56

#define MAX_HOST_LEN 255
#define HOST_BUF_LEN (MAX_HOST_LEN + 3) /* brackets of an IPv6 literal, NUL */
#define MAX_PATH_LEN 4096
#define MAX_LINE_LEN 8192      /* one status, header or chunk-size line */
#define MAX_HEADER_BYTES 65536 /* all header lines of one response */
#define MAX_REQUEST_LEN (MAX_PATH_LEN + 2 * MAX_HOST_LEN + 512)
#define READ_BUF_LEN 16384
#define DEFAULT_MAX_TIME_S 10
#define CONNECT_TIMEOUT_MS 5000
#define TCP_CHECK_TIMEOUT_MS 3000
#define DEFAULT_PROXY_PORT "3128"

struct url {
  bool https;
  char host[HOST_BUF_LEN]; /* IPv6 literals keep their brackets */
  char port[6];
  char path[MAX_PATH_LEN + 1];
};

struct conn {
  int fd;
  int64_t deadline_ms;
  char buf[READ_BUF_LEN];
  size_t start;
  size_t end;
};

struct response {
  int status;
  bool chunked;
  bool has_length;
  uint64_t length;
};

static bool verbose;

static void fail_msg(const char *fmt, ...)
{
  va_list ap;

  fputs("rbx-fetch: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline_ms)
{
  int64_t left = deadline_ms - now_ms();

  if (left <= 0)
    return 0;
  return left > INT32_MAX ? INT32_MAX : (int)left;
}

static void usage(FILE *out)
{
  fputs(
      "usage: rbx-fetch [-x http://PROXY_IP:PORT] [--connect] [--no-proxy]\n"
      "                 [-m SECONDS] [-v] URL\n"
      "       rbx-fetch --tcp HOST PORT\n"
      "       rbx-fetch --lookup NAME\n"
      "\n"
      "Fetches URL with GET and writes the response body to stdout.\n"
      "  -x, --proxy URL  HTTP proxy (default from http_proxy/HTTP_PROXY,\n"
      "                   for https:// URLs first https_proxy/HTTPS_PROXY);\n"
      "                   the port defaults to " DEFAULT_PROXY_PORT "\n"
      "  --connect        open a CONNECT tunnel through the proxy and send\n"
      "                   plain HTTP inside it (always so for https:// URLs;\n"
      "                   there is no TLS)\n"
      "  --no-proxy       ignore the proxy environment variables\n"
      "  -m SECONDS       maximum time for the whole transfer (default 10)\n"
      "  -v               print request and status lines to stderr\n"
      "  --tcp HOST PORT  only open a TCP connection (3 s timeout)\n"
      "  --lookup NAME    only resolve NAME and print its addresses\n"
      "\n"
      "Exit codes: 0 success, 1 https:// without a proxy, 2 usage, 3 invalid\n"
      "URL, 5 proxy name not resolved, 6 name not resolved, 7 connection\n"
      "failed or timed out, 8 invalid response, 18 body shorter than\n"
      "Content-Length, 22 HTTP status not 2xx, 28 timed out, 52 empty\n"
      "reply, 55 send failed, 56 receive failed.\n",
      out);
}

/* Splits "[scheme://]host[:port][/path]" into url. A missing scheme counts as
 * http. Returns 0 or EXIT_BAD_URL. */
static int parse_url(const char *text, const char *default_port,
                     struct url *url)
{
  const char *p = text;
  const char *host_end;
  const char *port_start = NULL;
  size_t host_len;

  memset(url, 0, sizeof(*url));
  if (strncasecmp(p, "http://", 7) == 0) {
    p += 7;
  } else if (strncasecmp(p, "https://", 8) == 0) {
    url->https = true;
    p += 8;
  } else if (strstr(p, "://")) {
    fail_msg("unsupported scheme in '%s' (use http:// or https://)", text);
    return EXIT_BAD_URL;
  }

  if (*p == '[') {
    host_end = strchr(p, ']');
    if (!host_end) {
      fail_msg("invalid URL '%s': missing ']' after IPv6 address", text);
      return EXIT_BAD_URL;
    }
    host_end++;
  } else {
    host_end = p + strcspn(p, ":/?#");
  }
  host_len = (size_t)(host_end - p);
  if (host_len == 0 || host_len > sizeof(url->host) - 1) {
    fail_msg("invalid URL '%s': empty host or host over %d bytes", text,
             MAX_HOST_LEN);
    return EXIT_BAD_URL;
  }
  memcpy(url->host, p, host_len);

  p = host_end;
  if (*p == ':') {
    port_start = ++p;
    p += strspn(p, "0123456789");
    if (p == port_start || p - port_start > 5 || atoi(port_start) > 65535 ||
        atoi(port_start) == 0 || (*p && !strchr("/?#", *p))) {
      fail_msg("invalid URL '%s': port must be 1 to 65535", text);
      return EXIT_BAD_URL;
    }
    memcpy(url->port, port_start, (size_t)(p - port_start));
  } else {
    if (default_port)
      strcpy(url->port, default_port);
    else if (url->https)
      strcpy(url->port, "443");
    else
      strcpy(url->port, "80");
  }

  if (*p == '/' || *p == '?') {
    size_t path_len = strcspn(p, "#");

    if (path_len > MAX_PATH_LEN) {
      fail_msg("invalid URL '%s': path over %d bytes", text, MAX_PATH_LEN);
      return EXIT_BAD_URL;
    }
    if (*p == '?')
      url->path[0] = '/';
    memcpy(url->path + (*p == '?'), p, path_len);
  } else {
    strcpy(url->path, "/");
  }
  return 0;
}

/* Copies the host without IPv6 brackets, as getaddrinfo expects it. */
static void bare_host(const struct url *url, char *out, size_t out_len)
{
  size_t len = strlen(url->host);

  if (url->host[0] == '[' && len >= 2)
    snprintf(out, out_len, "%.*s", (int)(len - 2), url->host + 1);
  else
    snprintf(out, out_len, "%s", url->host);
}

static int resolve(const char *host, const char *port, struct addrinfo **res)
{
  struct addrinfo hints = {0};

  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  return getaddrinfo(host, port, &hints, res);
}

/* Connects a non-blocking socket to one address within timeout_ms.
 * Returns the socket or -1 with errno set (ETIMEDOUT on timeout). */
static int connect_addr(const struct addrinfo *ai, int timeout_ms)
{
  struct pollfd pfd;
  int fd, err = 0, rc;
  socklen_t err_len = sizeof(err);

  fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
              ai->ai_protocol);
  if (fd < 0)
    return -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return fd;
  if (errno != EINPROGRESS)
    goto fail;

  pfd.fd = fd;
  pfd.events = POLLOUT;
  do {
    rc = poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    errno = ETIMEDOUT;
    goto fail;
  }
  if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
    goto fail;
  if (err) {
    errno = err;
    goto fail;
  }
  return fd;

fail:
  err = errno;
  close(fd);
  errno = err;
  return -1;
}

/* Tries every address of host:port in turn. Returns the socket, or minus an
 * exit code after printing why. */
static int open_tcp(const char *host, const char *port, int timeout_ms,
                    int no_host_exit)
{
  struct addrinfo *res, *ai;
  int rc, fd = -1, err = 0;

  rc = resolve(host, port, &res);
  if (rc != 0) {
    if (no_host_exit == EXIT_NO_PROXY_HOST)
      fail_msg("cannot resolve proxy %s (%s)", host, gai_strerror(rc));
    else
      fail_msg("cannot resolve %s", host);
    return -no_host_exit;
  }
  for (ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = connect_addr(ai, timeout_ms);
    if (fd < 0)
      err = errno;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fail_msg("failed to connect to %s port %s: %s", host, port, strerror(err));
    return -EXIT_CONNECT;
  }
  return fd;
}

static int send_all(struct conn *c, const char *data, size_t len)
{
  struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};

  while (len > 0) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

    if (n > 0) {
      data += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN) {
      fail_msg("send failed: %s", strerror(errno));
      return EXIT_SEND;
    }
    if (poll(&pfd, 1, remaining_ms(c->deadline_ms)) == 0) {
      fail_msg("timed out while sending the request");
      return EXIT_TIMEOUT;
    }
  }
  return 0;
}

/* Refills the empty buffer. Callers consume every buffered byte before they
 * call it. Returns the count, 0 at end of stream, or minus an exit code after
 * printing why. */
static ssize_t fill(struct conn *c)
{
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

  c->start = c->end = 0;
  for (;;) {
    ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);

    if (n >= 0) {
      c->end = (size_t)n;
      return n;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN) {
      fail_msg("receive failed: %s", strerror(errno));
      return -EXIT_RECV;
    }
    if (poll(&pfd, 1, remaining_ms(c->deadline_ms)) == 0) {
      fail_msg("timed out waiting for the response");
      return -EXIT_TIMEOUT;
    }
  }
}

/* Reads one line ending in LF, drops the CR before it and NUL-terminates it
 * into line. Returns its length, -1 at end of stream before any byte, or
 * minus an exit code. */
static ssize_t read_line(struct conn *c, char *line, size_t line_cap)
{
  size_t len = 0;
  ssize_t n;

  for (;;) {
    while (c->start < c->end) {
      char ch = c->buf[c->start++];

      if (ch == '\n') {
        if (len > 0 && line[len - 1] == '\r')
          len--;
        line[len] = '\0';
        return (ssize_t)len;
      }
      if (len + 1 >= line_cap) {
        fail_msg("response line longer than %zu bytes", line_cap - 1);
        return -EXIT_BAD_REPLY;
      }
      line[len++] = ch;
    }

    n = fill(c);
    if (n < 0)
      return n;
    if (n == 0)
      return len == 0 ? -1 : -EXIT_RECV;
  }
}

static int write_out(const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, data, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      fail_msg("writing to stdout failed: %s", strerror(errno));
      return EXIT_WRITE;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Copies len body bytes to stdout; all of them when until_eof is set.
 * Returns 0 or an exit code. */
static int copy_body(struct conn *c, uint64_t len, bool until_eof)
{
  while (until_eof || len > 0) {
    size_t avail = c->end - c->start;

    if (avail == 0) {
      ssize_t n = fill(c);

      if (n < 0)
        return (int)-n;
      if (n == 0 && until_eof)
        return 0;
      if (n == 0) {
        fail_msg("connection closed with %llu body bytes missing",
                 (unsigned long long)len);
        return EXIT_PARTIAL;
      }
      continue;
    }
    if (!until_eof && avail > len)
      avail = (size_t)len;
    if (write_out(c->buf + c->start, avail) != 0)
      return EXIT_WRITE;
    c->start += avail;
    if (!until_eof)
      len -= avail;
  }
  return 0;
}

static int copy_chunked_body(struct conn *c)
{
  char line[MAX_LINE_LEN];

  for (;;) {
    ssize_t n = read_line(c, line, sizeof(line));
    char *end;
    unsigned long long size;
    int rc;

    if (n < 0)
      return n == -1 ? EXIT_PARTIAL : (int)-n;
    errno = 0;
    size = strtoull(line, &end, 16);
    if (end == line || errno || (*end && *end != ';' && *end != ' ')) {
      fail_msg("invalid chunk size line '%s'", line);
      return EXIT_BAD_REPLY;
    }
    if (size == 0)
      break;
    rc = copy_body(c, size, false);
    if (rc != 0)
      return rc;
    n = read_line(c, line, sizeof(line));
    if (n != 0) {
      fail_msg("missing line end after a chunk");
      return n < -1 ? (int)-n : EXIT_BAD_REPLY;
    }
  }
  /* Trailer fields end with an empty line; their content is not used. */
  for (;;) {
    ssize_t n = read_line(c, line, sizeof(line));

    if (n == 0 || n == -1)
      return 0;
    if (n < 0)
      return (int)-n;
  }
}

static void parse_header(const char *line, struct response *resp)
{
  const char *value = strchr(line, ':');
  size_t name_len;

  if (!value)
    return;
  name_len = (size_t)(value - line);
  value++;
  value += strspn(value, " \t");
  if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
    resp->has_length = true;
    resp->length = strtoull(value, NULL, 10);
  } else if (name_len == 17 &&
             strncasecmp(line, "transfer-encoding", 17) == 0) {
    resp->chunked = strcasestr(value, "chunked") != NULL;
  }
}

/* Reads a status line and header fields, skipping interim 1xx responses.
 * Returns 0 or an exit code. */
static int read_head(struct conn *c, struct response *resp)
{
  char line[MAX_LINE_LEN];
  size_t header_bytes;
  ssize_t n;

  do {
    memset(resp, 0, sizeof(*resp));
    n = read_line(c, line, sizeof(line));
    if (n == -1) {
      fail_msg("empty reply from server");
      return EXIT_EMPTY_REPLY;
    }
    if (n < 0)
      return (int)-n;
    if (verbose)
      fprintf(stderr, "< %s\n", line);
    if (strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12 ||
        line[8] != ' ' || sscanf(line + 9, "%3d", &resp->status) != 1 ||
        resp->status < 100 || resp->status > 999) {
      fail_msg("invalid status line '%.80s'", line);
      return EXIT_BAD_REPLY;
    }

    header_bytes = (size_t)n;
    for (;;) {
      n = read_line(c, line, sizeof(line));
      if (n == -1) {
        fail_msg("connection closed inside the response header");
        return EXIT_RECV;
      }
      if (n < 0)
        return (int)-n;
      if (n == 0)
        break;
      header_bytes += (size_t)n;
      if (header_bytes > MAX_HEADER_BYTES) {
        fail_msg("response header larger than %d bytes", MAX_HEADER_BYTES);
        return EXIT_BAD_REPLY;
      }
      parse_header(line, resp);
    }
  } while (resp->status >= 100 && resp->status < 200);
  return 0;
}

static int read_body(struct conn *c, const struct response *resp,
                     bool body_allowed)
{
  if (!body_allowed || resp->status == 204 || resp->status == 304)
    return 0;
  if (resp->chunked)
    return copy_chunked_body(c);
  if (resp->has_length)
    return copy_body(c, resp->length, false);
  return copy_body(c, 0, true);
}

/* Host header value: the port is left out when it is the scheme default. */
static void host_field(const struct url *url, char *out, size_t out_len)
{
  const char *default_port = url->https ? "443" : "80";

  if (strcmp(url->port, default_port) == 0)
    snprintf(out, out_len, "%s", url->host);
  else
    snprintf(out, out_len, "%s:%s", url->host, url->port);
}

/* Sends a request without a body. A CONNECT request carries only Host, so
 * that no field applies to the tunnel it opens. */
static int send_request(struct conn *c, const char *request_line,
                        const char *host, bool is_connect)
{
  char req[MAX_REQUEST_LEN];
  int len;

  if (verbose)
    fprintf(stderr, "> %s\n", request_line);
  len =
      snprintf(req, sizeof(req), "%s\r\nHost: %s\r\n%s\r\n", request_line, host,
               is_connect ? ""
                          : "User-Agent: rbx-fetch/0.1\r\nAccept: */*\r\n"
                            "Connection: close\r\n");
  if (len < 0 || (size_t)len >= sizeof(req)) {
    fail_msg("request longer than %d bytes", MAX_REQUEST_LEN);
    return EXIT_BAD_URL;
  }
  return send_all(c, req, (size_t)len);
}

/* Asks the proxy for a tunnel to the URL's host and port. Returns 0 once the
 * proxy replied with a 2xx status, or an exit code. */
static int open_tunnel(struct conn *c, const struct url *url)
{
  char line[HOST_BUF_LEN + 40];
  char authority[HOST_BUF_LEN + 8];
  struct response resp;
  int rc;

  snprintf(authority, sizeof(authority), "%s:%s", url->host, url->port);
  snprintf(line, sizeof(line), "CONNECT %s HTTP/1.1", authority);
  rc = send_request(c, line, authority, true);
  if (rc == 0)
    rc = read_head(c, &resp);
  if (rc != 0)
    return rc;
  if (resp.status >= 200 && resp.status < 300)
    return 0;

  rc = read_body(c, &resp, true);
  fail_msg("HTTP %d (the proxy rejected CONNECT %s)", resp.status, authority);
  return rc != 0 ? rc : EXIT_HTTP;
}

/* Fetches url_text and writes the body to stdout. proxy_text is NULL for a
 * direct connection. Returns the process exit code. */
static int fetch(const char *url_text, const char *proxy_text, bool tunnel,
                 int max_time_s)
{
  static struct conn c;
  struct url url, proxy;
  struct response resp;
  char line[MAX_PATH_LEN + MAX_HOST_LEN + 64];
  char host[HOST_BUF_LEN + 8];
  char name[HOST_BUF_LEN];
  int rc, connect_ms;

  rc = parse_url(url_text, NULL, &url);
  if (rc != 0)
    return rc;
  if (url.https && !proxy_text) {
    fail_msg("https:// needs a proxy: rbx-fetch has no TLS and only sends "
             "https:// URLs through a CONNECT tunnel as plain HTTP");
    return EXIT_UNSUPPORTED;
  }
  if (proxy_text) {
    rc = parse_url(proxy_text, DEFAULT_PROXY_PORT, &proxy);
    if (rc != 0)
      return rc;
    if (proxy.https) {
      fail_msg("https:// proxies are not supported (no TLS)");
      return EXIT_UNSUPPORTED;
    }
    tunnel = tunnel || url.https;
  }

  c.deadline_ms = now_ms() + (int64_t)max_time_s * 1000;
  connect_ms = remaining_ms(c.deadline_ms);
  if (connect_ms > CONNECT_TIMEOUT_MS)
    connect_ms = CONNECT_TIMEOUT_MS;
  bare_host(proxy_text ? &proxy : &url, name, sizeof(name));
  c.fd = open_tcp(name, proxy_text ? proxy.port : url.port, connect_ms,
                  proxy_text ? EXIT_NO_PROXY_HOST : EXIT_NO_HOST);
  if (c.fd < 0)
    return -c.fd;

  host_field(&url, host, sizeof(host));
  if (tunnel)
    rc = open_tunnel(&c, &url);
  if (rc == 0) {
    if (proxy_text && !tunnel)
      snprintf(line, sizeof(line), "GET http://%s%s HTTP/1.1", host, url.path);
    else
      snprintf(line, sizeof(line), "GET %s HTTP/1.1", url.path);
    rc = send_request(&c, line, host, false);
  }
  if (rc == 0)
    rc = read_head(&c, &resp);
  if (rc == 0)
    rc = read_body(&c, &resp, true);
  if (rc == 0 && (resp.status < 200 || resp.status > 299)) {
    fail_msg("HTTP %d", resp.status);
    rc = EXIT_HTTP;
  }
  close(c.fd);
  return rc;
}

static int check_tcp(const char *host, const char *port)
{
  int fd = open_tcp(host, port, TCP_CHECK_TIMEOUT_MS, EXIT_NO_HOST);

  if (fd < 0)
    return -fd;
  close(fd);
  return 0;
}

static int lookup(const char *name)
{
  struct addrinfo *res, *ai;
  char addr[NI_MAXHOST];
  int rc = resolve(name, NULL, &res);

  if (rc != 0) {
    fail_msg("cannot resolve %s", name);
    return EXIT_NO_HOST;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
                    NI_NUMERICHOST) == 0)
      printf("%s\n", addr);
  }
  freeaddrinfo(res);
  return 0;
}

static const char *proxy_from_env(const char *url_text)
{
  const char *value = NULL;

  if (strncasecmp(url_text, "https://", 8) == 0) {
    value = getenv("https_proxy");
    if (!value || !*value)
      value = getenv("HTTPS_PROXY");
  }
  if (!value || !*value)
    value = getenv("http_proxy");
  if (!value || !*value)
    value = getenv("HTTP_PROXY");
  return value && *value ? value : NULL;
}

int main(int argc, char **argv)
{
  const char *proxy = NULL, *url = NULL;
  bool tunnel = false, use_env = true;
  int max_time_s = DEFAULT_MAX_TIME_S;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    bool has_value = i + 1 < argc;

    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(arg, "--tcp") == 0 && i + 2 < argc && i == 1) {
      return check_tcp(argv[2], argv[3]);
    } else if (strcmp(arg, "--lookup") == 0 && has_value && i == 1) {
      return lookup(argv[2]);
    } else if ((strcmp(arg, "-x") == 0 || strcmp(arg, "--proxy") == 0) &&
               has_value) {
      proxy = argv[++i];
    } else if (strcmp(arg, "--connect") == 0) {
      tunnel = true;
    } else if (strcmp(arg, "--no-proxy") == 0) {
      use_env = false;
    } else if (strcmp(arg, "-m") == 0 && has_value) {
      max_time_s = atoi(argv[++i]);
      if (max_time_s <= 0) {
        fail_msg("invalid -m '%s': expected whole seconds above 0", argv[i]);
        return EXIT_USAGE;
      }
    } else if (strcmp(arg, "-v") == 0) {
      verbose = true;
    } else if (arg[0] != '-' && !url) {
      url = arg;
    } else {
      fail_msg("invalid argument '%s' (see rbx-fetch --help)", arg);
      return EXIT_USAGE;
    }
  }
  if (!url) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!proxy && use_env)
    proxy = proxy_from_env(url);
  if (tunnel && !proxy) {
    fail_msg("--connect needs a proxy (-x or http_proxy)");
    return EXIT_USAGE;
  }
  return fetch(url, proxy, tunnel, max_time_s);
}
