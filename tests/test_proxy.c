/* Unit tests of the egress proxy's pure parts: host normalization, the
 * allowlist, authority and target parsing, request heads and bodies, the
 * upstream head, address checks, config, and the DNS message codec and
 * resolver (against a fake nameserver on loopback). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "proxy/request.h"
#include "proxy/resolve.h"
#include "proxy/rules.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- host normalization ---- */

struct host_case {
  const char *in;
  int rc;
  enum proxy_host_kind kind;
  const char *name; /* normalized, or the reason when rc < 0 */
};

static const struct host_case host_cases[] = {
    {"Example.COM", 0, PROXY_HOST_NAME, "example.com"},
    {"example.com.", 0, PROXY_HOST_NAME, "example.com"},
    {"example.com..", -EINVAL, 0, "empty label in host"},
    {".example.com", -EINVAL, 0, "empty label in host"},
    {"a..b", -EINVAL, 0, "empty label in host"},
    {".", -EINVAL, 0, "empty host"},
    {"", -EINVAL, 0, "empty host"},
    {"under_score.test", 0, PROXY_HOST_NAME, "under_score.test"},
    {"bad host", -EINVAL, 0, "invalid character in host"},
    {"bad%2ehost", -EINVAL, 0, "invalid character in host"},
    {"ex*ample.com", -EINVAL, 0, "invalid character in host"},
    {"1.2.3.4.example.com", 0, PROXY_HOST_NAME, "1.2.3.4.example.com"},
    {"192.0.2.1", 0, PROXY_HOST_IPV4, "192.0.2.1"},
    {"192.0.2.1.", 0, PROXY_HOST_IPV4, "192.0.2.1"},
    {"0x7f.1", 0, PROXY_HOST_ODD_IPV4, "0x7f.1"},
    {"0X7F.0.0.1", 0, PROXY_HOST_ODD_IPV4, "0x7f.0.0.1"},
    {"2130706433", 0, PROXY_HOST_ODD_IPV4, "2130706433"},
    {"127.1", 0, PROXY_HOST_ODD_IPV4, "127.1"},
    {"0177.0.0.1", 0, PROXY_HOST_ODD_IPV4, "0177.0.0.1"},
    {"256.1.1.1", 0, PROXY_HOST_ODD_IPV4, "256.1.1.1"},
    {"1.2.3.4.5", 0, PROXY_HOST_ODD_IPV4, "1.2.3.4.5"},
    {"example.0x10", 0, PROXY_HOST_ODD_IPV4, "example.0x10"},
    {"[::1]", 0, PROXY_HOST_IPV6, "::1"},
    {"[2001:DB8:0:0::1]", 0, PROXY_HOST_IPV6, "2001:db8::1"},
    {"[::ffff:127.0.0.1]", 0, PROXY_HOST_IPV6, "::ffff:127.0.0.1"},
    {"[fe80::1%25eth0]", -EINVAL, 0, "ipv6 zone ids are not allowed"},
    {"[::1", -EINVAL, 0, "unterminated ipv6 literal"},
    {"[]", -EINVAL, 0, "invalid ipv6 literal"},
    {"[nothex::1]", -EINVAL, 0, "invalid ipv6 literal"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
     -EINVAL, 0, "host label longer than 63 characters"},
};

static void test_host_normalize_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(host_cases); i++) {
    const struct host_case *tc = &host_cases[i];
    struct proxy_host host;
    const char *why = NULL;
    int rc = proxy_host_normalize(tc->in, strlen(tc->in), &host, &why);

    print_message("host %s\n", tc->in);
    assert_int_equal(rc, tc->rc);
    if (rc == 0) {
      assert_int_equal(host.kind, tc->kind);
      assert_string_equal(host.name, tc->name);
    } else {
      assert_string_equal(why, tc->name);
    }
  }
}

static void test_host_normalize_length_limit(void **state)
{
  char name[300];
  struct proxy_host host;
  const char *why = NULL;

  (void)state;
  /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters. */
  memset(name, 'a', sizeof(name));
  name[63] = name[127] = name[191] = '.';
  name[253] = '\0';
  assert_int_equal(proxy_host_normalize(name, 253, &host, &why), 0);
  name[253] = '.';
  assert_int_equal(proxy_host_normalize(name, 254, &host, &why), 0);
  assert_int_equal(strlen(host.name), 253);
  name[253] = 'a';
  assert_int_equal(proxy_host_normalize(name, 254, &host, &why), -EINVAL);
  assert_string_equal(why, "host longer than 253 characters");
}

/* ---- ports and authorities ---- */

static void test_port_parse_table(void **state)
{
  static const struct {
    const char *in;
    int port;
  } cases[] = {
      {"80", 80},          {"1", 1},         {"65535", 65535},
      {"443", 443},        {"080", -EINVAL}, {"0", -EINVAL},
      {"+80", -EINVAL},    {"-80", -EINVAL}, {"65536", -EINVAL},
      {"99999", -EINVAL},  {"", -EINVAL},    {"8o", -EINVAL},
      {"100000", -EINVAL}, {" 80", -EINVAL}, {"0x50", -EINVAL},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    print_message("port \"%s\"\n", cases[i].in);
    assert_int_equal(proxy_port_parse(cases[i].in, strlen(cases[i].in)),
                     cases[i].port);
  }
}

struct authority_case {
  const char *in;
  uint16_t default_port;
  int rc;
  const char *host; /* or the reason when rc < 0 */
  uint16_t port;
};

static const struct authority_case authority_cases[] = {
    {"example.com:443", 0, 0, "example.com", 443},
    {"EXAMPLE.com.:8080", 0, 0, "example.com", 8080},
    {"example.com", 80, 0, "example.com", 80},
    {"example.com", 0, -EINVAL, "missing port", 0},
    {"example.com:", 80, -EINVAL, "invalid port", 0},
    {"example.com:080", 0, -EINVAL, "invalid port", 0},
    {"example.com:+80", 0, -EINVAL, "invalid port", 0},
    {"example.com:99999", 0, -EINVAL, "invalid port", 0},
    {"example.com:0", 0, -EINVAL, "invalid port", 0},
    {"example.com:80:80", 0, -EINVAL,
     "ipv6 literals must be written in brackets", 0},
    {"user@example.com:443", 0, -EINVAL,
     "userinfo is not allowed in the authority", 0},
    {"user:pw@example.com", 80, -EINVAL,
     "userinfo is not allowed in the authority", 0},
    {"[2001:db8::1]:443", 0, 0, "2001:db8::1", 443},
    {"[2001:db8::1]", 80, 0, "2001:db8::1", 80},
    {"[2001:db8::1]x", 80, -EINVAL, "unexpected characters after ipv6 literal",
     0},
    {"2001:db8::1", 80, -EINVAL, "ipv6 literals must be written in brackets",
     0},
    {"[::1:443", 0, -EINVAL, "unterminated ipv6 literal", 0},
    {":443", 0, -EINVAL, "empty host", 0},
    {"", 80, -EINVAL, "empty host", 0},
    {"0x7f.1:443", 0, 0, "0x7f.1", 443},
};

