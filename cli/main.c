/* The ringbox command: picks the subcommand (run, batch, gc, proxy) and
 * contains what they share: help texts, the stderr log sink and the warning
 * for the host runtime. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#ifndef RBX_VERSION
#define RBX_VERSION "unknown"
#endif

static const char *level_name(enum rbx_log_level level)
{
  switch (level) {
  case RBX_LOG_ERROR:
    return "error";
  case RBX_LOG_WARN:
    return "warn";
  case RBX_LOG_INFO:
    return "info";
  case RBX_LOG_DEBUG:
    return "debug";
  }
  return "log";
}

void cli_log_sink(enum rbx_log_level level, const char *line, void *userdata)
{
  (void)userdata;
  fprintf(stderr, "ringbox: %s: %s\n", level_name(level), line);
}

void cli_apply_verbosity(struct rbx_options *opts, int verbosity)
{
  int level = RBX_LOG_WARN + verbosity;

  opts->log_fn = cli_log_sink;
  opts->log_userdata = NULL;
  opts->log_level =
      level > RBX_LOG_DEBUG ? RBX_LOG_DEBUG : (enum rbx_log_level)level;
}

void cli_warn_host_runtime(void)
{
  fputs("ringbox: WARNING: --runtime host gives NO isolation. The command "
        "runs directly on\n"
        "ringbox: WARNING: this machine as this user: it can read and change "
        "your files,\n"
        "ringbox: WARNING: use the network and start processes. Memory, CPU "
        "and network\n"
        "ringbox: WARNING: policy options are not enforced the way a "
        "container enforces them.\n",
        stderr);
}

/* Writes a byte count as "N MiB" or "N KiB" when it is a whole number of
 * them, else as "N bytes". */
static void format_bytes(char *text, size_t size, uint64_t bytes)
{
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
    snprintf(text, size, "%llu MiB", (unsigned long long)(bytes >> 20));
  else if (bytes >= 1024 && bytes % 1024 == 0)
    snprintf(text, size, "%llu KiB", (unsigned long long)(bytes >> 10));
  else
    snprintf(text, size, "%llu bytes", (unsigned long long)bytes);
}

static void print_policy_help(FILE *out, const struct rbx_policy *defaults)
{
  char output_limit[32];

  format_bytes(output_limit, sizeof(output_limit), defaults->output_limit);
  fprintf(out,
          "Sandbox:\n"
          "      --image IMAGE        image to run (default %s)\n"
          "  -m, --memory SIZE        memory limit: plain numbers are MiB, "
          "or 512m, 1g\n"
          "                           (default %llu MiB, minimum %d MiB)\n"
          "      --cpus N             CPUs, decimal (default %g)\n"
          "      --pids-limit N       maximum processes; -1 for no limit "
          "(default %lld)\n"
          "      --timeout SECONDS    wall-clock limit, decimal; 0 for none "
          "(default %g)\n"
          "      --output-limit SIZE  bytes kept per stream: plain bytes, or "
          "64k, 16m\n"
          "                           (default %s)\n"
          "  -u, --user USER          UID[:GID] or a name; \"\" keeps the "
          "image's\n"
          "                           (default %s)\n"
          "      --writable-root      writable root filesystem (default "
          "read-only)\n",
          defaults->image ? defaults->image : "the library's",
          (unsigned long long)defaults->memory_mib, CLI_MEMORY_MIN_MIB,
          defaults->cpus, (long long)defaults->pids_limit,
          (double)defaults->timeout_ms / 1000, output_limit,
          defaults->user ? defaults->user : "the image's");
  fputs("Network:\n"
        "      --network MODE       none, full or limited (default none)\n"
        "      --allow-host HOST    with --network limited: a host reachable "
        "over\n"
        "                           HTTP(S), e.g. pypi.org or *.example.com; "
        "repeatable,\n"
        "                           at least one\n"
        "      --proxy-name NAME    with --network limited: one shared proxy, "
        "created\n"
        "                           on first use and kept until you remove "
        "it\n"
        "                           (docker rm -f NAME); default: one per "
        "execution\n"
        "      --egress-network NET with --network limited: the proxy's "
        "outside network\n"
        "                           (default bridge)\n"
        "Mounts:\n"
        "      --allow-mount DIR    mounts may come from under DIR; "
        "repeatable\n"
        "      --workspace DIR      mounts may come from under DIR\n"
        "Engine:\n"
        "      --runtime NAME       docker, podman or host (default "
        "docker); host has\n"
        "                           NO isolation, see below\n"
        "      --unsafe             required with --runtime host\n"
        "  -H, --host URL           daemon socket: unix:///PATH or "
        "tcp://127.0.0.1:PORT\n"
        "                           (default DOCKER_HOST, else the runtime's "
        "socket)\n"
        "  -v, --verbose            log to stderr at info level; -vv for "
        "debug\n"
        "  -h, --help               print this help\n",
        out);
}

