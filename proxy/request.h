/* Parsing a client's request to the egress proxy with llhttp: the bounded
 * request head, the framing of a request body, the decision on a parsed
 * head, and the origin-form head sent upstream. No I/O. */
#ifndef PROXY_REQUEST_H
#define PROXY_REQUEST_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/rules.h"

/* Bounds on a request head: its bytes, and the header fields in it. */
#define PROXY_HEAD_MAX (16 * 1024)
#define PROXY_HEADERS_MAX 100
/* Room for the lines the proxy adds to an upstream head: the Host field,
 * "Connection: close" and the request line's change of form. */
#define PROXY_UPSTREAM_HEAD_EXTRA 512

/* A byte range of the buffer that the head was parsed from. */
struct proxy_span {
  uint32_t off;
  uint32_t len;
};

struct proxy_header {
  struct proxy_span name;
  struct proxy_span value; /* without surrounding blanks */
};

/* The state of one request's parse. The buffer passed to the feed
 * functions must not move between calls while the head is incomplete. */
struct proxy_head {
  llhttp_t parser;
  const char *base; /* buffer of the current feed call */
  size_t fed;       /* bytes of the head given to llhttp so far */
  struct proxy_span url;
  struct proxy_header headers[PROXY_HEADERS_MAX];
  size_t header_count;
  bool in_url, in_field, in_value;
  bool too_many_headers;
  const char *field_error; /* why a field name or value was rejected */
  bool complete;           /* the head is parsed; head_len is set */
  bool message_complete;   /* the whole request, body included, is parsed */
  size_t head_len;
  unsigned method;     /* llhttp_method_t */
  unsigned http_minor; /* the major version is always 1 */
};

enum proxy_feed_result {
  PROXY_FEED_MORE = 0, /* needs more bytes */
  PROXY_FEED_DONE = 1, /* the head (or the message) is complete */
};

void proxy_head_init(struct proxy_head *head);

/* Parses the head in buf[0, len), which contains every byte received so far
 * (len grows between calls). Returns PROXY_FEED_MORE, PROXY_FEED_DONE with
 * head->head_len set, -EINVAL for a malformed head, -EPROTONOSUPPORT for
 * an HTTP version other than 1.x, or -E2BIG for a head past PROXY_HEAD_MAX
 * bytes or PROXY_HEADERS_MAX fields. *why is set on every error. */
int proxy_head_feed(struct proxy_head *head, const char *buf, size_t len,
                    const char **why);

/* Feeds request body bytes that follow a complete head (not for CONNECT).
 * Sets *consumed to the bytes that belong to this request. Returns
 * PROXY_FEED_DONE once the request ends, PROXY_FEED_MORE, or -EINVAL with
 * *why set when the body framing is malformed. */
int proxy_body_feed(struct proxy_head *head, const char *data, size_t len,
                    size_t *consumed, const char **why);

/* A decision on a parsed head. */
struct proxy_decision {
  int status;      /* 0 allowed; else 400, 403 or 505 */
  const char *why; /* reason for a status */
  bool is_connect;
  struct proxy_target target;
  bool target_parsed; /* target contains a parsed host and port */
  size_t path_off;    /* origin-form part of an absolute target, */
  size_t path_len;    /* relative to the head's buffer */
};

/* Judges a complete head in buf against cfg: the target's form, the Host
 * field, the host allowlist and the port list. Address checks come later,
 * after name resolution. */
void proxy_decide(const struct proxy_config *cfg, const struct proxy_head *head,
                  const char *buf, struct proxy_decision *d);

/* Tells whether a header field must not be forwarded: the fixed hop-by-hop
 * fields, Host (the proxy writes its own), and fields listed in a
 * Connection field of this head. Content-Length and Transfer-Encoding are
 * always kept because the body is forwarded with its own framing. */
bool proxy_header_is_hop_by_hop(const struct proxy_head *head, const char *buf,
                                const char *name, size_t name_len);

/* Writes the head sent upstream for an allowed plain request: origin-form
 * request line, Host from the target, the client's end-to-end fields and
 * "Connection: close". Returns its length, or -E2BIG when out_size (at
 * least head_len + PROXY_UPSTREAM_HEAD_EXTRA is enough) is too small. */
int proxy_upstream_head(const struct proxy_head *head, const char *buf,
                        const struct proxy_decision *d, char *out,
                        size_t out_size);

#endif
