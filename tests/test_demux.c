/* Tests of the multiplexed attach stream decoder: one frame sequence fed
 * whole, a byte at a time and split at byte boundaries must give the same
 * output, and malformed frame headers must fail without allocating. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

#define BIG_FRAME_LEN (1024 * 1024)
#define SMALL_BIG_FRAME_LEN 4096
/* Offsets on each side of a frame header that are split at every byte even
 * in the 1 MiB sequence; the payload between is split at a stride. */
#define EDGE_BYTES 64
#define PAYLOAD_STRIDE 4093

/* Allocations made by this program's own objects, counted while `counting`
 * is set. The test links with --wrap for malloc, calloc and realloc. */
static size_t allocations;
static bool counting;

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *ptr, size_t size);

void *__wrap_malloc(size_t size)
{
  if (counting)
    allocations++;
  return __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size)
{
  if (counting)
    allocations++;
  return __real_calloc(count, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
  if (counting)
    allocations++;
  return __real_realloc(ptr, size);
}

struct sequence {
  uint8_t *bytes;
  size_t len;
  size_t header_at[8]; /* offset of each frame header */
  size_t frames;
  uint8_t *out; /* expected stdout */
  size_t out_len;
  uint8_t *err; /* expected stderr */
  size_t err_len;
};

struct sink {
  uint8_t *out;
  size_t out_len;
  uint8_t *err;
  size_t err_len;
  size_t capacity;
  unsigned calls;
  int stop_after; /* return 1 from this call on; 0: never */
};

static void add_frame(struct sequence *seq, int stream, const uint8_t *data,
                      size_t len)
{
  uint8_t *p = seq->bytes + seq->len;

  seq->header_at[seq->frames++] = seq->len;
  p[0] = (uint8_t)stream;
  p[1] = p[2] = p[3] = 0;
  p[4] = (uint8_t)(len >> 24);
  p[5] = (uint8_t)(len >> 16);
  p[6] = (uint8_t)(len >> 8);
  p[7] = (uint8_t)len;
  seq->len += 8 + len;
  if (len == 0)
    return;
  memcpy(p + 8, data, len);
  if (stream == 2) {
    memcpy(seq->err + seq->err_len, data, len);
    seq->err_len += len;
  } else {
    memcpy(seq->out + seq->out_len, data, len);
    seq->out_len += len;
  }
}

/* stdout "a\n", stderr "b\n", an empty frame, a big stdout frame, and
 * stderr "c" after it. */
static void make_sequence(struct sequence *seq, size_t big_len)
{
  uint8_t *big = malloc(big_len);

  assert_non_null(big);
  for (size_t i = 0; i < big_len; i++)
    big[i] = (uint8_t)(i * 7 + i / 251);
  memset(seq, 0, sizeof(*seq));
  seq->bytes = malloc(big_len + 5 * 8 + 16);
  seq->out = malloc(big_len + 16);
  seq->err = malloc(16);
  assert_non_null(seq->bytes);
  assert_non_null(seq->out);
  assert_non_null(seq->err);
  add_frame(seq, 1, (const uint8_t *)"a\n", 2);
  add_frame(seq, 2, (const uint8_t *)"b\n", 2);
  add_frame(seq, 1, NULL, 0);
  add_frame(seq, 1, big, big_len);
  add_frame(seq, 2, (const uint8_t *)"c", 1);
  free(big);
}

static void free_sequence(struct sequence *seq)
{
  free(seq->bytes);
  free(seq->out);
  free(seq->err);
}

static int on_piece(void *data, int stream, const uint8_t *buf, size_t len)
{
  struct sink *sink = data;

  sink->calls++;
  if (stream == 2) {
    assert_true(sink->err_len + len <= sink->capacity);
    memcpy(sink->err + sink->err_len, buf, len);
    sink->err_len += len;
  } else {
    assert_int_equal(stream, 1);
    assert_true(sink->out_len + len <= sink->capacity);
    memcpy(sink->out + sink->out_len, buf, len);
    sink->out_len += len;
  }
  if (sink->stop_after && sink->calls >= (unsigned)sink->stop_after)
    return 1;
  return 0;
}

static void sink_init(struct sink *sink, size_t capacity)
{
  memset(sink, 0, sizeof(*sink));
  sink->out = malloc(capacity);
  sink->err = malloc(capacity);
  sink->capacity = capacity;
  assert_non_null(sink->out);
  assert_non_null(sink->err);
}

static void sink_reset(struct sink *sink)
{
  sink->out_len = sink->err_len = 0;
  sink->calls = 0;
}

static void sink_free(struct sink *sink)
{
  free(sink->out);
  free(sink->err);
}

static void feed_ok(struct http_demux *demux, struct sink *sink,
                    const uint8_t *buf, size_t len)
{
  struct rbx_error err = {0};

  assert_int_equal(http_demux_feed(demux, buf, len, on_piece, sink, &err), 0);
  assert_int_equal(err.kind, RBX_ERR_NONE);
}

static void check_output(const struct sequence *seq, const struct sink *sink)
{
  assert_int_equal(sink->out_len, seq->out_len);
  assert_memory_equal(sink->out, seq->out, seq->out_len);
  assert_int_equal(sink->err_len, seq->err_len);
  assert_memory_equal(sink->err, seq->err, seq->err_len);
}

/* Feeds seq in pieces ending at the sorted offsets in cuts, then checks
 * the output and that the decoder stops at a frame boundary. */
static void feed_with_cuts(const struct sequence *seq, struct sink *sink,
                           const size_t *cuts, size_t ncuts)
{
  struct http_demux demux = {0};
  size_t at = 0;

  sink_reset(sink);
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : seq->len;

    assert_true(end >= at);
    feed_ok(&demux, sink, seq->bytes + at, end - at);
    at = end;
  }
  assert_true(http_demux_at_boundary(&demux));
  check_output(seq, sink);
}

