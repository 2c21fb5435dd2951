#include "lv2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slots.h"
#include "worker_proc.h"

/* The longest answer read: every plugin of a large collection is a few hundred KiB. */
#define LV2_ANSWER_MAX (8u * 1024u * 1024u)
/* Queries at once: each is a process reading plugin data, seconds of CPU for a full list. */
#define LV2_QUERIES_MAX 4
/* runway-worker --list-lv2's exit status for a URI nothing is installed under. */
#define LV2_EXIT_NOT_INSTALLED 3

struct lv2_query {
  struct runwayd *d;
  struct lv2_query *next; /* d->lv2_queries */
  struct worker_proc *proc;
  uv_timer_t timer;
  lv2_query_fn done;
  void *user;
  char *uri; /* NULL: every plugin */
  bool timed_out;
  bool cancelled;
};

static void query_freed(uv_handle_t *h) {
  struct lv2_query *q = h->data;
  free(q->uri);
  free(q);
}

static void unlink_query(struct lv2_query *q) {
  for (struct lv2_query **p = &q->d->lv2_queries; *p != NULL; p = &(*p)->next) {
    if (*p == q) {
      *p = q->next;
      return;
    }
  }
}

static void finish(struct lv2_query *q, enum proto_err code, const json_t *answer,
                   const char *err) {
  unlink_query(q);
  if (q->done != NULL)
    q->done(q->d, code, answer, err, q->user);
  q->done = NULL;
  uv_timer_stop(&q->timer);
  uv_close((uv_handle_t *)&q->timer, query_freed);
}

