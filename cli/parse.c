/* Option parsing for `ringbox run` and `ringbox batch`: the option table,
 * value parsers for sizes, durations and names, and the checks of how
 * options go together. Nothing here talks to a daemon. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MODE_RUN (1u << CLI_MODE_RUN)
#define MODE_BATCH (1u << CLI_MODE_BATCH)
#define MODE_BOTH (MODE_RUN | MODE_BATCH)

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
/* The library's smallest output limit, checked here to name the option. */
#define CLI_OUTPUT_LIMIT_MIN KIB

enum opt_id {
  OPT_IMAGE,
  OPT_MEMORY,
  OPT_CPUS,
  OPT_PIDS_LIMIT,
  OPT_NETWORK,
  OPT_ALLOW_HOST,
  OPT_PROXY_NAME,
  OPT_EGRESS_NETWORK,
  OPT_ENV,
  OPT_WORKDIR,
  OPT_MOUNT,
  OPT_ALLOW_MOUNT,
  OPT_WORKSPACE,
  OPT_TIMEOUT,
  OPT_OUTPUT_LIMIT,
  OPT_USER,
  OPT_WRITABLE_ROOT,
  OPT_RUNTIME,
  OPT_UNSAFE,
  OPT_HOST,
  OPT_INTERACTIVE,
  OPT_JSON,
  OPT_VERBOSE,
  OPT_HELP,
  OPT_CONCURRENCY,
};

struct opt_def {
  const char *name; /* long name without "--" */
  char short_name;  /* 0: none */
  bool has_value;
  unsigned modes;
  enum opt_id id;
  const char *hint; /* what a value looks like, for "needs a value" */
};

static const struct opt_def option_table[] = {
    {"image", 0, true, MODE_BOTH, OPT_IMAGE, "an image name, e.g. alpine:3"},
    {"memory", 'm', true, MODE_BOTH, OPT_MEMORY,
     "MiB or a size such as 512m or 1g"},
    {"cpus", 0, true, MODE_BOTH, OPT_CPUS,
     "a decimal number of CPUs, e.g. 1.5"},
    {"pids-limit", 0, true, MODE_BOTH, OPT_PIDS_LIMIT,
     "a number of processes, or -1 for no limit"},
    {"network", 0, true, MODE_BOTH, OPT_NETWORK, "none, full or limited"},
    {"allow-host", 0, true, MODE_BOTH, OPT_ALLOW_HOST,
     "a host name such as pypi.org or *.example.com"},
    {"proxy-name", 0, true, MODE_BOTH, OPT_PROXY_NAME,
     "the name of a running ringbox proxy container"},
    {"egress-network", 0, true, MODE_BOTH, OPT_EGRESS_NETWORK,
     "a network name such as bridge"},
    {"env", 'e', true, MODE_RUN, OPT_ENV, "KEY=VALUE"},
    {"workdir", 'w', true, MODE_RUN, OPT_WORKDIR,
     "an absolute path in the sandbox"},
    {"mount", 0, true, MODE_RUN, OPT_MOUNT, "src=PATH,dst=PATH[,readonly]"},
    {"allow-mount", 0, true, MODE_BOTH, OPT_ALLOW_MOUNT,
     "a host directory that mounts may come from"},
    {"workspace", 0, true, MODE_BOTH, OPT_WORKSPACE,
     "a host directory that mounts may come from"},
    {"timeout", 0, true, MODE_BOTH, OPT_TIMEOUT,
     "seconds, e.g. 30 or 2.5 (0: none)"},
    {"output-limit", 0, true, MODE_BOTH, OPT_OUTPUT_LIMIT,
     "bytes or a size such as 64k or 16m"},
    {"user", 'u', true, MODE_BOTH, OPT_USER, "UID[:GID] or a user name"},
    {"writable-root", 0, false, MODE_BOTH, OPT_WRITABLE_ROOT, NULL},
    {"runtime", 0, true, MODE_BOTH, OPT_RUNTIME, "docker, podman or host"},
    {"unsafe", 0, false, MODE_BOTH, OPT_UNSAFE, NULL},
    {"host", 'H', true, MODE_BOTH, OPT_HOST,
     "unix:///path/to/socket or tcp://127.0.0.1:PORT"},
    {"interactive", 'i', false, MODE_RUN, OPT_INTERACTIVE, NULL},
    {"json", 0, false, MODE_RUN, OPT_JSON, NULL},
    {"verbose", 'v', false, MODE_BOTH, OPT_VERBOSE, NULL},
    {"help", 'h', false, MODE_BOTH, OPT_HELP, NULL},
    {"concurrency", 0, true, MODE_BATCH, OPT_CONCURRENCY,
     "a number of executions at once, e.g. 8"},
};