static void test_authority_parse_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(authority_cases); i++) {
    const struct authority_case *tc = &authority_cases[i];
    struct proxy_target t;
    const char *why = NULL;
    int rc = proxy_authority_parse(tc->in, strlen(tc->in), tc->default_port, &t,
                                   &why);

    print_message("authority %s\n", tc->in);
    assert_int_equal(rc, tc->rc);
    if (rc == 0) {
      assert_string_equal(t.host.name, tc->host);
      assert_int_equal(t.port, tc->port);
    } else {
      assert_string_equal(why, tc->host);
    }
  }
}

struct absolute_case {
  const char *in;
  int rc;
  const char *host; /* or the reason */
  uint16_t port;
  const char *path; /* origin-form part as returned */
};

static const struct absolute_case absolute_cases[] = {
    {"http://example.com/a/b?c=d", 0, "example.com", 80, "/a/b?c=d"},
    {"HTTP://Example.com:8080", 0, "example.com", 8080, ""},
    {"http://example.com?q=1", 0, "example.com", 80, "?q=1"},
    {"http://[::1]:81/x", 0, "::1", 81, "/x"},
    {"http://example.com:080/", -EINVAL, "invalid port", 0, NULL},
    {"http://u@example.com/", -EINVAL,
     "userinfo is not allowed in the authority", 0, NULL},
    {"http://example.com/#frag", -EINVAL, "fragment in request target", 0,
     NULL},
    {"https://example.com/", -EINVAL, "https targets need a CONNECT tunnel", 0,
     NULL},
    {"ftp://example.com/", -EINVAL,
     "request target is not an absolute http url", 0, NULL},
    {"/index.html", -EINVAL, "origin-form target sent to a proxy", 0, NULL},
    {"http:///path", -EINVAL, "empty host", 0, NULL},
    {"http://exa\x01mple.com/", -EINVAL, "invalid character in request target",
     0, NULL},
};

static void test_absolute_parse_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(absolute_cases); i++) {
    const struct absolute_case *tc = &absolute_cases[i];
    struct proxy_target t;
    const char *why = NULL;
    size_t off = 0, len = 0;
    int rc = proxy_absolute_parse(tc->in, strlen(tc->in), &t, &off, &len, &why);

    print_message("target %s\n", tc->in);
    assert_int_equal(rc, tc->rc);
    if (rc == 0) {
      assert_string_equal(t.host.name, tc->host);
      assert_int_equal(t.port, tc->port);
      assert_int_equal(len, strlen(tc->path));
      assert_memory_equal(tc->in + off, tc->path, len);
    } else {
      assert_string_equal(why, tc->host);
    }
  }
}

/* ---- allowlist and config ---- */

static struct proxy_config *config_with(const char *hosts, const char *ports)
{
  static struct proxy_config cfg;
  struct rbx_error err = {0};

  memset(&cfg, 0, sizeof(cfg));
  assert_int_equal(proxy_config_parse_hosts(&cfg, hosts, &err), 0);
  assert_int_equal(proxy_config_parse_ports(&cfg, ports, &err), 0);
  return &cfg;
}

static void test_allowlist_match_table(void **state)
{
  static const struct {
    const char *host;
    bool allowed;
  } cases[] = {
      {"example.com", true},
      {"EXAMPLE.COM.", true},
      {"www.example.com", true},
      {"a.b.example.com", true},
      {"notexample.com", false},
      {"example.com.evil.test", false},
      {"xexample.com", false},
      {"pypi.org", true},
      {"www.pypi.org", false},
      {"files.pythonhosted.org", false},
      {"allowed.test", true},
      {"192.0.2.7", true},
      {"192.0.2.8", false},
      {"[2001:db8::7]", true},
      {"[2001:DB8:0::7]", true},
      {"[2001:db8::8]", false},
      {"0xc0.0.2.7", false},
      {"3221226247", false},
      {"192.0.2.07", false},
      {"com", false},
      {"org", false},
  };
  struct proxy_config *cfg = config_with(
      " *.Example.com , pypi.org,allowed.test.,192.0.2.7, 2001:db8::7 ,", "80");

  (void)state;
  assert_int_equal(cfg->allow_count, 5);
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    struct proxy_host host;
    const char *why = NULL;

    print_message("allow %s\n", cases[i].host);
    assert_int_equal(
        proxy_host_normalize(cases[i].host, strlen(cases[i].host), &host, &why),
        0);
    assert_int_equal(proxy_host_allowed(cfg, &host), cases[i].allowed);
  }
}

static void test_allowlist_empty_denies(void **state)
{
  struct proxy_config *cfg = config_with("", "80,443");
  struct proxy_host host;
  const char *why = NULL;

  (void)state;
  assert_int_equal(cfg->allow_count, 0);
  assert_int_equal(proxy_host_normalize("example.com", 11, &host, &why), 0);
  assert_false(proxy_host_allowed(cfg, &host));
}

static void test_config_rejects_bad_entries(void **state)
{
  static const struct {
    const char *hosts;
    const char *ports;
    const char *message_part;
  } cases[] = {
      {"*", "80", "invalid character in host"},
      {"example.com:443", "80", "without a port"},
      {"127.1", "80", "four decimal numbers"},
      {"*.192.0.2.1", "80", "a wildcard needs a domain name"},
      {"a..b", "80", "empty label"},
      {"ok.test", "080", "is not a port"},
      {"ok.test", "80,0", "is not a port"},
      {"ok.test", "http", "is not a port"},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    static struct proxy_config cfg;
    struct rbx_error err = {0};
    int rc = proxy_config_parse_hosts(&cfg, cases[i].hosts, &err);

    if (rc == 0)
      rc = proxy_config_parse_ports(&cfg, cases[i].ports, &err);
    print_message("config %s %s: %s\n", cases[i].hosts, cases[i].ports,
                  err.message);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(err.kind, RBX_ERR_INVALID);
    assert_non_null(strstr(err.message, cases[i].message_part));
  }
}

