#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level current = LOG_LEVEL_INFO;

int log_parse_level(const char *name, enum log_level *out) {
  static const struct {
    const char *name;
    enum log_level level;
  } names[] = {{"error", LOG_LEVEL_ERROR},
               {"warn", LOG_LEVEL_WARN},
               {"warning", LOG_LEVEL_WARN},
               {"info", LOG_LEVEL_INFO},
               {"debug", LOG_LEVEL_DEBUG}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(name, names[i].name) == 0) {
      *out = names[i].level;
      return 0;
    }
  }
  return -EINVAL;
}

void log_set_level(enum log_level level) { current = level; }

void log_msg(enum log_level level, const char *fmt, ...) {
  if (level > current)
    return;
  static const char *const tags[] = {[LOG_LEVEL_ERROR] = "error",
                                     [LOG_LEVEL_WARN] = "warning",
                                     [LOG_LEVEL_INFO] = "info",
                                     [LOG_LEVEL_DEBUG] = "debug"};
  char line[1024];
  int n = snprintf(line, sizeof(line), "<%d>runwayd: %s: ", (int)level, tags[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof(line) - 2)
    len = sizeof(line) - 2;
  line[len++] = '\n';
  /* One write per line so lines from several processes never interleave mid-line. */
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w; /* nowhere left to report a failing stderr */
}
