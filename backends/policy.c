/* Policy defaults and validation, the deep copy of a spec, mount source
 * checks and bounded output capture: the checks every backend relies on
 * before anything reaches a runtime. */
#include "backends/exec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

/* Docker's error message gives 0.01 CPU as the minimum. With Docker's 100 ms
 * CFS period that is a 1 ms quota, the kernel's minimum. Docker also rejects
 * more CPUs than the host has, which only the daemon can check. */
#define POLICY_CPUS_MIN 0.01
#define POLICY_CPUS_MAX 1024.0
/* Docker rejects a memory limit below 6 MiB (6291456 bytes). */
#define POLICY_MEMORY_MIN_MIB 6
/* Sizes in MiB become int64 byte counts in Docker's API. */
#define POLICY_MIB_MAX ((uint64_t)INT64_MAX >> 20)
#define POLICY_OUTPUT_LIMIT_MIN 1024
/* 30 days: keeps deadline sums far from overflow. */
#define POLICY_TIMEOUT_MAX_MS (30ULL * 24 * 3600 * 1000)
/* stdin, stdout and stderr. */
#define POLICY_NOFILE_MIN 3
#define POLICY_IMAGE_MAX 512
#define POLICY_NAME_MAX 255
#define POLICY_HOSTNAME_MAX 253
#define POLICY_LABEL_MAX 63
/* Allowed roots besides the workspace; each one costs a realpath call per
 * mount. */
#define POLICY_ALLOWED_ROOTS_MAX 32

/* One argv or env string: the kernel's MAX_ARG_STRLEN. */
#define SPEC_ARG_MAX 131072
/* All argv and env strings together. execve allows about 2 MiB (a quarter
 * of the default 8 MiB stack limit), so 1 MiB leaves room. */
#define SPEC_ARGS_TOTAL_MAX (1024 * 1024)
/* Keep the duplicate checks quick and the create request small. */
#define SPEC_ENV_MAX 4096
#define SPEC_MOUNTS_MAX 128

#define OUTPUT_INITIAL_CAPACITY 4096

void rbx_policy_init(struct rbx_policy *policy)
{
  memset(policy, 0, sizeof(*policy));
  policy->image = "ringbox-tools:" RBX_VERSION;
  policy->network = RBX_NET_NONE;
  policy->cpus = 2;
  policy->memory_mib = 1024;
  policy->pids_limit = 256;
  policy->writable_root = false;
  policy->user = "65534:65534";
  policy->keep_capabilities = false;
  policy->allow_new_privileges = false;
  policy->tmp_size_mib = 64;
  policy->nofile_limit = 1024;
  policy->timeout_ms = 30000;
  policy->output_limit = 16 * 1024 * 1024;
  policy->proxy_image = "ringbox-proxy:" RBX_VERSION;
  policy->proxy_port = 3128;
  policy->egress_network = "bridge";
}

void rbx_options_init(struct rbx_options *opts)
{
  memset(opts, 0, sizeof(*opts));
  opts->runtime = RBX_RUNTIME_DOCKER;
  opts->max_in_flight = 64;
  opts->max_connections = 16;
  opts->ring_entries = 256;
  opts->holder_pool_max = 32;
  opts->log_level = RBX_LOG_WARN;
}

static int invalid(struct rbx_error *err, const char *fmt, const char *field,
                   const char *value, const char *fix)
{
  return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL, fmt, field, value, fix);
}

/* Accepts printable ASCII without spaces: image references and user names
 * never contain anything else. */
static bool is_token(const char *s)
{
  for (; *s; s++) {
    if (*s <= ' ' || *s >= 0x7f)
      return false;
  }
  return true;
}

/* Docker's rule for container and network names:
 * [a-zA-Z0-9][a-zA-Z0-9_.-]*. */
static bool is_docker_name(const char *s)
{
  if (!*s || !isalnum((unsigned char)*s))
    return false;
  for (s++; *s; s++) {
    if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
      return false;
  }
  return true;
}

static bool is_hostname(const char *s)
{
  size_t total = strlen(s);

  if (total == 0 || total > POLICY_HOSTNAME_MAX)
    return false;
  while (*s) {
    size_t label = 0;

    while (s[label] && s[label] != '.') {
      if (!isalnum((unsigned char)s[label]) && s[label] != '-')
        return false;
      label++;
    }
    if (label == 0 || label > POLICY_LABEL_MAX || s[0] == '-' ||
        s[label - 1] == '-')
      return false;
    s += label;
    if (*s == '.' && *++s == '\0')
      return false;
  }
  return true;
}