static void test_demux_whole(void **state)
{
  struct sequence seq;
  struct sink sink;

  (void)state;
  make_sequence(&seq, BIG_FRAME_LEN);
  sink_init(&sink, BIG_FRAME_LEN + 16);
  feed_with_cuts(&seq, &sink, NULL, 0);
  sink_free(&sink);
  free_sequence(&seq);
}

static void test_demux_byte_at_a_time(void **state)
{
  struct sequence seq;
  struct sink sink;
  struct http_demux demux = {0};

  (void)state;
  make_sequence(&seq, BIG_FRAME_LEN);
  sink_init(&sink, BIG_FRAME_LEN + 16);
  for (size_t i = 0; i < seq.len; i++) {
    feed_ok(&demux, &sink, seq.bytes + i, 1);
    /* Inside a header or a payload the stream cannot end cleanly. */
    bool at_end_of_frame = false;

    for (size_t f = 1; f < seq.frames; f++)
      at_end_of_frame |= i + 1 == seq.header_at[f];
    at_end_of_frame |= i + 1 == seq.len;
    /* The empty frame ends with its header. */
    assert_int_equal(http_demux_at_boundary(&demux), at_end_of_frame);
  }
  check_output(&seq, &sink);
  sink_free(&sink);
  free_sequence(&seq);
}

static void test_demux_header_split_3_5(void **state)
{
  struct sequence seq;
  struct sink sink;
  size_t cuts[16];
  size_t ncuts = 0;

  (void)state;
  make_sequence(&seq, BIG_FRAME_LEN);
  sink_init(&sink, BIG_FRAME_LEN + 16);
  for (size_t f = 0; f < seq.frames; f++) {
    cuts[ncuts++] = seq.header_at[f] + 3;
    cuts[ncuts++] = seq.header_at[f] + 8;
  }
  feed_with_cuts(&seq, &sink, cuts, ncuts);
  sink_free(&sink);
  free_sequence(&seq);
}

