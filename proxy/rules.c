/* The egress proxy's policy: one host normalization for every path, the
 * allowlist, allowed ports and the destination address checks, and the
 * configuration read from PROXY_* environment variables. */
#include "proxy/rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/error.h"

static bool is_digit(char ch)
{
  return ch >= '0' && ch <= '9';
}

static bool is_hex_digit(char ch)
{
  return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static char to_lower(char ch)
{
  return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Tells whether a label would be read as a number by URL parsers and
 * inet_aton: all decimal digits, or "0x" followed by hex digits. */
static bool label_is_number(const char *label, size_t len)
{
  size_t i = 0;

  if (len == 0)
    return false;
  if (len >= 2 && label[0] == '0' && label[1] == 'x') {
    for (i = 2; i < len; i++)
      if (!is_hex_digit(label[i]))
        return false;
    return true;
  }
  for (i = 0; i < len; i++)
    if (!is_digit(label[i]))
      return false;
  return true;
}

/* Parses exactly four decimal parts of 0-255 without leading zeros. */
static bool parse_canonical_ipv4(const char *name, struct in_addr *out)
{
  unsigned parts[4];
  unsigned count = 0;
  const char *p = name;

  while (count < 4) {
    unsigned value = 0;
    size_t digits = 0;

    while (is_digit(p[digits])) {
      value = value * 10 + (unsigned)(p[digits] - '0');
      digits++;
      if (digits > 3)
        return false;
    }
    if (digits == 0 || value > 255 || (digits > 1 && p[0] == '0'))
      return false;
    parts[count++] = value;
    p += digits;
    if (count < 4) {
      if (*p != '.')
        return false;
      p++;
    }
  }
  if (*p != '\0')
    return false;
  out->s_addr =
      htonl(parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]);
  return true;
}

static int normalize_ipv6(const char *in, size_t len, struct proxy_host *out,
                          const char **why)
{
  char text[INET6_ADDRSTRLEN + 1];

  if (len < 2 || in[len - 1] != ']') {
    *why = "unterminated ipv6 literal";
    return -EINVAL;
  }
  in++;
  len -= 2;
  if (memchr(in, '%', len)) {
    *why = "ipv6 zone ids are not allowed";
    return -EINVAL;
  }
  if (len == 0 || len >= sizeof(text)) {
    *why = "invalid ipv6 literal";
    return -EINVAL;
  }
  memcpy(text, in, len);
  text[len] = '\0';
  if (inet_pton(AF_INET6, text, &out->addr.v6) != 1) {
    *why = "invalid ipv6 literal";
    return -EINVAL;
  }
  inet_ntop(AF_INET6, &out->addr.v6, out->name, sizeof(out->name));
  out->kind = PROXY_HOST_IPV6;
  return 0;
}

/* Checks the characters and labels of a lower-cased name. */
static int check_name(const char *name, size_t len, const char **why)
{
  size_t label_len = 0;

  for (size_t i = 0; i < len; i++) {
    char ch = name[i];

    if (ch == '.') {
      if (label_len == 0) {
        *why = "empty label in host";
        return -EINVAL;
      }
      label_len = 0;
      continue;
    }
    if (!(is_digit(ch) || (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '_')) {
      *why = "invalid character in host";
      return -EINVAL;
    }
    if (++label_len > PROXY_LABEL_MAX) {
      *why = "host label longer than 63 characters";
      return -EINVAL;
    }
  }
  if (label_len == 0) {
    *why = "empty label in host";
    return -EINVAL;
  }
  return 0;
}

int proxy_host_normalize(const char *in, size_t len, struct proxy_host *out,
                         const char **why)
{
  const char *last;
  int rc;

  memset(out, 0, sizeof(*out));
  if (len == 0) {
    *why = "empty host";
    return -EINVAL;
  }
  if (in[0] == '[')
    return normalize_ipv6(in, len, out, why);
  if (in[len - 1] == '.')
    len--;
  if (len == 0) {
    *why = "empty host";
    return -EINVAL;
  }
  if (len > PROXY_HOST_MAX) {
    *why = "host longer than 253 characters";
    return -EINVAL;
  }
  for (size_t i = 0; i < len; i++)
    out->name[i] = to_lower(in[i]);
  out->name[len] = '\0';
  rc = check_name(out->name, len, why);
  if (rc < 0)
    return rc;

  last = strrchr(out->name, '.');
  last = last ? last + 1 : out->name;
  if (!label_is_number(last, strlen(last))) {
    out->kind = PROXY_HOST_NAME;
    return 0;
  }
  if (parse_canonical_ipv4(out->name, &out->addr.v4))
    out->kind = PROXY_HOST_IPV4;
  else
    out->kind = PROXY_HOST_ODD_IPV4;
  return 0;
}

int proxy_port_parse(const char *in, size_t len)
{
  int value = 0;

  if (len == 0 || len > 5 || in[0] == '0')
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    if (!is_digit(in[i]))
      return -EINVAL;
    value = value * 10 + (in[i] - '0');
  }
  return value <= 65535 ? value : -EINVAL;
}

int proxy_authority_parse(const char *in, size_t len, uint16_t default_port,
                          struct proxy_target *out, const char **why)
{
  size_t host_len = len;
  const char *port = NULL;
  size_t port_len = 0;
  int rc;

  if (memchr(in, '@', len)) {
    *why = "userinfo is not allowed in the authority";
    return -EINVAL;
  }
  if (len > 0 && in[0] == '[') {
    const char *close = memchr(in, ']', len);

    if (!close) {
      *why = "unterminated ipv6 literal";
      return -EINVAL;
    }
    host_len = (size_t)(close - in) + 1;
    if (host_len < len && in[host_len] != ':') {
      *why = "unexpected characters after ipv6 literal";
      return -EINVAL;
    }
  } else {
    const char *colon = memchr(in, ':', len);

    if (colon) {
      host_len = (size_t)(colon - in);
      if (memchr(colon + 1, ':', len - host_len - 1)) {
        *why = "ipv6 literals must be written in brackets";
        return -EINVAL;
      }
    }
  }
  if (host_len < len) {
    port = in + host_len + 1;
    port_len = len - host_len - 1;
  }

  rc = proxy_host_normalize(in, host_len, &out->host, why);
  if (rc < 0)
    return rc;
  if (port) {
    rc = proxy_port_parse(port, port_len);
    if (rc < 0) {
      *why = "invalid port";
      return -EINVAL;
    }
    out->port = (uint16_t)rc;
  } else if (default_port) {
    out->port = default_port;
  } else {
    *why = "missing port";
    return -EINVAL;
  }
  return 0;
}

int proxy_absolute_parse(const char *in, size_t len, struct proxy_target *out,
                         size_t *path_off, size_t *path_len, const char **why)
{
  static const char http_scheme[] = "http://";
  size_t scheme_len = sizeof(http_scheme) - 1;
  size_t end;

  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)in[i];

    if (ch <= 0x20 || ch >= 0x7f) {
      *why = "invalid character in request target";
      return -EINVAL;
    }
    if (ch == '#') {
      *why = "fragment in request target";
      return -EINVAL;
    }
  }
  if (len < scheme_len || strncasecmp(in, http_scheme, scheme_len) != 0) {
    if (len >= 8 && strncasecmp(in, "https://", 8) == 0)
      *why = "https targets need a CONNECT tunnel";
    else if (len > 0 && in[0] == '/')
      *why = "origin-form target sent to a proxy";
    else
      *why = "request target is not an absolute http url";
    return -EINVAL;
  }
  end = scheme_len;
  while (end < len && in[end] != '/' && in[end] != '?')
    end++;
  if (proxy_authority_parse(in + scheme_len, end - scheme_len, 80, out, why) <
      0)
    return -EINVAL;
  *path_off = end;
  *path_len = len - end;
  return 0;
}