static const char host_warning_text[] =
    "\n!!! --runtime host has NO ISOLATION: the command runs directly on this "
    "machine\n"
    "!!! as the calling user, with its files and network. It needs --unsafe "
    "and a\n"
    "!!! build with -Dunsafe_host=true. Never use it for untrusted "
    "commands.\n";

void cli_print_run_help(FILE *out)
{
  struct rbx_policy defaults;

  rbx_policy_init(&defaults);
  fputs("Usage: ringbox run [OPTIONS] [--] COMMAND [ARG...]\n\n"
        "Runs COMMAND once in a new locked-down container and passes its "
        "stdout,\n"
        "stderr and exit code through, byte for byte.\n\n",
        out);
  print_policy_help(out, &defaults);
  fprintf(out,
          "Command:\n"
          "  -e, --env KEY=VALUE      set a variable; repeatable. Nothing of "
          "the host\n"
          "                           environment reaches the sandbox.\n"
          "  -w, --workdir DIR        working directory in the sandbox\n"
          "                           (default: the image's)\n"
          "  -i, --interactive        pass standard input, read whole (at "
          "most %zu MiB)\n"
          "      --mount src=PATH,dst=PATH[,readonly]\n"
          "                           bind mount a host path (also source=, "
          "target=, ro);\n"
          "                           repeatable; needs --workspace or "
          "--allow-mount\n"
          "Output:\n"
          "      --json               print one JSON object with the result "
          "(docs/CLI.md)\n\n"
          "Exit status: the command's own; 124 timed out; 125 bad usage or "
          "the sandbox\n"
          "failed; 130 cancelled; 137 out of memory; 141 output limit "
          "reached.\n",
          CLI_STDIN_MAX >> 20);
  fputs(host_warning_text, out);
}

void cli_print_batch_help(FILE *out)
{
  struct rbx_policy defaults;

  rbx_policy_init(&defaults);
  fputs("Usage: ringbox batch [OPTIONS] [FILE|-]\n\n"
        "Reads one JSON request per line from FILE (default: standard input) "
        "and\n"
        "writes one JSON result line per execution as each one finishes. The "
        "options\n"
        "below are defaults that a request's own fields override "
        "(docs/BATCH.md).\n\n"
        "      --concurrency N      executions at once (default 8)\n",
        out);
  print_policy_help(out, &defaults);
  fputs("\nExit status: 0 when the input is done (failed requests are "
        "reported in\n"
        "their result lines); 125 bad usage or the batch could not start; "
        "130 on\n"
        "SIGINT and 143 on SIGTERM, after every running execution is "
        "cancelled.\n",
        out);
  fputs(host_warning_text, out);
}

static void print_usage(FILE *out)
{
  fputs("Usage: ringbox COMMAND [OPTIONS]\n\n"
        "Runs untrusted tool commands in short-lived, locked-down "
        "containers.\n\n"
        "Commands:\n"
        "  run      run one command in a sandbox (ringbox run --help)\n"
        "  batch    run JSON requests read line by line (ringbox batch "
        "--help)\n"
        "  gc       remove containers and networks left by ringbox processes "
        "that are gone\n"
        "  proxy    run the HTTP(S) egress proxy of --network limited\n\n"
        "Options:\n"
        "  --version    print the version\n"
        "  -h, --help   print this help\n",
        out);
}

int main(int argc, char **argv)
{
  const char *command = argc > 1 ? argv[1] : NULL;

  if (!command) {
    print_usage(stderr);
    return CLI_EXIT_FAILURE;
  }
  if (strcmp(command, "run") == 0)
    return cli_run_main(argc - 2, argv + 2);
  if (strcmp(command, "batch") == 0) {
    rbx_raise_fd_limit();
    return cli_batch_main(argc - 2, argv + 2);
  }
  if (strcmp(command, "gc") == 0)
    return cli_gc_main(argc - 2, argv + 2);
  if (strcmp(command, "proxy") == 0)
    return cli_proxy_main(argc - 2, argv + 2);
  if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
    printf("ringbox %s\n", RBX_VERSION);
    return 0;
  }
  if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
      strcmp(command, "help") == 0) {
    print_usage(stdout);
    return 0;
  }
  fprintf(stderr,
          "ringbox: unknown command \"%s\" (use run, batch, gc or proxy; see "
          "ringbox --help)\n",
          command);
  return CLI_EXIT_FAILURE;
}
