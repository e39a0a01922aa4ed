/* Tests of the HTTP client against the scripted fake daemon: bodies with
 * Content-Length and chunked encoding, keep-alive reuse, connection hijack
 * for attach, and faults (garbage, early close, limits, timeouts, refused
 * and stale connections). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_daemon.h"
#include "http/http.h"

/* A literal that may hold NUL bytes, as one write. */
#define LIT(s)                                                                 \
  {                                                                            \
    .data = (s), .len = sizeof(s) - 1                                          \
  }
#define LIT_AFTER(s, ms)                                                       \
  {                                                                            \
    .data = (s), .len = sizeof(s) - 1, .delay_ms = (ms)                        \
  }

#define RUN_TIMEOUT_MS 10000
#define STREAM_MAX (64 * 1024)

/* Two frames: stdout "a\n", stderr "b\n". */
#define FRAMES                                                                 \
  "\x01\0\0\0\0\0\0\x02"                                                       \
  "a\n\x02\0\0\0\0\0\0\x02"                                                    \
  "b\n"
#define FRAMES_LEN 20

#define JSON_OK "{\"ok\":true}"
#define HEAD_JSON(len)                                                         \
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"                      \
  "Content-Length: " #len "\r\n\r\n"

struct outcome {
  bool done;
  bool failed;
  struct rbx_error err;
  int status;
  char *body;
  size_t body_len;
  char content_type[128];
  int fd;
  uint8_t extra[STREAM_MAX];
  size_t extra_len;
  unsigned headers_calls;
  int headers_status;
  bool headers_before_done;
  char *streamed;
  size_t streamed_len;
  int abort_stream; /* on_body returns -1 once this many bytes came */
  uint64_t done_ms;
};

struct fixture {
  struct eng_loop *loop;
  struct fake_daemon *daemon;
  struct http_client *client;
  struct http_endpoint ep;
};

struct guard {
  struct eng_op op;
  bool fired;
};

static void on_guard(struct eng_op *op, int res)
{
  struct guard *guard = op->data;

  if (res == -ETIME)
    guard->fired = true;
}

static void guard_start(struct guard *guard, struct eng_loop *loop, uint64_t ms)
{
  guard->fired = false;
  eng_op_init(&guard->op, loop, on_guard, guard);
  assert_int_equal(eng_timer(&guard->op, ms), 0);
}

static void guard_stop(struct guard *guard, struct eng_loop *loop)
{
  eng_cancel(&guard->op);
  while (guard->op.in_flight)
    assert_true(eng_run_once(loop, true) >= 0);
  assert_false(guard->fired);
}

/* Runs the loop until *flag is set, failing after RUN_TIMEOUT_MS. */
static void run_until(struct fixture *fx, const bool *flag)
{
  struct guard guard;

  guard_start(&guard, fx->loop, RUN_TIMEOUT_MS);
  while (!*flag && !guard.fired)
    assert_true(eng_run_once(fx->loop, true) >= 0);
  guard_stop(&guard, fx->loop);
}