static int validate_names(const struct rbx_policy *p, struct rbx_error *err)
{
  if (!p->image || !*p->image)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: image is empty; set an image reference such "
                       "as ringbox-tools:" RBX_VERSION);
  if (strlen(p->image) > POLICY_IMAGE_MAX || !is_token(p->image) ||
      p->image[0] == '-')
    return invalid(err, "policy: %s '%s' is not a valid image reference; %s",
                   "image", p->image,
                   "use name[:tag] without spaces or control characters");
  if (p->user && (strlen(p->user) > POLICY_NAME_MAX || !is_token(p->user)))
    return invalid(err, "policy: %s '%s' is not a valid user; %s", "user",
                   p->user, "use uid:gid such as 65534:65534, or \"\"");
  return 0;
}

static int validate_sizes(const struct rbx_policy *p, struct rbx_error *err)
{
  if (p->memory_mib < POLICY_MEMORY_MIN_MIB)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: memory_mib %llu is below Docker's minimum of "
                       "%d; set at least %d",
                       (unsigned long long)p->memory_mib, POLICY_MEMORY_MIN_MIB,
                       POLICY_MEMORY_MIN_MIB);
  if (p->memory_mib > POLICY_MIB_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: memory_mib %llu is too large; set at most "
                       "%llu",
                       (unsigned long long)p->memory_mib,
                       (unsigned long long)POLICY_MIB_MAX);
  /* A tmpfs with size 0 has no size limit at all. */
  if (!p->writable_root &&
      (p->tmp_size_mib == 0 || p->tmp_size_mib > POLICY_MIB_MAX))
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: tmp_size_mib %llu is out of range; set from "
                       "1 to %llu (0 would leave /tmp unbounded)",
                       (unsigned long long)p->tmp_size_mib,
                       (unsigned long long)POLICY_MIB_MAX);
  if (p->output_limit < POLICY_OUTPUT_LIMIT_MIN ||
      p->output_limit > SIZE_MAX / 2)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: output_limit %llu is out of range; set from "
                       "%d to %zu bytes",
                       (unsigned long long)p->output_limit,
                       POLICY_OUTPUT_LIMIT_MIN, SIZE_MAX / 2);
  return 0;
}

static int validate_limits(const struct rbx_policy *p, struct rbx_error *err)
{
  /* Written so that NaN fails too. */
  if (!(p->cpus >= POLICY_CPUS_MIN && p->cpus <= POLICY_CPUS_MAX))
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: cpus %g is out of range; set a value from "
                       "%g to %g",
                       p->cpus, POLICY_CPUS_MIN, POLICY_CPUS_MAX);
  /* Docker reads 0 as no limit, which a zeroed field must not mean. */
  if (p->pids_limit < -1 || p->pids_limit == 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: pids_limit %lld is invalid; set at least 1, "
                       "or -1 for no limit",
                       (long long)p->pids_limit);
  if (p->nofile_limit < POLICY_NOFILE_MIN || p->nofile_limit > INT64_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: nofile_limit %llu is out of range; set at "
                       "least %d (stdin, stdout and stderr)",
                       (unsigned long long)p->nofile_limit, POLICY_NOFILE_MIN);
  if (p->timeout_ms > POLICY_TIMEOUT_MAX_MS)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: timeout_ms %llu is above the maximum of %llu "
                       "(30 days); set a smaller value, or 0 for none",
                       (unsigned long long)p->timeout_ms,
                       (unsigned long long)POLICY_TIMEOUT_MAX_MS);
  return validate_sizes(p, err);
}

