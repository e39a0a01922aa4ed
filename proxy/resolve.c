/* The egress proxy's resolver: the hosts file and resolv.conf read once at
 * start, and a small DNS client (RFC 1035 A queries over UDP) whose sends,
 * receives and timeouts all run on the io_uring loop. */
#include "proxy/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "engine/error.h"

#define DNS_HEADER_LEN 12
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_RCODE_NXDOMAIN 3
#define DNS_CLASS_IN 1
#define DNS_POINTER_HOPS_MAX 16

static char to_lower(char ch)
{
  return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool is_blank(char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Reads a whole small file into a NUL-terminated buffer. */
static int read_file(const char *path, size_t limit, char **out, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  char *buf;
  size_t used = 0;

  if (fd < 0)
    return -errno;
  buf = malloc(limit + 1);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    ssize_t n = read(fd, buf + used, limit - used);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int rc = -errno;

      close(fd);
      free(buf);
      return rc;
    }
    if (n == 0)
      break;
    used += (size_t)n;
    if (used == limit) {
      close(fd);
      free(buf);
      return -EFBIG;
    }
  }
  close(fd);
  buf[used] = '\0';
  *out = buf;
  *len = used;
  return 0;
}

static bool parse_ip(const char *text, uint16_t port, union proxy_sockaddr *out)
{
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, text, &out->in.sin_addr) == 1) {
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(port);
    return true;
  }
  if (inet_pton(AF_INET6, text, &out->in6.sin6_addr) == 1) {
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons(port);
    return true;
  }
  return false;
}

/* Splits a line into blank-separated words, dropping a comment that starts
 * with one of comment_chars. Returns the number of words. */
static size_t split_words(char *line, const char *comment_chars, char **words,
                          size_t max)
{
  size_t count = 0;
  char *p = line;

  p[strcspn(p, comment_chars)] = '\0';
  while (*p && count < max) {
    while (is_blank(*p))
      *p++ = '\0';
    if (!*p)
      break;
    words[count++] = p;
    while (*p && !is_blank(*p))
      p++;
  }
  while (*p && is_blank(*p))
    *p++ = '\0';
  return count;
}

/* Calls fn on each line of text, given as a writable NUL-terminated copy. */
static int for_each_line(const char *text, size_t len,
                         int (*fn)(struct proxy_resolver *, char *),
                         struct proxy_resolver *r)
{
  size_t start = 0;

  while (start < len) {
    const char *nl = memchr(text + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - text) : len;
    char line[1024];
    int rc;

    /* Longer lines cannot be valid in either file and are skipped. */
    if (end - start < sizeof(line)) {
      memcpy(line, text + start, end - start);
      line[end - start] = '\0';
      rc = fn(r, line);
      if (rc < 0)
        return rc;
    }
    start = end + 1;
  }
  return 0;
}

static int resolv_conf_line(struct proxy_resolver *r, char *line)
{
  char *words[4];
  size_t count = split_words(line, "#;", words, 4);

  if (count < 2 || strcmp(words[0], "nameserver") != 0)
    return 0;
  if (r->ns_count == PROXY_NAMESERVERS_MAX)
    return 0;
  if (parse_ip(words[1], 53, &r->ns[r->ns_count]))
    r->ns_count++;
  return 0;
}

int proxy_resolv_conf_parse(struct proxy_resolver *r, const char *text,
                            size_t len)
{
  r->ns_count = 0;
  return for_each_line(text, len, resolv_conf_line, r);
}

static int add_hosts_entry(struct proxy_resolver *r, const char *name,
                           const union proxy_sockaddr *addr)
{
  struct proxy_hosts_entry *grown;
  size_t name_len = strlen(name);
  char *copy;

  if (r->hosts_count == PROXY_HOSTS_ENTRIES_MAX)
    return 0;
  if (name_len > 0 && name[name_len - 1] == '.')
    name_len--;
  if (name_len == 0 || name_len > PROXY_HOST_MAX)
    return 0;
  copy = malloc(name_len + 1);
  if (!copy)
    return -ENOMEM;
  for (size_t i = 0; i < name_len; i++)
    copy[i] = to_lower(name[i]);
  copy[name_len] = '\0';
  grown = realloc(r->hosts, (r->hosts_count + 1) * sizeof(*grown));
  if (!grown) {
    free(copy);
    return -ENOMEM;
  }
  r->hosts = grown;
  r->hosts[r->hosts_count].name = copy;
  r->hosts[r->hosts_count].addr = *addr;
  r->hosts_count++;
  return 0;
}