static void test_config_load_env(void **state)
{
  static struct proxy_config cfg;
  struct rbx_error err = {0};
  struct sockaddr_in *in = (struct sockaddr_in *)&cfg.listen_addr;

  (void)state;
  unsetenv("PROXY_ALLOW_HOSTS");
  unsetenv("PROXY_ALLOW_PORTS");
  unsetenv("PROXY_LISTEN");
  unsetenv("PROXY_LOG");
  unsetenv("PROXY_ALLOW_LOOPBACK_UPSTREAM");
  assert_int_equal(proxy_config_load(&cfg, &err), 0);
  assert_int_equal(cfg.allow_count, 0);
  assert_int_equal(cfg.port_count, 2);
  assert_int_equal(cfg.ports[0], 80);
  assert_int_equal(cfg.ports[1], 443);
  assert_int_equal(ntohs(in->sin_port), 3128);
  assert_int_equal(in->sin_addr.s_addr, htonl(INADDR_ANY));
  assert_int_equal(cfg.log_level, RBX_LOG_INFO);
  assert_false(cfg.allow_loopback_upstream);
  assert_string_equal(cfg.resolv_conf, "/etc/resolv.conf");
  assert_string_equal(cfg.hosts_file, "/etc/hosts");

  setenv("PROXY_ALLOW_HOSTS", "a.test", 1);
  setenv("PROXY_LISTEN", "[::1]:0", 1);
  setenv("PROXY_LOG", "debug", 1);
  setenv("PROXY_ALLOW_LOOPBACK_UPSTREAM", "1", 1);
  assert_int_equal(proxy_config_load(&cfg, &err), 0);
  assert_int_equal(cfg.listen_addr.ss_family, AF_INET6);
  assert_int_equal(cfg.log_level, RBX_LOG_DEBUG);
  assert_true(cfg.allow_loopback_upstream);

  setenv("PROXY_LISTEN", "localhost:3128", 1);
  assert_int_equal(proxy_config_load(&cfg, &err), -EINVAL);
  assert_non_null(strstr(err.message, "PROXY_LISTEN"));
  setenv("PROXY_LISTEN", "127.0.0.1:3128", 1);
  setenv("PROXY_LOG", "loud", 1);
  assert_int_equal(proxy_config_load(&cfg, &err), -EINVAL);
  assert_non_null(strstr(err.message, "PROXY_LOG"));
  unsetenv("PROXY_LOG");
  setenv("PROXY_IDLE_TIMEOUT_S", "0", 1);
  assert_int_equal(proxy_config_load(&cfg, &err), -EINVAL);
  assert_non_null(strstr(err.message, "PROXY_IDLE_TIMEOUT_S"));
  unsetenv("PROXY_IDLE_TIMEOUT_S");
  unsetenv("PROXY_ALLOW_HOSTS");
  unsetenv("PROXY_LISTEN");
  unsetenv("PROXY_ALLOW_LOOPBACK_UPSTREAM");
}

/* ---- destination addresses ---- */

static void test_address_check_table(void **state)
{
  static const struct {
    const char *ip;
    bool loopback_switch;
    int rc;
  } cases[] = {
      {"127.0.0.1", false, -EACCES},
      {"127.255.0.9", false, -EACCES},
      {"127.0.0.1", true, 0},
      {"0.0.0.0", false, -EACCES},
      {"0.1.2.3", false, -EACCES},
      {"169.254.169.254", false, -EACCES},
      {"224.0.0.1", false, -EACCES},
      {"255.255.255.255", false, -EACCES},
      {"192.0.2.1", false, 0},
      {"172.18.0.2", false, 0},
      {"::1", false, -EACCES},
      {"::1", true, 0},
      {"::", false, -EACCES},
      {"fe80::1", false, -EACCES},
      {"febf::1", false, -EACCES},
      {"fec0::1", false, 0},
      {"ff02::1", false, -EACCES},
      {"::ffff:127.0.0.1", false, -EACCES},
      {"::ffff:169.254.1.1", false, -EACCES},
      {"::127.0.0.1", false, -EACCES},
      {"64:ff9b::7f00:1", false, -EACCES},
      {"::ffff:192.0.2.1", false, 0},
      {"2001:db8::1", false, 0},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    union proxy_sockaddr addr;
    const char *why = NULL;

    memset(&addr, 0, sizeof(addr));
    if (inet_pton(AF_INET, cases[i].ip, &addr.in.sin_addr) == 1) {
      addr.in.sin_family = AF_INET;
    } else {
      assert_int_equal(inet_pton(AF_INET6, cases[i].ip, &addr.in6.sin6_addr),
                       1);
      addr.in6.sin6_family = AF_INET6;
    }
    print_message("address %s\n", cases[i].ip);
    assert_int_equal(
        proxy_address_check(&addr.sa, cases[i].loopback_switch, &why),
        cases[i].rc);
    if (cases[i].rc)
      assert_non_null(strstr(why, "destination is"));
  }
}

/* ---- request heads ---- */

/* Parses req as sent in two pieces split at split, the way bytes arrive
 * from a socket. Returns the feed result. */
static int parse_split(struct proxy_head *h, const char *req, size_t len,
                       size_t split, const char **why)
{
  int rc;

  proxy_head_init(h);
  rc = proxy_head_feed(h, req, split, why);
  if (rc != PROXY_FEED_MORE)
    return rc;
  return proxy_head_feed(h, req, len, why);
}

static void test_head_parse_every_split(void **state)
{
  static const char req[] = "GET http://Example.com:8080/p?q=1 HTTP/1.1\r\n"
                            "Host: example.com:8080\r\n"
                            "X-Long:   spaced value \t\r\n"
                            "X-Empty:\r\n"
                            "\r\n"
                            "leftover";
  size_t len = sizeof(req) - 1;

  (void)state;
  for (size_t split = 0; split <= len; split++) {
    struct proxy_head h;
    const char *why = NULL;
    int rc = parse_split(&h, req, len, split, &why);

    assert_int_equal(rc, PROXY_FEED_DONE);
    assert_int_equal(h.head_len, len - strlen("leftover"));
    assert_int_equal(h.method, HTTP_GET);
    assert_int_equal(h.http_minor, 1);
    assert_int_equal(h.url.len, strlen("http://Example.com:8080/p?q=1"));
    assert_memory_equal(req + h.url.off, "http://Example.com:8080/p?q=1",
                        h.url.len);
    assert_int_equal(h.header_count, 3);
    assert_int_equal(h.headers[1].value.len, strlen("spaced value"));
    assert_memory_equal(req + h.headers[1].value.off, "spaced value",
                        h.headers[1].value.len);
    assert_int_equal(h.headers[2].value.len, 0);
  }
}

