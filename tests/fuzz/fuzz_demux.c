/* libFuzzer target: bytes as an attach stream, fed to the demultiplexer in
 * reads whose size the first byte picks. Payload may never exceed the input
 * and must come only on stdout or stderr. */
#include <stdint.h>
#include <stdlib.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct totals {
  size_t payload;
};

static int on_piece(void *data, int stream, const uint8_t *buf, size_t len)
{
  struct totals *totals = data;

  if (stream != 1 && stream != 2)
    abort();
  if (len && !buf)
    abort();
  totals->payload += len;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct http_demux demux = {0};
  struct totals totals = {0};
  struct rbx_error err;
  size_t piece;
  int rc = 0;

  if (size < 1)
    return 0;
  piece = data[0] ? data[0] : size;
  data++;
  size--;
  for (size_t at = 0; at < size && rc == 0; at += piece) {
    size_t n = piece < size - at ? piece : size - at;

    rc = http_demux_feed(&demux, data + at, n, on_piece, &totals, &err);
  }
  if (rc > 0 || totals.payload > size)
    abort();
  if (rc < 0 && err.kind != RBX_ERR_IO)
    abort();
  return 0;
}