/* Runs the loop until nothing but the guard is in flight. */
static void drain(struct eng_loop *loop)
{
  struct guard guard;

  guard_start(&guard, loop, RUN_TIMEOUT_MS);
  while (eng_in_flight(loop) > 1 && !guard.fired)
    assert_true(eng_run_once(loop, true) >= 0);
  guard_stop(&guard, loop);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void fixture_start(struct fixture *fx, const struct fake_route *routes,
                          size_t count, unsigned max_conns)
{
  struct rbx_error err;

  memset(fx, 0, sizeof(*fx));
  assert_int_equal(fake_daemon_start(&fx->daemon, routes, count), 0);
  assert_int_equal(eng_loop_new(&fx->loop, 0, &err), 0);
  assert_int_equal(
      http_endpoint_parse(fake_daemon_url(fx->daemon), &fx->ep, &err), 0);
  assert_int_equal(
      http_client_new(&fx->client, fx->loop, &fx->ep, max_conns, NULL, &err),
      0);
}

static void fixture_finish(struct fixture *fx)
{
  http_client_close(fx->client);
  drain(fx->loop);
  assert_int_equal(eng_in_flight(fx->loop), 0);
  eng_loop_free(fx->loop);
  fake_daemon_stop(fx->daemon);
}

static void outcome_init(struct outcome *o)
{
  memset(o, 0, sizeof(*o));
  o->fd = -1;
}

static void outcome_free(struct outcome *o)
{
  free(o->body);
  free(o->streamed);
  if (o->fd >= 0)
    close(o->fd);
  o->body = o->streamed = NULL;
  o->fd = -1;
}

static void on_done(struct http_call *call, struct http_response *resp,
                    const struct rbx_error *err, void *data)
{
  struct outcome *o = data;

  (void)call;
  assert_false(o->done);
  o->done = true;
  o->done_ms = eng_now_ms();
  if (err) {
    assert_null(resp);
    o->failed = true;
    o->err = *err;
    return;
  }
  assert_non_null(resp);
  o->status = resp->status;
  o->body_len = resp->body_len;
  if (resp->body) {
    o->body = malloc(resp->body_len + 1);
    assert_non_null(o->body);
    memcpy(o->body, resp->body, resp->body_len + 1);
  }
  snprintf(o->content_type, sizeof(o->content_type), "%s", resp->content_type);
  o->fd = resp->fd;
  assert_true(resp->extra_len <= sizeof(o->extra));
  if (resp->extra_len)
    memcpy(o->extra, resp->extra, resp->extra_len);
  o->extra_len = resp->extra_len;
}

static void on_headers(void *data, int status)
{
  struct outcome *o = data;

  o->headers_calls++;
  o->headers_status = status;
  o->headers_before_done = !o->done;
}

static int on_body_piece(void *data, const char *buf, size_t len)
{
  struct outcome *o = data;
  char *grown = realloc(o->streamed, o->streamed_len + len + 1);

  assert_non_null(grown);
  o->streamed = grown;
  memcpy(o->streamed + o->streamed_len, buf, len);
  o->streamed_len += len;
  o->streamed[o->streamed_len] = '\0';
  if (o->abort_stream && o->streamed_len >= (size_t)o->abort_stream)
    return -1;
  return 0;
}

static struct http_call *
send_request(struct fixture *fx, struct http_request *req, struct outcome *o)
{
  struct rbx_error err;
  struct http_call *call;

  outcome_init(o);
  call = http_request(fx->client, req, on_done, o, &err);
  assert_non_null(call);
  return call;
}

static void get(struct fixture *fx, const char *target, struct outcome *o)
{
  struct http_request req = {.method = "GET", .target = target};

  send_request(fx, &req, o);
  run_until(fx, &o->done);
}

static void check_host_header(struct fixture *fx, unsigned index)
{
  struct fake_request req;
  char host[64];

  assert_true(fake_daemon_request(fx->daemon, index, &req));
  assert_true(fake_header(&req, "Host", host, sizeof(host)));
  assert_string_equal(host, "localhost");
}

/* Reads the rest of a hijacked stream to its end, after the bytes that came
 * with the headers, and splits it into stdout and stderr. */
static void read_stream(struct outcome *o, char *out, size_t *out_len,
                        char *err_out, size_t *err_len)
{
  uint8_t all[STREAM_MAX];
  size_t len = o->extra_len;
  size_t pos = 0;

  memcpy(all, o->extra, len);
  fcntl(o->fd, F_SETFL, 0);
  for (;;) {
    ssize_t n = recv(o->fd, all + len, sizeof(all) - len, 0);

    assert_true(n >= 0);
    if (n == 0)
      break;
    len += (size_t)n;
  }
  *out_len = *err_len = 0;
  while (pos + 8 <= len) {
    size_t size = (size_t)all[pos + 4] << 24 | (size_t)all[pos + 5] << 16 |
                  (size_t)all[pos + 6] << 8 | all[pos + 7];

    assert_true(pos + 8 + size <= len);
    if (all[pos] == 2) {
      memcpy(err_out + *err_len, all + pos + 8, size);
      *err_len += size;
    } else {
      memcpy(out + *out_len, all + pos + 8, size);
      *out_len += size;
    }
    pos += 8 + size;
  }
  assert_int_equal(pos, len);
}

/* ---- bodies ---- */

static void test_http_content_length_json(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;
  struct fake_request req;

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  get(&fx, "/info", &o);
  assert_false(o.failed);
  assert_int_equal(o.status, 200);
  assert_int_equal(o.body_len, 11);
  assert_string_equal(o.body, JSON_OK);
  assert_string_equal(o.content_type, "application/json");
  assert_int_equal(o.fd, -1);
  assert_true(fake_daemon_request(fx.daemon, 0, &req));
  assert_string_equal(req.method, "GET");
  assert_string_equal(req.target, "/info");
  assert_int_equal(strncmp(req.raw, "GET /info HTTP/1.1\r\n", 20), 0);
  assert_false(fake_header(&req, "Content-Length", NULL, 0));
  assert_int_equal(req.raw_len, req.head_len);
  check_host_header(&fx, 0);
  outcome_free(&o);
  fixture_finish(&fx);
}

static void test_http_post_body(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "POST",
       .path = "/containers/create",
       .writes = {LIT("HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n"
                      "{\"Id\":1}\n")}},
      {.method = "POST",
       .path = "/empty",
       .writes = {LIT("HTTP/1.1 204 No Content\r\n\r\n")}},
  };
  static const char payload[] = "{\"Image\":\"x\"}";
  struct fixture fx;
  struct outcome o;
  struct fake_request req;
  char value[64];
  struct http_request post = {.method = "POST",
                              .target = "/containers/create?name=a",
                              .body = payload,
                              .body_len = sizeof(payload) - 1};
  struct http_request empty = {.method = "POST", .target = "/empty"};

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  send_request(&fx, &post, &o);
  run_until(&fx, &o.done);
  assert_int_equal(o.status, 201);
  assert_string_equal(o.body, "{\"Id\":1}\n");
  outcome_free(&o);
  assert_true(fake_daemon_request(fx.daemon, 0, &req));
  assert_true(fake_header(&req, "Content-Length", value, sizeof(value)));
  assert_string_equal(value, "13");
  assert_true(fake_header(&req, "Content-Type", value, sizeof(value)));
  assert_string_equal(value, "application/json");
  assert_int_equal(req.raw_len - req.head_len, sizeof(payload) - 1);
  assert_memory_equal(req.raw + req.head_len, payload, sizeof(payload) - 1);
  check_host_header(&fx, 0);

  send_request(&fx, &empty, &o);
  run_until(&fx, &o.done);
  assert_int_equal(o.status, 204);
  assert_int_equal(o.body_len, 0);
  outcome_free(&o);
  assert_true(fake_daemon_request(fx.daemon, 1, &req));
  assert_true(fake_header(&req, "Content-Length", value, sizeof(value)));
  assert_string_equal(value, "0");
  check_host_header(&fx, 1);
  fixture_finish(&fx);
}

