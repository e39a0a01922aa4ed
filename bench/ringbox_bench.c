/* ringbox-bench: runs the same one-shot sandboxed executions as the peer
 * benchmarks (docker CLI, docker-py, dockerode) through ringbox's async
 * API, checks every result byte for byte and prints one JSON line with the
 * same fields as the peers. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ringbox.h"

#define FIRST_ERROR_MAX 400
#define PROGRESS_INTERVAL_MS 250
/* After the deadline, cancelled executions get this long to report. */
#define CANCEL_GRACE_MS 30000

struct bench_args {
  unsigned n;
  unsigned concurrency;
  unsigned warmup;
  const char *image;
  const char *expect;
  const char *expect_stderr;
  int expect_exit;
  double deadline_s;
  enum rbx_runtime runtime;
  const char *daemon_url;
  bool no_holder_pool;
  int verbosity;
  char **cmd;
};

struct bench {
  const struct bench_args *args;
  struct rbx_context *ctx;
  struct rbx_policy policy;
  struct rbx_spec spec;
  char *want_out, *want_err;
  size_t want_out_len, want_err_len;
  bool timed_phase; /* false during warm-up */
  unsigned warm_limit; /* executions the current warm-up step may start */
  bool warm_burst;     /* the warm-up step starts them all at once */
  bool stop_launching;
  unsigned launched, finished, in_flight;
  unsigned ok, errors;
  double *latencies_ms; /* of verified executions */
  char first_error[FIRST_ERROR_MAX + 1];
};

struct pending {
  struct bench *bench;
  double started_ms;
};

static double now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
  va_list ap;

  fputs("ringbox-bench: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n", stderr);
  exit(2);
}

static void print_help(void)
{
  fputs("Usage: ringbox-bench [--n 200] [--concurrency 8] [--warmup 2]\n"
        "         [--image sbx-busybox:latest] [--expect 'hello\\n'] "
        "[--expect-stderr '']\n"
        "         [--expect-exit 0] [--deadline-s 600] [--runtime "
        "docker|podman]\n"
        "         [--host URL] [--no-holder-pool] [-v] [--cmd sh -c 'echo "
        "hello']\n\n"
        "Runs N executions (network none, read-only root, 64 MiB, 64 PIDs, 1 "
        "CPU),\n"
        "CONCURRENCY at a time, checks stdout, stderr and the exit code of "
        "each, and\n"
        "prints one JSON line: peer, n, concurrency, wall_s, execs_per_s, "
        "p50_ms,\n"
        "p99_ms, errors, client_cpu_s, client_peak_rss_kb, ok, timed_out, "
        "first_error.\n"
        "--cmd takes every argument after it. --expect and --expect-stderr "
        "understand\n"
        "\\n, \\t and \\\\. Latency runs from spawn to the completion "
        "callback.\n"
        "Warm-up (untimed): WARMUP executions one at a time, then, with the "
        "holder\n"
        "pool, one burst of CONCURRENCY (at most the pool's size) to fill "
        "it;\n"
        "--warmup 0 skips both.\n",
        stdout);
}

static unsigned parse_count(const char *name, const char *value, unsigned min)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul(value, &end, 10);
  if (errno || *end || end == value || value[0] == '-' || n < min ||
      n > 1000000)
    usage_error("invalid %s value \"%s\": write a whole number from %u to "
                "1000000",
                name, value, min);
  return (unsigned)n;
}

