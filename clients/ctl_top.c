/*
 * runwayctl top: a live view of runwayd's slots, their workers and the RT
 * cycle, in the manner of pw-top. It is built on two commands only: one
 * connection subscribes to events (a slot changing state, a restart, a fault,
 * a replacement is drawn at once) and asks for `stats` once per refresh
 * interval; between the two it sleeps in ppoll() on the connection, the
 * terminal and the signals, so it costs the daemon one request a second.
 *
 * Rates (a worker's CPU share, the RT cycle's average) come from the
 * difference of two samples; a view therefore needs a previous sample, and
 * --once takes two, one interval apart.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"

#define TOP_REQUEST_TIMEOUT_MS 5000
/* Events redraw at once, but no more often than this. */
#define TOP_MIN_REDRAW_MS 100

/* ---- the view (pure: unit-tested) ------------------------------------------- */

static double num(const json_t *obj, const char *key, double fallback) {
  const json_t *v = json_object_get(obj, key);
  return json_is_number(v) ? json_number_value(v) : fallback;
}

static const json_t *find_slot(const json_t *stats, const char *name) {
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(stats, "slots"), i, s) {
    const char *n = json_string_value(json_object_get(s, "name"));
    if (n != NULL && strcmp(n, name) == 0)
      return s;
  }
  return NULL;
}

/* Frames as milliseconds at rate; NAN for null or missing. */
static double frames_ms(const json_t *obj, const char *key, double rate) {
  const json_t *v = json_object_get(obj, key);
  return json_is_integer(v) && rate > 0 ? (double)json_integer_value(v) * 1000.0 / rate : NAN;
}

/*
 * One slot's row: the counters as they are, the worker's CPU share over the
 * interval (when the same worker ran in both samples) and the lead in ms.
 */
static json_t *slot_row(const json_t *s, const json_t *before, double dt_ms, double rate) {
  json_t *row = json_pack(
      "{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "name", json_object_get(s, "name"),
      "state", json_object_get(s, "state"), "pid", json_object_get(s, "pid"), "underruns",
      json_object_get(s, "underruns"), "skipped_frames", json_object_get(s, "skipped_frames"),
      "restarts", json_object_get(s, "restarts"), "on_fault", json_object_get(s, "on_fault"),
      "lead_histogram", json_object_get(s, "lead_histogram"), "replacing",
      json_object_get(s, "replacing"));
  if (row == NULL)
    return NULL;
  double cpu = NAN;
  const json_t *pid = json_object_get(s, "pid");
  if (before != NULL && dt_ms > 0 && json_is_integer(pid) &&
      json_equal(pid, json_object_get(before, "pid")) &&
      json_is_integer(json_object_get(s, "worker_cpu_ms")) &&
      json_is_integer(json_object_get(before, "worker_cpu_ms")))
    cpu = (num(s, "worker_cpu_ms", 0) - num(before, "worker_cpu_ms", 0)) * 100.0 / dt_ms;
  json_object_set_new(row, "cpu_percent", isnan(cpu) || cpu < 0 ? json_null() : json_real(cpu));
  double lat = frames_ms(s, "latency_frames", rate);
  double lead = frames_ms(s, "lead_min_recent_frames", rate);
  double lead_min = frames_ms(s, "headroom_min_frames", rate);
  json_object_set_new(row, "latency_ms", isnan(lat) ? json_null() : json_real(lat));
  json_object_set_new(row, "lead_ms", isnan(lead) ? json_null() : json_real(lead));
  json_object_set_new(row, "lead_min_ms", isnan(lead_min) ? json_null() : json_real(lead_min));
  return row;
}

