/* The host backend: runs each command as a child process of this program,
 * straight on the host, driven from the context's io_uring loop. It is
 * compiled in only with -Dunsafe_host=true.
 *
 * WARNING: THIS BACKEND GIVES NO ISOLATION AT ALL. The command runs with
 * this program's user and privileges, has the host's whole filesystem and
 * network, and can read, change or delete anything that user can. Use it
 * only for trusted commands on a development machine.
 *
 * What it enforces: the mount policy is checked (exec_spec_copy), but a
 * mount cannot be applied, so the command sees host paths and never the
 * mount targets. The timeout and the output limit are enforced by killing
 * the command's process group, and nofile_limit becomes RLIMIT_NOFILE. The
 * image, network mode, cpus, memory, pids, user, capabilities, tmpfs and
 * read-only root are ignored. */
#include "backends/exec.h"

#include <errno.h>

#include "engine/error.h"

#if defined(RBX_UNSAFE_HOST) && RBX_UNSAFE_HOST

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOST_READ_CHUNK 65536
#define HOST_WRITE_CHUNK (1024 * 1024)
/* Grace period after the command exited and its group was killed: a
 * descendant that left the group (setsid) may keep stdout or stderr open
 * this long before the reads are cancelled. */
#define HOST_DRAIN_MS 1000
/* The search path for argv[0] when the spec's env has no PATH. The
 * command's environment still gets no PATH then. */
#define HOST_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
/* Exit statuses of a child that could not run the command, as docker run
 * uses them: set-up failed, found but not executable, not found. */
#define HOST_EXIT_SETUP_FAILED 125
#define HOST_EXIT_CANNOT_RUN 126
#define HOST_EXIT_NOT_FOUND 127

struct host_run;

struct host_stream {
  struct eng_op op;
  struct host_run *run;
  int fd; /* read end of the pipe; -1 once closed */
  struct rbx_output *out;
  const char *name;
  uint8_t buf[HOST_READ_CHUNK];
};

/* One execution. It is freed just before exec_finish, once no operation
 * of it is in flight and every descriptor is closed. */
struct host_run {
  struct rbx_exec *exec;
  pid_t pid;    /* also the id of the command's process group */
  int pidfd;    /* -1 once the child is reaped */
  int stdin_fd; /* our end of the stdin socket; -1 once closed */
  size_t stdin_off;
  struct eng_op stdin_op;
  struct eng_op exit_op; /* POLLIN on the pidfd: the child exited */
  struct eng_op deadline_op;
  struct eng_op drain_op;
  struct host_stream out;
  struct host_stream err;
  bool reaped;
  bool stopping; /* the end is decided: stop_end */
  enum rbx_end stop_end;
  bool failed;
  struct rbx_error error;
};

/* Everything the child needs, prepared before fork so that the child makes
 * only async-signal-safe calls and never allocates. */
struct child_plan {
  char path[PATH_MAX];
  char *const *argv;
  char *const *envp;
  const char *workdir;
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  rlim_t nofile;
};

static void maybe_finish(struct host_run *run);

static void close_fd(int *fd)
{
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

static int pidfd_open(pid_t pid)
{
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Kills the command's process group, or the child alone if the group does
 * not exist yet. Only called while the child is not reaped, so the group's
 * id cannot belong to anyone else. */
static void kill_group(pid_t pid)
{
  if (kill(-pid, SIGKILL) < 0)
    kill(pid, SIGKILL);
}

/* ---- the child, between fork and execve ---- */

static void child_write(const char *s)
{
  size_t len = strlen(s);

  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, s, len);

    if (n <= 0)
      return;
    s += n;
    len -= (size_t)n;
  }
}

/* Reports on the command's stderr why it could not start, then exits. */
static void __attribute__((noreturn))
child_fail(const char *what, const char *subject, int code, int status)
{
  const char *name = strerrorname_np(code);

  child_write("ringbox host: ");
  child_write(what);
  child_write(" '");
  child_write(subject);
  child_write("': ");
  child_write(name ? name : "unknown error");
  child_write("\n");
  _exit(status);
}

