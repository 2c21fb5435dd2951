/*
 * A hostile worker for it_bad_input and it_hostile. It does not use the SDK:
 * it maps the segment's two files inherited at $RUNWAY_SEGMENT_FD (the
 * daemon's, read-only) and $RUNWAY_SEGMENT_WORKER_FD itself and plays a
 * correct (silent) worker until SIGUSR1, then misbehaves in the way argv[1]
 * names:
 *
 *   control    random bytes over its control block (positions, wake words, pid)
 *   out_write  publishes an output position far in the future
 *   in_read    publishes an input position ahead of what the daemon wrote
 *   rings      random bytes over its event and message ring positions
 *   nonfinite  keeps the positions valid but writes NaN, +Inf, -Inf and 0.25
 *              in turn into its output
 *   punch      punches holes in its output ring (fallocate, and MADV_REMOVE on
 *              a mapping of its own) every 2 ms, and tries the same on the
 *              daemon's input ring, which must refuse
 *   header     tries every way to change the daemon's file (mprotect, a
 *              writable mapping, write(2), fallocate, /proc/self/fd opened
 *              again for writing), then scribbles its own positions
 *   proc       tries to reach runwayd's memory: /proc/PID/fd/N of every
 *              descriptor, /proc/PID/mem, ptrace, process_vm_readv; a segment
 *              it manages to open is scribbled over (which an honest slot
 *              beside it would show)
 *   socket     connects to the control socket argv[2] and asks to remove slot
 *              argv[3]
 *   fork       starts three children that hold the segment and sleep, then
 *              exits
 *   flood      fills its message ring as fast as the daemon drains it (values,
 *              meters and unknown records) and floods its output with lines
 *   mute       never answers a state request (no worker of this file does;
 *              the mode only names the intent)
 *
 * Every attempt and its outcome goes to stderr (runwayd's log, tagged with
 * the slot), one line each, "worker-garbage MODE: ...".
 *
 * A restarted instance (segment generation > 1) waits for SIGUSR2 before it
 * attaches (publishes its pid), so the test can read the slot's last_error
 * while the fault is fresh, unless argv holds --no-hold; after that it is a
 * correct silent worker until the next SIGUSR1 (a test's next round). With
 * --relapse it neither waits nor behaves: it misbehaves at once, without
 * SIGUSR1, as every restart of a worker that keeps trying would.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <runway/segment.h>

static volatile sig_atomic_t got_usr1, got_usr2, got_term;
static const char *mode = "control";

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    got_usr1 = 1;
  else if (sig == SIGUSR2)
    got_usr2 = 1;
  else
    got_term = 1;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void nap_ms(unsigned ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...) {
  char line[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "worker-garbage %s: %s\n", mode, line);
}

struct seg {
  int fd[RW_FILE_COUNT];
  unsigned char *base[RW_FILE_COUNT];
  size_t size[RW_FILE_COUNT];
  struct rw_segment_header h; /* private copy */
  struct rw_daemon_control *dctl;
  struct rw_worker_control *wctl;
  float *out;
  struct rw_record *messages;
};

static int env_fd(const char *name) {
  const char *text = getenv(name);
  if (text == NULL) {
    fprintf(stderr, "worker-garbage: no %s\n", name);
    return -1;
  }
  return atoi(text);
}

static void *region(struct seg *s, enum rw_region_id id, size_t need) {
  const struct rw_region *r = &s->h.regions[id];
  if (r->file >= RW_FILE_COUNT || r->offset + need > s->size[r->file] || need > r->size)
    return NULL;
  return s->base[r->file] + r->offset;
}

static int map_segment(struct seg *s) {
  static const char *const names[RW_FILE_COUNT] = {"RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD"};
  /* The daemon's file can only be mapped read-only: it is sealed against writes. */
  static const int prot[RW_FILE_COUNT] = {PROT_READ, PROT_READ | PROT_WRITE};
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    struct stat st;
    s->fd[f] = env_fd(names[f]);
    if (s->fd[f] < 0 || fstat(s->fd[f], &st) != 0 || st.st_size <= 0) {
      fprintf(stderr, "worker-garbage: %s: %s\n", names[f], strerror(errno));
      return -1;
    }
    s->size[f] = (size_t)st.st_size;
    s->base[f] = mmap(NULL, s->size[f], prot[f], MAP_SHARED, s->fd[f], 0);
    if (s->base[f] == MAP_FAILED) {
      fprintf(stderr, "worker-garbage: mmap %s: %s\n", names[f], strerror(errno));
      return -1;
    }
  }
  if (s->size[RW_FILE_DAEMON] < sizeof(s->h))
    return -1;
  memcpy(&s->h, s->base[RW_FILE_DAEMON], sizeof(s->h));
  const struct rw_segment_header *h = &s->h;
  s->dctl = region(s, RW_REGION_DAEMON_CONTROL, sizeof(*s->dctl));
  s->wctl = region(s, RW_REGION_WORKER_CONTROL, sizeof(*s->wctl));
  s->out = region(s, RW_REGION_AUDIO_OUT, (size_t)h->channel_stride * h->n_outputs * sizeof(float));
  s->messages =
      region(s, RW_REGION_MESSAGES, (size_t)h->message_capacity * sizeof(struct rw_record));
  if (h->magic != RW_SEGMENT_MAGIC || h->capacity == 0 || (h->capacity & (h->capacity - 1)) ||
      h->message_capacity == 0 || (h->message_capacity & (h->message_capacity - 1)) ||
      s->dctl == NULL || s->wctl == NULL || s->out == NULL || s->messages == NULL) {
    fprintf(stderr, "worker-garbage: the segment header is not what I expected\n");
    return -1;
  }
  return 0;
}

