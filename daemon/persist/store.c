#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "persist.h"
#include "slot_state.h"
#include "slots.h"

#define STORE_FILE "slots.json"
#define STORE_MAX_BYTES (256u * 1024u * 1024u)
#define STORE_MIN_INTERVAL_MS 500
#define STORE_RETRY_MS 5000

static int store_path(const struct runwayd *d, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s/%s", d->state_dir, STORE_FILE);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * One daemon per state directory: two would overwrite each other's
 * slots.json. The lock is held for the daemon's life (the kernel drops it
 * when the process goes, however it goes); the file names the holder.
 */
static int lock_dir(struct runwayd *d, char *err, size_t errlen) {
  char path[PATH_MAX + 32], holder[32] = "";
  snprintf(path, sizeof(path), "%s/runwayd.lock", d->state_dir);
  /*
   * The lock is held on a read-only descriptor: one open for writing would
   * keep the directory's file system from being remounted read-only.
   */
  int wfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  bool read_only = wfd < 0 && errno == EROFS;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (read_only && fd < 0) {
    /* Nothing can be written there, by us or another daemon: reading needs no lock. */
    log_warn("%s is on a read-only file system; not locking it", d->state_dir);
    return 0;
  }
  if (fd < 0 || (wfd < 0 && !read_only)) {
    int e = errno;
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
    if (fd >= 0)
      close(fd);
    if (wfd >= 0)
      close(wfd);
    return -e;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    close(fd);
    if (wfd >= 0)
      close(wfd);
    if (e == EWOULDBLOCK) {
      snprintf(err, errlen,
               "another runwayd (pid %s) uses the state directory %s; stop it, or give this one "
               "its own --state-dir",
               holder[0] ? holder : "unknown", d->state_dir);
      return -EBUSY;
    }
    snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
    return -e;
  }
  int n = snprintf(holder, sizeof(holder), "%d\n", (int)getpid());
  if (wfd >= 0 && (ftruncate(wfd, 0) != 0 || pwrite(wfd, holder, (size_t)n, 0) != n))
    log_warn("cannot write our pid into %s: %s", path, strerror(errno));
  if (wfd >= 0 && close(wfd) != 0)
    log_warn("cannot close %s: %s", path, strerror(errno));
  d->store.lock_fd = fd;
  return 0;
}

/* presets/: where members of the socket group keep state files (slot_state.c). */
static void ensure_presets(struct runwayd *d) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s/presets", d->state_dir);
  if (mkdir(path, 02770) != 0 && errno != EEXIST) {
    log_warn("cannot create %s: %s; group members cannot save or load state files", path,
             strerror(errno));
    return;
  }
  struct group *gr = d->opt.socket_group ? getgrnam(d->opt.socket_group) : NULL;
  if (gr != NULL && chown(path, (uid_t)-1, gr->gr_gid) != 0)
    log_warn("cannot give %s to group %s: %s", path, gr->gr_name, strerror(errno));
}

int store_open(struct runwayd *d, char *err, size_t errlen) {
  d->store.orphans = json_array();
  d->store.lock_fd = -1;
  int rc = persist_ensure_dir(d->state_dir, err, errlen);
  if (rc != 0) {
    snprintf(d->store.error, sizeof(d->store.error), "%s", err);
    return rc;
  }
  rc = lock_dir(d, err, errlen);
  if (rc != 0)
    return rc;
  ensure_presets(d);
  d->store.enabled = true;
  return 0;
}

static json_t *entry_of(const struct slot *s) {
  json_t *e = slot_definition_json(s);
  char *b64 = s->state_len > 0 ? persist_base64_encode(s->state_blob, s->state_len) : NULL;
  json_object_set_new(e, "params", slots_param_values(s));
  json_object_set_new(e, "state", b64 ? json_string(b64) : json_null());
  json_object_set_new(e, "from_config", json_boolean(s->from_config));
  free(b64);
  return e;
}