/* The JSON body of the chunked responses: "é" and "–" are two and three
 * bytes of UTF-8, and the escapes are split by chunk boundaries below. */
static const char chunked_json[] =
    "{\"message\":\"caf\xc3\xa9 \xe2\x80\x93 \\\"quoted\\\" \\u00e9t\\u00e9\","
    "\"StatusCode\":0,\"pad\":\"0123456789abcdefghijklmnopqrstuvwxyz\"}";

/* Cuts inside "é", inside "–", inside \", inside \u00e9, and a long rest
 * whose size needs two uppercase hex digits. */
static size_t chunk_cut_at(size_t i)
{
  const char *json = chunked_json;

  switch (i) {
  case 0:
    return (size_t)(strstr(json, "\xc3\xa9") - json) + 1;
  case 1:
    return (size_t)(strstr(json, "\xe2\x80\x93") - json) + 2;
  case 2:
    return (size_t)(strstr(json, "\\\"") - json) + 1;
  case 3:
    return (size_t)(strstr(json, "\\u00e9") - json) + 3;
  default:
    return sizeof(chunked_json) - 1;
  }
}

#define CHUNKS 5

struct chunked_answer {
  char text[1024];
  size_t len;
  size_t chunk_end[CHUNKS + 1]; /* offset in text after each chunk */
};

/* Builds the response: uppercase hex sizes, an extension on some chunks, and
 * trailers after the last chunk. */
static void build_chunked(struct chunked_answer *a)
{
  size_t from = 0;
  int n;

  n = snprintf(a->text, sizeof(a->text),
               "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n");
  a->len = (size_t)n;
  for (size_t i = 0; i < CHUNKS; i++) {
    size_t to = chunk_cut_at(i);

    n = snprintf(a->text + a->len, sizeof(a->text) - a->len, "%zX%s\r\n",
                 to - from, i % 2 ? ";ext=\"v\";flag" : "");
    a->len += (size_t)n;
    memcpy(a->text + a->len, chunked_json + from, to - from);
    a->len += to - from;
    memcpy(a->text + a->len, "\r\n", 2);
    a->len += 2;
    a->chunk_end[i] = a->len;
    from = to;
  }
  n = snprintf(a->text + a->len, sizeof(a->text) - a->len,
               "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n");
  a->len += (size_t)n;
  a->chunk_end[CHUNKS] = a->len;
}

enum delivery { ONE_WRITE, WRITE_PER_CHUNK, BYTE_PER_WRITE };

static void run_chunked(enum delivery how, bool stream)
{
  static struct chunked_answer answer;
  struct fake_route route = {.method = "GET", .path = "/chunked"};
  struct fixture fx;
  struct outcome o;
  struct http_request req = {.method = "GET", .target = "/chunked"};

  build_chunked(&answer);
  if (how == ONE_WRITE) {
    route.writes[0].data = answer.text;
    route.writes[0].len = answer.len;
  } else if (how == BYTE_PER_WRITE) {
    route.writes[0].data = answer.text;
    route.writes[0].len = answer.len;
    route.writes[0].byte_delay_ms = 1;
  } else {
    size_t from = 0;

    for (size_t i = 0; i <= CHUNKS; i++) {
      route.writes[i].data = answer.text + from;
      route.writes[i].len = answer.chunk_end[i] - from;
      route.writes[i].delay_ms = 5;
      from = answer.chunk_end[i];
    }
  }
  fixture_start(&fx, &route, 1, 0);
  if (stream)
    req.on_body = on_body_piece;
  send_request(&fx, &req, &o);
  run_until(&fx, &o.done);
  assert_false(o.failed);
  assert_int_equal(o.status, 200);
  if (stream) {
    assert_int_equal(o.body_len, 0);
    assert_int_equal(o.streamed_len, sizeof(chunked_json) - 1);
    assert_memory_equal(o.streamed, chunked_json, sizeof(chunked_json) - 1);
  } else {
    assert_int_equal(o.body_len, sizeof(chunked_json) - 1);
    assert_memory_equal(o.body, chunked_json, sizeof(chunked_json) - 1);
  }
  outcome_free(&o);
  fixture_finish(&fx);
}

static void test_http_chunked_one_write(void **state)
{
  (void)state;
  run_chunked(ONE_WRITE, false);
}

static void test_http_chunked_write_per_chunk(void **state)
{
  (void)state;
  run_chunked(WRITE_PER_CHUNK, false);
}

static void test_http_chunked_byte_per_write(void **state)
{
  (void)state;
  run_chunked(BYTE_PER_WRITE, false);
}

static void test_http_chunked_streamed(void **state)
{
  (void)state;
  run_chunked(WRITE_PER_CHUNK, true);
  run_chunked(BYTE_PER_WRITE, true);
}

/* A 2 ms pause before every byte of the whole response. */
static void test_http_slow_answer(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/slow",
       .writes = {{.data = HEAD_JSON(11) JSON_OK, .byte_delay_ms = 2}}},
  };
  struct fixture fx;
  struct outcome o;

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  get(&fx, "/slow", &o);
  assert_false(o.failed);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  fixture_finish(&fx);
}

