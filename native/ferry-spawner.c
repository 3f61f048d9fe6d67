/*
 * ferry-spawner: the process substrate's fork server.
 *
 * Spawning a supervisor straight from Node forks Node's whole (~200 MB) address space on the event
 * loop, ~10 ms per job. The server starts this small helper once instead; it forks and execs a
 * detached supervisor (own session) per request and tells the server its pid, then each
 * supervisor's exit, so the server keeps an exit event instead of polling. It never signals a
 * supervisor: when it ends (its stdin closes because the server stopped or died), the supervisors
 * it started go on, reparented to init, and the server re-attaches to them through their files.
 *
 * usage: ferry-spawner   (talks over stdin and stdout only)
 *
 * stdin, one frame per request: a 32-bit little-endian payload length, then the payload:
 *   u32 ID, u32 ARGC, u32 ENVC, then ARGC + ENVC + 2 fields CWD, PROGRAM, ARGV[0..ARGC-1],
 *   ENV[0..ENVC-1], each a u32 length and that many bytes (no terminator).
 * All numbers are little-endian. Lengths, not separators: no byte of a field can move the field
 * boundaries. A field holding a NUL byte (which C would cut there: another command or environment
 * than the one asked for), or a payload whose fields do not add up, is refused with E ID EINVAL and
 * nothing runs; the next frame is read as usual.
 * stdout, one line per event:
 *   S ID PID            the supervisor of request ID runs (exec succeeded) as PID
 *   E ID ERRNO          request ID failed (fork, chdir or exec); nothing runs
 *   X PID CODE SIGNAL   supervisor PID ended: exit CODE (-1 when killed) or SIGNAL (0 when exited)
 * SIGINT, SIGTERM and SIGHUP have no effect (blocked: a service manager stopping the server must
 * not take this helper down mid-request); it exits on end of input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

static sigset_t stop_signals;

static void emit(const char *line) {
  size_t len = strlen(line), done = 0;
  while (done < len) {
    ssize_t n = write(1, line + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) exit(0); /* the server is gone: nobody left to tell */
    done += (size_t)n;
  }
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    char line[96];
    if (WIFEXITED(status)) snprintf(line, sizeof line, "X %d %d 0\n", (int)pid, WEXITSTATUS(status));
    else snprintf(line, sizeof line, "X %d -1 %d\n", (int)pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    emit(line);
  }
}

static uint32_t u32le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * The next length-prefixed field, made a C string in place: its length prefix is no longer needed,
 * so the field moves 4 bytes down and its terminator lands where the field ended. NULL when the
 * field runs past the payload or holds a NUL byte.
 */
static char *next_field(char **cursor, char *end) {
  if (end - *cursor < 4) return NULL;
  uint32_t len = u32le((unsigned char *)*cursor);
  char *bytes = *cursor + 4;
  if ((size_t)(end - bytes) < len || memchr(bytes, 0, len)) return NULL;
  char *field = *cursor;
  memmove(field, bytes, len);
  field[len] = 0;
  *cursor = bytes + len;
  return field;
}

static void spawn_one(char *payload, uint32_t len) {
  char line[96];
  char **argv = NULL, **envp = NULL;
  if (len < 12) {
    /* Not even an ID to answer to: the server's client never sends this. */
    fprintf(stderr, "ferry-spawner: malformed request of %u bytes\n", len);
    exit(2);
  }
  uint32_t id = u32le((unsigned char *)payload);
  uint32_t argc = u32le((unsigned char *)payload + 4), envc = u32le((unsigned char *)payload + 8);
  char *cursor = payload + 12, *end = payload + len;
  /* Each field takes at least its 4-byte length: counts beyond that cannot be honest. */
  int ok = argc > 0 && argc <= len / 4 && envc <= len / 4;
  char *cwd = ok ? next_field(&cursor, end) : NULL;
  char *program = cwd ? next_field(&cursor, end) : NULL;
  ok = program != NULL;
  if (ok) {
    argv = calloc((size_t)argc + 1, sizeof *argv);
    envp = calloc((size_t)envc + 1, sizeof *envp);
    ok = argv && envp;
  }
  for (uint32_t i = 0; ok && i < argc; i++) ok = (argv[i] = next_field(&cursor, end)) != NULL;
  for (uint32_t i = 0; ok && i < envc; i++) ok = (envp[i] = next_field(&cursor, end)) != NULL;
  if (ok && cursor != end) ok = 0;
  if (!ok) {
    snprintf(line, sizeof line, "E %u %d\n", id, EINVAL);
    emit(line);
    goto out;
  }

  /* exec failures come back through a close-on-exec pipe: EOF means the exec succeeded. */
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    snprintf(line, sizeof line, "E %u %d\n", id, errno);
    emit(line);
    goto out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(line, sizeof line, "E %u %d\n", id, errno);
    emit(line);
    close(errpipe[0]);
    close(errpipe[1]);
    goto out;
  }
  if (pid == 0) {
    setsid();
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      if (devnull > 2) close(devnull);
    }
    signal(SIGPIPE, SIG_DFL);
    /* Until the supervisor blocks them itself, a SIGTERM, SIGINT or SIGHUP waits (pending). */
    sigprocmask(SIG_SETMASK, &stop_signals, NULL);
    int e = 0;
    if (chdir(cwd) != 0) e = errno;
    else {
      execve(program, argv, envp);
      e = errno;
    }
    ssize_t ignored = write(errpipe[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  close(errpipe[1]);
  int child_errno = 0;
  ssize_t n;
  do n = read(errpipe[0], &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == (ssize_t)sizeof child_errno) {
    /* It never became a supervisor: reap it here so no exit is reported for it. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    snprintf(line, sizeof line, "E %u %d\n", id, child_errno);
  } else {
    snprintf(line, sizeof line, "S %u %d\n", id, (int)pid);
  }
  emit(line);
out:
  free(argv);
  free(envp);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  /* Blocked, never read: no effect here, and a child inherits them blocked, not ignored. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigset_t chld, blocked;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  blocked = stop_signals;
  sigaddset(&blocked, SIGCHLD);
  sigprocmask(SIG_BLOCK, &blocked, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    perror("ferry-spawner: signalfd");
    return 1;
  }

  size_t cap = 1 << 16, allocated = cap, used = 0;
  char *buf = malloc(cap);
  if (!buf) return 1;
  for (;;) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("ferry-spawner: poll");
      return 1;
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(sfd, &info, sizeof info) > 0) {
      }
      reap();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (used == cap) {
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (!grown) return 1;
        buf = grown;
        allocated = cap;
      }
      ssize_t n = read(0, buf + used, cap - used);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) break; /* the server closed the pipe or died */
      used += (size_t)n;
      size_t at = 0;
      while (used - at >= 4) {
        uint32_t len;
        unsigned char *p = (unsigned char *)buf + at;
        len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (len > MAX_FRAME) {
          fprintf(stderr, "ferry-spawner: request of %u bytes refused\n", len);
          return 2;
        }
        if (used - at - 4 < len) {
          while (cap < len + 4) cap *= 2;
          break;
        }
        spawn_one(buf + at + 4, len);
        at += 4 + len;
      }
      memmove(buf, buf + at, used - at);
      used -= at;
      if (cap != allocated) {
        char *grown = realloc(buf, cap);
        if (!grown) return 1;
        buf = grown;
        allocated = cap;
      }
    }
  }
  /* Report what already ended; the supervisors still running go on without us. */
  reap();
  return 0;
}