bool proxy_target_equal(const struct proxy_target *a,
                        const struct proxy_target *b)
{
  return a->port == b->port && a->host.kind == b->host.kind &&
         strcmp(a->host.name, b->host.name) == 0;
}

static bool entry_matches(const struct proxy_allow_entry *entry,
                          const struct proxy_host *host)
{
  size_t host_len, entry_len;

  if (entry->host.kind != host->kind)
    return false;
  if (strcmp(entry->host.name, host->name) == 0)
    return true;
  if (!entry->wildcard)
    return false;
  host_len = strlen(host->name);
  entry_len = strlen(entry->host.name);
  return host_len > entry_len + 1 &&
         host->name[host_len - entry_len - 1] == '.' &&
         strcmp(host->name + host_len - entry_len, entry->host.name) == 0;
}

bool proxy_host_allowed(const struct proxy_config *cfg,
                        const struct proxy_host *host)
{
  if (host->kind == PROXY_HOST_ODD_IPV4)
    return false;
  for (size_t i = 0; i < cfg->allow_count; i++)
    if (entry_matches(&cfg->allow[i], host))
      return true;
  return false;
}

bool proxy_port_allowed(const struct proxy_config *cfg, uint16_t port)
{
  for (size_t i = 0; i < cfg->port_count; i++)
    if (cfg->ports[i] == port)
      return true;
  return false;
}

