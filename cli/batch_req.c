/* Decoding of one `ringbox batch` input line: a JSON object with the
 * command, its input and per-request policy fields (docs/BATCH.md). */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_fields[] = {
    "id",           "cmd",     "argv",       "env",     "stdin",
    "stdin_b64",    "workdir", "mounts",     "timeout", "image",
    "memory",       "cpus",    "pids_limit", "network", "allow_hosts",
    "output_limit", "user",
};

#define KNOWN_FIELD_COUNT (sizeof(known_fields) / sizeof(known_fields[0]))

static int fail(char *msg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t size, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, size, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* Returns the end of the JSON string whose opening quote is at p. */
static const char *skip_string(const char *p, const char *end)
{
  for (p++; p < end; p++) {
    if (*p == '\\')
      p++;
    else if (*p == '"')
      return p + 1;
  }
  return end;
}

/* Returns the end of the JSON value at p; the text is known to be valid. */
static const char *skip_value(const char *p, const char *end)
{
  int depth = 0;

  while (p < end) {
    char c = *p;

    if (c == '"') {
      p = skip_string(p, end);
      if (depth == 0)
        return p;
      continue;
    }
    if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (depth == 0)
        return p;
      if (--depth == 0)
        return p + 1;
    } else if (depth == 0 &&
               (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      return p;
    }
    p++;
  }
  return end;
}

static const char *skip_space(const char *p, const char *end)
{
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    p++;
  return p;
}

/* Finds the raw text of the top-level "id" member of a valid JSON object,
 * so that it is echoed byte for byte (cJSON would reprint numbers). */
static bool find_raw_id(const char *line, size_t len, const char **start,
                        size_t *id_len)
{
  const char *end = line + len, *p = skip_space(line, end);

  if (p >= end || *p != '{')
    return false;
  p++;
  while (p < end) {
    const char *key, *key_end, *value;

    p = skip_space(p, end);
    if (p >= end || *p != '"')
      return false;
    key = p + 1;
    key_end = skip_string(p, end);
    p = skip_space(key_end, end);
    if (p >= end || *p != ':')
      return false;
    value = skip_space(p + 1, end);
    p = skip_value(value, end);
    if (key_end - key == 3 && memcmp(key, "id\"", 3) == 0) {
      *start = value;
      *id_len = (size_t)(p - value);
      return true;
    }
    p = skip_space(p, end);
    if (p >= end || *p != ',')
      return false;
    p++;
  }
  return false;
}

/* Whether a string in the line contains \u0000, which cJSON would silently
 * cut the string at. */
static bool has_nul_escape(const char *line, size_t len)
{
  bool in_string = false;

  for (size_t i = 0; i < len; i++) {
    if (line[i] == '"') {
      in_string = !in_string;
    } else if (in_string && line[i] == '\\' && i + 1 < len) {
      if (line[i + 1] == 'u' && i + 5 < len &&
          strncmp(line + i + 2, "0000", 4) == 0)
        return true;
      i++;
    }
  }
  return false;
}

static int check_fields(const cJSON *root, char *msg, size_t size)
{
  for (const cJSON *item = root->child; item; item = item->next) {
    size_t k = 0;

    while (k < KNOWN_FIELD_COUNT && strcmp(item->string, known_fields[k]))
      k++;
    if (k == KNOWN_FIELD_COUNT)
      return fail(msg, size,
                  "unknown field \"%s\" (known: id, cmd, env, stdin, "
                  "stdin_b64, workdir, mounts, timeout, image, memory, cpus, "
                  "pids_limit, network, allow_hosts, output_limit, user)",
                  item->string);
    for (const cJSON *other = item->next; other; other = other->next) {
      if (strcmp(other->string, item->string) == 0)
        return fail(msg, size, "field \"%s\" appears twice", item->string);
    }
  }
  return 0;
}

static int push_owned(struct cli_request *req, char *text)
{
  if (!text || cli_list_push(&req->owned, text) < 0) {
    free(text);
    return -ENOMEM;
  }
  return 0;
}

/* Appends every string of a JSON array to list. */
static int decode_strings(const cJSON *array, const char *field,
                          struct cli_list *list, size_t max, char *msg,
                          size_t size)
{
  const cJSON *item;

  if (!cJSON_IsArray(array))
    return fail(msg, size, "\"%s\" must be an array of strings", field);
  cJSON_ArrayForEach(item, array)
  {
    if (!cJSON_IsString(item))
      return fail(msg, size,
                  "\"%s\" must be an array of strings, but item "
                  "%zu is not a string",
                  field, list->count + 1);
    if (list->count >= max)
      return fail(msg, size, "\"%s\" has more than %zu items", field, max);
    if (cli_list_push(list, item->valuestring) < 0)
      return -ENOMEM;
  }
  return 0;
}

static int decode_command(struct cli_request *req, const cJSON *root, char *msg,
                          size_t size)
{
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(root, "cmd");
  const cJSON *argv = cJSON_GetObjectItemCaseSensitive(root, "argv");
  const char *field = cmd ? "cmd" : "argv";
  int rc;

  if (cmd && argv)
    return fail(msg, size, "give the command once, as \"cmd\" or \"argv\"");
  if (!cmd && !argv)
    return fail(msg, size,
                "missing \"cmd\": give the command as an array "
                "of strings, e.g. \"cmd\":[\"echo\",\"hi\"]");
  if (cJSON_IsString(cmd ? cmd : argv))
    return fail(msg, size,
                "\"%s\" must be an array of strings; for a shell "
                "line write [\"sh\",\"-c\",\"...\"]",
                field);
  rc = decode_strings(cmd ? cmd : argv, field, &req->argv, CLI_ARGV_MAX, msg,
                      size);
  if (rc == 0 && req->argv.count == 0)
    return fail(msg, size, "\"%s\" is empty: it needs at least the program",
                field);
  return rc;
}

static int decode_env_object(struct cli_request *req, const cJSON *env,
                             char *msg, size_t size)
{
  const cJSON *item;

  cJSON_ArrayForEach(item, env)
  {
    size_t len;
    char *entry;

    if (!cJSON_IsString(item))
      return fail(msg, size, "\"env\" value of \"%s\" must be a string",
                  item->string);
    if (item->string[0] == '\0' || strchr(item->string, '='))
      return fail(msg, size, "\"env\" name \"%s\" is empty or holds '='",
                  item->string);
    if (req->env.count >= CLI_LIST_MAX)
      return fail(msg, size, "\"env\" has more than %d entries", CLI_LIST_MAX);
    len = strlen(item->string) + strlen(item->valuestring) + 2;
    entry = malloc(len);
    if (!entry)
      return -ENOMEM;
    snprintf(entry, len, "%s=%s", item->string, item->valuestring);
    if (push_owned(req, entry) < 0 || cli_list_push(&req->env, entry) < 0)
      return -ENOMEM;
  }
  return 0;
}

static int decode_env(struct cli_request *req, const cJSON *root, char *msg,
                      size_t size)
{
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(root, "env");
  char reason[CLI_MESSAGE_MAX];
  int rc;

  if (!env)
    return 0;
  if (cJSON_IsObject(env))
    return decode_env_object(req, env, msg, size);
  if (!cJSON_IsArray(env))
    return fail(msg, size,
                "\"env\" must be an object {\"KEY\":\"VALUE\"} or "
                "an array [\"KEY=VALUE\"]");
  rc = decode_strings(env, "env", &req->env, CLI_LIST_MAX, msg, size);
  for (size_t i = 0; rc == 0 && i < req->env.count; i++) {
    const char *entry = req->env.items[i];

    if (cli_check_env(entry, reason, sizeof(reason)) < 0)
      return fail(msg, size, "\"env\" entry \"%s\" %s", entry, reason);
  }
  return rc;
}

static int decode_stdin(struct cli_request *req, const cJSON *root, char *msg,
                        size_t size)
{
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "stdin");
  const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(root, "stdin_b64");
  size_t len;

  if (text && b64)
    return fail(msg, size, "give \"stdin\" or \"stdin_b64\", not both");
  if (!text && !b64)
    return 0;
  if (!cJSON_IsString(text ? text : b64))
    return fail(msg, size, "\"%s\" must be a string",
                text ? "stdin" : "stdin_b64");
  len = strlen((text ? text : b64)->valuestring);
  if (text) {
    if (len > CLI_STDIN_MAX)
      return fail(msg, size, "\"stdin\" is larger than %zu MiB",
                  CLI_STDIN_MAX >> 20);
    req->stdin_data = (uint8_t *)text->valuestring;
    req->stdin_len = len;
    req->has_stdin = true;
    return 0;
  }
  if (cli_base64_decoded_max(len) > CLI_STDIN_MAX + 2)
    return fail(msg, size, "\"stdin_b64\" decodes to more than %zu MiB",
                CLI_STDIN_MAX >> 20);
  req->stdin_data = malloc(cli_base64_decoded_max(len) + 1);
  if (!req->stdin_data || push_owned(req, (char *)req->stdin_data) < 0)
    return -ENOMEM;
  if (cli_base64_decode(b64->valuestring, len, req->stdin_data,
                        &req->stdin_len) < 0)
    return fail(msg, size, "\"stdin_b64\" is not valid base64");
  if (req->stdin_len > CLI_STDIN_MAX)
    return fail(msg, size, "\"stdin_b64\" decodes to more than %zu MiB",
                CLI_STDIN_MAX >> 20);
  req->has_stdin = true;
  return 0;
}

