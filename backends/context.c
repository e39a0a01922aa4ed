/* The context: one loop, one backend, and the queue that keeps at most
 * max_in_flight executions running while the rest wait in arrival order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backends/exec.h"
#include "engine/error.h"

static void schedule_pump(struct rbx_context *ctx);

const char *rbx_end_name(enum rbx_end end)
{
  switch (end) {
  case RBX_END_EXITED:
    return "exited";
  case RBX_END_TIMED_OUT:
    return "timed_out";
  case RBX_END_OOM:
    return "oom";
  case RBX_END_OUTPUT_LIMIT:
    return "output_limit";
  case RBX_END_SIGNALED:
    return "signaled";
  case RBX_END_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

void rbx_result_clear(struct rbx_result *result)
{
  if (!result)
    return;
  free(result->out.data);
  free(result->err.data);
  result->out.data = result->err.data = NULL;
  result->out.len = result->err.len = 0;
}

void rbx_result_move(struct rbx_result *dst, const struct rbx_result *src)
{
  struct rbx_result *owned = (struct rbx_result *)src;

  *dst = *src;
  owned->out.data = owned->err.data = NULL;
  owned->out.len = owned->err.len = 0;
}

static void list_remove(struct rbx_exec **head, struct rbx_exec **tail,
                        struct rbx_exec *exec)
{
  if (exec->prev)
    exec->prev->next = exec->next;
  else
    *head = exec->next;
  if (exec->next)
    exec->next->prev = exec->prev;
  else if (tail)
    *tail = exec->prev;
  exec->next = exec->prev = NULL;
}

static void free_exec(struct rbx_exec *exec)
{
  rbx_result_clear(&exec->result);
  exec_spec_free(&exec->spec);
  free(exec);
}

void exec_finish(struct rbx_exec *exec, const struct rbx_error *err)
{
  struct rbx_context *ctx = exec->ctx;

  if (exec->finished)
    return;
  exec->finished = true;
  if (exec->started) {
    list_remove(&ctx->running, NULL, exec);
    ctx->running_count--;
  }
  if (!err && exec->result.wall_ms == 0)
    exec->result.wall_ms = eng_now_ms() - exec->start_ms;
  rbx_log(&ctx->log, err ? RBX_LOG_INFO : RBX_LOG_DEBUG,
          "execution finished exec=%llu id=%.12s end=%s exit_code=%d "
          "wall_ms=%llu%s%s",
          (unsigned long long)exec->seq, exec->result.id,
          err ? "error" : rbx_end_name(exec->result.end),
          exec->result.exit_code, (unsigned long long)exec->result.wall_ms,
          err ? " error=" : "", err ? err->message : "");
  exec->done(exec, err ? NULL : &exec->result, err, exec->userdata);
  free_exec(exec);
  schedule_pump(ctx);
}

static void fail_queued(struct rbx_exec *exec, enum rbx_error_kind kind,
                        const char *message)
{
  struct rbx_error err;

  rbx_err_set(&err, kind, kind == RBX_ERR_CANCELLED ? -ECANCELED : -EIO,
              "%s", message);
  exec_finish(exec, &err);
}

static void pump(struct rbx_context *ctx)
{
  while (ctx->queue_head &&
         (ctx->running_count < ctx->opts.max_in_flight ||
          ctx->queue_head->cancelled)) {
    struct rbx_exec *exec = ctx->queue_head;
    struct rbx_error err;

    list_remove(&ctx->queue_head, &ctx->queue_tail, exec);
    ctx->queued_count--;
    if (exec->cancelled) {
      fail_queued(exec, RBX_ERR_CANCELLED,
                  "execution cancelled before it started");
      continue;
    }
    exec->started = true;
    exec->next = ctx->running;
    if (ctx->running)
      ctx->running->prev = exec;
    ctx->running = exec;
    ctx->running_count++;
    rbx_err_clear(&err);
    if (ctx->backend->start(exec, &err) < 0)
      exec_finish(exec, &err);
  }
}

static void on_pump(struct eng_op *op, int res)
{
  struct rbx_context *ctx = op->data;

  (void)res;
  ctx->pump_scheduled = false;
  pump(ctx);
}

static void schedule_pump(struct rbx_context *ctx)
{
  if (ctx->pump_scheduled || !ctx->queue_head)
    return;
  if (eng_defer(&ctx->pump_op) == 0)
    ctx->pump_scheduled = true;
}

int rbx_context_new(struct rbx_context **out, const struct rbx_options *opts,
                    struct rbx_error *err)
{
  struct rbx_context *ctx = calloc(1, sizeof(*ctx));
  struct rbx_options defaults;
  int rc;

  if (!ctx)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  rbx_options_init(&defaults);
  ctx->opts = opts ? *opts : defaults;
  if (!ctx->opts.max_in_flight)
    ctx->opts.max_in_flight = defaults.max_in_flight;
  if (!ctx->opts.max_connections)
    ctx->opts.max_connections = defaults.max_connections;
  if (!ctx->opts.ring_entries)
    ctx->opts.ring_entries = defaults.ring_entries;
  if (!ctx->opts.holder_pool_max)
    ctx->opts.holder_pool_max = defaults.holder_pool_max;
  ctx->log.fn = ctx->opts.log_fn;
  ctx->log.userdata = ctx->opts.log_userdata;
  ctx->log.level = ctx->opts.log_level;

  rc = eng_loop_new(&ctx->loop, ctx->opts.ring_entries, err);
  if (rc < 0) {
    free(ctx);
    return rc;
  }
  eng_op_init(&ctx->pump_op, ctx->loop, on_pump, ctx);
  if (ctx->opts.runtime == RBX_RUNTIME_HOST)
    rc = host_backend_init(ctx, err);
  else
    rc = docker_backend_init(ctx, err);
  if (rc < 0) {
    eng_loop_free(ctx->loop);
    free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

void rbx_cancel(struct rbx_exec *exec)
{
  struct rbx_context *ctx = exec->ctx;

  if (exec->finished || exec->cancelled)
    return;
  exec->cancelled = true;
  if (!exec->started) {
    /* Queued: the pump reports it outside the caller's stack. */
    if (ctx->queue_head != exec) {
      list_remove(&ctx->queue_head, &ctx->queue_tail, exec);
      exec->next = ctx->queue_head;
      if (ctx->queue_head)
        ctx->queue_head->prev = exec;
      else
        ctx->queue_tail = exec;
      ctx->queue_head = exec;
    }
    schedule_pump(ctx);
    return;
  }
  ctx->backend->cancel(exec);
}

