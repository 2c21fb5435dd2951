#include "scale_sys.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int64_t sys_thread_cpu_ns(pid_t pid, pid_t tid) {
  char path[96];
  long long ns = -1;
  snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lld", &ns) != 1)
    ns = -1;
  fclose(f);
  return ns;
}

/* Calls fn for every thread of pid; false when the process is gone. */
static bool each_thread(pid_t pid, void (*fn)(pid_t pid, pid_t tid, void *arg), void *arg) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  DIR *dir = opendir(path);
  if (dir == NULL)
    return false;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    char *end;
    long tid = strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && tid > 0)
      fn(pid, (pid_t)tid, arg);
  }
  closedir(dir);
  return true;
}

static void add_cpu(pid_t pid, pid_t tid, void *arg) {
  int64_t ns = sys_thread_cpu_ns(pid, tid);
  if (ns > 0)
    *(int64_t *)arg += ns;
}

int64_t sys_process_cpu_ns(pid_t pid) {
  int64_t sum = 0;
  return each_thread(pid, add_cpu, &sum) ? sum : -1;
}

struct busiest {
  pid_t tid;
  int64_t ns;
};

static void keep_busiest(pid_t pid, pid_t tid, void *arg) {
  struct busiest *b = arg;
  int64_t ns = sys_thread_cpu_ns(pid, tid);
  if (ns > b->ns) {
    b->ns = ns;
    b->tid = tid;
  }
}

pid_t sys_busiest_thread(pid_t pid) {
  struct busiest b = {0, -1};
  each_thread(pid, keep_busiest, &b);
  return b.tid;
}

/* The number after "key:" in a /proc file of "key: value kB" lines, or -1. */
static int64_t field_kb(const char *path, const char *key) {
  char line[256];
  size_t klen = strlen(key);
  int64_t v = -1;
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      v = strtoll(line + klen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

bool sys_process_mem(pid_t pid, struct sys_mem *m) {
  char status[64], rollup[64];
  snprintf(status, sizeof(status), "/proc/%d/status", (int)pid);
  snprintf(rollup, sizeof(rollup), "/proc/%d/smaps_rollup", (int)pid);
  m->rss_kb = field_kb(status, "VmRSS");
  m->vmlck_kb = field_kb(status, "VmLck");
  m->shmem_kb = field_kb(status, "RssShmem");
  m->pss_kb = field_kb(rollup, "Pss");
  m->locked_kb = field_kb(rollup, "Locked");
  return m->rss_kb >= 0;
}

void sys_machine_busy(struct sys_busy *b) {
  unsigned long long v[10] = {0};
  b->busy = b->total = 0;
  FILE *f = fopen("/proc/stat", "re");
  if (f == NULL)
    return;
  /* cpu user nice system idle iowait irq softirq steal guest guest_nice */
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                 &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 8)
    return;
  /* guest time is already in user time; steal is time another VM had our CPU. */
  for (int i = 0; i < 8; i++)
    b->total += v[i];
  b->busy = b->total - v[3] - v[4];
}

double sys_busy_share(const struct sys_busy *a, const struct sys_busy *b) {
  if (b->total <= a->total)
    return 0.0;
  return (double)(b->busy - a->busy) / (double)(b->total - a->total);
}

double sys_loadavg(void) {
  double l = -1.0;
  FILE *f = fopen("/proc/loadavg", "re");
  if (f == NULL)
    return -1.0;
  if (fscanf(f, "%lf", &l) != 1)
    l = -1.0;
  fclose(f);
  return l;
}

int sys_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
