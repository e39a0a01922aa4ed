/* Error kinds' names and the rbx_error formatters. */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rbx_error_kind_name(enum rbx_error_kind kind)
{
  switch (kind) {
  case RBX_ERR_NONE:
    return "none";
  case RBX_ERR_INVALID:
    return "invalid";
  case RBX_ERR_POLICY:
    return "policy";
  case RBX_ERR_DAEMON:
    return "daemon";
  case RBX_ERR_TIMEOUT:
    return "timeout";
  case RBX_ERR_UNAVAILABLE:
    return "unavailable";
  case RBX_ERR_IO:
    return "io";
  case RBX_ERR_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

int rbx_err_set(struct rbx_error *err, enum rbx_error_kind kind, int code,
                const char *fmt, ...)
{
  va_list ap;

  if (!err)
    return code;
  err->kind = kind;
  err->code = code;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return code;
}

void rbx_err_prefix(struct rbx_error *err, const char *fmt, ...)
{
  char merged[RBX_ERROR_MESSAGE_MAX];
  size_t used;
  va_list ap;
  int n;

  if (!err)
    return;
  va_start(ap, fmt);
  n = vsnprintf(merged, sizeof(merged) - 2, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  used = (size_t)n < sizeof(merged) - 3 ? (size_t)n : sizeof(merged) - 3;
  merged[used++] = ':';
  merged[used++] = ' ';
  size_t rest = strnlen(err->message, sizeof(err->message));

  if (rest > sizeof(merged) - 1 - used)
    rest = sizeof(merged) - 1 - used;
  memcpy(merged + used, err->message, rest);
  merged[used + rest] = '\0';
  memcpy(err->message, merged, sizeof(merged));
}

void rbx_err_clear(struct rbx_error *err)
{
  if (!err)
    return;
  err->kind = RBX_ERR_NONE;
  err->code = 0;
  err->message[0] = '\0';
}
