/* Filling struct rbx_error: one formatter, no allocation, so it is safe on
 * every error path. */
#ifndef RBX_ERROR_H
#define RBX_ERROR_H

#include "ringbox.h"

/* Fills err (when not NULL) and returns code, so callers can write
 * `return rbx_err_set(err, kind, -EINVAL, "...")`. */
int rbx_err_set(struct rbx_error *err, enum rbx_error_kind kind, int code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Puts "context: " in front of the message already in err. */
void rbx_err_prefix(struct rbx_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void rbx_err_clear(struct rbx_error *err);

#endif
