/* The library's log: one sink callback with levels, lines of lower-case
 * text and key=value fields. Library code never writes to stdout/stderr. */
#ifndef RBX_LOG_H
#define RBX_LOG_H

#include "ringbox.h"

struct rbx_logger {
  rbx_log_fn fn;
  void *userdata;
  enum rbx_log_level level;
};

void rbx_log(const struct rbx_logger *log, enum rbx_log_level level,
             const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define RBX_LOG_ENABLED(log, lvl) ((log) && (log)->fn && (lvl) <= (log)->level)

#endif
