/* Request parsing for the egress proxy. llhttp checks the syntax and the
 * body framing. The head's fields are kept as spans of the caller's buffer,
 * so nothing is copied until the upstream head is written. */
#include "proxy/request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static struct proxy_head *head_of(llhttp_t *parser)
{
  return parser->data;
}

static uint32_t offset_in(struct proxy_head *h, const char *at)
{
  return (uint32_t)(at - h->base);
}

static int on_url(llhttp_t *parser, const char *at, size_t len)
{
  struct proxy_head *h = head_of(parser);

  if (!h->in_url) {
    h->in_url = true;
    h->url.off = offset_in(h, at);
    h->url.len = 0;
  }
  h->url.len += (uint32_t)len;
  return 0;
}

static int on_url_complete(llhttp_t *parser)
{
  head_of(parser)->in_url = false;
  return 0;
}

/* Field callbacks after the head come from a chunked body's trailer
 * section: those fields travel upstream inside the raw body bytes, so they
 * are not recorded. */
static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
  struct proxy_head *h = head_of(parser);
  struct proxy_header *field;

  if (h->complete)
    return 0;
  if (!h->in_field) {
    if (h->header_count == PROXY_HEADERS_MAX) {
      h->too_many_headers = true;
      return HPE_USER;
    }
    field = &h->headers[h->header_count];
    field->name.off = offset_in(h, at);
    field->name.len = 0;
    field->value.off = 0;
    field->value.len = 0;
    h->in_field = true;
  }
  h->headers[h->header_count].name.len += (uint32_t)len;
  return 0;
}

/* The token characters of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char ch)
{
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* llhttp 8 lets a blank before the colon through, which RFC 9112 says a
 * server must reject because intermediaries read such names differently. */
static int on_header_field_complete(llhttp_t *parser)
{
  struct proxy_head *h = head_of(parser);
  const struct proxy_header *field = &h->headers[h->header_count];

  if (h->complete)
    return 0;
  h->in_field = false;
  for (uint32_t i = 0; i < field->name.len; i++) {
    if (!is_tchar((unsigned char)h->base[field->name.off + i])) {
      h->field_error = "invalid character in header field name";
      return HPE_USER;
    }
  }
  return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
  struct proxy_head *h = head_of(parser);
  struct proxy_header *field = &h->headers[h->header_count];

  if (h->complete)
    return 0;
  if (!h->in_value) {
    field->value.off = offset_in(h, at);
    field->value.len = 0;
    h->in_value = true;
  }
  field->value.len += (uint32_t)len;
  return 0;
}

static int on_header_value_complete(llhttp_t *parser)
{
  struct proxy_head *h = head_of(parser);
  struct proxy_header *field = &h->headers[h->header_count];

  if (h->complete)
    return 0;
  while (field->value.len > 0) {
    char last = h->base[field->value.off + field->value.len - 1];

    if (last != ' ' && last != '\t')
      break;
    field->value.len--;
  }
  h->in_value = false;
  /* llhttp 8 joins obsolete line folding into the value; RFC 9112 lets a
   * proxy reject it, and a CR or LF must never reach the upstream head. */
  if (memchr(h->base + field->value.off, '\r', field->value.len) ||
      memchr(h->base + field->value.off, '\n', field->value.len)) {
    h->field_error = "folded header field value";
    return HPE_USER;
  }
  h->header_count++;
  return 0;
}

static int on_headers_complete(llhttp_t *parser)
{
  struct proxy_head *h = head_of(parser);

  h->complete = true;
  h->method = llhttp_get_method(parser);
  h->http_minor = llhttp_get_http_minor(parser);
  return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *parser)
{
  head_of(parser)->message_complete = true;
  return HPE_PAUSED;
}

static const llhttp_settings_t *settings(void)
{
  static llhttp_settings_t s;
  static bool ready;

  if (!ready) {
    llhttp_settings_init(&s);
    s.on_url = on_url;
    s.on_url_complete = on_url_complete;
    s.on_header_field = on_header_field;
    s.on_header_field_complete = on_header_field_complete;
    s.on_header_value = on_header_value;
    s.on_header_value_complete = on_header_value_complete;
    s.on_headers_complete = on_headers_complete;
    s.on_message_complete = on_message_complete;
    ready = true;
  }
  return &s;
}