int store_flush(struct runwayd *d, bool force) {
  char path[4200], err[512];
  uint64_t now = base_mono_ms();
  if (!d->store.dirty || d->state_dir[0] == '\0')
    return 0;
  if (!force) {
    uint64_t wait = d->store.error[0] ? STORE_RETRY_MS : STORE_MIN_INTERVAL_MS;
    if (now - d->store.last_try_ms < wait)
      return 0;
  }
  d->store.last_try_ms = now;
  if (d->store.frozen)
    return -EPERM; /* an unreadable slots.json is never overwritten (store_load) */
  if (!d->store.enabled) {
    /* The directory may have become usable (created, remounted, permissions fixed). */
    if (persist_ensure_dir(d->state_dir, err, sizeof(err)) != 0) {
      snprintf(d->store.error, sizeof(d->store.error), "%s", err);
      return -EIO;
    }
    d->store.enabled = true;
  }

  json_t *slots = json_array();
  for (uint32_t i = 0; i < d->n_slots; i++)
    json_array_append_new(slots, entry_of(d->slots[i]));
  /* An unrestorable entry goes once a slot of its name exists: that slot replaced it. */
  for (size_t k = json_array_size(d->store.orphans); k-- > 0;) {
    json_t *entry = json_object_get(json_array_get(d->store.orphans, k), "entry");
    const char *name = json_string_value(json_object_get(entry, "name"));
    if (name != NULL && slots_find(d, name) != NULL)
      json_array_remove(d->store.orphans, k);
    else
      json_array_append(slots, entry);
  }
  json_t *doc =
      json_pack("{s:s, s:i, s:o}", "format", "runway-slots", "version", 1, "slots", slots);
  char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  char prev[sizeof(path) + 8];
  if (text == NULL || store_path(d, path, sizeof(path)) != 0) {
    free(text);
    snprintf(d->store.error, sizeof(d->store.error), "cannot serialise the slots");
    return -ENOMEM;
  }
  size_t len = strlen(text);
  text[len] = '\n';
  snprintf(prev, sizeof(prev), "%s.prev", path);
  int rc = persist_write_keeping(path, prev, text, len + 1, err, sizeof(err));
  free(text);
  if (rc != 0) {
    /* Reported once per distinct error; the previous file is intact and we retry. */
    if (strcmp(d->store.error, err) != 0)
      log_error("cannot save the slots (the previous %s is kept; retrying): %s", path, err);
    snprintf(d->store.error, sizeof(d->store.error), "%s", err);
    return rc;
  }
  if (d->store.error[0] != '\0')
    log_info("slots saved to %s again", path);
  d->store.error[0] = '\0';
  d->store.dirty = false;
  return 0;
}

static int restore_entry(struct runwayd *d, json_t *e, char *err, size_t errlen) {
  struct slot_spec spec;
  if (slot_spec_from_json(e, &spec, err, errlen) != 0)
    return -EINVAL;
  /* slots.json holds only what the configuration or a privileged asker made. */
  spec.privileged = true;
  spec.owner = geteuid();
  struct slot *s;
  enum proto_err code = slots_add(d, &spec, &s, err, errlen);
  if (code != PROTO_OK)
    return -EINVAL;
  slots_set_param_values(s, json_object_get(e, "params"));
  s->from_config = json_is_true(json_object_get(e, "from_config"));
  const char *b64 = json_string_value(json_object_get(e, "state"));
  if (b64 != NULL) {
    unsigned char *blob;
    size_t len;
    if (persist_base64_decode(b64, &blob, &len) == 0) {
      slot_state_set_blob(s, blob, len);
      free(blob);
    } else {
      log_warn("slot %s: its saved state is not valid base64; starting without it", s->name);
    }
  }
  return 0;
}

/* Reads and checks a slots file: 0 with *doc, -ENOENT, or another -errno with why. */
static int read_doc(const char *path, json_t **doc, char *why, size_t whylen) {
  char *text;
  size_t len;
  *doc = NULL;
  int rc = persist_read_file(path, STORE_MAX_BYTES, &text, &len, why, whylen);
  if (rc != 0)
    return rc;
  json_error_t jerr;
  json_t *d = json_loadb(text, len, 0, &jerr);
  free(text);
  if (d == NULL) {
    snprintf(why, whylen, "%s is not valid JSON (line %d: %s)", path, jerr.line, jerr.text);
    return -EBADMSG;
  }
  if (!json_is_array(json_object_get(d, "slots")) ||
      json_integer_value(json_object_get(d, "version")) != 1) {
    snprintf(why, whylen, "%s is not a runway slots file (version 1)", path);
    json_decref(d);
    return -EPROTO;
  }
  *doc = d;
  return 0;
}

