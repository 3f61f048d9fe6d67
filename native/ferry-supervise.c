/*
 * ferry-supervise: the small per-step supervisor of Ferry's process substrate.
 *
 * The runner spawns one of these, detached (own session), for every step of every attempt. It
 * starts the job (after joining the job's cgroups, so the declared peak is enforced from the first
 * instruction), copies the job's stdout and stderr into the attempt log within a size bound,
 * enforces the step's deadline, and records how the job ended in STEPDIR/result. It outlives the
 * runner: a runner that is stopped or killed re-attaches by reading STEPDIR/pid and STEPDIR/result.
 *
 * usage: ferry-supervise -d STEPDIR -l LOGFILE [-L LOG_LIMIT] [-t TIMEOUT_MS] [-o OOM_EVENTS_FILE]
 *                        [-j CGROUP_PROCS_FILE]... [-w SCRATCH]
 *                        [-i -u UID -g GID -D TENANT_DATA] -- PROGRAM [ARG]...
 *        ferry-supervise -P DIR      probe: can this host confine a job? exit 0, or say why not
 *
 * Confined (-i, Ferry runs as root): the job runs as UID:GID (no supplementary groups, no new
 * privileges) in new mount, PID, IPC and UTS namespaces, on a new root (a tmpfs over STEPDIR, in
 * the job's own mount namespace) holding the system's folders read-only (/usr, /etc, /opt, /bin,
 * /sbin, /lib*), TENANT_DATA and SCRATCH read-write at their own absolute paths, a private /tmp, a
 * fresh /proc, a minimal /dev, and nothing else: no /sys (the cgroup tree), no Ferry data, no other
 * tenant, no /root, /home, /run or /var. PID 1 of the namespace is a tiny init (this program, forked):
 * it joins the cgroups, builds the view, forks the job, reaps orphans, turns a cancel into SIGTERM
 * to every process of the namespace, and reports the job's raw wait status up a pipe when the job
 * ends; then it exits, and the kernel kills whatever the job left behind (a `setsid` child too).
 * Without -i the job runs as the supervisor's user in the supervisor's view (said by Ferry).
 *
 * The job's environment is the supervisor's own: whoever starts it passes only the job's variables.
 *
 * STEPDIR/pid     "<supervisor pid> <its start time> <job pid> <its start time>\n", written once
 *                 the job runs (start times are /proc/PID/stat field 22, to detect pid reuse). When
 *                 confined, the "job" is the namespace's init (command line "ferry-init"): SIGKILL to
 *                 it ends every process of the job. It leads its own process group either way.
 * STEPDIR/result  {"exitCode":N|null,"signal":"NAME"|null,"cause":"..."|null}, written atomically.
 * SIGUSR1 to the supervisor cancels the job: SIGTERM to all of it, SIGKILL 10 s later.
 * SIGTERM, SIGINT and SIGHUP have no effect: a service manager stopping Ferry (systemd with
 * KillMode=control-group, docker stop) signals every process of the unit, and stopping the server
 * must never stop a migration. The job itself gets the default dispositions back before exec.
 *
 * Log bound (-L, default 64 MiB): the first LOG_LIMIT/2 bytes go to the log as they come; after
 * that only the last LOG_LIMIT/2 bytes are kept (in memory) and written when the job ends, after a
 * line saying how many bytes were dropped. `::ferry::` lines past the head still reach the log as
 * they come (the runner follows checkpoints and progress through the log), each cut to 4 KiB; past
 * 1 MiB of them only the latest checkpoint and progress lines are kept, written before the tail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_CGROUPS 8
#define CANCEL_GRACE_MS 10000
#define DEFAULT_LOG_LIMIT (64ull << 20)
#define MARKER "::ferry::"
#define MARKER_LEN 9
#define MARKER_LINE_MAX 4096
#define MARKER_BUDGET (1ull << 20)
/* After the job ended, how long a confined job's output pipe may stay silent before we stop reading it. */
#define DRAIN_SILENCE_MS 2000

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