static int validate_roots(const struct rbx_policy *p, struct rbx_error *err)
{
  if (p->workspace_root && p->workspace_root[0] != '/')
    return invalid(err, "policy: %s '%s' is not an absolute path; %s",
                   "workspace_root", p->workspace_root,
                   "give the full path, or NULL for no workspace");
  if (p->allowed_roots_count > 0 && !p->allowed_roots)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: allowed_roots is NULL but allowed_roots_count "
                       "is %zu; pass the array or set the count to 0",
                       p->allowed_roots_count);
  if (p->allowed_roots_count > POLICY_ALLOWED_ROOTS_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "policy: %zu allowed roots are more than the maximum "
                       "of %d; allow a common parent folder instead",
                       p->allowed_roots_count, POLICY_ALLOWED_ROOTS_MAX);
  for (size_t i = 0; i < p->allowed_roots_count; i++) {
    const char *root = p->allowed_roots[i];

    if (!root || root[0] != '/')
      return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                         "policy: allowed_roots[%zu] '%s' is not an absolute "
                         "path; give the full path of a host folder",
                         i, root ? root : "(null)");
  }
  return 0;
}

static int validate_hosts(const struct rbx_policy *p, struct rbx_error *err)
{
  if (p->allow_hosts_count > 0 && !p->allow_hosts)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: allow_hosts is NULL but allow_hosts_count is "
                       "%zu; pass the array or set the count to 0",
                       p->allow_hosts_count);
  if (p->network == RBX_NET_LIMITED && p->allow_hosts_count == 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: network limited needs at least one allowed "
                       "host; add one such as pypi.org, or choose network "
                       "none");
  for (size_t i = 0; i < p->allow_hosts_count; i++) {
    const char *host = p->allow_hosts[i];
    const char *name = host;

    if (host && strncmp(host, "*.", 2) == 0)
      name = host + 2;
    if (!host || !is_hostname(name))
      return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                         "policy: allowed host '%s' is not a valid host "
                         "name; use a name such as pypi.org or a pattern "
                         "such as *.example.com",
                         host ? host : "(null)");
  }
  return 0;
}

static int validate_proxy(const struct rbx_policy *p, struct rbx_error *err)
{
  if (!p->proxy_image || !*p->proxy_image ||
      strlen(p->proxy_image) > POLICY_IMAGE_MAX || !is_token(p->proxy_image) ||
      p->proxy_image[0] == '-')
    return invalid(err, "policy: %s '%s' is not a valid image reference; %s",
                   "proxy_image", p->proxy_image ? p->proxy_image : "",
                   "set one such as ringbox-proxy:" RBX_VERSION);
  if (p->proxy_port == 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: proxy_port 0 is invalid; set a port from 1 "
                       "to 65535 such as 3128");
  if (p->proxy_name && (strlen(p->proxy_name) > POLICY_NAME_MAX ||
                        !is_docker_name(p->proxy_name)))
    return invalid(err, "policy: %s '%s' is not a valid container name; %s",
                   "proxy_name", p->proxy_name,
                   "use letters, digits, '_', '.' and '-', or NULL");
  return 0;
}

static int validate_network(const struct rbx_policy *p, struct rbx_error *err)
{
  int rc;

  if (p->network != RBX_NET_NONE && p->network != RBX_NET_FULL &&
      p->network != RBX_NET_LIMITED)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: network %d is not a known mode; use none, "
                       "full or limited",
                       (int)p->network);
  rc = validate_hosts(p, err);
  if (rc < 0 || p->network == RBX_NET_NONE)
    return rc;
  if (!p->egress_network || strlen(p->egress_network) > POLICY_NAME_MAX ||
      !is_docker_name(p->egress_network))
    return invalid(err, "policy: %s '%s' is not a valid network name; %s",
                   "egress_network", p->egress_network ? p->egress_network : "",
                   "set one such as bridge");
  if (p->network == RBX_NET_LIMITED)
    return validate_proxy(p, err);
  return 0;
}

int policy_validate(const struct rbx_policy *policy, struct rbx_error *err)
{
  int rc;

  if (!policy)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "policy: no policy given; fill one with "
                       "rbx_policy_init");
  rc = validate_names(policy, err);
  if (rc == 0)
    rc = validate_limits(policy, err);
  if (rc == 0)
    rc = validate_roots(policy, err);
  if (rc == 0)
    rc = validate_network(policy, err);
  return rc;
}

/* Writes the absolute path `in` without empty or "." components and without
 * a trailing slash. Returns 0, -EINVAL when it is empty or relative, -EPERM
 * when it has a ".." component, or -ENAMETOOLONG. */