static void test_connect_parse_every_split(void **state)
{
  static const char req[] = "CONNECT Example.com.:443 HTTP/1.1\r\n"
                            "Host: example.com:443\r\n"
                            "\r\n"
                            "\x16\x03\x01 tls bytes";
  size_t len = sizeof(req) - 1;
  struct proxy_config *cfg = config_with("*.example.com", "443");

  (void)state;
  for (size_t split = 0; split <= len; split++) {
    struct proxy_head h;
    struct proxy_decision d;
    const char *why = NULL;

    assert_int_equal(parse_split(&h, req, len, split, &why), PROXY_FEED_DONE);
    assert_int_equal(h.method, HTTP_CONNECT);
    assert_int_equal(h.head_len, len - strlen("\x16\x03\x01 tls bytes"));
    proxy_decide(cfg, &h, req, &d);
    assert_int_equal(d.status, 0);
    assert_true(d.is_connect);
    assert_string_equal(d.target.host.name, "example.com");
    assert_int_equal(d.target.port, 443);
  }
}

struct head_error_case {
  const char *req;
  int rc;
  const char *why;
};

static void test_head_parse_errors_table(void **state)
{
  static const struct head_error_case cases[] = {
      {"GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n", -EINVAL,
       "invalid character in header field name"},
      {"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n",
       -EINVAL, "folded header field value"},
      {"GET http://a.test/ HTTP/2.0\r\nHost: a.test\r\n\r\n", -EPROTONOSUPPORT,
       "http version not supported"},
      {"BREW http://a.test/ HTTP/1.1\r\n\r\n", -EINVAL, NULL},
      {"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
       "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       -EINVAL, NULL},
      {"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", -EINVAL,
       NULL},
      {"GET http://a.test/ HTTP/1.1\nHost: a.test\n\n", -EINVAL, NULL},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    struct proxy_head h;
    const char *why = NULL;

    print_message("head error %zu\n", i);
    proxy_head_init(&h);
    assert_int_equal(
        proxy_head_feed(&h, cases[i].req, strlen(cases[i].req), &why),
        cases[i].rc);
    assert_non_null(why);
    if (cases[i].why)
      assert_string_equal(why, cases[i].why);
  }
}

static void test_head_parse_too_large(void **state)
{
  static char req[PROXY_HEAD_MAX + 64];
  struct proxy_head h;
  const char *why = NULL;
  size_t len;

  (void)state;
  len = (size_t)snprintf(req, sizeof(req),
                         "GET http://a.test/ HTTP/1.1\r\nX-Big: ");
  memset(req + len, 'a', sizeof(req) - len);
  proxy_head_init(&h);
  assert_int_equal(proxy_head_feed(&h, req, PROXY_HEAD_MAX - 1, &why),
                   PROXY_FEED_MORE);
  assert_int_equal(proxy_head_feed(&h, req, sizeof(req), &why), -E2BIG);
  assert_string_equal(why, "request head too large");
}

static void test_head_parse_too_many_fields(void **state)
{
  static char req[PROXY_HEAD_MAX];
  struct proxy_head h;
  const char *why = NULL;
  size_t len;

  (void)state;
  len = (size_t)snprintf(req, sizeof(req), "GET http://a.test/ HTTP/1.1\r\n");
  for (int i = 0; i <= PROXY_HEADERS_MAX; i++)
    len += (size_t)snprintf(req + len, sizeof(req) - len, "X-%d: v\r\n", i);
  len += (size_t)snprintf(req + len, sizeof(req) - len, "\r\n");
  proxy_head_init(&h);
  assert_int_equal(proxy_head_feed(&h, req, len, &why), -E2BIG);
  assert_string_equal(why, "too many header fields");
}

/* ---- decisions ---- */

struct decide_case {
  const char *req;
  int status;
  const char *why;
};

static void test_decide_table(void **state)
{
  static const struct decide_case cases[] = {
      {"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 0,
       NULL},
      {"GET http://ALLOWED.test./ HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n", 0,
       NULL},
      {"GET http://allowed.test/ HTTP/1.0\r\n\r\n", 0, NULL},
      {"GET http://allowed.test/ HTTP/1.1\r\n\r\n", 400, "missing host field"},
      {"GET http://allowed.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n", 400,
       "host field does not match the request target"},
      {"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test:81\r\n\r\n",
       400, "host field does not match the request target"},
      {"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"
       "Host: allowed.test\r\n\r\n",
       400, "more than one host field"},
      {"GET http://allowed.test:080/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
       400, "invalid port"},
      {"GET http://a@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400,
       "userinfo is not allowed in the authority"},
      {"GET /path HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400,
       "origin-form target sent to a proxy"},
      {"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n", 403,
       "host not in allowlist"},
      {"GET http://allowed.test:8080/ HTTP/1.1\r\n"
       "Host: allowed.test:8080\r\n\r\n",
       403, "port not allowed"},
      {"GET http://127.1/ HTTP/1.1\r\nHost: 127.1\r\n\r\n", 403,
       "ip literal in a non-canonical form"},
      {"GET http://2130706433/ HTTP/1.1\r\nHost: 2130706433\r\n\r\n", 403,
       "ip literal in a non-canonical form"},
      {"GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403,
       "ip literal not in allowlist"},
      {"GET http://[::1]/ HTTP/1.1\r\nHost: [::1]\r\n\r\n", 403,
       "ip literal not in allowlist"},
      {"GET http://192.0.2.9/ HTTP/1.1\r\nHost: 192.0.2.9\r\n\r\n", 0, NULL},
      {"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n", 0, NULL},
      {"CONNECT sub.wild.test:443 HTTP/1.1\r\n\r\n", 0, NULL},
      {"CONNECT wild.test:443 HTTP/1.1\r\n\r\n", 0, NULL},
      {"CONNECT notwild.test:443 HTTP/1.1\r\n\r\n", 403,
       "host not in allowlist"},
      {"CONNECT allowed.test HTTP/1.1\r\n\r\n", 400, "missing port"},
      {"CONNECT allowed.test: HTTP/1.1\r\n\r\n", 400, "invalid port"},
      {"CONNECT allowed.test:+443 HTTP/1.1\r\n\r\n", 400, "invalid port"},
      {"CONNECT allowed.test:0443 HTTP/1.1\r\n\r\n", 400, "invalid port"},
      {"CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n", 400, "invalid port"},
      {"CONNECT allowed.test:22 HTTP/1.1\r\n\r\n", 403, "port not allowed"},
      {"CONNECT user@allowed.test:443 HTTP/1.1\r\n\r\n", 400,
       "userinfo is not allowed in the authority"},
      {"CONNECT 0x7f.1:443 HTTP/1.1\r\n\r\n", 403,
       "ip literal in a non-canonical form"},
      {"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", 403,
       "ip literal not in allowlist"},
  };
  struct proxy_config *cfg =
      config_with("allowed.test,*.wild.test,192.0.2.9", "80,443");

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const char *req = cases[i].req;
    struct proxy_head h;
    struct proxy_decision d;
    const char *why = NULL;

    print_message("decide %s", req);
    proxy_head_init(&h);
    assert_int_equal(proxy_head_feed(&h, req, strlen(req), &why),
                     PROXY_FEED_DONE);
    proxy_decide(cfg, &h, req, &d);
    assert_int_equal(d.status, cases[i].status);
    if (cases[i].why)
      assert_string_equal(d.why, cases[i].why);
  }
}