/* The headers callback runs when the headers arrive, before the body. */
static void test_http_headers_before_body(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "POST",
       .path = "/wait",
       .writes = {LIT("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"),
                  LIT_AFTER("10\r\n{\"StatusCode\":3}\r\n0\r\n\r\n", 200)}},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request req = {
      .method = "POST", .target = "/wait", .on_headers = on_headers};

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  send_request(&fx, &req, &o);
  while (!o.headers_calls && !o.done)
    assert_true(eng_run_once(fx.loop, true) >= 0);
  assert_int_equal(o.headers_calls, 1);
  assert_int_equal(o.headers_status, 200);
  assert_false(o.done);
  run_until(&fx, &o.done);
  assert_int_equal(o.headers_calls, 1);
  assert_true(o.headers_before_done);
  assert_string_equal(o.body, "{\"StatusCode\":3}");
  outcome_free(&o);
  fixture_finish(&fx);
}

/* A 404 for a streamed request is buffered and delivered whole. */
static void test_http_error_not_streamed(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/events",
       .writes = {LIT("HTTP/1.1 404 Not Found\r\nContent-Length: 24\r\n\r\n"
                      "{\"message\":\"no such id\"}")}},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request req = {
      .method = "GET", .target = "/events", .on_body = on_body_piece};

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  send_request(&fx, &req, &o);
  run_until(&fx, &o.done);
  assert_int_equal(o.status, 404);
  assert_int_equal(o.streamed_len, 0);
  assert_string_equal(o.body, "{\"message\":\"no such id\"}");
  outcome_free(&o);
  fixture_finish(&fx);
}

/* ---- keep-alive ---- */

static void test_http_keepalive_reuse(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "POST",
       .path = "/start",
       .writes = {LIT("HTTP/1.1 204 No Content\r\n\r\n")}},
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request start = {.method = "POST", .target = "/start"};

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  send_request(&fx, &start, &o);
  run_until(&fx, &o.done);
  assert_int_equal(o.status, 204);
  outcome_free(&o);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  get(&fx, "/info", &o);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 1);
  assert_int_equal(fake_daemon_request_count(fx.daemon), 3);
  assert_int_equal(http_client_connections(fx.client), 1);
  for (unsigned i = 0; i < 3; i++)
    check_host_header(&fx, i);
  fixture_finish(&fx);
}

/* With one pooled connection, queued calls take turns on it. */
static void test_http_keepalive_queued(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/info",
       .writes = {LIT_AFTER(HEAD_JSON(11) JSON_OK, 10)}},
  };
  struct fixture fx;
  struct outcome o[3];
  struct http_request req = {.method = "GET", .target = "/info"};

  (void)state;
  fixture_start(&fx, routes, 1, 1);
  for (int i = 0; i < 3; i++)
    send_request(&fx, &req, &o[i]);
  run_until(&fx, &o[2].done);
  for (int i = 0; i < 3; i++) {
    assert_true(o[i].done);
    assert_int_equal(o[i].status, 200);
    assert_string_equal(o[i].body, JSON_OK);
    outcome_free(&o[i]);
  }
  assert_int_equal(fake_daemon_accepts(fx.daemon), 1);
  fixture_finish(&fx);
}

static void test_http_no_reuse_after_close(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/bye",
       .after = FAKE_CLOSE,
       .writes = {LIT("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                      "Content-Length: 11\r\n\r\n" JSON_OK)}},
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  get(&fx, "/bye", &o);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  assert_int_equal(http_client_connections(fx.client), 0);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 2);
  fixture_finish(&fx);
}

/* A streamed body that the caller aborted leaves unread bytes behind: the
 * connection must not serve another call. */
static void test_http_no_reuse_after_aborted_body(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/events",
       .writes = {LIT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nab\r\n\r\n"),
                  LIT_AFTER("4\r\ncd\r\n\r\n0\r\n\r\n", 50)}},
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request req = {
      .method = "GET", .target = "/events", .on_body = on_body_piece};

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  send_request(&fx, &req, &o);
  o.abort_stream = 2;
  run_until(&fx, &o.done);
  assert_true(o.failed);
  assert_int_equal(o.err.kind, RBX_ERR_IO);
  outcome_free(&o);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 2);
  fixture_finish(&fx);
}

/* Bytes after a complete answer mean the two sides are out of step. */
static void test_http_no_reuse_after_extra_bytes(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/extra",
       .writes = {LIT(HEAD_JSON(11) JSON_OK "HTTP/1.1 200 OK\r\n")}},
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  get(&fx, "/extra", &o);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 2);
  fixture_finish(&fx);
}

/* The daemon closed a kept-alive connection while it was idle: the next
 * call is sent again, once, on a new connection. */