struct ferry_mount_attr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static void die(const char *what) {
  fprintf(stderr, "ferry-supervise: %s: %s\n", what, strerror(errno));
  exit(111);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Set when the attempt log refused bytes (a full disk, a quota, an I/O error): the job is then
 * stopped, since a log that silently lost its output would lie about what ran.
 */
static int log_write_failed = 0;

static void write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    /* A full disk loses log bytes, never the job's result (its record is allocated up front). */
    if (n <= 0) {
      log_write_failed = 1;
      return;
    }
    p += n;
    len -= (size_t)n;
  }
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

/* ------------------------------------------------------------------------------------------ */
/* The log bound.                                                                              */

struct log_sink {
  int fd;
  unsigned long long head_left; /* bytes still written as they come */
  unsigned long long total;     /* bytes the job wrote */
  unsigned long long written;   /* bytes of the job's output that reached the log */
  /* Past the head: a ring of the last bytes, without the ::ferry:: lines (written as they come). */
  char *ring;
  size_t ring_cap, ring_len, ring_start;
  int ring_overflowed, ring_failed;
  /* 0: at a line start (matching the marker), 1: inside a plain line, 2: inside a ::ferry:: line */
  int state;
  size_t prefix_len;
  char marker[MARKER_LINE_MAX];
  size_t marker_len;
  unsigned long long marker_bytes;
  char *last_checkpoint, *last_progress;
};

static void ring_push(struct log_sink *s, const char *p, size_t n) {
  if (n == 0) return;
  if (!s->ring && !s->ring_failed && s->ring_cap > 0) {
    s->ring = malloc(s->ring_cap);
    if (!s->ring) s->ring_failed = 1;
  }
  if (!s->ring) {
    s->ring_overflowed = 1;
    return;
  }
  if (n >= s->ring_cap) {
    p += n - s->ring_cap;
    memcpy(s->ring, p, s->ring_cap);
    s->ring_start = 0;
    s->ring_len = s->ring_cap;
    s->ring_overflowed = 1;
    return;
  }
  size_t end = (s->ring_start + s->ring_len) % s->ring_cap;
  size_t first = s->ring_cap - end < n ? s->ring_cap - end : n;
  memcpy(s->ring + end, p, first);
  memcpy(s->ring, p + first, n - first);
  if (s->ring_len + n > s->ring_cap) {
    size_t over = s->ring_len + n - s->ring_cap;
    s->ring_start = (s->ring_start + over) % s->ring_cap;
    s->ring_len = s->ring_cap;
    s->ring_overflowed = 1;
  } else {
    s->ring_len += n;
  }
}

static void keep_latest(char **slot, const char *line, size_t len) {
  char *copy = malloc(len + 1);
  if (!copy) return;
  memcpy(copy, line, len);
  copy[len] = 0;
  free(*slot);
  *slot = copy;
}

/* A complete ::ferry:: line (with its newline) past the head. */
static void marker_done(struct log_sink *s) {
  s->marker[s->marker_len++] = '\n';
  if (s->marker_bytes + s->marker_len <= MARKER_BUDGET) {
    write_all(s->fd, s->marker, s->marker_len);
    s->marker_bytes += s->marker_len;
    s->written += s->marker_len;
  } else if (strncmp(s->marker, MARKER "checkpoint", MARKER_LEN + 10) == 0) {
    keep_latest(&s->last_checkpoint, s->marker, s->marker_len);
  } else if (strncmp(s->marker, MARKER "progress", MARKER_LEN + 8) == 0) {
    keep_latest(&s->last_progress, s->marker, s->marker_len);
  }
  s->marker_len = 0;
}

