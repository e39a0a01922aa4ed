/* Formats a log line and hands it to the sink. */
#include "engine/log.h"

#include <stdarg.h>
#include <stdio.h>

#define LOG_LINE_MAX 1024

void rbx_log(const struct rbx_logger *log, enum rbx_log_level level,
             const char *fmt, ...)
{
  char line[LOG_LINE_MAX];
  va_list ap;

  if (!RBX_LOG_ENABLED(log, level))
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  log->fn(level, line, log->userdata);
}