static void test_http_stale_connection_retried(void **state)
{
  static const struct fake_route routes[] = {
      {.name = "first",
       .method = "GET",
       .path = "/info",
       .max_hits = 1,
       .after = FAKE_CLOSE,
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
      {.name = "second",
       .method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome o;

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  outcome_free(&o);
  assert_int_equal(http_client_connections(fx.client), 1);
  assert_true(fake_daemon_wait_closed(fx.daemon, 1, 5000));
  get(&fx, "/info", &o);
  assert_false(o.failed);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, JSON_OK);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 2);
  assert_int_equal(fake_daemon_hits(fx.daemon, "second"), 1);
  fixture_finish(&fx);
}

/* ---- hijack ---- */

static const char head_101_upgrade[] =
    "HTTP/1.1 101 UPGRADED\r\n"
    "Content-Type: application/vnd.docker.raw-stream\r\n"
    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
static const char head_101_bare[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
static const char head_200_raw[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/vnd.docker.raw-stream\r\n\r\n";
static const char head_200_multiplexed[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/vnd.docker.multiplexed-stream\r\n\r\n";

struct hijack_case {
  const char *name;
  const char *head;
  int status;
};

static const struct hijack_case hijack_cases[] = {
    {"101 with Upgrade headers", head_101_upgrade, 101},
    {"bare 101", head_101_bare, 101},
    {"200 raw stream", head_200_raw, 200},
    {"200 multiplexed stream", head_200_multiplexed, 200},
};

static void check_attach_request(struct fixture *fx)
{
  struct fake_request req;
  char value[64];

  assert_true(fake_daemon_request(fx->daemon, 0, &req));
  assert_string_equal(req.method, "POST");
  check_host_header(fx, 0);
  assert_true(fake_header(&req, "Upgrade", value, sizeof(value)));
  assert_string_equal(value, "tcp");
  assert_true(fake_header(&req, "Connection", value, sizeof(value)));
  assert_string_equal(value, "Upgrade");
  /* No body: Podman would pass any body bytes on to stdin. */
  assert_false(fake_header(&req, "Content-Length", NULL, 0));
  assert_false(fake_header(&req, "Transfer-Encoding", NULL, 0));
  assert_int_equal(req.raw_len, req.head_len);
  assert_int_equal(req.extra_len, 0);
}

/* Headers and frames as given, then close; the stream must read stdout
 * "a\n" and stderr "b\n", and extra contains what came with the headers. */
static void run_hijack(const struct hijack_case *hc, bool split)
{
  static char first[512];
  struct fake_route route = {
      .method = "POST", .path = "/containers/*/attach", .after = FAKE_CLOSE};
  struct http_request req = {
      .method = "POST",
      .target = "/v1.41/containers/abc/attach?stream=1&stdout=1&stderr=1",
      .hijack = true,
      .timeout_ms = 5000};
  size_t head_len = strlen(hc->head);
  size_t with_head = split ? 3 : FRAMES_LEN;
  struct fixture fx;
  struct outcome o;
  char out[64], err_out[64];
  size_t out_len, err_len;

  print_message("case: %s%s\n", hc->name, split ? ", frames split" : "");
  memcpy(first, hc->head, head_len);
  memcpy(first + head_len, FRAMES, with_head);
  route.writes[0].data = first;
  route.writes[0].len = head_len + with_head;
  if (split) {
    route.writes[1].data = FRAMES + 3;
    route.writes[1].len = FRAMES_LEN - 3;
    route.writes[1].delay_ms = 50;
  }
  fixture_start(&fx, &route, 1, 0);
  send_request(&fx, &req, &o);
  run_until(&fx, &o.done);
  assert_false(o.failed);
  assert_int_equal(o.status, hc->status);
  assert_true(o.fd >= 0);
  assert_int_equal(o.extra_len, with_head);
  assert_memory_equal(o.extra, FRAMES, with_head);
  assert_int_equal(http_client_connections(fx.client), 0);
  read_stream(&o, out, &out_len, err_out, &err_len);
  assert_int_equal(out_len, 2);
  assert_memory_equal(out, "a\n", 2);
  assert_int_equal(err_len, 2);
  assert_memory_equal(err_out, "b\n", 2);
  check_attach_request(&fx);
  outcome_free(&o);
  fixture_finish(&fx);
}

static void test_http_hijack_frames_with_headers(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(hijack_cases) / sizeof(hijack_cases[0]); i++)
    run_hijack(&hijack_cases[i], false);
}

static void test_http_hijack_frame_header_split(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(hijack_cases) / sizeof(hijack_cases[0]); i++)
    run_hijack(&hijack_cases[i], true);
}

/* After a hijack, the next call opens a connection of its own. */
static void test_http_no_reuse_after_hijack(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "POST",
       .path = "/attach",
       .after = FAKE_HOLD,
       .writes = {LIT("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n"
                      "Upgrade: tcp\r\n\r\n")}},
      {.method = "GET",
       .path = "/info",
       .writes = {LIT(HEAD_JSON(11) JSON_OK)}},
  };
  struct fixture fx;
  struct outcome hijacked, o;
  struct http_request req = {
      .method = "POST", .target = "/attach", .hijack = true};

  (void)state;
  fixture_start(&fx, routes, 2, 0);
  send_request(&fx, &req, &hijacked);
  run_until(&fx, &hijacked.done);
  assert_int_equal(hijacked.status, 101);
  assert_true(hijacked.fd >= 0);
  assert_int_equal(hijacked.extra_len, 0);
  assert_int_equal(http_client_connections(fx.client), 0);
  get(&fx, "/info", &o);
  assert_int_equal(o.status, 200);
  outcome_free(&o);
  assert_int_equal(fake_daemon_accepts(fx.daemon), 2);
  outcome_free(&hijacked);
  fixture_finish(&fx);
}

struct not_stream_case {
  const char *name;
  const char *answer;
  int status;
  const char *body;
};

