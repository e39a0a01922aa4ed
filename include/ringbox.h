/* ringbox: run untrusted tool commands in short-lived, locked-down
 * containers, many at once, from one thread driven by io_uring. */
#ifndef RINGBOX_H
#define RINGBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RBX_ERROR_MESSAGE_MAX 512

enum rbx_error_kind {
  RBX_ERR_NONE = 0,
  RBX_ERR_INVALID,     /* a bad argument or spec from the caller */
  RBX_ERR_POLICY,      /* the spec breaks the policy; nothing reached the daemon */
  RBX_ERR_DAEMON,      /* the daemon refused or failed; message has its words */
  RBX_ERR_TIMEOUT,     /* a request to the daemon ran past its deadline */
  RBX_ERR_UNAVAILABLE, /* the runtime, daemon or io_uring cannot be used */
  RBX_ERR_IO,          /* a socket or pipe failed, or the peer sent garbage */
  RBX_ERR_CANCELLED,   /* stopped by rbx_cancel or context shutdown */
};

/* An error: a kind, a negative errno-style code where one applies (or 0),
 * and a readable message that states what failed and what to do. */
struct rbx_error {
  enum rbx_error_kind kind;
  int code;
  char message[RBX_ERROR_MESSAGE_MAX];
};

/* Returns a fixed lower-case name for an error kind ("policy", "daemon"...). */
const char *rbx_error_kind_name(enum rbx_error_kind kind);

enum rbx_log_level {
  RBX_LOG_ERROR = 0,
  RBX_LOG_WARN,
  RBX_LOG_INFO,
  RBX_LOG_DEBUG,
};

/* A log sink. The line is lower-case text followed by key=value fields, with
 * no trailing newline; it is valid only during the call. */
typedef void (*rbx_log_fn)(enum rbx_log_level level, const char *line,
                           void *userdata);

enum rbx_runtime {
  RBX_RUNTIME_DOCKER = 0,
  RBX_RUNTIME_PODMAN,
  RBX_RUNTIME_HOST, /* UNSAFE: no isolation; only with -Dunsafe_host=true */
};

enum rbx_network {
  RBX_NET_NONE = 0, /* loopback only */
  RBX_NET_FULL,     /* the engine's default bridge */
  RBX_NET_LIMITED,  /* HTTP(S) to allowed hosts only, through a proxy */
};

/* Options of a context: which daemon, how much at once, and logging. Zeroed
 * fields take the defaults that rbx_options_init sets. */
struct rbx_options {
  enum rbx_runtime runtime;
  const char *daemon_url;  /* unix:///path or tcp://127.0.0.1:port; NULL:
                              DOCKER_HOST or the runtime's default socket */
  unsigned max_in_flight;  /* executions running at once; others queue */
  unsigned max_connections; /* connections to the daemon for short requests */
  unsigned ring_entries;   /* io_uring submission queue size */
  bool no_startup_sweep;   /* skip removing objects of dead owners at start */
  bool no_holder_pool;     /* create a network namespace per execution
                              instead of lending pooled loopback holders */
  unsigned holder_pool_max; /* network holders in all, lent or idle
                               (default 32); executions past it get a
                               namespace of their own */
  bool no_events_stream;   /* one wait request per execution instead of
                              exits read from one /events stream */
  rbx_log_fn log_fn;
  void *log_userdata;
  enum rbx_log_level log_level;
};

void rbx_options_init(struct rbx_options *opts);

/* A bind mount from the host into the sandbox. */
struct rbx_mount {
  const char *source; /* absolute host path inside an allowed root */
  const char *target; /* absolute path in the container */
  bool read_only;
};

/* What an execution may do and use. rbx_policy_init fills in the reference
 * defaults; strings are borrowed and must outlive rbx_spawn's return. */
struct rbx_policy {
  const char *image;          /* default "ringbox-tools:<version>" */
  enum rbx_network network;   /* default none */
  double cpus;                /* default 2 */
  uint64_t memory_mib;        /* default 1024 */
  int64_t pids_limit;         /* default 256 */
  bool writable_root;         /* default false: read-only root filesystem */
  const char *user;           /* default "65534:65534"; "" keeps the image's */
  bool keep_capabilities;     /* default false: all capabilities dropped */
  bool allow_new_privileges;  /* default false: no-new-privileges set */
  uint64_t tmp_size_mib;      /* /tmp tmpfs size on a read-only root; 64 */
  uint64_t nofile_limit;      /* open files; default 1024 */
  uint64_t timeout_ms;        /* default 30000; 0 means none */
  uint64_t output_limit;      /* bytes kept per stream; default 16 MiB */
  const char *workspace_root; /* mounts may come from here ... */
  const char *const *allowed_roots; /* ... or from one of these */
  size_t allowed_roots_count;
  /* Limited network only. */
  const char *const *allow_hosts; /* "pypi.org", "*.example.com" */
  size_t allow_hosts_count;
  const char *proxy_image;    /* default "ringbox-proxy:<version>" */
  uint16_t proxy_port;        /* default 3128 */
  const char *proxy_name;     /* a shared long-lived proxy; NULL: one each */
  const char *egress_network; /* default "bridge" */
};

void rbx_policy_init(struct rbx_policy *policy);

/* One execution request. Every pointer is borrowed until rbx_spawn returns;
 * the library copies what it keeps. */
struct rbx_spec {
  const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH */
  const char *const *env;  /* "KEY=VALUE" entries, NULL-terminated or NULL */
  const char *workdir;     /* NULL: the image's */
  const uint8_t *stdin_data; /* NULL: no stdin (the command sees EOF) */
  size_t stdin_len;
  const struct rbx_mount *mounts;
  size_t mounts_count;
  const struct rbx_policy *policy; /* NULL: rbx_policy_init defaults */
};

