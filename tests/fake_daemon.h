/* A scripted fake Engine API daemon for tests: it listens on a Unix socket in
 * a temporary folder, answers each request with the timed writes of the
 * first route that matches its request line, and records what it received.
 * It runs on threads of its own, one per connection. */
#ifndef RBX_TEST_FAKE_DAEMON_H
#define RBX_TEST_FAKE_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#define FAKE_WRITES_MAX 8
#define FAKE_ROUTES_MAX 32
#define FAKE_REQUESTS_MAX 128
#define FAKE_CONNS_MAX 128
/* Bytes kept of one request, head and body together. */
#define FAKE_REQUEST_BYTES_MAX (256 * 1024)

/* What a connection does once a route's writes are sent. */
enum fake_after {
  FAKE_KEEP = 0, /* read the next request on the same connection */
  FAKE_CLOSE,    /* close the connection */
  FAKE_HOLD,     /* read and discard until the client closes or stop */
};

/* One write of an answer. */
struct fake_write {
  const void *data;       /* borrowed: must live until fake_daemon_stop */
  size_t len;             /* 0: strlen(data) */
  unsigned delay_ms;      /* pause before the write */
  unsigned byte_delay_ms; /* nonzero: send one byte at a time, this apart */
  /* Name of a route that must have been requested before this write
   * starts (waits up to 10 s); NULL: none. */
  const char *await;
};

/* A route: requests whose method and target match get its writes. The
 * target is matched without a leading /vN.NN version; `path` must match a
 * prefix of it, and `*` in `path` matches any run of characters other than
 * '/' and '?'. */
struct fake_route {
  const char *name;   /* for await and look-ups; NULL: path */
  const char *method; /* NULL: any */
  const char *path;
  unsigned max_hits; /* 0: any number; else the route is used that often */
  struct fake_write writes[FAKE_WRITES_MAX];
  enum fake_after after;
};

/* A request as received. raw stays valid until fake_daemon_stop. */
struct fake_request {
  char method[16];
  char target[512];
  const char *raw; /* head, then the Content-Length body */
  size_t raw_len;
  size_t head_len;  /* up to and with the blank line */
  size_t extra_len; /* bytes after the body that came before the answer */
  int route;        /* index in the route table, or -1 when unmatched */
  unsigned conn;    /* 1 for the first accepted connection, and so on */
  unsigned seq;     /* order among all requests and writes */
};

struct fake_daemon;

/* Creates a temporary folder with a socket in it and starts serving routes
 * (copied; the data they point to is borrowed). Unmatched requests get a
 * 404 with a JSON message. Returns 0 or a negative errno. */
int fake_daemon_start(struct fake_daemon **out, const struct fake_route *routes,
                      size_t count);

/* Stops every thread, closes every connection and removes the folder.
 * Accepts NULL. */
void fake_daemon_stop(struct fake_daemon *fd);

/* "unix:///tmp/.../docker.sock" and the bare path. */
const char *fake_daemon_url(const struct fake_daemon *fd);
const char *fake_daemon_path(const struct fake_daemon *fd);

unsigned fake_daemon_accepts(struct fake_daemon *fd);
/* Connections that have ended (closed by either side). */
unsigned fake_daemon_closed(struct fake_daemon *fd);
unsigned fake_daemon_unmatched(struct fake_daemon *fd);
unsigned fake_daemon_request_count(struct fake_daemon *fd);

/* Copies request i (in arrival order) into out. Returns false when there
 * is no such request. */
bool fake_daemon_request(struct fake_daemon *fd, unsigned i,
                         struct fake_request *out);

/* Finds the nth (from 0) request served by the route named name. Returns
 * false when there is none. */
bool fake_daemon_find(struct fake_daemon *fd, const char *name, unsigned nth,
                      struct fake_request *out);

/* How many requests the route named name has served. */
unsigned fake_daemon_hits(struct fake_daemon *fd, const char *name);

/* The event number taken just before the route's first answer began write
 * `index`, or 0 when that write has not started. */
unsigned fake_daemon_write_seq(struct fake_daemon *fd, const char *name,
                               unsigned index);

/* Blocks until at least n connections have ended, for up to timeout_ms.
 * Returns true when they have. */
bool fake_daemon_wait_closed(struct fake_daemon *fd, unsigned n,
                             unsigned timeout_ms);

/* Finds a header in a raw request head, case-insensitively. Copies its value
 * (trimmed) into value and returns true when present. */
bool fake_header(const struct fake_request *req, const char *name, char *value,
                 size_t size);

#endif
