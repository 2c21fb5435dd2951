#include "supervisor.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"

const char *worker_state_name(enum worker_state state) {
  switch (state) {
  case WORKER_STARTING:
    return "starting";
  case WORKER_RUNNING:
    return "running";
  case WORKER_RESTARTING:
    return "restarting";
  case WORKER_FAULTED:
    return "faulted";
  case WORKER_STOPPED:
    return "stopped";
  }
  return "unknown";
}

static void set_state(struct supervisor *sv, enum worker_state state, const char *reason) {
  if (reason != sv->error)
    snprintf(sv->error, sizeof(sv->error), "%s", reason);
  if (sv->state == state)
    return;
  sv->state = state;
  sv->ops->changed(sv->owner, state, reason);
}

void supervisor_init(struct supervisor *sv, const struct supervisor_env *env,
                     const struct supervisor_ops *ops, void *owner, const char *name) {
  memset(sv, 0, sizeof(*sv));
  sv->env = env;
  sv->ops = ops;
  sv->owner = owner;
  sv->name = name;
  sv->state = WORKER_STOPPED;
  uv_timer_init(env->loop, &sv->restart_timer);
  sv->restart_timer.data = sv;
}

/* Forgets the worker: it is not ours to watch any more. */
static void let_go(struct supervisor *sv, uint64_t grace_ms) {
  sv->active = false;
  if (sv->proc != NULL) {
    worker_proc_stop(sv->proc, grace_ms);
    worker_proc_detach(sv->proc);
    sv->proc = NULL;
  }
  if (sv->attached != NULL) {
    struct control_conn *conn = sv->attached;
    sv->attached = NULL;
    control_conn_set_owner(conn, NULL, NULL);
    control_conn_close(conn);
  }
  sv->pid = 0;
}

void supervisor_drop_next(struct supervisor *sv) {
  if (sv->next_proc == NULL)
    return;
  worker_proc_stop(sv->next_proc, 0);
  worker_proc_detach(sv->next_proc);
  sv->next_proc = NULL;
  sv->next_pid = 0;
}

void supervisor_close(struct supervisor *sv, uv_close_cb done) {
  supervisor_drop_next(sv);
  let_go(sv, 0);
  uv_timer_stop(&sv->restart_timer);
  uv_close((uv_handle_t *)&sv->restart_timer, done);
}

static void on_restart_timer(uv_timer_t *t) {
  struct supervisor *sv = t->data;
  sv->restarts++;
  sv->ops->restart(sv->owner, sv->error);
}

/* A failure (exit, stall, fault, no start): restart after the backoff. */
static void schedule_restart(struct supervisor *sv, enum worker_state state) {
  uint64_t now = base_mono_ms();
  if (sv->started_ms != 0 && now - sv->started_ms >= sv->env->policy.stable_after_ms)
    sv->failures = 0;
  sv->failures++;
  uint64_t delay = supervisor_restart_delay(&sv->env->policy, sv->failures);
  set_state(sv, state, sv->error);
  uv_timer_start(&sv->restart_timer, on_restart_timer, delay, 0);
  log_warn("slot %s: %s; restarting in %llu ms", sv->name, sv->error, (unsigned long long)delay);
}

void supervisor_fail(struct supervisor *sv, enum worker_state state, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sv->error, sizeof(sv->error), fmt, ap);
  va_end(ap);
  let_go(sv, 0);
  uv_timer_stop(&sv->restart_timer);
  schedule_restart(sv, state);
}

/* How a worker ended, for messages. */
static void exit_reason(char *buf, size_t len, int64_t status, int sig) {
  if (sig != 0)
    snprintf(buf, len, "worker was killed by signal %d", sig);
  else
    snprintf(buf, len, "worker exited with status %lld", (long long)status);
}

static void on_worker_exit(struct worker_proc *proc, int64_t status, int sig, void *user) {
  struct supervisor *sv = user;
  if (proc == sv->next_proc) {
    char why[128];
    worker_proc_detach(proc);
    sv->next_proc = NULL;
    sv->next_pid = 0;
    exit_reason(why, sizeof(why), status, sig);
    sv->ops->next_failed(sv->owner, why);
    return;
  }
  worker_proc_detach(proc);
  sv->proc = NULL;
  sv->pid = 0;
  if (!sv->active)
    return;
  sv->active = false;
  exit_reason(sv->error, sizeof(sv->error), status, sig);
  schedule_restart(sv, WORKER_RESTARTING);
}

/* A worker of this slot on segment_fds; its exit comes back to on_worker_exit. */
static int spawn(struct supervisor *sv, const struct worker_command *cmd,
                 const int segment_fds[RW_FILE_COUNT], struct worker_proc **out, char *err,
                 size_t errlen) {
  struct worker_spawn spec = {
      .launch = &sv->env->launch,
      .file = cmd->file,
      .argv = cmd->argv,
      .segment_fds = {segment_fds[RW_FILE_DAEMON], segment_fds[RW_FILE_WORKER]},
      .slot = sv->name,
      .on_exit = on_worker_exit,
      .user = sv,
  };
  return worker_proc_spawn(sv->env->loop, &spec, out, err, errlen);
}

