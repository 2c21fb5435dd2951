/*
 * What runway-bench-scale reads from /proc: CPU time of processes and
 * threads (from schedstat, in ns: /proc/PID/stat counts in 10 ms ticks,
 * far too coarse for a client that uses half a percent of a core), memory
 * of a process (resident, proportional, locked) and how busy the machine
 * was, so a figure can be read next to what else ran.
 */
#ifndef RUNWAY_BENCH_SCALE_SYS_H
#define RUNWAY_BENCH_SCALE_SYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* CPU time of one thread in ns (schedstat's first field), or -1 when it is gone. */
int64_t sys_thread_cpu_ns(pid_t pid, pid_t tid);

/*
 * CPU time of all live threads of a process in ns, or -1 when it is gone.
 * Threads that exited are not counted: measure over windows in which the
 * process keeps its threads.
 */
int64_t sys_process_cpu_ns(pid_t pid);

/* The process's thread with the most CPU time so far, or 0. */
pid_t sys_busiest_thread(pid_t pid);

struct sys_mem {
  int64_t rss_kb;    /* VmRSS: resident, shared pages counted in full */
  int64_t pss_kb;    /* smaps_rollup Pss: shared pages divided among their users */
  int64_t locked_kb; /* smaps_rollup Locked: resident pages of locked mappings (Pss) */
  int64_t vmlck_kb;  /* VmLck: the size of the locked mappings, resident or not */
  int64_t shmem_kb;  /* RssShmem: resident shared memory (JACK's, the segments) */
};

/* Memory of a process; false when it is gone (fields -1). */
bool sys_process_mem(pid_t pid, struct sys_mem *m);

/* Jiffies the machine's CPUs were busy and in total, for a busy share over a window. */
struct sys_busy {
  uint64_t busy;
  uint64_t total;
};
void sys_machine_busy(struct sys_busy *b);
/* Busy share of all CPUs between two readings, 0..1. */
double sys_busy_share(const struct sys_busy *a, const struct sys_busy *b);

/* The 1-minute load average. */
double sys_loadavg(void);

/* Online CPUs. */
int sys_cpus(void);

#endif
