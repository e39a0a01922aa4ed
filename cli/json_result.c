/* The JSON objects that `run --json` and `batch` print: one per result or
 * error, with output bytes as text when they are UTF-8 and as base64 when
 * not. The field names are documented in docs/CLI.md and docs/BATCH.md. */
#include "cli/cli.h"

#include <string.h>

/* Input bytes per base64 chunk: a multiple of 3, so chunks join cleanly. */
#define BASE64_CHUNK 3072

static void json_text(struct cli_buf *buf, const char *text)
{
  cli_json_string(buf, (const uint8_t *)text, strlen(text));
}

/* Writes a fixed-size id field, which need not be NUL-terminated. */
static void json_id(struct cli_buf *buf, const char *id, size_t size)
{
  cli_json_string(buf, (const uint8_t *)id, strnlen(id, size));
}

static void json_base64(struct cli_buf *buf, const uint8_t *data, size_t len)
{
  char chunk[BASE64_CHUNK / 3 * 4 + 1];

  cli_buf_puts(buf, "\"");
  for (size_t at = 0; at < len; at += BASE64_CHUNK) {
    size_t n = len - at < BASE64_CHUNK ? len - at : BASE64_CHUNK;

    cli_base64_encode(data + at, n, chunk);
    cli_buf_puts(buf, chunk);
  }
  cli_buf_puts(buf, "\"");
}

/* Writes "name": text-or-null, then "name_b64" when the bytes are not
 * UTF-8, then the truncation fields. */
static void json_output(struct cli_buf *buf, const char *name,
                        const struct rbx_output *out)
{
  const uint8_t *data = out->data ? out->data : (const uint8_t *)"";

  cli_buf_printf(buf, ",\"%s\":", name);
  if (cli_utf8_valid(data, out->len)) {
    cli_json_string(buf, data, out->len);
  } else {
    cli_buf_printf(buf, "null,\"%s_b64\":", name);
    json_base64(buf, data, out->len);
  }
  cli_buf_printf(buf, ",\"%s_truncated\":%s,\"%s_dropped\":%llu", name,
                 out->truncated ? "true" : "false", name,
                 (unsigned long long)out->dropped);
}

/* Opens the object with the batch tag ("id" and "line") when there is
 * one; returns whether a field was written. */
static bool json_open(struct cli_buf *buf, const struct cli_result_tag *tag)
{
  cli_buf_puts(buf, "{");
  if (!tag)
    return false;
  cli_buf_puts(buf, "\"id\":");
  if (tag->id_json)
    cli_buf_append(buf, tag->id_json, tag->id_len);
  else
    cli_buf_puts(buf, "null");
  cli_buf_printf(buf, ",\"line\":%lu", tag->line);
  return true;
}

void cli_json_result(struct cli_buf *buf, const struct cli_result_tag *tag,
                     const struct rbx_result *result)
{
  if (!json_open(buf, tag)) {
    cli_buf_puts(buf, "\"id\":");
    json_id(buf, result->id, sizeof(result->id));
  }
  cli_buf_printf(buf, ",\"exit_code\":%d,\"end\":", result->exit_code);
  json_text(buf, rbx_end_name(result->end));
  cli_buf_printf(buf, ",\"signal\":%d", result->signal);
  json_output(buf, "stdout", &result->out);
  json_output(buf, "stderr", &result->err);
  cli_buf_printf(buf, ",\"wall_ms\":%llu,\"container_id\":",
                 (unsigned long long)result->wall_ms);
  json_id(buf, result->id, sizeof(result->id));
  cli_buf_puts(buf, "}\n");
}

void cli_json_error(struct cli_buf *buf, const struct cli_result_tag *tag,
                    const char *kind, const char *message)
{
  if (json_open(buf, tag))
    cli_buf_puts(buf, ",");
  cli_buf_puts(buf, "\"error\":{\"kind\":");
  json_text(buf, kind);
  cli_buf_puts(buf, ",\"message\":");
  json_text(buf, message);
  cli_buf_puts(buf, "}}\n");
}
