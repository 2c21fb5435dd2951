/*
 * Telling the service manager how runwayd is doing (sd_notify): readiness,
 * a one-line status, stopping, reloads, and the watchdog. Every function is
 * a no-op when NOTIFY_SOCKET is unset (runwayd started by hand, or by a
 * supervisor other than systemd), so main() calls them unconditionally.
 * Failures to notify are logged at debug level and otherwise ignored: the
 * daemon works the same whether or not anybody listens.
 *
 * Control thread only; none of these is RT safe.
 */
#ifndef RUNWAY_DAEMON_NOTIFY_H
#define RUNWAY_DAEMON_NOTIFY_H

#include <uv.h>

/*
 * READY=1 with STATUS=status (NULL: no status). Send it when the control
 * socket listens and the backend is active. Only the first call sends
 * READY=1; later calls, for example at every reconnect to the audio server,
 * only update STATUS=.
 */
void notify_ready(const char *status);

/*
 * STATUS= with a printf-formatted one-line text (newlines become spaces),
 * sent only when it differs from the last status sent, so a periodic timer
 * may call it freely.
 */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STOPPING=1: the daemon has begun its teardown. */
void notify_stopping(void);

/*
 * RELOADING=1 (with MONOTONIC_USEC=, which Type=notify-reload wants) when a
 * reload (SIGHUP) starts, and READY=1 when it is done, whatever its outcome.
 * Both do nothing before notify_ready: a reload while the daemon still waits
 * for the audio server must not make it look ready.
 */
void notify_reloading(void);
void notify_reloaded(void);

/*
 * When the service manager asked for a watchdog (WATCHDOG_USEC, and
 * WATCHDOG_PID naming this process if set), starts a timer on loop that
 * sends WATCHDOG=1 at half the interval. The pings come from the loop
 * itself, so a loop that hangs stops them and gets the daemon restarted.
 * The timer does not keep the loop alive (uv_unref). Returns 1 when the
 * watchdog runs, 0 when none is configured, or -errno when WATCHDOG_USEC
 * is malformed.
 */
int notify_watchdog_start(uv_loop_t *loop);

/* Stops and closes the watchdog timer (run the loop before uv_loop_close). */
void notify_watchdog_stop(void);

#endif