static void parse_option(struct bench_args *a, const char *name,
                         const char *value)
{
  char *end;

  if (strcmp(name, "--n") == 0) {
    a->n = parse_count(name, value, 1);
  } else if (strcmp(name, "--concurrency") == 0) {
    a->concurrency = parse_count(name, value, 1);
  } else if (strcmp(name, "--warmup") == 0) {
    a->warmup = parse_count(name, value, 0);
  } else if (strcmp(name, "--image") == 0) {
    a->image = value;
  } else if (strcmp(name, "--expect") == 0) {
    a->expect = value;
  } else if (strcmp(name, "--expect-stderr") == 0) {
    a->expect_stderr = value;
  } else if (strcmp(name, "--expect-exit") == 0) {
    a->expect_exit = (int)strtol(value, &end, 10);
    if (*end || end == value)
      usage_error("invalid --expect-exit value \"%s\": write a number", value);
  } else if (strcmp(name, "--deadline-s") == 0) {
    a->deadline_s = strtod(value, &end);
    if (*end || end == value || !(a->deadline_s > 0))
      usage_error("invalid --deadline-s value \"%s\": write seconds > 0",
                  value);
  } else if (strcmp(name, "--runtime") == 0) {
    if (strcmp(value, "docker") == 0)
      a->runtime = RBX_RUNTIME_DOCKER;
    else if (strcmp(value, "podman") == 0)
      a->runtime = RBX_RUNTIME_PODMAN;
    else
      usage_error("invalid --runtime value \"%s\": use docker or podman",
                  value);
  } else if (strcmp(name, "--host") == 0) {
    a->daemon_url = value;
  } else {
    usage_error("unknown option %s (see ringbox-bench --help)", name);
  }
}

static void parse_args(struct bench_args *a, int argc, char **argv)
{
  static char *default_cmd[] = {"sh", "-c", "echo hello", NULL};

  *a = (struct bench_args){.n = 200,
                           .concurrency = 8,
                           .warmup = 2,
                           .image = "sbx-busybox:latest",
                           .expect = "hello\\n",
                           .expect_stderr = "",
                           .deadline_s = 600,
                           .cmd = default_cmd};
  for (int i = 1; i < argc; i++) {
    char *arg = argv[i], *eq = strchr(arg, '=');

    if (strcmp(arg, "--cmd") == 0) {
      if (i + 1 >= argc)
        usage_error("--cmd needs a command");
      a->cmd = argv + i + 1;
      return;
    }
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      print_help();
      exit(0);
    }
    if (strcmp(arg, "--no-holder-pool") == 0) {
      a->no_holder_pool = true;
    } else if (strcmp(arg, "-v") == 0) {
      a->verbosity++;
    } else if (strncmp(arg, "--", 2) == 0 && eq) {
      *eq = '\0';
      parse_option(a, arg, eq + 1);
    } else if (strncmp(arg, "--", 2) == 0 && i + 1 < argc) {
      parse_option(a, arg, argv[++i]);
    } else {
      usage_error("unknown or incomplete argument \"%s\" (see ringbox-bench "
                  "--help)",
                  arg);
    }
  }
}

/* Expands \n, \t and \\ as the peer scripts do. */
static char *unescape(const char *text, size_t *len)
{
  char *out = malloc(strlen(text) + 1);
  size_t n = 0;

  if (!out)
    return NULL;
  for (size_t i = 0; text[i]; i++) {
    char next = text[i + 1];

    if (text[i] == '\\' && (next == 'n' || next == 't' || next == '\\')) {
      if (next == 'n')
        out[n++] = '\n';
      else if (next == 't')
        out[n++] = '\t';
      else
        out[n++] = '\\';
      i++;
    } else {
      out[n++] = text[i];
    }
  }
  out[n] = '\0';
  *len = n;
  return out;
}