static int clean_path(const char *in, char *out, size_t size)
{
  size_t len = 0;

  if (!in || in[0] != '/')
    return -EINVAL;
  while (*in) {
    size_t n;

    while (*in == '/')
      in++;
    n = strcspn(in, "/");
    if (n == 0 || (n == 1 && in[0] == '.')) {
      in += n;
      continue;
    }
    if (n == 2 && in[0] == '.' && in[1] == '.')
      return -EPERM;
    if (len + 1 + n >= size)
      return -ENAMETOOLONG;
    out[len++] = '/';
    memcpy(out + len, in, n);
    len += n;
    in += n;
  }
  if (len == 0)
    out[len++] = '/';
  out[len] = '\0';
  return 0;
}

/* Whether path lies inside root at whole components; both are clean. */
static bool path_inside(const char *path, const char *root)
{
  size_t n = strlen(root);

  if (n == 1 && root[0] == '/')
    return true;
  return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

struct mount_root {
  char given[PATH_MAX];    /* as configured, cleaned */
  char resolved[PATH_MAX]; /* symlink-free; empty when it does not exist */
};

/* Fills roots from the workspace and allowed roots; returns their number.
 * A root that is not absolute (policy_validate rejects those) is left out. */
static size_t collect_roots(const struct rbx_policy *policy,
                            struct mount_root *roots, size_t max)
{
  size_t count = 0;

  for (size_t i = 0; i <= policy->allowed_roots_count && count < max; i++) {
    const char *root = policy->workspace_root;
    struct mount_root *r = &roots[count];

    if (i > 0)
      root = policy->allowed_roots ? policy->allowed_roots[i - 1] : NULL;
    if (!root || clean_path(root, r->given, sizeof(r->given)) < 0)
      continue;
    if (!realpath(r->given, r->resolved))
      r->resolved[0] = '\0';
    count++;
  }
  return count;
}

/* Lists the roots for a message, cut at the buffer's end. */
static void format_roots(const struct mount_root *roots, size_t count,
                         char *buf, size_t size)
{
  size_t len = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < count && len < size; i++) {
    int n =
        snprintf(buf + len, size - len, "%s%s", i ? ", " : "", roots[i].given);

    if (n < 0)
      break;
    len += (size_t)n;
  }
}

static bool inside_any(const char *path, const struct mount_root *roots,
                       size_t count, bool resolved_only)
{
  for (size_t i = 0; i < count; i++) {
    if (roots[i].resolved[0] && path_inside(path, roots[i].resolved))
      return true;
    if (!resolved_only && path_inside(path, roots[i].given))
      return true;
  }
  return false;
}

/* NOTE: the check runs when the spec is copied, and the runtime bind-mounts
 * the resolved path later. Someone who can write inside a root in between
 * could swap a folder on that path for a symlink that leads out of it. */
int policy_check_mount(const struct rbx_policy *policy,
                       const struct rbx_mount *mount, char *resolved,
                       struct rbx_error *err)
{
  struct mount_root roots[POLICY_ALLOWED_ROOTS_MAX + 1];
  char clean[PATH_MAX];
  char list[200];
  const char *source = mount ? mount->source : NULL;
  size_t count;
  int rc;

  if (!source || !*source)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "mount source is empty; give an absolute host path "
                       "inside the workspace");
  rc = clean_path(source, clean, sizeof(clean));
  if (rc == -EINVAL)
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "mount source '%s' is not an absolute path; give the "
                       "full host path",
                       source);
  if (rc == -EPERM)
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "mount source '%s' contains a '..' component; give "
                       "the path without '..'",
                       source);
  if (rc < 0)
    return rbx_err_set(err, RBX_ERR_POLICY, rc,
                       "mount source '%.64s...' is longer than %d bytes",
                       source, PATH_MAX);

  count = collect_roots(policy, roots, POLICY_ALLOWED_ROOTS_MAX + 1);
  if (count == 0)
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "mount source '%s' is not allowed: no workspace or "
                       "allowed mount roots are set; pass --workspace DIR "
                       "or --allow-mount DIR to allow mounts from a folder",
                       source);
  format_roots(roots, count, list, sizeof(list));
  if (!inside_any(clean, roots, count, false))
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "mount source '%s' is outside the workspace and "
                       "allowed roots (%s); mount a path inside them or "
                       "pass --allow-mount for its folder",
                       source, list);

  /* realpath fails on a missing path, so the daemon never gets the chance
   * to create one. */
  if (!realpath(clean, resolved)) {
    rc = -errno;
    if (rc == -ENOENT || rc == -ENOTDIR)
      return rbx_err_set(err, RBX_ERR_POLICY, rc,
                         "mount source '%s' does not exist; create it "
                         "first",
                         source);
    return rbx_err_set(err, RBX_ERR_POLICY, rc,
                       "mount source '%s' cannot be resolved: %s", source,
                       strerror(-rc));
  }
  if (!inside_any(resolved, roots, count, true))
    return rbx_err_set(err, RBX_ERR_POLICY, -EPERM,
                       "mount source '%s' resolves to '%s' through a "
                       "symbolic link, which is outside the workspace and "
                       "allowed roots (%s); mount the real path inside them",
                       source, resolved, list);
  return 0;
}

