/*
 * it_peer: who may use the control socket. Needs root (it creates a group and
 * a user, and runs clients under other uids); without root it reports a skip
 * (exit 77).
 *
 * runwayd runs as root with --socket-group G, G a group made for the test
 * (groupadd), with one member made for the test (useradd, primary group
 * nogroup, G as a supplementary group); nobody (uid 65534) is not a member.
 * Clients are runwayctl run with `setpriv --reuid --regid`:
 *   - the socket file is mode 0660, owned by group G;
 *   - the member (G by --init-groups, so through SO_PEERGROUPS) and nobody
 *     with G as its primary gid both get answers (exit 0); so does the
 *     member through `runuser -u`;
 *   - nobody outside G cannot even connect (the file's mode): exit 3 and a
 *     message saying to join the socket's group;
 *   - with the file's permissions loosened to 0666 the daemon's own check
 *     (SO_PEERCRED) refuses nobody: permission_denied, exit 1, a message
 *     naming the group and how to join it; twenty times in a row, since the
 *     refusal races the client's request;
 *   - the daemon answers its own users throughout.
 * The group and the user are removed at the end, and by a guard process if
 * the test dies first.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef RWT_RUNWAYCTL
#error "RWT_RUNWAYCTL must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 256
#define DENIED_RUNS 20

static char group_name[32], user_name[32], sock[108], log_dir[PATH_MAX];

struct result {
  int code;
  char *out;
  char *err;
};

static void result_free(struct result *r) {
  free(r->out);
  free(r->err);
}

/* Runs argv (a command, as root) and fails the test unless it exits 0. */
static void must_run(const char *const *argv) {
  char *out = NULL, log[PATH_MAX + 16];
  snprintf(log, sizeof(log), "%s/admin.log", log_dir);
  int st = h_run_capture(argv, NULL, NULL, log, 15000, &out);
  free(out);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char *text = h_file_read(log);
    H_FAIL("%s %s failed (status 0x%x): %s", argv[0], argv[1], (unsigned)st, text ? text : "");
  }
}

/* Runs `prefix... runwayctl --socket S args...`; stderr captured separately. */
static struct result run_ctl(const char *const *prefix, const char *const *args) {
  const char *argv[40];
  size_t n = 0;
  static unsigned seq;
  char log[PATH_MAX + 32];
  struct result r = {0, NULL, NULL};
  for (size_t i = 0; prefix[i] != NULL; i++)
    argv[n++] = prefix[i];
  argv[n++] = RWT_RUNWAYCTL;
  argv[n++] = "--socket";
  argv[n++] = sock;
  for (size_t i = 0; args[i] != NULL && n < 39; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  snprintf(log, sizeof(log), "%s/ctl-%u.err", log_dir, seq++);
  const char *unset[] = {"RUNWAY_SOCKET", "XDG_RUNTIME_DIR", NULL};
  int st = h_run_capture(argv, NULL, unset, log, 15000, &r.out);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  r.err = h_file_read(log);
  if (r.err == NULL)
    r.err = strdup("");
  return r;
}

static void expect_served(const char *who, const char *const *prefix) {
  const char *args[] = {"--json", "status", NULL};
  struct result r = run_ctl(prefix, args);
  json_t *j = json_loads(r.out, 0, NULL);
  if (r.code != 0 || j == NULL || h_str(j, "version") == NULL)
    h_error("%s: runwayctl status exited %d; stdout: %s; stderr: %s", who, r.code, r.out, r.err);
  else
    h_log("%s: served (exit 0, runwayd %s)", who, h_str(j, "version"));
  json_decref(j);
  result_free(&r);
}

int main(void) {
  if (geteuid() != 0) {
    printf("it_peer: skipped: needs root to create a group and a user and to run clients under "
           "other uids\n");
    return 77;
  }
  h_init("peer", 55);
  snprintf(log_dir, sizeof(log_dir), "%s", h_tmpdir());
  snprintf(group_name, sizeof(group_name), "rwtg%d", (int)getpid());
  snprintf(user_name, sizeof(user_name), "rwtu%d", (int)getpid());

  /* The guard undoes these even if the test dies; newest first: the user, then the group. */
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "groupdel %s >/dev/null 2>&1; true", group_name);
  h_guard(cmd);
  snprintf(cmd, sizeof(cmd), "userdel -f %s >/dev/null 2>&1; true", user_name);
  h_guard(cmd);

  struct passwd *nobody = getpwnam("nobody");
  struct group *nogroup = getgrnam("nogroup");
  H_CHECK(nobody != NULL && nogroup != NULL, "no user nobody or group nogroup on this system");
  uid_t nobody_uid = nobody->pw_uid;
  gid_t nogroup_gid = nogroup->gr_gid;