json_t *ctl_top_view(const json_t *prev, const json_t *cur, double dt_ms) {
  const json_t *daemon = json_object_get(cur, "daemon");
  const json_t *pd = json_object_get(prev, "daemon");
  double rate = num(daemon, "sample_rate", 0), period = num(daemon, "period", 0);
  double period_us = rate > 0 ? period * 1e6 / rate : NAN;
  double avg_ns = num(daemon, "rt_cycle_ns_avg", NAN);
  /* Over the interval when both samples have the sums, else the daemon's lifetime average. */
  double cycles = num(daemon, "cycles", 0) - num(pd, "cycles", 0);
  if (pd != NULL && cycles > 0 && json_is_integer(json_object_get(daemon, "rt_cycle_ns_sum")))
    avg_ns = (num(daemon, "rt_cycle_ns_sum", 0) - num(pd, "rt_cycle_ns_sum", 0)) / cycles;
  /* The largest in the last whole second; the lifetime's until a second has passed. */
  double max_ns = num(daemon, "rt_cycle_ns_max_recent", 0);
  if (!(max_ns > 0))
    max_ns = num(daemon, "rt_cycle_ns_max", NAN);
  json_t *d = json_pack(
      "{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "sample_rate", json_object_get(daemon, "sample_rate"),
      "period", json_object_get(daemon, "period"), "xruns", json_object_get(daemon, "xruns"),
      "cycles", json_object_get(daemon, "cycles"), "backend_state",
      json_object_get(daemon, "backend_state"), "slots", json_object_get(daemon, "slots"));
  json_t *slots = json_array();
  if (d == NULL || slots == NULL) {
    json_decref(d);
    json_decref(slots);
    return NULL;
  }
  json_object_set_new(d, "period_us", isnan(period_us) ? json_null() : json_real(period_us));
  json_object_set_new(d, "rt_cycle_us_avg", isnan(avg_ns) ? json_null() : json_real(avg_ns / 1e3));
  json_object_set_new(d, "rt_cycle_us_max", isnan(max_ns) ? json_null() : json_real(max_ns / 1e3));
  json_object_set_new(
      d, "rt_load_percent",
      isnan(avg_ns) || !(period_us > 0) ? json_null() : json_real(avg_ns / 1e3 * 100 / period_us));
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(cur, "slots"), i, s) {
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *row = slot_row(s, name != NULL ? find_slot(prev, name) : NULL, dt_ms, rate);
    if (row != NULL)
      json_array_append_new(slots, row);
  }
  return json_pack("{s:f, s:o, s:o}", "interval_ms", dt_ms, "daemon", d, "slots", slots);
}

/* A cell of a number, or "-" for null. */
static void cell_num(char *buf, size_t len, const json_t *obj, const char *key, int decimals) {
  const json_t *v = json_object_get(obj, key);
  if (json_is_integer(v))
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    snprintf(buf, len, "%.*f", decimals, json_real_value(v));
  else
    snprintf(buf, len, "-");
}

