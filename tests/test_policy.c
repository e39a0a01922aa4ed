/* Tests of policy defaults and validation, mount source checks against a
 * real folder tree, the deep copy of a spec and bounded output capture. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/exec.h"

/* The temporary tree, resolved, shared by the mount tests:
 *   ws/a.txt, ws/nested/dir/, ws/escape -> ../ws-evil,
 *   ws/inner-link -> nested, ws/dangling -> gone, ws-evil/secret,
 *   ws-link -> ws, other/. */
static char tree[256];

static void tree_path(char *out, const char *rel)
{
  snprintf(out, PATH_MAX, "%s/%s", tree, rel);
}

static void make_dir(const char *rel)
{
  char path[PATH_MAX];

  tree_path(path, rel);
  assert_int_equal(mkdir(path, 0755), 0);
}

static void make_file(const char *rel)
{
  char path[PATH_MAX];
  FILE *f;

  tree_path(path, rel);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("x\n", f);
  fclose(f);
}

static void make_link(const char *target, const char *rel)
{
  char path[PATH_MAX];

  tree_path(path, rel);
  assert_int_equal(symlink(target, path), 0);
}

static int setup_tree(void **state)
{
  char tmpl[] = "/tmp/rbx-policy-XXXXXX";
  char resolved[PATH_MAX];

  (void)state;
  if (!mkdtemp(tmpl) || !realpath(tmpl, resolved) ||
      strlen(resolved) >= sizeof(tree))
    return -1;
  strcpy(tree, resolved);
  make_dir("ws");
  make_file("ws/a.txt");
  make_dir("ws/nested");
  make_dir("ws/nested/dir");
  make_dir("ws-evil");
  make_file("ws-evil/secret");
  make_dir("other");
  make_link("../ws-evil", "ws/escape");
  make_link("nested", "ws/inner-link");
  make_link("gone", "ws/dangling");
  make_link("ws", "ws-link");
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown_tree(void **state)
{
  (void)state;
  return nftw(tree, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void assert_error(int rc, const struct rbx_error *err,
                         enum rbx_error_kind kind, const char *fragment)
{
  assert_true(rc < 0);
  assert_int_equal(err->code, rc);
  if (err->kind != kind || !strstr(err->message, fragment))
    fail_msg("expected %s error containing \"%s\", got %s: %s",
             rbx_error_kind_name(kind), fragment,
             rbx_error_kind_name(err->kind), err->message);
}

static void test_policy_init_defaults(void **state)
{
  struct rbx_policy p;

  (void)state;
  memset(&p, 0xa5, sizeof(p));
  rbx_policy_init(&p);
  assert_string_equal(p.image, "ringbox-tools:" RBX_VERSION);
  assert_string_equal(p.image, "ringbox-tools:0.1.0");
  assert_int_equal(p.network, RBX_NET_NONE);
  assert_true(p.cpus == 2.0);
  assert_int_equal(p.memory_mib, 1024);
  assert_int_equal(p.pids_limit, 256);
  assert_false(p.writable_root);
  assert_string_equal(p.user, "65534:65534");
  assert_false(p.keep_capabilities);
  assert_false(p.allow_new_privileges);
  assert_int_equal(p.tmp_size_mib, 64);
  assert_int_equal(p.nofile_limit, 1024);
  assert_int_equal(p.timeout_ms, 30000);
  assert_int_equal(p.output_limit, 16 * 1024 * 1024);
  assert_null(p.workspace_root);
  assert_null(p.allowed_roots);
  assert_int_equal(p.allowed_roots_count, 0);
  assert_null(p.allow_hosts);
  assert_int_equal(p.allow_hosts_count, 0);
  assert_string_equal(p.proxy_image, "ringbox-proxy:0.1.0");
  assert_int_equal(p.proxy_port, 3128);
  assert_null(p.proxy_name);
  assert_string_equal(p.egress_network, "bridge");
}

static void test_options_init_defaults(void **state)
{
  struct rbx_options o;

  (void)state;
  memset(&o, 0xa5, sizeof(o));
  rbx_options_init(&o);
  assert_int_equal(o.runtime, RBX_RUNTIME_DOCKER);
  assert_null(o.daemon_url);
  assert_int_equal(o.max_in_flight, 64);
  assert_int_equal(o.max_connections, 16);
  assert_int_equal(o.ring_entries, 256);
  assert_false(o.no_startup_sweep);
  assert_false(o.no_holder_pool);
  assert_int_equal(o.holder_pool_max, 32);
  assert_null(o.log_fn);
  assert_null(o.log_userdata);
  assert_int_equal(o.log_level, RBX_LOG_WARN);
}

static const char *const good_hosts[] = {"pypi.org", "*.example.com",
                                         "files.pythonhosted.org", "localhost"};
static const char *const bad_host_dash[] = {"pypi.org", "-bad.example"};
static const char *const bad_host_empty_label[] = {"a..b"};
static const char *const bad_host_space[] = {"exa mple.com"};
static const char *const bad_host_star[] = {"*"};
static const char *const bad_host_star_dot[] = {"*."};
static const char *const bad_host_trailing_dot[] = {"example.com."};
static const char *const bad_host_url[] = {"http://pypi.org"};
static const char *const bad_host_long_label[] = {
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"};
static const char *const bad_host_null[] = {NULL};
static const char *const relative_root[] = {"/srv/ok", "srv/relative"};

struct validate_case {
  const char *name;
  void (*change)(struct rbx_policy *p);
  enum rbx_error_kind kind; /* RBX_ERR_NONE: valid */
  const char *fragment;
};

static void keep_defaults(struct rbx_policy *p)
{
  (void)p;
}
static void memory_2(struct rbx_policy *p)
{
  p->memory_mib = 2;
}
static void memory_6(struct rbx_policy *p)
{
  p->memory_mib = 6;
}
static void memory_huge(struct rbx_policy *p)
{
  p->memory_mib = UINT64_MAX;
}
static void cpus_0(struct rbx_policy *p)
{
  p->cpus = 0;
}
static void cpus_tiny(struct rbx_policy *p)
{
  p->cpus = 0.001;
}
static void cpus_min(struct rbx_policy *p)
{
  p->cpus = 0.01;
}
static void cpus_nan(struct rbx_policy *p)
{
  p->cpus = NAN;
}
static void cpus_2000(struct rbx_policy *p)
{
  p->cpus = 2000;
}
static void pids_0(struct rbx_policy *p)
{
  p->pids_limit = 0;
}
static void pids_unlimited(struct rbx_policy *p)
{
  p->pids_limit = -1;
}
static void pids_minus_2(struct rbx_policy *p)
{
  p->pids_limit = -2;
}
static void output_1023(struct rbx_policy *p)
{
  p->output_limit = 1023;
}
static void output_1024(struct rbx_policy *p)
{
  p->output_limit = 1024;
}
static void image_null(struct rbx_policy *p)
{
  p->image = NULL;
}
static void image_empty(struct rbx_policy *p)
{
  p->image = "";
}
static void image_space(struct rbx_policy *p)
{
  p->image = "tools latest";
}
static void image_dash(struct rbx_policy *p)
{
  p->image = "-tools";
}
static void user_space(struct rbx_policy *p)
{
  p->user = "root x";
}
static void user_empty(struct rbx_policy *p)
{
  p->user = "";
}
static void user_null(struct rbx_policy *p)
{
  p->user = NULL;
}
static void nofile_2(struct rbx_policy *p)
{
  p->nofile_limit = 2;
}
static void timeout_huge(struct rbx_policy *p)
{
  p->timeout_ms = UINT64_MAX;
}
static void timeout_none(struct rbx_policy *p)
{
  p->timeout_ms = 0;
}
static void tmp_0(struct rbx_policy *p)
{
  p->tmp_size_mib = 0;
}

static void tmp_0_writable(struct rbx_policy *p)
{
  p->tmp_size_mib = 0;
  p->writable_root = true;
}

static void workspace_relative(struct rbx_policy *p)
{
  p->workspace_root = "ws";
}

static void roots_null(struct rbx_policy *p)
{
  p->allowed_roots_count = 2;
}

static void roots_relative(struct rbx_policy *p)
{
  p->allowed_roots = relative_root;
  p->allowed_roots_count = 2;
}

static void roots_too_many(struct rbx_policy *p)
{
  static const char *roots[33];

  for (size_t i = 0; i < 33; i++)
    roots[i] = "/srv";
  p->allowed_roots = roots;
  p->allowed_roots_count = 33;
}

static void network_unknown(struct rbx_policy *p)
{
  p->network = (enum rbx_network)7;
}

static void limited_no_hosts(struct rbx_policy *p)
{
  p->network = RBX_NET_LIMITED;
}

static void set_hosts(struct rbx_policy *p, const char *const *hosts,
                      size_t count)
{
  p->network = RBX_NET_LIMITED;
  p->allow_hosts = hosts;
  p->allow_hosts_count = count;
}

static void limited_good(struct rbx_policy *p)
{
  set_hosts(p, good_hosts, 4);
}
static void host_dash(struct rbx_policy *p)
{
  set_hosts(p, bad_host_dash, 2);
}

static void host_empty_label(struct rbx_policy *p)
{
  set_hosts(p, bad_host_empty_label, 1);
}

static void host_space(struct rbx_policy *p)
{
  set_hosts(p, bad_host_space, 1);
}

static void host_star(struct rbx_policy *p)
{
  set_hosts(p, bad_host_star, 1);
}

static void host_star_dot(struct rbx_policy *p)
{
  set_hosts(p, bad_host_star_dot, 1);
}

static void host_trailing_dot(struct rbx_policy *p)
{
  set_hosts(p, bad_host_trailing_dot, 1);
}

static void host_url(struct rbx_policy *p)
{
  set_hosts(p, bad_host_url, 1);
}

static void host_long_label(struct rbx_policy *p)
{
  set_hosts(p, bad_host_long_label, 1);
}

static void host_null(struct rbx_policy *p)
{
  set_hosts(p, bad_host_null, 1);
}

static void hosts_array_null(struct rbx_policy *p)
{
  set_hosts(p, NULL, 3);
}

static void proxy_port_0(struct rbx_policy *p)
{
  limited_good(p);
  p->proxy_port = 0;
}

static void proxy_image_empty(struct rbx_policy *p)
{
  limited_good(p);
  p->proxy_image = "";
}

static void proxy_name_bad(struct rbx_policy *p)
{
  limited_good(p);
  p->proxy_name = "my proxy";
}

static void proxy_name_good(struct rbx_policy *p)
{
  limited_good(p);
  p->proxy_name = "ringbox-proxy.shared_1";
}

static void egress_empty(struct rbx_policy *p)
{
  p->network = RBX_NET_FULL;
  p->egress_network = "";
}

static void egress_ignored_for_none(struct rbx_policy *p)
{
  p->egress_network = NULL;
  p->proxy_image = NULL;
}

static const struct validate_case validate_cases[] = {
    {"defaults", keep_defaults, RBX_ERR_NONE, NULL},
    {"memory 2", memory_2, RBX_ERR_INVALID,
     "policy: memory_mib 2 is below Docker's minimum of 6; set at least 6"},
    {"memory 6", memory_6, RBX_ERR_NONE, NULL},
    {"memory huge", memory_huge, RBX_ERR_INVALID,
     "memory_mib 18446744073709551615 is too large; set at most"},
    {"cpus 0", cpus_0, RBX_ERR_INVALID,
     "policy: cpus 0 is out of range; set a value from 0.01 to 1024"},
    {"cpus 0.001", cpus_tiny, RBX_ERR_INVALID, "cpus 0.001 is out of range"},
    {"cpus 0.01", cpus_min, RBX_ERR_NONE, NULL},
    {"cpus nan", cpus_nan, RBX_ERR_INVALID, "cpus nan is out of range"},
    {"cpus 2000", cpus_2000, RBX_ERR_INVALID, "cpus 2000 is out of range"},
    {"pids 0", pids_0, RBX_ERR_INVALID,
     "policy: pids_limit 0 is invalid; set at least 1, or -1 for no limit"},
    {"pids -1", pids_unlimited, RBX_ERR_NONE, NULL},
    {"pids -2", pids_minus_2, RBX_ERR_INVALID, "pids_limit -2 is invalid"},
    {"output 1023", output_1023, RBX_ERR_INVALID,
     "output_limit 1023 is out of range; set from 1024"},
    {"output 1024", output_1024, RBX_ERR_NONE, NULL},
    {"image NULL", image_null, RBX_ERR_INVALID, "policy: image is empty"},
    {"image empty", image_empty, RBX_ERR_INVALID, "policy: image is empty"},
    {"image space", image_space, RBX_ERR_INVALID,
     "image 'tools latest' is not a valid image reference"},
    {"image dash", image_dash, RBX_ERR_INVALID,
     "image '-tools' is not a valid image reference"},
    {"user space", user_space, RBX_ERR_INVALID,
     "user 'root x' is not a valid user"},
    {"user empty", user_empty, RBX_ERR_NONE, NULL},
    {"user NULL", user_null, RBX_ERR_NONE, NULL},
    {"nofile 2", nofile_2, RBX_ERR_INVALID,
     "nofile_limit 2 is out of range; set at least 3"},
    {"timeout huge", timeout_huge, RBX_ERR_INVALID,
     "is above the maximum of 2592000000 (30 days)"},
    {"timeout none", timeout_none, RBX_ERR_NONE, NULL},
    {"tmp 0", tmp_0, RBX_ERR_INVALID,
     "tmp_size_mib 0 is out of range; set from 1"},
    {"tmp 0 writable", tmp_0_writable, RBX_ERR_NONE, NULL},
    {"workspace relative", workspace_relative, RBX_ERR_INVALID,
     "workspace_root 'ws' is not an absolute path"},
    {"roots NULL", roots_null, RBX_ERR_INVALID,
     "allowed_roots is NULL but allowed_roots_count is 2"},
    {"roots relative", roots_relative, RBX_ERR_INVALID,
     "allowed_roots[1] 'srv/relative' is not an absolute path"},
    {"roots too many", roots_too_many, RBX_ERR_INVALID,
     "33 allowed roots are more than the maximum of 32"},
    {"network unknown", network_unknown, RBX_ERR_INVALID,
     "network 7 is not a known mode"},
    {"limited no hosts", limited_no_hosts, RBX_ERR_INVALID,
     "network limited needs at least one allowed host"},
    {"limited good", limited_good, RBX_ERR_NONE, NULL},
    {"host dash", host_dash, RBX_ERR_INVALID,
     "allowed host '-bad.example' is not a valid host name"},
    {"host empty label", host_empty_label, RBX_ERR_INVALID,
     "allowed host 'a..b'"},
    {"host space", host_space, RBX_ERR_INVALID, "allowed host 'exa mple.com'"},
    {"host star", host_star, RBX_ERR_INVALID, "allowed host '*'"},
    {"host star dot", host_star_dot, RBX_ERR_INVALID, "allowed host '*.'"},
    {"host trailing dot", host_trailing_dot, RBX_ERR_INVALID,
     "allowed host 'example.com.'"},
    {"host url", host_url, RBX_ERR_INVALID, "allowed host 'http://pypi.org'"},
    {"host long label", host_long_label, RBX_ERR_INVALID,
     "is not a valid host name"},
    {"host NULL", host_null, RBX_ERR_INVALID, "allowed host '(null)'"},
    {"hosts array NULL", hosts_array_null, RBX_ERR_INVALID,
     "allow_hosts is NULL but allow_hosts_count is 3"},
    {"proxy port 0", proxy_port_0, RBX_ERR_INVALID,
     "proxy_port 0 is invalid; set a port from 1 to 65535"},
    {"proxy image empty", proxy_image_empty, RBX_ERR_INVALID,
     "proxy_image '' is not a valid image reference"},
    {"proxy name bad", proxy_name_bad, RBX_ERR_INVALID,
     "proxy_name 'my proxy' is not a valid container name"},
    {"proxy name good", proxy_name_good, RBX_ERR_NONE, NULL},
    {"egress empty", egress_empty, RBX_ERR_INVALID,
     "egress_network '' is not a valid network name"},
    {"egress unused", egress_ignored_for_none, RBX_ERR_NONE, NULL},
};

static void test_policy_validate_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(validate_cases) / sizeof(validate_cases[0]);
       i++) {
    const struct validate_case *c = &validate_cases[i];
    struct rbx_policy p;
    struct rbx_error err = {0};
    int rc;

    rbx_policy_init(&p);
    c->change(&p);
    rc = policy_validate(&p, &err);
    if (c->kind == RBX_ERR_NONE) {
      if (rc != 0)
        fail_msg("case %s: expected valid, got %s", c->name, err.message);
      continue;
    }
    if (rc >= 0 || err.kind != c->kind || !strstr(err.message, c->fragment))
      fail_msg("case %s: expected %s error containing \"%s\", got rc %d "
               "%s: %s",
               c->name, rbx_error_kind_name(c->kind), c->fragment, rc,
               rbx_error_kind_name(err.kind), err.message);
  }
}

static void test_policy_validate_null(void **state)
{
  struct rbx_error err = {0};

  (void)state;
  assert_error(policy_validate(NULL, &err), &err, RBX_ERR_INVALID,
               "no policy given");
}

enum roots_setup {
  ROOTS_NONE,
  ROOTS_WS,
  ROOTS_WS_OTHER,
  ROOTS_LINK,
  ROOTS_ALL
};

struct mount_case {
  const char *name;
  enum roots_setup roots;
  const char *source;   /* relative to the tree unless it starts with '!' */
  const char *resolved; /* relative to the tree; NULL when rejected */
  enum rbx_error_kind kind;
  const char *fragment;
};

static const struct mount_case mount_cases[] = {
    {"workspace itself", ROOTS_WS, "ws", "ws", RBX_ERR_NONE, NULL},
    {"nested folder", ROOTS_WS, "ws/nested/dir", "ws/nested/dir", RBX_ERR_NONE,
     NULL},
    {"file", ROOTS_WS, "ws/a.txt", "ws/a.txt", RBX_ERR_NONE, NULL},
    {"extra slashes and dots", ROOTS_WS, "ws/./nested//dir/", "ws/nested/dir",
     RBX_ERR_NONE, NULL},
    {"link inside", ROOTS_WS, "ws/inner-link", "ws/nested", RBX_ERR_NONE, NULL},
    {"sibling prefix", ROOTS_WS, "ws-evil", NULL, RBX_ERR_POLICY,
     "is outside the workspace and allowed roots"},
    {"sibling file", ROOTS_WS, "ws-evil/secret", NULL, RBX_ERR_POLICY,
     "is outside the workspace and allowed roots"},
    {"link escaping", ROOTS_WS, "ws/escape", NULL, RBX_ERR_POLICY,
     "through a symbolic link, which is outside"},
    {"file through escaping link", ROOTS_WS, "ws/escape/secret", NULL,
     RBX_ERR_POLICY, "through a symbolic link, which is outside"},
    {"missing", ROOTS_WS, "ws/missing", NULL, RBX_ERR_POLICY,
     "does not exist; create it first"},
    {"missing below file", ROOTS_WS, "ws/a.txt/x", NULL, RBX_ERR_POLICY,
     "does not exist"},
    {"dangling link", ROOTS_WS, "ws/dangling", NULL, RBX_ERR_POLICY,
     "does not exist"},
    {"dot dot", ROOTS_WS, "ws/../ws-evil", NULL, RBX_ERR_POLICY,
     "contains a '..' component"},
    {"dot dot staying inside", ROOTS_WS, "ws/nested/../a.txt", NULL,
     RBX_ERR_POLICY, "contains a '..' component"},
    {"relative", ROOTS_WS, "!ws/nested", NULL, RBX_ERR_POLICY,
     "is not an absolute path"},
    {"empty", ROOTS_WS, "!", NULL, RBX_ERR_INVALID, "mount source is empty"},
    {"no roots", ROOTS_NONE, "ws", NULL, RBX_ERR_POLICY,
     "pass --workspace DIR or --allow-mount DIR"},
    {"other without root", ROOTS_WS, "other", NULL, RBX_ERR_POLICY,
     "is outside the workspace"},
    {"other allowed", ROOTS_WS_OTHER, "other", "other", RBX_ERR_NONE, NULL},
    {"workspace is a link", ROOTS_LINK, "ws-link/nested", "ws/nested",
     RBX_ERR_NONE, NULL},
    {"real path of linked workspace", ROOTS_LINK, "ws/nested", "ws/nested",
     RBX_ERR_NONE, NULL},
    {"link root escaping", ROOTS_LINK, "ws-link/escape", NULL, RBX_ERR_POLICY,
     "through a symbolic link"},
    {"root folder allowed", ROOTS_ALL, "ws-evil/secret", "ws-evil/secret",
     RBX_ERR_NONE, NULL},
};

static void setup_roots(struct rbx_policy *p, enum roots_setup roots, char *ws,
                        const char **allowed)
{
  rbx_policy_init(p);
  tree_path(ws, roots == ROOTS_LINK ? "ws-link" : "ws");
  if (roots == ROOTS_NONE)
    return;
  if (roots == ROOTS_ALL) {
    allowed[0] = "/";
    p->allowed_roots = allowed;
    p->allowed_roots_count = 1;
    return;
  }
  p->workspace_root = ws;
  if (roots == ROOTS_WS_OTHER) {
    p->allowed_roots = allowed;
    p->allowed_roots_count = 1;
  }
}

static void test_policy_check_mount_table(void **state)
{
  char other[PATH_MAX];

  (void)state;
  tree_path(other, "other");
  for (size_t i = 0; i < sizeof(mount_cases) / sizeof(mount_cases[0]); i++) {
    const struct mount_case *c = &mount_cases[i];
    const char *allowed[1] = {other};
    char ws[PATH_MAX], source[PATH_MAX], expected[PATH_MAX];
    char resolved[PATH_MAX] = "";
    struct rbx_mount mount = {source, "/workspace", false};
    struct rbx_policy p;
    struct rbx_error err = {0};
    int rc;

    setup_roots(&p, c->roots, ws, allowed);
    if (c->source[0] == '!')
      snprintf(source, sizeof(source), "%s", c->source + 1);
    else
      tree_path(source, c->source);
    rc = policy_check_mount(&p, &mount, resolved, &err);
    if (c->kind == RBX_ERR_NONE) {
      if (rc != 0)
        fail_msg("case %s: expected allowed, got %s", c->name, err.message);
      tree_path(expected, c->resolved);
      if (strcmp(resolved, expected) != 0)
        fail_msg("case %s: resolved %s, expected %s", c->name, resolved,
                 expected);
      continue;
    }
    if (rc >= 0 || err.kind != c->kind || !strstr(err.message, c->fragment))
      fail_msg("case %s: expected %s error containing \"%s\", got rc %d "
               "%s: %s",
               c->name, rbx_error_kind_name(c->kind), c->fragment, rc,
               rbx_error_kind_name(err.kind), err.message);
  }
}

static void test_policy_check_mount_missing_code(void **state)
{
  char ws[PATH_MAX], source[PATH_MAX], resolved[PATH_MAX];
  struct rbx_mount mount = {source, "/data", true};
  struct rbx_policy p;
  struct rbx_error err = {0};

  (void)state;
  rbx_policy_init(&p);
  tree_path(ws, "ws");
  tree_path(source, "ws/missing");
  p.workspace_root = ws;
  assert_int_equal(policy_check_mount(&p, &mount, resolved, &err), -ENOENT);
  assert_int_equal(err.kind, RBX_ERR_POLICY);
  /* The check must not create the path as a side effect. */
  assert_int_equal(access(source, F_OK), -1);
}

/* A spec whose strings live in writable buffers, so the test can overwrite
 * them after the copy. */
struct spec_fixture {
  char cmd[16], arg[16], env1[16], env2[32], workdir[32];
  char ws[PATH_MAX], source[PATH_MAX], target[32], image[32], host[32];
  const char *argv[3];
  const char *env[3];
  const char *roots[1];
  const char *hosts[1];
  uint8_t input[4];
  struct rbx_mount mounts[1];
  struct rbx_policy policy;
  struct rbx_spec spec;
};

static void fixture_init(struct spec_fixture *f)
{
  memset(f, 0, sizeof(*f));
  strcpy(f->cmd, "ls");
  strcpy(f->arg, "-l");
  strcpy(f->env1, "A=1");
  strcpy(f->env2, "PATH=/usr/bin:/bin");
  strcpy(f->workdir, "/workspace");
  tree_path(f->ws, "ws-link");
  tree_path(f->source, "ws-link/nested/dir");
  strcpy(f->target, "/data//sub/");
  strcpy(f->image, "tools:1");
  strcpy(f->host, "*.example.com");
  memcpy(f->input, "abc", 4);
  f->argv[0] = f->cmd;
  f->argv[1] = f->arg;
  f->env[0] = f->env1;
  f->env[1] = f->env2;
  f->roots[0] = f->ws;
  f->hosts[0] = f->host;
  f->mounts[0] = (struct rbx_mount){f->source, f->target, true};
  rbx_policy_init(&f->policy);
  f->policy.image = f->image;
  f->policy.network = RBX_NET_LIMITED;
  f->policy.allow_hosts = f->hosts;
  f->policy.allow_hosts_count = 1;
  f->policy.allowed_roots = f->roots;
  f->policy.allowed_roots_count = 1;
  f->spec.argv = f->argv;
  f->spec.env = f->env;
  f->spec.workdir = f->workdir;
  f->spec.stdin_data = f->input;
  f->spec.stdin_len = 3;
  f->spec.mounts = f->mounts;
  f->spec.mounts_count = 1;
  f->spec.policy = &f->policy;
}

static void test_spec_copy_deep(void **state)
{
  struct spec_fixture *f = calloc(1, sizeof(*f));
  struct exec_spec copy;
  struct rbx_error err = {0};
  char expected_source[PATH_MAX], ws[PATH_MAX];

  (void)state;
  fixture_init(f);
  assert_int_equal(exec_spec_copy(&copy, &f->spec, &err), 0);
  tree_path(expected_source, "ws/nested/dir");
  strcpy(ws, f->ws);
  /* The caller's memory may change or go once the copy is made. */
  memset(f, 'Z', sizeof(*f));
  free(f);

  assert_string_equal(copy.argv[0], "ls");
  assert_string_equal(copy.argv[1], "-l");
  assert_null(copy.argv[2]);
  assert_string_equal(copy.env[0], "A=1");
  assert_string_equal(copy.env[1], "PATH=/usr/bin:/bin");
  assert_null(copy.env[2]);
  assert_string_equal(copy.workdir, "/workspace");
  assert_true(copy.has_stdin);
  assert_int_equal(copy.stdin_len, 3);
  assert_memory_equal(copy.stdin_data, "abc", 3);
  assert_int_equal(copy.mounts_count, 1);
  assert_string_equal(copy.mounts[0].source, expected_source);
  assert_string_equal(copy.mounts[0].target, "/data/sub");
  assert_true(copy.mounts[0].read_only);
  assert_string_equal(copy.policy.image, "tools:1");
  assert_string_equal(copy.policy.user, "65534:65534");
  assert_int_equal(copy.policy.allowed_roots_count, 1);
  assert_string_equal(copy.policy.allowed_roots[0], ws);
  assert_int_equal(copy.policy.allow_hosts_count, 1);
  assert_string_equal(copy.policy.allow_hosts[0], "*.example.com");
  assert_string_equal(copy.policy.proxy_image, "ringbox-proxy:0.1.0");
  assert_string_equal(copy.policy.egress_network, "bridge");
  assert_null(copy.policy.workspace_root);
  exec_spec_free(&copy);
  assert_null(copy.argv);
  assert_int_equal(copy.owned_count, 0);
  exec_spec_free(&copy);
  exec_spec_free(NULL);
}

static void test_spec_copy_defaults(void **state)
{
  const char *argv[] = {"true", NULL};
  struct rbx_spec spec = {.argv = argv};
  struct exec_spec copy;
  struct rbx_error err = {0};

  (void)state;
  assert_int_equal(exec_spec_copy(&copy, &spec, &err), 0);
  assert_string_equal(copy.policy.image, "ringbox-tools:0.1.0");
  assert_int_equal(copy.policy.timeout_ms, 30000);
  assert_non_null(copy.env);
  assert_null(copy.env[0]);
  assert_null(copy.workdir);
  assert_false(copy.has_stdin);
  assert_null(copy.stdin_data);
  assert_int_equal(copy.mounts_count, 0);
  exec_spec_free(&copy);
}

static void test_spec_copy_empty_stdin(void **state)
{
  const char *argv[] = {"cat", NULL};
  struct rbx_spec spec = {.argv = argv, .stdin_data = (const uint8_t *)""};
  struct exec_spec copy;
  struct rbx_error err = {0};

  (void)state;
  assert_int_equal(exec_spec_copy(&copy, &spec, &err), 0);
  assert_true(copy.has_stdin);
  assert_int_equal(copy.stdin_len, 0);
  exec_spec_free(&copy);
}

enum spec_change {
  CHANGE_NONE,
  CHANGE_NULL_SPEC,
  CHANGE_ARGV_NULL,
  CHANGE_ARGV0_EMPTY,
  CHANGE_ENV_NO_EQUALS,
  CHANGE_ENV_EMPTY_KEY,
  CHANGE_ENV_TWICE,
  CHANGE_WORKDIR_RELATIVE,
  CHANGE_STDIN_NULL,
  CHANGE_TARGET_RELATIVE,
  CHANGE_TARGET_ROOT,
  CHANGE_TARGET_SLASHES,
  CHANGE_TARGET_DOT_DOT,
  CHANGE_TARGET_EMPTY,
  CHANGE_TARGET_TWICE,
  CHANGE_SOURCE_OUTSIDE,
  CHANGE_SOURCE_NO_ROOTS,
  CHANGE_MOUNTS_NULL,
  CHANGE_POLICY_BAD,
  CHANGE_ARG_TOO_LONG,
};

struct spec_case {
  const char *name;
  enum spec_change change;
  enum rbx_error_kind kind;
  const char *fragment;
};

static const struct spec_case spec_cases[] = {
    {"valid", CHANGE_NONE, RBX_ERR_NONE, NULL},
    {"null spec", CHANGE_NULL_SPEC, RBX_ERR_INVALID, "no spec given"},
    {"argv NULL", CHANGE_ARGV_NULL, RBX_ERR_INVALID, "spec: argv is empty"},
    {"argv0 empty", CHANGE_ARGV0_EMPTY, RBX_ERR_INVALID, "spec: argv is empty"},
    {"env without =", CHANGE_ENV_NO_EQUALS, RBX_ERR_INVALID,
     "env[1] 'NOVALUE' is not KEY=VALUE"},
    {"env empty key", CHANGE_ENV_EMPTY_KEY, RBX_ERR_INVALID,
     "env[1] '=x' is not KEY=VALUE"},
    {"env twice", CHANGE_ENV_TWICE, RBX_ERR_INVALID,
     "env sets A twice (entries 0 and 1)"},
    {"workdir relative", CHANGE_WORKDIR_RELATIVE, RBX_ERR_INVALID,
     "workdir 'src' is not an absolute path"},
    {"stdin NULL with length", CHANGE_STDIN_NULL, RBX_ERR_INVALID,
     "stdin_len is 3 but stdin_data is NULL"},
    {"target relative", CHANGE_TARGET_RELATIVE, RBX_ERR_INVALID,
     "mount target 'data' is not an absolute path"},
    {"target root", CHANGE_TARGET_ROOT, RBX_ERR_INVALID,
     "mount target '/' is the root folder"},
    {"target slashes", CHANGE_TARGET_SLASHES, RBX_ERR_INVALID,
     "mount target '//.//' is the root folder"},
    {"target dot dot", CHANGE_TARGET_DOT_DOT, RBX_ERR_INVALID,
     "mount target '/data/../etc' contains a '..' component"},
    {"target empty", CHANGE_TARGET_EMPTY, RBX_ERR_INVALID,
     "mount target is empty"},
    {"target twice", CHANGE_TARGET_TWICE, RBX_ERR_INVALID,
     "mount target '/data/sub' is used twice (mounts 0 and 1)"},
    {"source outside", CHANGE_SOURCE_OUTSIDE, RBX_ERR_POLICY,
     "is outside the workspace and allowed roots"},
    {"source without roots", CHANGE_SOURCE_NO_ROOTS, RBX_ERR_POLICY,
     "pass --workspace DIR or --allow-mount DIR"},
    {"mounts NULL", CHANGE_MOUNTS_NULL, RBX_ERR_INVALID,
     "mounts is NULL but mounts_count is 1"},
    {"policy bad", CHANGE_POLICY_BAD, RBX_ERR_INVALID,
     "policy: memory_mib 2 is below Docker's minimum of 6"},
    {"argument too long", CHANGE_ARG_TOO_LONG, RBX_ERR_INVALID,
     "spec: argv[1] is 131072 bytes, more than the maximum of 131071"},
};

static void apply_spec_change(struct spec_fixture *f, enum spec_change change,
                              struct rbx_mount *two, char *long_arg)
{
  switch (change) {
  case CHANGE_NONE:
  case CHANGE_NULL_SPEC:
    break;
  case CHANGE_ARGV_NULL:
    f->spec.argv = NULL;
    break;
  case CHANGE_ARGV0_EMPTY:
    f->cmd[0] = '\0';
    break;
  case CHANGE_ENV_NO_EQUALS:
    strcpy(f->env2, "NOVALUE");
    break;
  case CHANGE_ENV_EMPTY_KEY:
    strcpy(f->env2, "=x");
    break;
  case CHANGE_ENV_TWICE:
    strcpy(f->env2, "A=2");
    break;
  case CHANGE_WORKDIR_RELATIVE:
    strcpy(f->workdir, "src");
    break;
  case CHANGE_STDIN_NULL:
    f->spec.stdin_data = NULL;
    break;
  case CHANGE_TARGET_RELATIVE:
    strcpy(f->target, "data");
    break;
  case CHANGE_TARGET_ROOT:
    strcpy(f->target, "/");
    break;
  case CHANGE_TARGET_SLASHES:
    strcpy(f->target, "//.//");
    break;
  case CHANGE_TARGET_DOT_DOT:
    strcpy(f->target, "/data/../etc");
    break;
  case CHANGE_TARGET_EMPTY:
    f->target[0] = '\0';
    break;
  case CHANGE_TARGET_TWICE:
    two[0] = f->mounts[0];
    two[1] = (struct rbx_mount){f->source, "/data/sub/", false};
    f->spec.mounts = two;
    f->spec.mounts_count = 2;
    break;
  case CHANGE_SOURCE_OUTSIDE:
    tree_path(f->source, "ws-evil");
    break;
  case CHANGE_SOURCE_NO_ROOTS:
    f->policy.allowed_roots = NULL;
    f->policy.allowed_roots_count = 0;
    break;
  case CHANGE_MOUNTS_NULL:
    f->spec.mounts = NULL;
    break;
  case CHANGE_POLICY_BAD:
    f->policy.memory_mib = 2;
    break;
  case CHANGE_ARG_TOO_LONG:
    memset(long_arg, 'a', 131072);
    long_arg[131072] = '\0';
    f->argv[1] = long_arg;
    break;
  }
}

static void test_spec_copy_table(void **state)
{
  char *long_arg = malloc(131073);

  (void)state;
  assert_non_null(long_arg);
  for (size_t i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
    const struct spec_case *c = &spec_cases[i];
    struct spec_fixture f;
    struct rbx_mount two[2];
    struct exec_spec copy;
    struct rbx_error err = {0};
    int rc;

    fixture_init(&f);
    apply_spec_change(&f, c->change, two, long_arg);
    rc = exec_spec_copy(&copy, c->change == CHANGE_NULL_SPEC ? NULL : &f.spec,
                        &err);
    if (c->kind == RBX_ERR_NONE) {
      if (rc != 0)
        fail_msg("case %s: expected a copy, got %s", c->name, err.message);
      exec_spec_free(&copy);
      continue;
    }
    if (rc >= 0 || err.kind != c->kind || !strstr(err.message, c->fragment))
      fail_msg("case %s: expected %s error containing \"%s\", got rc %d "
               "%s: %s",
               c->name, rbx_error_kind_name(c->kind), c->fragment, rc,
               rbx_error_kind_name(err.kind), err.message);
    /* A failed copy leaves nothing to free. */
    assert_null(copy.argv);
    assert_null(copy.owned);
    assert_int_equal(copy.owned_count, 0);
  }
  free(long_arg);
}

static void test_output_append_limit(void **state)
{
  struct rbx_output out = {0};

  (void)state;
  assert_false(exec_output_append(&out, 10, (const uint8_t *)"abcd", 4));
  assert_int_equal(out.len, 4);
  assert_false(out.truncated);
  assert_false(exec_output_append(&out, 10, (const uint8_t *)"", 0));
  assert_false(exec_output_append(&out, 10, (const uint8_t *)"efghij", 6));
  assert_int_equal(out.len, 10);
  assert_false(out.truncated);
  assert_int_equal(out.dropped, 0);
  assert_true(exec_output_append(&out, 10, (const uint8_t *)"k", 1));
  assert_true(out.truncated);
  assert_int_equal(out.dropped, 1);
  assert_true(exec_output_append(&out, 10, (const uint8_t *)"lmn", 3));
  assert_int_equal(out.dropped, 4);
  assert_int_equal(out.len, 10);
  assert_memory_equal(out.data, "abcdefghij", 10);
  free(out.data);
}

static void test_output_append_split(void **state)
{
  struct rbx_output out = {0};

  (void)state;
  assert_true(exec_output_append(&out, 5, (const uint8_t *)"abc\0efgh", 8));
  assert_int_equal(out.len, 5);
  assert_int_equal(out.dropped, 3);
  assert_memory_equal(out.data, "abc\0e", 5);
  free(out.data);
}

static void test_output_append_large(void **state)
{
  const size_t chunk = 65536, total = 3 * 1024 * 1024 + 17;
  uint8_t *piece = malloc(chunk);
  struct rbx_output out = {0};
  size_t sent = 0;

  (void)state;
  assert_non_null(piece);
  while (sent < total) {
    size_t n = total - sent < chunk ? total - sent : chunk;

    for (size_t i = 0; i < n; i++)
      piece[i] = (uint8_t)((sent + i) * 31);
    assert_false(exec_output_append(&out, 16 * 1024 * 1024, piece, n));
    sent += n;
  }
  assert_int_equal(out.len, total);
  for (size_t i = 0; i < total; i++) {
    if (out.data[i] != (uint8_t)(i * 31))
      fail_msg("byte %zu differs", i);
  }
  free(out.data);
  free(piece);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_policy_init_defaults),
      cmocka_unit_test(test_options_init_defaults),
      cmocka_unit_test(test_policy_validate_table),
      cmocka_unit_test(test_policy_validate_null),
      cmocka_unit_test(test_policy_check_mount_table),
      cmocka_unit_test(test_policy_check_mount_missing_code),
      cmocka_unit_test(test_spec_copy_deep),
      cmocka_unit_test(test_spec_copy_defaults),
      cmocka_unit_test(test_spec_copy_empty_stdin),
      cmocka_unit_test(test_spec_copy_table),
      cmocka_unit_test(test_output_append_limit),
      cmocka_unit_test(test_output_append_split),
      cmocka_unit_test(test_output_append_large),
  };

  return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