/* Appends bytes in Python repr style (escaped, cut short) to dst. */
static void append_repr(char *dst, size_t size, const uint8_t *data, size_t len)
{
  size_t at = strlen(dst);

  for (size_t i = 0; i < len && at + 8 < size; i++) {
    uint8_t c = data[i];

    if (c == '\n')
      at += (size_t)snprintf(dst + at, size - at, "\\n");
    else if (c == '\\' || c == '\'')
      at += (size_t)snprintf(dst + at, size - at, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      at += (size_t)snprintf(dst + at, size - at, "\\x%02x", c);
    else
      at += (size_t)snprintf(dst + at, size - at, "%c", c);
  }
}

static void note_error(struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_error(struct bench *b, const char *fmt, ...)
{
  va_list ap;

  if (!b->timed_phase)
    return;
  b->errors++;
  if (b->first_error[0])
    return;
  va_start(ap, fmt);
  vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
  va_end(ap);
}

static bool output_matches(const struct rbx_output *out, const char *want,
                           size_t want_len)
{
  return !out->truncated && out->len == want_len &&
         (want_len == 0 || memcmp(out->data, want, want_len) == 0);
}

static void check_result(struct bench *b, const struct rbx_result *result,
                         double latency_ms)
{
  char text[FIRST_ERROR_MAX + 1];

  if (result->end == RBX_END_EXITED &&
      result->exit_code == b->args->expect_exit &&
      output_matches(&result->out, b->want_out, b->want_out_len) &&
      output_matches(&result->err, b->want_err, b->want_err_len)) {
    if (b->timed_phase)
      b->latencies_ms[b->ok++] = latency_ms;
    return;
  }
  snprintf(text, sizeof(text), "end=%s exit=%d stdout='",
           rbx_end_name(result->end), result->exit_code);
  append_repr(text, sizeof(text) - 40, result->out.data, result->out.len);
  strcat(text, "' stderr='");
  append_repr(text, sizeof(text) - 2, result->err.data, result->err.len);
  strcat(text, "'");
  note_error(b, "%s", text);
}

static void launch(struct bench *b);

static void on_done(struct rbx_exec *exec, const struct rbx_result *result,
                    const struct rbx_error *error, void *userdata)
{
  struct pending *p = userdata;
  struct bench *b = p->bench;

  (void)exec;
  if (result)
    check_result(b, result, now_ms() - p->started_ms);
  else
    note_error(b, "%s: %s", rbx_error_kind_name(error->kind), error->message);
  free(p);
  b->in_flight--;
  b->finished++;
  if (b->timed_phase)
    launch(b);
}

/* Starts executions until CONCURRENCY are in flight or N were started. */
static void launch(struct bench *b)
{
  unsigned limit = b->timed_phase ? b->args->n : b->warm_limit;

  while (!b->stop_launching && b->launched < limit &&
         b->in_flight < b->args->concurrency) {
    struct pending *p = malloc(sizeof(*p));
    struct rbx_error err = {0};

    b->launched++;
    if (!p) {
      note_error(b, "out of memory");
      b->finished++;
      continue;
    }
    p->bench = b;
    p->started_ms = now_ms();
    if (rbx_spawn(b->ctx, &b->spec, on_done, p, NULL, &err) < 0) {
      note_error(b, "spawn: %s: %s", rbx_error_kind_name(err.kind),
                 err.message);
      free(p);
      b->finished++;
      continue;
    }
    b->in_flight++;
    /* Warm-up runs one at a time, like the peers' warm-up loop. */
    if (!b->timed_phase && !b->warm_burst)
      break;
  }
}

static void print_progress(const struct bench *b, double elapsed_ms)
{
  fprintf(stderr,
          "\r[ringbox-bench] %u/%u done, %u errors, %u running, "
          "%.1f/s   ",
          b->finished, b->args->n, b->errors, b->in_flight,
          elapsed_ms > 0 ? b->ok * 1000.0 / elapsed_ms : 0.0);
}

static int drain(struct bench *b)
{
  int n;

  while ((n = rbx_process(b->ctx)) > 0)
    ;
  return n;
}

/* Runs the loop until every started execution finished, or until the
 * deadline (absolute, ms; 0 for none). Returns false at the deadline. */
static bool run_until_done(struct bench *b, unsigned target, double deadline,
                           bool progress)
{
  double started = now_ms(), next_progress = started;

  for (;;) {
    struct pollfd fd = {.fd = rbx_fd(b->ctx), .events = POLLIN};
    double now;
    int wait_ms = PROGRESS_INTERVAL_MS;

    if (drain(b) < 0) {
      note_error(b, "the event loop failed");
      return true;
    }
    now = now_ms();
    if (progress && now >= next_progress) {
      print_progress(b, now - started);
      next_progress = now + PROGRESS_INTERVAL_MS;
    }
    if (b->finished >= target && b->in_flight == 0)
      return true;
    if (deadline > 0 && now >= deadline)
      return false;
    if (deadline > 0 && deadline - now < wait_ms)
      wait_ms = (int)(deadline - now) + 1;
    if (poll(&fd, 1, wait_ms) < 0 && errno != EINTR)
      return true;
  }
}

/* Runs the loop until the removals after the warm-up are done, so that the
 * timed phase starts with the holders back in the pool. */
static void settle(struct bench *b, double deadline)
{
  while (rbx_cleanups_pending(b->ctx) > 0 && now_ms() < deadline) {
    struct pollfd fd = {.fd = rbx_fd(b->ctx), .events = POLLIN};

    if (drain(b) < 0)
      return;
    if (poll(&fd, 1, PROGRESS_INTERVAL_MS) < 0 && errno != EINTR)
      return;
  }
}

/* Runs the untimed warm-up: WARMUP executions one at a time, as the peers
 * do. With the holder pool on, one burst at the concurrency (up to the
 * pool's size) then fills the pool, as in a client that has run a while. */
static void warm_up(struct bench *b)
{
  double deadline = now_ms() + b->args->deadline_s * 1000;
  struct rbx_options defaults;
  unsigned burst = b->args->concurrency;

  b->timed_phase = false;
  b->warm_limit = b->args->warmup;
  for (unsigned i = 0; i < b->args->warmup; i++) {
    launch(b);
    run_until_done(b, i + 1, deadline, false);
  }
  rbx_options_init(&defaults);
  if (burst > defaults.holder_pool_max)
    burst = defaults.holder_pool_max;
  if (!b->args->no_holder_pool && b->args->warmup > 0 && burst > 1) {
    b->launched = b->finished = 0;
    b->warm_limit = burst;
    b->warm_burst = true;
    launch(b);
    run_until_done(b, burst, deadline, false);
    b->warm_burst = false;
  }
  settle(b, deadline);
  b->launched = b->finished = 0;
}

static int compare_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* Nearest-rank percentile of an ascending array, as the peers compute it;
 * prints null when empty. */
static void print_percentile(const double *sorted, unsigned count, double p)
{
  unsigned k;

  if (count == 0) {
    fputs("null", stdout);
    return;
  }
  k = (unsigned)(p * count);
  if (k < p * count)
    k++;
  if (k < 1)
    k = 1;
  printf("%.1f", sorted[k - 1]);
}

static void print_json_string(const char *text)
{
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static double cpu_seconds(const struct rusage *ru)
{
  return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 +
         (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

/* Returns this process's peak resident set in KiB. VmHWM belongs to the
 * process's own memory map, while ru_maxrss also keeps the peak of the
 * program it was exec'd from: started through `bash -c`, as the peer
 * harness does, it reports bash's 3 MiB instead of ringbox's own peak. */
static long peak_rss_kib(void)
{
  FILE *status = fopen("/proc/self/status", "re");
  char line[128];
  long kib = -1;
  struct rusage ru;

  if (status) {
    while (fgets(line, sizeof(line), status))
      if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
        break;
    fclose(status);
  }
  if (kib >= 0)
    return kib;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void print_result(const struct bench *b, double wall_s, double cpu_s,
                         bool timed_out)
{
  printf("{\"peer\":\"ringbox\",\"n\":%u,\"concurrency\":%u,\"wall_s\":%.3f,"
         "\"execs_per_s\":%.2f,\"p50_ms\":",
         b->args->n, b->args->concurrency, wall_s,
         wall_s > 0 ? b->ok / wall_s : 0.0);
  print_percentile(b->latencies_ms, b->ok, 0.50);
  fputs(",\"p99_ms\":", stdout);
  print_percentile(b->latencies_ms, b->ok, 0.99);
  printf(",\"errors\":%u,\"client_cpu_s\":%.2f,\"client_peak_rss_kb\":%ld,"
         "\"ok\":%u,\"timed_out\":%s,\"runtime\":\"%s\",\"holder_pool\":%s,"
         "\"first_error\":",
         b->errors, cpu_s, peak_rss_kib(), b->ok, timed_out ? "true" : "false",
         b->args->runtime == RBX_RUNTIME_PODMAN ? "podman" : "docker",
         b->args->no_holder_pool ? "false" : "true");
  print_json_string(b->first_error);
  puts("}");
  fflush(stdout);
}

static void log_to_stderr(enum rbx_log_level level, const char *line,
                          void *userdata)
{
  (void)userdata;
  fprintf(stderr, "ringbox-bench: %s: %s\n",
          level == RBX_LOG_ERROR  ? "error"
          : level == RBX_LOG_WARN ? "warn"
                                  : "info",
          line);
}

/* Sets the peers' sandbox: network none, read-only root, 64 MiB, 64 PIDs,
 * 1 CPU. The rest keeps ringbox's defaults (no capabilities,
 * no-new-privileges, user 65534), which are stricter than the peers'. */
static void set_up_spec(struct bench *b)
{
  rbx_policy_init(&b->policy);
  b->policy.image = b->args->image;
  b->policy.network = RBX_NET_NONE;
  b->policy.writable_root = false;
  b->policy.memory_mib = 64;
  b->policy.pids_limit = 64;
  b->policy.cpus = 1;
  /* The peers set no per-execution timeout; --deadline-s bounds the run. */
  b->policy.timeout_ms = 0;
  b->spec.argv = (const char *const *)b->args->cmd;
  b->spec.policy = &b->policy;
}

static int open_context(struct bench *b)
{
  struct rbx_options opts;
  struct rbx_error err = {0};
  struct rlimit limit;

  /* Each execution in flight uses a few sockets. */
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  rbx_options_init(&opts);
  opts.runtime = b->args->runtime;
  opts.daemon_url = b->args->daemon_url;
  opts.max_in_flight = b->args->concurrency;
  opts.no_holder_pool = b->args->no_holder_pool;
  opts.log_fn = log_to_stderr;
  opts.log_level = b->args->verbosity > 0 ? RBX_LOG_INFO : RBX_LOG_WARN;
  if (rbx_context_new(&b->ctx, &opts, &err) < 0) {
    snprintf(b->first_error, sizeof(b->first_error), "context: %s: %.380s",
             rbx_error_kind_name(err.kind), err.message);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  struct bench_args args;
  struct bench b = {0};
  struct rusage ru0, ru1;
  double t0, wall_s, deadline;
  bool progress = isatty(STDERR_FILENO), done;

  parse_args(&args, argc, argv);
  rbx_raise_fd_limit();
  b.args = &args;
  b.want_out = unescape(args.expect, &b.want_out_len);
  b.want_err = unescape(args.expect_stderr, &b.want_err_len);
  b.latencies_ms = calloc(args.n, sizeof(double));
  if (!b.want_out || !b.want_err || !b.latencies_ms)
    usage_error("out of memory");
  set_up_spec(&b);
  if (open_context(&b) < 0) {
    b.timed_phase = true;
    b.errors = args.n;
    print_result(&b, 0, 0, false);
    return 1;
  }
  warm_up(&b);
  b.timed_phase = true;
  getrusage(RUSAGE_SELF, &ru0);
  t0 = now_ms();
  deadline = t0 + args.deadline_s * 1000;
  launch(&b);
  done = run_until_done(&b, args.n, deadline, progress);
  wall_s = (now_ms() - t0) / 1000;
  getrusage(RUSAGE_SELF, &ru1);
  if (!done) {
    unsigned running = b.in_flight, unstarted = args.n - b.launched;
    bool had_error = b.first_error[0] != '\0';

    b.stop_launching = true;
    rbx_cancel_all(b.ctx);
    run_until_done(&b, b.launched, now_ms() + CANCEL_GRACE_MS, false);
    /* Cancelled executions were counted as errors when they reported. */
    b.errors += unstarted + b.in_flight;
    if (!had_error)
      snprintf(b.first_error, sizeof(b.first_error),
               "%u executions still running at the deadline",
               running + unstarted);
  }
  if (progress)
    fputs("\n", stderr);
  qsort(b.latencies_ms, b.ok, sizeof(double), compare_double);
  print_result(&b, wall_s, cpu_seconds(&ru1) - cpu_seconds(&ru0), !done);
  rbx_context_free(b.ctx);
  free(b.latencies_ms);
  free(b.want_out);
  free(b.want_err);
  return done ? 0 : 3;
}