/*
 * slots.json cannot be read: keep it aside under a new name so the next
 * save cannot destroy it; if even that fails, save nothing at all.
 */
static void keep_damaged(struct runwayd *d, const char *path, const char *why) {
  char stamp[32], aside[sizeof(d->store.damaged)];
  time_t now = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", localtime_r(&now, &tm));
  snprintf(aside, sizeof(aside), "%s.damaged-%s", path, stamp);
  if (rename(path, aside) == 0) {
    snprintf(d->store.damaged, sizeof(d->store.damaged), "%s", aside);
    log_error("%s; it is kept as %s and a new %s will be written", why, aside, path);
    return;
  }
  d->store.frozen = true;
  snprintf(d->store.damaged, sizeof(d->store.damaged), "%s", path);
  snprintf(d->store.error, sizeof(d->store.error),
           "%s, and it cannot be moved aside (%s); nothing is saved until it is repaired or "
           "removed",
           why, strerror(errno));
  log_error("%s", d->store.error);
}

int store_load(struct runwayd *d, char *err, size_t errlen) {
  char path[4200], prev[4210], why[600];
  json_t *doc;
  if (!d->store.enabled || store_path(d, path, sizeof(path)) != 0)
    return 0;
  snprintf(prev, sizeof(prev), "%s.prev", path);
  int rc = read_doc(path, &doc, why, sizeof(why));
  if (rc == -ENOENT)
    return 0;
  if (rc != 0) {
    keep_damaged(d, path, why);
    if (read_doc(prev, &doc, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "the slots of %s are lost unless it is repaired: no usable %s either",
               d->store.damaged, prev);
      return -EPROTO;
    }
    log_warn("restoring the slots from the previous generation, %s", prev);
  }
  size_t i;
  json_t *e;
  uint32_t restored = 0;
  json_array_foreach(json_object_get(doc, "slots"), i, e) {
    if (restore_entry(d, e, why, sizeof(why)) == 0) {
      restored++;
    } else {
      /* Kept in the file: a plugin missing today may be installed tomorrow. */
      log_error("cannot restore a slot from %s: %s; keeping its entry (`runwayctl status` shows "
                "it, `runwayctl slot remove NAME` drops it)",
                path, why);
      json_array_append_new(d->store.orphans, json_pack("{s:O, s:s}", "entry", e, "reason", why));
    }
  }
  json_decref(doc);
  if (restored > 0)
    log_info("restored %u slot(s) from %s", restored, rc == 0 ? path : prev);
  /* Restored from the backup: write a fresh slots.json; otherwise it is as read. */
  d->store.dirty = rc != 0 && !d->store.frozen;
  return 0;
}

bool store_forget_orphan(struct runwayd *d, const char *name) {
  for (size_t k = 0; name != NULL && k < json_array_size(d->store.orphans); k++) {
    json_t *entry = json_object_get(json_array_get(d->store.orphans, k), "entry");
    if (strcmp(json_string_value(json_object_get(entry, "name")) ?: "", name) == 0) {
      json_array_remove(d->store.orphans, k);
      store_mark_dirty(d);
      return true;
    }
  }
  return false;
}

json_t *store_status_json(const struct runwayd *d) {
  json_t *unrestored = json_array();
  size_t k;
  json_t *o;
  json_array_foreach(d->store.orphans, k, o) {
    json_t *entry = json_object_get(o, "entry");
    json_array_append_new(unrestored,
                          json_pack("{s:O?, s:O?, s:O?}", "name", json_object_get(entry, "name"),
                                    "plugin", json_object_get(entry, "plugin"), "reason",
                                    json_object_get(o, "reason")));
  }
  return json_pack("{s:s, s:b, s:o, s:o, s:o}", "dir", d->state_dir, "saved",
                   d->store.enabled && !d->store.dirty && d->store.error[0] == '\0', "error",
                   d->store.error[0] ? json_string(d->store.error) : json_null(), "damaged",
                   d->store.damaged[0] ? json_string(d->store.damaged) : json_null(), "unrestored",
                   unrestored);
}

void store_close(struct runwayd *d) {
  json_decref(d->store.orphans);
  d->store.orphans = NULL;
  if (d->store.lock_fd >= 0)
    close(d->store.lock_fd);
  d->store.lock_fd = -1;
}
