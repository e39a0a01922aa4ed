/* `ringbox batch`: reads JSON requests line by line, keeps up to
 * --concurrency executions running through the async API, and writes one
 * JSON result line per execution as it finishes. One poll(2) loop watches
 * the input, the library's fd and a self-pipe for SIGINT and SIGTERM. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bytes read from the input at a time. */
#define READ_CHUNK (64 * 1024)
/* poll(2) wakes at least this often, so the library makes progress even if
 * its fd readiness were missed. */
#define POLL_INTERVAL_MS 500

struct batch {
  struct rbx_context *ctx;
  const struct cli_config *cfg;
  int input_fd;
  int signal_fd; /* read end of the self-pipe */
  bool input_done;
  bool stopping;
  bool abandon; /* a second signal: leave the rest to rbx_context_free */
  int stop_signal;
  bool output_failed;
  /* Bytes read but not yet consumed: data[start, len). data[start, scan)
   * is known to hold no newline. */
  char *data;
  size_t start, scan, len, cap;
  bool skipping_line; /* the rest of an over-long line is being dropped */
  unsigned long line_number;
  unsigned in_flight;
};

struct job {
  struct batch *batch;
  char *id_json;
  size_t id_len;
  unsigned long line;
};

static void write_line(struct batch *b, struct cli_buf *buf)
{
  if (b->output_failed)
    return;
  if (buf->failed) {
    fputs("ringbox: out of memory while encoding a result line\n", stderr);
    return;
  }
  if (fwrite(buf->data, 1, buf->len, stdout) != buf->len ||
      fflush(stdout) != 0) {
    fprintf(stderr, "ringbox: cannot write results: %s; cancelling\n",
            strerror(errno));
    b->output_failed = true;
    b->stopping = true;
  }
}

static void write_error(struct batch *b, const struct cli_result_tag *tag,
                        const char *kind, const char *message)
{
  struct cli_buf buf = {0};

  cli_json_error(&buf, tag, kind, message);
  write_line(b, &buf);
  cli_buf_free(&buf);
}

static void on_done(struct rbx_exec *exec, const struct rbx_result *result,
                    const struct rbx_error *error, void *userdata)
{
  struct job *job = userdata;
  struct batch *b = job->batch;
  struct cli_result_tag tag = {job->id_json, job->id_len, job->line};

  (void)exec;
  if (result) {
    struct cli_buf buf = {0};

    cli_json_result(&buf, &tag, result);
    write_line(b, &buf);
    cli_buf_free(&buf);
  } else {
    write_error(b, &tag, rbx_error_kind_name(error->kind), error->message);
  }
  b->in_flight--;
  free(job->id_json);
  free(job);
}

/* Decodes one line and spawns it, or writes its error result. The job
 * takes over the request's id text. */
static void start_line(struct batch *b, const char *line, size_t len)
{
  struct cli_request req;
  struct cli_result_tag tag = {NULL, 0, b->line_number};
  struct rbx_spec spec;
  struct rbx_error err = {0};
  char msg[CLI_MESSAGE_MAX], full[CLI_MESSAGE_MAX + 32];
  struct job *job = NULL;

  if (cli_request_decode(&req, line, len, b->cfg, msg, sizeof(msg)) < 0) {
    tag.id_json = req.id_json;
    tag.id_len = req.id_len;
    snprintf(full, sizeof(full), "line %lu: %s", b->line_number, msg);
    write_error(b, &tag, "invalid", full);
    cli_request_free(&req);
    return;
  }
  tag.id_json = req.id_json;
  tag.id_len = req.id_len;
  job = calloc(1, sizeof(*job));
  if (!job) {
    write_error(b, &tag, "unavailable", "out of memory for the request");
    cli_request_free(&req);
    return;
  }
  job->batch = b;
  job->line = b->line_number;
  cli_request_spec(&req, &spec);
  if (rbx_spawn(b->ctx, &spec, on_done, job, NULL, &err) < 0) {
    write_error(b, &tag, rbx_error_kind_name(err.kind), err.message);
    free(job);
    cli_request_free(&req);
    return;
  }
  job->id_json = req.id_json;
  job->id_len = req.id_len;
  req.id_json = NULL;
  b->in_flight++;
  cli_request_free(&req);
}

static bool blank(const char *line, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
      return false;
  }
  return true;
}

/* Finds the next newline in the buffer, scanning each byte only once. */
static char *find_newline(struct batch *b)
{
  char *nl;

  if (b->scan < b->start)
    b->scan = b->start;
  if (b->scan >= b->len)
    return NULL; /* also covers data == NULL before the first read */
  nl = memchr(b->data + b->scan, '\n', b->len - b->scan);
  b->scan = nl ? (size_t)(nl - b->data) : b->len;
  return nl;
}