static int decode_path(const cJSON *item, const char *field, const char **out,
                       char *msg, size_t size)
{
  if (!cJSON_IsString(item) || item->valuestring[0] != '/')
    return fail(msg, size, "\"%s\" must be an absolute path string", field);
  *out = item->valuestring;
  return 0;
}

static int decode_mount(const cJSON *object, struct rbx_mount *mount,
                        size_t index, char *msg, size_t size)
{
  const cJSON *item;
  char field[48];

  if (!cJSON_IsObject(object))
    return fail(msg, size,
                "\"mounts\" item %zu must be an object "
                "{\"source\",\"target\",\"readonly\"}",
                index);
  memset(mount, 0, sizeof(*mount));
  cJSON_ArrayForEach(item, object)
  {
    snprintf(field, sizeof(field), "mounts[%zu].%s", index, item->string);
    if (strcmp(item->string, "source") == 0) {
      if (decode_path(item, field, &mount->source, msg, size) < 0)
        return -EINVAL;
    } else if (strcmp(item->string, "target") == 0) {
      if (decode_path(item, field, &mount->target, msg, size) < 0)
        return -EINVAL;
    } else if (strcmp(item->string, "readonly") == 0) {
      if (!cJSON_IsBool(item))
        return fail(msg, size, "\"%s\" must be true or false", field);
      mount->read_only = cJSON_IsTrue(item);
    } else {
      return fail(msg, size,
                  "unknown field \"%s\" (use source, target and "
                  "readonly)",
                  field);
    }
  }
  if (!mount->source || !mount->target)
    return fail(msg, size,
                "\"mounts\" item %zu needs \"source\" and "
                "\"target\"",
                index);
  return 0;
}

