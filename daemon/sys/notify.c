#include "notify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "log.h"

static bool ready_sent;
static bool send_failed;
static char last_status[512];
static uv_timer_t watchdog;
static bool watchdog_running;

static bool notify_enabled(void) {
  const char *socket = getenv("NOTIFY_SOCKET");
  return socket != NULL && socket[0] != '\0';
}

static void notify_send(const char *msg) {
  if (!notify_enabled())
    return;
  int rc = sd_notify(0, msg);
  if (rc >= 0)
    return;
  /*
   * Say it once loudly: a service manager that never hears READY=1 or
   * WATCHDOG=1 will stop the daemon, and this is the only trace of why.
   */
  if (!send_failed)
    log_warn("cannot notify the service manager (NOTIFY_SOCKET): %s", strerror(-rc));
  else
    log_debug("cannot notify the service manager: %s", strerror(-rc));
  send_failed = true;
}

/*
 * Sends prefix + "STATUS=text", with text made one line (it may be changed).
 * Without a prefix, an unchanged text is not sent again.
 */
static void send_status(const char *prefix, char *text) {
  char msg[600];
  for (char *p = text; *p != '\0'; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  if (prefix[0] == '\0' && strcmp(text, last_status) == 0)
    return;
  snprintf(last_status, sizeof(last_status), "%s", text);
  snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix, text);
  notify_send(msg);
}

void notify_ready(const char *status) {
  char text[512];
  if (status != NULL) {
    snprintf(text, sizeof(text), "%s", status);
    send_status(ready_sent ? "" : "READY=1\n", text);
  } else if (!ready_sent) {
    notify_send("READY=1");
  }
  ready_sent = true;
}

void notify_status(const char *fmt, ...) {
  char text[512];
  va_list ap;
  if (!notify_enabled())
    return;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  send_status("", text);
}

void notify_stopping(void) {
  char text[] = "stopping";
  send_status("STOPPING=1\n", text);
}

void notify_reloading(void) {
  char msg[64];
  if (!ready_sent)
    return;
  snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)base_mono_us());
  notify_send(msg);
}

void notify_reloaded(void) {
  if (ready_sent)
    notify_send("READY=1");
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  notify_send("WATCHDOG=1");
}

int notify_watchdog_start(uv_loop_t *loop) {
  uint64_t usec = 0;
  if (!notify_enabled() || watchdog_running)
    return watchdog_running ? 1 : 0;
  /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
  int rc = sd_watchdog_enabled(0, &usec);
  if (rc <= 0)
    return rc;
  uint64_t every_ms = usec / 2000;
  if (every_ms == 0)
    every_ms = 1;
  uv_timer_init(loop, &watchdog);
  /* The first ping goes out at once: start-up has already used some of the interval. */
  uv_timer_start(&watchdog, on_watchdog, 0, every_ms);
  /* The pings must never be the reason the loop keeps running (teardown ends with the loop). */
  uv_unref((uv_handle_t *)&watchdog);
  watchdog_running = true;
  log_info("watchdog: pinging the service manager every %llu ms", (unsigned long long)every_ms);
  return 1;
}

void notify_watchdog_stop(void) {
  if (!watchdog_running)
    return;
  uv_timer_stop(&watchdog);
  uv_close((uv_handle_t *)&watchdog, NULL);
  watchdog_running = false;
}
