/*
 * The plugin's declaration (the segment's info block) and its state: the
 * mailbox protocol of <runway/segment.h> (struct rw_state_request, read-only
 * to us, and struct rw_state_reply, ours), the plugin's
 * handlers, and the default format that saves the declared parameters.
 *
 * Mailbox, worker side: a request is waiting when request != done. The
 * daemon wrote op (and, for a load, length and data) before it bumped
 * request, so after an acquire load of request they are complete. The
 * worker answers with status (and, for a save, length and data), then
 * releases done = the request it answered. Everything the daemon wrote is
 * untrusted: op may be anything, length may exceed the mailbox, and the
 * daemon may even keep writing while we read, so each field is read once
 * and the data is copied to private memory before a plugin parses it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

/* Header line of the default format. */
#define DEFAULT_MAGIC "runway-params "
#define DEFAULT_VERSION 1u
/* Longest number token the default format reads ("-1.23456789e-38" is 15). */
#define NUMBER_MAX 63u

/* ---- info block ------------------------------------------------------------ */

static uint32_t info_flags(const rw_worker *w) {
  return w->state.save != NULL || w->state.load != NULL ? RW_INFO_F_STATE : 0u;
}

void rw__info_set_flags(rw_worker *w) {
  /*
   * The daemon reads the block after an acquire load of worker_pid, which we
   * store (release) after this when it happens before the first block. A
   * later change races with a daemon reading: a relaxed atomic store keeps
   * it tear-free, and the daemon re-reads it at best.
   */
  __atomic_store_n(&w->seg.info->flags, info_flags(w), __ATOMIC_RELAXED);
}

void rw__info_fill(rw_worker *w) {
  struct rw_info *info = w->seg.info;
  /* A previous worker of the slot may have declared more: clear everything it wrote. */
  memset(info, 0, sizeof(*info));
  snprintf(info->plugin, sizeof(info->plugin), "%s", w->plugin);
  __atomic_store_n(&info->latency, w->latency, __ATOMIC_RELAXED);
  for (uint32_t i = 0; i < w->n_params; i++) {
    struct rw_param_desc *d = &info->params[i];
    const struct rw__param *p = &w->params[i];
    d->id = p->id;
    d->min = p->min;
    d->max = p->max;
    d->def = p->value; /* the declared default: nothing has changed it yet */
    snprintf(d->name, sizeof(d->name), "%s", p->name);
    snprintf(d->unit, sizeof(d->unit), "%s", p->unit);
  }
  info->n_params = w->n_params;
  rw__info_set_flags(w);
}

int rw_worker_set_latency(rw_worker *w, uint32_t frames) {
  if (w == NULL || frames > RW_MAX_PLUGIN_LATENCY)
    return RW_ERR_INVALID;
  w->latency = frames;
  /* Relaxed: a lone value the daemon polls; it orders nothing else in the segment. */
  __atomic_store_n(&w->seg.info->latency, frames, __ATOMIC_RELAXED);
  return 0;
}

/* ---- default format ----------------------------------------------------------- */

/*
 * Writes v as the shortest "%.Ng" (N = 6..9) that reads back as the same
 * float; 9 digits always do. Returns what snprintf returns for it.
 */
static int format_value(char *buf, size_t cap, float v) {
  int n = 0;
  for (int digits = 6; digits <= 9; digits++) {
    n = snprintf(buf, cap, "%.*g", digits, (double)v);
    if (n < 0 || (size_t)n >= cap || strtof(buf, NULL) == v)
      break;
  }
  return n;
}

static int64_t default_save(rw_worker *w, unsigned char *buf, size_t cap) {
  char *out = (char *)buf;
  size_t used = 0;
  char number[NUMBER_MAX + 1];
  int64_t rc;

  /* %g and strtof follow LC_NUMERIC; the file must not ("0,5" in a German locale). */
  locale_t old = uselocale(w->c_locale);
  int n = snprintf(number, sizeof(number), "%s%u\n", DEFAULT_MAGIC, DEFAULT_VERSION);
  if (n < 0 || (size_t)n > cap) {
    rc = RW_ERR_NOMEM;
    goto out;
  }
  memcpy(out, number, (size_t)n);
  used = (size_t)n;
  for (uint32_t i = 0; i < w->n_params; i++) {
    const struct rw__param *p = &w->params[i];
    n = format_value(number, sizeof(number), p->value);
    if (n < 0 || (size_t)n >= sizeof(number)) {
      rc = RW_ERR_INVALID;
      goto out;
    }
    size_t name_len = strlen(p->name);
    size_t line = name_len + 1 + (size_t)n + 1;
    if (line > cap - used) {
      rc = RW_ERR_NOMEM;
      goto out;
    }
    memcpy(out + used, p->name, name_len);
    out[used + name_len] = ' ';
    memcpy(out + used + name_len + 1, number, (size_t)n);
    out[used + line - 1] = '\n';
    used += line;
  }
  rc = (int64_t)used;
out:
  uselocale(old);
  return rc;
}

