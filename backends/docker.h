/* Internals shared by the Engine API backend's files: the backend state,
 * the request helpers, and the limited-network and sweep entry points. */
#ifndef RBX_DOCKER_H
#define RBX_DOCKER_H

#include <cjson/cJSON.h>

#include "backends/exec.h"
#include "http/http.h"

/* Label keys on every object ringbox creates. */
#define DOCKER_LABEL "ringbox"
#define DOCKER_LABEL_OWNER "ringbox.owner"
#define DOCKER_LABEL_DEADLINE "ringbox.deadline"
#define DOCKER_LABEL_ROLE "ringbox.role"

/* Short requests (create, start, kill, inspect, remove) must get a
 * response within this time, or they are reported as timed out. */
#define DOCKER_REQUEST_TIMEOUT_MS 60000
/* How long attach and start may take after create before the execution
 * fails as timed out: the command's own timeout plus the margin, at most
 * the maximum. The command's timeout starts after. */
#define DOCKER_START_TIMEOUT_MS 60000
#define DOCKER_START_MARGIN_MS 10000

/* How long a network holder's create and start may each take. A daemon
 * slower than this is overloaded, and the execution goes on without a
 * holder rather than wait. */
#define DOCKER_HOLDER_TIMEOUT_MS 10000
/* After an exit with status 137, how long to wait for a late oom event
 * before reading State.OOMKilled. */
#define DOCKER_OOM_EVENT_WAIT_MS 500
/* After a kill, how long the exit may take before the execution is ended
 * anyway (and the container removed by force). */
#define DOCKER_KILL_GRACE_MS 10000

/* Delay between the end of the attach stream and a wait request that reads
 * the exit when no exit event has arrived. */
#define DOCKER_EXIT_EVENT_WAIT_MS 3000
/* Added to an execution's timeout for its deadline label, so the sweep
 * never removes the objects of a live execution still winding down. */
#define DOCKER_DEADLINE_GRACE_S 120

struct docker_exec;
struct docker_net;

/* Differences between Docker and Podman's compatible API, found once from
 * /version and used wherever the two behave differently. */
struct docker_quirks {
  bool podman;
  /* Podman's compatible network create always turns on its DNS server,
   * and aardvark-dns 1.4 (Debian 12) forwards queries from internal
   * networks to the host's resolvers; so internal networks are created
   * through the libpod endpoint, with DNS off. */
  bool libpod_internal_network;
  /* The engine's default seccomp profile rejects io_uring, which the
   * egress proxy needs: Podman's always, Docker's from 25.0 on (moby/moby
   * pull request 46762). Set for Podman from /version, and for Docker by
   * the limited network set-up, which reads the version. */
  bool seccomp_blocks_io_uring;
  /* Podman reports some conflicts (removal in progress) as 500. */
  bool conflict_as_500;
  /* Podman drops its configured default rlimits when a request names any
   * Ulimits, and then tries the host's nproc limit, which fails without
   * CAP_SYS_RESOURCE; so nproc is sent explicitly. */
  bool ulimits_replace_defaults;
  /* Podman matches an events "event" filter against its own names ("died"
   * rather than "die") and so drops every event: filter here instead. */
  bool no_event_name_filter;
};

/* The nproc rlimit sent to Podman along with nofile. It counts every
 * process of the container's user on the host, so it is kept well above
 * any one sandbox's PID limit. */
#define DOCKER_PODMAN_NPROC 4096

struct docker_backend {
  struct rbx_context *ctx;
  struct http_client *http;
  struct http_endpoint ep;
  char api_prefix[16];    /* "/v1.41" */
  char engine_name[32];   /* "docker" or "podman" */
  char engine_version[64];
  struct docker_quirks quirks;
  char owner[192];        /* pid:starttime:bootid of this process */
  /* Executions whose result has been delivered and whose container is
   * still being removed. */
  struct docker_exec *reaping;
  unsigned reaping_count;
  /* Idle network holders, for network none without a namespace each. */
  struct docker_holder *holders;
  unsigned holders_idle;
  unsigned holders_total;
  unsigned holder_seq;
  /* Requests that outlive their execution (holder removals). */
  unsigned background;
  /* Executions with a container, for events to find them by id. */
  struct docker_exec *live;
  struct docker_events *events;
  /* Network limited has logged what the engine version means for it. */
  bool net_engine_checked;
  /* Shared named proxies already created by this context. */
  struct docker_net_shared *shared_proxies;
  /* Attach receive buffers not in use, linked through their first bytes. */
  void *recv_spares;
  unsigned recv_spares_count;
};

/* The image network holders run: it only needs a `sleep`. */
#define DOCKER_HOLDER_IMAGE "ringbox-tools:" RBX_VERSION

struct docker_holder;