static void sink_middle(struct log_sink *s, const char *p, size_t n) {
  while (n > 0) {
    if (s->state == 0) {
      while (n > 0 && s->prefix_len < MARKER_LEN && *p == MARKER[s->prefix_len]) {
        s->prefix_len++;
        p++;
        n--;
      }
      if (s->prefix_len == MARKER_LEN) {
        memcpy(s->marker, MARKER, MARKER_LEN);
        s->marker_len = MARKER_LEN;
        s->prefix_len = 0;
        s->state = 2;
      } else if (n > 0) {
        /* Not a marker line: what matched so far is plain output; the byte at p is looked at again. */
        ring_push(s, MARKER, s->prefix_len);
        s->prefix_len = 0;
        s->state = 1;
      }
      continue;
    }
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) + 1 : n;
    if (s->state == 1) {
      ring_push(s, p, len);
    } else {
      size_t body = nl ? len - 1 : len;
      size_t room = MARKER_LINE_MAX - 1 - s->marker_len;
      size_t take = body < room ? body : room;
      memcpy(s->marker + s->marker_len, p, take);
      s->marker_len += take;
    }
    if (nl) {
      if (s->state == 2) marker_done(s);
      s->state = 0;
    }
    p += len;
    n -= len;
  }
}

static void sink_write(struct log_sink *s, const char *p, size_t n) {
  s->total += n;
  if (s->head_left > 0) {
    size_t take = n < s->head_left ? n : (size_t)s->head_left;
    write_all(s->fd, p, take);
    s->written += take;
    s->head_left -= take;
    p += take;
    n -= take;
    if (s->head_left == 0) {
      /* The head ends mid-line: end that line in the log, so what follows starts a line of its own. */
      if (take > 0 && p[-1] != '\n') {
        write_all(s->fd, "\n", 1);
        s->state = 1;
      }
    }
  }
  if (n > 0) sink_middle(s, p, n);
}

static void sink_finish(struct log_sink *s, unsigned long long limit) {
  if (s->state == 2) marker_done(s);
  else if (s->state == 0 && s->prefix_len > 0) ring_push(s, MARKER, s->prefix_len);
  size_t skip = 0;
  if (s->ring && s->ring_overflowed) {
    /* The oldest kept bytes start mid-line: the tail starts at its first full line. */
    for (size_t i = 0; i < s->ring_len; i++) {
      if (s->ring[(s->ring_start + i) % s->ring_cap] == '\n') {
        skip = i + 1;
        break;
      }
    }
  }
  size_t tail = s->ring ? s->ring_len - skip : 0;
  size_t kept = (s->last_checkpoint ? strlen(s->last_checkpoint) : 0) + (s->last_progress ? strlen(s->last_progress) : 0);
  /* A last line without its newline gets one: never count that byte as a negative drop. */
  unsigned long long shown = s->written + tail + kept;
  unsigned long long dropped = s->total > shown ? s->total - shown : 0;
  if (dropped > 0) {
    char note[512];
    int len = snprintf(note, sizeof note,
                       "── ferry: %llu bytes of this step's output were dropped here (log limit %llu bytes per step: the first "
                       "and the last %llu are kept; ::ferry:: lines from the middle are above) ──\n",
                       dropped, limit, limit / 2);
    write_all(s->fd, note, (size_t)len);
  }
  if (s->last_checkpoint) write_all(s->fd, s->last_checkpoint, strlen(s->last_checkpoint));
  if (s->last_progress) write_all(s->fd, s->last_progress, strlen(s->last_progress));
  if (tail > 0) {
    size_t from = (s->ring_start + skip) % s->ring_cap;
    size_t first = s->ring_cap - from < tail ? s->ring_cap - from : tail;
    write_all(s->fd, s->ring + from, first);
    write_all(s->fd, s->ring, tail - first);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The confined view.                                                                          */

struct view {
  const char *base; /* a folder to mount the new root over (the step folder), in our own mount namespace */
  const char *data, *scratch;
};

static int say(int fd, const char *what, const char *path) {
  dprintf(fd, "ferry: cannot confine the job: %s %s: %s; the step does not run unconfined\n", what, path ? path : "", strerror(errno));
  return -1;
}

static int mkdirs(const char *path, mode_t mode) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

/* Read-only, recursively (submounts such as /etc/resolv.conf too), without devices or setuid. */
static int bind_readonly(int err, const char *src, const char *dst) {
  if (mkdirs(dst, 0755) != 0) return say(err, "mkdir", dst);
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return say(err, "bind", src);
#ifdef SYS_mount_setattr
  struct ferry_mount_attr attr = {MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0};
  if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof attr) == 0) return 0;
  if (errno != ENOSYS) return say(err, "make read-only", dst);
#endif
  /* Older kernels: a read-only remount covers one mount only, so leave the submounts out. */
  if (umount2(dst, MNT_DETACH) != 0) return say(err, "unmount", dst);
  if (mount(src, dst, NULL, MS_BIND, NULL) != 0) return say(err, "bind", src);
  if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) return say(err, "make read-only", dst);
  return 0;
}