  const char *groupadd[] = {"groupadd", group_name, NULL};
  must_run(groupadd);
  const char *useradd[] = {
      "useradd",  "--no-create-home", "--no-user-group", "--gid",   "nogroup",           "--groups",
      group_name, "--home-dir",       "/nonexistent",    "--shell", "/usr/sbin/nologin", user_name,
      NULL};
  must_run(useradd);
  struct group *g = getgrnam(group_name);
  struct passwd *u = getpwnam(user_name);
  H_CHECK(g != NULL && u != NULL, "the new group or user cannot be looked up");
  gid_t gid = g->gr_gid;
  uid_t member_uid = u->pw_uid;
  h_log("group %s (gid %u), member %s (uid %u); nobody (uid %u) is not a member", group_name,
        (unsigned)gid, user_name, (unsigned)member_uid, (unsigned)nobody_uid);

  /* Other users must reach the socket inside the test's directory. */
  H_CHECK(chmod(h_tmpdir(), 0711) == 0, "chmod %s: %s", h_tmpdir(), strerror(errno));

  struct h_jack jack;
  struct h_daemon d;
  h_jack_start(&jack, RATE, PERIOD);
  const char *args[] = {"--socket-group", group_name, NULL};
  h_daemon_start(&d, &jack, args, NULL);
  snprintf(sock, sizeof(sock), "%s", d.socket);

  struct stat st;
  H_CHECK(lstat(sock, &st) == 0, "stat %s: %s", sock, strerror(errno));
  h_log("socket %s: mode %04o, uid %u, gid %u", sock, (unsigned)(st.st_mode & 07777),
        (unsigned)st.st_uid, (unsigned)st.st_gid);
  if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0660 || st.st_gid != gid)
    h_error("the socket is mode %04o group %u, want 0660 group %u (%s)",
            (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid, (unsigned)gid, group_name);

  char uid_s[16], gid_s[16], nobody_s[16], nogroup_s[16];
  snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)member_uid);
  snprintf(gid_s, sizeof(gid_s), "%u", (unsigned)gid);
  snprintf(nobody_s, sizeof(nobody_s), "%u", (unsigned)nobody_uid);
  snprintf(nogroup_s, sizeof(nogroup_s), "%u", (unsigned)nogroup_gid);
  const char *as_member[] = {"setpriv", "--reuid",       uid_s, "--regid",
                             nogroup_s, "--init-groups", NULL};
  const char *as_primary[] = {"setpriv", "--reuid",        nobody_s, "--regid",
                              gid_s,     "--clear-groups", NULL};
  const char *as_runuser[] = {"runuser", "-u", user_name, "--", NULL};
  const char *as_stranger[] = {"setpriv", "--reuid",        nobody_s, "--regid",
                               nogroup_s, "--clear-groups", NULL};
  const char *as_root[] = {NULL};
  const char *status_args[] = {"status", NULL};

  expect_served("root", as_root);
  expect_served("the member (supplementary group)", as_member);
  expect_served("nobody with the group as its primary gid", as_primary);
  expect_served("the member through runuser", as_runuser);

  /* A stranger cannot connect: the file's mode keeps it out. */
  struct result r = run_ctl(as_stranger, status_args);
  h_log("nobody, socket 0660: exit %d, stderr: %s", r.code, r.err);
  if (r.code != 3 || strstr(r.err, "group") == NULL)
    h_error("nobody outside the group: want exit 3 (cannot connect) and a hint to join the "
            "socket's group; got exit %d, stderr: %s",
            r.code, r.err);
  result_free(&r);

  /* Loosened file permissions: the daemon's own peer check refuses the stranger. */
  H_CHECK(chmod(sock, 0666) == 0, "chmod %s: %s", sock, strerror(errno));
  unsigned denied_ok = 0;
  for (unsigned i = 0; i < DENIED_RUNS; i++) {
    r = run_ctl(as_stranger, status_args);
    bool ok = r.code == 1 && strstr(r.err, "permission_denied") != NULL &&
              strstr(r.err, group_name) != NULL && strstr(r.err, "usermod -aG") != NULL;
    if (i == 0 || !ok)
      h_log("nobody, socket 0666, run %u: exit %d, stderr: %s", i, r.code, r.err);
    if (ok)
      denied_ok++;
    else
      h_error("nobody outside the group, run %u: want permission_denied, exit 1 and a message "
              "naming group %s and how to join it; got exit %d, stdout: %s, stderr: %s",
              i, group_name, r.code, r.out, r.err);
    result_free(&r);
  }
  h_log("nobody refused with permission_denied and exit 1 in %u of %u runs", denied_ok,
        DENIED_RUNS);
  expect_served("the member, socket 0666", as_member);
  expect_served("root, after the refusals", as_root);

  struct h_conn c;
  H_CHECK(h_conn_open(&c, sock) == 0, "connect as root");
  json_decref(h_call(&c, "status", NULL));
  h_conn_close(&c);
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");

  int status = h_daemon_stop(&d);
  char buf[64];
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);

  const char *userdel[] = {"userdel", "-f", user_name, NULL};
  must_run(userdel);
  const char *groupdel[] = {"groupdel", group_name, NULL};
  must_run(groupdel);
  H_CHECK(getpwnam(user_name) == NULL && getgrnam(group_name) == NULL,
          "the test's user or group is still there");
  h_pass();
}
