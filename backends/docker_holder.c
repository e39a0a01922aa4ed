/* Network holders: idle containers with only a loopback interface whose
 * network namespace is lent to one network-none sandbox at a time, so the
 * daemon does not build and tear down a namespace per execution. A holder
 * goes back to the pool only after its borrower has been removed, so no
 * socket of one execution is ever visible to the next. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/docker.h"
#include "engine/error.h"

struct docker_holder {
  struct docker_backend *be;
  struct docker_holder *next; /* be->holders (idle) */
  char id[72];
  /* Creation in progress: the executions waiting for this holder. */
  docker_holder_fn ready;
  void *ready_data;
};

static void remove_holder(struct docker_holder *holder)
{
  struct docker_backend *be = holder->be;

  be->holders_total--;
  if (holder->id[0])
    docker_discard_container(be, holder->id);
  free(holder);
}

static void holder_ready(struct docker_holder *holder,
                         const struct rbx_error *err)
{
  docker_holder_fn ready = holder->ready;
  void *data = holder->ready_data;

  holder->ready = NULL;
  if (err) {
    remove_holder(holder);
    ready(data, NULL, err);
    return;
  }
  ready(data, holder, NULL);
}

static void on_holder_started(struct http_call *call, struct http_response *resp,
                              const struct rbx_error *err, void *data)
{
  struct docker_holder *holder = data;
  struct rbx_error serr;

  (void)call;
  if (err) {
    holder_ready(holder, err);
    return;
  }
  if (resp->status != 204 && resp->status != 304) {
    docker_error_from_response(holder->be, resp, "start network holder",
                               &serr);
    holder_ready(holder, &serr);
    return;
  }
  holder_ready(holder, NULL);
}

static void on_holder_created(struct http_call *call, struct http_response *resp,
                              const struct rbx_error *err, void *data)
{
  struct docker_holder *holder = data;
  struct rbx_error cerr;
  cJSON *json;
  const cJSON *id;
  char target[160];

  (void)call;
  if (err) {
    holder_ready(holder, err);
    return;
  }
  if (resp->status != 201) {
    docker_error_from_response(holder->be, resp, "create network holder",
                               &cerr);
    holder_ready(holder, &cerr);
    return;
  }
  json = cJSON_ParseWithLength(resp->body, resp->body_len);
  id = cJSON_GetObjectItemCaseSensitive(json, "Id");
  if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof(holder->id))
    snprintf(holder->id, sizeof(holder->id), "%s", id->valuestring);
  cJSON_Delete(json);
  if (!holder->id[0]) {
    rbx_err_set(&cerr, RBX_ERR_IO, -EPROTO,
                "create network holder: answer has no Id");
    holder_ready(holder, &cerr);
    return;
  }
  snprintf(target, sizeof(target), "/containers/%s/start", holder->id);
  if (!docker_request_timed(holder->be, "POST", target, NULL, false,
                            DOCKER_HOLDER_TIMEOUT_MS, on_holder_started,
                            holder, &cerr))
    holder_ready(holder, &cerr);
}

/* The holder runs a long sleep with every limit tight: it only keeps a
 * network namespace with loopback alive. */
static cJSON *holder_config(struct docker_backend *be)
{
  cJSON *config = cJSON_CreateObject();
  cJSON *cmd = cJSON_AddArrayToObject(config, "Cmd");
  cJSON *hc = cJSON_AddObjectToObject(config, "HostConfig");
  cJSON *drop = cJSON_AddArrayToObject(hc, "CapDrop");
  cJSON *opts = cJSON_AddArrayToObject(hc, "SecurityOpt");

  cJSON_AddStringToObject(config, "Image", DOCKER_HOLDER_IMAGE);
  cJSON_AddItemToArray(cmd, cJSON_CreateString("sleep"));
  cJSON_AddItemToArray(cmd, cJSON_CreateString("2147483647"));
  cJSON_AddItemToObject(config, "Entrypoint", cJSON_CreateArray());
  cJSON_AddStringToObject(config, "User", "65534:65534");
  cJSON_AddItemToObject(config, "Labels", docker_labels(be, "holder", 0));
  cJSON_AddStringToObject(hc, "NetworkMode", "none");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(hc, "LogConfig"), "Type",
                          "none");
  cJSON_AddNumberToObject(hc, "Memory", 16.0 * 1024 * 1024);
  cJSON_AddNumberToObject(hc, "MemorySwap", 16.0 * 1024 * 1024);
  cJSON_AddNumberToObject(hc, "PidsLimit", 4);
  cJSON_AddBoolToObject(hc, "ReadonlyRootfs", true);
  cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
  cJSON_AddItemToArray(opts, cJSON_CreateString("no-new-privileges"));
  return config;
}

int docker_holder_acquire(struct docker_backend *be, docker_holder_fn ready,
                          void *data, struct rbx_error *err)
{
  struct docker_holder *holder = be->holders;
  char target[128];

  if (holder) {
    be->holders = holder->next;
    be->holders_idle--;
    holder->next = NULL;
    ready(data, holder, NULL);
    return 0;
  }
  /* Past the cap a holder would not be reused before the next lull, and
   * each one is a container more for the daemon: the execution gets a
   * namespace of its own instead. */
  if (be->holders_total >= be->ctx->opts.holder_pool_max)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -EAGAIN,
                       "all %u network holders are lent out",
                       be->ctx->opts.holder_pool_max);
  holder = calloc(1, sizeof(*holder));
  if (!holder)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  holder->be = be;
  holder->ready = ready;
  holder->ready_data = data;
  be->holders_total++;
  snprintf(target, sizeof(target), "/containers/create?name=ringbox-holder-%d-%u",
           (int)getpid(), ++be->holder_seq);
  if (!docker_request_timed(be, "POST", target, holder_config(be), false,
                            DOCKER_HOLDER_TIMEOUT_MS, on_holder_created,
                            holder, err)) {
    be->holders_total--;
    free(holder);
    return err ? err->code : -EIO;
  }
  return 0;
}

const char *docker_holder_id(const struct docker_holder *holder)
{
  return holder->id;
}

void docker_holder_release(struct docker_holder *holder, bool broken)
{
  struct docker_backend *be = holder->be;

  if (broken) {
    remove_holder(holder);
    docker_holder_flush(be);
    return;
  }
  if (be->holders_idle >= be->ctx->opts.holder_pool_max ||
      be->ctx->shutting_down) {
    remove_holder(holder);
    return;
  }
  holder->next = be->holders;
  be->holders = holder;
  be->holders_idle++;
}

void docker_holder_flush(struct docker_backend *be)
{
  while (be->holders) {
    struct docker_holder *holder = be->holders;

    be->holders = holder->next;
    be->holders_idle--;
    remove_holder(holder);
  }
}
