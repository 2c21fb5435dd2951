/*
 * librunway-rtcheck: proves runwayd's real-time rules (DESIGN.md, "Real-time
 * rules") while it runs. LD_PRELOADed into runwayd, it defines the hooks the
 * engine looks up at start (runway_rtcheck_enter/leave, called around every
 * RT cycle), which set a thread-local "in RT" flag, and interposes the libc
 * functions that allocate, lock, block, sleep or do I/O. Called on the RT
 * thread inside a cycle, any of them writes its name to stderr with a raw
 * system call and aborts the process, like nih-plug's assert_process_allocs.
 *
 * Allowed inside a cycle: a futex wake through syscall() (the engine wakes a
 * sleeping worker); every futex wait operation is a violation.
 *
 * At exit, a process that ran at least one RT cycle writes a report to
 * $RUNWAY_RTCHECK_REPORT ("cycles N", "violations N", "unbalanced N",
 * "mallocs N"), so a test can tell that the hooks were active and that the
 * interposer was in the process's path. A violation writes the report
 * too (violations 1, and which function) before aborting.
 *
 * Everything here must itself be safe to call on any thread at any time:
 * the forwarders only read function pointers resolved at load time.
 */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

void runway_rtcheck_enter(void) EXPORT;
void runway_rtcheck_leave(void) EXPORT;

/* glibc's own allocator entry points: forwarding to them needs no dlsym (which allocates). */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static __thread int in_rt __attribute__((tls_model("initial-exec")));
static _Atomic unsigned long long cycles;
static _Atomic unsigned long long unbalanced;
/* Allocations seen on any thread: proves the interposer is in the process's path at all. */
static _Atomic unsigned long long mallocs;

/* ---- the real functions ------------------------------------------------------------ */

/* One list, laid out by hand: clang-format would stair-step it. */
// clang-format off
#define REAL_LIST(X)                                                                         \
  X(pthread_mutex_lock) X(pthread_mutex_trylock) X(pthread_mutex_timedlock)                  \
  X(pthread_rwlock_rdlock) X(pthread_rwlock_wrlock) X(pthread_rwlock_timedrdlock)            \
  X(pthread_rwlock_timedwrlock) X(pthread_cond_wait) X(pthread_cond_timedwait) X(sem_wait)   \
  X(sem_timedwait) X(nanosleep) X(clock_nanosleep) X(usleep) X(sleep) X(read) X(write)       \
  X(open) X(open64) X(openat) X(openat64) X(close) X(fopen) X(fopen64) X(fwrite) X(fputs)    \
  X(fputc) X(puts) X(vfprintf) X(vprintf) X(poll) X(ppoll) X(select) X(pselect)              \
  X(epoll_wait) X(epoll_pwait) X(recv) X(recvfrom) X(send) X(sendto) X(recvmsg) X(sendmsg)   \
  X(connect) X(accept) X(accept4) X(mmap) X(mmap64) X(munmap) X(fork) X(waitpid) X(syscall)
// clang-format on

#define DECLARE_REAL(fn) static __typeof__(fn) *real_##fn;
REAL_LIST(DECLARE_REAL)

#define RESOLVE_REAL(fn) real_##fn = (__typeof__(fn) *)dlsym(RTLD_NEXT, #fn);

__attribute__((constructor(101))) static void resolve_all(void) { REAL_LIST(RESOLVE_REAL) }

/* Resolves lazily too, for calls from constructors that run before ours. */
static void *resolve(void **slot, const char *name) {
  if (*slot == NULL)
    *slot = dlsym(RTLD_NEXT, name);
  return *slot;
}

#define REAL(fn) ((__typeof__(fn) *)resolve((void **)&real_##fn, #fn))

/* ---- reporting ----------------------------------------------------------------------- */

static size_t append(char *buf, size_t at, size_t cap, const char *s) {
  while (*s != '\0' && at + 1 < cap)
    buf[at++] = *s++;
  buf[at] = '\0';
  return at;
}

static size_t append_u64(char *buf, size_t at, size_t cap, unsigned long long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0 && at + 1 < cap)
    buf[at++] = digits[--n];
  buf[at] = '\0';
  return at;
}