static void __attribute__((noreturn)) run_child(const struct child_plan *plan)
{
  struct rlimit nofile = {plan->nofile, plan->nofile};
  struct sigaction default_action;
  sigset_t none;
  int code;

  /* Handlers are reset by execve, but ignored signals (SIGPIPE in many
   * programs) would stay ignored in the command. */
  memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &default_action, NULL);
  setpgid(0, 0);
  if (dup2(plan->stdin_fd, STDIN_FILENO) < 0 ||
      dup2(plan->stdout_fd, STDOUT_FILENO) < 0 ||
      dup2(plan->stderr_fd, STDERR_FILENO) < 0)
    child_fail("cannot set up stdio for", plan->path, errno,
               HOST_EXIT_SETUP_FAILED);
  if (close_range(STDERR_FILENO + 1, ~0U, 0) < 0)
    child_fail("cannot close inherited descriptors before", plan->path, errno,
               HOST_EXIT_SETUP_FAILED);
  if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
    child_fail("cannot set the open files limit for", plan->path, errno,
               HOST_EXIT_SETUP_FAILED);
  if (plan->workdir && chdir(plan->workdir) < 0)
    child_fail("cannot change to workdir", plan->workdir, errno,
               HOST_EXIT_SETUP_FAILED);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(plan->path, plan->argv, plan->envp);
  code = errno;
  child_fail("cannot execute", plan->path, code,
             code == ENOENT ? HOST_EXIT_NOT_FOUND : HOST_EXIT_CANNOT_RUN);
}

/* ---- preparing the child ---- */

static const char *env_value(char *const *env, const char *key)
{
  size_t n = strlen(key);

  for (; *env; env++) {
    if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
      return *env + n + 1;
  }
  return NULL;
}