static int hosts_line(struct proxy_resolver *r, char *line)
{
  char *words[32];
  size_t count = split_words(line, "#", words, 32);
  union proxy_sockaddr addr;

  if (count < 2 || !parse_ip(words[0], 0, &addr))
    return 0;
  for (size_t i = 1; i < count; i++) {
    int rc = add_hosts_entry(r, words[i], &addr);

    if (rc < 0)
      return rc;
  }
  return 0;
}

int proxy_hosts_parse(struct proxy_resolver *r, const char *text, size_t len)
{
  return for_each_line(text, len, hosts_line, r);
}

static void set_port(union proxy_sockaddr *addr, uint16_t port)
{
  if (addr->sa.sa_family == AF_INET)
    addr->in.sin_port = htons(port);
  else
    addr->in6.sin6_port = htons(port);
}

size_t proxy_hosts_lookup(const struct proxy_resolver *r, const char *name,
                          uint16_t port, struct proxy_addrs *out)
{
  size_t found = 0;

  for (size_t i = 0; i < r->hosts_count; i++) {
    if (strcmp(r->hosts[i].name, name) != 0 || out->count == PROXY_ADDRS_MAX)
      continue;
    out->addr[out->count] = r->hosts[i].addr;
    set_port(&out->addr[out->count], port);
    out->count++;
    found++;
  }
  return found;
}

int proxy_resolver_init(struct proxy_resolver *r, struct eng_loop *loop,
                        const char *resolv_conf, const char *hosts_file,
                        struct rbx_error *err)
{
  char *text = NULL;
  size_t len = 0;
  int rc;

  memset(r, 0, sizeof(*r));
  r->loop = loop;
  r->timeout_ms = PROXY_DNS_TIMEOUT_MS;
  rc = read_file(resolv_conf, PROXY_CONFIG_FILE_MAX, &text, &len);
  if (rc == 0) {
    proxy_resolv_conf_parse(r, text, len);
    free(text);
  } else if (rc != -ENOENT) {
    return rbx_err_set(err, RBX_ERR_IO, rc, "read %s: %s", resolv_conf,
                       strerror(-rc));
  }
  if (r->ns_count == 0) {
    parse_ip("127.0.0.1", 53, &r->ns[0]);
    r->ns_count = 1;
  }
  rc = read_file(hosts_file, PROXY_HOSTS_FILE_MAX, &text, &len);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    return rbx_err_set(err, RBX_ERR_IO, rc, "read %s: %s", hosts_file,
                       strerror(-rc));
  rc = proxy_hosts_parse(r, text, len);
  free(text);
  if (rc < 0) {
    proxy_resolver_free(r);
    return rbx_err_set(err, RBX_ERR_IO, rc, "read %s: out of memory",
                       hosts_file);
  }
  return 0;
}

void proxy_resolver_free(struct proxy_resolver *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->hosts_count; i++)
    free(r->hosts[i].name);
  free(r->hosts);
  r->hosts = NULL;
  r->hosts_count = 0;
}

static void put16(uint8_t *p, uint16_t value)
{
  p[0] = (uint8_t)(value >> 8);
  p[1] = (uint8_t)value;
}

static uint16_t get16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

int proxy_dns_encode(uint16_t id, const char *name, uint16_t qtype,
                     uint8_t *out, size_t size)
{
  size_t name_len = strlen(name);
  size_t pos = DNS_HEADER_LEN;
  const char *label = name;

  if (name_len == 0 || name_len > PROXY_HOST_MAX)
    return -EINVAL;
  if (size < DNS_HEADER_LEN + name_len + 2 + 4)
    return -E2BIG;
  memset(out, 0, DNS_HEADER_LEN);
  put16(out, id);
  put16(out + 2, DNS_FLAG_RD);
  put16(out + 4, 1);
  while (*label) {
    const char *dot = strchr(label, '.');
    size_t len = dot ? (size_t)(dot - label) : strlen(label);

    if (len == 0 || len > PROXY_LABEL_MAX)
      return -EINVAL;
    out[pos++] = (uint8_t)len;
    memcpy(out + pos, label, len);
    pos += len;
    label += len;
    if (*label == '.' && *++label == '\0')
      return -EINVAL;
  }
  out[pos++] = 0;
  put16(out + pos, qtype);
  put16(out + pos + 2, DNS_CLASS_IN);
  return (int)(pos + 4);
}