static void raw_write(int fd, const char *buf, size_t len) {
  /* A raw system call: not the interposed write, and nothing that could allocate. */
  if (REAL(syscall) != NULL)
    real_syscall(SYS_write, fd, buf, len);
}

static void write_report(const char *violation) {
  const char *path = getenv("RUNWAY_RTCHECK_REPORT");
  char buf[512];
  size_t n = 0;
  if (path == NULL || path[0] == '\0' || REAL(syscall) == NULL)
    return;
  n = append(buf, n, sizeof(buf), "cycles ");
  n = append_u64(buf, n, sizeof(buf), atomic_load(&cycles));
  n = append(buf, n, sizeof(buf), "\nviolations ");
  n = append(buf, n, sizeof(buf), violation ? "1" : "0");
  n = append(buf, n, sizeof(buf), "\nunbalanced ");
  n = append_u64(buf, n, sizeof(buf), atomic_load(&unbalanced));
  n = append(buf, n, sizeof(buf), "\nmallocs ");
  n = append_u64(buf, n, sizeof(buf), atomic_load(&mallocs));
  n = append(buf, n, sizeof(buf), "\npid ");
  n = append_u64(buf, n, sizeof(buf), (unsigned long long)getpid());
  if (violation != NULL) {
    n = append(buf, n, sizeof(buf), "\nfirst_violation ");
    n = append(buf, n, sizeof(buf), violation);
  }
  n = append(buf, n, sizeof(buf), "\n");
  long fd =
      real_syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  real_syscall(SYS_write, fd, buf, n);
  real_syscall(SYS_close, fd);
}

__attribute__((noreturn)) static void violation(const char *what) {
  char msg[256];
  size_t n = 0;
  in_rt = 0; /* what follows may call interposed functions itself */
  n = append(msg, n, sizeof(msg), "runway-rtcheck: RT rule violation: ");
  n = append(msg, n, sizeof(msg), what);
  n = append(msg, n, sizeof(msg), "() called on the real-time thread during a cycle\n");
  raw_write(2, msg, n);
  write_report(what);
  abort();
}

#define GUARD(name)                                                                                \
  do {                                                                                             \
    if (__builtin_expect(in_rt, 0))                                                                \
      violation(name);                                                                             \
  } while (0)

/* ---- the hooks --------------------------------------------------------------------------- */

void runway_rtcheck_enter(void) {
  if (in_rt)
    atomic_fetch_add_explicit(&unbalanced, 1, memory_order_relaxed);
  in_rt = 1;
  atomic_fetch_add_explicit(&cycles, 1, memory_order_relaxed);
}

void runway_rtcheck_leave(void) {
  if (!in_rt)
    atomic_fetch_add_explicit(&unbalanced, 1, memory_order_relaxed);
  in_rt = 0;
}

__attribute__((destructor)) static void report_at_exit(void) {
  if (atomic_load(&cycles) > 0)
    write_report(NULL);
}

/* ---- memory ------------------------------------------------------------------------------ */

EXPORT void *malloc(size_t size) {
  GUARD("malloc");
  atomic_fetch_add_explicit(&mallocs, 1, memory_order_relaxed);
  return __libc_malloc(size);
}

EXPORT void *calloc(size_t n, size_t size) {
  GUARD("calloc");
  return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size) {
  GUARD("realloc");
  return __libc_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  GUARD("reallocarray");
  if (size != 0 && n > (size_t)-1 / size)
    return NULL;
  return __libc_realloc(p, n * size);
}

EXPORT void free(void *p) {
  GUARD("free");
  __libc_free(p);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  GUARD("posix_memalign");
  if (align < sizeof(void *) || (align & (align - 1)) != 0)
    return 22; /* EINVAL */
  void *p = __libc_memalign(align, size);
  if (p == NULL && size != 0)
    return 12; /* ENOMEM */
  *out = p;
  return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t size) {
  GUARD("aligned_alloc");
  return __libc_memalign(align, size);
}

EXPORT void *memalign(size_t align, size_t size) {
  GUARD("memalign");
  return __libc_memalign(align, size);
}

EXPORT void *valloc(size_t size) {
  GUARD("valloc");
  return __libc_valloc(size);
}

