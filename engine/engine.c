/* The io_uring loop. One ring per loop; each completion's user_data points
 * to the eng_op that submitted it, and 0 marks requests (cancels) whose
 * completion carries nothing to deliver. */
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"

struct eng_loop {
  struct io_uring ring;
  unsigned in_flight;
  bool stop;
  bool interrupted; /* the last wait ended by a signal, with nothing done */
};

static const struct {
  int opcode;
  const char *name;
} required_ops[] = {
    {IORING_OP_CONNECT, "connect"}, {IORING_OP_SEND, "send"},
    {IORING_OP_RECV, "recv"},       {IORING_OP_READ, "read"},
    {IORING_OP_WRITE, "write"},     {IORING_OP_TIMEOUT, "timeout"},
    {IORING_OP_ASYNC_CANCEL, "async_cancel"},
    {IORING_OP_POLL_ADD, "poll_add"}, {IORING_OP_CLOSE, "close"},
    {IORING_OP_SHUTDOWN, "shutdown"}, {IORING_OP_ACCEPT, "accept"},
};

static int probe_ops(struct eng_loop *loop, struct rbx_error *err)
{
  struct io_uring_probe *probe = io_uring_get_probe_ring(&loop->ring);

  if (!probe)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOSYS,
                       "io_uring: cannot probe supported operations; "
                       "a kernel of 5.19 or newer is needed");
  for (size_t i = 0; i < sizeof(required_ops) / sizeof(required_ops[0]); i++) {
    if (!io_uring_opcode_supported(probe, required_ops[i].opcode)) {
      io_uring_free_probe(probe);
      return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOSYS,
                         "io_uring: operation %s is not supported by this "
                         "kernel; a kernel of 5.19 or newer is needed",
                         required_ops[i].name);
    }
  }
  io_uring_free_probe(probe);
  return 0;
}

int eng_loop_new(struct eng_loop **out, unsigned entries,
                 struct rbx_error *err)
{
  struct eng_loop *loop = calloc(1, sizeof(*loop));
  int rc;

  if (!loop)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "out of memory");
  rc = io_uring_queue_init(entries ? entries : 256, &loop->ring, 0);
  if (rc < 0) {
    free(loop);
    if (rc == -EPERM || rc == -ENOSYS)
      return rbx_err_set(
          err, RBX_ERR_UNAVAILABLE, rc,
          "io_uring is not usable here (%s): it may be disabled by the "
          "kernel.io_uring_disabled sysctl or blocked by a seccomp profile; "
          "ringbox needs it",
          strerror(-rc));
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, rc,
                       "io_uring setup failed: %s", strerror(-rc));
  }
  rc = probe_ops(loop, err);
  if (rc < 0) {
    io_uring_queue_exit(&loop->ring);
    free(loop);
    return rc;
  }
  *out = loop;
  return 0;
}

void eng_loop_free(struct eng_loop *loop)
{
  if (!loop)
    return;
  io_uring_queue_exit(&loop->ring);
  free(loop);
}

void eng_op_init(struct eng_op *op, struct eng_loop *loop, eng_cb cb,
                 void *data)
{
  memset(op, 0, sizeof(*op));
  op->loop = loop;
  op->cb = cb;
  op->data = data;
}

/* Returns a free submission entry, flushing the queue to the kernel when it
 * is full. */
static struct io_uring_sqe *get_sqe(struct eng_loop *loop)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

  if (!sqe) {
    io_uring_submit(&loop->ring);
    sqe = io_uring_get_sqe(&loop->ring);
  }
  return sqe;
}

static struct io_uring_sqe *start_op(struct eng_op *op, int *rc)
{
  struct io_uring_sqe *sqe;

  if (op->in_flight) {
    *rc = -EBUSY;
    return NULL;
  }
  sqe = get_sqe(op->loop);
  if (!sqe) {
    *rc = -EAGAIN;
    return NULL;
  }
  *rc = 0;
  return sqe;
}

