#include "memlock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Set once by the control thread, before any other thread asks. */
static bool locked_all;

int sys_lock_all(void) {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    return -errno;
  locked_all = true;
  return 0;
}

/* Unlocked, dropped, then locked on touch: a locked range cannot be dropped. */
static int relock_on_touch(void *start, size_t len) {
  if (munlock(start, len) != 0)
    return -errno;
  /* A shared file mapping: only our page table entries go, the file keeps its data. */
  if (madvise(start, len, MADV_DONTNEED) != 0)
    return -errno;
  if (mlock2(start, len, MLOCK_ONFAULT) != 0)
    return -errno;
  return 0;
}

int sys_lock_on_touch(const char *prefix, size_t min_size, size_t *released) {
  *released = 0;
  if (!locked_all)
    return 0; /* nothing is locked, so nothing to release */
  FILE *f = fopen("/proc/self/maps", "re");
  if (f == NULL)
    return -errno;
  size_t plen = strlen(prefix);
  char line[4096];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
    uintptr_t lo, hi;
    char perms[8];
    int path_at = -1;
    /* start-end perms offset dev inode path */
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %n", &lo, &hi, perms, &path_at) !=
            3 ||
        path_at < 0 || hi <= lo)
      continue;
    const char *path = line + path_at;
    if (strncmp(path, prefix, plen) != 0 || perms[3] != 's' || hi - lo < min_size)
      continue;
    rc = relock_on_touch((void *)lo, hi - lo);
    if (rc == 0)
      *released += hi - lo;
  }
  fclose(f);
  return rc;
}

void sys_touch(const void *p, size_t n) {
  if (p == NULL || n == 0)
    return;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const volatile char *c = p;
  uintptr_t first = (uintptr_t)p & ~(uintptr_t)(page - 1);
  uintptr_t last = ((uintptr_t)p + n - 1) & ~(uintptr_t)(page - 1);
  (void)c[0];
  for (uintptr_t a = first + page; a <= last; a += page)
    (void)c[a - (uintptr_t)p];
}