int proxy_target_check(const struct proxy_config *cfg,
                       const struct proxy_target *t, const char **why)
{
  if (t->host.kind == PROXY_HOST_ODD_IPV4) {
    *why = "ip literal in a non-canonical form";
    return 403;
  }
  if (!proxy_host_allowed(cfg, &t->host)) {
    *why = t->host.kind == PROXY_HOST_NAME ? "host not in allowlist"
                                           : "ip literal not in allowlist";
    return 403;
  }
  if (!proxy_port_allowed(cfg, t->port)) {
    *why = "port not allowed";
    return 403;
  }
  return 0;
}

static int check_ipv4(uint32_t a, bool allow_loopback, const char **why)
{
  if ((a >> 24) == 127 && !allow_loopback) {
    *why = "destination is a loopback address";
    return -EACCES;
  }
  if ((a >> 24) == 0) {
    *why = "destination is an unspecified address";
    return -EACCES;
  }
  if ((a >> 16) == 0xa9fe) {
    *why = "destination is a link-local address";
    return -EACCES;
  }
  if ((a >> 28) == 0xe || a == 0xffffffffu) {
    *why = "destination is a multicast or broadcast address";
    return -EACCES;
  }
  return 0;
}

/* IPv6 forms that carry an IPv4 address in their low 32 bits: mapped
 * (::ffff:0:0/96), compatible (::/96) and the NAT64 prefix 64:ff9b::/96. */
static bool ipv6_embeds_ipv4(const struct in6_addr *a)
{
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
  static const uint8_t zeros[12];

  return IN6_IS_ADDR_V4MAPPED(a) || memcmp(a->s6_addr, zeros, 12) == 0 ||
         memcmp(a->s6_addr, nat64, 12) == 0;
}

static int check_ipv6(const struct in6_addr *a, bool allow_loopback,
                      const char **why)
{
  uint32_t v4;

  if (IN6_IS_ADDR_UNSPECIFIED(a)) {
    *why = "destination is an unspecified address";
    return -EACCES;
  }
  if (IN6_IS_ADDR_LOOPBACK(a)) {
    if (allow_loopback)
      return 0;
    *why = "destination is a loopback address";
    return -EACCES;
  }
  if (IN6_IS_ADDR_LINKLOCAL(a)) {
    *why = "destination is a link-local address";
    return -EACCES;
  }
  if (IN6_IS_ADDR_MULTICAST(a)) {
    *why = "destination is a multicast or broadcast address";
    return -EACCES;
  }
  if (ipv6_embeds_ipv4(a)) {
    memcpy(&v4, a->s6_addr + 12, 4);
    return check_ipv4(ntohl(v4), allow_loopback, why);
  }
  return 0;
}

