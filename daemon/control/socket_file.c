/*
 * The control socket's file: its directory made when missing, and a stale
 * socket left by a daemon that died cleared away, while a live one, a link
 * or anything else at the path is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control_internal.h"

int control__ensure_parent_dir(const char *path, char *err, size_t errlen) {
  char dir[SUN_PATH_MAX];
  struct stat st;
  char *slash;

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir)
    return 0;
  *slash = '\0';
  if (mkdir(dir, 0755) == 0) {
    /* mkdir applied the umask; the directory is meant to be searchable by clients. */
    if (chmod(dir, 0755) != 0) {
      int rc = -errno;
      proto_set_err(err, errlen, "cannot set the mode of %s: %s", dir, strerror(-rc));
      return rc;
    }
    return 0;
  }
  if (errno != EEXIST) {
    int rc = -errno;
    proto_set_err(err, errlen, "cannot create the directory %s: %s; create it or use --socket", dir,
                  strerror(-rc));
    return rc;
  }
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    proto_set_err(err, errlen, "%s exists but is not a directory; remove it or use --socket", dir);
    return -ENOTDIR;
  }
  return 0;
}

void control__fill_addr(struct sockaddr_un *addr, const char *path) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, strlen(path) + 1);
}

/* Leaves path free to bind: nothing there, or a stale socket removed. */
int control__clear_path(const char *path, char *err, size_t errlen) {
  struct sockaddr_un addr;
  struct stat st;
  int fd, rc, e;

  if (lstat(path, &st) != 0) {
    if (errno == ENOENT)
      return 0;
    rc = -errno;
    proto_set_err(err, errlen, "cannot check %s: %s", path, strerror(-rc));
    return rc;
  }
  if (S_ISLNK(st.st_mode)) {
    proto_set_err(
        err, errlen,
        "%s is a symbolic link; runwayd does not follow links for its socket: remove it or "
        "use --socket",
        path);
    return -ELOOP;
  }
  if (!S_ISSOCK(st.st_mode)) {
    proto_set_err(err, errlen, "%s exists and is not a socket; remove it or use --socket", path);
    return -EEXIST;
  }

  /* A socket file outlives its daemon: only one that nobody answers on is stale. */
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    rc = -errno;
    proto_set_err(err, errlen, "socket: %s", strerror(-rc));
    return rc;
  }
  control__fill_addr(&addr, path);
  rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
  e = errno;
  (void)close(fd); /* a probe: nothing was sent */
  if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
    proto_set_err(err, errlen, "another runwayd is listening on %s; stop it or use --socket", path);
    return -EADDRINUSE;
  }
  if (e != ECONNREFUSED) {
    proto_set_err(err, errlen, "cannot tell whether %s is in use (%s); remove it or use --socket",
                  path, strerror(e));
    return -e;
  }
  if (unlink(path) != 0 && errno != ENOENT) {
    rc = -errno;
    proto_set_err(err, errlen, "cannot remove the stale socket %s: %s; remove it or use --socket",
                  path, strerror(-rc));
    return rc;
  }
  return 0;
}