/* ---- hop-by-hop fields and the upstream head ---- */

static void decide_allowed(const char *req, struct proxy_head *h,
                           struct proxy_decision *d)
{
  struct proxy_config *cfg =
      config_with("allowed.test,[2001:db8::5]", "80,8080");
  const char *why = NULL;

  proxy_head_init(h);
  assert_int_equal(proxy_head_feed(h, req, strlen(req), &why), PROXY_FEED_DONE);
  proxy_decide(cfg, h, req, d);
  assert_int_equal(d->status, 0);
}

static void test_hop_by_hop_table(void **state)
{
  static const char req[] =
      "GET http://allowed.test/ HTTP/1.1\r\n"
      "Host: allowed.test\r\n"
      "Connection: keep-alive, X-Secret ,content-length\r\n"
      "Connection: X-Other\r\n\r\n";
  static const struct {
    const char *name;
    bool hop;
  } cases[] = {
      {"Connection", true},
      {"KEEP-ALIVE", true},
      {"Proxy-Connection", true},
      {"Proxy-Authorization", true},
      {"TE", true},
      {"Trailer", true},
      {"Upgrade", true},
      {"Host", true},
      {"x-secret", true},
      {"X-Other", true},
      {"Content-Length", false},
      {"Transfer-Encoding", false},
      {"Accept", false},
      {"X-Secret-2", false},
      {"Authorization", false},
      {"Proxy-Authenticate-X", false},
  };
  struct proxy_head h;
  struct proxy_decision d;

  (void)state;
  decide_allowed(req, &h, &d);
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    print_message("field %s\n", cases[i].name);
    assert_int_equal(proxy_header_is_hop_by_hop(&h, req, cases[i].name,
                                                strlen(cases[i].name)),
                     cases[i].hop);
  }
}

static void test_upstream_head_exact(void **state)
{
  static const struct {
    const char *req;
    const char *expected;
  } cases[] = {
      {"GET http://Allowed.Test/a/b?c=d HTTP/1.1\r\n"
       "Host: allowed.test\r\n"
       "User-Agent: t\r\n"
       "Proxy-Connection: keep-alive\r\n"
       "Proxy-Authorization: Basic eDp5\r\n"
       "Connection: keep-alive, X-Drop\r\n"
       "Keep-Alive: timeout=5\r\n"
       "TE: trailers\r\n"
       "Trailer: X-T\r\n"
       "Upgrade: websocket\r\n"
       "X-Drop: 1\r\n"
       "Accept: */*\r\n\r\n",
       "GET /a/b?c=d HTTP/1.1\r\n"
       "Host: allowed.test\r\n"
       "User-Agent: t\r\n"
       "Accept: */*\r\n"
       "Connection: close\r\n\r\n"},
      {"POST http://allowed.test:8080?x HTTP/1.1\r\n"
       "Host: allowed.test:8080\r\n"
       "Transfer-Encoding: chunked\r\n\r\n",
       "POST /?x HTTP/1.1\r\n"
       "Host: allowed.test:8080\r\n"
       "Transfer-Encoding: chunked\r\n"
       "Connection: close\r\n\r\n"},
      {"HEAD http://[2001:db8::5] HTTP/1.0\r\n\r\n",
       "HEAD / HTTP/1.0\r\n"
       "Host: [2001:db8::5]\r\n"
       "Connection: close\r\n\r\n"},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    struct proxy_head h;
    struct proxy_decision d;
    char out[1024];
    int len;

    decide_allowed(cases[i].req, &h, &d);
    len = proxy_upstream_head(&h, cases[i].req, &d, out, sizeof(out));
    assert_int_equal(len, (int)strlen(cases[i].expected));
    assert_memory_equal(out, cases[i].expected, (size_t)len);
    assert_int_equal(
        proxy_upstream_head(&h, cases[i].req, &d, out, (size_t)len - 1),
        -E2BIG);
  }
}

/* ---- request bodies ---- */

static void test_body_framing_every_split(void **state)
{
  static const struct {
    const char *req; /* head, body, then bytes that must not be forwarded */
    size_t body_len;
  } cases[] = {
      {"POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"
       "Content-Length: 11\r\n\r\nhello worldGET next",
       11},
      {"POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"
       "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET next",
       46},
      {"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
       "GET next",
       0},
  };

  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const char *req = cases[i].req;
    size_t len = strlen(req);
    struct proxy_head probe;
    struct proxy_decision d;

    decide_allowed(req, &probe, &d);
    for (size_t split = probe.head_len; split <= len; split++) {
      struct proxy_head h;
      const char *why = NULL;
      size_t first = 0, second = 0;
      int rc;

      decide_allowed(req, &h, &d);
      rc = proxy_body_feed(&h, req + h.head_len, split - h.head_len, &first,
                           &why);
      if (rc == PROXY_FEED_MORE) {
        assert_int_equal(first, split - h.head_len);
        rc = proxy_body_feed(&h, req + split, len - split, &second, &why);
      }
      assert_int_equal(rc, PROXY_FEED_DONE);
      assert_int_equal(first + second, cases[i].body_len);
    }
  }
}

