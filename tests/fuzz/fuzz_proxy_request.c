/* libFuzzer target: bytes as a client's request to the egress proxy, fed to
 * the head parser in growing prefixes whose step the first byte picks, then
 * judged and, when allowed, rewritten for the upstream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proxy_config config;
static bool config_ready;

static void load_config(void)
{
  struct rbx_error err;

  if (config_ready)
    return;
  memset(&config, 0, sizeof(config));
  if (proxy_config_parse_hosts(&config, "allowed.test,*.example.com,10.0.0.1",
                               &err) < 0 ||
      proxy_config_parse_ports(&config, "80,443", &err) < 0)
    abort();
  config_ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct proxy_head head;
  struct proxy_decision decision;
  const char *buf = (const char *)data + 1;
  const char *why = NULL;
  size_t step, len = 0;
  int rc = PROXY_FEED_MORE;

  if (size < 1)
    return 0;
  load_config();
  step = data[0] ? data[0] : size;
  size--;
  proxy_head_init(&head);
  while (rc == PROXY_FEED_MORE && len < size) {
    len = len + step < size ? len + step : size;
    rc = proxy_head_feed(&head, buf, len, &why);
  }
  if (rc < 0 && !why)
    abort();
  if (rc != PROXY_FEED_DONE)
    return 0;
  if (head.head_len > len)
    abort();
  proxy_decide(&config, &head, buf, &decision);
  if (decision.status == 0 && !decision.is_connect) {
    size_t out_size = head.head_len + PROXY_UPSTREAM_HEAD_EXTRA;
    char *out = malloc(out_size);

    if (!out)
      return 0;
    if (proxy_upstream_head(&head, buf, &decision, out, out_size) < 0)
      abort();
    free(out);
  }
  return 0;
}
