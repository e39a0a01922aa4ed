/* `ringbox run`: one execution on a context of its own, its output
 * passed through byte for byte (or as one JSON object with --json) and its
 * end mapped to an exit status. */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether --json comes before the command, so that even a usage error is
 * reported as JSON. */
static bool wants_json(int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      return false;
    if (strcmp(argv[i], "--json") == 0)
      return true;
  }
  return false;
}

static int print_json(struct cli_buf *buf)
{
  if (buf->failed) {
    fputs("ringbox: out of memory while encoding the result\n", stderr);
    return -ENOMEM;
  }
  if (fwrite(buf->data, 1, buf->len, stdout) != buf->len ||
      fflush(stdout) != 0) {
    fprintf(stderr, "ringbox: cannot write the result: %s\n", strerror(errno));
    return -EIO;
  }
  return 0;
}

/* Reports an error before or instead of a result and returns 125. */
static int report_error(bool json, const char *kind, const char *message)
{
  if (json) {
    struct cli_buf buf = {0};

    cli_json_error(&buf, NULL, kind, message);
    print_json(&buf);
    cli_buf_free(&buf);
  } else {
    fprintf(stderr, "ringbox: %s: %s\n", kind, message);
  }
  return CLI_EXIT_FAILURE;
}

static int report_usage(bool json, const char *message)
{
  if (json)
    return report_error(true, "invalid", message);
  fprintf(stderr, "ringbox: %s\nSee 'ringbox run --help'.\n", message);
  return CLI_EXIT_FAILURE;
}

/* Reads all of standard input, up to CLI_STDIN_MAX bytes. */
static int read_stdin(uint8_t **data, size_t *len, char *msg, size_t size)
{
  size_t cap = 64 * 1024, used = 0;
  uint8_t *buf = malloc(cap);

  if (!buf)
    goto no_memory;
  for (;;) {
    ssize_t n;

    if (used == cap) {
      uint8_t *bigger;

      if (cap > CLI_STDIN_MAX) {
        snprintf(msg, size,
                 "standard input is larger than the -i limit of %zu MiB; "
                 "pass large data with --mount instead",
                 CLI_STDIN_MAX >> 20);
        free(buf);
        return -EFBIG;
      }
      cap = cap * 2 < CLI_STDIN_MAX + 1 ? cap * 2 : CLI_STDIN_MAX + 1;
      bigger = realloc(buf, cap);
      if (!bigger)
        goto no_memory;
      buf = bigger;
    }
    n = read(STDIN_FILENO, buf + used, cap - used);
    if (n == 0)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(msg, size, "cannot read standard input: %s", strerror(errno));
      free(buf);
      return -errno;
    }
    used += (size_t)n;
  }
  *data = buf;
  *len = used;
  return 0;

no_memory:
  free(buf);
  snprintf(msg, size, "out of memory while reading standard input");
  return -ENOMEM;
}

/* Returns false when the bytes could not all be written. */
static bool write_stream(FILE *out, const struct rbx_output *output)
{
  if (output->len > 0 && fwrite(output->data, 1, output->len, out) <
                             output->len)
    return false;
  return fflush(out) == 0;
}

static void note_truncation(const char *name, const struct rbx_output *out)
{
  if (!out->truncated)
    return;
  fprintf(stderr, "ringbox: %s truncated after %zu bytes (%llu dropped)\n",
          name, out->len, (unsigned long long)out->dropped);
}

/* Writes the command's output and notes, and returns the exit status
 * documented in docs/CLI.md. */
static int finish_plain(const struct cli_config *cfg,
                        const struct rbx_result *result)
{
  if (!write_stream(stdout, &result->out)) {
    fprintf(stderr, "ringbox: cannot write the command's stdout: %s\n",
            strerror(errno));
    return CLI_EXIT_FAILURE;
  }
  write_stream(stderr, &result->err);
  note_truncation("stdout", &result->out);
  note_truncation("stderr", &result->err);
  switch (result->end) {
  case RBX_END_EXITED:
  case RBX_END_SIGNALED:
    return result->exit_code & 0xff;
  case RBX_END_TIMED_OUT:
    fprintf(stderr,
            "ringbox: timed out after %g s (raise --timeout, or 0 for "
            "none)\n",
            (double)cfg->policy.timeout_ms / 1000);
    return CLI_EXIT_TIMEOUT;
  case RBX_END_OOM:
    fprintf(stderr, "ringbox: out of memory (limit %llu MiB)\n",
            (unsigned long long)cfg->policy.memory_mib);
    return CLI_EXIT_OOM;
  case RBX_END_OUTPUT_LIMIT:
    fprintf(stderr,
            "ringbox: command stopped at the output limit of %llu bytes "
            "(raise --output-limit)\n",
            (unsigned long long)cfg->policy.output_limit);
    return CLI_EXIT_OUTPUT_LIMIT;
  case RBX_END_CANCELLED:
    fputs("ringbox: cancelled\n", stderr);
    return CLI_EXIT_CANCELLED;
  }
  return CLI_EXIT_FAILURE;
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signo)
{
  stop_signal = signo;
}