static void test_body_framing_bad_chunk(void **state)
{
  static const char req[] =
      "POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"
      "Transfer-Encoding: chunked\r\n\r\nzz\r\n";
  struct proxy_head h;
  struct proxy_decision d;
  const char *why = NULL;
  size_t consumed = 0;

  (void)state;
  decide_allowed(req, &h, &d);
  assert_int_equal(proxy_body_feed(&h, req + h.head_len,
                                   strlen(req) - h.head_len, &consumed, &why),
                   -EINVAL);
  assert_non_null(why);
}

/* ---- DNS messages ---- */

static void test_dns_encode_exact(void **state)
{
  static const uint8_t expected[] = {
      0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 7,    'a',  'l',  'l',  'o',  'w',  'e',  'd',
      4,    't',  'e',  's',  't',  0,    0x00, 0x01, 0x00, 0x01,
  };
  uint8_t out[PROXY_DNS_QUERY_MAX];
  char long_label[80];

  (void)state;
  assert_int_equal(proxy_dns_encode(0x1234, "allowed.test", PROXY_DNS_TYPE_A,
                                    out, sizeof(out)),
                   (int)sizeof(expected));
  assert_memory_equal(out, expected, sizeof(expected));
  assert_int_equal(proxy_dns_encode(1, "a..b", 1, out, sizeof(out)), -EINVAL);
  assert_int_equal(proxy_dns_encode(1, "a.", 1, out, sizeof(out)), -EINVAL);
  assert_int_equal(proxy_dns_encode(1, "", 1, out, sizeof(out)), -EINVAL);
  memset(long_label, 'x', 64);
  long_label[64] = '\0';
  assert_int_equal(proxy_dns_encode(1, long_label, 1, out, sizeof(out)),
                   -EINVAL);
  assert_int_equal(proxy_dns_encode(1, "allowed.test", 1, out, 20), -E2BIG);
}

/* Builds DNS replies for the decoder tests. */
struct msg {
  uint8_t buf[1024];
  size_t len;
};

static void msg_put(struct msg *m, const void *data, size_t len)
{
  assert_true(m->len + len <= sizeof(m->buf));
  memcpy(m->buf + m->len, data, len);
  m->len += len;
}

static void msg_u16(struct msg *m, uint16_t value)
{
  uint8_t b[2] = {(uint8_t)(value >> 8), (uint8_t)value};

  msg_put(m, b, 2);
}

static void msg_name(struct msg *m, const char *name)
{
  uint8_t out[PROXY_DNS_QUERY_MAX];
  int len = proxy_dns_encode(0, name, 1, out, sizeof(out));

  assert_true(len > 16);
  msg_put(m, out + 12, (size_t)len - 16);
}

/* Starts a reply to (id, name, A) with the given flags and answer count. */
static void msg_reply(struct msg *m, uint16_t id, uint16_t flags,
                      uint16_t answers, const char *name)
{
  m->len = 0;
  msg_u16(m, id);
  msg_u16(m, flags);
  msg_u16(m, 1);
  msg_u16(m, answers);
  msg_u16(m, 0);
  msg_u16(m, 0);
  msg_name(m, name);
  msg_u16(m, PROXY_DNS_TYPE_A);
  msg_u16(m, 1);
}

static void msg_record_head(struct msg *m, const uint8_t *owner,
                            size_t owner_len, uint16_t type, uint16_t rdlen)
{
  msg_put(m, owner, owner_len);
  msg_u16(m, type);
  msg_u16(m, 1);
  msg_u16(m, 0);
  msg_u16(m, 60);
  msg_u16(m, rdlen);
}

static const uint8_t at_question[] = {0xc0, 12};

static void msg_a(struct msg *m, const uint8_t *owner, size_t owner_len,
                  const char *ip)
{
  struct in_addr a;

  assert_int_equal(inet_pton(AF_INET, ip, &a), 1);
  msg_record_head(m, owner, owner_len, PROXY_DNS_TYPE_A, 4);
  msg_put(m, &a, 4);
}

static void assert_addr(const union proxy_sockaddr *addr, const char *ip,
                        uint16_t port)
{
  char text[INET_ADDRSTRLEN];

  assert_int_equal(addr->sa.sa_family, AF_INET);
  inet_ntop(AF_INET, &addr->in.sin_addr, text, sizeof(text));
  assert_string_equal(text, ip);
  assert_int_equal(ntohs(addr->in.sin_port), port);
}

static void test_dns_decode_answers(void **state)
{
  struct msg m;
  struct proxy_addrs out = {0};

  (void)state;
  msg_reply(&m, 7, 0x8180, 2, "Allowed.Test");
  msg_a(&m, at_question, 2, "192.0.2.1");
  msg_a(&m, at_question, 2, "192.0.2.2");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 7, "allowed.test",
                                    PROXY_DNS_TYPE_A, 443, &out),
                   0);
  assert_int_equal(out.count, 2);
  assert_addr(&out.addr[0], "192.0.2.1", 443);
  assert_addr(&out.addr[1], "192.0.2.2", 443);
}

static void test_dns_decode_cname_chain(void **state)
{
  struct msg m;
  struct proxy_addrs out = {0};
  size_t cname_at;
  uint8_t to_cname[2];

  (void)state;
  /* allowed.test CNAME edge.cdn.test; edge.cdn.test A 192.0.2.9; an A
   * record of an unrelated owner is ignored. */
  msg_reply(&m, 9, 0x8180, 3, "allowed.test");
  msg_a(&m, (const uint8_t *)"\x05other\x04test", 12, "192.0.2.66");
  msg_record_head(&m, at_question, 2, PROXY_DNS_TYPE_CNAME, 15);
  cname_at = m.len;
  msg_name(&m, "edge.cdn.test");
  to_cname[0] = (uint8_t)(0xc0 | cname_at >> 8);
  to_cname[1] = (uint8_t)cname_at;
  msg_a(&m, to_cname, 2, "192.0.2.9");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 9, "allowed.test",
                                    PROXY_DNS_TYPE_A, 80, &out),
                   0);
  assert_int_equal(out.count, 1);
  assert_addr(&out.addr[0], "192.0.2.9", 80);
}