static int no_memory(struct rbx_error *err)
{
  return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "spec: out of memory");
}

/* Room in `owned` for `count` entries: 0, then powers of two from 16. */
static size_t owned_capacity(size_t count)
{
  size_t capacity = 16;

  if (count == 0)
    return 0;
  while (capacity < count)
    capacity *= 2;
  return capacity;
}

/* Copies s into storage that exec_spec_free releases. A NULL s gives a
 * NULL copy. */
static int own_string(struct exec_spec *out, const char *s, char **copy,
                      struct rbx_error *err)
{
  *copy = NULL;
  if (!s)
    return 0;
  if (out->owned_count == owned_capacity(out->owned_count)) {
    size_t capacity = owned_capacity(out->owned_count + 1);
    char **grown = realloc(out->owned, capacity * sizeof(*grown));

    if (!grown)
      return no_memory(err);
    out->owned = grown;
  }
  *copy = strdup(s);
  if (!*copy)
    return no_memory(err);
  out->owned[out->owned_count++] = *copy;
  return 0;
}

static int copy_string_array(struct exec_spec *out, const char *const *src,
                             size_t count, const char *const **dst,
                             struct rbx_error *err)
{
  char **array;

  *dst = NULL;
  if (count == 0)
    return 0;
  array = calloc(count, sizeof(*array));
  if (!array)
    return no_memory(err);
  *dst = (const char *const *)array;
  for (size_t i = 0; i < count; i++) {
    int rc = own_string(out, src[i], &array[i], err);

    if (rc < 0)
      return rc;
  }
  return 0;
}

static int copy_policy(struct exec_spec *out, const struct rbx_policy *p,
                       struct rbx_error *err)
{
  struct rbx_policy *copy = &out->policy;
  const char **fields[] = {&copy->image,          &copy->user,
                           &copy->workspace_root, &copy->proxy_image,
                           &copy->proxy_name,     &copy->egress_network};
  int rc;

  *copy = *p;
  copy->allowed_roots = NULL;
  copy->allow_hosts = NULL;
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    char *s;

    rc = own_string(out, *fields[i], &s, err);
    if (rc < 0)
      return rc;
    *fields[i] = s;
  }
  rc = copy_string_array(out, p->allowed_roots, p->allowed_roots_count,
                         &copy->allowed_roots, err);
  if (rc == 0)
    rc = copy_string_array(out, p->allow_hosts, p->allow_hosts_count,
                           &copy->allow_hosts, err);
  return rc;
}

/* Checks one argv or env string against the per-string and total limits. */
static int check_arg_size(const char *what, size_t index, const char *s,
                          size_t *total, struct rbx_error *err)
{
  size_t len = strlen(s);

  if (len >= SPEC_ARG_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "spec: %s[%zu] is %zu bytes, more than the maximum of "
                       "%d; pass large data through stdin or a mount",
                       what, index, len, SPEC_ARG_MAX - 1);
  *total += len + 1;
  if (*total > SPEC_ARGS_TOTAL_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "spec: argv and env together pass the maximum of %d "
                       "bytes at %s[%zu]; pass large data through stdin or a "
                       "mount",
                       SPEC_ARGS_TOTAL_MAX, what, index);
  return 0;
}

static size_t count_strings(const char *const *list)
{
  size_t n = 0;

  while (list && list[n])
    n++;
  return n;
}