static void query_exited(struct worker_proc *proc, int64_t status, int sig, void *user) {
  struct lv2_query *q = user;
  const char *asked = q->uri ? q->uri : "the installed plugins";
  char err[600];
  size_t len = 0;
  const char *out = worker_proc_captured(proc, &len);
  json_t *answer = NULL;
  enum proto_err code = PROTO_E_INTERNAL;

  if (q->cancelled) {
    code = PROTO_E_BUSY;
    snprintf(err, sizeof(err), "runwayd is stopping");
  } else if (q->timed_out) {
    snprintf(err, sizeof(err), "runway-worker did not describe %s within %d s", asked,
             LV2_QUERY_TIMEOUT_MS / 1000);
  } else if (sig != 0) {
    snprintf(err, sizeof(err),
             "runway-worker was killed by signal %d while describing %s (a plugin library that "
             "crashes when loaded?); runwayd's log has its output",
             sig, asked);
  } else if (status == LV2_EXIT_NOT_INSTALLED) {
    code = PROTO_E_NOT_FOUND;
    snprintf(err, sizeof(err),
             "no LV2 plugin <%s> is installed where runway-worker looks (LV2_PATH, else "
             "lilv's default); `runwayctl plugins --lv2` lists them",
             asked);
  } else if (status != 0 || out == NULL) {
    snprintf(err, sizeof(err),
             "runway-worker could not describe %s (exit status %lld%s); runwayd's log has its "
             "output",
             asked, (long long)status, out == NULL && status == 0 ? ", answer too long" : "");
  } else if ((answer = json_loadb(out, len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
             !json_is_object(answer)) {
    snprintf(err, sizeof(err), "runway-worker's description of %s is not a JSON object", asked);
  } else {
    code = PROTO_OK;
    err[0] = '\0';
  }
  worker_proc_detach(proc);
  q->proc = NULL;
  if (code != PROTO_OK && code != PROTO_E_NOT_FOUND && !q->cancelled)
    log_warn("LV2: %s", err);
  finish(q, code, code == PROTO_OK ? answer : NULL, err);
  json_decref(answer);
}

static void on_timeout(uv_timer_t *t) {
  struct lv2_query *q = t->data;
  q->timed_out = true;
  if (q->proc != NULL)
    worker_proc_stop(q->proc, 0);
}

/* A URI is handed to runway-worker as one argument after "--": it cannot be taken for an option. */
static bool plausible_uri(const char *uri) {
  size_t n = strlen(uri);
  return n > 0 && n < RW_PLUGIN_NAME_MAX && strchr(uri, ':') != NULL;
}

int lv2_query(struct runwayd *d, uv_loop_t *loop, const char *uri, lv2_query_fn done, void *user,
              char *err, size_t errlen) {
  if (uri != NULL && !plausible_uri(uri)) {
    snprintf(err, errlen,
             "\"%s\" is not an LV2 plugin URI (like http://drobilla.net/plugins/mda/"
             "Delay); `runwayctl plugins --lv2` lists them",
             uri);
    return -EINVAL;
  }
  unsigned running = 0;
  for (struct lv2_query *o = d->lv2_queries; o != NULL; o = o->next)
    running++;
  if (running >= LV2_QUERIES_MAX) {
    snprintf(err, errlen,
             "runway-worker is describing %u LV2 plugins already; try again when "
             "they are done",
             running);
    return -EBUSY;
  }
  struct lv2_query *q = calloc(1, sizeof(*q));
  if (q == NULL || (uri != NULL && (q->uri = strdup(uri)) == NULL)) {
    free(q);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  q->d = d;
  q->done = done;
  q->user = user;
  char rate[16];
  snprintf(rate, sizeof(rate), "%u",
           backend_is_open(d->backend) ? backend_sample_rate(d->backend) : 48000u);
  char *argv[] = {d->opt.worker_path,        "--list-lv2", "--json", "--sample-rate", rate,
                  uri != NULL ? "--" : NULL, q->uri,       NULL};
  struct worker_spawn spec = {
      .launch = &d->supervise.launch,
      .file = d->opt.worker_path,
      .argv = argv,
      .segment_fds = {-1, -1},
      .slot = "lv2-catalog",
      .on_exit = query_exited,
      .user = q,
      .capture_max = LV2_ANSWER_MAX,
  };
  int rc = worker_proc_spawn(loop, &spec, &q->proc, err, errlen);
  if (rc != 0) {
    free(q->uri);
    free(q);
    return rc;
  }
  uv_timer_init(loop, &q->timer);
  q->timer.data = q;
  uv_timer_start(&q->timer, on_timeout, LV2_QUERY_TIMEOUT_MS, 0);
  q->next = d->lv2_queries;
  d->lv2_queries = q;
  return 0;
}

struct waiter {
  enum proto_err code;
  json_t *answer;
  char err[600];
};

static void waited(struct runwayd *d, enum proto_err code, const json_t *answer, const char *err,
                   void *user) {
  struct waiter *w = user;
  (void)d;
  w->code = code;
  w->answer = answer != NULL ? json_incref((json_t *)answer) : NULL;
  snprintf(w->err, sizeof(w->err), "%s", err ? err : "");
}

enum proto_err lv2_query_wait(struct runwayd *d, const char *uri, json_t **answer, char *err,
                              size_t errlen) {
  struct waiter w = {.code = PROTO_E_INTERNAL};
  uv_loop_t loop;
  *answer = NULL;
  if (uv_loop_init(&loop) != 0) {
    snprintf(err, errlen, "cannot make an event loop to ask runway-worker");
    return PROTO_E_INTERNAL;
  }
  int rc = lv2_query(d, &loop, uri, waited, &w, err, errlen);
  if (rc == 0) {
    /* Until the query's process, pipes and timer are all closed. */
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  if (rc != 0)
    return rc == -EINVAL  ? PROTO_E_INVALID_ARGUMENT
           : rc == -EBUSY ? PROTO_E_BUSY
                          : PROTO_E_INTERNAL;
  if (w.code != PROTO_OK) {
    snprintf(err, errlen, "%s", w.err);
    return w.code;
  }
  *answer = w.answer;
  return PROTO_OK;
}

/* An integer the answer gives, within [0, max]; -1 when it is missing or absurd. */
static int64_t count(const json_t *o, const char *key, int64_t max) {
  const json_t *v = json_object_get(o, key);
  int64_t n = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
  return n >= 0 && n <= max ? n : -1;
}

enum proto_err lv2_fill_spec(const json_t *answer, const char *uri, struct slot_spec *spec,
                             char *err, size_t errlen) {
  const json_t *p = json_object_get(answer, "plugin");
  const char *got = json_string_value(json_object_get(p, "uri"));
  if (!json_is_object(p) || got == NULL || strcmp(got, uri) != 0) {
    snprintf(err, errlen, "runway-worker described another plugin than <%s>", uri);
    return PROTO_E_INTERNAL;
  }
  if (!json_is_true(json_object_get(p, "supported"))) {
    const char *why = json_string_value(json_object_get(p, "unsupported"));
    snprintf(err, errlen, "runway cannot host <%s>: %s", uri, why ? why : "(no reason given)");
    return PROTO_E_INVALID_ARGUMENT;
  }
  /* Plugins have up to about a hundred ports of a kind; a slot has at most RW_MAX_CHANNELS. */
  int64_t in = count(p, "inputs", 65536), out = count(p, "outputs", 65536);
  if (in < 0 || out < 0 || !json_is_boolean(json_object_get(p, "midi"))) {
    snprintf(err, errlen, "runway-worker's description of <%s> has no channel counts", uri);
    return PROTO_E_INTERNAL;
  }
  if (spec->inputs < 0)
    spec->inputs = in < RW_MAX_CHANNELS ? in : RW_MAX_CHANNELS;
  if (spec->outputs < 0)
    spec->outputs = out < RW_MAX_CHANNELS ? out : RW_MAX_CHANNELS;
  if (spec->midi < 0)
    spec->midi = json_is_true(json_object_get(p, "midi"));
  return PROTO_OK;
}

void lv2_queries_cancel(struct runwayd *d) {
  for (struct lv2_query *q = d->lv2_queries; q != NULL; q = q->next) {
    q->cancelled = true;
    if (q->proc != NULL)
      worker_proc_stop(q->proc, 0);
  }
}
