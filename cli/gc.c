/* `ringbox gc`: removes containers and networks that ringbox processes
 * left behind when they died or ran past their deadline. */
#include "cli/cli.h"

#include <string.h>

static void print_gc_help(FILE *out)
{
  fputs("Usage: ringbox gc [OPTIONS]\n\n"
        "Removes the containers and networks of ringbox owners that are gone "
        "or past\n"
        "their deadline, and prints how many objects were removed.\n\n"
        "      --runtime NAME   docker or podman (default docker)\n"
        "  -H, --host URL       daemon socket: unix:///PATH or "
        "tcp://127.0.0.1:PORT\n"
        "  -v, --verbose        log to stderr at info level; -vv for debug\n"
        "  -h, --help           print this help\n",
        out);
}

/* Parses the few options of gc. Returns 1 for help, 0, or -1 after
 * printing what was wrong. */
static int parse_gc_args(int argc, char **argv, struct rbx_options *opts,
                         int *verbosity)
{
  char reason[CLI_MESSAGE_MAX];

  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    bool has_next = i + 1 < argc;

    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
      return 1;
    if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
      (*verbosity)++;
    } else if (strcmp(arg, "-vv") == 0) {
      *verbosity += 2;
    } else if (strcmp(arg, "--runtime") == 0 && has_next) {
      if (cli_parse_runtime(argv[++i], &opts->runtime, reason, sizeof(reason)) <
              0 ||
          opts->runtime == RBX_RUNTIME_HOST) {
        fprintf(stderr,
                "ringbox: invalid --runtime value \"%s\": use docker "
                "or podman\n",
                argv[i]);
        return -1;
      }
    } else if ((strcmp(arg, "--host") == 0 || strcmp(arg, "-H") == 0) &&
               has_next) {
      opts->daemon_url = argv[++i];
    } else {
      fprintf(stderr,
              "ringbox: unknown or incomplete gc option \"%s\" (see ringbox "
              "gc --help)\n",
              arg);
      return -1;
    }
  }
  return 0;
}

int cli_gc_main(int argc, char **argv)
{
  struct rbx_options opts;
  struct rbx_context *ctx = NULL;
  struct rbx_error err = {0};
  int verbosity = 0, rc;

  rbx_options_init(&opts);
  rc = parse_gc_args(argc, argv, &opts, &verbosity);
  if (rc != 0) {
    if (rc > 0)
      print_gc_help(stdout);
    return rc > 0 ? 0 : CLI_EXIT_FAILURE;
  }
  cli_apply_verbosity(&opts, verbosity);
  /* gc sweeps by itself; a start-up sweep would hide its count. */
  opts.no_startup_sweep = true;
  rc = rbx_context_new(&ctx, &opts, &err);
  if (rc == 0)
    rc = rbx_gc(ctx, &err);
  rbx_context_free(ctx);
  if (rc < 0) {
    fprintf(stderr, "ringbox: %s: %s\n", rbx_error_kind_name(err.kind),
            err.message);
    return CLI_EXIT_FAILURE;
  }
  printf("removed %d object%s\n", rc, rc == 1 ? "" : "s");
  return 0;
}