/* Reads a possibly compressed name at *pos into out (lower-case, dotted,
 * no trailing dot) and moves *pos past it. Returns 0 or -EBADMSG. */
static int read_name(const uint8_t *msg, size_t len, size_t *pos, char *out,
                     size_t out_size)
{
  size_t p = *pos;
  size_t used = 0;
  unsigned hops = 0;
  bool jumped = false;

  for (;;) {
    uint8_t label_len;

    if (p >= len)
      return -EBADMSG;
    label_len = msg[p];
    if ((label_len & 0xc0) == 0xc0) {
      if (p + 1 >= len || ++hops > DNS_POINTER_HOPS_MAX)
        return -EBADMSG;
      if (!jumped)
        *pos = p + 2;
      jumped = true;
      p = (size_t)(label_len & 0x3f) << 8 | msg[p + 1];
      continue;
    }
    if (label_len & 0xc0)
      return -EBADMSG;
    if (label_len == 0)
      break;
    if (p + 1 + label_len > len || used + label_len + 2 > out_size)
      return -EBADMSG;
    if (used > 0)
      out[used++] = '.';
    for (size_t i = 0; i < label_len; i++)
      out[used++] = to_lower((char)msg[p + 1 + i]);
    p += 1 + (size_t)label_len;
  }
  out[used] = '\0';
  if (!jumped)
    *pos = p + 1;
  return 0;
}

struct dns_record {
  char owner[PROXY_HOST_MAX + 2];
  uint16_t type;
  uint16_t rclass;
  size_t rdata;
  uint16_t rdlength;
};

static int read_record(const uint8_t *msg, size_t len, size_t *pos,
                       struct dns_record *rec)
{
  if (read_name(msg, len, pos, rec->owner, sizeof(rec->owner)) < 0)
    return -EBADMSG;
  if (*pos + 10 > len)
    return -EBADMSG;
  rec->type = get16(msg + *pos);
  rec->rclass = get16(msg + *pos + 2);
  rec->rdlength = get16(msg + *pos + 8);
  rec->rdata = *pos + 10;
  if (rec->rdata + rec->rdlength > len)
    return -EBADMSG;
  *pos = rec->rdata + rec->rdlength;
  return 0;
}

static void add_address(const uint8_t *rdata, uint16_t qtype, uint16_t port,
                        struct proxy_addrs *out)
{
  union proxy_sockaddr *addr;

  if (out->count == PROXY_ADDRS_MAX)
    return;
  addr = &out->addr[out->count++];
  memset(addr, 0, sizeof(*addr));
  if (qtype == PROXY_DNS_TYPE_A) {
    addr->in.sin_family = AF_INET;
    memcpy(&addr->in.sin_addr, rdata, 4);
  } else {
    addr->in6.sin6_family = AF_INET6;
    memcpy(&addr->in6.sin6_addr, rdata, 16);
  }
  set_port(addr, port);
}

/* Walks the answer section once: collects the addresses owned by *owner,
 * or, when there are none, replaces *owner by the target of its CNAME.
 * Returns 1 when addresses were found, 0 when a CNAME moved owner, -ENOENT
 * when neither, -EBADMSG when malformed. */
static int scan_answers(const uint8_t *msg, size_t len, size_t start,
                        unsigned count, uint16_t qtype, uint16_t port,
                        char *owner, size_t owner_size, struct proxy_addrs *out)
{
  size_t want_len = qtype == PROXY_DNS_TYPE_A ? 4 : 16;
  char cname[PROXY_HOST_MAX + 2] = "";
  size_t before = out->count;
  size_t pos = start;

  for (unsigned i = 0; i < count; i++) {
    struct dns_record rec;

    if (read_record(msg, len, &pos, &rec) < 0)
      return -EBADMSG;
    if (rec.rclass != DNS_CLASS_IN || strcmp(rec.owner, owner) != 0)
      continue;
    if (rec.type == qtype && rec.rdlength == want_len) {
      add_address(msg + rec.rdata, qtype, port, out);
    } else if (rec.type == PROXY_DNS_TYPE_CNAME && !cname[0]) {
      size_t rdata = rec.rdata;

      if (read_name(msg, len, &rdata, cname, sizeof(cname)) < 0)
        return -EBADMSG;
    }
  }
  if (out->count > before)
    return 1;
  if (!cname[0])
    return -ENOENT;
  snprintf(owner, owner_size, "%s", cname);
  return 0;
}