/* Whether a whole line is buffered (the last one may end at end of input
 * without a newline). */
static bool line_ready(struct batch *b)
{
  return find_newline(b) || (b->input_done && b->start < b->len);
}

/* Takes the next whole line from the buffer. Returns false when there is
 * none yet. */
static bool next_line(struct batch *b, const char **line, size_t *len)
{
  size_t avail = b->len - b->start;
  char *begin, *nl;

  if (avail == 0)
    return false;
  begin = b->data + b->start;
  nl = find_newline(b);
  if (!nl && !b->input_done)
    return false;
  *line = begin;
  *len = nl ? (size_t)(nl - begin) : avail;
  b->start += *len + (nl ? 1 : 0);
  if (*len > 0 && begin[*len - 1] == '\r')
    (*len)--;
  return true;
}

/* Starts buffered lines while there are free slots. */
static void start_lines(struct batch *b)
{
  const char *line;
  size_t len;

  while (!b->stopping && b->in_flight < b->cfg->concurrency &&
         next_line(b, &line, &len)) {
    b->line_number++;
    if (!blank(line, len))
      start_line(b, line, len);
  }
}

/* Makes room for one more chunk. A line longer than CLI_BATCH_LINE_MAX is
 * reported as an error and its remaining bytes are dropped. */
static int make_room(struct batch *b)
{
  if (b->start > 0) {
    memmove(b->data, b->data + b->start, b->len - b->start);
    b->len -= b->start;
    b->scan = b->scan > b->start ? b->scan - b->start : 0;
    b->start = 0;
  }
  if (b->len >= CLI_BATCH_LINE_MAX) {
    struct cli_result_tag tag = {NULL, 0, b->line_number + 1};
    char msg[CLI_MESSAGE_MAX];

    snprintf(msg, sizeof(msg),
             "line %lu: longer than the limit of %zu MiB; send large stdin "
             "through a mount instead",
             b->line_number + 1, CLI_BATCH_LINE_MAX >> 20);
    write_error(b, &tag, "invalid", msg);
    b->len = 0;
    b->scan = 0;
    b->skipping_line = true;
  }
  if (b->cap - b->len < READ_CHUNK) {
    size_t cap = b->cap ? b->cap * 2 : 4 * READ_CHUNK;
    char *data = realloc(b->data, cap);

    if (!data)
      return -ENOMEM;
    b->data = data;
    b->cap = cap;
  }
  return 0;
}

/* Drops bytes of an over-long line up to its newline. */
static void skip_long_line(struct batch *b)
{
  char *nl;

  if (!b->skipping_line || b->len == 0)
    return;
  nl = memchr(b->data, '\n', b->len);
  if (!nl) {
    b->len = 0;
    b->scan = 0;
    return;
  }
  b->start = (size_t)(nl - b->data) + 1;
  b->skipping_line = false;
  b->line_number++;
}

static int read_input(struct batch *b)
{
  ssize_t n;

  if (make_room(b) < 0) {
    fputs("ringbox: out of memory while reading the input\n", stderr);
    return -ENOMEM;
  }
  n = read(b->input_fd, b->data + b->len, b->cap - b->len);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n < 0) {
    fprintf(stderr, "ringbox: cannot read the batch input: %s\n",
            strerror(errno));
    return -errno;
  }
  if (n == 0)
    b->input_done = true;
  b->len += (size_t)n;
  skip_long_line(b);
  return 0;
}

/* Write end of the self-pipe; the signal handler needs it as a global. */
static int signal_pipe_write = -1;

static void on_stop_signal(int signo)
{
  int saved = errno;
  unsigned char byte = (unsigned char)signo;

  if (write(signal_pipe_write, &byte, 1) < 0) {
    /* A full pipe already has a signal to act on. */
  }
  errno = saved;
}

static void handle_signal(struct batch *b)
{
  unsigned char byte;

  if (read(b->signal_fd, &byte, 1) != 1)
    return;
  if (b->stop_signal) {
    fputs("ringbox: second signal; leaving the cleanup to the library\n",
          stderr);
    b->abandon = true;
    return;
  }
  b->stop_signal = byte;
  b->stopping = true;
  fprintf(stderr, "ringbox: SIG%s received; cancelling %u running executions\n",
          sigabbrev_np(b->stop_signal), b->in_flight);
  rbx_cancel_all(b->ctx);
}

/* Runs completions until the library has nothing ready; each call also
 * submits what the callbacks queued. */
static int drain(struct batch *b)
{
  int n;

  while ((n = rbx_process(b->ctx)) > 0)
    ;
  if (n < 0)
    fprintf(stderr, "ringbox: io: the event loop failed: %s\n", strerror(-n));
  return n;
}