static const struct not_stream_case not_stream_cases[] = {
    {"200 raw stream with Content-Length",
     "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
     "Content-Length: 2\r\n\r\nok",
     200, "ok"},
    {"200 raw stream chunked",
     "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
     "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     200, "ok"},
    {"200 JSON",
     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
     "Content-Length: 11\r\n\r\n" JSON_OK,
     200, JSON_OK},
    {"404 JSON",
     "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
     "Content-Length: 40\r\n\r\n{\"message\":\"No such container: abc123\"}\n",
     404, "{\"message\":\"No such container: abc123\"}\n"},
    {"500 JSON chunked",
     "HTTP/1.1 500 Internal Server Error\r\n"
     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     "F\r\n{\"message\":\"boo\r\n3\r\nm\"}\r\n0\r\n\r\n",
     500, "{\"message\":\"boom\"}"},
};

/* On a hijack request, framed answers and errors are plain responses. */
static void test_http_hijack_not_stream(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(not_stream_cases) / sizeof(not_stream_cases[0]);
       i++) {
    const struct not_stream_case *nc = &not_stream_cases[i];
    struct fake_route route = {
        .method = "POST", .path = "/attach", .writes = {{.data = nc->answer}}};
    struct http_request req = {
        .method = "POST", .target = "/attach", .hijack = true};
    struct fixture fx;
    struct outcome o;

    print_message("case: %s\n", nc->name);
    fixture_start(&fx, &route, 1, 0);
    send_request(&fx, &req, &o);
    run_until(&fx, &o.done);
    if (o.failed)
      fail_msg("%s", o.err.message);
    assert_int_equal(o.status, nc->status);
    assert_int_equal(o.fd, -1);
    assert_int_equal(o.extra_len, 0);
    assert_int_equal(o.body_len, strlen(nc->body));
    assert_string_equal(o.body, nc->body);
    outcome_free(&o);
    fixture_finish(&fx);
  }
}

/* A 101 on a request that did not ask to switch protocols is an error. */
static void test_http_upgrade_on_plain_request(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET",
       .path = "/info",
       .writes = {LIT("HTTP/1.1 101 Switching Protocols\r\n\r\nxyz")}},
  };
  struct fixture fx;
  struct outcome o;

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  get(&fx, "/info", &o);
  assert_true(o.failed);
  assert_int_equal(o.err.kind, RBX_ERR_IO);
  assert_non_null(strstr(o.err.message, "switched protocols"));
  outcome_free(&o);
  fixture_finish(&fx);
}

/* ---- faults ---- */

struct fault_case {
  const char *name;
  const char *answer;
  const char *message; /* expected in the error message */
};

static const struct fault_case fault_cases[] = {
    {"garbage", "SSH-2.0-OpenSSH_9.2\r\n\r\n", "invalid HTTP response"},
    {"binary garbage", "\x01\x02\x03\x04\r\n\r\n", "invalid HTTP response"},
    {"empty answer", "", "before answering"},
    {"close in the status line", "HTTP/1.1 20", "before answering"},
    {"close mid-headers", "HTTP/1.1 200 OK\r\nContent-Len", "before answering"},
    {"close after headers", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
     "mid-body"},
    {"close mid-body",
     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":", "mid-body"},
    {"close mid-chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"a\"",
     "mid-body"},
    {"close before the last chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
     "mid-body"},
    {"invalid chunk size",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n",
     "invalid HTTP response"},
    {"two Content-Length values",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
     "invalid HTTP response"},
};

static void test_http_faults(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(fault_cases) / sizeof(fault_cases[0]); i++) {
    const struct fault_case *fc = &fault_cases[i];
    struct fake_route route = {.method = "GET",
                               .path = "/info",
                               .after = FAKE_CLOSE,
                               .writes = {{.data = fc->answer}}};
    struct fixture fx;
    struct outcome o;

    print_message("case: %s\n", fc->name);
    if (!fc->answer[0])
      route.writes[0].data = NULL;
    fixture_start(&fx, &route, 1, 0);
    get(&fx, "/info", &o);
    assert_true(o.failed);
    assert_int_equal(o.err.kind, RBX_ERR_IO);
    assert_true(o.err.code < 0);
    if (!strstr(o.err.message, fc->message))
      fail_msg("message \"%s\" lacks \"%s\"", o.err.message, fc->message);
    assert_non_null(strstr(o.err.message, fake_daemon_path(fx.daemon)));
    outcome_free(&o);
    fixture_finish(&fx);
  }
}

static void run_limit(const char *answer, size_t len, bool close_after,
                      const char *message)
{
  struct fake_route route = {.method = "GET",
                             .path = "/big",
                             .after = close_after ? FAKE_CLOSE : FAKE_HOLD,
                             .writes = {{.data = answer, .len = len}}};
  struct fixture fx;
  struct outcome o;

  fixture_start(&fx, &route, 1, 0);
  get(&fx, "/big", &o);
  assert_true(o.failed);
  assert_int_equal(o.err.kind, RBX_ERR_IO);
  assert_int_equal(o.err.code, -EMSGSIZE);
  if (!strstr(o.err.message, message))
    fail_msg("message \"%s\" lacks \"%s\"", o.err.message, message);
  outcome_free(&o);
  fixture_finish(&fx);
}