int supervisor_start(struct supervisor *sv, const struct worker_command *cmd,
                     const int segment_fds[RW_FILE_COUNT]) {
  char err[256];
  uv_timer_stop(&sv->restart_timer);
  sv->started_ms = base_mono_ms();
  sv->active = true;
  stall_watch_reset(&sv->stall, 0, sv->started_ms);
  set_state(sv, WORKER_STARTING,
            cmd->external ? "waiting for a worker to attach" : "starting its worker");
  if (cmd->external)
    return 0;

  int rc = spawn(sv, cmd, segment_fds, &sv->proc, err, sizeof(err));
  if (rc != 0) {
    sv->proc = NULL;
    sv->active = false;
    snprintf(sv->error, sizeof(sv->error), "%s", err);
    schedule_restart(sv, WORKER_RESTARTING);
    return rc;
  }
  sv->pid = worker_proc_pid(sv->proc);
  return 0;
}

int supervisor_start_next(struct supervisor *sv, const struct worker_command *cmd,
                          const int segment_fds[RW_FILE_COUNT], char *err, size_t errlen) {
  if (sv->next_proc != NULL) {
    snprintf(err, errlen, "a new worker (pid %d) is starting already", (int)sv->next_pid);
    return -EBUSY;
  }
  int rc = spawn(sv, cmd, segment_fds, &sv->next_proc, err, errlen);
  if (rc != 0) {
    sv->next_proc = NULL;
    return rc;
  }
  sv->next_pid = worker_proc_pid(sv->next_proc);
  return 0;
}

void supervisor_promote_next(struct supervisor *sv, uint64_t grace_ms, const char *reason) {
  if (sv->next_proc == NULL)
    return;
  let_go(sv, grace_ms);
  uv_timer_stop(&sv->restart_timer);
  sv->proc = sv->next_proc;
  sv->pid = sv->next_pid;
  sv->next_proc = NULL;
  sv->next_pid = 0;
  sv->active = true;
  sv->restarts++;
  sv->failures = 0;
  sv->started_ms = base_mono_ms();
  stall_watch_reset(&sv->stall, 0, sv->started_ms);
  sv->error[0] = '\0';
  if (sv->state == WORKER_RUNNING)
    sv->ops->changed(sv->owner, WORKER_RUNNING, reason); /* same state, another worker */
  else
    set_state(sv, WORKER_RUNNING, reason);
}

void supervisor_stop(struct supervisor *sv, uint64_t grace_ms, enum worker_state state,
                     const char *reason) {
  supervisor_drop_next(sv);
  let_go(sv, grace_ms);
  uv_timer_stop(&sv->restart_timer);
  if (reason != NULL)
    set_state(sv, state, reason);
}

void supervisor_restart_now(struct supervisor *sv, const char *reason) {
  uv_timer_stop(&sv->restart_timer);
  sv->restarts++;
  sv->failures = 0;
  sv->ops->restart(sv->owner, reason);
}

void supervisor_running(struct supervisor *sv) {
  if (sv->state != WORKER_STARTING)
    return;
  sv->error[0] = '\0';
  set_state(sv, WORKER_RUNNING, "worker attached");
}

bool supervisor_restart_pending(const struct supervisor *sv) {
  return uv_is_active((const uv_handle_t *)&sv->restart_timer);
}

bool supervisor_has_worker(const struct supervisor *sv) {
  return sv->proc != NULL || sv->attached != NULL;
}

static void on_attached_closed(struct control_conn *conn, void *owner) {
  struct supervisor *sv = owner;
  (void)conn;
  sv->attached = NULL;
  sv->pid = 0;
  if (!sv->active)
    return;
  sv->active = false;
  snprintf(sv->error, sizeof(sv->error), "the attached worker disconnected");
  log_info("slot %s: %s", sv->name, sv->error);
  sv->ops->detached(sv->owner);
}

bool supervisor_can_attach(const struct supervisor *sv, const struct control_conn *conn, char *err,
                           size_t errlen) {
  if (sv->attached != NULL) {
    snprintf(err, errlen, "a worker (pid %d) is already attached to slot \"%s\"", (int)sv->pid,
             sv->name);
    return false;
  }
  if (control_conn_owner(conn) != NULL) {
    snprintf(err, errlen,
             "this connection already serves a worker or a subscription; attach on a "
             "connection of its own");
    return false;
  }
  return true;
}

int supervisor_attach(struct supervisor *sv, struct control_conn *conn) {
  char err[256];
  if (!supervisor_can_attach(sv, conn, err, sizeof(err)) ||
      control_conn_set_owner(conn, sv, on_attached_closed) != 0)
    return -EBUSY;
  sv->attached = conn;
  sv->active = true;
  sv->pid = control_conn_pid(conn);
  sv->started_ms = base_mono_ms();
  stall_watch_reset(&sv->stall, 0, sv->started_ms);
  return 0;
}

enum supervisor_progress supervisor_check_progress(struct supervisor *sv, uint64_t in_read,
                                                   uint64_t pending, uint64_t threshold,
                                                   uint64_t now_ms, char *why, size_t whylen) {
  if (sv->state != WORKER_RUNNING || !supervisor_has_worker(sv))
    return SUPERVISOR_PROGRESS_OK;
  if (!stall_watch_check(&sv->stall, in_read, pending, threshold, now_ms,
                         sv->env->stall_timeout_ms))
    return SUPERVISOR_PROGRESS_OK;
  snprintf(why, whylen, "worker made no progress for %llu ms with input pending",
           (unsigned long long)sv->env->stall_timeout_ms);
  if (sv->attached == NULL)
    return SUPERVISOR_PROGRESS_STALLED;
  /* Not ours to kill: disconnect it; the owner waits for a new one. */
  snprintf(sv->error, sizeof(sv->error), "%s; disconnected it", why);
  log_warn("slot %s: %s", sv->name, sv->error);
  stall_watch_reset(&sv->stall, in_read, now_ms);
  control_conn_close(sv->attached);
  return SUPERVISOR_PROGRESS_DISCONNECTED;
}