static int bind_writable(int err, const char *src, const char *dst) {
  if (mkdirs(dst, 0755) != 0) return say(err, "mkdir", dst);
  if (mount(src, dst, NULL, MS_BIND, NULL) != 0) return say(err, "bind", src);
  if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV, NULL) != 0) return say(err, "remount", dst);
  return 0;
}

/* A system folder: bound read-only when it is a folder, recreated when it is a symlink (merged /usr). */
static int system_folder(int err, const char *root, const char *name) {
  char src[64], dst[4096];
  snprintf(src, sizeof src, "/%s", name);
  snprintf(dst, sizeof dst, "%s/%s", root, name);
  struct stat st;
  if (lstat(src, &st) != 0) return 0;
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(src, target, sizeof target - 1);
    if (n < 0) return say(err, "readlink", src);
    target[n] = 0;
    if (symlink(target, dst) != 0) return say(err, "symlink", dst);
    return 0;
  }
  if (!S_ISDIR(st.st_mode)) return 0;
  return bind_readonly(err, src, dst);
}

static int device(int err, const char *root, const char *name) {
  char src[64], dst[4096];
  snprintf(src, sizeof src, "/dev/%s", name);
  snprintf(dst, sizeof dst, "%s/dev/%s", root, name);
  if (access(src, F_OK) != 0) return 0;
  if (touch(dst) != 0) return say(err, "create", dst);
  if (mount(src, dst, NULL, MS_BIND, NULL) != 0) return say(err, "bind", src);
  return 0;
}

/* Longer paths after shorter ones, so a folder inside the other is mounted over it, not under it. */
static int bind_own_folders(int err, const char *root, const struct view *v) {
  const char *first = v->data, *second = v->scratch;
  if (first && second && strlen(first) > strlen(second)) {
    first = v->scratch;
    second = v->data;
  }
  const char *folders[2] = {first, second};
  for (int i = 0; i < 2; i++) {
    if (!folders[i]) continue;
    char dst[4096];
    snprintf(dst, sizeof dst, "%s%s", root, folders[i]);
    if (bind_writable(err, folders[i], dst) != 0) return -1;
  }
  return 0;
}

