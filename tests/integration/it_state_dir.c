/*
 * it_state_dir: an unwritable state directory is reported and loses
 * nothing. Needs root (it mounts a tmpfs); without root it reports a skip
 * (exit 77).
 *
 * The state directory is a 512 KiB tmpfs (unmounted at the end, and by a
 * guard process if the test dies first). runwayd keeps slot "g" (gain) in
 * its slots.json there.
 *   1. The slot is saved (status: state.saved true, state.error null; the
 *      file has it), and so is a param.set (-3 dB).
 *   2. The tmpfs filled to the brim with a filler file, then a param.set
 *      (-9): status reports state.error (saying what failed) and saved
 *      false, runwayd logs it, the old slots.json is intact, parseable and
 *      still says -3, and no temporary file is left. A state.save to the full
 *      disk gets io_error and leaves no file, not even a partial one.
 *   3. The filler removed: within a few seconds the state is saved (error
 *      null, saved true) with -9.
 *   4. The same with the tmpfs remounted read-only (-12), then read-write.
 *   5. A new runwayd on the directory: slot g is back with -12 dB.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 256
#define TMPFS_OPTS "size=512k,mode=0755"

static char mnt[PATH_MAX], slots_json[PATH_MAX + 16], filler[PATH_MAX + 16];

/* gain_db of slot g in slots.json; NAN when the file is missing, not JSON or has no g. */
static double file_gain(void) {
  json_t *doc = json_load_file(slots_json, 0, NULL);
  double v = NAN;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(doc, "slots"), i, e) {
    const char *name = h_str(e, "name");
    json_t *g = json_object_get(json_object_get(e, "params"), "gain_db");
    if (name != NULL && strcmp(name, "g") == 0 && json_is_number(g))
      v = json_number_value(g);
  }
  json_decref(doc);
  return v;
}

