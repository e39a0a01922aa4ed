/* Live scale test: RBX_SCALE_COUNT (default 300) executions of `sleep 5`
 * in flight at once from one context, on the engines in RBX_SCALE_ENGINES
 * (default docker). Prints the wall time, the peak number of sandboxes seen
 * running at once and this process's peak RSS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/live_common.h"

/* Every execution must have started within DOCKER_START_TIMEOUT_MS (60 s),
 * and dockerd 20.10 on a 2-core host starts about 7 containers a second
 * (400 took 59.7 s), so 1000 at once fail there with start timeouts. */
#define SCALE_COUNT_DEFAULT 300
/* How often the running sandboxes are counted through the API. */
#define SCALE_SAMPLE_MS 5000

static size_t scale_count(void)
{
  const char *value = getenv("RBX_SCALE_COUNT");
  long count = value ? strtol(value, NULL, 10) : SCALE_COUNT_DEFAULT;

  return count > 0 ? (size_t)count : SCALE_COUNT_DEFAULT;
}

/* Each execution uses an attach socket and, while the events stream is
 * down, a wait socket: raise the open-files limit as far as allowed. */
static void raise_nofile(void)
{
  struct rlimit limit;

  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

static int count_running(const struct live_engine *engine)
{
  static struct live_object objects[4096];
  int count = live_list_objects(engine->socket_path, (int)getpid(), false,
                                objects, 4096);
  int running = 0;

  for (int i = 0; i < count && i < 4096; i++)
    running += strcmp(objects[i].role, "sandbox") == 0 &&
               strcmp(objects[i].state, "running") == 0;
  return running;
}

static void test_scale_all_in_flight(void **state)
{
  struct live_engine *engine = live_engine_ready(state);
  const size_t count = scale_count();
  const char *const argv[] = {"sleep", "5", NULL};
  struct live_outcome *outcomes = calloc(count, sizeof(*outcomes));
  struct rbx_options opts;
  struct rbx_policy policy;
  struct rbx_context *ctx;
  uint64_t start, next_sample;
  size_t bad = 0, done = 0;
  int peak_running = 0;

  assert_non_null(outcomes);
  raise_nofile();
  live_options(engine, &opts);
  opts.max_in_flight = (unsigned)count;
  live_policy(&policy);
  /* Creating this many containers takes minutes on a small host, and the
   * timeout counts from the start. */
  policy.timeout_ms = 3600000;
  struct rbx_spec spec = {.argv = argv, .policy = &policy};

  ctx = live_context_new(&opts);
  start = live_now_ms();
  for (size_t i = 0; i < count; i++)
    live_spawn(ctx, &spec, &outcomes[i], NULL);
  next_sample = start + SCALE_SAMPLE_MS;
  while (rbx_pending(ctx) > 0) {
    live_drive(ctx, 200);
    if (live_now_ms() >= next_sample) {
      int running = count_running(engine);

      if (running > peak_running)
        peak_running = running;
      next_sample = live_now_ms() + SCALE_SAMPLE_MS;
      done = 0;
      for (size_t i = 0; i < count; i++)
        done += outcomes[i].done;
      print_message("%llu s: %d running, %zu done\n",
                    (unsigned long long)((live_now_ms() - start) / 1000),
                    running, done);
    }
  }
  print_message("%zu executions of sleep 5 at max_in_flight %zu: wall %.1f s, "
                "peak running seen %d, peak RSS %ld KiB\n",
                count, count, (double)(live_now_ms() - start) / 1000.0,
                peak_running, live_peak_rss_kib());
  for (size_t i = 0; i < count; i++) {
    const struct live_outcome *o = &outcomes[i];
    bool ok = o->done && !o->failed && o->result.end == RBX_END_EXITED &&
              o->result.exit_code == 0 && o->result.out.len == 0 &&
              o->result.err.len == 0;

    if (!ok && bad++ < 10) {
      if (o->failed)
        print_message("execution %zu failed (%s): %s\n", i,
                      rbx_error_kind_name(o->error.kind), o->error.message);
      else
        print_message("execution %zu: end %s exit %d\n", i,
                      rbx_end_name(o->result.end), o->result.exit_code);
    }
    live_outcome_clear(&outcomes[i]);
  }
  free(outcomes);
  print_message("%zu of %zu executions wrong\n", bad, count);
  start = live_now_ms();
  live_context_free(ctx);
  print_message("context freed in %.1f s\n",
                (double)(live_now_ms() - start) / 1000.0);
  assert_int_equal(bad, 0);
}

int main(void)
{
  static const struct live_case cases[] = {
      LIVE_CASE(test_scale_all_in_flight),
  };
  struct live_engine engines[LIVE_ENGINES_MAX];
  size_t count = live_engines(engines, LIVE_ENGINES_MAX, "RBX_SCALE_ENGINES",
                              "docker");

  return live_run_cases("scale", cases, 1, engines, count);
}