/* SIGINT and SIGTERM stop the execution through the library, so its
 * container is killed and removed before ringbox exits. No SA_RESTART:
 * the signal must interrupt the wait in rbx_wait. */
static void catch_stop_signals(void)
{
  struct sigaction action;

  memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
}

struct run_outcome {
  struct rbx_result *result;
  struct rbx_error *err;
  bool failed;
};

static void on_done(struct rbx_exec *exec, const struct rbx_result *result,
                    const struct rbx_error *error, void *userdata)
{
  struct run_outcome *outcome = userdata;

  (void)exec;
  if (result) {
    rbx_result_move(outcome->result, result);
  } else {
    *outcome->err = *error;
    outcome->failed = true;
  }
}

/* rbx_run with signal handling: runs the one execution on a context of its
 * own and cancels it on SIGINT or SIGTERM. Returns 0 or a negative code with
 * err filled. */
static int run_one(struct cli_config *cfg, const struct rbx_spec *spec,
                   struct rbx_result *result, struct rbx_error *err)
{
  struct run_outcome outcome = {result, err, false};
  struct rbx_context *ctx;
  bool cancelled = false;
  int rc;

  /* A bad spec is reported before any daemon work (the start-up sweep). */
  rc = rbx_spec_check(spec, err);
  if (rc < 0)
    return rc;
  rc = rbx_context_new(&ctx, &cfg->opts, err);
  if (rc < 0)
    return rc;
  /* Warned only once the host runtime is known to be built in. */
  if (cfg->opts.runtime == RBX_RUNTIME_HOST)
    cli_warn_host_runtime();
  catch_stop_signals();
  rc = rbx_spawn(ctx, spec, on_done, &outcome, NULL, err);
  while (rc == 0 && rbx_pending(ctx) > 0) {
    if (stop_signal && !cancelled) {
      rbx_cancel_all(ctx);
      cancelled = true;
    }
    rc = rbx_wait(ctx);
    if (rc > 0 || rc == -EINTR)
      rc = 0;
  }
  rbx_context_free(ctx);
  if (rc < 0)
    return rc;
  if (!outcome.failed)
    return 0;
  return err->code < 0 ? err->code : -EIO;
}

static int execute(struct cli_config *cfg)
{
  struct rbx_spec spec = {0};
  struct rbx_result result;
  struct rbx_error err = {0};
  uint8_t *stdin_data = NULL;
  char msg[CLI_MESSAGE_MAX];
  int rc, status;

  if (cfg->pass_stdin) {
    rc = read_stdin(&stdin_data, &spec.stdin_len, msg, sizeof(msg));
    if (rc < 0)
      return report_error(cfg->json, "invalid", msg);
    spec.stdin_data = stdin_data;
  }
  spec.argv = (const char *const *)cfg->command;
  spec.env = cfg->env.count ? (const char *const *)cfg->env.items : NULL;
  spec.workdir = cfg->workdir;
  spec.mounts = cfg->mounts;
  spec.mounts_count = cfg->mounts_count;
  spec.policy = &cfg->policy;
  memset(&result, 0, sizeof(result));
  rc = run_one(cfg, &spec, &result, &err);
  free(stdin_data);
  if (rc < 0 && err.kind == RBX_ERR_CANCELLED && stop_signal)
    return 128 + stop_signal;
  if (rc < 0)
    return report_error(cfg->json, rbx_error_kind_name(err.kind),
                        err.message[0] ? err.message : strerror(-rc));
  if (result.end == RBX_END_CANCELLED && stop_signal && !cfg->json) {
    rbx_result_clear(&result);
    return 128 + stop_signal;
  }
  if (cfg->json) {
    struct cli_buf buf = {0};

    cli_json_result(&buf, NULL, &result);
    status = print_json(&buf) < 0 ? CLI_EXIT_FAILURE : 0;
    cli_buf_free(&buf);
  } else {
    status = finish_plain(cfg, &result);
  }
  rbx_result_clear(&result);
  return status;
}

int cli_run_main(int argc, char **argv)
{
  struct cli_config cfg;
  char msg[CLI_MESSAGE_MAX];
  int status;

  cli_config_init(&cfg);
  if (cli_parse_args(&cfg, CLI_MODE_RUN, argc, argv, msg, sizeof(msg)) < 0) {
    status = report_usage(wants_json(argc, argv), msg);
  } else if (cfg.help) {
    cli_print_run_help(stdout);
    status = 0;
  } else {
    /* The command is the tail of our own argv, so it ends with NULL. */
    cli_apply_verbosity(&cfg.opts, cfg.verbosity);
    status = execute(&cfg);
  }
  cli_config_free(&cfg);
  return status;
}