/* Headers past 64 KiB: many lines, one long value, and without an end. */
static void test_http_headers_over_limit(void **state)
{
  size_t size = HTTP_HEADERS_MAX + 8192;
  char *answer = malloc(size + 64);
  size_t len;

  (void)state;
  if (!answer)
    fail();
  len = (size_t)sprintf(answer, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; len < size; i++)
    len += (size_t)sprintf(answer + len, "X-Filler-%05d: %040d\r\n", i, i);
  memcpy(answer + len, "Content-Length: 2\r\n\r\n{}", 23);
  run_limit(answer, len + 23, true, "64 KiB");
  /* The same lines without the blank line, on a connection left open. */
  run_limit(answer, len, false, "64 KiB");

  len = (size_t)sprintf(answer, "HTTP/1.1 200 OK\r\nX-Long: ");
  memset(answer + len, 'v', size - len);
  len = size;
  memcpy(answer + len, "\r\n\r\n", 4);
  run_limit(answer, len + 4, true, "64 KiB");
  free(answer);
}

/* A body of exactly the limit is taken; one byte more is an error, with a
 * Content-Length and when chunked. */
static void test_http_body_limit(void **state)
{
  static char answer[HTTP_BODY_MAX + 1 + 128];
  struct fake_route route = {.method = "GET", .path = "/big"};
  struct fixture fx;
  struct outcome o;
  size_t len;

  (void)state;
  len = (size_t)sprintf(answer, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                        HTTP_BODY_MAX);
  memset(answer + len, 'b', HTTP_BODY_MAX + 1);
  route.writes[0].data = answer;
  route.writes[0].len = len + HTTP_BODY_MAX;
  fixture_start(&fx, &route, 1, 0);
  get(&fx, "/big", &o);
  assert_false(o.failed);
  assert_int_equal(o.status, 200);
  assert_int_equal(o.body_len, HTTP_BODY_MAX);
  assert_int_equal(o.body[HTTP_BODY_MAX - 1], 'b');
  assert_int_equal(o.body[HTTP_BODY_MAX], '\0');
  outcome_free(&o);
  fixture_finish(&fx);

  len = (size_t)sprintf(answer, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                        HTTP_BODY_MAX + 1);
  memset(answer + len, 'b', HTTP_BODY_MAX + 1);
  run_limit(answer, len + HTTP_BODY_MAX + 1, true, "8 MiB");

  len = (size_t)sprintf(answer,
                        "HTTP/1.1 200 OK\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n%X\r\n",
                        HTTP_BODY_MAX + 1);
  memset(answer + len, 'c', HTTP_BODY_MAX + 1);
  run_limit(answer, len + HTTP_BODY_MAX + 1, false, "8 MiB");
}

/* A daemon that takes the request and never answers. */
static void test_http_timeout(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET", .path = "/never", .after = FAKE_HOLD},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request req = {
      .method = "GET", .target = "/never", .timeout_ms = 200};
  uint64_t start;

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  start = eng_now_ms();
  send_request(&fx, &req, &o);
  run_until(&fx, &o.done);
  assert_true(o.failed);
  assert_int_equal(o.err.kind, RBX_ERR_TIMEOUT);
  assert_int_equal(o.err.code, -ETIMEDOUT);
  assert_non_null(strstr(o.err.message, "200 ms"));
  assert_true(o.done_ms - start >= 200);
  assert_true(o.done_ms - start < 2000);
  assert_int_equal(fake_daemon_request_count(fx.daemon), 1);
  outcome_free(&o);
  fixture_finish(&fx);
}

/* A timeout also bounds a call that never got a connection. */
/* A request's timeout measures the daemon: it starts when the request gets
 * a connection, not while it waits behind a full pool. */
static void test_http_timeout_starts_at_send(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET", .path = "/never", .after = FAKE_HOLD},
  };
  struct fixture fx;
  struct outcome first, queued;
  struct http_request hold = {
      .method = "GET", .target = "/never", .timeout_ms = 300};
  struct http_request req = {
      .method = "GET", .target = "/never", .timeout_ms = 200};
  uint64_t started;

  (void)state;
  fixture_start(&fx, routes, 1, 1);
  started = eng_now_ms();
  send_request(&fx, &hold, &first);
  send_request(&fx, &req, &queued);
  run_until(&fx, &first.done);
  assert_true(first.failed);
  assert_int_equal(first.err.kind, RBX_ERR_TIMEOUT);
  assert_false(queued.done);
  run_until(&fx, &queued.done);
  assert_true(queued.failed);
  assert_int_equal(queued.err.kind, RBX_ERR_TIMEOUT);
  assert_true(eng_now_ms() - started >= 450);
  outcome_free(&first);
  outcome_free(&queued);
  fixture_finish(&fx);
}

/* Only a request still in the queue can be withdrawn unseen. */
static void test_http_cancel_queued_only(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET", .path = "/never", .after = FAKE_HOLD},
  };
  struct fixture fx;
  struct outcome first, queued;
  struct http_request hold = {.method = "GET", .target = "/never"};
  struct http_call *held, *waiting;

  (void)state;
  fixture_start(&fx, routes, 1, 1);
  held = send_request(&fx, &hold, &first);
  waiting = send_request(&fx, &hold, &queued);
  /* The held request is on the wire once the fake daemon has read it. */
  for (int i = 0; i < 2000 && fake_daemon_request_count(fx.daemon) < 1; i++) {
    eng_run_once(fx.loop, false);
    usleep(1000);
  }
  assert_int_equal(fake_daemon_request_count(fx.daemon), 1);
  assert_false(http_call_cancel_queued(held));
  assert_true(http_call_cancel_queued(waiting));
  assert_true(queued.done);
  assert_int_equal(queued.err.kind, RBX_ERR_CANCELLED);
  http_call_cancel(held);
  outcome_free(&queued);
  fixture_finish(&fx);
  assert_true(first.done);
  assert_int_equal(first.err.kind, RBX_ERR_CANCELLED);
}