static bool wants_input(struct batch *b)
{
  return !b->input_done && !b->stopping && b->in_flight < b->cfg->concurrency &&
         !line_ready(b);
}

static int run_loop(struct batch *b)
{
  for (;;) {
    struct pollfd fds[3];
    nfds_t count = 2;
    bool stop_seen = b->stopping;

    start_lines(b);
    if (drain(b) < 0)
      return -EIO;
    if (b->stopping && !stop_seen)
      rbx_cancel_all(b->ctx);
    if (b->abandon)
      return 0;
    /* Completions in drain may have freed slots for buffered lines. */
    if (b->in_flight == 0 && (b->stopping || (b->input_done && !line_ready(b))))
      return 0;
    fds[0] = (struct pollfd){.fd = rbx_fd(b->ctx), .events = POLLIN};
    fds[1] = (struct pollfd){.fd = b->signal_fd, .events = POLLIN};
    if (wants_input(b))
      fds[count++] = (struct pollfd){.fd = b->input_fd, .events = POLLIN};
    if (poll(fds, count, POLL_INTERVAL_MS) < 0 && errno != EINTR) {
      fprintf(stderr, "ringbox: poll failed: %s\n", strerror(errno));
      return -errno;
    }
    if (fds[1].revents & POLLIN)
      handle_signal(b);
    if (count == 3 && fds[2].revents && read_input(b) < 0)
      return -EIO;
  }
}

static int open_input(const char *path)
{
  int fd;

  if (!path || strcmp(path, "-") == 0)
    return STDIN_FILENO;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fprintf(stderr, "ringbox: cannot open batch input %s: %s\n", path,
            strerror(errno));
  return fd;
}

/* Lets many executions hold sockets and pipes at once. */
static void raise_file_limit(void)
{
  struct rlimit limit;

  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

/* Routes SIGINT and SIGTERM into a pipe that the loop polls. A handler,
 * unlike a blocked mask for signalfd, is reset in any child that execs. */
static int watch_stop_signals(void)
{
  struct sigaction action;
  int fds[2];

  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
    return -1;
  signal_pipe_write = fds[1];
  memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGINT, &action, NULL) < 0 ||
      sigaction(SIGTERM, &action, NULL) < 0) {
    close(fds[0]);
    close(fds[1]);
    signal_pipe_write = -1;
    return -1;
  }
  return fds[0];
}

static int run_batch(const struct cli_config *cfg)
{
  struct batch b = {.cfg = cfg, .input_fd = -1, .signal_fd = -1};
  struct rbx_options opts = cfg->opts;
  struct rbx_error err = {0};
  int rc, status = CLI_EXIT_FAILURE;

  opts.max_in_flight = cfg->concurrency;
  b.input_fd = open_input(cfg->input_path);
  if (b.input_fd < 0)
    return CLI_EXIT_FAILURE;
  b.signal_fd = watch_stop_signals();
  if (b.signal_fd < 0) {
    fprintf(stderr, "ringbox: cannot watch SIGINT and SIGTERM: %s\n",
            strerror(errno));
    goto out;
  }
  signal(SIGPIPE, SIG_IGN);
  raise_file_limit();
  rc = rbx_context_new(&b.ctx, &opts, &err);
  if (rc < 0) {
    fprintf(stderr, "ringbox: %s: %s\n", rbx_error_kind_name(err.kind),
            err.message);
    goto out;
  }
  rc = run_loop(&b);
  if (rc == 0 && !b.output_failed)
    status = b.stop_signal ? 128 + b.stop_signal : 0;
out:
  rbx_context_free(b.ctx);
  free(b.data);
  if (b.signal_fd >= 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close(b.signal_fd);
    close(signal_pipe_write);
    signal_pipe_write = -1;
  }
  if (b.input_fd > STDIN_FILENO)
    close(b.input_fd);
  return status;
}

int cli_batch_main(int argc, char **argv)
{
  struct cli_config cfg;
  char msg[CLI_MESSAGE_MAX];
  int status;

  cli_config_init(&cfg);
  if (cli_parse_args(&cfg, CLI_MODE_BATCH, argc, argv, msg, sizeof(msg)) < 0) {
    fprintf(stderr, "ringbox: %s\nSee 'ringbox batch --help'.\n", msg);
    status = CLI_EXIT_FAILURE;
  } else if (cfg.help) {
    cli_print_batch_help(stdout);
    status = 0;
  } else {
    cli_apply_verbosity(&cfg.opts, cfg.verbosity);
    if (cfg.opts.runtime == RBX_RUNTIME_HOST)
      cli_warn_host_runtime();
    status = run_batch(&cfg);
  }
  cli_config_free(&cfg);
  return status;
}
