/*
 * ferry-supervise: the small per-step supervisor of Ferry's process substrate.
 *
 * The runner spawns one of these, detached (own session), for every step of every attempt. It
 * forks the job into its own process group (after joining the job's cgroups, so the declared peak
 * is enforced from the first instruction), sends the job's stdout and stderr to the attempt log,
 * enforces the step's deadline, and records how the job ended in STEPDIR/result. It outlives the
 * runner: a runner that is stopped or killed re-attaches by reading STEPDIR/pid and STEPDIR/result.
 *
 * usage: ferry-supervise -d STEPDIR -l LOGFILE [-t TIMEOUT_MS] [-o OOM_EVENTS_FILE]
 *                        [-j CGROUP_PROCS_FILE]... [-w CWD] -- PROGRAM [ARG]...
 *
 * STEPDIR/pid     "<supervisor pid> <its start time> <job pid> <its start time>\n", written once
 *                 the job runs (start times are /proc/PID/stat field 22, to detect pid reuse).
 * STEPDIR/result  {"exitCode":N|null,"signal":"NAME"|null,"cause":"..."|null}, written atomically.
 * SIGUSR1 to the supervisor cancels the job: SIGTERM to its group, SIGKILL 10 s later.
 * SIGTERM, SIGINT and SIGHUP have no effect: a service manager stopping Ferry (systemd with
 * KillMode=control-group, docker stop) signals every process of the unit, and stopping the server
 * must never stop a migration. The job itself gets the default dispositions back before exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CGROUPS 8
#define CANCEL_GRACE_MS 10000

static void die(const char *what) {
  fprintf(stderr, "ferry-supervise: %s: %s\n", what, strerror(errno));
  exit(111);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned long long start_time(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  /* The command name may hold spaces and parentheses: fields start after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  int field = 2;
  for (; *p && field < 22; p++)
    if (*p == ' ') field++;
  return strtoull(p, NULL, 10);
}

/*
 * STEPDIR/pid and STEPDIR/result are written atomically (temporary file, fsync, rename), and their
 * temporary files are allocated before the job starts: a job that fills the disk must not keep its
 * supervisor from recording how it ended. Overwriting allocated bytes and shrinking need no space.
 */
#define RECORD_SIZE 512

static int prepare_record(const char *dir, const char *name) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return -1;
  char pad[RECORD_SIZE];
  memset(pad, ' ', sizeof pad);
  /* write() reserves the space (ext4 delayed allocation reserves too); no fsync needed for that. */
  if (write(fd, pad, sizeof pad) != (ssize_t)sizeof pad) {
    close(fd);
    unlink(tmp);
    return -1;
  }
  return fd;
}