static void run_unavailable(const char *path)
{
  struct eng_loop *loop;
  struct http_client *client;
  struct http_endpoint ep;
  struct rbx_error err;
  struct outcome o;
  struct http_request req = {.method = "GET", .target = "/version"};
  char url[200];
  struct fixture fx = {0};

  snprintf(url, sizeof(url), "unix://%s", path);
  assert_int_equal(eng_loop_new(&loop, 0, &err), 0);
  assert_int_equal(http_endpoint_parse(url, &ep, &err), 0);
  assert_int_equal(http_client_new(&client, loop, &ep, 0, NULL, &err), 0);
  fx.loop = loop;
  fx.client = client;
  send_request(&fx, &req, &o);
  run_until(&fx, &o.done);
  assert_true(o.failed);
  assert_int_equal(o.err.kind, RBX_ERR_UNAVAILABLE);
  assert_true(o.err.code < 0);
  assert_non_null(strstr(o.err.message, path));
  assert_non_null(strstr(o.err.message, "cannot connect: "));
  http_client_close(client);
  drain(loop);
  eng_loop_free(loop);
}

static void test_http_connection_refused(void **state)
{
  char dir[] = "/tmp/rbx-refused-XXXXXX";
  char path[64];
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int sock;

  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/missing.sock", dir);
  run_unavailable(path);

  /* A socket file with no listener. */
  snprintf(path, sizeof(path), "%s/closed.sock", dir);
  memcpy(sun.sun_path, path, strlen(path) + 1);
  sock = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(sock >= 0);
  assert_int_equal(bind(sock, (struct sockaddr *)&sun, sizeof(sun)), 0);
  close(sock);
  run_unavailable(path);
  unlink(path);
  rmdir(dir);
}

static void test_http_cancel(void **state)
{
  static const struct fake_route routes[] = {
      {.method = "GET", .path = "/never", .after = FAKE_HOLD},
  };
  struct fixture fx;
  struct outcome o;
  struct http_request req = {.method = "GET", .target = "/never"};
  struct http_call *call;

  (void)state;
  fixture_start(&fx, routes, 1, 0);
  call = send_request(&fx, &req, &o);
  while (fake_daemon_request_count(fx.daemon) == 0)
    assert_true(eng_run_once(fx.loop, false) >= 0);
  http_call_cancel(call);
  assert_true(o.done);
  assert_int_equal(o.err.kind, RBX_ERR_CANCELLED);
  assert_int_equal(o.err.code, -ECANCELED);
  outcome_free(&o);
  fixture_finish(&fx);
}

/* Closing the client cancels queued and running calls. */
static void test_http_close_cancels_calls(void **state)
{
  static const struct fake_route routes[] = {
      {.path = "/never", .after = FAKE_HOLD},
  };
  struct fixture fx;
  struct outcome o[3];
  struct http_request req = {.method = "GET", .target = "/never"};
  struct http_request hijack = {
      .method = "POST", .target = "/never", .hijack = true};

  (void)state;
  fixture_start(&fx, routes, 1, 1);
  send_request(&fx, &req, &o[0]);
  send_request(&fx, &req, &o[1]);
  send_request(&fx, &hijack, &o[2]);
  while (fake_daemon_request_count(fx.daemon) < 2)
    assert_true(eng_run_once(fx.loop, false) >= 0);
  fixture_finish(&fx);
  for (int i = 0; i < 3; i++) {
    assert_true(o[i].done);
    assert_int_equal(o[i].err.kind, RBX_ERR_CANCELLED);
    outcome_free(&o[i]);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_http_content_length_json),
      cmocka_unit_test(test_http_post_body),
      cmocka_unit_test(test_http_chunked_one_write),
      cmocka_unit_test(test_http_chunked_write_per_chunk),
      cmocka_unit_test(test_http_chunked_byte_per_write),
      cmocka_unit_test(test_http_chunked_streamed),
      cmocka_unit_test(test_http_slow_answer),
      cmocka_unit_test(test_http_headers_before_body),
      cmocka_unit_test(test_http_error_not_streamed),
      cmocka_unit_test(test_http_keepalive_reuse),
      cmocka_unit_test(test_http_keepalive_queued),
      cmocka_unit_test(test_http_no_reuse_after_close),
      cmocka_unit_test(test_http_no_reuse_after_aborted_body),
      cmocka_unit_test(test_http_no_reuse_after_extra_bytes),
      cmocka_unit_test(test_http_stale_connection_retried),
      cmocka_unit_test(test_http_hijack_frames_with_headers),
      cmocka_unit_test(test_http_hijack_frame_header_split),
      cmocka_unit_test(test_http_no_reuse_after_hijack),
      cmocka_unit_test(test_http_hijack_not_stream),
      cmocka_unit_test(test_http_upgrade_on_plain_request),
      cmocka_unit_test(test_http_faults),
      cmocka_unit_test(test_http_headers_over_limit),
      cmocka_unit_test(test_http_body_limit),
      cmocka_unit_test(test_http_timeout),
      cmocka_unit_test(test_http_timeout_starts_at_send),
      cmocka_unit_test(test_http_cancel_queued_only),
      cmocka_unit_test(test_http_connection_refused),
      cmocka_unit_test(test_http_cancel),
      cmocka_unit_test(test_http_close_cancels_calls),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
