#include "persist.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int persist_state_dir(const char *explicit_dir, char *buf, size_t len) {
  const char *xdg = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  int n;
  if (explicit_dir != NULL && explicit_dir[0] != '\0')
    n = snprintf(buf, len, "%s", explicit_dir);
  else if (xdg != NULL && xdg[0] == '/')
    n = snprintf(buf, len, "%s/runway", xdg);
  else if (geteuid() != 0 && home != NULL && home[0] == '/')
    n = snprintf(buf, len, "%s/.local/state/runway", home);
  else
    n = snprintf(buf, len, "/var/lib/runway");
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int persist_ensure_dir(const char *dir, char *err, size_t errlen) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
    snprintf(err, errlen, "state directory path is too long");
    return -ENAMETOOLONG;
  }
  /* mkdir -p: create each missing component in turn. */
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
      return -e;
    }
    *p = '/';
  }
  if (mkdir(path, 0750) != 0 && errno != EEXIST) {
    int e = errno;
    snprintf(err, errlen, "cannot create state directory %s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "state directory %s is not a directory", path);
    return -ENOTDIR;
  }
  return 0;
}

static int fail(int e, char *err, size_t errlen, const char *step, const char *path) {
  snprintf(err, errlen, "%s %s: %s", step, path, strerror(e));
  return -e;
}

static int write_atomic(const char *path, const char *previous, const void *data, size_t len,
                        char *err, size_t errlen) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  const unsigned char *p = data;
  int fd, rc = 0;

  if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp) ||
      snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
    snprintf(err, errlen, "path too long: %s", path);
    return -ENAMETOOLONG;
  }
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0)
    return fail(errno, err, errlen, "cannot create a temporary file for", path);
  if (fchmod(fd, 0640) != 0) {
    rc = fail(errno, err, errlen, "cannot set the mode of", tmp);
    goto fail_open;
  }
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      rc = fail(errno, err, errlen, "cannot write", tmp);
      goto fail_open;
    }
    p += w;
    len -= (size_t)w;
  }
  /* The data must be on disk before the rename makes it the file. */
  if (fsync(fd) != 0) {
    rc = fail(errno, err, errlen, "cannot flush", tmp);
    goto fail_open;
  }
  if (close(fd) != 0) {
    rc = fail(errno, err, errlen, "cannot close", tmp);
    goto fail_closed;
  }
  /*
   * The file being replaced stays as `previous`: a hard link made before the
   * rename, so at every moment path holds one complete generation or the other.
   */
  if (previous != NULL && link(path, previous) != 0 && errno == EEXIST &&
      (unlink(previous) != 0 || link(path, previous) != 0)) {
    rc = fail(errno, err, errlen, "cannot keep the previous file as", previous);
    goto fail_closed;
  }
  if (rename(tmp, path) != 0) {
    rc = fail(errno, err, errlen, "cannot replace", path);
    goto fail_closed;
  }
  /* And the rename itself must be on disk. */
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return fail(errno, err, errlen, "cannot open the directory of", path);
  if (fsync(dfd) != 0) {
    rc = fail(errno, err, errlen, "cannot flush the directory of", path);
    close(dfd);
    return rc;
  }
  if (close(dfd) != 0)
    return fail(errno, err, errlen, "cannot close the directory of", path);
  return 0;

fail_open:
  close(fd);
fail_closed:
  unlink(tmp);
  return rc;
}

int persist_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
  return write_atomic(path, NULL, data, len, err, errlen);
}

int persist_write_keeping(const char *path, const char *previous, const void *data, size_t len,
                          char *err, size_t errlen) {
  return write_atomic(path, previous, data, len, err, errlen);
}

/*
 * O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; it is
 * refused as not a regular file right after.
 */
static int read_file(const char *path, int flags, size_t max, char **out, size_t *len, char *err,
                     size_t errlen) {
  struct stat st;
  int rc = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
  if (fd < 0 && errno == ELOOP && (flags & O_NOFOLLOW)) {
    snprintf(err, errlen, "%s is a symbolic link; name the file itself", path);
    return -ELOOP;
  }
  if (fd < 0)
    return fail(errno, err, errlen, "cannot open", path);
  if (fstat(fd, &st) != 0) {
    rc = fail(errno, err, errlen, "cannot stat", path);
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s is not a regular file", path);
    rc = -EINVAL;
    goto out;
  }
  if ((uint64_t)st.st_size > max) {
    snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
    rc = -EFBIG;
    goto out;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory reading %s", path);
    goto out;
  }
  size_t n = 0;
  while (n < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      rc = r < 0 ? fail(errno, err, errlen, "cannot read", path) : -EIO;
      if (r == 0)
        snprintf(err, errlen, "%s shrank while being read", path);
      free(buf);
      goto out;
    }
    n += (size_t)r;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
out:
  close(fd);
  return rc;
}

int persist_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                      size_t errlen) {
  return read_file(path, 0, max, out, len, err, errlen);
}

int persist_read_nofollow(const char *path, size_t max, char **out, size_t *len, char *err,
                          size_t errlen) {
  return read_file(path, O_NOFOLLOW, max, out, len, err, errlen);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *persist_base64_encode(const unsigned char *data, size_t len) {
  size_t out_len = (len + 2) / 3 * 4;
  char *out = malloc(out_len + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)data[i + 1] << 8;
    if (i + 2 < len)
      v |= data[i + 2];
    *o++ = b64[(v >> 18) & 63];
    *o++ = b64[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? b64[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static int b64_value(char c) {
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

int persist_base64_decode(const char *s, unsigned char **out, size_t *len) {
  size_t n = strlen(s);
  if (n % 4 != 0)
    return -EINVAL;
  unsigned char *buf = malloc(n / 4 * 3 + 1);
  size_t k = 0;
  if (buf == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i += 4) {
    int a = b64_value(s[i]), b = b64_value(s[i + 1]);
    int last = i + 4 == n;
    int c = s[i + 2] == '=' && last ? -2 : b64_value(s[i + 2]);
    int d = s[i + 3] == '=' && last ? -2 : b64_value(s[i + 3]);
    /* RFC 4648 3.5: the bits a final group leaves over are zero (one text per blob). */
    bool stray = (c == -2 && (b & 0x0f) != 0) || (c >= 0 && d == -2 && (c & 0x03) != 0);
    if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) || stray) {
      free(buf);
      return -EINVAL;
    }
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)(c < 0 ? 0 : c) << 6 |
                 (uint32_t)(d < 0 ? 0 : d);
    buf[k++] = (unsigned char)(v >> 16);
    if (c >= 0)
      buf[k++] = (unsigned char)(v >> 8);
    if (d >= 0)
      buf[k++] = (unsigned char)v;
  }
  *out = buf;
  *len = k;
  return 0;
}