#define OPTION_COUNT (sizeof(option_table) / sizeof(option_table[0]))

static void set_msg(char *msg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t size, const char *fmt, ...)
{
  va_list ap;

  if (!msg || size == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, size, fmt, ap);
  va_end(ap);
}

int cli_list_push(struct cli_list *list, void *item)
{
  if (list->count + 1 >= list->cap) {
    size_t cap = list->cap ? list->cap * 2 : 8;
    void **items = realloc(list->items, cap * sizeof(*items));

    if (!items)
      return -ENOMEM;
    list->items = items;
    list->cap = cap;
  }
  list->items[list->count++] = item;
  list->items[list->count] = NULL;
  return 0;
}

void cli_list_free(struct cli_list *list, bool free_items)
{
  if (free_items) {
    for (size_t i = 0; i < list->count; i++)
      free(list->items[i]);
  }
  free(list->items);
  memset(list, 0, sizeof(*list));
}

void cli_config_init(struct cli_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  rbx_options_init(&cfg->opts);
  rbx_policy_init(&cfg->policy);
  cfg->concurrency = 8;
}

void cli_config_free(struct cli_config *cfg)
{
  for (size_t i = 0; i < cfg->mounts_count; i++) {
    free((char *)cfg->mounts[i].source);
    free((char *)cfg->mounts[i].target);
  }
  free(cfg->mounts);
  cli_list_free(&cfg->env, false);
  cli_list_free(&cfg->allow_hosts, false);
  cli_list_free(&cfg->allowed_roots, false);
  cfg->mounts = NULL;
  cfg->mounts_count = 0;
}

/* Returns the length of a plain decimal number at the start of text:
 * digits with at most one '.', and at least one digit. No sign, exponent,
 * hex or spaces, which strtod would otherwise accept. */