/* Output for input [in_read, in_write): positions [out_write, in_write + L). */
static void produce(struct seg *s, int nonfinite) {
  const struct rw_segment_header *h = &s->h;
  static const float pattern[4] = {NAN, INFINITY, -INFINITY, 0.25f};
  static unsigned k;
  uint64_t in_write = atomic_load_explicit(&s->dctl->in_write.value, memory_order_acquire);
  uint64_t out_write = atomic_load_explicit(&s->wctl->out_write.value, memory_order_relaxed);
  uint64_t target = in_write + h->latency;
  if (target <= out_write)
    return;
  uint64_t from = out_write;
  if (target - from > h->capacity / 2)
    from = target - h->capacity / 2;
  for (uint64_t pos = from; pos < target; pos++) {
    uint32_t idx = (uint32_t)(pos & (h->capacity - 1));
    float v = nonfinite ? pattern[k++ & 3] : 0.0f;
    for (uint32_t c = 0; c < h->n_outputs; c++)
      s->out[(size_t)c * h->channel_stride + idx] = v;
  }
  /* Release: the samples are written before the daemon sees them. */
  atomic_store_explicit(&s->wctl->out_write.value, target, memory_order_release);
  atomic_store_explicit(&s->wctl->in_read.value, in_write, memory_order_release);
}

static void scribble_control(struct seg *s) {
  unsigned char *c = (unsigned char *)s->wctl;
  for (size_t i = 0; i + 8 <= sizeof(*s->wctl); i += 8) {
    uint64_t r = next_random();
    memcpy(c + i, &r, 8);
  }
}

/* ---- punch ---------------------------------------------------------------------------- */

/*
 * The rings the daemon's RT thread copies: where a hole costs it a page
 * fault, and where nothing but a hole check can tell (the positions stay
 * valid).
 */
static void punch(struct seg *s, bool first) {
  const struct rw_region *out = &s->h.regions[RW_REGION_AUDIO_OUT];
  const struct rw_region *in = &s->h.regions[RW_REGION_AUDIO_IN];
  int rc = fallocate(s->fd[RW_FILE_WORKER], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     (off_t)out->offset, (off_t)out->size);
  if (first)
    say("fallocate(PUNCH_HOLE) over my output ring: %s", rc == 0 ? "done" : strerror(errno));
  /* A mapping of our own, unlocked (a locked one refuses MADV_REMOVE), for the other door. */
  static unsigned char *mine;
  if (mine == NULL) {
    mine = mmap(NULL, s->size[RW_FILE_WORKER], PROT_READ | PROT_WRITE, MAP_SHARED,
                s->fd[RW_FILE_WORKER], 0);
    if (mine == MAP_FAILED)
      mine = NULL;
  }
  if (mine != NULL) {
    rc = madvise(mine + out->offset, out->size, MADV_REMOVE);
    if (first)
      say("MADV_REMOVE over my output ring: %s", rc == 0 ? "done" : strerror(errno));
  }
  if (first && in->size > 0) {
    rc = fallocate(s->fd[RW_FILE_DAEMON], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t)in->offset, (off_t)in->size);
    say("fallocate(PUNCH_HOLE) over the daemon's input ring: %s",
        rc == 0 ? "DONE" : strerror(errno));
    rc = madvise(s->base[RW_FILE_DAEMON] + in->offset, in->size, MADV_REMOVE);
    say("MADV_REMOVE over the daemon's input ring: %s", rc == 0 ? "DONE" : strerror(errno));
  }
}

/* ---- header --------------------------------------------------------------------------- */