/* Checks the header and question of a reply; returns the offset of the
 * answer section or a negative code. */
static int check_reply(const uint8_t *msg, size_t len, uint16_t id,
                       const char *name, uint16_t qtype)
{
  char qname[PROXY_HOST_MAX + 2];
  size_t pos = DNS_HEADER_LEN;
  uint16_t flags;

  if (len < DNS_HEADER_LEN)
    return -EBADMSG;
  flags = get16(msg + 2);
  if (get16(msg) != id || !(flags & DNS_FLAG_QR) || (flags >> 11 & 0xf))
    return -ESRCH;
  if (get16(msg + 4) != 1)
    return -ESRCH;
  if (read_name(msg, len, &pos, qname, sizeof(qname)) < 0 || pos + 4 > len)
    return -EBADMSG;
  if (strcasecmp(qname, name) != 0 || get16(msg + pos) != qtype ||
      get16(msg + pos + 2) != DNS_CLASS_IN)
    return -ESRCH;
  return (int)(pos + 4);
}

int proxy_dns_decode(const uint8_t *msg, size_t len, uint16_t id,
                     const char *name, uint16_t qtype, uint16_t port,
                     struct proxy_addrs *out)
{
  char owner[PROXY_HOST_MAX + 2];
  int start = check_reply(msg, len, id, name, qtype);
  uint16_t flags, rcode;
  unsigned count;

  if (start < 0)
    return start;
  flags = get16(msg + 2);
  rcode = flags & 0xf;
  if (rcode == DNS_RCODE_NXDOMAIN)
    return -ENOENT;
  if (rcode != 0)
    return -EAGAIN;
  count = get16(msg + 6);
  snprintf(owner, sizeof(owner), "%s", name);
  for (unsigned link = 0; link <= PROXY_CNAME_MAX; link++) {
    int rc = scan_answers(msg, len, (size_t)start, count, qtype, port, owner,
                          sizeof(owner), out);

    if (rc == 1)
      return 0;
    if (rc == -EBADMSG)
      return rc;
    if (rc == -ENOENT)
      return flags & DNS_FLAG_TC ? -EAGAIN : -ENOENT;
  }
  return -EBADMSG;
}

static void query_finish_attempt(struct proxy_query *q, int status);
static int query_start_attempt(struct proxy_query *q);

static void query_deliver(struct proxy_query *q, int status)
{
  q->cb(q, status, q->data);
}

static bool retryable(int status)
{
  return status == -ETIMEDOUT || status == -EAGAIN || status == -ECONNREFUSED ||
         status == -EBADMSG;
}

/* Runs once the operations of an attempt have all completed. */
static void query_drain(struct proxy_query *q)
{
  int status = q->status;

  if (q->pending > 0)
    return;
  if (q->fd >= 0) {
    close(q->fd);
    q->fd = -1;
  }
  if (q->cancelled) {
    query_deliver(q, -ECANCELED);
    return;
  }
  if (retryable(status) && ++q->attempt < PROXY_DNS_ATTEMPTS) {
    status = query_start_attempt(q);
    if (status == 0)
      return;
  }
  if (status == -EAGAIN || status == -EBADMSG || status == -ECONNREFUSED)
    status = -EIO;
  query_deliver(q, status);
}

static void query_finish_attempt(struct proxy_query *q, int status)
{
  if (q->attempt_over)
    return;
  q->attempt_over = true;
  q->status = status;
  eng_cancel(&q->send_op);
  eng_cancel(&q->recv_op);
  eng_cancel(&q->timer_op);
}

static void on_send(struct eng_op *op, int res)
{
  struct proxy_query *q = op->data;

  q->pending--;
  if (res < 0 && res != -ECANCELED)
    query_finish_attempt(q, res == -ECONNREFUSED ? res : -EIO);
  query_drain(q);
}