static int decode_mounts(struct cli_request *req, const cJSON *root, char *msg,
                         size_t size)
{
  const cJSON *mounts = cJSON_GetObjectItemCaseSensitive(root, "mounts");
  const cJSON *item;
  size_t count, i = 0;

  if (!mounts)
    return 0;
  if (!cJSON_IsArray(mounts))
    return fail(msg, size, "\"mounts\" must be an array of objects");
  count = (size_t)cJSON_GetArraySize(mounts);
  if (count > CLI_LIST_MAX)
    return fail(msg, size, "\"mounts\" has more than %d items", CLI_LIST_MAX);
  if (count == 0)
    return 0;
  req->mounts = calloc(count, sizeof(*req->mounts));
  if (!req->mounts)
    return -ENOMEM;
  cJSON_ArrayForEach(item, mounts)
  {
    if (decode_mount(item, &req->mounts[i], i + 1, msg, size) < 0)
      return -EINVAL;
    i++;
  }
  req->mounts_count = count;
  return 0;
}

static int decode_text_field(const cJSON *root, const char *field,
                             bool allow_empty, const char **out, char *msg,
                             size_t size)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);

  if (!item)
    return 0;
  if (!cJSON_IsString(item) || (!allow_empty && !item->valuestring[0]))
    return fail(msg, size, "\"%s\" must be a non-empty string", field);
  *out = item->valuestring;
  return 0;
}

