#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sys_thread_faults(pid_t tid, struct sys_faults *out) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? -ESRCH : -errno;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  int saved = errno;
  (void)close(fd); /* read-only: nothing to lose */
  if (n <= 0)
    return n < 0 ? -saved : -EIO;
  buf[n] = '\0';
  /*
   * The command name (field 2) is in parentheses and may hold spaces or
   * parentheses itself: the fields after the last ')' are plain. From
   * there: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
   * cminflt, majflt (proc(5), fields 3 to 12).
   */
  const char *p = strrchr(buf, ')');
  uint64_t minflt, majflt;
  if (p == NULL ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %" SCNu64 " %*u %" SCNu64, &minflt, &majflt) != 2)
    return -EPROTO;
  out->minor = minflt;
  out->major = majflt;
  return 0;
}