/* Builds the job's root and moves into it. Runs as PID 1 of the new PID namespace, in a new mount namespace. */
static int build_view(int err, const struct view *v) {
  const char *root = v->base;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return say(err, "make private", "/");
  if (mount("ferry-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) return say(err, "mount tmpfs on", root);
  static const char *const system[] = {"usr", "etc", "opt", "bin", "sbin", "lib", "lib64", "lib32", "libx32"};
  for (size_t i = 0; i < sizeof system / sizeof *system; i++)
    if (system_folder(err, root, system[i]) != 0) return -1;

  char path[4096];
  snprintf(path, sizeof path, "%s/tmp", root);
  if (mkdir(path, 01777) != 0) return say(err, "mkdir", path);
  if (mount("ferry-tmp", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) return say(err, "mount tmpfs on", path);

  snprintf(path, sizeof path, "%s/proc", root);
  if (mkdir(path, 0555) != 0) return say(err, "mkdir", path);
  if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return say(err, "mount proc on", path);

  snprintf(path, sizeof path, "%s/dev", root);
  if (mkdir(path, 0755) != 0) return say(err, "mkdir", path);
  if (mount("ferry-dev", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") != 0) return say(err, "mount tmpfs on", path);
  static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
    if (device(err, root, devices[i]) != 0) return -1;
  snprintf(path, sizeof path, "%s/dev/shm", root);
  if (mkdir(path, 01777) != 0) return say(err, "mkdir", path);
  if (mount("ferry-shm", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) return say(err, "mount tmpfs on", path);
  static const char *const links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    snprintf(path, sizeof path, "%s/dev/%s", root, links[i][0]);
    if (symlink(links[i][1], path) != 0) return say(err, "symlink", path);
  }

  /* After /tmp: a data or scratch folder below /tmp on the host keeps its path inside. */
  if (bind_own_folders(err, root, v) != 0) return -1;

  if (chdir(root) != 0) return say(err, "enter", root);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return say(err, "pivot_root to", root);
  /* The old root now sits on top of the new one: detach it, and the host's tree is out of reach. */
  if (umount2(".", MNT_DETACH) != 0) return say(err, "detach the old root", NULL);
  if (chdir("/") != 0) return say(err, "enter", "/");
  if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) return say(err, "make read-only", "/");
  return 0;
}

static int join_cgroups(int err, const char *const *cgroups, int ncg) {
  for (int i = 0; i < ncg; i++) {
    /* "0" is the writer itself, whatever PID namespace it is in. */
    int fd = open(cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) < 0) {
      dprintf(err, "ferry: cannot join cgroup %s (%s); the step does not run without its limits\n", cgroups[i], strerror(errno));
      return -1;
    }
    close(fd);
  }
  return 0;
}

static int drop_identity(int err, uid_t uid, gid_t gid) {
  if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
    dprintf(err, "ferry: cannot switch to uid %u gid %u: %s; the step does not run as root\n", (unsigned)uid, (unsigned)gid, strerror(errno));
    return -1;
  }
  if (setuid(0) == 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    dprintf(err, "ferry: the job kept privileges after switching to uid %u; the step does not run\n", (unsigned)uid);
    return -1;
  }
  return 0;
}

/* In the job's process, just before exec: everything it inherits from us set back. */
static void exec_job(char **job_argv, int outfd, const char *cwd) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(outfd, 1);
  dup2(outfd, 2);
  if (cwd && chdir(cwd) != 0) {
    dprintf(2, "ferry: cannot enter %s: %s\n", cwd, strerror(errno));
    _exit(126);
  }
  /* Dispositions and masks survive exec: the job starts with the defaults. */
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* execvp looks the program up in environ's PATH, which is the job's own environment. */
  execvp(job_argv[0], job_argv);
  dprintf(2, "ferry: cannot run %s: %s\n", job_argv[0], strerror(errno));
  _exit(127);
}

static void ignore_signal(int sig) {
  (void)sig;
}

/*
 * PID 1 of the job's namespace. Never returns. Its own exit status tells the supervisor only that
 * the job never ran (126): the job's status goes up statusfd.
 */
static void run_init(int outfd, int statusfd, const struct view *v, const char *const *cgroups, int ncg, uid_t uid, gid_t gid,
                     char **job_argv, char *args_start, size_t args_size) {
  setpgid(0, 0);
  /* The supervisor gone (kill -9) means nobody records this job: it must not run on unwatched. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (join_cgroups(outfd, cgroups, ncg) != 0) _exit(126);
  /* Its own cgroup tree root, so even /proc/self/cgroup names nothing of the host's. */
  unshare(CLONE_NEWCGROUP);
  if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
    say(outfd, "new mount, IPC and UTS namespaces", NULL);
    _exit(126);
  }
  if (build_view(outfd, v) != 0) _exit(126);

  /*
   * Our command line is the supervisor's (paths of the log, the cgroups, the step): the job could
   * read it as /proc/1/cmdline, and a process scan must not count us as a second supervisor. It is
   * renamed before the job is forked, so no one ever sees both; the job's command and working
   * folder point into those bytes, so it gets copies first.
   */
  int n = 0;
  while (job_argv[n]) n++;
  char **argv_copy = calloc((size_t)n + 1, sizeof *argv_copy);
  for (int i = 0; argv_copy && i < n; i++)
    if (!(argv_copy[i] = strdup(job_argv[i]))) argv_copy = NULL;
  char *cwd_copy = v->scratch ? strdup(v->scratch) : NULL;
  if (!argv_copy || (v->scratch && !cwd_copy)) {
    say(outfd, "copy the job's command", NULL);
    _exit(126);
  }
  memset(args_start, 0, args_size);
  snprintf(args_start, args_size, "ferry-init");
  prctl(PR_SET_NAME, "ferry-init", 0, 0, 0);

  pid_t job = fork();
  if (job < 0) {
    say(outfd, "fork the job", NULL);
    _exit(126);
  }
  if (job == 0) {
    close(statusfd);
    setsid();
    if (drop_identity(outfd, uid, gid) != 0) _exit(126);
    exec_job(argv_copy, outfd, cwd_copy);
  }
  close(outfd);

  /*
   * SIGTERM from the supervisor (cancel) is waited for, not handled: blocked signals still reach
   * a namespace's init from outside, and a handler is set anyway so it is never ignored as PID 1.
   */
  signal(SIGTERM, ignore_signal);
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  sigaddset(&wanted, SIGTERM);
  sigprocmask(SIG_BLOCK, &wanted, NULL);
  for (;;) {
    int sig = sigwaitinfo(&wanted, NULL);
    if (sig == SIGTERM) {
      kill(-1, SIGTERM); /* every process of this namespace but us */
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != job) continue; /* an orphan of the job, reparented to us */
      write_all(statusfd, &status, sizeof status);
      /* Our exit makes the kernel SIGKILL everything the job left in the namespace. */
      _exit(0);
    }
  }
}