static int commit_record(int fd, const char *dir, const char *name, const char *content) {
  char tmp[4096], final[4096];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  snprintf(final, sizeof final, "%s/%s", dir, name);
  size_t len = strlen(content);
  if (pwrite(fd, content, len, 0) != (ssize_t)len || ftruncate(fd, (off_t)len) != 0 || fsync(fd) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  if (rename(tmp, final) != 0) return -1;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
}

/* "oom_kill N" in cgroup v2 memory.events and in cgroup v1 memory.oom_control. */
static long oom_kills(const char *file) {
  if (!file) return 0;
  char buf[4096];
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (strncmp(line, "oom_kill ", 9) == 0) return strtol(line + 9, NULL, 10);
  return 0;
}

int main(int argc, char **argv) {
  const char *stepdir = NULL, *logfile = NULL, *oomfile = NULL, *cwd = NULL;
  const char *cgroups[MAX_CGROUPS];
  int ncg = 0;
  long long timeout_ms = 0;
  int opt;
  while ((opt = getopt(argc, argv, "+d:l:t:o:j:w:")) != -1) {
    switch (opt) {
      case 'd': stepdir = optarg; break;
      case 'l': logfile = optarg; break;
      case 't': timeout_ms = strtoll(optarg, NULL, 10); break;
      case 'o': oomfile = optarg; break;
      case 'j': if (ncg < MAX_CGROUPS) cgroups[ncg++] = optarg; break;
      case 'w': cwd = optarg; break;
      default: fprintf(stderr, "ferry-supervise: bad usage\n"); return 2;
    }
  }
  if (!stepdir || !logfile || optind >= argc) {
    fprintf(stderr, "usage: ferry-supervise -d STEPDIR -l LOGFILE [-t MS] [-o FILE] [-j FILE]... [-w DIR] -- PROGRAM [ARG]...\n");
    return 2;
  }
  char **job_argv = argv + optind;

  if (getsid(0) != getpid()) setsid();

  /*
   * SIGTERM, SIGINT and SIGHUP are blocked and never waited for, rather than ignored: an ignored
   * disposition would be inherited by the job until it resets it, and a cancel's SIGTERM to the
   * group in that window would be lost. A blocked one stays pending and kills the job once its
   * mask is cleared.
   */
  sigset_t watched, blocked, none;
  sigemptyset(&watched);
  sigemptyset(&none);
  sigaddset(&watched, SIGCHLD);
  sigaddset(&watched, SIGUSR1);
  blocked = watched;
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGHUP);
  sigprocmask(SIG_BLOCK, &blocked, NULL);

  int logfd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (logfd < 0) die(logfile);
  int pidfd = prepare_record(stepdir, "pid");
  if (pidfd < 0) die("pid record");
  int resultfd = prepare_record(stepdir, "result");
  if (resultfd < 0) die("result record");

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    setpgid(0, 0);
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
    for (int i = 0; i < ncg; i++) {
      int fd = open(cgroups[i], O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, pidtext, strlen(pidtext)) < 0) {
        dprintf(logfd, "ferry: cannot join cgroup %s (%s); the step does not run without its limits\n", cgroups[i], strerror(errno));
        _exit(126);
      }
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    if (cwd && chdir(cwd) != 0) {
      dprintf(2, "ferry: cannot enter %s: %s\n", cwd, strerror(errno));
      _exit(126);
    }
    /* Dispositions and masks survive exec: the job starts with the defaults. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(job_argv[0], job_argv);
    dprintf(2, "ferry: cannot run %s: %s\n", job_argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(child, child); /* both sides set it, so the group exists before either goes on */
  close(logfd);

  char pidline[128];
  snprintf(pidline, sizeof pidline, "%d %llu %d %llu\n", (int)getpid(), start_time(getpid()), (int)child, start_time(child));
  if (commit_record(pidfd, stepdir, "pid", pidline) != 0) {
    /* Unfindable, so it must not run: stop the job before giving up. */
    int e = errno;
    kill(-child, SIGKILL);
    waitpid(child, NULL, 0);
    errno = e;
    die("pid");
  }

  long long started = now_ms();
  long long deadline = timeout_ms > 0 ? started + timeout_ms : 0;
  long long kill_at = 0;
  int cancelled = 0, timed_out = 0, status = 0;

  for (;;) {
    long long wake = 0;
    if (deadline && !timed_out) wake = deadline;
    if (kill_at && (!wake || kill_at < wake)) wake = kill_at;
    siginfo_t info;
    int sig;
    if (wake) {
      long long left = wake - now_ms();
      if (left < 0) left = 0;
      struct timespec ts = {left / 1000, (left % 1000) * 1000000};
      sig = sigtimedwait(&watched, &info, &ts);
    } else {
      sig = sigwaitinfo(&watched, &info);
    }
    if (sig < 0 && errno == EINTR) continue;
    if (sig < 0 && errno == EAGAIN) {
      long long t = now_ms();
      if (deadline && !timed_out && t >= deadline) {
        timed_out = 1;
        kill(-child, SIGKILL);
      }
      if (kill_at && t >= kill_at) {
        kill(-child, SIGKILL);
        kill_at = 0;
      }
      continue;
    }
    if (sig == SIGCHLD) {
      pid_t r = waitpid(child, &status, WNOHANG);
      if (r == child) break;
      continue;
    }
    if (!cancelled) {
      cancelled = 1;
      kill(-child, SIGTERM);
      kill_at = now_ms() + CANCEL_GRACE_MS;
    }
  }
  /* The step is over: nothing it started may outlive it. */
  kill(-child, SIGKILL);

  long kills = oom_kills(oomfile);
  const char *cause = "null";
  if (cancelled) cause = "\"cancelled\"";
  else if (timed_out) cause = "\"deadline\"";
  else if (kills > 0) cause = "\"limit-exceeded\"";
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) cause = "\"exit-code\"";

  char result[256];
  if (WIFEXITED(status))
    snprintf(result, sizeof result, "{\"exitCode\":%d,\"signal\":null,\"cause\":%s}\n", WEXITSTATUS(status), cause);
  else
    snprintf(result, sizeof result, "{\"exitCode\":null,\"signal\":\"SIG%s\",\"cause\":%s}\n", sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "UNKNOWN", cause);
  if (commit_record(resultfd, stepdir, "result", result) != 0) die("result");
  return 0;
}