int proxy_address_check(const struct sockaddr *sa, bool allow_loopback,
                        const char **why)
{
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

    return check_ipv4(ntohl(in->sin_addr.s_addr), allow_loopback, why);
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

    return check_ipv6(&in6->sin6_addr, allow_loopback, why);
  }
  *why = "unsupported address family";
  return -EACCES;
}

void proxy_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
  char ip[INET6_ADDRSTRLEN];

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    snprintf(out, size, "-");
  }
}

/* Splits list at commas, trims blanks, and calls fn on each non-empty
 * item. Stops at the first error. */
static int for_each_item(const char *list,
                         int (*fn)(struct proxy_config *, const char *, size_t,
                                   struct rbx_error *),
                         struct proxy_config *cfg, struct rbx_error *err)
{
  const char *p = list;

  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *item = p;
    int rc;

    while (len > 0 && (item[0] == ' ' || item[0] == '\t')) {
      item++;
      len--;
    }
    while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
      len--;
    if (len > 0) {
      rc = fn(cfg, item, len, err);
      if (rc < 0)
        return rc;
    }
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

static int add_host(struct proxy_config *cfg, const char *item, size_t len,
                    struct rbx_error *err)
{
  struct proxy_allow_entry *entry;
  char bracketed[INET6_ADDRSTRLEN + 3];
  const char *why = NULL;

  if (cfg->allow_count == PROXY_ALLOW_ENTRIES_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_HOSTS: more than %d entries",
                       PROXY_ALLOW_ENTRIES_MAX);
  entry = &cfg->allow[cfg->allow_count];
  entry->wildcard = len > 2 && item[0] == '*' && item[1] == '.';
  if (entry->wildcard) {
    item += 2;
    len -= 2;
  }
  /* A bare IPv6 address has several colons; host:port has one. */
  if (item[0] != '[' && memchr(item, ':', len) &&
      memchr(item, ':', len) != memrchr(item, ':', len) &&
      len + 3 <= sizeof(bracketed)) {
    snprintf(bracketed, sizeof(bracketed), "[%.*s]", (int)len, item);
    item = bracketed;
    len += 2;
  }
  if (proxy_host_normalize(item, len, &entry->host, &why) < 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_HOSTS: entry \"%.*s\": %s; write a host "
                       "name, *.domain, or an IP address, without a port",
                       (int)len, item, why);
  if (entry->host.kind == PROXY_HOST_ODD_IPV4)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_HOSTS: entry \"%.*s\": write IPv4 "
                       "addresses as four decimal numbers",
                       (int)len, item);
  if (entry->wildcard && entry->host.kind != PROXY_HOST_NAME)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_HOSTS: entry \"*.%.*s\": a wildcard "
                       "needs a domain name",
                       (int)len, item);
  cfg->allow_count++;
  return 0;
}

static int add_port(struct proxy_config *cfg, const char *item, size_t len,
                    struct rbx_error *err)
{
  int port = proxy_port_parse(item, len);

  if (port < 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_PORTS: \"%.*s\" is not a port; write "
                       "decimal numbers from 1 to 65535 separated by commas",
                       (int)len, item);
  if (cfg->port_count == PROXY_PORTS_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_ALLOW_PORTS: more than %d ports",
                       PROXY_PORTS_MAX);
  cfg->ports[cfg->port_count++] = (uint16_t)port;
  return 0;
}

int proxy_config_parse_hosts(struct proxy_config *cfg, const char *list,
                             struct rbx_error *err)
{
  cfg->allow_count = 0;
  return for_each_item(list, add_host, cfg, err);
}

int proxy_config_parse_ports(struct proxy_config *cfg, const char *list,
                             struct rbx_error *err)
{
  cfg->port_count = 0;
  return for_each_item(list, add_port, cfg, err);
}

