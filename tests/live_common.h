/* Helpers shared by the live test suites, which run against a real dockerd
 * and a real Podman service. They cover the engine list, contexts that skip
 * or fail when a daemon is missing, a blocking Engine API client for checks,
 * and the check that no container or network of this process is left. */
#ifndef RBX_TEST_LIVE_COMMON_H
#define RBX_TEST_LIVE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "ringbox.h"

#define LIVE_ENGINES_MAX 4
#define LIVE_SOCKET_PATH_MAX 108 /* sun_path */
/* Bytes kept of one Engine API response read by live_api. */
#define LIVE_API_BODY_MAX (32 * 1024 * 1024)
/* How long live_api waits for the daemon, per read or write. */
#define LIVE_API_TIMEOUT_S 60

/* One engine under test. */
struct live_engine {
  const char *name;         /* "docker" or "podman" */
  enum rbx_runtime runtime;
  char socket_path[LIVE_SOCKET_PATH_MAX];
  char daemon_url[LIVE_SOCKET_PATH_MAX + 8]; /* unix://socket_path */
  bool probed;
  bool available;
  char unavailable_reason[RBX_ERROR_MESSAGE_MAX];
};

/* A test case run once per engine; its state is the struct live_engine. */
struct live_case {
  const char *name;
  CMUnitTestFunction fn;
};

#define LIVE_CASE(fn) {#fn, fn}

/* Parses a list of engine names separated by spaces or commas (the value of
 * the environment variable env_name, or fallback when it is unset) into
 * out. Fails the process with a message on an unknown name. Returns the
 * number of engines. */
size_t live_engines(struct live_engine *out, size_t max, const char *env_name,
                    const char *fallback);

/* Points engine at the socket of its runtime: DOCKER_HOST (unix:// only) or
 * /var/run/docker.sock for Docker, PODMAN_SOCKET or /run/podman/podman.sock
 * for Podman. */
void live_engine_init(struct live_engine *engine, const char *name,
                      enum rbx_runtime runtime);

/* Runs every case once per engine as one cmocka group, named
 * "<case>[<engine>]". Each test's teardown frees the contexts the test left
 * open (after a failed assertion) and asserts that nothing of this process
 * is left. RBX_LIVE_FILTER, when set, selects tests by cmocka's name
 * pattern. Returns the number of failed tests. */
int live_run_cases(const char *group, const struct live_case *cases,
                   size_t cases_count, struct live_engine *engines,
                   size_t engines_count);

/* Returns the engine of a test, probing its daemon once. When the daemon
 * does not respond, the test fails if RBX_REQUIRE_DAEMONS=1 and is skipped
 * otherwise; both say which daemon is missing. A missing tool image fails
 * the test. */
struct live_engine *live_engine_ready(void **state);

/* The tool image for tests: RBX_IMAGE or ringbox-tools:<version>. */
const char *live_image(void);

/* Fills opts with the defaults for engine: its runtime and socket, and a log
 * sink on stderr. RBX_LIVE_LOG sets the sink's level to error, warn, info or
 * debug (default warn). */
void live_options(const struct live_engine *engine, struct rbx_options *opts);

/* Fills policy with the defaults and the test image. */
void live_policy(struct rbx_policy *policy);

/* Creates a context and registers it so that a failed test's teardown frees
 * it. Fails the test when creation fails. */
struct rbx_context *live_context_new(const struct rbx_options *opts);

/* Frees a context made by live_context_new. Accepts NULL. */
void live_context_free(struct rbx_context *ctx);

/* The outcome of one execution, filled by live_on_done. */
struct live_outcome {
  bool done;
  bool failed;
  struct rbx_result result; /* owned; free with live_outcome_clear */
  struct rbx_error error;
  uint64_t spawn_ms; /* live_now_ms() at spawn, set by live_spawn */
  uint64_t done_ms;  /* live_now_ms() at the callback */
};

/* An rbx_done_fn that stores the result or error in the live_outcome given
 * as userdata. */
void live_on_done(struct rbx_exec *exec, const struct rbx_result *result,
                  const struct rbx_error *error, void *userdata);

/* Spawns spec with live_on_done into outcome; fails the test when spawn
 * returns an error. */
void live_spawn(struct rbx_context *ctx, const struct rbx_spec *spec,
                struct live_outcome *outcome, struct rbx_exec **exec_out);

/* Frees the buffers of an outcome's result. */
void live_outcome_clear(struct live_outcome *outcome);

/* Runs the loop of ctx until nothing is pending; fails the test on a loop
 * error. */
void live_run_loop(struct rbx_context *ctx);

/* Drives ctx's loop for up to ms milliseconds without blocking longer. */
void live_drive(struct rbx_context *ctx, uint64_t ms);

/* Monotonic milliseconds. */
uint64_t live_now_ms(void);

/* Asserts that an outcome is a result (not an error) with the given end,
 * exit code and exact stdout and stderr. Fails with both outputs shown. */
void live_assert_result(const struct live_outcome *outcome,
                        enum rbx_end end, int exit_code, const char *out,
                        const char *err);

/* Sends one request to the Engine API on socket_path (HTTP/1.0, blocking,
 * LIVE_API_TIMEOUT_S per read) and parses the JSON body into *json when it
 * is not NULL (NULL for an empty or non-JSON body). Returns the HTTP status
 * or a negative errno. */
int live_api(const char *socket_path, const char *method, const char *target,
             cJSON **json);

/* A container or network labelled as ringbox's. */
struct live_object {
  char id[72];
  char name[128];
  char role[32];
  char state[32]; /* containers only: "running", "exited"... */
  bool network;
  int owner_pid;  /* 0 when the owner label is missing or unreadable */
};

/* Lists ringbox-labelled containers (and networks when with_networks) on
 * socket_path whose owner pid is owner_pid (any owner when 0). Fills up to
 * max objects and returns how many matched, or a negative errno. */
int live_list_objects(const char *socket_path, int owner_pid,
                      bool with_networks, struct live_object *out,
                      size_t max);

/* Asserts that nothing labelled as ringbox's is owned by owner_pid on the
 * engine, except shared proxies; on failure lists what is left. */
void live_assert_nothing_left(const struct live_engine *engine, int owner_pid);

/* Removes, by force, every ringbox-labelled container and network owned by
 * owner_pid. Returns the number removed. For cleaning up after a failure. */
int live_remove_owned(const char *socket_path, int owner_pid);

/* VmHWM of this process in KiB, and its reset through /proc/self/clear_refs
 * (Linux 4.0 and newer) after glibc's malloc_trim. live_reset_peak_rss
 * returns 0 or a negative errno. */
long live_peak_rss_kib(void);
int live_reset_peak_rss(void);

/* A formatted, malloc'ed string; fails the test when out of memory. */
char *live_strdupf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