/* A number or string field parsed as the matching command-line option;
 * numbers are taken in the field's plain unit. */
static int decode_limit(const cJSON *root, const char *field,
                        struct rbx_policy *policy, char *msg, size_t size)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);
  char text[64], reason[CLI_MESSAGE_MAX];
  uint64_t bytes;
  int rc;

  if (!item)
    return 0;
  if (cJSON_IsNumber(item)) {
    if (!isfinite(item->valuedouble) || item->valuedouble < 0)
      return fail(msg, size, "\"%s\" must not be negative", field);
    snprintf(text, sizeof(text), "%.6f", item->valuedouble);
  } else if (cJSON_IsString(item)) {
    snprintf(text, sizeof(text), "%s", item->valuestring);
  } else {
    return fail(msg, size, "\"%s\" must be a number or a string", field);
  }
  if (strcmp(field, "memory") == 0) {
    rc =
        cli_parse_memory_mib(text, &policy->memory_mib, reason, sizeof(reason));
  } else if (strcmp(field, "cpus") == 0) {
    rc = cli_parse_cpus(text, &policy->cpus, reason, sizeof(reason));
  } else if (strcmp(field, "timeout") == 0) {
    rc = cli_parse_duration_ms(text, &policy->timeout_ms, reason,
                               sizeof(reason));
  } else {
    rc = cli_parse_size(text, 1, &bytes, reason, sizeof(reason));
    if (rc == 0 && bytes == 0)
      rc = fail(reason, sizeof(reason), "is zero (write at least 1 byte)");
    if (rc == 0)
      policy->output_limit = bytes;
  }
  if (rc < 0) {
    char *value_text = cJSON_PrintUnformatted(item);

    fail(msg, size, "\"%s\" %s %s", field, value_text ? value_text : "value",
         reason);
    cJSON_free(value_text);
  }
  return rc;
}

static int decode_pids_limit(const cJSON *root, struct rbx_policy *policy,
                             char *msg, size_t size)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "pids_limit");
  double value;

  if (!item)
    return 0;
  value = cJSON_IsNumber(item) ? item->valuedouble : NAN;
  if (value == -1) {
    policy->pids_limit = -1;
    return 0;
  }
  if (!(value >= 1 && value <= CLI_PIDS_MAX) || value != (double)(int64_t)value)
    return fail(msg, size,
                "\"pids_limit\" must be a whole number from 1 to "
                "%d, or -1 for no limit",
                CLI_PIDS_MAX);
  policy->pids_limit = (int64_t)value;
  return 0;
}

static int decode_network(struct cli_request *req, const cJSON *root, char *msg,
                          size_t size)
{
  const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(root, "allow_hosts");
  const char *name = NULL;
  char reason[CLI_MESSAGE_MAX];
  struct rbx_policy *policy = &req->policy;

  if (decode_text_field(root, "network", false, &name, msg, size) < 0)
    return -EINVAL;
  if (name &&
      cli_parse_network(name, &policy->network, reason, sizeof(reason)) < 0)
    return fail(msg, size, "\"network\" \"%s\" %s", name, reason);
  if (hosts) {
    if (decode_strings(hosts, "allow_hosts", &req->allow_hosts, CLI_LIST_MAX,
                       msg, size) < 0)
      return -EINVAL;
    policy->allow_hosts = (const char *const *)req->allow_hosts.items;
    policy->allow_hosts_count = req->allow_hosts.count;
  }
  if (policy->network != RBX_NET_LIMITED) {
    if (hosts && req->allow_hosts.count > 0)
      return fail(msg, size,
                  "\"allow_hosts\" only applies with "
                  "\"network\":\"limited\"");
    /* Defaults from --network limited do not carry over to other modes;
     * egress_network keeps its value because the policy needs one. */
    policy->allow_hosts = NULL;
    policy->allow_hosts_count = 0;
    policy->proxy_name = NULL;
  } else if (policy->allow_hosts_count == 0) {
    return fail(msg, size,
                "\"network\":\"limited\" needs a non-empty "
                "\"allow_hosts\" array");
  }
  return 0;
}