static void test_dns_decode_errors_table(void **state)
{
  struct msg m;
  struct proxy_addrs out = {0};

  (void)state;
  msg_reply(&m, 5, 0x8183, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -ENOENT);
  msg_reply(&m, 5, 0x8182, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -EAGAIN);
  msg_reply(&m, 5, 0x8180, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -ENOENT);
  msg_reply(&m, 5, 0x8380, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -EAGAIN);
  /* Wrong id, a query instead of a reply, another question. */
  msg_reply(&m, 6, 0x8180, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -ESRCH);
  msg_reply(&m, 5, 0x0100, 0, "gone.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -ESRCH);
  msg_reply(&m, 5, 0x8180, 0, "other.test");
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -ESRCH);
  /* Too short, an answer cut off, a record pointing at itself. */
  assert_int_equal(proxy_dns_decode(m.buf, 11, 5, "other.test", 1, 80, &out),
                   -EBADMSG);
  msg_reply(&m, 5, 0x8180, 1, "gone.test");
  msg_a(&m, at_question, 2, "192.0.2.1");
  assert_int_equal(
      proxy_dns_decode(m.buf, m.len - 1, 5, "gone.test", 1, 80, &out),
      -EBADMSG);
  msg_reply(&m, 5, 0x8180, 1, "gone.test");
  m.buf[m.len] = 0xc0;
  m.buf[m.len + 1] = (uint8_t)m.len;
  m.len += 2;
  msg_u16(&m, 1);
  msg_u16(&m, 1);
  msg_u16(&m, 0);
  msg_u16(&m, 0);
  msg_u16(&m, 4);
  msg_put(&m, "\x01\x02\x03\x04", 4);
  assert_int_equal(proxy_dns_decode(m.buf, m.len, 5, "gone.test", 1, 80, &out),
                   -EBADMSG);
}

static void test_dns_decode_every_truncation(void **state)
{
  struct msg m;

  (void)state;
  msg_reply(&m, 3, 0x8180, 1, "allowed.test");
  msg_a(&m, at_question, 2, "192.0.2.1");
  for (size_t len = 0; len < m.len; len++) {
    struct proxy_addrs out = {0};
    int rc = proxy_dns_decode(m.buf, len, 3, "allowed.test", 1, 80, &out);

    assert_true(rc == -EBADMSG || rc == -ESRCH);
  }
}

/* ---- hosts file and resolv.conf ---- */

static void test_hosts_and_resolv_conf_parse(void **state)
{
  static const char hosts[] =
      "# comment\n"
      "127.0.0.1\tlocalhost\n"
      "::1 localhost ip6-localhost\n"
      "192.0.2.5  Allowed.Test.  alias.test # trailing comment\n"
      "not-an-ip broken.test\n"
      "192.0.2.6 allowed.test\n";
  static const char resolv[] = "search example.internal\n"
                               "nameserver 127.0.0.11\n"
                               "; comment\n"
                               "nameserver ::1\n"
                               "nameserver bogus\n"
                               "nameserver 192.0.2.53\n"
                               "nameserver 192.0.2.54\n"
                               "options ndots:0\n";
  struct proxy_resolver r;
  struct proxy_addrs out = {0};

  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(proxy_hosts_parse(&r, hosts, strlen(hosts)), 0);
  assert_int_equal(r.hosts_count, 6);
  assert_int_equal(proxy_hosts_lookup(&r, "allowed.test", 8080, &out), 2);
  assert_addr(&out.addr[0], "192.0.2.5", 8080);
  assert_addr(&out.addr[1], "192.0.2.6", 8080);
  out.count = 0;
  assert_int_equal(proxy_hosts_lookup(&r, "localhost", 80, &out), 2);
  assert_int_equal(out.addr[1].sa.sa_family, AF_INET6);
  out.count = 0;
  assert_int_equal(proxy_hosts_lookup(&r, "broken.test", 80, &out), 0);
  assert_int_equal(proxy_resolv_conf_parse(&r, resolv, strlen(resolv)), 0);
  assert_int_equal(r.ns_count, 3);
  assert_addr(&r.ns[0], "127.0.0.11", 53);
  assert_int_equal(r.ns[1].sa.sa_family, AF_INET6);
  assert_addr(&r.ns[2], "192.0.2.53", 53);
  proxy_resolver_free(&r);
}

/* ---- the resolver against a fake nameserver ---- */

struct fake_dns {
  int fd;
  uint16_t port;
  int drop_first; /* queries dropped before replying */
  int wrong_id;   /* replies sent first with a wrong id */
  uint16_t rcode;
  int queries; /* queries received */
  pthread_t thread;
};

static void *fake_dns_run(void *arg)
{
  struct fake_dns *f = arg;
  uint8_t query[512];

  for (;;) {
    struct sockaddr_in from;
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(f->fd, query, sizeof(query), 0,
                         (struct sockaddr *)&from, &from_len);
    struct msg m;
    uint16_t id;

    if (n <= 0)
      break;
    if (n == 1)
      break; /* the stop message */
    f->queries++;
    if (f->drop_first-- > 0)
      continue;
    id = (uint16_t)(query[0] << 8 | query[1]);
    m.len = 0;
    msg_put(&m, query, (size_t)n);
    m.buf[2] = 0x81;
    m.buf[3] = (uint8_t)(0x80 | f->rcode);
    if (f->rcode == 0) {
      m.buf[7] = 1;
      msg_a(&m, at_question, 2, "192.0.2.44");
    }
    if (f->wrong_id-- > 0) {
      m.buf[0] = (uint8_t)((id + 1) >> 8);
      m.buf[1] = (uint8_t)(id + 1);
      sendto(f->fd, m.buf, m.len, 0, (struct sockaddr *)&from, from_len);
      m.buf[0] = (uint8_t)(id >> 8);
      m.buf[1] = (uint8_t)id;
    }
    sendto(f->fd, m.buf, m.len, 0, (struct sockaddr *)&from, from_len);
  }
  return NULL;
}

static void fake_dns_start(struct fake_dns *f)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  socklen_t len = sizeof(addr);

  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  f->fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(f->fd >= 0);
  assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
  f->port = ntohs(addr.sin_port);
  assert_int_equal(pthread_create(&f->thread, NULL, fake_dns_run, f), 0);
}