static int is_name_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Length of the digit run at s[0..len), at most len. */
static size_t digits(const unsigned char *s, size_t len) {
  size_t n = 0;
  while (n < len && is_digit(s[n]))
    n++;
  return n;
}

/*
 * Checks that s[0..len) is exactly [+-]digits[.digits][(e|E)[+-]digits] with
 * at least one digit before the exponent. strtod alone would also take hex,
 * inf, nan and leading spaces.
 */
static int is_plain_number(const unsigned char *s, size_t len) {
  size_t i = 0;
  if (i < len && (s[i] == '+' || s[i] == '-'))
    i++;
  size_t whole = digits(s + i, len - i);
  i += whole;
  size_t frac = 0;
  if (i < len && s[i] == '.') {
    i++;
    frac = digits(s + i, len - i);
    i += frac;
  }
  if (whole + frac == 0)
    return 0;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      i++;
    size_t exp = digits(s + i, len - i);
    if (exp == 0)
      return 0;
    i += exp;
  }
  return i == len;
}

static struct rw__param *param_named(rw_worker *w, const unsigned char *name, size_t len) {
  for (uint32_t i = 0; i < w->n_params; i++)
    if (strlen(w->params[i].name) == len && memcmp(w->params[i].name, name, len) == 0)
      return &w->params[i];
  return NULL;
}

/* Reads the whole document into the params' staged values. 0, or RW_ERR_INVALID for garbage. */
static int default_parse(rw_worker *w, const unsigned char *s, size_t len) {
  const size_t magic_len = sizeof(DEFAULT_MAGIC) - 1;
  if (len < magic_len || memcmp(s, DEFAULT_MAGIC, magic_len) != 0)
    return RW_ERR_INVALID;
  size_t i = magic_len;
  size_t n = digits(s + i, len - i);
  /* Exactly "1": a newer version means a format this SDK cannot read. */
  if (n != 1 || s[i] != '0' + DEFAULT_VERSION)
    return RW_ERR_INVALID;
  i += n;
  if (i == len)
    return 0;
  if (s[i++] != '\n')
    return RW_ERR_INVALID;

  while (i < len) {
    size_t name = i;
    while (i < len && is_name_byte(s[i]))
      i++;
    size_t name_len = i - name;
    if (name_len == 0 || i == len || s[i] != ' ')
      return RW_ERR_INVALID;
    size_t number = ++i;
    while (i < len && s[i] != '\n')
      i++;
    size_t number_len = i - number;
    if (i < len)
      i++; /* the newline; only the last line may lack it */
    if (number_len == 0 || number_len > NUMBER_MAX || !is_plain_number(s + number, number_len))
      return RW_ERR_INVALID;

    struct rw__param *p = param_named(w, s + name, name_len);
    if (p == NULL)
      continue; /* a parameter this plugin (or this version of it) does not have */
    char text[NUMBER_MAX + 1];
    memcpy(text, s + number, number_len);
    text[number_len] = '\0';
    /* Overflow gives +-HUGE_VAL, which clamps like any other value out of range. */
    double v = strtod(text, NULL);
    v = v < p->min ? p->min : v > p->max ? p->max : v;
    p->staged = 1;
    p->staged_value = (float)v;
  }
  return 0;
}

static int default_load(rw_worker *w, const unsigned char *data, size_t len) {
  for (uint32_t i = 0; i < w->n_params; i++)
    w->params[i].staged = 0;
  locale_t old = uselocale(w->c_locale);
  int rc = default_parse(w, data, len);
  uselocale(old);
  if (rc != 0)
    return rc;
  /* All of it parsed: now apply it. */
  for (uint32_t i = 0; i < w->n_params; i++) {
    struct rw__param *p = &w->params[i];
    if (!p->staged)
      continue;
    p->value = p->staged_value;
    if (!p->loaded) {
      p->loaded = 1;
      w->n_loaded++;
    }
  }
  return 0;
}

/* ---- the mailbox ------------------------------------------------------------ */