static bool is_executable(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Writes dir/name to out (PATH_MAX bytes). An empty dir is the current
 * folder; a relative one is taken from the workdir the child will have. */
static bool join_path(char *out, const char *workdir, const char *dir,
                      size_t dir_len, const char *name)
{
  int n;

  if (dir_len == 0) {
    dir = ".";
    dir_len = 1;
  }
  if (dir[0] != '/' && workdir)
    n = snprintf(out, PATH_MAX, "%s/%.*s/%s", workdir, (int)dir_len, dir, name);
  else
    n = snprintf(out, PATH_MAX, "%.*s/%s", (int)dir_len, dir, name);
  return n > 0 && n < PATH_MAX;
}

/* Finds argv[0] in the spec's PATH here, because glibc's execvpe would
 * search this program's PATH, not the one the command gets. */
static int resolve_command(const struct exec_spec *spec, char *path,
                           struct rbx_error *err)
{
  const char *name = spec->argv[0];
  const char *search = env_value(spec->env, "PATH");
  const char *dir;

  if (strchr(name, '/')) {
    if (strlen(name) >= PATH_MAX)
      return rbx_err_set(err, RBX_ERR_INVALID, -ENAMETOOLONG,
                         "host: command path is longer than %d bytes",
                         PATH_MAX - 1);
    strcpy(path, name);
    return 0;
  }
  if (!search)
    search = HOST_DEFAULT_PATH;
  for (dir = search;; dir++) {
    size_t len = strcspn(dir, ":");

    if (join_path(path, spec->workdir, dir, len, name) && is_executable(path))
      return 0;
    dir += len;
    if (*dir == '\0')
      break;
  }
  return rbx_err_set(err, RBX_ERR_INVALID, -ENOENT,
                     "host: command '%s' not found in PATH %s; install it "
                     "on the host or give its full path",
                     name, search);
}

static int prepare_plan(struct child_plan *plan, const struct rbx_exec *exec,
                        struct rbx_error *err)
{
  const struct exec_spec *spec = &exec->spec;
  struct rlimit current;
  struct stat st;
  int rc;

  memset(plan, 0, sizeof(*plan));
  plan->stdin_fd = plan->stdout_fd = plan->stderr_fd = -1;
  plan->argv = spec->argv;
  plan->envp = spec->env;
  plan->workdir = spec->workdir;
  if (spec->workdir && (stat(spec->workdir, &st) < 0 || !S_ISDIR(st.st_mode)))
    return rbx_err_set(err, RBX_ERR_INVALID, -ENOTDIR,
                       "host: workdir '%s' is not a folder on this host; "
                       "create it or choose another",
                       spec->workdir);
  rc = resolve_command(spec, plan->path, err);
  if (rc < 0)
    return rc;
  plan->nofile = (rlim_t)spec->policy.nofile_limit;
  /* Without CAP_SYS_RESOURCE no process may raise its hard limit, so the
   * command cannot get more than this program's hard limit. */
  if (getrlimit(RLIMIT_NOFILE, &current) == 0 &&
      current.rlim_max != RLIM_INFINITY && plan->nofile > current.rlim_max) {
    rbx_log(&exec->ctx->log, RBX_LOG_INFO,
            "host nofile_limit lowered to the hard limit exec=%llu "
            "nofile_limit=%llu hard_limit=%llu",
            (unsigned long long)exec->seq,
            (unsigned long long)spec->policy.nofile_limit,
            (unsigned long long)current.rlim_max);
    plan->nofile = current.rlim_max;
  }
  return 0;
}

/* Moves fd to 3 or above, so the child's dup2 onto 0, 1 and 2 cannot
 * overwrite another of its descriptors. */
static int move_above_stdio(int fd)
{
  int moved;

  if (fd > STDERR_FILENO)
    return fd;
  moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  close(fd);
  return moved;
}

static void close_plan_fds(struct child_plan *plan)
{
  close_fd(&plan->stdin_fd);
  close_fd(&plan->stdout_fd);
  close_fd(&plan->stderr_fd);
}

static void close_run_fds(struct host_run *run)
{
  close_fd(&run->stdin_fd);
  close_fd(&run->out.fd);
  close_fd(&run->err.fd);
  close_fd(&run->pidfd);
}

/* stdin is a socket, not a pipe: a send with MSG_NOSIGNAL fails with EPIPE
 * when the command stops reading, where a pipe write would raise SIGPIPE
 * in this process. */
static int open_channels(struct host_run *run, struct child_plan *plan,
                         struct rbx_error *err)
{
  int sv[2], out_pipe[2], err_pipe[2];
  int code;

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    goto failed;
  run->stdin_fd = sv[0];
  plan->stdin_fd = sv[1];
  if (pipe2(out_pipe, O_CLOEXEC) < 0)
    goto failed;
  run->out.fd = out_pipe[0];
  plan->stdout_fd = out_pipe[1];
  if (pipe2(err_pipe, O_CLOEXEC) < 0)
    goto failed;
  run->err.fd = err_pipe[0];
  plan->stderr_fd = err_pipe[1];
  plan->stdin_fd = move_above_stdio(plan->stdin_fd);
  plan->stdout_fd = move_above_stdio(plan->stdout_fd);
  plan->stderr_fd = move_above_stdio(plan->stderr_fd);
  if (plan->stdin_fd < 0 || plan->stdout_fd < 0 || plan->stderr_fd < 0)
    goto failed;
  return 0;

failed:
  code = errno;
  close_plan_fds(plan);
  close_run_fds(run);
  return rbx_err_set(err, RBX_ERR_IO, -code,
                     "host: cannot create the command's stdio: %s; raise the "
                     "open files limit of this program",
                     strerror(code));
}

static int spawn_child(struct host_run *run, const struct child_plan *plan,
                       struct rbx_error *err)
{
  sigset_t all, old;
  pid_t pid;
  int code;

  /* No handler of this program may run in the child before its signal
   * actions are reset. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = fork();
  if (pid == 0)
    run_child(plan);
  code = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -code,
                       "host: fork failed: %s; this program has too many "
                       "processes or too little memory",
                       strerror(code));
  /* The child makes the same call. Whichever runs first creates the group,
   * so a kill of the group can never miss the child. */
  setpgid(pid, pid);
  run->pid = pid;
  run->pidfd = pidfd_open(pid);
  if (run->pidfd < 0) {
    code = errno;
    kill_group(pid);
    /* Blocks, but only until a child that was just sent SIGKILL is gone:
     * without a pidfd it cannot be waited for on the loop. */
    waitpid(pid, NULL, 0);
    return rbx_err_set(err, RBX_ERR_IO, -code, "host: pidfd_open failed: %s",
                       strerror(code));
  }
  return 0;
}

/* ---- running ---- */

/* Keeps the first failure and kills the group, so the execution ends soon
 * and reports that error. */
static void host_fail(struct host_run *run, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void host_fail(struct host_run *run, int code, const char *fmt, ...)
{
  char message[RBX_ERROR_MESSAGE_MAX];
  va_list ap;

  if (!run->failed) {
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    rbx_err_set(&run->error, RBX_ERR_IO, code, "%s", message);
    run->failed = true;
    rbx_log(&run->exec->ctx->log, RBX_LOG_ERROR,
            "host execution failed exec=%llu pid=%d error=%s",
            (unsigned long long)run->exec->seq, (int)run->pid, message);
  }
  if (!run->reaped)
    kill_group(run->pid);
}

/* Decides how the execution ends, unless that is decided already, and
 * kills the group while the child runs. */
static void stop_group(struct host_run *run, enum rbx_end end)
{
  if (run->stopping)
    return;
  run->stopping = true;
  run->stop_end = end;
  rbx_log(&run->exec->ctx->log, RBX_LOG_INFO,
          "host execution stopped exec=%llu pid=%d reason=%s elapsed_ms=%llu",
          (unsigned long long)run->exec->seq, (int)run->pid, rbx_end_name(end),
          (unsigned long long)(eng_now_ms() - run->exec->start_ms));
  if (!run->reaped)
    kill_group(run->pid);
}

static int start_read(struct host_stream *stream)
{
  return eng_read(&stream->op, stream->fd, stream->buf, sizeof(stream->buf));
}

static int start_write(struct host_run *run)
{
  const struct exec_spec *spec = &run->exec->spec;
  size_t left = spec->stdin_len - run->stdin_off;

  if (left > HOST_WRITE_CHUNK)
    left = HOST_WRITE_CHUNK;
  return eng_send(&run->stdin_op, run->stdin_fd,
                  spec->stdin_data + run->stdin_off, left);
}

static void on_read(struct eng_op *op, int res)
{
  struct host_stream *stream = op->data;
  struct host_run *run = stream->run;
  int rc;

  if (res > 0 &&
      exec_output_append(stream->out, run->exec->spec.policy.output_limit,
                         stream->buf, (size_t)res))
    stop_group(run, RBX_END_OUTPUT_LIMIT);
  if (res > 0 || res == -EINTR || res == -EAGAIN) {
    /* Past the limit the pipe is still drained, so that the group's
     * writers are not blocked until the kill reaches them. */
    rc = start_read(stream);
    if (rc == 0)
      return;
    host_fail(run, rc, "host: cannot read %s: %s", stream->name, strerror(-rc));
  } else if (res < 0 && res != -ECANCELED) {
    host_fail(run, res, "host: reading %s failed: %s", stream->name,
              strerror(-res));
  }
  close_fd(&stream->fd);
  maybe_finish(run);
}

static void on_stdin_sent(struct eng_op *op, int res)
{
  struct host_run *run = op->data;
  int rc = 0;

  if (res > 0)
    run->stdin_off += (size_t)res;
  if ((res > 0 && run->stdin_off < run->exec->spec.stdin_len) ||
      res == -EINTR || res == -EAGAIN) {
    rc = start_write(run);
    if (rc == 0)
      return;
    host_fail(run, rc, "host: cannot write stdin: %s", strerror(-rc));
  }
  /* EPIPE and ECONNRESET mean the command closed stdin before reading it
   * all, which is its right. The bytes not read are dropped. */
  close_fd(&run->stdin_fd);
  maybe_finish(run);
}

/* Stops waiting for output and for the command to read stdin. Each
 * cancelled operation closes its descriptor in its callback. */
static void cancel_io(struct host_run *run)
{
  eng_cancel(&run->out.op);
  eng_cancel(&run->err.op);
  eng_cancel(&run->stdin_op);
}

static bool child_exited(const struct host_run *run)
{
  siginfo_t info;

  memset(&info, 0, sizeof(info));
  return waitid((idtype_t)P_PIDFD, (id_t)run->pidfd, &info,
                WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid != 0;
}

static void record_exit(struct host_run *run, const siginfo_t *info)
{
  struct rbx_result *result = &run->exec->result;

  result->wall_ms = eng_now_ms() - run->exec->start_ms;
  if (info->si_code == CLD_EXITED) {
    result->end = RBX_END_EXITED;
    result->exit_code = info->si_status;
    result->signal = 0;
  } else {
    result->end = RBX_END_SIGNALED;
    result->exit_code = 128 + info->si_status;
    result->signal = info->si_status;
  }
}

/* Reaps the exited child. What is left of its group is killed first,
 * while the unreaped child keeps the group's id reserved, so that the pipes
 * reach end of file, as they do when a container's main process exits and
 * the kernel kills the rest of its PID namespace. */
static void reap(struct host_run *run, bool block)
{
  siginfo_t info;
  int rc;

  kill(-run->pid, SIGKILL);
  memset(&info, 0, sizeof(info));
  rc = waitid((idtype_t)P_PIDFD, (id_t)run->pidfd, &info,
              WEXITED | (block ? 0 : WNOHANG));
  if (rc < 0 || info.si_pid == 0)
    host_fail(run, rc < 0 ? -errno : -ECHILD, "host: cannot reap pid %d: %s",
              (int)run->pid, rc < 0 ? strerror(errno) : "no exit status");
  else
    record_exit(run, &info);
  run->reaped = true;
  close_fd(&run->pidfd);
  eng_cancel(&run->deadline_op);
  if ((run->out.fd >= 0 || run->err.fd >= 0 || run->stdin_fd >= 0) &&
      eng_timer(&run->drain_op, HOST_DRAIN_MS) < 0)
    cancel_io(run);
}

static void on_exit_ready(struct eng_op *op, int res)
{
  struct host_run *run = op->data;
  int rc = res;

  if (child_exited(run)) {
    reap(run, false);
    maybe_finish(run);
    return;
  }
  /* A poll that completed without an exit is submitted again, unless it
   * failed in a way that would repeat. */
  if (res >= 0 || res == -EINTR || res == -EAGAIN) {
    rc = eng_poll(op, run->pidfd, POLLIN);
    if (rc == 0)
      return;
  }
  host_fail(run, rc, "host: cannot wait for pid %d: %s", (int)run->pid,
            strerror(-rc));
  /* Blocks only until the child, just sent SIGKILL, is gone. */
  reap(run, true);
  maybe_finish(run);
}

static void on_deadline(struct eng_op *op, int res)
{
  struct host_run *run = op->data;

  /* A child that exited just before its deadline keeps its own end. */
  if (res != -ECANCELED && !run->reaped && !child_exited(run))
    stop_group(run, RBX_END_TIMED_OUT);
  maybe_finish(run);
}

static void on_drain_timeout(struct eng_op *op, int res)
{
  struct host_run *run = op->data;

  if (res != -ECANCELED) {
    rbx_log(&run->exec->ctx->log, RBX_LOG_WARN,
            "host output still open after exit, closing it exec=%llu pid=%d "
            "drain_ms=%d",
            (unsigned long long)run->exec->seq, (int)run->pid, HOST_DRAIN_MS);
    cancel_io(run);
  }
  maybe_finish(run);
}

static void maybe_finish(struct host_run *run)
{
  struct rbx_exec *exec = run->exec;
  struct rbx_error error;
  bool failed = run->failed;

  if (!run->reaped || run->out.fd >= 0 || run->err.fd >= 0 ||
      run->stdin_fd >= 0 || run->exit_op.in_flight ||
      run->deadline_op.in_flight)
    return;
  if (run->drain_op.in_flight) {
    eng_cancel(&run->drain_op);
    return;
  }
  if (run->stopping) {
    exec->result.end = run->stop_end;
    exec->result.signal = 0;
  }
  if (failed)
    error = run->error;
  exec->backend_data = NULL;
  free(run);
  exec_finish(exec, failed ? &error : NULL);
}

/* Submits the reads, the stdin writes and the deadline. A failure here
 * kills the child, and the execution then ends with that error. */
static void submit_io(struct host_run *run)
{
  struct rbx_exec *exec = run->exec;
  struct host_stream *streams[] = {&run->out, &run->err};
  int rc;

  for (size_t i = 0; i < 2; i++) {
    rc = start_read(streams[i]);
    if (rc < 0) {
      host_fail(run, rc, "host: cannot read %s: %s", streams[i]->name,
                strerror(-rc));
      close_fd(&streams[i]->fd);
    }
  }
  if (exec->spec.stdin_len == 0) {
    close_fd(&run->stdin_fd);
  } else {
    rc = start_write(run);
    if (rc < 0) {
      host_fail(run, rc, "host: cannot write stdin: %s", strerror(-rc));
      close_fd(&run->stdin_fd);
    }
  }
  if (exec->deadline_ms) {
    uint64_t now = eng_now_ms();

    rc = eng_timer(&run->deadline_op,
                   exec->deadline_ms > now ? exec->deadline_ms - now : 0);
    if (rc < 0)
      host_fail(run, rc, "host: cannot set the deadline timer: %s",
                strerror(-rc));
  }
}

static void init_run(struct host_run *run, struct rbx_exec *exec)
{
  struct eng_loop *loop = exec->ctx->loop;

  run->exec = exec;
  run->pidfd = run->stdin_fd = -1;
  eng_op_init(&run->stdin_op, loop, on_stdin_sent, run);
  eng_op_init(&run->exit_op, loop, on_exit_ready, run);
  eng_op_init(&run->deadline_op, loop, on_deadline, run);
  eng_op_init(&run->drain_op, loop, on_drain_timeout, run);
  eng_op_init(&run->out.op, loop, on_read, &run->out);
  eng_op_init(&run->err.op, loop, on_read, &run->err);
  run->out.run = run->err.run = run;
  run->out.fd = run->err.fd = -1;
  run->out.out = &exec->result.out;
  run->err.out = &exec->result.err;
  run->out.name = "stdout";
  run->err.name = "stderr";
}

static int host_start(struct rbx_exec *exec, struct rbx_error *err)
{
  struct host_run *run = calloc(1, sizeof(*run));
  struct child_plan plan;
  int rc;

  if (!run)
    return rbx_err_set(err, RBX_ERR_IO, -ENOMEM, "host: out of memory");
  init_run(run, exec);
  rc = prepare_plan(&plan, exec, err);
  if (rc == 0)
    rc = open_channels(run, &plan, err);
  if (rc == 0)
    rc = spawn_child(run, &plan, err);
  close_plan_fds(&plan);
  if (rc == 0) {
    rc = eng_poll(&run->exit_op, run->pidfd, POLLIN);
    if (rc < 0) {
      siginfo_t info;

      rbx_err_set(err, RBX_ERR_IO, rc, "host: cannot wait for pid %d: %s",
                  (int)run->pid, strerror(-rc));
      kill_group(run->pid);
      /* Blocks only until the child, just sent SIGKILL, is gone. */
      waitid((idtype_t)P_PIDFD, (id_t)run->pidfd, &info, WEXITED);
    }
  }
  if (rc < 0) {
    close_run_fds(run);
    free(run);
    return rc;
  }
  snprintf(exec->result.id, sizeof(exec->result.id), "%d", (int)run->pid);
  exec->backend_data = run;
  rbx_log(&exec->ctx->log, RBX_LOG_DEBUG,
          "host execution started exec=%llu pid=%d path=%s",
          (unsigned long long)exec->seq, (int)run->pid, plan.path);
  submit_io(run);
  return 0;
}

static void host_cancel(struct rbx_exec *exec)
{
  struct host_run *run = exec->backend_data;

  if (!run)
    return;
  stop_group(run, RBX_END_CANCELLED);
  /* Once the child is reaped, only descendants that left its group can
   * still hold the output open. */
  if (run->reaped)
    cancel_io(run);
}

static void host_free(struct rbx_context *ctx)
{
  ctx->backend_state = NULL;
}

static const struct backend_ops host_ops = {
    .name = "host",
    .start = host_start,
    .cancel = host_cancel,
    .free = host_free,
};

const struct backend_ops *host_backend_ops(void)
{
  return &host_ops;
}

int host_backend_init(struct rbx_context *ctx, struct rbx_error *err)
{
  struct sigaction action;
  int pidfd;

  /* With SIGCHLD ignored the kernel reaps children itself, so their exit
   * statuses are lost and their pids may be reused under us. */
  if (sigaction(SIGCHLD, NULL, &action) == 0 &&
      ((!(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_IGN) ||
       (action.sa_flags & SA_NOCLDWAIT)))
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ECHILD,
                       "host runtime: SIGCHLD is ignored in this process, "
                       "so exit statuses would be lost; restore its default "
                       "action before creating the context");
  pidfd = pidfd_open(getpid());
  if (pidfd < 0)
    return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -errno,
                       "host runtime: pidfd_open failed: %s; Linux 5.4 or "
                       "newer is needed",
                       strerror(errno));
  close(pidfd);
  ctx->backend = &host_ops;
  ctx->backend_state = NULL;
  rbx_log(&ctx->log, RBX_LOG_WARN,
          "host runtime: commands run on this host WITHOUT ISOLATION");
  return 0;
}

#else

const struct backend_ops *host_backend_ops(void)
{
  return NULL;
}

int host_backend_init(struct rbx_context *ctx, struct rbx_error *err)
{
  (void)ctx;
  return rbx_err_set(err, RBX_ERR_UNAVAILABLE, -ENOTSUP,
                     "the host runtime is not built in; rebuild with "
                     "-Dunsafe_host=true");
}

#endif
