/* What every backend shares: the context, one execution's copied spec and
 * its result, output capture with limits, and the hooks a backend fills. */
#ifndef RBX_EXEC_H
#define RBX_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/log.h"
#include "ringbox.h"

struct rbx_exec;
struct rbx_context;

/* A backend: a runtime that can run executions on the context's loop. */
struct backend_ops {
  const char *name;
  /* Starts exec on the loop. Returns 0, or a negative code with err filled
   * (the execution then fails without its callback ever having been
   * promised). On success the backend must later call exec_finish once. */
  int (*start)(struct rbx_exec *exec, struct rbx_error *err);
  /* Stops exec early (kill, remove); exec_finish still follows. */
  void (*cancel)(struct rbx_exec *exec);
  /* Frees the backend's state on the context. */
  void (*free)(struct rbx_context *ctx);
  /* Counts removals still under way after their executions ended; NULL
   * for a backend that has none. */
  unsigned (*cleanups)(struct rbx_context *ctx);
};

struct rbx_context {
  struct eng_loop *loop;
  struct rbx_options opts;
  struct rbx_logger log;
  const struct backend_ops *backend;
  void *backend_state;
  char daemon_url[512];
  /* Executions waiting for a slot, in arrival order. */
  struct rbx_exec *queue_head, *queue_tail;
  /* Executions started and not finished. */
  struct rbx_exec *running;
  unsigned running_count;
  unsigned queued_count;
  struct eng_op pump_op; /* starts queued executions outside callbacks */
  bool pump_scheduled;
  bool shutting_down;
};

/* A deep copy of the spec, so the caller's memory may go after spawn. */
struct exec_spec {
  char **argv;
  char **env;
  char *workdir;
  uint8_t *stdin_data;
  size_t stdin_len;
  bool has_stdin;
  struct rbx_mount *mounts; /* sources resolved to real paths */
  size_t mounts_count;
  struct rbx_policy policy; /* strings point into `owned` */
  char **owned;             /* every string the copy allocated */
  size_t owned_count;
};

struct rbx_exec {
  struct rbx_context *ctx;
  rbx_done_fn done;
  void *userdata;
  struct exec_spec spec;
  struct rbx_result result;
  uint64_t seq;        /* per context, for names and logs */
  uint64_t start_ms;   /* when spawn was called */
  uint64_t deadline_ms; /* absolute, eng_now_ms clock; 0: none */
  bool started;
  bool cancelled;
  bool finished;
  struct rbx_exec *next, *prev;
  void *backend_data;
};

/* Appends bytes to one captured stream, keeping at most `limit` bytes in
 * total. Returns true when bytes were dropped (now or before). */
bool exec_output_append(struct rbx_output *out, uint64_t limit,
                        const uint8_t *buf, size_t len);

/* Ends an execution: calls the user's callback with the result (when err is
 * NULL) or the error, frees the execution and lets a queued one start. The
 * backend must have released all I/O of exec before calling this. */
void exec_finish(struct rbx_exec *exec, const struct rbx_error *err);

/* Validates and deep-copies spec into out, resolving mount sources. Returns
 * 0 or a negative code with err filled (RBX_ERR_POLICY for violations). */
int exec_spec_copy(struct exec_spec *out, const struct rbx_spec *spec,
                   struct rbx_error *err);
void exec_spec_free(struct exec_spec *spec);

/* Checks one mount source against the policy's roots and stores its
 * symlink-free path in resolved (PATH_MAX bytes). Returns 0 or a negative
 * code with err filled (RBX_ERR_POLICY). */
int policy_check_mount(const struct rbx_policy *policy,
                       const struct rbx_mount *mount, char *resolved,
                       struct rbx_error *err);

/* Checks the policy's own values (limits in range, names valid). */
int policy_validate(const struct rbx_policy *policy, struct rbx_error *err);

/* Backends. Each returns its ops, or NULL when not built in. */
const struct backend_ops *docker_backend_ops(void);
const struct backend_ops *host_backend_ops(void);

/* Backend set-up, called by rbx_context_new. */
int docker_backend_init(struct rbx_context *ctx, struct rbx_error *err);
int host_backend_init(struct rbx_context *ctx, struct rbx_error *err);

#endif
