/* Limited network for the Engine API backend: an internal network per
 * execution and an egress proxy on it. */
#include <errno.h>

#include "backends/docker.h"
#include "engine/error.h"

int docker_net_set_up(struct docker_backend *be, struct rbx_exec *exec,
                      struct docker_net **out, docker_net_fn ready,
                      void *data, struct rbx_error *err)
{
  (void)be;
  (void)exec;
  (void)out;
  (void)ready;
  (void)data;
  return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOTSUP,
                     "network limited is not available yet");
}

const char *docker_net_name(const struct docker_net *net)
{
  (void)net;
  return "none";
}

const char *docker_net_proxy_url(const struct docker_net *net)
{
  (void)net;
  return "";
}

void docker_net_teardown(struct docker_net *net, docker_net_fn gone,
                         void *data)
{
  (void)net;
  gone(data, NULL);
}
