/* The egress proxy's policy: its configuration from the environment, host and
 * authority normalization, allowlist matching and destination address checks.
 * Everything here is pure computation; nothing does I/O but config loading. */
#ifndef PROXY_RULES_H
#define PROXY_RULES_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ringbox.h"

/* A DNS name has at most 253 characters without its trailing dot. */
#define PROXY_HOST_MAX 253
#define PROXY_LABEL_MAX 63
/* Entries of PROXY_ALLOW_HOSTS and PROXY_ALLOW_PORTS kept at most. */
#define PROXY_ALLOW_ENTRIES_MAX 256
#define PROXY_PORTS_MAX 64

#define PROXY_DEFAULT_LISTEN "0.0.0.0:3128"
#define PROXY_DEFAULT_IDLE_TIMEOUT_MS (300 * 1000)
#define PROXY_DEFAULT_MAX_CONNS 1024

enum proxy_host_kind {
  PROXY_HOST_NAME = 0, /* a DNS name */
  PROXY_HOST_IPV4,     /* canonical dotted decimal: 192.0.2.1 */
  PROXY_HOST_IPV6,     /* written in brackets; stored canonical, unbracketed */
  PROXY_HOST_ODD_IPV4, /* a number-like form: 0x7f.1, 2130706433, 127.1 */
};

/* A normalized host: lower-case, one trailing dot removed, IPv6 in the
 * canonical text of inet_ntop. */
struct proxy_host {
  char name[PROXY_HOST_MAX + 1];
  enum proxy_host_kind kind;
  union {
    struct in_addr v4;
    struct in6_addr v6;
  } addr; /* IPV4 and IPV6 kinds only */
};

/* A request's destination: normalized host and port. */
struct proxy_target {
  struct proxy_host host;
  uint16_t port;
};

struct proxy_allow_entry {
  struct proxy_host host;
  bool wildcard; /* "*.example.com": the apex and every subdomain */
};

struct proxy_config {
  struct proxy_allow_entry allow[PROXY_ALLOW_ENTRIES_MAX];
  size_t allow_count;
  uint16_t ports[PROXY_PORTS_MAX];
  size_t port_count;
  struct sockaddr_storage listen_addr;
  socklen_t listen_len;
  enum rbx_log_level log_level;
  const char *resolv_conf; /* borrowed from the environment */
  const char *hosts_file;
  bool allow_loopback_upstream; /* tests only: lets 127/8 and ::1 through */
  uint64_t idle_timeout_ms;
  unsigned max_conns;
};

/* Normalizes the host part of an authority (brackets included for IPv6).
 * Returns 0 and fills out, or -EINVAL with *why set to a short reason. */
int proxy_host_normalize(const char *in, size_t len, struct proxy_host *out,
                         const char **why);

/* Parses a decimal port as written in an authority: 1 to 65535, digits
 * only, no leading zero. Returns the port or -EINVAL. */
int proxy_port_parse(const char *in, size_t len);

/* Parses "host[:port]" (authority-form without userinfo). default_port is
 * used when no port is written; 0 makes the port required. Returns 0 or
 * -EINVAL with *why set. */
int proxy_authority_parse(const char *in, size_t len, uint16_t default_port,
                          struct proxy_target *out, const char **why);

/* Parses an absolute-form target "http://authority[/path][?query]". On
 * success fills out and sets *path_off and *path_len to the origin-form
 * part (length 0 when it is empty and "/" must be sent). Returns 0 or -EINVAL
 * with *why set. */
int proxy_absolute_parse(const char *in, size_t len, struct proxy_target *out,
                         size_t *path_off, size_t *path_len, const char **why);

/* Tells whether two targets name the same host and port. */
bool proxy_target_equal(const struct proxy_target *a,
                        const struct proxy_target *b);

/* Tells whether host is allowed by cfg's allowlist. Names match an exact
 * entry or a wildcard entry at a label boundary. IP literals match only an
 * identical literal entry; odd IPv4 forms never match. */
bool proxy_host_allowed(const struct proxy_config *cfg,
                        const struct proxy_host *host);

bool proxy_port_allowed(const struct proxy_config *cfg, uint16_t port);

/* Judges the host and port of a parsed target. Returns 0 when allowed, or
 * 403 with *why set. */
int proxy_target_check(const struct proxy_config *cfg,
                       const struct proxy_target *t, const char **why);

/* Checks a destination address: loopback, link-local, unspecified,
 * multicast and broadcast addresses (also as IPv4-mapped IPv6) are
 * rejected. allow_loopback lets 127/8 and ::1 through. Returns 0 or -EACCES
 * with *why set. */
int proxy_address_check(const struct sockaddr *sa, bool allow_loopback,
                        const char **why);

/* Formats an address as "ip:port" ("[ip]:port" for IPv6). */
void proxy_format_addr(const struct sockaddr *sa, char *out, size_t size);

/* Fills cfg from the PROXY_* environment variables, with defaults. Returns
 * 0 or -EINVAL with err filled. Strings in cfg point into the environment. */
int proxy_config_load(struct proxy_config *cfg, struct rbx_error *err);

/* Parses one PROXY_ALLOW_HOSTS value into cfg. Exposed for tests. */
int proxy_config_parse_hosts(struct proxy_config *cfg, const char *list,
                             struct rbx_error *err);
int proxy_config_parse_ports(struct proxy_config *cfg, const char *list,
                             struct rbx_error *err);
/* Parses "ipv4:port" or "[ipv6]:port"; port 0 requests an ephemeral one. */
int proxy_listen_parse(const char *text, struct sockaddr_storage *addr,
                       socklen_t *len);

#endif