/* Strings from the daemon go to a terminal: control characters are shown as '?'. */
static void cell_str(char *buf, size_t len, const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  size_t i = 0;
  for (s = s ? s : "-"; *s != '\0' && i + 1 < len; s++)
    buf[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  buf[i] = '\0';
}

/*
 * The lead histogram as one character per bucket, from ' ' (no cycles) to
 * '#' (the most), on a log scale so a rare near-underrun still shows: the
 * first bucket is the cycles that came up short.
 */
static void sparkline(char *buf, size_t len, const json_t *hist) {
  static const char ramp[] = " .:-=+*#";
  double top = 0;
  size_t i, n = 0;
  const json_t *v;
  json_array_foreach(hist, i, v) if (json_number_value(v) > top) top = json_number_value(v);
  json_array_foreach(hist, i, v) {
    if (n + 1 >= len)
      break;
    double c = json_number_value(v);
    int level = c <= 0 || top <= 0 ? 0 : 1 + (int)(log1p(c) / log1p(top) * 6.999);
    buf[n++] = ramp[level > 7 ? 7 : level];
  }
  buf[n] = '\0';
  if (n == 0)
    snprintf(buf, len, "-");
}

void ctl_top_render(FILE *f, const json_t *view, int width, int once) {
  const json_t *d = json_object_get(view, "daemon");
  char line[512], rate[32], period[32], xruns[32], avg[32], max[32], load[32], pus[32];
  cell_num(rate, sizeof(rate), d, "sample_rate", 0);
  cell_num(period, sizeof(period), d, "period", 0);
  cell_num(pus, sizeof(pus), d, "period_us", 0);
  cell_num(xruns, sizeof(xruns), d, "xruns", 0);
  cell_num(avg, sizeof(avg), d, "rt_cycle_us_avg", 1);
  cell_num(max, sizeof(max), d, "rt_cycle_us_max", 1);
  cell_num(load, sizeof(load), d, "rt_load_percent", 1);
  /* Each line is cut at the terminal's width and clears what an older, longer one left. */
  const char *eol = once ? "\n" : "\033[K\n";
#define TOP_LINE(...)                                                                              \
  do {                                                                                             \
    snprintf(line, sizeof(line), __VA_ARGS__);                                                     \
    fprintf(f, "%.*s%s", width > 0 ? width : (int)sizeof(line), line, eol);                        \
  } while (0)
  TOP_LINE("runway top: %s Hz, period %s frames (%s us)%s", rate, period, pus,
           once ? "" : "; q quits");
  TOP_LINE("RT cycle: avg %s us, max %s us of %s us (%s %% of the period); xruns %s", avg, max, pus,
           load, xruns);
  TOP_LINE("%s", "");
  TOP_LINE("%-16s %-10s %7s %6s %7s %7s %7s %9s %9s %8s  %s", "NAME", "STATE", "PID", "CPU%",
           "LEAD ms", "MIN ms", "L ms", "UNDERRUNS", "SKIPPED", "RESTARTS", "LEAD HISTOGRAM");
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(view, "slots"), i, s) {
    char name[64], state[32], pid[16], cpu[16], lead[16], lmin[16], lat[16], under[24], skip[24],
        restarts[16], hist[32];
    cell_str(name, sizeof(name), s, "name");
    cell_str(state, sizeof(state), s, "state");
    if (json_is_true(json_object_get(s, "replacing")))
      snprintf(state + strlen(state), sizeof(state) - strlen(state), "+new");
    cell_num(pid, sizeof(pid), s, "pid", 0);
    cell_num(cpu, sizeof(cpu), s, "cpu_percent", 1);
    cell_num(lead, sizeof(lead), s, "lead_ms", 1);
    cell_num(lmin, sizeof(lmin), s, "lead_min_ms", 1);
    cell_num(lat, sizeof(lat), s, "latency_ms", 1);
    cell_num(under, sizeof(under), s, "underruns", 0);
    cell_num(skip, sizeof(skip), s, "skipped_frames", 0);
    cell_num(restarts, sizeof(restarts), s, "restarts", 0);
    sparkline(hist, sizeof(hist), json_object_get(s, "lead_histogram"));
    TOP_LINE("%-16s %-10s %7s %6s %7s %7s %7s %9s %9s %8s  [%s]", name, state, pid, cpu, lead, lmin,
             lat, under, skip, restarts, hist);
  }
  if (json_array_size(json_object_get(view, "slots")) == 0)
    TOP_LINE("%s", "(no slots)");
#undef TOP_LINE
}

/* ---- the terminal and the loop -------------------------------------------------- */

static volatile sig_atomic_t top_stop, top_resized;

static void on_stop(int sig) {
  (void)sig;
  top_stop = 1;
}

static void on_winch(int sig) {
  (void)sig;
  top_resized = 1;
}

struct top {
  struct proto_client *c;
  const struct ctl_args *args;
  json_int_t next_id;
  json_t *prev; /* the last stats result */
  uint64_t prev_ms;
  int tty; /* drawing on a terminal: in place, keys read raw */
  struct termios saved;
  int raw;
  sigset_t waitmask; /* while waiting: the stop and resize signals let through */
};

static int terminal_width(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 0;
}

/* Keys without Enter, no echo; the alternate screen, the cursor hidden (as top does). */
static void terminal_enter(struct top *t) {
  if (!t->tty)
    return;
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
    struct termios raw = t->saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
      t->raw = 1;
  }
  fputs("\033[?1049h\033[?25l", stdout);
}

