/* HTTP/1.1 client for the Engine API over a Unix socket or TCP, on the
 * io_uring loop: keep-alive pool, bounded headers and bodies, chunked
 * bodies, streamed bodies, and connection hijack for attach. */
#ifndef RBX_HTTP_H
#define RBX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/engine.h"
#include "engine/log.h"
#include "ringbox.h"

/* Bounds on what a daemon may send: going past one is an RBX_ERR_IO error,
 * never an unbounded allocation. */
#define HTTP_HEADERS_MAX (64 * 1024)
#define HTTP_BODY_MAX (8 * 1024 * 1024)
#define HTTP_RECV_CHUNK (16 * 1024)

/* Where the daemon listens. */
struct http_endpoint {
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char host_header[128]; /* value sent in Host */
  char url[512];         /* as given, for messages */
};

/* Parses unix:///path, unix:/path, /path, or tcp://IP:PORT (an IP literal
 * or "localhost": names are not looked up). Returns 0 or a negative code
 * with err filled (RBX_ERR_INVALID). */
int http_endpoint_parse(const char *url, struct http_endpoint *ep,
                        struct rbx_error *err);

struct http_call;
struct http_client;

struct http_response {
  int status;
  char *body;        /* whole body, NUL-terminated; NULL when streamed */
  size_t body_len;
  char content_type[128];
  /* Hijacked requests only: the connection, now owned by the callee of
   * done (close it), and bytes of the stream that came with the headers. */
  int fd;
  uint8_t *extra;
  size_t extra_len;
};

/* Receives a streamed body piece by piece (de-chunked). Return 0 to go on,
 * or a negative code to abort the call with an error. */
typedef int (*http_body_fn)(void *data, const char *buf, size_t len);

/* Called once when the response headers have arrived, before the body:
 * for a wait request this means the daemon has registered the wait. */
typedef void (*http_headers_fn)(void *data, int status);

/* Called once per call on the loop. On success err is NULL and resp holds
 * the answer (any status); resp and its body are valid only during the
 * call, except resp->fd which the callee then owns. On failure resp is NULL
 * and err says why. */
typedef void (*http_done_fn)(struct http_call *call,
                             struct http_response *resp,
                             const struct rbx_error *err, void *data);

struct http_request {
  const char *method;
  const char *target; /* path and query, already escaped */
  const char *content_type; /* with body */
  const void *body;
  size_t body_len;
  /* Attach-style: send Upgrade headers and, on 101 or a 200 with a raw
   * stream content type and no length, hand the socket over in resp. */
  bool hijack;
  /* Deliver the body of a 2xx answer through on_body instead of buffering
   * it (events); other answers are buffered for done as usual. */
  http_body_fn on_body;
  http_headers_fn on_headers;
  /* From the moment the request gets a connection to the last body byte;
   * 0: none. Time spent queued behind max_conns does not count. */
  uint64_t timeout_ms;
  /* Use a connection of its own outside the pool limit (long waits). */
  bool dedicated;
  /* Queue ahead of requests that are not urgent (in arrival order among
   * urgent ones): steps that finish work already started. */
  bool urgent;
};

/* Creates a client for ep on loop with at most max_conns pooled
 * connections (0: 8). Hijacked and dedicated calls open their own. */
int http_client_new(struct http_client **out, struct eng_loop *loop,
                    const struct http_endpoint *ep, unsigned max_conns,
                    const struct rbx_logger *log, struct rbx_error *err);

/* Cancels every call (their callbacks report RBX_ERR_CANCELLED), closes
 * idle connections, and frees the client once nothing is in flight; the
 * caller keeps running the loop until then. Accepts NULL. */
void http_client_close(struct http_client *client);

/* Queues a request. Strings and body are copied. Returns the call, or NULL
 * with err filled when it cannot be queued; done is then never called.
 * done is never called before this returns. */
struct http_call *http_request(struct http_client *client,
                               const struct http_request *req,
                               http_done_fn done, void *data,
                               struct rbx_error *err);

/* Stops a call; its done callback runs with RBX_ERR_CANCELLED unless it has
 * already run. */
void http_call_cancel(struct http_call *call);

/* Cancels a call only if it still waits in the client's queue, so the
 * daemon never saw it. Returns true when it was cancelled (its done
 * callback has then run with RBX_ERR_CANCELLED). */
bool http_call_cancel_queued(struct http_call *call);

/* Calls queued or in flight, and open connections. */
unsigned http_client_calls(const struct http_client *client);
unsigned http_client_connections(const struct http_client *client);

/* The Docker multiplexed stream: 8-byte frame headers (stream id, three
 * zero bytes, big-endian length) then the payload. Frames are passed on as
 * they arrive, in pieces, never buffered whole. */
#define HTTP_DEMUX_FRAME_MAX (64u * 1024 * 1024)

struct http_demux {
  uint8_t header[8];
  size_t header_len;
  uint32_t remaining;
  int stream;
};

/* Called with each piece of payload: stream 1 is stdout, 2 is stderr. A
 * nonzero return stops the feed and is returned by http_demux_feed. */
typedef int (*http_demux_fn)(void *data, int stream, const uint8_t *buf,
                             size_t len);

/* Feeds received bytes. Returns 0, a callback's nonzero return, or a
 * negative code with err filled when the stream is malformed (unknown
 * stream id, nonzero padding, a frame over HTTP_DEMUX_FRAME_MAX). */
int http_demux_feed(struct http_demux *demux, const uint8_t *buf, size_t len,
                    http_demux_fn fn, void *data, struct rbx_error *err);

/* True when no frame is half-read (the stream may end here cleanly). */
bool http_demux_at_boundary(const struct http_demux *demux);

/* Percent-escapes a string for a query value into out. Returns the length
 * or -ENAMETOOLONG. */
int http_query_escape(const char *in, char *out, size_t out_size);

/* Parses data as the response to a plain (or hijacked) request, fed to the
 * parser in pieces of `piece` bytes (0: whole), with the limits and
 * callbacks of a real call but no socket. Returns the status once a
 * response is complete or a stream was handed over, 0 when more bytes are
 * needed, or a negative code for an invalid response. For fuzz targets. */
int http_parse_response_bytes(const uint8_t *data, size_t len, bool hijack,
                              size_t piece);

#endif