static size_t decimal_len(const char *text)
{
  size_t i = 0, digits = 0;
  bool dot = false;

  for (;; i++) {
    if (isdigit((unsigned char)text[i])) {
      digits++;
    } else if (text[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  return digits ? i : 0;
}

/* Reads the decimal number of length len at text; strtold on a validated
 * span, so locale and exotic forms never matter. */
static long double decimal_value(const char *text, size_t len)
{
  char number[64];

  if (len >= sizeof(number))
    return INFINITY;
  memcpy(number, text, len);
  number[len] = '\0';
  return strtold(number, NULL);
}

/* Maps a size suffix (k, kb, kib, m, ... t, or b) to its multiplier.
 * Returns 0 for an unknown suffix and default_unit for none. */
static uint64_t size_unit(const char *suffix, uint64_t default_unit)
{
  static const char units[] = "kmgt";
  const char *at;
  uint64_t unit = KIB;
  size_t len = strlen(suffix);

  if (len == 0)
    return default_unit;
  if (strcasecmp(suffix, "b") == 0)
    return 1;
  at = strchr(units, tolower((unsigned char)suffix[0]));
  if (!at)
    return 0;
  for (const char *u = units; u < at; u++)
    unit *= KIB;
  if (len == 1 || (len == 2 && tolower((unsigned char)suffix[1]) == 'b') ||
      (len == 3 && strcasecmp(suffix + 1, "ib") == 0))
    return unit;
  return 0;
}

int cli_parse_size(const char *text, uint64_t default_unit, uint64_t *bytes,
                   char *reason, size_t reason_size)
{
  size_t len = decimal_len(text);
  uint64_t unit;
  long double value;

  if (len == 0) {
    set_msg(reason, reason_size, "is not a size (write a number, e.g. 64m)");
    return -EINVAL;
  }
  unit = size_unit(text + len, default_unit);
  if (unit == 0) {
    set_msg(reason, reason_size,
            "has an unknown unit \"%s\" (use b, k, m, g or t)", text + len);
    return -EINVAL;
  }
  value = decimal_value(text, len) * (long double)unit;
  if (!(value < 18446744073709551615.0L)) {
    set_msg(reason, reason_size, "is too large");
    return -EINVAL;
  }
  /* Truncation rounds down: value is not negative. */
  *bytes = (uint64_t)value;
  return 0;
}

int cli_parse_memory_mib(const char *text, uint64_t *mib, char *reason,
                         size_t reason_size)
{
  uint64_t bytes;
  int rc = cli_parse_size(text, MIB, &bytes, reason, reason_size);

  if (rc < 0)
    return rc;
  if (bytes < CLI_MEMORY_MIN_MIB * MIB) {
    set_msg(reason, reason_size,
            "is below the minimum of %d MiB (write e.g. 64m)",
            CLI_MEMORY_MIN_MIB);
    return -EINVAL;
  }
  if (bytes % MIB != 0) {
    set_msg(reason, reason_size,
            "is not a whole number of MiB (ringbox sets memory in MiB; "
            "write e.g. %llum)",
            (unsigned long long)(bytes / MIB));
    return -EINVAL;
  }
  *mib = bytes / MIB;
  return 0;
}

static long double duration_unit_ms(const char *suffix)
{
  if (*suffix == '\0' || strcmp(suffix, "s") == 0)
    return 1000;
  if (strcmp(suffix, "ms") == 0)
    return 1;
  if (strcmp(suffix, "m") == 0)
    return 60 * 1000;
  if (strcmp(suffix, "h") == 0)
    return 3600 * 1000;
  if (strcmp(suffix, "d") == 0)
    return 86400 * 1000;
  return 0;
}

int cli_parse_duration_ms(const char *text, uint64_t *ms, char *reason,
                          size_t reason_size)
{
  size_t len = decimal_len(text);
  long double unit, value;

  if (len == 0) {
    set_msg(reason, reason_size,
            "is not a duration (write seconds, e.g. 30 or 2.5; 0 for none)");
    return -EINVAL;
  }
  unit = duration_unit_ms(text + len);
  if (unit == 0) {
    set_msg(reason, reason_size,
            "has an unknown unit \"%s\" (use ms, s, m, h or d; plain numbers "
            "are seconds)",
            text + len);
    return -EINVAL;
  }
  value = decimal_value(text, len) * unit;
  if (!(value <= (long double)CLI_TIMEOUT_MAX_S * 1000)) {
    set_msg(reason, reason_size, "is longer than the maximum of %d days",
            CLI_TIMEOUT_MAX_S / 86400);
    return -EINVAL;
  }
  if (value > 0 && (uint64_t)(value + 0.5L) == 0) {
    set_msg(reason, reason_size, "is shorter than 1 ms (use 0 for no timeout)");
    return -EINVAL;
  }
  *ms = (uint64_t)(value + 0.5L);
  return 0;
}

int cli_parse_cpus(const char *text, double *cpus, char *reason,
                   size_t reason_size)
{
  size_t len = decimal_len(text);
  long double value;

  if (len == 0 || text[len] != '\0') {
    set_msg(reason, reason_size,
            "is not a decimal number (write e.g. 1 or 0.5)");
    return -EINVAL;
  }
  value = decimal_value(text, len);
  if (value < 0.01L) {
    set_msg(reason, reason_size, "is below the minimum of 0.01 CPUs");
    return -EINVAL;
  }
  if (value > CLI_CPUS_MAX) {
    set_msg(reason, reason_size, "is above the maximum of %.0f CPUs",
            CLI_CPUS_MAX);
    return -EINVAL;
  }
  *cpus = (double)value;
  return 0;
}

static int parse_pids_limit(const char *text, int64_t *limit, char *reason,
                            size_t reason_size)
{
  char *end;
  long long value;

  if (strcmp(text, "-1") == 0) {
    *limit = -1;
    return 0;
  }
  if (!isdigit((unsigned char)text[0])) {
    set_msg(reason, reason_size,
            "is not a whole number (write e.g. 256, or -1 "
            "for no limit)");
    return -EINVAL;
  }
  errno = 0;
  value = strtoll(text, &end, 10);
  if (*end != '\0' || errno != 0) {
    set_msg(reason, reason_size,
            "is not a whole number (write e.g. 256, or -1 "
            "for no limit)");
    return -EINVAL;
  }
  if (value < 1 || value > CLI_PIDS_MAX) {
    set_msg(reason, reason_size,
            "is out of range (1 to %d, or -1 for no limit)", CLI_PIDS_MAX);
    return -EINVAL;
  }
  *limit = value;
  return 0;
}

static int parse_concurrency(const char *text, unsigned *concurrency,
                             char *reason, size_t reason_size)
{
  char *end;
  unsigned long value;

  errno = 0;
  value = isdigit((unsigned char)text[0]) ? strtoul(text, &end, 10) : 0;
  if (!isdigit((unsigned char)text[0]) || *end != '\0' || errno != 0 ||
      value < 1 || value > CLI_CONCURRENCY_MAX) {
    set_msg(reason, reason_size, "is not a whole number from 1 to %d",
            CLI_CONCURRENCY_MAX);
    return -EINVAL;
  }
  *concurrency = (unsigned)value;
  return 0;
}

int cli_parse_network(const char *text, enum rbx_network *network, char *reason,
                      size_t reason_size)
{
  if (strcmp(text, "none") == 0) {
    *network = RBX_NET_NONE;
  } else if (strcmp(text, "full") == 0) {
    *network = RBX_NET_FULL;
  } else if (strcmp(text, "limited") == 0) {
    *network = RBX_NET_LIMITED;
  } else {
    set_msg(reason, reason_size,
            "is not a network mode (use none, full or "
            "limited)");
    return -EINVAL;
  }
  return 0;
}

int cli_parse_runtime(const char *text, enum rbx_runtime *runtime, char *reason,
                      size_t reason_size)
{
  if (strcmp(text, "docker") == 0) {
    *runtime = RBX_RUNTIME_DOCKER;
  } else if (strcmp(text, "podman") == 0) {
    *runtime = RBX_RUNTIME_PODMAN;
  } else if (strcmp(text, "host") == 0) {
    *runtime = RBX_RUNTIME_HOST;
  } else {
    set_msg(reason, reason_size,
            "is not a runtime (use docker, podman or host)");
    return -EINVAL;
  }
  return 0;
}

int cli_check_env(const char *entry, char *reason, size_t reason_size)
{
  const char *eq = strchr(entry, '=');

  if (!eq) {
    set_msg(reason, reason_size,
            "has no value: ringbox never copies the host environment into "
            "the sandbox, so give the value itself (%s=VALUE)",
            entry);
    return -EINVAL;
  }
  if (eq == entry) {
    set_msg(reason, reason_size, "has an empty name (write KEY=VALUE)");
    return -EINVAL;
  }
  return 0;
}

static int parse_bool_word(const char *value, bool *out)
{
  if (!value || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
    *out = true;
  } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
    *out = false;
  } else {
    return -EINVAL;
  }
  return 0;
}

/* Applies one "key=value" (or bare "readonly") field of --mount. */
static int apply_mount_field(char *field, char **source, char **target,
                             bool *read_only, char *reason, size_t reason_size)
{
  char *eq = strchr(field, '=');
  char *value = eq ? eq + 1 : NULL;
  char **slot = NULL;

  if (eq)
    *eq = '\0';
  if (strcmp(field, "src") == 0 || strcmp(field, "source") == 0) {
    slot = source;
  } else if (strcmp(field, "dst") == 0 || strcmp(field, "target") == 0 ||
             strcmp(field, "destination") == 0) {
    slot = target;
  } else if (strcmp(field, "readonly") == 0 || strcmp(field, "ro") == 0) {
    if (parse_bool_word(value, read_only) < 0) {
      set_msg(reason, reason_size, "has readonly=%s (use true or false)",
              value);
      return -EINVAL;
    }
    return 0;
  } else if (strcmp(field, "type") == 0) {
    if (!value || strcmp(value, "bind") != 0) {
      set_msg(reason, reason_size,
              "has type=%s, but only bind mounts exist here",
              value ? value : "");
      return -EINVAL;
    }
    return 0;
  } else {
    set_msg(reason, reason_size,
            "has an unknown field \"%s\" (use src=, dst= and readonly)", field);
    return -EINVAL;
  }
  if (!value || value[0] != '/') {
    set_msg(reason, reason_size,
            "needs an absolute path after %s= (e.g. %s)", field,
            strcmp(field, "src") == 0 ? "src=$PWD/data" : "dst=/data");
    return -EINVAL;
  }
  if (*slot) {
    set_msg(reason, reason_size, "sets %s twice", field);
    return -EINVAL;
  }
  *slot = strdup(value);
  return *slot ? 0 : -ENOMEM;
}

int cli_parse_mount(const char *text, struct rbx_mount *mount, char *reason,
                    size_t reason_size)
{
  char *copy = strdup(text), *save = NULL, *field;
  char *source = NULL, *target = NULL;
  bool read_only = false;
  int rc = 0;

  if (!copy)
    return -ENOMEM;
  for (field = strtok_r(copy, ",", &save); field && rc == 0;
       field = strtok_r(NULL, ",", &save))
    rc = apply_mount_field(field, &source, &target, &read_only, reason,
                           reason_size);
  if (rc == 0 && (!source || !target)) {
    set_msg(reason, reason_size, "needs both src=PATH and dst=PATH");
    rc = -EINVAL;
  }
  free(copy);
  if (rc < 0) {
    free(source);
    free(target);
    return rc;
  }
  mount->source = source;
  mount->target = target;
  mount->read_only = read_only;
  return 0;
}

static int add_mount(struct cli_config *cfg, const char *text, char *reason,
                     size_t reason_size)
{
  struct rbx_mount mount, *mounts;
  int rc;

  if (cfg->mounts_count >= CLI_LIST_MAX) {
    set_msg(reason, reason_size, "is one mount too many (at most %d)",
            CLI_LIST_MAX);
    return -EINVAL;
  }
  rc = cli_parse_mount(text, &mount, reason, reason_size);
  if (rc < 0)
    return rc;
  mounts = realloc(cfg->mounts, (cfg->mounts_count + 1) * sizeof(*mounts));
  if (!mounts) {
    free((char *)mount.source);
    free((char *)mount.target);
    return -ENOMEM;
  }
  mounts[cfg->mounts_count++] = mount;
  cfg->mounts = mounts;
  return 0;
}

static int push_limited(struct cli_list *list, const char *item, char *reason,
                        size_t reason_size)
{
  if (list->count >= CLI_LIST_MAX) {
    set_msg(reason, reason_size, "is one too many (at most %d)", CLI_LIST_MAX);
    return -EINVAL;
  }
  return cli_list_push(list, (void *)item);
}

static int apply_number_option(struct cli_config *cfg, enum opt_id id,
                               const char *value, char *reason,
                               size_t reason_size)
{
  struct rbx_policy *policy = &cfg->policy;

  switch (id) {
  case OPT_MEMORY:
    return cli_parse_memory_mib(value, &policy->memory_mib, reason,
                                reason_size);
  case OPT_CPUS:
    return cli_parse_cpus(value, &policy->cpus, reason, reason_size);
  case OPT_PIDS_LIMIT:
    return parse_pids_limit(value, &policy->pids_limit, reason, reason_size);
  case OPT_TIMEOUT:
    return cli_parse_duration_ms(value, &policy->timeout_ms, reason,
                                 reason_size);
  case OPT_CONCURRENCY:
    return parse_concurrency(value, &cfg->concurrency, reason, reason_size);
  case OPT_OUTPUT_LIMIT: {
    int rc =
        cli_parse_size(value, 1, &policy->output_limit, reason, reason_size);

    if (rc == 0 && policy->output_limit < CLI_OUTPUT_LIMIT_MIN) {
      set_msg(reason, reason_size, "is below the minimum of 1k (e.g. 64k)");
      rc = -EINVAL;
    }
    return rc;
  }
  default:
    return -ENOENT;
  }
}

static int require_text(const char *value, char *reason, size_t reason_size)
{
  if (value[0] == '\0') {
    set_msg(reason, reason_size, "is empty");
    return -EINVAL;
  }
  return 0;
}

static int apply_option(struct cli_config *cfg, const struct opt_def *def,
                        const char *value, char *reason, size_t reason_size)
{
  struct rbx_policy *policy = &cfg->policy;
  int rc = apply_number_option(cfg, def->id, value, reason, reason_size);

  if (rc != -ENOENT)
    return rc;
  if (def->has_value && def->id != OPT_USER &&
      require_text(value, reason, reason_size) < 0)
    return -EINVAL;
  switch (def->id) {
  case OPT_IMAGE:
    policy->image = value;
    return 0;
  case OPT_NETWORK:
    return cli_parse_network(value, &policy->network, reason, reason_size);
  case OPT_ALLOW_HOST:
    return push_limited(&cfg->allow_hosts, value, reason, reason_size);
  case OPT_PROXY_NAME:
    policy->proxy_name = value;
    cfg->limited_option = "--proxy-name";
    return 0;
  case OPT_EGRESS_NETWORK:
    policy->egress_network = value;
    cfg->limited_option = "--egress-network";
    return 0;
  case OPT_ENV:
    rc = cli_check_env(value, reason, reason_size);
    return rc < 0 ? rc : push_limited(&cfg->env, value, reason, reason_size);
  case OPT_WORKDIR:
    if (value[0] != '/') {
      set_msg(reason, reason_size,
              "is not an absolute path (write e.g. /work)");
      return -EINVAL;
    }
    cfg->workdir = value;
    return 0;
  case OPT_MOUNT:
    return add_mount(cfg, value, reason, reason_size);
  case OPT_ALLOW_MOUNT:
    if (value[0] != '/') {
      set_msg(reason, reason_size, "needs an absolute path (e.g. $PWD/%s)",
              value);
      return -EINVAL;
    }
    return push_limited(&cfg->allowed_roots, value, reason, reason_size);
  case OPT_WORKSPACE:
    if (value[0] != '/') {
      set_msg(reason, reason_size, "needs an absolute path (e.g. $PWD/%s)",
              value);
      return -EINVAL;
    }
    policy->workspace_root = value;
    return 0;
  case OPT_USER:
    policy->user = value;
    return 0;
  case OPT_RUNTIME:
    return cli_parse_runtime(value, &cfg->opts.runtime, reason, reason_size);
  case OPT_HOST:
    if (strncmp(value, "unix://", 7) != 0 && strncmp(value, "tcp://", 6)) {
      set_msg(reason, reason_size,
              "is not a daemon URL (write unix:///path or "
              "tcp://127.0.0.1:PORT)");
      return -EINVAL;
    }
    cfg->opts.daemon_url = value;
    return 0;
  case OPT_WRITABLE_ROOT:
    policy->writable_root = true;
    return 0;
  case OPT_UNSAFE:
    cfg->unsafe = true;
    return 0;
  case OPT_INTERACTIVE:
    cfg->pass_stdin = true;
    return 0;
  case OPT_JSON:
    cfg->json = true;
    return 0;
  case OPT_VERBOSE:
    cfg->verbosity++;
    return 0;
  case OPT_HELP:
    cfg->help = true;
    return 0;
  default:
    return 0;
  }
}

static const struct opt_def *find_long(const char *name, size_t len)
{
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (strlen(option_table[i].name) == len &&
        strncmp(option_table[i].name, name, len) == 0)
      return &option_table[i];
  }
  return NULL;
}

static const struct opt_def *find_short(char name)
{
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (option_table[i].short_name == name)
      return &option_table[i];
  }
  return NULL;
}

