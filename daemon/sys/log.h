/*
 * runwayd's log: one line per message on stderr, with a syslog priority
 * prefix ("<3>") that journald understands when stderr is the journal.
 * Control thread and other non-RT threads only; the RT path keeps counters.
 */
#ifndef RUNWAY_DAEMON_LOG_H
#define RUNWAY_DAEMON_LOG_H

/* The values are syslog priorities, the "<N>" prefix of each line. */
enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

/* Parses "error", "warn", "info" or "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