/* -P DIR: everything confinement needs, with nothing to run. */
static int probe(const char *dir) {
  if (unshare(CLONE_NEWPID) != 0) {
    printf("new PID namespace: %s\n", strerror(errno));
    return 1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(p[0]);
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
      say(p[1], "new mount, IPC and UTS namespaces", NULL);
      _exit(1);
    }
    struct view v = {dir, NULL, NULL};
    if (build_view(p[1], &v) != 0) _exit(1);
    if (drop_identity(p[1], 65534, 65534) != 0) _exit(1);
    if (access("/sys", F_OK) == 0) {
      dprintf(p[1], "ferry: the job's view still shows /sys\n");
      _exit(1);
    }
    _exit(0);
  }
  close(p[1]);
  char buf[1024];
  ssize_t n, used = 0;
  while ((n = read(p[0], buf + used, sizeof buf - 1 - (size_t)used)) > 0) used += n;
  buf[used] = 0;
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  printf("%s", used > 0 ? buf : "the probe failed without saying why\n");
  return 1;
}

static void read_output(int fd, struct log_sink *sink, int *open_fd) {
  static char buf[1 << 16];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) sink_write(sink, buf, (size_t)n);
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) *open_fd = 0;
}

int main(int argc, char **argv) {
  const char *stepdir = NULL, *logfile = NULL, *oomfile = NULL, *cwd = NULL, *data = NULL, *probe_dir = NULL;
  const char *cgroups[MAX_CGROUPS];
  int ncg = 0, confined = 0;
  long long timeout_ms = 0;
  unsigned long long log_limit = DEFAULT_LOG_LIMIT;
  long long uid = -1, gid = -1;
  int opt;
  while ((opt = getopt(argc, argv, "+d:l:L:t:o:j:w:iu:g:D:P:")) != -1) {
    switch (opt) {
      case 'd': stepdir = optarg; break;
      case 'l': logfile = optarg; break;
      case 'L': log_limit = strtoull(optarg, NULL, 10); break;
      case 't': timeout_ms = strtoll(optarg, NULL, 10); break;
      case 'o': oomfile = optarg; break;
      case 'j':
        if (ncg == MAX_CGROUPS) {
          fprintf(stderr, "ferry-supervise: more than %d cgroups\n", MAX_CGROUPS);
          return 2;
        }
        cgroups[ncg++] = optarg;
        break;
      case 'w': cwd = optarg; break;
      case 'i': confined = 1; break;
      case 'u': uid = strtoll(optarg, NULL, 10); break;
      case 'g': gid = strtoll(optarg, NULL, 10); break;
      case 'D': data = optarg; break;
      case 'P': probe_dir = optarg; break;
      default: fprintf(stderr, "ferry-supervise: bad usage\n"); return 2;
    }
  }
  if (probe_dir) return probe(probe_dir);
  if (!stepdir || !logfile || optind >= argc || log_limit < 2) {
    fprintf(stderr, "usage: ferry-supervise -d STEPDIR -l LOGFILE [-L BYTES] [-t MS] [-o FILE] [-j FILE]... [-w DIR] "
                    "[-i -u UID -g GID -D DIR] -- PROGRAM [ARG]...\n");
    return 2;
  }
  if (confined && (uid <= 0 || gid <= 0 || uid > 0xfffffffe || gid > 0xfffffffe || !data || !cwd || data[0] != '/' || cwd[0] != '/' ||
                   stepdir[0] != '/')) {
    fprintf(stderr, "ferry-supervise: a confined job needs a uid and gid other than root, and absolute -D, -w and -d folders\n");
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
  sigset_t watched, blocked;
  sigemptyset(&watched);
  sigaddset(&watched, SIGCHLD);
  sigaddset(&watched, SIGUSR1);
  blocked = watched;
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGHUP);
  sigprocmask(SIG_BLOCK, &blocked, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");

  int logfd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (logfd < 0) die(logfile);
  int pidfd = prepare_record(stepdir, "pid");
  if (pidfd < 0) die("pid record");
  int resultfd = prepare_record(stepdir, "result");
  if (resultfd < 0) die("result record");

  /* The job writes into a pipe we read, so its output is bounded before it reaches the disk. */
  int out[2], st[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) die("pipe");
  if (confined) {
    if (pipe2(st, O_CLOEXEC) != 0) die("pipe");
    /* Our next child is PID 1 of a new PID namespace; we stay in ours. */
    if (unshare(CLONE_NEWPID) != 0) die("new PID namespace");
  }

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(out[0]);
    close(sfd);
    close(logfd);
    close(pidfd);
    close(resultfd);
    if (confined) {
      /* O_CLOEXEC closes our descriptors at the job's exec, but the init runs on without one: closed above. */
      close(st[0]);
      struct view v = {stepdir, data, cwd};
      char *args_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
      run_init(out[1], st[1], &v, cgroups, ncg, (uid_t)uid, (gid_t)gid, job_argv, argv[0], (size_t)(args_end - argv[0]));
    }
    setpgid(0, 0);
    if (join_cgroups(out[1], cgroups, ncg) != 0) _exit(126);
    exec_job(job_argv, out[1], cwd);
  }
  setpgid(child, child); /* both sides set it, so the group exists before either goes on */
  close(out[1]);
  if (confined) close(st[1]);

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

  struct log_sink sink = {.fd = logfd, .head_left = log_limit / 2, .ring_cap = (size_t)(log_limit - log_limit / 2)};
  long long started = now_ms();
  long long deadline = timeout_ms > 0 ? started + timeout_ms : 0;
  long long kill_at = 0;
  int cancelled = 0, timed_out = 0, status = 0, output_open = 1, log_stopped = 0;

  for (;;) {
    long long wake = 0;
    if (deadline && !timed_out) wake = deadline;
    if (kill_at && (!wake || kill_at < wake)) wake = kill_at;
    int timeout = -1;
    if (wake) {
      long long left = wake - now_ms();
      timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = output_open ? out[0] : -1, .events = POLLIN}};
    if (poll(fds, 2, timeout) < 0 && errno != EINTR) die("poll");
    long long t = now_ms();
    if (deadline && !timed_out && t >= deadline) {
      timed_out = 1;
      kill(-child, SIGKILL);
    }
    if (kill_at && t >= kill_at) {
      kill(-child, SIGKILL);
      kill_at = 0;
    }
    if (fds[1].revents) read_output(out[0], &sink, &output_open);
    if (log_write_failed && !log_stopped) {
      /* Confined, SIGKILL to the init ends the whole namespace; the result then reads "killed by SIGKILL". */
      log_stopped = 1;
      dprintf(2, "ferry-supervise: the attempt log refused output (%s); stopping the job\n", strerror(errno));
      kill(confined ? child : -child, SIGKILL);
    }
    if (!(fds[0].revents & POLLIN)) continue;
    struct signalfd_siginfo info;
    int exited = 0;
    while (read(sfd, &info, sizeof info) == (ssize_t)sizeof info) {
      if (info.ssi_signo == SIGUSR1 && !cancelled) {
        cancelled = 1;
        /* Confined, the init turns this into SIGTERM to every process of the job's namespace. */
        kill(confined ? child : -child, SIGTERM);
        kill_at = now_ms() + CANCEL_GRACE_MS;
      }
    }
    if (waitpid(child, &status, WNOHANG) == child) exited = 1;
    if (exited) break;
  }

  int job_status = status;
  if (confined) {
    /* The init's own status counts only when it could not report the job's (killed, or the job never ran). */
    int reported;
    ssize_t n;
    do n = read(st[0], &reported, sizeof reported);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof reported) job_status = reported;
  } else {
    /* The step is over: nothing it started may outlive it (a setsid child escapes this; confined, none can). */
    kill(-child, SIGKILL);
  }

  /*
   * What the job wrote before it ended. Confined, every process that held the pipe is gone once
   * the init is reaped, so it ends at once; unconfined, a child that left the group may still hold
   * it: read what is there and stop.
   */
  if (output_open) {
    if (confined) {
      for (;;) {
        struct pollfd fd = {.fd = out[0], .events = POLLIN};
        if (poll(&fd, 1, DRAIN_SILENCE_MS) <= 0) break;
        read_output(out[0], &sink, &output_open);
        if (!output_open) break;
      }
    } else {
      int avail = 0;
      if (ioctl(out[0], FIONREAD, &avail) == 0) {
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        while (avail > 0 && output_open) {
          static char buf[1 << 16];
          ssize_t n = read(out[0], buf, (size_t)avail < sizeof buf ? (size_t)avail : sizeof buf);
          if (n <= 0) break;
          sink_write(&sink, buf, (size_t)n);
          avail -= (int)n;
        }
      }
    }
  }
  sink_finish(&sink, log_limit);
  close(logfd);

  long kills = oom_kills(oomfile);
  const char *cause = "null";
  if (cancelled) cause = "\"cancelled\"";
  else if (timed_out) cause = "\"deadline\"";
  else if (kills > 0) cause = "\"limit-exceeded\"";
  else if (!WIFEXITED(job_status) || WEXITSTATUS(job_status) != 0) cause = "\"exit-code\"";

  char result[256];
  if (WIFEXITED(job_status))
    snprintf(result, sizeof result, "{\"exitCode\":%d,\"signal\":null,\"cause\":%s}\n", WEXITSTATUS(job_status), cause);
  else
    snprintf(result, sizeof result, "{\"exitCode\":null,\"signal\":\"SIG%s\",\"cause\":%s}\n",
             sigabbrev_np(WTERMSIG(job_status)) ? sigabbrev_np(WTERMSIG(job_status)) : "UNKNOWN", cause);
  if (commit_record(resultfd, stepdir, "result", result) != 0) die("result");
  return 0;
}
