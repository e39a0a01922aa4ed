/* The ringbox-proxy program: the egress allowlist proxy run on its own,
 * configured by PROXY_* environment variables (see docs/PROXY.md). */
#include "proxy/proxy.h"

int main(void)
{
  return proxy_main();
}
