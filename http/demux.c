/* The Docker multiplexed attach stream, decoded incrementally: a frame may
 * be split anywhere, and payload is passed on as it arrives. */
#include <errno.h>
#include <string.h>

#include "engine/error.h"
#include "http/http.h"

int http_demux_feed(struct http_demux *demux, const uint8_t *buf, size_t len,
                    http_demux_fn fn, void *data, struct rbx_error *err)
{
  while (len > 0) {
    if (demux->remaining == 0) {
      size_t want = sizeof(demux->header) - demux->header_len;
      size_t take = len < want ? len : want;

      memcpy(demux->header + demux->header_len, buf, take);
      demux->header_len += take;
      buf += take;
      len -= take;
      if (demux->header_len < sizeof(demux->header))
        return 0;
      demux->header_len = 0;

      const uint8_t *h = demux->header;
      uint32_t size = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
                      (uint32_t)h[6] << 8 | (uint32_t)h[7];

      if (h[0] > 2 || h[1] || h[2] || h[3])
        return rbx_err_set(err, RBX_ERR_IO, -EPROTO,
                           "attach stream: invalid frame header "
                           "%02x %02x %02x %02x; the daemon sent bytes that "
                           "are not a multiplexed stream",
                           h[0], h[1], h[2], h[3]);
      if (size > HTTP_DEMUX_FRAME_MAX)
        return rbx_err_set(err, RBX_ERR_IO, -EMSGSIZE,
                           "attach stream: frame of %u bytes is over the "
                           "limit of %u",
                           size, HTTP_DEMUX_FRAME_MAX);
      demux->stream = h[0] == 0 ? 1 : h[0];
      demux->remaining = size;
      continue;
    }

    size_t take = len < demux->remaining ? len : demux->remaining;
    int rc = fn(data, demux->stream, buf, take);

    demux->remaining -= (uint32_t)take;
    buf += take;
    len -= take;
    if (rc)
      return rc;
  }
  return 0;
}

bool http_demux_at_boundary(const struct http_demux *demux)
{
  return demux->remaining == 0 && demux->header_len == 0;
}