static int decode_policy(struct cli_request *req, const cJSON *root, char *msg,
                         size_t size)
{
  static const char *const limits[] = {"memory", "cpus", "timeout",
                                       "output_limit"};
  struct rbx_policy *policy = &req->policy;

  if (decode_text_field(root, "image", false, &policy->image, msg, size) < 0 ||
      decode_text_field(root, "user", true, &policy->user, msg, size) < 0 ||
      decode_pids_limit(root, policy, msg, size) < 0)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
    if (decode_limit(root, limits[i], policy, msg, size) < 0)
      return -EINVAL;
  }
  return decode_network(req, root, msg, size);
}

static int copy_raw_id(struct cli_request *req, const char *line, size_t len)
{
  const char *start;
  size_t id_len;

  if (!find_raw_id(line, len, &start, &id_len))
    return 0;
  req->id_json = malloc(id_len + 1);
  if (!req->id_json)
    return -ENOMEM;
  memcpy(req->id_json, start, id_len);
  req->id_json[id_len] = '\0';
  req->id_len = id_len;
  return 0;
}

static int parse_object(struct cli_request *req, const char *line, size_t len,
                        char *msg, size_t size)
{
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, false);

  if (!root)
    return fail(msg, size, "not valid JSON (error near byte %zu)",
                end ? (size_t)(end - line) + 1 : (size_t)1);
  req->json = root;
  if (skip_space(end, line + len) != line + len)
    return fail(msg, size, "text after the JSON object at byte %zu",
                (size_t)(end - line) + 1);
  if (!cJSON_IsObject(root))
    return fail(msg, size,
                "a request must be a JSON object, e.g. "
                "{\"id\":1,\"cmd\":[\"echo\",\"hi\"]}");
  return copy_raw_id(req, line, len);
}

int cli_request_decode(struct cli_request *req, const char *line, size_t len,
                       const struct cli_config *defaults, char *msg,
                       size_t msg_size)
{
  const cJSON *root;
  int rc;

  memset(req, 0, sizeof(*req));
  req->policy = defaults->policy;
  rc = parse_object(req, line, len, msg, msg_size);
  if (rc < 0)
    goto out;
  root = req->json;
  if (has_nul_escape(line, len)) {
    rc = fail(msg, msg_size,
              "a string holds \\u0000, which cannot be "
              "passed on; send such stdin as \"stdin_b64\"");
    goto out;
  }
  rc = check_fields(root, msg, msg_size);
  if (rc == 0)
    rc = decode_command(req, root, msg, msg_size);
  if (rc == 0)
    rc = decode_env(req, root, msg, msg_size);
  if (rc == 0)
    rc = decode_stdin(req, root, msg, msg_size);
  if (rc == 0)
    rc =
        decode_text_field(root, "workdir", false, &req->workdir, msg, msg_size);
  if (rc == 0 && req->workdir && req->workdir[0] != '/')
    rc = fail(msg, msg_size, "\"workdir\" must be an absolute path");
  if (rc == 0)
    rc = decode_mounts(req, root, msg, msg_size);
  if (rc == 0)
    rc = decode_policy(req, root, msg, msg_size);
out:
  if (rc == -ENOMEM)
    fail(msg, msg_size, "out of memory while decoding the request");
  return rc;
}

void cli_request_free(struct cli_request *req)
{
  cJSON_Delete(req->json);
  free(req->id_json);
  free(req->mounts);
  cli_list_free(&req->argv, false);
  cli_list_free(&req->env, false);
  cli_list_free(&req->allow_hosts, false);
  cli_list_free(&req->owned, true);
  memset(req, 0, sizeof(*req));
}

void cli_request_spec(const struct cli_request *req, struct rbx_spec *spec)
{
  static const uint8_t no_bytes[1];

  memset(spec, 0, sizeof(*spec));
  spec->argv = (const char *const *)req->argv.items;
  spec->env = req->env.count ? (const char *const *)req->env.items : NULL;
  spec->workdir = req->workdir;
  if (req->has_stdin) {
    spec->stdin_data = req->stdin_len ? req->stdin_data : no_bytes;
    spec->stdin_len = req->stdin_len;
  }
  spec->mounts = req->mounts;
  spec->mounts_count = req->mounts_count;
  spec->policy = &req->policy;
}