/* Called with a running holder, or with err when none could be made (the
 * execution then goes on without one). */
typedef void (*docker_holder_fn)(void *data, struct docker_holder *holder,
                                 const struct rbx_error *err);

/* Lends an idle holder, or creates one. ready may run before this returns.
 * Returns 0, or a negative code with err filled (ready is then not run). */
int docker_holder_acquire(struct docker_backend *be, docker_holder_fn ready,
                          void *data, struct rbx_error *err);
const char *docker_holder_id(const struct docker_holder *holder);
/* Gives a holder back once its borrower is removed. broken: the holder
 * failed (the daemon may have restarted), so it and every idle holder are
 * removed. */
void docker_holder_release(struct docker_holder *holder, bool broken);
void docker_holder_flush(struct docker_backend *be);

/* Sends METHOD api_prefix+target with an optional JSON body (taken, and
 * freed); done runs on the loop. Returns the call or NULL with err set. */
struct http_call *docker_request(struct docker_backend *be, const char *method,
                                 const char *target, cJSON *body,
                                 http_done_fn done, void *data,
                                 struct rbx_error *err);

/* docker_request, queued ahead of ordinary requests when urgent: start,
 * kill and inspect finish work already under way. */
struct http_call *docker_request_ex(struct docker_backend *be,
                                    const char *method, const char *target,
                                    cJSON *body, bool urgent,
                                    http_done_fn done, void *data,
                                    struct rbx_error *err);

/* docker_request_ex with a request timeout of timeout_ms, counted from the
 * request's sending, in place of DOCKER_REQUEST_TIMEOUT_MS. */
struct http_call *docker_request_timed(struct docker_backend *be,
                                       const char *method, const char *target,
                                       cJSON *body, bool urgent,
                                       uint64_t timeout_ms, http_done_fn done,
                                       void *data, struct rbx_error *err);

/* Runs one request to the end by driving the loop. Not for use inside a
 * callback. On success returns the status and, when body_out is not NULL,
 * the parsed JSON body (caller frees). */
int docker_request_sync(struct docker_backend *be, const char *method,
                        const char *target, cJSON *body, cJSON **body_out,
                        struct rbx_error *err);

/* Fills err from a non-2xx answer: "what: daemon answered 404: No such
 * container: ..." with kind RBX_ERR_DAEMON. Returns a negative code. */
int docker_error_from_response(const struct docker_backend *be,
                               const struct http_response *resp,
                               const char *what, struct rbx_error *err);

/* The labels object for a new container or network. */
cJSON *docker_labels(const struct docker_backend *be, const char *role,
                     uint64_t timeout_ms);

/* Limited network set-up and teardown for one execution. set_up creates the
 * internal network and the proxy and then calls ready; the execution reads
 * network name and proxy URL from docker_net_*. teardown removes what
 * set_up created (a shared proxy is only disconnected) and calls gone. */
typedef void (*docker_net_fn)(void *data, const struct rbx_error *err);

int docker_net_set_up(struct docker_backend *be, struct rbx_exec *exec,
                      struct docker_net **out, docker_net_fn ready,
                      void *data, struct rbx_error *err);
const char *docker_net_name(const struct docker_net *net);
const char *docker_net_proxy_url(const struct docker_net *net);
void docker_net_teardown(struct docker_net *net, docker_net_fn gone,
                         void *data);

/* Removes a container that no execution waits for, in the background;
 * the sweep covers a failure. */
void docker_discard_container(struct docker_backend *be, const char *id);

/* The /events stream. start connects it and waits (bounded) for its
 * headers; while it is ready, executions need no wait request. */
struct docker_events;
int docker_events_start(struct docker_backend *be, struct rbx_error *err);
bool docker_events_ready(const struct docker_backend *be);
void docker_events_stop(struct docker_backend *be);

/* Called by the events stream: an OOM (oom true) or an exit with its code
 * for container id. */
void docker_exec_event(struct docker_backend *be, const char *id, bool oom,
                       int exit_code);
/* Called when the stream drops: executions still waiting for their exit
 * send wait requests of their own. */
void docker_exec_events_lost(struct docker_backend *be);

/* Removes objects of dead or expired owners (containers, then proxies,
 * then networks). Blocking; returns the count removed or a negative code. */
int docker_sweep(struct docker_backend *be, bool everything_of_mine,
                 struct rbx_error *err);

/* Reads the start time of a process from /proc (clock ticks since boot).
 * Returns 0, -ESRCH for a zombie, or another negative errno. */
int docker_proc_start_time(int pid, unsigned long long *start);
int docker_boot_id(char *out, size_t size);
/* The inode of this process's PID namespace, or 0 when unknown. */
unsigned long long docker_pid_namespace(void);

#endif
