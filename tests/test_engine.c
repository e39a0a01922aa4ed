/* Tests of the io_uring loop: timer order, cancelling a pending receive,
 * deferred callbacks, socket round trips, and that every test ends with
 * nothing in flight. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"

#define RECORD_MAX 16

struct record {
  int ids[RECORD_MAX];
  int results[RECORD_MAX];
  int count;
};

struct tagged_op {
  struct eng_op op;
  struct record *record;
  int id;
};

static void on_record(struct eng_op *op, int res)
{
  struct tagged_op *tagged = op->data;
  struct record *record = tagged->record;

  assert_true(record->count < RECORD_MAX);
  record->ids[record->count] = tagged->id;
  record->results[record->count] = res;
  record->count++;
}

static int setup_loop(void **state)
{
  struct eng_loop *loop = NULL;
  struct rbx_error err;

  assert_int_equal(eng_loop_new(&loop, 0, &err), 0);
  *state = loop;
  return 0;
}

static int teardown_loop(void **state)
{
  struct eng_loop *loop = *state;

  assert_int_equal(eng_in_flight(loop), 0);
  eng_loop_free(loop);
  return 0;
}

static void tag(struct tagged_op *tagged, struct eng_loop *loop,
                struct record *record, int id)
{
  eng_op_init(&tagged->op, loop, on_record, tagged);
  tagged->record = record;
  tagged->id = id;
}

static void test_timer_fires_in_order(void **state)
{
  struct eng_loop *loop = *state;
  static const uint64_t delays[] = {40, 10, 30, 20, 0};
  struct tagged_op timers[5];
  struct record record = {0};
  uint64_t start = eng_now_ms();

  for (int i = 0; i < 5; i++) {
    tag(&timers[i], loop, &record, i);
    assert_int_equal(eng_timer(&timers[i].op, delays[i]), 0);
  }
  assert_int_equal(eng_in_flight(loop), 5);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 5);
  assert_int_equal(record.ids[0], 4);
  assert_int_equal(record.ids[1], 1);
  assert_int_equal(record.ids[2], 3);
  assert_int_equal(record.ids[3], 2);
  assert_int_equal(record.ids[4], 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(record.results[i], -ETIME);
  assert_true(eng_now_ms() - start >= 40);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_timer_busy_slot(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op timer;
  struct record record = {0};

  tag(&timer, loop, &record, 1);
  assert_int_equal(eng_timer(&timer.op, 5), 0);
  assert_int_equal(eng_timer(&timer.op, 5), -EBUSY);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 1);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_timer_cancel(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op timer;
  struct record record = {0};
  uint64_t start = eng_now_ms();

  tag(&timer, loop, &record, 1);
  assert_int_equal(eng_timer(&timer.op, 10000), 0);
  eng_cancel(&timer.op);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 1);
  assert_int_equal(record.results[0], -ECANCELED);
  assert_true(eng_now_ms() - start < 5000);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_recv_cancel_pending(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op recv_op;
  struct record record = {0};
  char buf[16];
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  tag(&recv_op, loop, &record, 7);
  assert_int_equal(eng_recv(&recv_op.op, sv[0], buf, sizeof(buf)), 0);
  /* Let the receive reach the kernel and park before cancelling it. */
  assert_int_equal(eng_run_once(loop, false), 0);
  assert_true(recv_op.op.in_flight);
  eng_cancel(&recv_op.op);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 1);
  assert_int_equal(record.ids[0], 7);
  assert_int_equal(record.results[0], -ECANCELED);
  assert_false(recv_op.op.in_flight);
  close(sv[0]);
  close(sv[1]);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_cancel_not_in_flight(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op idle;
  struct record record = {0};

  tag(&idle, loop, &record, 1);
  eng_cancel(&idle.op);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 0);
  assert_int_equal(eng_in_flight(loop), 0);
}

struct defer_state {
  struct eng_op op;
  int runs;
  int result;
  int again; /* re-arm this many more times from the callback */
};

static void on_defer(struct eng_op *op, int res)
{
  struct defer_state *ds = op->data;

  ds->runs++;
  ds->result = res;
  if (ds->again > 0) {
    ds->again--;
    assert_int_equal(eng_defer(op), 0);
  }
}

static void test_defer_runs_next_turn(void **state)
{
  struct eng_loop *loop = *state;
  struct defer_state ds = {.again = 2};

  eng_op_init(&ds.op, loop, on_defer, &ds);
  assert_int_equal(eng_defer(&ds.op), 0);
  assert_int_equal(ds.runs, 0);
  assert_int_equal(eng_in_flight(loop), 1);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(ds.runs, 3);
  assert_int_equal(ds.result, 0);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_send_recv_roundtrip(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op send_op, recv_op;
  struct record record = {0};
  char buf[16] = "";
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  tag(&send_op, loop, &record, 1);
  tag(&recv_op, loop, &record, 2);
  assert_int_equal(eng_recv(&recv_op.op, sv[1], buf, sizeof(buf)), 0);
  assert_int_equal(eng_send(&send_op.op, sv[0], "ping", 4), 0);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 2);
  assert_int_equal(record.results[0], 4);
  assert_int_equal(record.results[1], 4);
  assert_memory_equal(buf, "ping", 4);
  close(sv[0]);
  close(sv[1]);
  assert_int_equal(eng_in_flight(loop), 0);
}

static void test_recv_sees_eof(void **state)
{
  struct eng_loop *loop = *state;
  struct tagged_op recv_op;
  struct record record = {0};
  char buf[16];
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  tag(&recv_op, loop, &record, 1);
  assert_int_equal(eng_recv(&recv_op.op, sv[0], buf, sizeof(buf)), 0);
  close(sv[1]);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 1);
  assert_int_equal(record.results[0], 0);
  close(sv[0]);
  assert_int_equal(eng_in_flight(loop), 0);
}

struct stopper {
  struct eng_op op;
  struct eng_loop *loop;
};

static void on_stop_timer(struct eng_op *op, int res)
{
  struct stopper *stopper = op->data;

  assert_int_equal(res, -ETIME);
  eng_stop(stopper->loop);
}

static void test_stop_leaves_ops(void **state)
{
  struct eng_loop *loop = *state;
  struct stopper stopper = {.loop = loop};
  struct tagged_op slow;
  struct record record = {0};

  eng_op_init(&stopper.op, loop, on_stop_timer, &stopper);
  tag(&slow, loop, &record, 1);
  assert_int_equal(eng_timer(&stopper.op, 1), 0);
  assert_int_equal(eng_timer(&slow.op, 10000), 0);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(eng_in_flight(loop), 1);
  assert_int_equal(record.count, 0);
  eng_cancel(&slow.op);
  assert_int_equal(eng_run(loop), 0);
  assert_int_equal(record.count, 1);
  assert_int_equal(record.results[0], -ECANCELED);
  assert_int_equal(eng_in_flight(loop), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_timer_fires_in_order, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_timer_busy_slot, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_timer_cancel, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_recv_cancel_pending, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_cancel_not_in_flight, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_defer_runs_next_turn, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_send_recv_roundtrip, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_recv_sees_eof, setup_loop,
                                      teardown_loop),
      cmocka_unit_test_setup_teardown(test_stop_leaves_ops, setup_loop,
                                      teardown_loop),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
