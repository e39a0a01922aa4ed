/* The sweep: finds containers and networks labelled as ringbox's whose
 * owning process is gone (or whose deadline has passed) and removes them,
 * containers first, then proxies and holders, then networks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/docker.h"
#include "engine/error.h"

/* The filter query for objects carrying the ringbox label. */
#define LABEL_FILTER "filters=%7B%22label%22%3A%5B%22ringbox%22%5D%7D"

enum verdict { KEEP, REMOVE };

static const char *label_of(const cJSON *labels, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(labels, key);

  return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Decides from an object's labels whether its owner is gone or it has
 * outlived its deadline. Objects of this process are kept unless `mine` is
 * set (shutdown). Shared proxies have no owner and are always kept. */
static enum verdict judge(const struct docker_backend *be,
                          const cJSON *labels, bool mine)
{
  const char *owner = label_of(labels, DOCKER_LABEL_OWNER);
  const char *deadline = label_of(labels, DOCKER_LABEL_DEADLINE);
  const char *role = label_of(labels, DOCKER_LABEL_ROLE);
  char boot[64];
  unsigned long long start, live_start;
  int pid;
  int used = 0;

  if (role && strcmp(role, "shared-proxy") == 0)
    return KEEP;
  if (!owner)
    return KEEP;
  if (strcmp(owner, be->owner) == 0)
    return mine ? REMOVE : KEEP;
  bool expired = deadline && strtoll(deadline, NULL, 10) > 0 &&
                 strtoll(deadline, NULL, 10) < (long long)time(NULL);
  const char *owner_ns;
  size_t boot_len;

  if (sscanf(owner, "%d:%llu:%n", &pid, &start, &used) != 2 || used == 0)
    return KEEP; /* not a label this version wrote: leave it */
  owner_ns = strchr(owner + used, ':');
  boot_len = owner_ns ? (size_t)(owner_ns - (owner + used))
                      : strlen(owner + used);
  if (docker_boot_id(boot, sizeof(boot)) == 0 &&
      (strlen(boot) != boot_len || strncmp(owner + used, boot, boot_len)))
    return REMOVE; /* written before the last reboot */
  /* An owner in another PID namespace (another container, another host
   * sharing the daemon) cannot be looked up in our /proc: only its
   * deadline can retire its objects. */
  if (!owner_ns ||
      strtoull(owner_ns + 1, NULL, 10) != docker_pid_namespace())
    return expired ? REMOVE : KEEP;
  if (docker_proc_start_time(pid, &live_start) < 0 || live_start != start)
    return REMOVE; /* the owner is gone, or its pid was reused */
  return expired ? REMOVE : KEEP;
}

/* Ids go into request targets unescaped, so only hex ids are accepted. */
static bool valid_id(const char *id)
{
  size_t len = strlen(id);

  return len > 0 && len <= 80 && strspn(id, "0123456789abcdef") == len;
}

static int role_rank(const char *role)
{
  if (!role || strcmp(role, "sandbox") == 0)
    return 0;
  if (strcmp(role, "proxy") == 0)
    return 1;
  return 2;
}

static int remove_containers(struct docker_backend *be, bool mine,
                             struct rbx_error *err)
{
  cJSON *list = NULL;
  int removed = 0;
  int rc = docker_request_sync(be, "GET", "/containers/json?all=1&" LABEL_FILTER,
                               NULL, &list, err);

  if (rc < 0)
    return rc;
  for (int rank = 0; rank <= 2; rank++) {
    const cJSON *item;

    cJSON_ArrayForEach(item, list)
    {
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
      const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "Labels");
      char target[160];
      struct rbx_error rerr;

      if (!cJSON_IsString(id) || !valid_id(id->valuestring) ||
          role_rank(label_of(labels, DOCKER_LABEL_ROLE)) != rank ||
          judge(be, labels, mine) != REMOVE)
        continue;
      snprintf(target, sizeof(target), "/containers/%.80s?force=1&v=1",
               id->valuestring);
      rc = docker_request_sync(be, "DELETE", target, NULL, NULL, &rerr);
      if (rc >= 0 || rerr.code == -ENOENT) {
        removed++;
        rbx_log(&be->ctx->log, RBX_LOG_INFO, "swept container=%.12s",
                id->valuestring);
      } else if (rerr.code == -EEXIST) {
        /* 409: a removal is already in progress, by its owner or another
         * sweep; nothing is left to do here. */
        rbx_log(&be->ctx->log, RBX_LOG_DEBUG,
                "sweep skipped container=%.12s: removal in progress",
                id->valuestring);
      } else {
        rbx_log(&be->ctx->log, RBX_LOG_WARN,
                "sweep could not remove container=%.12s error=%s",
                id->valuestring, rerr.message);
      }
    }
  }
  cJSON_Delete(list);
  return removed;
}