EXPORT void *pvalloc(size_t size) {
  GUARD("pvalloc");
  return __libc_pvalloc(size);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  GUARD("mmap");
  return REAL(mmap)(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
  GUARD("mmap64");
  return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len) {
  GUARD("munmap");
  return REAL(munmap)(addr, len);
}

/* ---- locks and waits ----------------------------------------------------------------------- */

EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
  GUARD("pthread_mutex_lock");
  return REAL(pthread_mutex_lock)(m);
}

EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
  GUARD("pthread_mutex_trylock");
  return REAL(pthread_mutex_trylock)(m);
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *restrict m, const struct timespec *restrict t) {
  GUARD("pthread_mutex_timedlock");
  return REAL(pthread_mutex_timedlock)(m, t);
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l) {
  GUARD("pthread_rwlock_rdlock");
  return REAL(pthread_rwlock_rdlock)(l);
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l) {
  GUARD("pthread_rwlock_wrlock");
  return REAL(pthread_rwlock_wrlock)(l);
}

EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *restrict l,
                                      const struct timespec *restrict t) {
  GUARD("pthread_rwlock_timedrdlock");
  return REAL(pthread_rwlock_timedrdlock)(l, t);
}

EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *restrict l,
                                      const struct timespec *restrict t) {
  GUARD("pthread_rwlock_timedwrlock");
  return REAL(pthread_rwlock_timedwrlock)(l, t);
}

EXPORT int pthread_cond_wait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m) {
  GUARD("pthread_cond_wait");
  return REAL(pthread_cond_wait)(c, m);
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m,
                                  const struct timespec *restrict t) {
  GUARD("pthread_cond_timedwait");
  return REAL(pthread_cond_timedwait)(c, m, t);
}

EXPORT int sem_wait(sem_t *s) {
  GUARD("sem_wait");
  return REAL(sem_wait)(s);
}

EXPORT int sem_timedwait(sem_t *restrict s, const struct timespec *restrict t) {
  GUARD("sem_timedwait");
  return REAL(sem_timedwait)(s, t);
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
  GUARD("nanosleep");
  return REAL(nanosleep)(req, rem);
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                           struct timespec *rem) {
  GUARD("clock_nanosleep");
  return REAL(clock_nanosleep)(clk, flags, req, rem);
}

EXPORT int usleep(useconds_t us) {
  GUARD("usleep");
  return REAL(usleep)(us);
}

EXPORT unsigned int sleep(unsigned int s) {
  GUARD("sleep");
  return REAL(sleep)(s);
}

/* ---- files and stdio ------------------------------------------------------------------------ */

EXPORT ssize_t read(int fd, void *buf, size_t n) {
  GUARD("read");
  return REAL(read)(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n) {
  GUARD("write");
  return REAL(write)(fd, buf, n);
}

static mode_t open_mode(int flags, va_list ap) {
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE)
    return (mode_t)va_arg(ap, int);
  return 0;
}

EXPORT int open(const char *path, int flags, ...) {
  GUARD("open");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = open_mode(flags, ap);
  va_end(ap);
  return REAL(open)(path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) {
  GUARD("open64");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = open_mode(flags, ap);
  va_end(ap);
  return REAL(open64)(path, flags, mode);
}

EXPORT int openat(int dir, const char *path, int flags, ...) {
  GUARD("openat");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = open_mode(flags, ap);
  va_end(ap);
  return REAL(openat)(dir, path, flags, mode);
}

EXPORT int openat64(int dir, const char *path, int flags, ...) {
  GUARD("openat64");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = open_mode(flags, ap);
  va_end(ap);
  return REAL(openat64)(dir, path, flags, mode);
}

EXPORT int close(int fd) {
  GUARD("close");
  return REAL(close)(fd);
}

EXPORT FILE *fopen(const char *restrict path, const char *restrict mode) {
  GUARD("fopen");
  return REAL(fopen)(path, mode);
}

EXPORT FILE *fopen64(const char *restrict path, const char *restrict mode) {
  GUARD("fopen64");
  return REAL(fopen64)(path, mode);
}

EXPORT size_t fwrite(const void *restrict p, size_t size, size_t n, FILE *restrict f) {
  GUARD("fwrite");
  return REAL(fwrite)(p, size, n, f);
}

EXPORT int fputs(const char *restrict s, FILE *restrict f) {
  GUARD("fputs");
  return REAL(fputs)(s, f);
}

EXPORT int fputc(int ch, FILE *f) {
  GUARD("fputc");
  return REAL(fputc)(ch, f);
}

EXPORT int puts(const char *s) {
  GUARD("puts");
  return REAL(puts)(s);
}

EXPORT int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap) {
  GUARD("vfprintf");
  return REAL(vfprintf)(f, fmt, ap);
}