void proxy_head_init(struct proxy_head *head)
{
  memset(head, 0, sizeof(*head));
  llhttp_init(&head->parser, HTTP_REQUEST, settings());
  head->parser.data = head;
}

int proxy_head_feed(struct proxy_head *h, const char *buf, size_t len,
                    const char **why)
{
  size_t end = len < PROXY_HEAD_MAX ? len : PROXY_HEAD_MAX;
  llhttp_errno_t rc;

  if (h->complete)
    return PROXY_FEED_DONE;
  h->base = buf;
  if (end > h->fed) {
    rc = llhttp_execute(&h->parser, buf + h->fed, end - h->fed);
    if (rc == HPE_PAUSED && h->complete) {
      h->head_len = (size_t)(llhttp_get_error_pos(&h->parser) - buf);
      h->fed = h->head_len;
      if (llhttp_get_http_major(&h->parser) != 1) {
        *why = "http version not supported";
        return -EPROTONOSUPPORT;
      }
      return PROXY_FEED_DONE;
    }
    if (rc != HPE_OK && h->too_many_headers) {
      *why = "too many header fields";
      return -E2BIG;
    }
    if (rc != HPE_OK && h->field_error) {
      *why = h->field_error;
      return -EINVAL;
    }
    if (rc != HPE_OK) {
      *why = llhttp_get_error_reason(&h->parser);
      if (!*why)
        *why = "malformed request head";
      return -EINVAL;
    }
    h->fed = end;
  }
  if (h->fed >= PROXY_HEAD_MAX) {
    *why = "request head too large";
    return -E2BIG;
  }
  return PROXY_FEED_MORE;
}

int proxy_body_feed(struct proxy_head *h, const char *data, size_t len,
                    size_t *consumed, const char **why)
{
  llhttp_errno_t rc;

  *consumed = 0;
  if (h->message_complete)
    return PROXY_FEED_DONE;
  if (llhttp_get_errno(&h->parser) == HPE_PAUSED)
    llhttp_resume(&h->parser);
  /* A zero-length call still runs the steps after the head, which end a
   * request that has no body. */
  rc = llhttp_execute(&h->parser, data, len);
  if (h->message_complete) {
    const char *pos = llhttp_get_error_pos(&h->parser);

    *consumed = pos && rc != HPE_OK ? (size_t)(pos - data) : len;
    return PROXY_FEED_DONE;
  }
  if (rc != HPE_OK) {
    *why = llhttp_get_error_reason(&h->parser);
    if (!*why)
      *why = "malformed request body";
    return -EINVAL;
  }
  *consumed = len;
  return PROXY_FEED_MORE;
}

static bool span_equals(const char *buf, struct proxy_span span,
                        const char *text)
{
  size_t len = strlen(text);

  return span.len == len && strncasecmp(buf + span.off, text, len) == 0;
}

/* Finds the only Host field; returns its index, -1 when absent, -2 when
 * there are several. */
static int find_host_field(const struct proxy_head *h, const char *buf)
{
  int found = -1;

  for (size_t i = 0; i < h->header_count; i++) {
    if (!span_equals(buf, h->headers[i].name, "host"))
      continue;
    if (found >= 0)
      return -2;
    found = (int)i;
  }
  return found;
}

static void check_host_field(const struct proxy_head *h, const char *buf,
                             struct proxy_decision *d)
{
  int index = find_host_field(h, buf);
  struct proxy_target from_field;
  const struct proxy_header *field;
  const char *why;

  if (index == -2) {
    d->status = 400;
    d->why = "more than one host field";
    return;
  }
  if (index == -1) {
    if (h->http_minor >= 1) {
      d->status = 400;
      d->why = "missing host field";
    }
    return;
  }
  field = &h->headers[index];
  if (proxy_authority_parse(buf + field->value.off, field->value.len, 80,
                            &from_field, &why) < 0 ||
      !proxy_target_equal(&from_field, &d->target)) {
    d->status = 400;
    d->why = "host field does not match the request target";
  }
}