static void terminal_leave(struct top *t) {
  if (!t->tty)
    return;
  fputs("\033[?25h\033[?1049l", stdout);
  fflush(stdout);
  if (t->raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
}

/*
 * Sends a request and reads lines until its answer (events that come
 * meanwhile only ask for a redraw). Returns the result (a new reference), or
 * NULL with *status set.
 */
static json_t *request(struct top *t, const char *cmd, json_t *args, int *redraw, int *status) {
  json_int_t id = ++t->next_id;
  json_t *msg =
      json_pack("{s:I, s:s, s:o}", "id", id, "cmd", cmd, "args", args ? args : json_object());
  size_t len;
  char *line = msg ? proto_dump_line(msg, &len) : NULL;
  json_decref(msg);
  uint64_t deadline = base_mono_ms() + TOP_REQUEST_TIMEOUT_MS;
  if (line == NULL) {
    *status = CTL_EXIT_ERROR;
    return NULL;
  }
  int rc = proto_client_send(t->c, line, len, deadline);
  free(line);
  while (rc == 0) {
    const char *text;
    ssize_t n = proto_client_read_line(t->c, deadline, &text, NULL);
    if (n == -EINTR) {
      if (top_stop) {
        *status = CTL_EXIT_OK;
        return NULL;
      }
      continue;
    }
    if (n < 0) {
      rc = (int)n;
      break;
    }
    json_t *answer = json_loadb(text, (size_t)n, 0, NULL);
    if (json_object_get(answer, "event") != NULL) {
      *redraw = 1;
      json_decref(answer);
      continue;
    }
    if (json_integer_value(json_object_get(answer, "id")) != id) {
      json_decref(answer);
      continue; /* not ours (cannot happen: one request at a time) */
    }
    if (!json_is_true(json_object_get(answer, "ok"))) {
      const json_t *e = json_object_get(answer, "error");
      fprintf(stderr, "runwayctl: %s: %s\n", json_string_value(json_object_get(e, "code")) ?: "?",
              json_string_value(json_object_get(e, "message")) ?: "?");
      json_decref(answer);
      *status = CTL_EXIT_ERROR;
      return NULL;
    }
    json_t *result = json_incref(json_object_get(answer, "result"));
    json_decref(answer);
    return result;
  }
  fprintf(stderr, "runwayctl: talking to runwayd: %s\n",
          rc == -EPIPE ? "it closed the connection" : strerror(-rc));
  *status = CTL_EXIT_UNREACHABLE;
  return NULL;
}

/* One refresh: stats, the view against the last sample, drawn or printed. */
static int refresh(struct top *t, int draw) {
  int redraw = 0, status = CTL_EXIT_OK;
  json_t *cur = request(t, "stats", NULL, &redraw, &status);
  if (cur == NULL)
    return status == CTL_EXIT_OK ? -1 : status;
  uint64_t now = base_mono_ms();
  json_t *view = ctl_top_view(t->prev, cur, t->prev ? (double)(now - t->prev_ms) : 0);
  json_decref(t->prev);
  t->prev = cur;
  t->prev_ms = now;
  if (view == NULL)
    return CTL_EXIT_ERROR;
  if (draw) {
    if (t->args->json) {
      json_object_set_new(view, "time_ms", json_integer((json_int_t)now));
      char *text = json_dumps(view, JSON_COMPACT);
      if (text != NULL)
        printf("%s\n", text);
      free(text);
    } else {
      if (t->tty)
        fputs("\033[H", stdout);
      ctl_top_render(stdout, view, t->tty ? terminal_width() : 0, !t->tty);
      if (t->tty)
        fputs("\033[J", stdout);
      else
        fputs("\n", stdout);
    }
  }
  json_decref(view);
  if (fflush(stdout) != 0)
    return CTL_EXIT_ERROR;
  return CTL_EXIT_OK;
}

/* Waits until deadline for a key, an event line or a signal. 1: q pressed; 0; or an exit status. */
static int wait_until(struct top *t, uint64_t deadline, int *redraw) {
  for (;;) {
    /* Lines already buffered first: ppoll would not see them. */
    const char *text;
    ssize_t n;
    while ((n = proto_client_read_line(t->c, PROTO_CLIENT_NOW, &text, NULL)) >= 0)
      *redraw = 1; /* only events come unasked */
    if (n != -ETIMEDOUT) {
      fprintf(stderr, "runwayctl: runwayd closed the connection\n");
      return CTL_EXIT_UNREACHABLE;
    }
    if (top_stop)
      return 1;
    if (top_resized) {
      top_resized = 0;
      *redraw = 1;
    }
    uint64_t now = base_mono_ms();
    if (now >= deadline || *redraw)
      return 0;
    struct pollfd pfd[2] = {{.fd = t->c->fd, .events = POLLIN},
                            {.fd = STDIN_FILENO, .events = POLLIN}};
    uint64_t left = deadline - now;
    struct timespec ts = {.tv_sec = (time_t)(left / 1000),
                          .tv_nsec = (long)(left % 1000) * 1000000};
    int rc = ppoll(pfd, t->raw ? 2 : 1, &ts, &t->waitmask);
    if (rc < 0 && errno != EINTR)
      return CTL_EXIT_ERROR;
    if (rc > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
        proto_client_fill(t->c, PROTO_CLIENT_NOW) == -EPIPE) {
      fprintf(stderr, "runwayctl: runwayd closed the connection\n");
      return CTL_EXIT_UNREACHABLE;
    }
    if (rc > 0 && t->raw && (pfd[1].revents & POLLIN)) {
      char key[16];
      ssize_t k = read(STDIN_FILENO, key, sizeof(key));
      for (ssize_t i = 0; i < k; i++)
        if (key[i] == 'q' || key[i] == 'Q')
          return 1;
    }
  }
}

int ctl_top(const struct ctl_args *args, struct proto_client *c) {
  const json_t *a = json_object_get(args->request, "args");
  int once = json_is_true(json_object_get(a, "once"));
  double interval_s = json_is_number(json_object_get(a, "interval"))
                          ? json_number_value(json_object_get(a, "interval"))
                          : 1.0;
  uint64_t interval_ms = (uint64_t)(interval_s * 1000);
  struct top t = {.c = c, .args = args, .tty = !once && !args->json && isatty(STDOUT_FILENO)};
  int status = CTL_EXIT_OK, redraw = 0;

  /* Stop and resize signals arrive only inside ppoll (waitmask), where they end the wait. */
  struct sigaction sa;
  sigset_t blocked;
  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_winch;
  sigaction(SIGWINCH, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGWINCH);
  sigprocmask(SIG_BLOCK, &blocked, &t.waitmask);
  sigdelset(&t.waitmask, SIGINT);
  sigdelset(&t.waitmask, SIGTERM);
  sigdelset(&t.waitmask, SIGWINCH);
  proto_client_set_sigmask(c, &t.waitmask);

  if (!once) {
    /* Events redraw at once: a slot that changes state need not wait for the next second. */
    json_t *sub =
        request(&t, "subscribe",
                json_pack("{s:[s,s,s,s]}", "events", "slot", "restart", "fault", "replace"),
                &redraw, &status);
    if (sub == NULL)
      return status;
    json_decref(sub);
  }
  terminal_enter(&t);
  /* The first sample only starts the rates; the first view follows at once for a terminal. */
  status = refresh(&t, 0);
  uint64_t next = base_mono_ms() + (t.tty ? TOP_MIN_REDRAW_MS : interval_ms);
  while (status == CTL_EXIT_OK) {
    int rc = wait_until(&t, next, &redraw);
    if (rc == 1)
      break;
    if (rc != 0) {
      status = rc;
      break;
    }
    if (redraw && base_mono_ms() < t.prev_ms + TOP_MIN_REDRAW_MS) {
      next = t.prev_ms + TOP_MIN_REDRAW_MS;
      continue;
    }
    redraw = 0;
    status = refresh(&t, 1);
    if (status < 0) {
      status = CTL_EXIT_OK; /* stopped while waiting for the answer */
      break;
    }
    if (once)
      break;
    next = base_mono_ms() + interval_ms;
  }
  terminal_leave(&t);
  json_decref(t.prev);
  return status;
}
