/* Name resolution for the egress proxy without blocking the loop: the hosts
 * file first, then A queries over UDP to the nameservers of resolv.conf,
 * sent and received on the io_uring loop with a timeout and one retry. */
#ifndef PROXY_RESOLVE_H
#define PROXY_RESOLVE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/engine.h"
#include "proxy/rules.h"
#include "ringbox.h"

#define PROXY_NAMESERVERS_MAX 3 /* as many as glibc's MAXNS */
#define PROXY_ADDRS_MAX 8       /* addresses kept per name */
#define PROXY_DNS_MSG_MAX 1232  /* receive buffer for one reply */
#define PROXY_DNS_QUERY_MAX (12 + 255 + 4)
#define PROXY_DNS_TIMEOUT_MS 2000
#define PROXY_DNS_ATTEMPTS 2 /* the first query and one retry */
#define PROXY_CNAME_MAX 8    /* CNAME links followed in one reply */
#define PROXY_HOSTS_FILE_MAX (1024 * 1024)
#define PROXY_HOSTS_ENTRIES_MAX 4096
#define PROXY_CONFIG_FILE_MAX (64 * 1024) /* resolv.conf */

#define PROXY_DNS_TYPE_A 1
#define PROXY_DNS_TYPE_CNAME 5
#define PROXY_DNS_TYPE_AAAA 28

union proxy_sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

struct proxy_addrs {
  union proxy_sockaddr addr[PROXY_ADDRS_MAX];
  size_t count;
};

struct proxy_hosts_entry {
  char *name; /* lower-case, without a trailing dot */
  union proxy_sockaddr addr;
};

struct proxy_resolver {
  struct eng_loop *loop;
  union proxy_sockaddr ns[PROXY_NAMESERVERS_MAX];
  size_t ns_count;
  struct proxy_hosts_entry *hosts;
  size_t hosts_count;
  unsigned timeout_ms;
};

struct proxy_query;

/* Called once per started query: status 0 with q->result filled, -ENOENT
 * when the name does not exist or has no address, -ETIMEDOUT, -EIO for
 * failing or malformed servers, -ECANCELED after proxy_resolve_cancel. No
 * operation of q is in flight any more when it runs. */
typedef void (*proxy_resolve_cb)(struct proxy_query *q, int status, void *data);

/* One name being resolved; owned by the caller, usually embedded. */
struct proxy_query {
  struct proxy_resolver *resolver;
  char name[PROXY_HOST_MAX + 1];
  uint16_t port; /* written into every result address */
  proxy_resolve_cb cb;
  void *data;
  int fd;
  uint16_t id;
  unsigned attempt;
  unsigned pending; /* operations in flight */
  int status;       /* outcome of the current attempt once it is over */
  bool attempt_over;
  bool cancelled;
  bool from_hosts;
  struct eng_op send_op, recv_op, timer_op;
  uint8_t query[PROXY_DNS_QUERY_MAX];
  size_t query_len;
  uint8_t reply[PROXY_DNS_MSG_MAX];
  struct proxy_addrs result;
};

/* Reads resolv_conf and hosts_file (blocking file reads: call it before
 * the loop runs). A missing hosts file is not an error; a resolv.conf
 * without nameservers gives 127.0.0.1, as glibc does. Returns 0 or a
 * negative code with err filled. */
int proxy_resolver_init(struct proxy_resolver *r, struct eng_loop *loop,
                        const char *resolv_conf, const char *hosts_file,
                        struct rbx_error *err);
/* Frees the hosts table. Accepts NULL. */
void proxy_resolver_free(struct proxy_resolver *r);

/* Parsers of the two files' text, exposed for tests. */
int proxy_resolv_conf_parse(struct proxy_resolver *r, const char *text,
                            size_t len);
int proxy_hosts_parse(struct proxy_resolver *r, const char *text, size_t len);

/* Copies the hosts-file addresses of a normalized name into out, with
 * port set. Returns how many were found. */
size_t proxy_hosts_lookup(const struct proxy_resolver *r, const char *name,
                          uint16_t port, struct proxy_addrs *out);

/* Starts resolving a normalized name on the loop. Returns 0, after which
 * cb runs exactly once, or a negative errno when nothing was started. */
int proxy_resolve_start(struct proxy_resolver *r, struct proxy_query *q,
                        const char *name, uint16_t port, proxy_resolve_cb cb,
                        void *data);

/* Stops a started query; its callback still runs, with -ECANCELED. */
void proxy_resolve_cancel(struct proxy_query *q);

/* Writes a recursive query for name and qtype. Returns its length or
 * -EINVAL for a name that cannot be encoded, -E2BIG when size is short. */
int proxy_dns_encode(uint16_t id, const char *name, uint16_t qtype,
                     uint8_t *out, size_t size);

/* Reads the reply to the query (id, name, qtype) and appends the addresses
 * of name, following CNAME links, to out with port set. Returns 0 with at
 * least one address, -ESRCH for a message that is not a reply to this
 * query, -ENOENT for NXDOMAIN or no address, -EAGAIN for a server error
 * code or a truncated reply without addresses, -EBADMSG when malformed. */
int proxy_dns_decode(const uint8_t *msg, size_t len, uint16_t id,
                     const char *name, uint16_t qtype, uint16_t port,
                     struct proxy_addrs *out);

#endif