static const char *mode_word(enum cli_mode mode)
{
  return mode == CLI_MODE_RUN ? "run" : "batch";
}

/* Checks that def may be used in mode; spelled is the option as typed. */
static int check_mode(const struct opt_def *def, enum cli_mode mode,
                      const char *spelled, char *msg, size_t msg_size)
{
  if (def->modes & (1u << mode))
    return 0;
  if (mode == CLI_MODE_BATCH && strcmp(def->name, "json") == 0)
    set_msg(msg, msg_size,
            "%s is not a batch option: batch always writes JSON results",
            spelled);
  else if (mode == CLI_MODE_BATCH)
    set_msg(msg, msg_size,
            "%s is not a batch option: set it per request in the JSON line",
            spelled);
  else
    set_msg(msg, msg_size, "%s is only a batch option", spelled);
  return -EINVAL;
}

static int apply_checked(struct cli_config *cfg, const struct opt_def *def,
                         const char *spelled, const char *value, char *msg,
                         size_t msg_size)
{
  char reason[CLI_MESSAGE_MAX];
  int rc;

  reason[0] = '\0';
  rc = apply_option(cfg, def, value, reason, sizeof(reason));
  if (rc == -ENOMEM) {
    set_msg(msg, msg_size, "out of memory while reading %s", spelled);
  } else if (rc < 0) {
    set_msg(msg, msg_size, "invalid %s value \"%s\": it %s", spelled, value,
            reason);
  }
  return rc;
}