/* Files in the state directory whose name starts with prefix. */
static unsigned count_files(const char *prefix) {
  unsigned n = 0;
  DIR *d = opendir(mnt);
  struct dirent *e;
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

struct saved {
  struct h_conn *c;
  double want;
};

static bool saved_with(void *arg, char *seen, size_t len) {
  struct saved *w = arg;
  json_t *st = h_call(w->c, "status", NULL);
  json_t *state = json_object_get(st, "state");
  bool saved = json_is_true(json_object_get(state, "saved")) &&
               json_is_null(json_object_get(state, "error"));
  json_decref(st);
  double v = file_gain();
  snprintf(seen, len, "status saved %d; slots.json gain_db %g, want %g", saved, v, w->want);
  return saved && fabs(v - w->want) < 1e-6;
}

/* Waits until status says saved (error null) and the file has gain_db = want. */
static void wait_saved(struct h_conn *c, double want, unsigned timeout_ms, const char *when) {
  uint64_t t0 = h_now_ms();
  struct saved w = {c, want};
  H_WAIT_UNTIL(saved_with, &w, timeout_ms, "%s: the state to be saved", when);
  h_log("%s: saved (gain_db %g in slots.json) after %llu ms", when, want,
        (unsigned long long)(h_now_ms() - t0));
}

struct save_error {
  struct h_conn *c;
  json_t *status;
};

static bool error_reported(void *arg, char *seen, size_t len) {
  struct save_error *w = arg;
  json_t *st = h_call(w->c, "status", NULL);
  if (json_is_string(json_object_get(json_object_get(st, "state"), "error"))) {
    w->status = st;
    return true;
  }
  snprintf(seen, len, "no error in status");
  json_decref(st);
  return false;
}

/* Waits until status reports a saving error; checks what must hold meanwhile. */
static void wait_error(struct h_conn *c, double old, const char *needle, const char *when) {
  uint64_t t0 = h_now_ms();
  struct save_error w = {c, NULL};
  H_WAIT_UNTIL(error_reported, &w, 5000, "%s: status to report the saving error", when);
  json_t *state = json_object_get(w.status, "state");
  const char *err = json_string_value(json_object_get(state, "error"));
  bool saved = json_is_true(json_object_get(state, "saved"));
  h_log("%s: status after %llu ms: saved %s, error \"%s\"", when,
        (unsigned long long)(h_now_ms() - t0), saved ? "true" : "false", err);
  if (saved)
    h_error("%s: status says saved although it reports an error", when);
  if (strstr(err, needle) == NULL || strstr(err, "slots.json") == NULL)
    h_error("%s: the error does not say what failed (want \"%s\" and the file): %s", when, needle,
            err);
  json_decref(w.status);
  double v = file_gain();
  if (fabs(v - old) > 1e-6)
    h_error("%s: slots.json is not the old one intact (gain_db %g, want %g)", when, v, old);
  else
    h_log("%s: slots.json intact and parseable, gain_db %g", when, v);
  if (count_files("slots.json.tmp") != 0)
    h_error("%s: a temporary file is left in the state directory", when);
}

static void param_set(struct h_conn *c, double db) {
  json_decref(h_call(c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", "g", "param", "gain_db", "value", db)));
}

/* Writes the filler until the tmpfs has no byte left. */
static void fill(void) {
  static char block[65536];
  int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  H_CHECK(fd >= 0, "create %s: %s", filler, strerror(errno));
  size_t sizes[] = {sizeof(block), 4096, 1};
  uint64_t total = 0;
  memset(block, 0x5a, sizeof(block));
  for (size_t i = 0; i < 3; i++) {
    for (;;) {
      ssize_t w = write(fd, block, sizes[i]);
      if (w > 0) {
        total += (uint64_t)w;
        continue;
      }
      if (w < 0 && errno == EINTR)
        continue;
      H_CHECK(w < 0 && errno == ENOSPC, "filling %s: %s", filler, strerror(errno));
      break;
    }
  }
  H_CHECK(close(fd) == 0, "close %s", filler);
  h_log("the state directory is full: %llu bytes of filler", (unsigned long long)total);
}

static void start(struct h_daemon *d, struct h_jack *jack, struct h_conn *c) {
  const char *args[] = {"--state-dir", mnt, NULL};
  h_daemon_start(d, jack, args, NULL);
  H_CHECK(h_conn_open(c, d->socket) == 0, "connect to runwayd");
}

int main(void) {
  if (geteuid() != 0) {
    printf("it_state_dir: skipped: needs root to mount a tmpfs as the state directory\n");
    return 77;
  }
  h_init("state_dir", 80);
  snprintf(mnt, sizeof(mnt), "%s/state", h_tmpdir());
  snprintf(slots_json, sizeof(slots_json), "%s/slots.json", mnt);
  snprintf(filler, sizeof(filler), "%s/filler", mnt);
  char cmd[PATH_MAX + 64];
  snprintf(cmd, sizeof(cmd), "umount -l '%s' >/dev/null 2>&1; true", mnt);
  h_guard(cmd);
  H_CHECK(mkdir(mnt, 0755) == 0, "mkdir %s: %s", mnt, strerror(errno));
  if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, TMPFS_OPTS) != 0) {
    /* Root in a container may lack CAP_SYS_ADMIN: that is the machine, not runwayd. */
    if (errno == EPERM || errno == EACCES) {
      printf("it_state_dir: skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
      return 77;
    }
    H_FAIL("mount a tmpfs on %s: %s", mnt, strerror(errno));
  }
  h_log("tmpfs (%s) mounted on %s", TMPFS_OPTS, mnt);

  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  h_jack_start(&jack, RATE, PERIOD);
  start(&d, &jack, &c);

  /* 1. Saved. */
  json_decref(h_add_slot(
      &c, "g", json_pack("{s:s, s:i, s:i}", "plugin", "gain", "inputs", 1, "outputs", 1), 10000));
  wait_saved(&c, 0, 5000, "slot added");
  param_set(&c, -3);
  wait_saved(&c, -3, 5000, "param.set -3");

  /* 2. A full disk. */
  fill();
  size_t log_from = h_file_size(d.proc.log);
  param_set(&c, -9);
  wait_error(&c, -3, "No space left on device", "disk full, param.set -9");
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/g-state.json", mnt);
  json_t *r = h_call_error(&c, "state.save", json_pack("{s:s, s:s}", "name", "g", "file", path),
                           "io_error");
  h_log("state.save to the full disk -> io_error (\"%s\")",
        h_str(json_object_get(r, "error"), "message"));
  json_decref(r);
  struct stat sb;
  if (lstat(path, &sb) == 0 || count_files("g-state.json") != 0)
    h_error("state.save to a full disk left a file behind");
  if (h_file_count(d.proc.log, log_from, "cannot save the slots") == 0)
    h_error("runwayd did not log that it cannot save the slots");
  /* While the disk stays full the old file stays as it was. */
  json_decref(h_call(&c, "status", NULL));
  if (fabs(file_gain() - -3) > 1e-6)
    h_error("disk full: slots.json changed");

  /* 3. Space again. */
  H_CHECK(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
  wait_saved(&c, -9, 10000, "filler removed");

  /* 4. Read-only. */
  H_CHECK(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, TMPFS_OPTS) == 0,
          "remount %s read-only: %s", mnt, strerror(errno));
  h_log("the state directory is read-only");
  log_from = h_file_size(d.proc.log);
  param_set(&c, -12);
  wait_error(&c, -9, "Read-only file system", "read-only, param.set -12");
  if (h_file_count(d.proc.log, log_from, "cannot save the slots") == 0)
    h_error("runwayd did not log that it cannot save the slots (read-only)");
  H_CHECK(mount(NULL, mnt, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, TMPFS_OPTS) == 0,
          "remount %s read-write: %s", mnt, strerror(errno));
  h_log("the state directory is writable again");
  wait_saved(&c, -12, 10000, "remounted read-write");

  /* 5. A new runwayd on the directory. */
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  char buf[64];
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  start(&d, &jack, &c);
  json_decref(h_wait_slot(&c, "g", "running", 0, 10000));
  r = h_call(&c, "param.get", json_pack("{s:s, s:s}", "name", "g", "param", "gain_db"));
  double v = json_number_value(json_object_get(r, "value"));
  json_decref(r);
  h_log("after a restart of runwayd: slot g running, gain_db %g", v);
  if (fabs(v - -12) > 1e-6)
    h_error("after a restart of runwayd: gain_db %g, want -12", v);

  h_conn_close(&c);
  status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  H_CHECK(umount2(mnt, 0) == 0, "umount %s: %s", mnt, strerror(errno));
  h_pass();
}