void proxy_decide(const struct proxy_config *cfg, const struct proxy_head *head,
                  const char *buf, struct proxy_decision *d)
{
  const char *url = buf + head->url.off;
  int rc;

  memset(d, 0, sizeof(*d));
  d->is_connect = head->method == HTTP_CONNECT;
  if (d->is_connect)
    rc = proxy_authority_parse(url, head->url.len, 0, &d->target, &d->why);
  else
    rc = proxy_absolute_parse(url, head->url.len, &d->target, &d->path_off,
                              &d->path_len, &d->why);
  if (rc < 0) {
    d->status = 400;
    return;
  }
  d->target_parsed = true;
  d->path_off += head->url.off;
  if (!d->is_connect) {
    check_host_field(head, buf, d);
    if (d->status)
      return;
  }
  d->status = proxy_target_check(cfg, &d->target, &d->why);
}

static bool is_framing_field(const char *name, size_t len)
{
  return (len == 14 && strncasecmp(name, "content-length", len) == 0) ||
         (len == 17 && strncasecmp(name, "transfer-encoding", len) == 0);
}

/* Tells whether a Connection field value lists name as a token. */
static bool connection_lists(const char *value, size_t value_len,
                             const char *name, size_t name_len)
{
  size_t i = 0;

  while (i < value_len) {
    size_t start, end;

    while (i < value_len &&
           (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
      i++;
    start = i;
    while (i < value_len && value[i] != ',')
      i++;
    end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
      end--;
    if (end - start == name_len &&
        strncasecmp(value + start, name, name_len) == 0)
      return true;
  }
  return false;
}

bool proxy_header_is_hop_by_hop(const struct proxy_head *h, const char *buf,
                                const char *name, size_t name_len)
{
  static const char *const fixed[] = {
      "connection", "keep-alive", "proxy-connection", "proxy-authorization",
      "te",         "trailer",    "upgrade",          "host",
  };

  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    if (strlen(fixed[i]) == name_len &&
        strncasecmp(name, fixed[i], name_len) == 0)
      return true;
  if (is_framing_field(name, name_len))
    return false;
  for (size_t i = 0; i < h->header_count; i++) {
    const struct proxy_header *field = &h->headers[i];

    if (span_equals(buf, field->name, "connection") &&
        connection_lists(buf + field->value.off, field->value.len, name,
                         name_len))
      return true;
  }
  return false;
}

/* A bounded output buffer: the first write that does not fit sets
 * overflow, and later writes do nothing. */
struct writer {
  char *out;
  size_t size;
  size_t len;
  bool overflow;
};

static void put(struct writer *w, const char *data, size_t len)
{
  if (w->overflow || len > w->size - w->len) {
    w->overflow = true;
    return;
  }
  memcpy(w->out + w->len, data, len);
  w->len += len;
}

static void put_str(struct writer *w, const char *text)
{
  put(w, text, strlen(text));
}

static void put_host_line(struct writer *w, const struct proxy_target *t)
{
  char port[16];

  put_str(w, "Host: ");
  if (t->host.kind == PROXY_HOST_IPV6)
    put_str(w, "[");
  put_str(w, t->host.name);
  if (t->host.kind == PROXY_HOST_IPV6)
    put_str(w, "]");
  if (t->port != 80) {
    snprintf(port, sizeof(port), ":%u", t->port);
    put_str(w, port);
  }
  put_str(w, "\r\n");
}

int proxy_upstream_head(const struct proxy_head *h, const char *buf,
                        const struct proxy_decision *d, char *out,
                        size_t out_size)
{
  struct writer w = {.out = out, .size = out_size};
  const char *path = buf + d->path_off;
  char version[16];

  put_str(&w, llhttp_method_name((llhttp_method_t)h->method));
  put_str(&w, " ");
  if (d->path_len == 0 || path[0] != '/')
    put_str(&w, "/");
  put(&w, path, d->path_len);
  snprintf(version, sizeof(version), " HTTP/1.%u\r\n", h->http_minor);
  put_str(&w, version);
  put_host_line(&w, &d->target);
  for (size_t i = 0; i < h->header_count; i++) {
    const struct proxy_header *field = &h->headers[i];

    if (proxy_header_is_hop_by_hop(h, buf, buf + field->name.off,
                                   field->name.len))
      continue;
    put(&w, buf + field->name.off, field->name.len);
    put_str(&w, ": ");
    put(&w, buf + field->value.off, field->value.len);
    put_str(&w, "\r\n");
  }
  put_str(&w, "Connection: close\r\n\r\n");
  return w.overflow ? -E2BIG : (int)w.len;
}