int proxy_listen_parse(const char *text, struct sockaddr_storage *addr,
                       socklen_t *len)
{
  const char *colon = strrchr(text, ':');
  char host[INET6_ADDRSTRLEN + 1];
  size_t host_len;
  int port;

  if (!colon)
    return -EINVAL;
  host_len = (size_t)(colon - text);
  port = strcmp(colon + 1, "0") == 0
             ? 0
             : proxy_port_parse(colon + 1, strlen(colon + 1));
  if (port < 0)
    return -EINVAL;
  memset(addr, 0, sizeof(*addr));
  if (host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']') {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;

    if (host_len - 2 >= sizeof(host))
      return -EINVAL;
    memcpy(host, text + 1, host_len - 2);
    host[host_len - 2] = '\0';
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
      return -EINVAL;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*in6);
    return 0;
  }
  {
    struct sockaddr_in *in = (struct sockaddr_in *)addr;

    if (host_len >= sizeof(host))
      return -EINVAL;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    if (!parse_canonical_ipv4(host, &in->sin_addr))
      return -EINVAL;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    *len = sizeof(*in);
  }
  return 0;
}

/* Reads a decimal environment value in [min, max]; unset or empty gives
 * fallback. */
static int env_number(const char *name, unsigned long min, unsigned long max,
                      unsigned long fallback, unsigned long *out,
                      struct rbx_error *err)
{
  const char *text = getenv(name);
  char *end;
  unsigned long value;

  if (!text || !*text) {
    *out = fallback;
    return 0;
  }
  errno = 0;
  value = strtoul(text, &end, 10);
  if (!is_digit(text[0]) || *end || errno || value < min || value > max)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "%s: \"%s\" is invalid; write a whole number from %lu "
                       "to %lu",
                       name, text, min, max);
  *out = value;
  return 0;
}

static int parse_log_level(const char *text, enum rbx_log_level *out)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(text, names[i]) == 0) {
      *out = (enum rbx_log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

int proxy_config_load(struct proxy_config *cfg, struct rbx_error *err)
{
  const char *hosts = getenv("PROXY_ALLOW_HOSTS");
  const char *ports = getenv("PROXY_ALLOW_PORTS");
  const char *listen = getenv("PROXY_LISTEN");
  const char *level = getenv("PROXY_LOG");
  const char *loopback = getenv("PROXY_ALLOW_LOOPBACK_UPSTREAM");
  unsigned long number;
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  rc = proxy_config_parse_hosts(cfg, hosts ? hosts : "", err);
  if (rc < 0)
    return rc;
  rc = proxy_config_parse_ports(cfg, ports && *ports ? ports : "80,443", err);
  if (rc < 0)
    return rc;
  if (!listen || !*listen)
    listen = PROXY_DEFAULT_LISTEN;
  if (proxy_listen_parse(listen, &cfg->listen_addr, &cfg->listen_len) < 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_LISTEN: \"%s\" is invalid; write IPV4:PORT or "
                       "[IPV6]:PORT, for example 0.0.0.0:3128",
                       listen);
  cfg->log_level = RBX_LOG_INFO;
  if (level && *level && parse_log_level(level, &cfg->log_level) < 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "PROXY_LOG: \"%s\" is invalid; write error, warn, "
                       "info or debug",
                       level);
  cfg->allow_loopback_upstream = loopback && strcmp(loopback, "1") == 0;
  cfg->resolv_conf = getenv("PROXY_RESOLV_CONF");
  if (!cfg->resolv_conf || !*cfg->resolv_conf)
    cfg->resolv_conf = "/etc/resolv.conf";
  cfg->hosts_file = getenv("PROXY_HOSTS_FILE");
  if (!cfg->hosts_file || !*cfg->hosts_file)
    cfg->hosts_file = "/etc/hosts";
  rc = env_number("PROXY_IDLE_TIMEOUT_S", 1, 86400,
                  PROXY_DEFAULT_IDLE_TIMEOUT_MS / 1000, &number, err);
  if (rc < 0)
    return rc;
  cfg->idle_timeout_ms = number * 1000;
  rc = env_number("PROXY_MAX_CONNS", 1, 100000, PROXY_DEFAULT_MAX_CONNS,
                  &number, err);
  if (rc < 0)
    return rc;
  cfg->max_conns = (unsigned)number;
  return 0;
}