EXPORT int vprintf(const char *restrict fmt, va_list ap) {
  GUARD("vprintf");
  return REAL(vprintf)(fmt, ap);
}

EXPORT int fprintf(FILE *restrict f, const char *restrict fmt, ...) {
  GUARD("fprintf");
  va_list ap;
  va_start(ap, fmt);
  int rc = REAL(vfprintf)(f, fmt, ap);
  va_end(ap);
  return rc;
}

EXPORT int printf(const char *restrict fmt, ...) {
  GUARD("printf");
  va_list ap;
  va_start(ap, fmt);
  int rc = REAL(vprintf)(fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- polling and sockets -------------------------------------------------------------------- */

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
  GUARD("poll");
  return REAL(poll)(fds, n, timeout);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask) {
  GUARD("ppoll");
  return REAL(ppoll)(fds, n, t, mask);
}

EXPORT int select(int n, fd_set *restrict r, fd_set *restrict w, fd_set *restrict e,
                  struct timeval *restrict t) {
  GUARD("select");
  return REAL(select)(n, r, w, e, t);
}

EXPORT int pselect(int n, fd_set *restrict r, fd_set *restrict w, fd_set *restrict e,
                   const struct timespec *restrict t, const sigset_t *restrict mask) {
  GUARD("pselect");
  return REAL(pselect)(n, r, w, e, t, mask);
}

EXPORT int epoll_wait(int fd, struct epoll_event *ev, int max, int timeout) {
  GUARD("epoll_wait");
  return REAL(epoll_wait)(fd, ev, max, timeout);
}

EXPORT int epoll_pwait(int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
  GUARD("epoll_pwait");
  return REAL(epoll_pwait)(fd, ev, max, timeout, mask);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags) {
  GUARD("recv");
  return REAL(recv)(fd, buf, n, flags);
}

EXPORT ssize_t recvfrom(int fd, void *restrict buf, size_t n, int flags,
                        struct sockaddr *restrict a, socklen_t *restrict alen) {
  GUARD("recvfrom");
  return REAL(recvfrom)(fd, buf, n, flags, a, alen);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags) {
  GUARD("send");
  return REAL(send)(fd, buf, n, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
                      socklen_t alen) {
  GUARD("sendto");
  return REAL(sendto)(fd, buf, n, flags, a, alen);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  GUARD("recvmsg");
  return REAL(recvmsg)(fd, msg, flags);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  GUARD("sendmsg");
  return REAL(sendmsg)(fd, msg, flags);
}

EXPORT int connect(int fd, const struct sockaddr *a, socklen_t alen) {
  GUARD("connect");
  return REAL(connect)(fd, a, alen);
}

EXPORT int accept(int fd, struct sockaddr *restrict a, socklen_t *restrict alen) {
  GUARD("accept");
  return REAL(accept)(fd, a, alen);
}

EXPORT int accept4(int fd, struct sockaddr *restrict a, socklen_t *restrict alen, int flags) {
  GUARD("accept4");
  return REAL(accept4)(fd, a, alen, flags);
}

/* ---- processes ------------------------------------------------------------------------------ */

EXPORT pid_t fork(void) {
  GUARD("fork");
  return REAL(fork)();
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
  GUARD("waitpid");
  return REAL(waitpid)(pid, status, options);
}

/*
 * syscall(): a futex wake is the one system call the RT thread may make
 * (it never blocks); every other one, futex waits included, is a violation.
 * Six argument words are forwarded whatever the call takes, as glibc's own
 * syscall() does.
 */
EXPORT long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (__builtin_expect(in_rt, 0)) {
    if (number != SYS_futex)
      violation("syscall (not a futex wake)");
    int op = (int)a2 & FUTEX_CMD_MASK;
    if (op != FUTEX_WAKE && op != FUTEX_WAKE_OP && op != FUTEX_WAKE_BITSET)
      violation("syscall(SYS_futex, a wait operation)");
  }
  return REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
}