void rbx_cancel_all(struct rbx_context *ctx)
{
  struct rbx_exec *exec = ctx->queue_head;

  while (exec) {
    exec->cancelled = true;
    exec = exec->next;
  }
  schedule_pump(ctx);
  exec = ctx->running;
  while (exec) {
    struct rbx_exec *next = exec->next;

    if (!exec->cancelled) {
      exec->cancelled = true;
      ctx->backend->cancel(exec);
    }
    exec = next;
  }
}

void rbx_context_free(struct rbx_context *ctx)
{
  if (!ctx)
    return;
  ctx->shutting_down = true;
  rbx_cancel_all(ctx);
  while (rbx_pending(ctx) > 0 || ctx->pump_op.in_flight) {
    if (eng_run_once(ctx->loop, true) < 0)
      break;
  }
  ctx->backend->free(ctx);
  eng_loop_free(ctx->loop);
  free(ctx);
}

int rbx_spec_check(const struct rbx_spec *spec, struct rbx_error *err)
{
  struct exec_spec copy;
  int rc;

  if (!spec)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL, "spec is required");
  rc = exec_spec_copy(&copy, spec, err);
  if (rc < 0)
    return rc;
  rc = policy_validate(&copy.policy, err);
  exec_spec_free(&copy);
  return rc;
}