static int copy_argv(struct exec_spec *out, const struct rbx_spec *spec,
                     size_t *total, struct rbx_error *err)
{
  size_t argc = count_strings(spec->argv);

  if (argc == 0 || spec->argv[0][0] == '\0')
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "spec: argv is empty; give the command to run, such "
                       "as {\"ls\", \"-l\", NULL}");
  out->argv = calloc(argc + 1, sizeof(*out->argv));
  if (!out->argv)
    return no_memory(err);
  for (size_t i = 0; i < argc; i++) {
    int rc = check_arg_size("argv", i, spec->argv[i], total, err);

    if (rc == 0)
      rc = own_string(out, spec->argv[i], &out->argv[i], err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int check_env_entry(const char *const *env, size_t index,
                           struct rbx_error *err)
{
  const char *entry = env[index];
  const char *eq = strchr(entry, '=');
  size_t key_len = eq ? (size_t)(eq - entry) : 0;

  if (key_len == 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "spec: env[%zu] '%.64s' is not KEY=VALUE with a "
                       "non-empty KEY; write it as NAME=value",
                       index, entry);
  for (size_t j = 0; j < index; j++) {
    if (strncmp(env[j], entry, key_len + 1) == 0)
      return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                         "spec: env sets %.*s twice (entries %zu and %zu); "
                         "keep one of them",
                         (int)(key_len > 64 ? 64 : key_len), entry, j, index);
  }
  return 0;
}

static int copy_env(struct exec_spec *out, const struct rbx_spec *spec,
                    size_t *total, struct rbx_error *err)
{
  size_t count = count_strings(spec->env);

  if (count > SPEC_ENV_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "spec: env has %zu entries, more than the maximum of "
                       "%d",
                       count, SPEC_ENV_MAX);
  out->env = calloc(count + 1, sizeof(*out->env));
  if (!out->env)
    return no_memory(err);
  for (size_t i = 0; i < count; i++) {
    int rc = check_env_entry(spec->env, i, err);

    if (rc == 0)
      rc = check_arg_size("env", i, spec->env[i], total, err);
    if (rc == 0)
      rc = own_string(out, spec->env[i], &out->env[i], err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int copy_io(struct exec_spec *out, const struct rbx_spec *spec,
                   struct rbx_error *err)
{
  if (spec->workdir && spec->workdir[0] != '/')
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "spec: workdir '%s' is not an absolute path; give one "
                       "such as /workspace, or NULL for the default",
                       spec->workdir);
  if (own_string(out, spec->workdir, &out->workdir, err) < 0)
    return -ENOMEM;
  if (!spec->stdin_data) {
    if (spec->stdin_len > 0)
      return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                         "spec: stdin_len is %zu but stdin_data is NULL; "
                         "pass the data or set stdin_len to 0",
                         spec->stdin_len);
    return 0;
  }
  out->stdin_data = malloc(spec->stdin_len ? spec->stdin_len : 1);
  if (!out->stdin_data)
    return no_memory(err);
  memcpy(out->stdin_data, spec->stdin_data, spec->stdin_len);
  out->stdin_len = spec->stdin_len;
  out->has_stdin = true;
  return 0;
}

/* Cleans a mount target into `clean` (PATH_MAX bytes). */
static int check_target(const char *target, char *clean, struct rbx_error *err)
{
  int rc;

  if (!target || !*target)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "mount target is empty; give an absolute path in the "
                       "container such as /workspace");
  rc = clean_path(target, clean, PATH_MAX);
  if (rc == -EINVAL)
    return rbx_err_set(err, RBX_ERR_INVALID, rc,
                       "mount target '%s' is not an absolute path; give one "
                       "such as /workspace",
                       target);
  if (rc == -EPERM)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "mount target '%s' contains a '..' component; give "
                       "the path without '..'",
                       target);
  if (rc < 0)
    return rbx_err_set(err, RBX_ERR_INVALID, rc,
                       "mount target '%.64s...' is longer than %d bytes",
                       target, PATH_MAX);
  if (strcmp(clean, "/") == 0)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "mount target '%s' is the root folder, which the "
                       "image provides; choose a folder such as /workspace",
                       target);
  return 0;
}

static int copy_mount(struct exec_spec *out, const struct rbx_mount *mount,
                      struct rbx_error *err)
{
  struct rbx_mount *copy = &out->mounts[out->mounts_count];
  char target[PATH_MAX];
  char source[PATH_MAX];
  char *s;
  int rc;