/* Handles one "--name[=value]" argument; *index moves past a separate
 * value. */
static int parse_long(struct cli_config *cfg, enum cli_mode mode, int argc,
                      char **argv, int *index, char *msg, size_t msg_size)
{
  const char *arg = argv[*index], *name = arg + 2;
  const char *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  const struct opt_def *def = find_long(name, len);
  char spelled[64];

  snprintf(spelled, sizeof(spelled), "--%.*s", (int)len, name);
  if (!def) {
    set_msg(msg, msg_size, "unknown option %s (see ringbox %s --help)", spelled,
            mode_word(mode));
    return -EINVAL;
  }
  if (check_mode(def, mode, spelled, msg, msg_size) < 0)
    return -EINVAL;
  if (!def->has_value) {
    if (eq) {
      set_msg(msg, msg_size, "%s takes no value (remove \"=%s\")", spelled,
              eq + 1);
      return -EINVAL;
    }
    return apply_checked(cfg, def, spelled, NULL, msg, msg_size);
  }
  if (eq)
    return apply_checked(cfg, def, spelled, eq + 1, msg, msg_size);
  if (*index + 1 >= argc) {
    set_msg(msg, msg_size, "%s needs a value: %s", spelled, def->hint);
    return -EINVAL;
  }
  (*index)++;
  return apply_checked(cfg, def, spelled, argv[*index], msg, msg_size);
}