/* Two pieces, split at every byte boundary, with the big frame at 4 KiB so
 * that every boundary costs little. */
static void test_demux_split_every_boundary(void **state)
{
  struct sequence seq;
  struct sink sink;

  (void)state;
  make_sequence(&seq, SMALL_BIG_FRAME_LEN);
  sink_init(&sink, SMALL_BIG_FRAME_LEN + 16);
  for (size_t cut = 0; cut <= seq.len; cut++)
    feed_with_cuts(&seq, &sink, &cut, 1);
  sink_free(&sink);
  free_sequence(&seq);
}

/* Three pieces over every pair of boundaries in the small frames, so that
 * headers split twice (1+2+5, 2+3+3, ...) are covered too. */
static void test_demux_split_every_pair(void **state)
{
  struct sequence seq;
  struct sink sink;
  size_t small_end;

  (void)state;
  make_sequence(&seq, SMALL_BIG_FRAME_LEN);
  sink_init(&sink, SMALL_BIG_FRAME_LEN + 16);
  small_end = seq.header_at[3] + 8 + 8;
  for (size_t a = 0; a <= small_end; a++) {
    for (size_t b = a; b <= small_end; b++) {
      size_t cuts[2] = {a, b};

      feed_with_cuts(&seq, &sink, cuts, 2);
    }
  }
  sink_free(&sink);
  free_sequence(&seq);
}

static bool near_header(const struct sequence *seq, size_t cut)
{
  for (size_t f = 0; f < seq->frames; f++) {
    size_t h = seq->header_at[f];

    if (cut + EDGE_BYTES >= h && cut <= h + 8 + EDGE_BYTES)
      return true;
  }
  return cut + EDGE_BYTES >= seq->len;
}

/* With the 1 MiB frame: every boundary near a header and the end, and a
 * stride through the payload (every payload offset takes the same path in
 * the decoder, so a stride covers the rest). */
static void test_demux_split_big_frame(void **state)
{
  struct sequence seq;
  struct sink sink;
  unsigned splits = 0;

  (void)state;
  make_sequence(&seq, BIG_FRAME_LEN);
  sink_init(&sink, BIG_FRAME_LEN + 16);
  for (size_t cut = 0; cut <= seq.len; cut++) {
    if (!near_header(&seq, cut) && cut % PAYLOAD_STRIDE != 0)
      continue;
    feed_with_cuts(&seq, &sink, &cut, 1);
    splits++;
  }
  assert_true(splits > 400);
  sink_free(&sink);
  free_sequence(&seq);
}

static void test_demux_callback_stop(void **state)
{
  struct sequence seq;
  struct sink sink;
  struct http_demux demux = {0};
  struct rbx_error err = {0};

  (void)state;
  make_sequence(&seq, SMALL_BIG_FRAME_LEN);
  sink_init(&sink, SMALL_BIG_FRAME_LEN + 16);
  sink.stop_after = 2;
  assert_int_equal(
      http_demux_feed(&demux, seq.bytes, seq.len, on_piece, &sink, &err), 1);
  assert_int_equal(sink.calls, 2);
  assert_int_equal(sink.out_len, 2);
  assert_int_equal(sink.err_len, 2);
  sink_free(&sink);
  free_sequence(&seq);
}

static void test_demux_stream_zero_is_stdout(void **state)
{
  static const uint8_t frame[] = {0, 0, 0, 0, 0, 0, 0, 2, 'o', 'k'};
  struct http_demux demux = {0};
  struct sink sink;

  (void)state;
  sink_init(&sink, 16);
  feed_ok(&demux, &sink, frame, sizeof(frame));
  assert_int_equal(sink.out_len, 2);
  assert_memory_equal(sink.out, "ok", 2);
  assert_int_equal(sink.err_len, 0);
  sink_free(&sink);
}

struct bad_header {
  const char *name;
  uint8_t header[8];
  int code;
};

