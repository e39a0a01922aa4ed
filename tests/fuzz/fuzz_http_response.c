/* libFuzzer target: bytes as a daemon's response, parsed with the client's
 * own llhttp settings and limits. The first byte picks a plain or hijacked
 * request and how the rest is split into reads. */
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  bool hijack;
  size_t piece;

  if (size < 1)
    return 0;
  hijack = data[0] & 1;
  piece = data[0] >> 1; /* 0: whole, else 1 to 127 bytes per read */
  http_parse_response_bytes(data + 1, size - 1, hijack, piece);
  return 0;
}