/* Every door to the daemon's file; returns how many opened (0 for an honest kernel). */
static int try_header(struct seg *s) {
  const size_t size = s->size[RW_FILE_DAEMON];
  int opened = 0;
  uint64_t junk = next_random();

  int rc = mprotect(s->base[RW_FILE_DAEMON], size, PROT_READ | PROT_WRITE);
  say("mprotect(PROT_WRITE) on the daemon's file: %s", rc == 0 ? "DONE" : strerror(errno));
  if (rc == 0) {
    memcpy(s->base[RW_FILE_DAEMON], &junk, sizeof(junk));
    opened++;
  }
  void *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd[RW_FILE_DAEMON], 0);
  say("a writable shared mapping of the daemon's file: %s",
      w != MAP_FAILED ? "DONE" : strerror(errno));
  if (w != MAP_FAILED) {
    memcpy(w, &junk, sizeof(junk));
    opened++;
  }
  ssize_t n = pwrite(s->fd[RW_FILE_DAEMON], &junk, sizeof(junk), 0);
  say("pwrite to the daemon's file: %s", n > 0 ? "DONE" : strerror(errno));
  opened += n > 0;
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd[RW_FILE_DAEMON]);
  int again = open(path, O_RDWR | O_CLOEXEC);
  say("%s opened again for writing: %s", path, again >= 0 ? "done" : strerror(errno));
  if (again >= 0) {
    n = pwrite(again, &junk, sizeof(junk), 0);
    say("pwrite through it: %s", n > 0 ? "DONE" : strerror(errno));
    opened += n > 0;
    rc = fallocate(again, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size);
    say("fallocate(PUNCH_HOLE) through it: %s", rc == 0 ? "DONE" : strerror(errno));
    opened += rc == 0;
    close(again);
  }
  say("%d of the ways to change the daemon's file worked", opened);
  return opened;
}

/* ---- proc ----------------------------------------------------------------------------- */

static void try_proc(pid_t daemon) {
  char path[64], target[256];
  int listed = 0, opened = 0;
  snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon);
  DIR *dir = opendir(path);
  say("opendir %s: %s", path, dir != NULL ? "done" : strerror(errno));
  if (dir != NULL) {
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      listed++;
      snprintf(path, sizeof(path), "/proc/%d/fd/%.20s", (int)daemon, e->d_name);
      ssize_t len = readlink(path, target, sizeof(target) - 1);
      target[len > 0 ? len : 0] = '\0';
      int fd = open(path, O_RDWR | O_CLOEXEC);
      if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        continue;
      opened++;
      say("OPENED %s (%s)", path, target);
      /* Another slot's segment: damage it where its owner would notice. */
      if (strstr(target, "memfd:runway:") != NULL) {
        unsigned char junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++)
          junk[i] = (unsigned char)next_random();
        struct stat st;
        if (fstat(fd, &st) == 0)
          for (off_t at = 0; at + (off_t)sizeof(junk) <= st.st_size; at += 65536)
            (void)!pwrite(fd, junk, sizeof(junk), at);
      }
      close(fd);
    }
    closedir(dir);
  }
  say("runwayd's descriptors: %d listed, %d opened", listed, opened);

  snprintf(path, sizeof(path), "/proc/%d/mem", (int)daemon);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  say("open %s: %s", path, fd >= 0 ? "DONE" : strerror(errno));
  if (fd >= 0)
    close(fd);
  long rc = ptrace(PTRACE_ATTACH, daemon, NULL, NULL);
  say("ptrace(PTRACE_ATTACH, runwayd): %s", rc == 0 ? "DONE" : strerror(errno));
  if (rc == 0)
    ptrace(PTRACE_DETACH, daemon, NULL, NULL);
  uint64_t word = 0;
  struct iovec local = {&word, sizeof(word)}, remote = {(void *)&word, sizeof(word)};
  ssize_t n = process_vm_readv(daemon, &local, 1, &remote, 1, 0);
  say("process_vm_readv(runwayd): %s", n > 0 ? "DONE" : strerror(errno));
}

/* ---- socket --------------------------------------------------------------------------- */

static void try_socket(const char *path, const char *victim) {
  if (path == NULL || victim == NULL) {
    say("socket mode needs the socket path and a slot name");
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    say("connect %s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return;
  }
  char req[300], answer[1024];
  int len = snprintf(req, sizeof(req),
                     "{\"id\":1,\"cmd\":\"slot.remove\",\"args\":{\"name\":\"%s\"}}\n", victim);
  (void)!write(fd, req, (size_t)len);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n = read(fd, answer, sizeof(answer) - 1);
  answer[n > 0 ? n : 0] = '\0';
  answer[strcspn(answer, "\n")] = '\0';
  say("slot.remove %s answered: %s", victim, n > 0 ? answer : "(nothing)");
  close(fd);
}

/* ---- fork ----------------------------------------------------------------------------- */

static void start_children(void) {
  for (int i = 0; i < 3; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      /* Holds the segment (inherited mappings and descriptors) and waits for its end. */
      for (;;)
        pause();
    }
    say("child %d: pid %d", i, (int)pid);
  }
}

