/*
 * Files that must survive crashes: written whole or not at all (temporary
 * file in the same directory, write, fsync, rename, fsync of the directory;
 * every result checked), so a full disk or an unwritable directory leaves
 * the previous file intact. Control thread only (it blocks on the disk).
 */
#ifndef RUNWAY_DAEMON_PERSIST_H
#define RUNWAY_DAEMON_PERSIST_H

#include <stddef.h>

/*
 * The state directory: explicit if given, else $XDG_STATE_HOME/runway, else
 * ~/.local/state/runway for a user instance, else /var/lib/runway.
 * Returns 0 or -ENAMETOOLONG.
 */
int persist_state_dir(const char *explicit_dir, char *buf, size_t len);

/* Creates dir and its parents (mode 0750 for the last one). 0 or -errno with a message. */
int persist_ensure_dir(const char *dir, char *err, size_t errlen);

/* Replaces path with data atomically. 0 or -errno with a message naming the failed step. */
int persist_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/*
 * The same, keeping the file it replaces as `previous` (replacing that):
 * path always holds one whole generation, previous the one before.
 */
int persist_write_keeping(const char *path, const char *previous, const void *data, size_t len,
                          char *err, size_t errlen);

/*
 * Reads a whole regular file of at most max bytes into a NUL-terminated
 * buffer (*out, free() it). Never waits: a FIFO or device is refused, not
 * opened for reading. 0, -ENOENT when it does not exist, -EFBIG when larger
 * than max, -EINVAL when not a regular file, or another -errno, with a
 * message.
 */
int persist_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                      size_t errlen);

/* The same, refusing a path whose last component is a symbolic link (-ELOOP). */
int persist_read_nofollow(const char *path, size_t max, char **out, size_t *len, char *err,
                          size_t errlen);

/* Base64 (RFC 4648, with padding). encode returns a malloc'd string or NULL. */
char *persist_base64_encode(const unsigned char *data, size_t len);
/* Returns 0, or -EINVAL for anything that is not canonical base64. *out is malloc'd. */
int persist_base64_decode(const char *s, unsigned char **out, size_t *len);

#endif