int rbx_spawn(struct rbx_context *ctx, const struct rbx_spec *spec,
              rbx_done_fn done, void *userdata, struct rbx_exec **exec_out,
              struct rbx_error *err)
{
  static uint64_t next_seq;
  struct rbx_exec *exec;
  int rc;

  if (!ctx || !spec || !done)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "rbx_spawn: context, spec and callback are required");
  if (ctx->shutting_down)
    return rbx_err_set(err, RBX_ERR_CANCELLED, -ECANCELED,
                       "the context is shutting down");
  exec = calloc(1, sizeof(*exec));
  if (!exec)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  rc = exec_spec_copy(&exec->spec, spec, err);
  if (rc < 0) {
    free(exec);
    return rc;
  }
  rc = policy_validate(&exec->spec.policy, err);
  if (rc < 0) {
    exec_spec_free(&exec->spec);
    free(exec);
    return rc;
  }
  exec->ctx = ctx;
  exec->done = done;
  exec->userdata = userdata;
  exec->seq = ++next_seq;
  exec->start_ms = eng_now_ms();
  if (exec->spec.policy.timeout_ms)
    exec->deadline_ms = exec->start_ms + exec->spec.policy.timeout_ms;
  exec->prev = ctx->queue_tail;
  if (ctx->queue_tail)
    ctx->queue_tail->next = exec;
  else
    ctx->queue_head = exec;
  ctx->queue_tail = exec;
  ctx->queued_count++;
  schedule_pump(ctx);
  if (exec_out)
    *exec_out = exec;
  return 0;
}

unsigned rbx_pending(struct rbx_context *ctx)
{
  return ctx->queued_count + ctx->running_count;
}

unsigned rbx_cleanups_pending(struct rbx_context *ctx)
{
  return ctx->backend->cleanups ? ctx->backend->cleanups(ctx) : 0;
}

int rbx_run_loop(struct rbx_context *ctx)
{
  while (rbx_pending(ctx) > 0) {
    int rc = eng_run_once(ctx->loop, true);

    if (rc < 0)
      return rc;
  }
  return 0;
}

int rbx_fd(struct rbx_context *ctx)
{
  return eng_ring_fd(ctx->loop);
}

int rbx_process(struct rbx_context *ctx)
{
  return eng_run_once(ctx->loop, false);
}

int rbx_wait(struct rbx_context *ctx)
{
  int rc = eng_run_once(ctx->loop, true);

  if (rc == 0 && eng_interrupted(ctx->loop))
    return -EINTR;
  return rc;
}

struct run_state {
  struct rbx_result *result;
  struct rbx_error *err;
  int rc;
};

static void on_run_done(struct rbx_exec *exec, const struct rbx_result *result,
                        const struct rbx_error *error, void *userdata)
{
  struct run_state *state = userdata;

  (void)exec;
  if (result) {
    rbx_result_move(state->result, result);
    state->rc = 0;
  } else {
    if (state->err)
      *state->err = *error;
    state->rc = error->code < 0 ? error->code : -EIO;
  }
}

int rbx_run(const struct rbx_options *opts, const struct rbx_spec *spec,
            struct rbx_result *result, struct rbx_error *err)
{
  struct rbx_context *ctx;
  struct run_state state = {result, err, -EIO};
  int rc;

  memset(result, 0, sizeof(*result));
  rc = rbx_context_new(&ctx, opts, err);
  if (rc < 0)
    return rc;
  rc = rbx_spawn(ctx, spec, on_run_done, &state, NULL, err);
  if (rc < 0) {
    rbx_context_free(ctx);
    return rc;
  }
  rc = rbx_run_loop(ctx);
  rbx_context_free(ctx);
  if (rc < 0)
    return rbx_err_set(err, RBX_ERR_IO, rc, "io_uring loop failed: %s",
                       strerror(-rc));
  return state.rc;
}

long rbx_raise_fd_limit(void)
{
  struct rlimit limit;

  if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
    return -errno;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
      return -errno;
  }
  return (long)limit.rlim_cur;
}
