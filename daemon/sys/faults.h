/*
 * The page faults a thread of runwayd has taken, from
 * /proc/self/task/TID/stat: how stats shows whether anything (a worker's
 * holes in its segment, above all) made the RT thread fault, without a
 * system call on the RT thread itself. Control thread only; not RT safe.
 */
#ifndef RUNWAY_DAEMON_FAULTS_H
#define RUNWAY_DAEMON_FAULTS_H

#include <stdint.h>
#include <sys/types.h>

struct sys_faults {
  uint64_t minor; /* served without I/O (a page allocated or found in memory) */
  uint64_t major; /* needed I/O */
};

/* Fills *out for thread tid of this process. Returns 0 or -errno (-ESRCH: no such thread). */
int sys_thread_faults(pid_t tid, struct sys_faults *out);

#endif