static int finish_start(struct eng_op *op, struct io_uring_sqe *sqe)
{
  io_uring_sqe_set_data(sqe, op);
  op->in_flight = true;
  op->loop->in_flight++;
  return 0;
}

int eng_connect(struct eng_op *op, int fd, const struct sockaddr *addr,
                socklen_t addrlen)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_connect(sqe, fd, addr, addrlen);
  return finish_start(op, sqe);
}

int eng_send(struct eng_op *op, int fd, const void *buf, size_t len)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
  return finish_start(op, sqe);
}

int eng_recv(struct eng_op *op, int fd, void *buf, size_t len)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  return finish_start(op, sqe);
}

int eng_read(struct eng_op *op, int fd, void *buf, size_t len)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_read(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
  return finish_start(op, sqe);
}

int eng_write(struct eng_op *op, int fd, const void *buf, size_t len)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
  return finish_start(op, sqe);
}

int eng_accept(struct eng_op *op, int fd)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
  return finish_start(op, sqe);
}

int eng_poll(struct eng_op *op, int fd, unsigned events)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_poll_add(sqe, fd, events);
  return finish_start(op, sqe);
}

int eng_shutdown(struct eng_op *op, int fd, int how)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_shutdown(sqe, fd, how);
  return finish_start(op, sqe);
}

int eng_close(struct eng_op *op, int fd)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_close(sqe, fd);
  return finish_start(op, sqe);
}

int eng_timer(struct eng_op *op, uint64_t ms)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  op->ts.tv_sec = (long long)(ms / 1000);
  op->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
  io_uring_prep_timeout(sqe, &op->ts, 0, 0);
  return finish_start(op, sqe);
}

int eng_defer(struct eng_op *op)
{
  int rc;
  struct io_uring_sqe *sqe = start_op(op, &rc);

  if (!sqe)
    return rc;
  io_uring_prep_nop(sqe);
  return finish_start(op, sqe);
}

void eng_cancel(struct eng_op *op)
{
  struct io_uring_sqe *sqe;

  if (!op->in_flight)
    return;
  sqe = get_sqe(op->loop);
  if (!sqe)
    return;
  io_uring_prep_cancel(sqe, op, 0);
  io_uring_sqe_set_data(sqe, NULL);
}

int eng_run_once(struct eng_loop *loop, bool wait)
{
  struct io_uring_cqe *cqe;
  bool interrupted;
  int handled = 0;
  int rc;

  if (wait && loop->in_flight > 0)
    rc = io_uring_submit_and_wait(&loop->ring, 1);
  else
    rc = io_uring_submit(&loop->ring);
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
    return rc;
  interrupted = rc == -EINTR;

  while (io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
    struct eng_op *op = io_uring_cqe_get_data(cqe);
    int res = cqe->res;

    io_uring_cqe_seen(&loop->ring, cqe);
    if (!op)
      continue;
    op->in_flight = false;
    loop->in_flight--;
    handled++;
    op->cb(op, res);
  }
  /* Callbacks queue new operations: hand them to the kernel now, so a
   * caller that polls the ring's fd between calls does not wait on them. */
  if (io_uring_sq_ready(&loop->ring) > 0)
    io_uring_submit(&loop->ring);
  loop->interrupted = interrupted && handled == 0;
  return handled;
}

int eng_run(struct eng_loop *loop)
{
  loop->stop = false;
  while (loop->in_flight > 0 && !loop->stop) {
    int rc = eng_run_once(loop, true);

    if (rc < 0)
      return rc;
  }
  /* Flush cancels and closes queued by the last callbacks. */
  io_uring_submit(&loop->ring);
  return 0;
}

void eng_stop(struct eng_loop *loop)
{
  loop->stop = true;
}

bool eng_interrupted(const struct eng_loop *loop)
{
  return loop->interrupted;
}

unsigned eng_in_flight(const struct eng_loop *loop)
{
  return loop->in_flight;
}

int eng_ring_fd(const struct eng_loop *loop)
{
  return loop->ring.ring_fd;
}

uint64_t eng_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