static void on_recv(struct eng_op *op, int res)
{
  struct proxy_query *q = op->data;
  int rc;

  q->pending--;
  if (q->attempt_over || res == -ECANCELED) {
    query_drain(q);
    return;
  }
  if (res < 0) {
    query_finish_attempt(q, res == -ECONNREFUSED ? res : -EIO);
    query_drain(q);
    return;
  }
  q->result.count = 0;
  rc = proxy_dns_decode(q->reply, (size_t)res, q->id, q->name, PROXY_DNS_TYPE_A,
                        q->port, &q->result);
  if (rc == -ESRCH &&
      eng_recv(&q->recv_op, q->fd, q->reply, sizeof(q->reply)) == 0) {
    /* Not a reply to this query: keep waiting for the right one. */
    q->pending++;
    return;
  }
  query_finish_attempt(q, rc == -ESRCH ? -EIO : rc);
  query_drain(q);
}

static void on_timer(struct eng_op *op, int res)
{
  struct proxy_query *q = op->data;

  q->pending--;
  if (q->from_hosts) {
    query_deliver(q, q->cancelled ? -ECANCELED : 0);
    return;
  }
  if (res == -ETIME)
    query_finish_attempt(q, -ETIMEDOUT);
  query_drain(q);
}

static uint16_t random_id(void)
{
  uint16_t id = 0;

  if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
    id = (uint16_t)(eng_now_ms() * 2654435761u >> 7);
  return id;
}

static int query_start_attempt(struct proxy_query *q)
{
  const union proxy_sockaddr *ns =
      &q->resolver->ns[q->attempt % q->resolver->ns_count];
  socklen_t ns_len =
      ns->sa.sa_family == AF_INET ? sizeof(ns->in) : sizeof(ns->in6);
  int len, rc;

  q->id = random_id();
  len = proxy_dns_encode(q->id, q->name, PROXY_DNS_TYPE_A, q->query,
                         sizeof(q->query));
  if (len < 0)
    return len;
  q->query_len = (size_t)len;
  q->fd = socket(ns->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (q->fd < 0)
    return -errno;
  /* A UDP connect only records the peer and sends nothing, so it does not
   * block; it makes the kernel drop datagrams from other sources. */
  if (connect(q->fd, &ns->sa, ns_len) < 0) {
    rc = -errno;
    close(q->fd);
    q->fd = -1;
    return rc;
  }
  q->attempt_over = false;
  q->status = 0;
  eng_op_init(&q->send_op, q->resolver->loop, on_send, q);
  eng_op_init(&q->recv_op, q->resolver->loop, on_recv, q);
  eng_op_init(&q->timer_op, q->resolver->loop, on_timer, q);
  if (eng_send(&q->send_op, q->fd, q->query, q->query_len) == 0)
    q->pending++;
  if (eng_recv(&q->recv_op, q->fd, q->reply, sizeof(q->reply)) == 0)
    q->pending++;
  if (eng_timer(&q->timer_op, q->resolver->timeout_ms) == 0)
    q->pending++;
  if (q->pending < 3) {
    query_finish_attempt(q, -EIO);
    if (q->pending == 0) {
      close(q->fd);
      q->fd = -1;
      return -EIO;
    }
  }
  return 0;
}

int proxy_resolve_start(struct proxy_resolver *r, struct proxy_query *q,
                        const char *name, uint16_t port, proxy_resolve_cb cb,
                        void *data)
{
  memset(q, 0, offsetof(struct proxy_query, query));
  q->resolver = r;
  q->fd = -1;
  q->port = port;
  q->cb = cb;
  q->data = data;
  q->result.count = 0;
  snprintf(q->name, sizeof(q->name), "%s", name);
  if (proxy_hosts_lookup(r, name, port, &q->result) > 0) {
    q->from_hosts = true;
    eng_op_init(&q->timer_op, r->loop, on_timer, q);
    if (eng_defer(&q->timer_op) < 0)
      return -EAGAIN;
    q->pending = 1;
    return 0;
  }
  return query_start_attempt(q);
}

void proxy_resolve_cancel(struct proxy_query *q)
{
  if (q->cancelled || q->pending == 0)
    return;
  q->cancelled = true;
  if (q->from_hosts)
    return;
  query_finish_attempt(q, -ECANCELED);
}