/* Disconnects every endpoint still on a network (force), then removes it. */
static int remove_network(struct docker_backend *be, const char *id,
                          struct rbx_error *err)
{
  char target[200];
  cJSON *info = NULL;
  const cJSON *containers, *entry;
  int rc;

  snprintf(target, sizeof(target), "/networks/%.80s", id);
  rc = docker_request_sync(be, "GET", target, NULL, &info, err);
  if (rc < 0)
    return rc;
  containers = cJSON_GetObjectItemCaseSensitive(info, "Containers");
  cJSON_ArrayForEach(entry, containers)
  {
    cJSON *body = cJSON_CreateObject();
    struct rbx_error derr;

    cJSON_AddStringToObject(body, "Container", entry->string);
    cJSON_AddBoolToObject(body, "Force", true);
    snprintf(target, sizeof(target), "/networks/%.80s/disconnect", id);
    docker_request_sync(be, "POST", target, body, NULL, &derr);
  }
  cJSON_Delete(info);
  snprintf(target, sizeof(target), "/networks/%.80s", id);
  return docker_request_sync(be, "DELETE", target, NULL, NULL, err);
}

static int remove_networks(struct docker_backend *be, bool mine,
                           struct rbx_error *err)
{
  cJSON *list = NULL;
  const cJSON *item;
  int removed = 0;
  int rc = docker_request_sync(be, "GET", "/networks?" LABEL_FILTER, NULL,
                               &list, err);

  if (rc < 0)
    return rc;
  cJSON_ArrayForEach(item, list)
  {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "Labels");
    struct rbx_error rerr;

    if (!cJSON_IsString(id) || !valid_id(id->valuestring) ||
        judge(be, labels, mine) != REMOVE)
      continue;
    rc = remove_network(be, id->valuestring, &rerr);
    if (rc >= 0 || rerr.code == -ENOENT) {
      removed++;
      rbx_log(&be->ctx->log, RBX_LOG_INFO, "swept network=%.12s",
              id->valuestring);
    } else {
      rbx_log(&be->ctx->log, RBX_LOG_WARN,
              "sweep could not remove network=%.12s error=%s",
              id->valuestring, rerr.message);
    }
  }
  cJSON_Delete(list);
  return removed;
}

int docker_sweep(struct docker_backend *be, bool everything_of_mine,
                 struct rbx_error *err)
{
  int containers = remove_containers(be, everything_of_mine, err);
  int networks;

  if (containers < 0)
    return containers;
  networks = remove_networks(be, everything_of_mine, err);
  if (networks < 0)
    return networks;
  if (containers + networks > 0)
    rbx_log(&be->ctx->log, RBX_LOG_INFO, "sweep removed containers=%d "
            "networks=%d", containers, networks);
  return containers + networks;
}

int rbx_gc(struct rbx_context *ctx, struct rbx_error *err)
{
  if (!ctx || ctx->opts.runtime == RBX_RUNTIME_HOST)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOTSUP,
                       "gc: the host runtime creates no containers to sweep");
  return docker_sweep(ctx->backend_state, false, err);
}