  rc = check_target(mount->target, target, err);
  if (rc < 0)
    return rc;
  for (size_t j = 0; j < out->mounts_count; j++) {
    if (strcmp(out->mounts[j].target, target) == 0)
      return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                         "mount target '%s' is used twice (mounts %zu and "
                         "%zu); give each mount its own target",
                         target, j, out->mounts_count);
  }
  rc = policy_check_mount(&out->policy, mount, source, err);
  if (rc < 0)
    return rc;
  rc = own_string(out, source, &s, err);
  if (rc < 0)
    return rc;
  copy->source = s;
  rc = own_string(out, target, &s, err);
  if (rc < 0)
    return rc;
  copy->target = s;
  copy->read_only = mount->read_only;
  out->mounts_count++;
  return 0;
}

static int copy_mounts(struct exec_spec *out, const struct rbx_spec *spec,
                       struct rbx_error *err)
{
  if (spec->mounts_count == 0)
    return 0;
  if (!spec->mounts)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "spec: mounts is NULL but mounts_count is %zu; pass "
                       "the array or set the count to 0",
                       spec->mounts_count);
  if (spec->mounts_count > SPEC_MOUNTS_MAX)
    return rbx_err_set(err, RBX_ERR_INVALID, -E2BIG,
                       "spec: %zu mounts are more than the maximum of %d; "
                       "mount a common parent folder instead",
                       spec->mounts_count, SPEC_MOUNTS_MAX);
  out->mounts = calloc(spec->mounts_count, sizeof(*out->mounts));
  if (!out->mounts)
    return no_memory(err);
  for (size_t i = 0; i < spec->mounts_count; i++) {
    int rc = copy_mount(out, &spec->mounts[i], err);

    if (rc < 0)
      return rc;
  }
  return 0;
}

int exec_spec_copy(struct exec_spec *out, const struct rbx_spec *spec,
                   struct rbx_error *err)
{
  struct rbx_policy defaults;
  const struct rbx_policy *policy;
  size_t args_total = 0;
  int rc;

  memset(out, 0, sizeof(*out));
  if (!spec)
    return rbx_err_set(err, RBX_ERR_INVALID, -EINVAL,
                       "spec: no spec given; pass the command to run");
  policy = spec->policy;
  if (!policy) {
    rbx_policy_init(&defaults);
    policy = &defaults;
  }
  rc = policy_validate(policy, err);
  if (rc == 0)
    rc = copy_policy(out, policy, err);
  if (rc == 0)
    rc = copy_argv(out, spec, &args_total, err);
  if (rc == 0)
    rc = copy_env(out, spec, &args_total, err);
  if (rc == 0)
    rc = copy_io(out, spec, err);
  if (rc == 0)
    rc = copy_mounts(out, spec, err);
  if (rc < 0)
    exec_spec_free(out);
  return rc;
}

void exec_spec_free(struct exec_spec *spec)
{
  if (!spec)
    return;
  for (size_t i = 0; i < spec->owned_count; i++)
    free(spec->owned[i]);
  free(spec->owned);
  free(spec->argv);
  free(spec->env);
  free(spec->stdin_data);
  free(spec->mounts);
  free((void *)spec->policy.allowed_roots);
  free((void *)spec->policy.allow_hosts);
  memset(spec, 0, sizeof(*spec));
}

/* The buffer size for len kept bytes: powers of two from 4 KiB, never more
 * than limit. */
static size_t output_capacity(size_t len, uint64_t limit)
{
  size_t capacity = OUTPUT_INITIAL_CAPACITY;

  while (capacity < len)
    capacity *= 2;
  return capacity < limit ? capacity : (size_t)limit;
}

/* Bytes that do not fit, or for which memory runs out, are counted as
 * dropped. The buffer's size is not stored: each append requests from realloc
 * the capacity of the new length, which costs little when the block
 * already has that size. */
bool exec_output_append(struct rbx_output *out, uint64_t limit,
                        const uint8_t *buf, size_t len)
{
  uint64_t room = out->len < limit ? limit - out->len : 0;
  size_t keep = len < room ? len : (size_t)room;

  if (keep > 0) {
    size_t capacity = output_capacity(out->len + keep, limit);
    uint8_t *data = realloc(out->data, capacity);

    if (data) {
      memcpy(data + out->len, buf, keep);
      out->data = data;
      out->len += keep;
    } else {
      keep = 0;
    }
  }
  if (keep < len) {
    out->dropped += len - keep;
    out->truncated = true;
  }
  return out->truncated;
}
