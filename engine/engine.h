/* The io_uring loop: every socket, pipe, pidfd and timer operation of
 * ringbox is submitted here and finishes through a completion callback. */
#ifndef RBX_ENGINE_H
#define RBX_ENGINE_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ringbox.h"

struct eng_loop;
struct eng_op;

/* Called when an operation completes. res is the kernel's result: a byte
 * count or 0 on success, a negative errno on failure; -ECANCELED after
 * eng_cancel; -ETIME when a timer fires. The op may be reused or freed
 * inside the callback. */
typedef void (*eng_cb)(struct eng_op *op, int res);

/* An operation slot, usually embedded in its owner. At most one operation
 * per slot is in flight; the owner must keep the slot (and any buffer) alive
 * until its callback has run. */
struct eng_op {
  eng_cb cb;
  void *data;
  struct eng_loop *loop;
  bool in_flight;
  struct __kernel_timespec ts; /* timers only */
};

/* Creates a loop with a submission queue of `entries` (0: 256). Probes
 * io_uring and the opcodes ringbox needs; returns 0 or a negative code with
 * err filled (RBX_ERR_UNAVAILABLE when io_uring is disabled or filtered). */
int eng_loop_new(struct eng_loop **out, unsigned entries,
                 struct rbx_error *err);

/* Frees the loop. Operations still in flight are abandoned: callers must
 * have drained them (eng_in_flight() == 0) first. Accepts NULL. */
void eng_loop_free(struct eng_loop *loop);

void eng_op_init(struct eng_op *op, struct eng_loop *loop, eng_cb cb,
                 void *data);

/* Submission helpers: each returns 0 once queued, or a negative errno
 * (-EBUSY if the slot is already in flight). */
int eng_connect(struct eng_op *op, int fd, const struct sockaddr *addr,
                socklen_t addrlen);
int eng_send(struct eng_op *op, int fd, const void *buf, size_t len);
int eng_recv(struct eng_op *op, int fd, void *buf, size_t len);
int eng_read(struct eng_op *op, int fd, void *buf, size_t len);
int eng_write(struct eng_op *op, int fd, const void *buf, size_t len);
int eng_accept(struct eng_op *op, int fd);
int eng_poll(struct eng_op *op, int fd, unsigned events);
int eng_shutdown(struct eng_op *op, int fd, int how);
int eng_close(struct eng_op *op, int fd);
/* Completes with -ETIME after ms milliseconds. */
int eng_timer(struct eng_op *op, uint64_t ms);
/* Completes with 0 on the next turn of the loop. */
int eng_defer(struct eng_op *op);

/* Asks the kernel to cancel op. Its callback still runs, usually with
 * -ECANCELED (or with its result if it finished first). No-op when op is
 * not in flight. */
void eng_cancel(struct eng_op *op);

/* Submits what is queued, waits for at least one completion when `wait` is
 * true, and runs every ready callback. Returns the number of callbacks run
 * or a negative errno. */
int eng_run_once(struct eng_loop *loop, bool wait);

/* Runs until no operation is in flight or eng_stop is called. */
int eng_run(struct eng_loop *loop);
void eng_stop(struct eng_loop *loop);

/* True when the last eng_run_once wait was ended by a signal before any
 * completion arrived. */
bool eng_interrupted(const struct eng_loop *loop);

unsigned eng_in_flight(const struct eng_loop *loop);
int eng_ring_fd(const struct eng_loop *loop);

/* Monotonic clock in milliseconds. */
uint64_t eng_now_ms(void);

#endif