static const struct bad_header bad_headers[] = {
    {"stream id 3", {3, 0, 0, 0, 0, 0, 0, 1}, -EPROTO},
    {"stream id 255", {255, 0, 0, 0, 0, 0, 0, 1}, -EPROTO},
    {"padding byte 1", {1, 1, 0, 0, 0, 0, 0, 1}, -EPROTO},
    {"padding byte 2", {2, 0, 1, 0, 0, 0, 0, 1}, -EPROTO},
    {"padding byte 3", {1, 0, 0, 0x80, 0, 0, 0, 1}, -EPROTO},
    {"length 2 GiB", {1, 0, 0, 0, 0x80, 0, 0, 0}, -EMSGSIZE},
    {"length 4 GiB - 1", {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, -EMSGSIZE},
    {"length limit + 1", {1, 0, 0, 0, 0x04, 0, 0, 1}, -EMSGSIZE},
};

/* A bad header fails with an I/O error, before any payload is passed on and
 * without an allocation, whether it comes whole or a byte at a time, and
 * after a good frame. */
static void test_demux_bad_header(void **state)
{
  static const uint8_t good[] = {1, 0, 0, 0, 0, 0, 0, 1, 'x'};
  struct sink sink;

  (void)state;
  assert_int_equal(HTTP_DEMUX_FRAME_MAX, 0x04000000u);
  sink_init(&sink, 64);
  for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
    const struct bad_header *bad = &bad_headers[i];
    uint8_t bytes[sizeof(good) + 8 + 4];

    memcpy(bytes, good, sizeof(good));
    memcpy(bytes + sizeof(good), bad->header, 8);
    memset(bytes + sizeof(good) + 8, 'z', 4);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      struct http_demux demux = {0};
      struct rbx_error err = {0};
      int rc = 0;

      print_message("case: %s%s\n", bad->name, bytewise ? ", bytewise" : "");
      sink_reset(&sink);
      allocations = 0;
      counting = true;
      if (bytewise) {
        for (size_t b = 0; b < sizeof(bytes) && rc == 0; b++)
          rc = http_demux_feed(&demux, bytes + b, 1, on_piece, &sink, &err);
      } else {
        rc = http_demux_feed(&demux, bytes, sizeof(bytes), on_piece, &sink,
                             &err);
      }
      counting = false;
      assert_int_equal(rc, bad->code);
      assert_int_equal(err.kind, RBX_ERR_IO);
      assert_int_equal(err.code, bad->code);
      assert_non_null(strstr(err.message, "attach stream"));
      assert_int_equal(allocations, 0);
      assert_int_equal(sink.out_len, 1);
      assert_memory_equal(sink.out, "x", 1);
      assert_int_equal(sink.err_len, 0);
    }
  }
  sink_free(&sink);
}

/* A frame of exactly the limit is accepted: only its header is fed. */
static void test_demux_length_at_limit(void **state)
{
  static const uint8_t header[] = {1, 0, 0, 0, 0x04, 0, 0, 0};
  struct http_demux demux = {0};
  struct sink sink;

  (void)state;
  sink_init(&sink, 16);
  feed_ok(&demux, &sink, header, sizeof(header));
  assert_false(http_demux_at_boundary(&demux));
  assert_int_equal(demux.remaining, HTTP_DEMUX_FRAME_MAX);
  assert_int_equal(sink.calls, 0);
  sink_free(&sink);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_demux_whole),
      cmocka_unit_test(test_demux_byte_at_a_time),
      cmocka_unit_test(test_demux_header_split_3_5),
      cmocka_unit_test(test_demux_split_every_boundary),
      cmocka_unit_test(test_demux_split_every_pair),
      cmocka_unit_test(test_demux_split_big_frame),
      cmocka_unit_test(test_demux_callback_stop),
      cmocka_unit_test(test_demux_stream_zero_is_stdout),
      cmocka_unit_test(test_demux_bad_header),
      cmocka_unit_test(test_demux_length_at_limit),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