/* Handles a cluster of short options such as "-iv" or "-eKEY=VALUE". */
static int parse_short(struct cli_config *cfg, enum cli_mode mode, int argc,
                       char **argv, int *index, char *msg, size_t msg_size)
{
  const char *arg = argv[*index];

  for (size_t j = 1; arg[j] != '\0'; j++) {
    const struct opt_def *def = find_short(arg[j]);
    char spelled[3] = {'-', arg[j], '\0'};
    const char *value;

    if (!def) {
      set_msg(msg, msg_size, "unknown option %s (see ringbox %s --help)",
              spelled, mode_word(mode));
      return -EINVAL;
    }
    if (check_mode(def, mode, spelled, msg, msg_size) < 0)
      return -EINVAL;
    if (!def->has_value) {
      if (apply_checked(cfg, def, spelled, NULL, msg, msg_size) < 0)
        return -EINVAL;
      continue;
    }
    if (arg[j + 1] != '\0') {
      value = arg + j + 1;
    } else if (*index + 1 < argc) {
      value = argv[++(*index)];
    } else {
      set_msg(msg, msg_size, "%s needs a value: %s", spelled, def->hint);
      return -EINVAL;
    }
    return apply_checked(cfg, def, spelled, value, msg, msg_size);
  }
  return 0;
}

