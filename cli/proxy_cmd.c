/* `ringbox proxy`: runs the HTTP(S) egress proxy that --network limited
 * puts in front of a sandbox. The proxy reads its settings itself. */
#include "cli/cli.h"

#include <string.h>

#include "proxy/proxy.h"

int cli_proxy_main(int argc, char **argv)
{
  if (argc > 0 &&
      (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
    fputs("Usage: ringbox proxy\n\n"
          "Runs the egress proxy of --network limited in the foreground. It "
          "is started\n"
          "inside the proxy container by ringbox itself; it takes no "
          "options.\n",
          stdout);
    return 0;
  }
  if (argc > 0) {
    fprintf(stderr,
            "ringbox: proxy takes no arguments, but got \"%s\" (see ringbox "
            "proxy --help)\n",
            argv[0]);
    return CLI_EXIT_FAILURE;
  }
  return proxy_main();
}