int rw__state_init(rw_worker *w) {
  w->state_capacity = w->seg.layout.state_capacity;
  /* Untouched pages cost nothing: the buffer is only as real as the largest state. */
  w->state_buf = malloc(w->state_capacity ? w->state_capacity : 1);
  w->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (w->state_buf == NULL || w->c_locale == (locale_t)0)
    return RW_ERR_NOMEM;
  return 0;
}

void rw__state_free(rw_worker *w) {
  free(w->state_buf);
  w->state_buf = NULL;
  if (w->c_locale != (locale_t)0)
    freelocale(w->c_locale);
  w->c_locale = (locale_t)0;
}

static int custom_handlers(const rw_worker *w) {
  return w->state.save != NULL || w->state.load != NULL;
}

/* Runs the save handler; sets *length. Returns an enum rw_state_status. */
static int32_t do_save(rw_worker *w, uint32_t *length) {
  int64_t n;
  *length = 0;
  w->in_state_handler = 1;
  if (!custom_handlers(w))
    n = default_save(w, w->state_buf, w->state_capacity);
  else if (w->state.save != NULL)
    n = w->state.save(w->state.user, w->state_buf, w->state_capacity);
  else
    n = RW_ERR_UNSUPPORTED;
  w->in_state_handler = 0;

  if (n == RW_ERR_NOMEM)
    return RW_STATE_TOO_LARGE;
  if (n == RW_ERR_UNSUPPORTED)
    return RW_STATE_UNSUPPORTED;
  /* More than it was given is a broken handler: refuse rather than publish past the end. */
  if (n < 0 || n > (int64_t)w->state_capacity)
    return RW_STATE_FAILED;
  memcpy(w->seg.state_reply->data, w->state_buf, (size_t)n);
  *length = (uint32_t)n;
  return RW_STATE_OK;
}

/* Copies and checks the daemon's state, runs the load handler. Returns an enum rw_state_status. */
static int32_t do_load(rw_worker *w) {
  const struct rw_state_request *box = w->seg.state_request;
  /* Read once (atomically, so the compiler cannot read it again): a buggy daemon may still write.
   */
  uint32_t len = __atomic_load_n(&box->length, __ATOMIC_RELAXED);
  if (len > w->state_capacity)
    return RW_STATE_FAILED;
  /* A private copy: a handler must never parse bytes that change under it. */
  memcpy(w->state_buf, box->data, len);

  int rc;
  w->in_state_handler = 1;
  if (!custom_handlers(w))
    rc = default_load(w, w->state_buf, len);
  else if (w->state.load != NULL)
    rc = w->state.load(w->state.user, w->state_buf, len);
  else
    rc = RW_ERR_UNSUPPORTED;
  w->in_state_handler = 0;

  if (rc == RW_ERR_UNSUPPORTED)
    return RW_STATE_UNSUPPORTED;
  return rc < 0 ? RW_STATE_FAILED : RW_STATE_OK;
}

void rw__state_poll(rw_worker *w) {
  const struct rw_state_request *req = w->seg.state_request;
  struct rw_state_reply *reply = w->seg.state_reply;
  /* Acquire: op, length and data the daemon wrote before bumping request are visible. */
  uint32_t request = atomic_load_explicit(&req->request, memory_order_acquire);
  /* Relaxed: only we write done; a stale value (a dead predecessor's) just means "answer". */
  if (request == atomic_load_explicit(&reply->done, memory_order_relaxed))
    return;

  uint32_t op = __atomic_load_n(&req->op, __ATOMIC_RELAXED);
  int32_t status;
  if (op == RW_STATE_SAVE) {
    uint32_t length;
    status = do_save(w, &length);
    reply->length = length;
  } else if (op == RW_STATE_LOAD) {
    status = do_load(w);
  } else {
    status = RW_STATE_FAILED; /* RW_STATE_NONE or an op this SDK does not know */
  }
  reply->status = status;
  /* Release: status, length and data are written before the daemon sees the answer. */
  atomic_store_explicit(&reply->done, request, memory_order_release);
}

int rw_worker_set_state_handlers(rw_worker *w, const rw_state_handlers *h) {
  if (w == NULL)
    return RW_ERR_INVALID;
  if (w->in_state_handler) {
    rw__set_error(w, "rw_worker_set_state_handlers called from a state handler");
    return RW_ERR_INVALID;
  }
  if (h != NULL)
    w->state = *h;
  else
    memset(&w->state, 0, sizeof(w->state));
  rw__info_set_flags(w);
  return 0;
}