static int check_network(const struct cli_config *cfg, char *msg,
                         size_t msg_size)
{
  bool limited = cfg->policy.network == RBX_NET_LIMITED;

  if (limited && cfg->allow_hosts.count == 0) {
    set_msg(msg, msg_size,
            "--network limited needs at least one "
            "--allow-host HOST (e.g. --allow-host pypi.org)");
    return -EINVAL;
  }
  if (!limited && cfg->allow_hosts.count > 0) {
    set_msg(msg, msg_size,
            "--allow-host %s only applies with --network limited; add "
            "--network limited or drop --allow-host",
            (const char *)cfg->allow_hosts.items[0]);
    return -EINVAL;
  }
  if (!limited && cfg->limited_option) {
    set_msg(msg, msg_size,
            "%s only applies with --network limited; add "
            "--network limited or drop it",
            cfg->limited_option);
    return -EINVAL;
  }
  return 0;
}

static int check_config(const struct cli_config *cfg, enum cli_mode mode,
                        char *msg, size_t msg_size)
{
  bool host = cfg->opts.runtime == RBX_RUNTIME_HOST;

  if (mode == CLI_MODE_RUN && cfg->command_count == 0) {
    set_msg(msg, msg_size,
            "missing command: write it after the options, "
            "e.g. ringbox run -- echo hello");
    return -EINVAL;
  }
  if (host && !cfg->unsafe) {
    set_msg(msg, msg_size,
            "--runtime host runs the command on this machine with NO "
            "isolation; add --unsafe to confirm that this is what you want");
    return -EINVAL;
  }
  if (!host && cfg->unsafe) {
    set_msg(msg, msg_size,
            "--unsafe only applies to --runtime host; drop "
            "it");
    return -EINVAL;
  }
  if (cfg->mounts_count > 0 && cfg->allowed_roots.count == 0 &&
      !cfg->policy.workspace_root) {
    set_msg(msg, msg_size,
            "--mount src=%s needs --workspace DIR or --allow-mount DIR with "
            "a directory that contains it",
            cfg->mounts[0].source);
    return -EINVAL;
  }
  return check_network(cfg, msg, msg_size);
}