enum rbx_end {
  RBX_END_EXITED = 0,   /* the command exited with exit_code */
  RBX_END_TIMED_OUT,    /* killed at the deadline */
  RBX_END_OOM,          /* killed because memory ran out */
  RBX_END_OUTPUT_LIMIT, /* stopped because a stream passed output_limit */
  RBX_END_SIGNALED,     /* killed by a signal it did not get from us */
  RBX_END_CANCELLED,    /* stopped by rbx_cancel or shutdown */
};

const char *rbx_end_name(enum rbx_end end);

/* Captured bytes of one stream: may hold NUL and invalid UTF-8. */
struct rbx_output {
  uint8_t *data;
  size_t len;
  uint64_t dropped; /* bytes past the limit that were not kept */
  bool truncated;
};

/* The result of an execution. Owned by the library during the completion
 * callback; rbx_result_move takes the buffers over. */
struct rbx_result {
  enum rbx_end end;
  int exit_code;   /* the command's status; 128+n when killed by signal n */
  int signal;      /* the signal for RBX_END_SIGNALED, else 0 */
  struct rbx_output out;
  struct rbx_output err;
  uint64_t wall_ms; /* from spawn to the command's exit */
  char id[72];      /* container id (or host pid) */
};

/* Frees the buffers of a result that the caller owns. Accepts NULL. */
void rbx_result_clear(struct rbx_result *result);

/* Takes over the buffers of the result passed to a completion callback:
 * *dst becomes the caller's (free with rbx_result_clear) and src is left
 * without buffers. Only valid inside that callback. */
void rbx_result_move(struct rbx_result *dst, const struct rbx_result *src);

struct rbx_context;
struct rbx_exec;

/* Called once per execution on the context's loop. Exactly one of result
 * and error is non-NULL. Both are valid only during the call. */
typedef void (*rbx_done_fn)(struct rbx_exec *exec,
                            const struct rbx_result *result,
                            const struct rbx_error *error, void *userdata);

/* Creates a context: an io_uring loop and a backend. Returns 0, or a
 * negative code with err filled (RBX_ERR_UNAVAILABLE when io_uring or the
 * daemon cannot be used). Free with rbx_context_free. */
int rbx_context_new(struct rbx_context **out, const struct rbx_options *opts,
                    struct rbx_error *err);

/* Cancels what is in flight, removes every object this context created,
 * waits (bounded) for that to finish, and frees the context. Accepts NULL.
 * Must not be called from inside a callback. */
void rbx_context_free(struct rbx_context *ctx);

/* Checks a spec and its policy as rbx_spawn would, without a context or a
 * daemon: bad arguments, policy values and mounts are reported at once.
 * Returns 0, or a negative code with err filled. */
int rbx_spec_check(const struct rbx_spec *spec, struct rbx_error *err);

/* Validates the spec against its policy and queues the execution. Returns 0
 * and calls done later on the loop, or a negative code with err filled (the
 * callback is then never called). *exec_out, when not NULL, receives a
 * handle valid until the callback returns. */
int rbx_spawn(struct rbx_context *ctx, const struct rbx_spec *spec,
              rbx_done_fn done, void *userdata, struct rbx_exec **exec_out,
              struct rbx_error *err);

/* Stops an execution: it is killed and removed, and its callback reports
 * RBX_END_CANCELLED (or an error if it never started). */
void rbx_cancel(struct rbx_exec *exec);

/* Cancels every execution, queued or running. */
void rbx_cancel_all(struct rbx_context *ctx);

/* Runs the loop until no execution is queued or in flight. Returns 0 or a
 * negative code if the loop itself failed. */
int rbx_run_loop(struct rbx_context *ctx);

/* For a caller's own loop: a file descriptor that becomes readable when
 * rbx_process has work, and the call that does that work without blocking.
 * rbx_process returns the number of completions handled. */
int rbx_fd(struct rbx_context *ctx);
int rbx_process(struct rbx_context *ctx);

/* Blocks until at least one completion arrives (or a signal interrupts
 * the wait) and handles what is ready. Returns the number of completions
 * handled, or a negative code (-EINTR after a signal). */
int rbx_wait(struct rbx_context *ctx);

/* Executions queued or in flight. */
unsigned rbx_pending(struct rbx_context *ctx);

/* Counts removals still under way after their executions ended. Network
 * holders return to the pool once it is 0, so a caller that times
 * something runs the loop until then. */
unsigned rbx_cleanups_pending(struct rbx_context *ctx);

/* Runs one execution to the end on a private context and fills *result
 * (free with rbx_result_clear). Returns 0, or a negative code with err
 * filled. opts may be NULL. */
int rbx_run(const struct rbx_options *opts, const struct rbx_spec *spec,
            struct rbx_result *result, struct rbx_error *err);

/* Raises this process's soft limit on open files to its hard limit: each
 * execution in flight holds a socket to the daemon, so a program running
 * hundreds at once needs more than the common default of 1024. Returns the
 * new soft limit, or a negative errno. The library never calls it itself. */
long rbx_raise_fd_limit(void);

/* Removes containers and networks of ringbox owners that are gone or past
 * their deadline. Returns the number of objects removed, or a negative code
 * with err filled. Blocking: not for use inside a callback. */
int rbx_gc(struct rbx_context *ctx, struct rbx_error *err);

#ifdef __cplusplus
}
#endif

#endif