/* ---- flood ---------------------------------------------------------------------------- */

static void flood(struct seg *s) {
  const uint32_t cap = s->h.message_capacity;
  uint64_t read = atomic_load_explicit(&s->dctl->msg_read.value, memory_order_acquire);
  uint64_t write = atomic_load_explicit(&s->wctl->msg_write.value, memory_order_relaxed);
  if (write - read > cap)
    write = read; /* start again behind what the daemon consumed */
  while (write - read < cap) {
    struct rw_record *r = &s->messages[write & (cap - 1)];
    uint64_t x = next_random();
    memset(r, 0, sizeof(*r));
    r->time = x;
    r->type = (uint16_t)(x % 3 == 0 ? RW_EVENT_PARAM_OUT : x % 3 == 1 ? RW_EVENT_METER : x >> 48);
    r->u.param.id = (uint32_t)(x >> 8) % 200;
    uint32_t bits = (uint32_t)(x >> 32);
    memcpy(&r->u.param.value, &bits, sizeof(bits)); /* NaN and infinities among them */
    write++;
  }
  /* Release: the records are written before the daemon sees them. */
  atomic_store_explicit(&s->wctl->msg_write.value, write, memory_order_release);
  for (int i = 0; i < 50; i++)
    fprintf(stderr, "worker-garbage flood: line %d of noise \x1b[31m in red\x1b[0m\n", i);
}

int main(int argc, char **argv) {
  struct seg s;
  bool hold = true, relapse = false;
  mode = argc > 1 ? argv[1] : "control";
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--no-hold") == 0)
      hold = false;
    else if (strcmp(argv[i], "--relapse") == 0)
      relapse = true;
  }
  memset(&s, 0, sizeof(s));
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t daemon = getppid();
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (map_segment(&s) != 0)
    return 1;
  rng ^= (uint64_t)getpid() * 0x2545f4914f6cdd1du;
  bool restarted = s.h.generation > 1;
  say("pid %d, generation %llu%s", (int)getpid(), (unsigned long long)s.h.generation,
      restarted && hold && !relapse ? ", waiting for SIGUSR2" : "");

  if (restarted && hold && !relapse) {
    while (!got_usr2 && !got_term)
      nap_ms(2);
  }
  /* Resume where the published output ends, like the SDK does. */
  uint64_t out_write = atomic_load_explicit(&s.wctl->out_write.value, memory_order_acquire);
  atomic_store_explicit(&s.wctl->in_read.value, out_write - s.h.latency, memory_order_release);
  atomic_store_explicit(&s.wctl->worker_pid, (uint32_t)getpid(), memory_order_release);

  bool misbehaving = false;
  while (!got_term) {
    bool first = false;
    if (!misbehaving && ((restarted && relapse) || got_usr1)) {
      misbehaving = first = true;
      say("misbehaving now");
      if (strcmp(mode, "control") == 0) {
        scribble_control(&s);
      } else if (strcmp(mode, "header") == 0) {
        try_header(&s);
        scribble_control(&s);
      } else if (strcmp(mode, "out_write") == 0) {
        uint64_t w = atomic_load(&s.dctl->in_write.value);
        atomic_store(&s.wctl->out_write.value, w + s.h.latency + (UINT64_C(1) << 40));
      } else if (strcmp(mode, "in_read") == 0) {
        uint64_t w = atomic_load(&s.dctl->in_write.value);
        atomic_store(&s.wctl->in_read.value, w + (UINT64_C(1) << 33));
      } else if (strcmp(mode, "rings") == 0) {
        atomic_store(&s.wctl->ev_read.value, next_random());
        atomic_store(&s.wctl->msg_write.value, next_random());
      } else if (strcmp(mode, "proc") == 0) {
        try_proc(daemon);
      } else if (strcmp(mode, "socket") == 0) {
        try_socket(argc > 2 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL);
      } else if (strcmp(mode, "fork") == 0) {
        start_children();
        say("exiting, leaving my children behind");
        return 0;
      }
    }
    bool frozen = misbehaving && (strcmp(mode, "out_write") == 0 || strcmp(mode, "in_read") == 0 ||
                                  strcmp(mode, "control") == 0 || strcmp(mode, "header") == 0);
    if (misbehaving && strcmp(mode, "punch") == 0)
      punch(&s, first);
    if (misbehaving && strcmp(mode, "flood") == 0)
      flood(&s);
    if (!frozen)
      produce(&s, misbehaving && strcmp(mode, "nonfinite") == 0);
    nap_ms(2);
  }
  return 0;
}