static void fake_dns_stop(struct fake_dns *f)
{
  struct sockaddr_in addr = {.sin_family = AF_INET};
  int fd = socket(AF_INET, SOCK_DGRAM, 0);

  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(f->port);
  sendto(fd, "x", 1, 0, (struct sockaddr *)&addr, sizeof(addr));
  close(fd);
  pthread_join(f->thread, NULL);
  close(f->fd);
}

struct resolve_run {
  int status;
  int calls;
  struct proxy_addrs result;
};

static void on_resolved(struct proxy_query *q, int status, void *data)
{
  struct resolve_run *run = data;

  run->status = status;
  run->calls++;
  run->result = q->result;
}

/* Resolves name with a resolver whose only nameserver is the fake one. */
static void resolve_with(struct fake_dns *f, const char *hosts,
                         const char *name, unsigned timeout_ms, bool cancel,
                         struct resolve_run *run)
{
  struct eng_loop *loop = NULL;
  struct rbx_error err = {0};
  struct proxy_resolver r;
  static struct proxy_query q;

  memset(run, 0, sizeof(*run));
  assert_int_equal(eng_loop_new(&loop, 64, &err), 0);
  memset(&r, 0, sizeof(r));
  r.loop = loop;
  r.timeout_ms = timeout_ms;
  r.ns_count = 1;
  r.ns[0].in.sin_family = AF_INET;
  r.ns[0].in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  r.ns[0].in.sin_port = htons(f ? f->port : 9);
  if (hosts)
    assert_int_equal(proxy_hosts_parse(&r, hosts, strlen(hosts)), 0);
  assert_int_equal(proxy_resolve_start(&r, &q, name, 443, on_resolved, run), 0);
  if (cancel)
    proxy_resolve_cancel(&q);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(run->calls, 1);
  assert_int_equal(eng_in_flight(loop), 0);
  assert_int_equal(q.fd, -1);
  proxy_resolver_free(&r);
  eng_loop_free(loop);
}

static void test_resolver_answer(void **state)
{
  struct fake_dns f = {0};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 2000, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, 0);
  assert_int_equal(run.result.count, 1);
  assert_addr(&run.result.addr[0], "192.0.2.44", 443);
  assert_int_equal(f.queries, 1);
}

static void test_resolver_ignores_wrong_id(void **state)
{
  struct fake_dns f = {.wrong_id = 1};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 2000, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, 0);
  assert_int_equal(f.queries, 1);
}

static void test_resolver_retries_after_timeout(void **state)
{
  struct fake_dns f = {.drop_first = 1};
  struct resolve_run run;
  uint64_t start = eng_now_ms();

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 200, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, 0);
  assert_int_equal(f.queries, 2);
  assert_true(eng_now_ms() - start >= 200);
}

static void test_resolver_times_out(void **state)
{
  struct fake_dns f = {.drop_first = 100};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 100, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, -ETIMEDOUT);
  assert_int_equal(f.queries, PROXY_DNS_ATTEMPTS);
}

static void test_resolver_nxdomain(void **state)
{
  struct fake_dns f = {.rcode = 3};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "gone.test", 2000, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, -ENOENT);
  assert_int_equal(f.queries, 1);
}

static void test_resolver_servfail_retried(void **state)
{
  struct fake_dns f = {.rcode = 2};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 2000, false, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, -EIO);
  assert_int_equal(f.queries, PROXY_DNS_ATTEMPTS);
}

static void test_resolver_hosts_first(void **state)
{
  struct resolve_run run;

  (void)state;
  /* No nameserver listens on port 9: the hosts file must answer alone. */
  resolve_with(NULL, "192.0.2.77 allowed.test\n", "allowed.test", 2000, false,
               &run);
  assert_int_equal(run.status, 0);
  assert_int_equal(run.result.count, 1);
  assert_addr(&run.result.addr[0], "192.0.2.77", 443);
}

static void test_resolver_cancel(void **state)
{
  struct fake_dns f = {.drop_first = 100};
  struct resolve_run run;

  (void)state;
  fake_dns_start(&f);
  resolve_with(&f, NULL, "allowed.test", 5000, true, &run);
  fake_dns_stop(&f);
  assert_int_equal(run.status, -ECANCELED);
  resolve_with(NULL, "192.0.2.77 allowed.test\n", "allowed.test", 2000, true,
               &run);
  assert_int_equal(run.status, -ECANCELED);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_normalize_table),
      cmocka_unit_test(test_host_normalize_length_limit),
      cmocka_unit_test(test_port_parse_table),
      cmocka_unit_test(test_authority_parse_table),
      cmocka_unit_test(test_absolute_parse_table),
      cmocka_unit_test(test_allowlist_match_table),
      cmocka_unit_test(test_allowlist_empty_denies),
      cmocka_unit_test(test_config_rejects_bad_entries),
      cmocka_unit_test(test_config_load_env),
      cmocka_unit_test(test_address_check_table),
      cmocka_unit_test(test_head_parse_every_split),
      cmocka_unit_test(test_connect_parse_every_split),
      cmocka_unit_test(test_head_parse_errors_table),
      cmocka_unit_test(test_head_parse_too_large),
      cmocka_unit_test(test_head_parse_too_many_fields),
      cmocka_unit_test(test_decide_table),
      cmocka_unit_test(test_hop_by_hop_table),
      cmocka_unit_test(test_upstream_head_exact),
      cmocka_unit_test(test_body_framing_every_split),
      cmocka_unit_test(test_body_framing_bad_chunk),
      cmocka_unit_test(test_dns_encode_exact),
      cmocka_unit_test(test_dns_decode_answers),
      cmocka_unit_test(test_dns_decode_cname_chain),
      cmocka_unit_test(test_dns_decode_errors_table),
      cmocka_unit_test(test_dns_decode_every_truncation),
      cmocka_unit_test(test_hosts_and_resolv_conf_parse),
      cmocka_unit_test(test_resolver_answer),
      cmocka_unit_test(test_resolver_ignores_wrong_id),
      cmocka_unit_test(test_resolver_retries_after_timeout),
      cmocka_unit_test(test_resolver_times_out),
      cmocka_unit_test(test_resolver_nxdomain),
      cmocka_unit_test(test_resolver_servfail_retried),
      cmocka_unit_test(test_resolver_hosts_first),
      cmocka_unit_test(test_resolver_cancel),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
