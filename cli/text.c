/* Byte and text helpers of the ringbox command: base64, strict UTF-8
 * checks, a growing output buffer and JSON string escaping. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cli_base64_encoded_len(size_t len)
{
  return (len + 2) / 3 * 4 + 1;
}

void cli_base64_encode(const uint8_t *data, size_t len, char *out)
{
  size_t i = 0;

  for (; i + 3 <= len; i += 3) {
    uint32_t v =
        (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

    *out++ = base64_alphabet[v >> 18];
    *out++ = base64_alphabet[(v >> 12) & 63];
    *out++ = base64_alphabet[(v >> 6) & 63];
    *out++ = base64_alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)data[i] << 16;

    if (i + 1 < len)
      v |= (uint32_t)data[i + 1] << 8;
    *out++ = base64_alphabet[v >> 18];
    *out++ = base64_alphabet[(v >> 12) & 63];
    *out++ = i + 1 < len ? base64_alphabet[(v >> 6) & 63] : '=';
    *out++ = '=';
  }
  *out = '\0';
}

size_t cli_base64_decoded_max(size_t text_len)
{
  return (text_len + 3) / 4 * 3;
}

static int base64_value(char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int cli_base64_decode(const char *text, size_t text_len, uint8_t *out,
                      size_t *out_len)
{
  uint32_t acc = 0;
  size_t bits = 0, n = 0, data_len = text_len, pad = 0;

  while (data_len > 0 && text[data_len - 1] == '=' && pad < 2) {
    data_len--;
    pad++;
  }
  /* Padding, when present, must complete the last group of four. */
  if (pad > 0 && text_len % 4 != 0)
    return -EINVAL;
  if (data_len % 4 == 1)
    return -EINVAL;
  for (size_t i = 0; i < data_len; i++) {
    int v = base64_value(text[i]);

    if (v < 0)
      return -EINVAL;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  *out_len = n;
  return 0;
}

/* Returns the length of the valid UTF-8 sequence at data (1 to 4), or 0
 * when the bytes there are not one. */
static size_t utf8_sequence_len(const uint8_t *data, size_t len)
{
  uint8_t c = data[0];
  size_t need;
  uint32_t cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((data[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (data[i] & 0x3f);
  }
  if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
      cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return need;
}

bool cli_utf8_valid(const uint8_t *data, size_t len)
{
  size_t i = 0;

  while (i < len) {
    size_t n = utf8_sequence_len(data + i, len - i);

    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

static bool buf_reserve(struct cli_buf *buf, size_t extra)
{
  size_t cap;
  char *data;

  if (buf->failed)
    return false;
  if (buf->len + extra + 1 <= buf->cap)
    return true;
  cap = buf->cap ? buf->cap : 256;
  while (cap < buf->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      buf->failed = true;
      return false;
    }
    cap *= 2;
  }
  data = realloc(buf->data, cap);
  if (!data) {
    buf->failed = true;
    return false;
  }
  buf->data = data;
  buf->cap = cap;
  return true;
}

void cli_buf_append(struct cli_buf *buf, const void *data, size_t len)
{
  if (!buf_reserve(buf, len))
    return;
  memcpy(buf->data + buf->len, data, len);
  buf->len += len;
  buf->data[buf->len] = '\0';
}

void cli_buf_puts(struct cli_buf *buf, const char *text)
{
  cli_buf_append(buf, text, strlen(text));
}

void cli_buf_printf(struct cli_buf *buf, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(buf, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf->len += (size_t)n;
}

void cli_buf_free(struct cli_buf *buf)
{
  free(buf->data);
  memset(buf, 0, sizeof(*buf));
}

static void json_escape_byte(struct cli_buf *buf, uint8_t c)
{
  switch (c) {
  case '"':
    cli_buf_puts(buf, "\\\"");
    break;
  case '\\':
    cli_buf_puts(buf, "\\\\");
    break;
  case '\n':
    cli_buf_puts(buf, "\\n");
    break;
  case '\r':
    cli_buf_puts(buf, "\\r");
    break;
  case '\t':
    cli_buf_puts(buf, "\\t");
    break;
  case '\b':
    cli_buf_puts(buf, "\\b");
    break;
  case '\f':
    cli_buf_puts(buf, "\\f");
    break;
  default:
    if (c < 0x20 || c == 0x7f)
      cli_buf_printf(buf, "\\u%04x", c);
    else
      cli_buf_append(buf, &c, 1);
  }
}

void cli_json_string(struct cli_buf *buf, const uint8_t *data, size_t len)
{
  size_t i = 0;

  /* Worst case: every byte becomes a six-character \u escape. */
  if (len < SIZE_MAX / 8)
    buf_reserve(buf, len * 6 + 2);
  cli_buf_append(buf, "\"", 1);
  while (i < len) {
    size_t n = utf8_sequence_len(data + i, len - i);

    if (n == 0) {
      cli_buf_puts(buf, "\\ufffd");
      i++;
    } else if (n == 1) {
      json_escape_byte(buf, data[i++]);
    } else {
      cli_buf_append(buf, data + i, n);
      i += n;
    }
  }
  cli_buf_append(buf, "\"", 1);
}
