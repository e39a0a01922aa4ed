/* Daemon addresses (unix:// and tcp://) and query-string escaping. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "engine/error.h"

static int parse_unix(const char *path, struct http_endpoint *ep,
                      struct rbx_error *err)
{
  struct sockaddr_un *sun = (struct sockaddr_un *)&ep->addr;
  size_t len = strlen(path);

  if (path[0] != '/')
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "daemon address %s: the socket path must be absolute",
                       ep->url);
  if (len >= sizeof(sun->sun_path))
    return rbx_err_set(err, RBX_ERR_INVALID, -ENAMETOOLONG,
                       "daemon address %s: the socket path is longer than "
                       "%zu bytes",
                       ep->url, sizeof(sun->sun_path) - 1);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, len + 1);
  ep->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  snprintf(ep->host_header, sizeof(ep->host_header), "localhost");
  return 0;
}

static int parse_port(const char *text, uint16_t *port)
{
  char *end;
  long value;

  if (!*text || text[0] == '0' || text[0] == '+' || text[0] == '-')
    return -EINVAL;
  errno = 0;
  value = strtol(text, &end, 10);
  if (errno || *end || value < 1 || value > 65535)
    return -EINVAL;
  *port = (uint16_t)value;
  return 0;
}

static int parse_tcp(const char *rest, struct http_endpoint *ep,
                     struct rbx_error *err)
{
  char host[64];
  const char *colon;
  const char *port_text;
  uint16_t port;
  size_t host_len;

  if (rest[0] == '[') {
    const char *close = strchr(rest, ']');

    if (!close || close[1] != ':')
      goto bad;
    host_len = (size_t)(close - rest - 1);
    if (host_len >= sizeof(host))
      goto bad;
    memcpy(host, rest + 1, host_len);
    port_text = close + 2;
  } else {
    colon = strrchr(rest, ':');
    if (!colon)
      goto bad;
    host_len = (size_t)(colon - rest);
    if (host_len >= sizeof(host))
      goto bad;
    memcpy(host, rest, host_len);
    port_text = colon + 1;
  }
  host[host_len] = '\0';
  {
    size_t plen = strlen(port_text);

    if (plen && port_text[plen - 1] == '/')
      plen--;
    char port_buf[8];

    if (plen == 0 || plen >= sizeof(port_buf))
      goto bad;
    memcpy(port_buf, port_text, plen);
    port_buf[plen] = '\0';
    if (parse_port(port_buf, &port) < 0)
      goto bad;
  }
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof(host), "127.0.0.1");

  struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep->addr;

  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    ep->addrlen = sizeof(*sin);
    snprintf(ep->host_header, sizeof(ep->host_header), "%s:%u", host, port);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    ep->addrlen = sizeof(*sin6);
    snprintf(ep->host_header, sizeof(ep->host_header), "[%s]:%u", host,
             port);
    return 0;
  }
  return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                     "daemon address %s: the host must be an IP address or "
                     "localhost (names are not looked up)",
                     ep->url);
bad:
  return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                     "daemon address %s is not valid; expected "
                     "tcp://IP:PORT with a port from 1 to 65535",
                     ep->url);
}

int http_endpoint_parse(const char *url, struct http_endpoint *ep,
                        struct rbx_error *err)
{
  memset(ep, 0, sizeof(*ep));
  if (!url || !*url)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "daemon address is empty; expected unix:///path or "
                       "tcp://IP:PORT");
  snprintf(ep->url, sizeof(ep->url), "%s", url);
  if (strncmp(url, "unix://", 7) == 0)
    return parse_unix(url + 7, ep, err);
  if (strncmp(url, "unix:", 5) == 0)
    return parse_unix(url + 5, ep, err);
  if (url[0] == '/')
    return parse_unix(url, ep, err);
  if (strncmp(url, "tcp://", 6) == 0)
    return parse_tcp(url + 6, ep, err);
  if (strncmp(url, "http://", 7) == 0)
    return parse_tcp(url + 7, ep, err);
  return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                     "daemon address %s has an unknown scheme; expected "
                     "unix:///path or tcp://IP:PORT (TLS is not supported)",
                     url);
}

int http_query_escape(const char *in, char *out, size_t out_size)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;

  for (; *in; in++) {
    unsigned char c = (unsigned char)*in;
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 c == '.' || c == '~';

    if (n + (plain ? 1 : 3) >= out_size)
      return -ENAMETOOLONG;
    if (plain) {
      out[n++] = (char)c;
    } else {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n] = '\0';
  return (int)n;
}