static int take_positional(struct cli_config *cfg, enum cli_mode mode, int argc,
                           char **argv, int index, char *msg, size_t msg_size)
{
  if (mode == CLI_MODE_RUN) {
    cfg->command = argv + index;
    cfg->command_count = argc - index;
    if (cfg->command_count > CLI_ARGV_MAX) {
      set_msg(msg, msg_size, "the command has %d words; at most %d fit",
              cfg->command_count, CLI_ARGV_MAX);
      return -EINVAL;
    }
    return 0;
  }
  if (argc - index > 1) {
    set_msg(msg, msg_size,
            "unexpected argument \"%s\": batch reads one FILE (or - for "
            "standard input)",
            argv[index + 1]);
    return -EINVAL;
  }
  if (argc - index == 1)
    cfg->input_path = argv[index];
  return 0;
}

int cli_parse_args(struct cli_config *cfg, enum cli_mode mode, int argc,
                   char **argv, char *msg, size_t msg_size)
{
  int i, rc = 0;

  for (i = 0; i < argc && rc == 0; i++) {
    const char *arg = argv[i];

    if (strcmp(arg, "--") == 0) {
      i++;
      break;
    }
    if (arg[0] != '-' || arg[1] == '\0')
      break;
    if (arg[1] == '-')
      rc = parse_long(cfg, mode, argc, argv, &i, msg, msg_size);
    else
      rc = parse_short(cfg, mode, argc, argv, &i, msg, msg_size);
  }
  if (rc < 0)
    return rc;
  if (i < argc)
    rc = take_positional(cfg, mode, argc, argv, i, msg, msg_size);
  if (rc < 0)
    return rc;
  cfg->policy.allow_hosts = (const char *const *)cfg->allow_hosts.items;
  cfg->policy.allow_hosts_count = cfg->allow_hosts.count;
  cfg->policy.allowed_roots = (const char *const *)cfg->allowed_roots.items;
  cfg->policy.allowed_roots_count = cfg->allowed_roots.count;
  if (cfg->help)
    return 0;
  return check_config(cfg, mode, msg, msg_size);
}
