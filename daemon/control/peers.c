/*
 * Who may use the control socket: root, the daemon's own user and members
 * of its group, checked with the peer's credentials at accept; and the
 * message that tells anybody else how to get access.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control_internal.h"

/* Linux >= 4.13; older C libraries may lack the constant. */
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

/* Supplementary groups read with one getsockopt before falling back to the heap. */
#define PEER_GROUPS_INLINE 64

/*
 * 1 when the peer belongs to group: by its primary gid, or by one of the
 * supplementary groups it had when it connected (SO_PEERGROUPS). Kernels
 * before 4.13 answer ENOPROTOOPT; then only the primary gid counts, which
 * errs towards refusing. Any other failure refuses too.
 */
static int peer_in_group(int fd, gid_t primary, gid_t group) {
  gid_t inline_groups[PEER_GROUPS_INLINE];
  gid_t *groups = inline_groups;
  socklen_t len = sizeof(inline_groups);
  int found = 0;

  if (primary == group)
    return 1;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
    /* ERANGE: len now says how much the list needs; it cannot change for this socket. */
    if (errno != ERANGE || len <= sizeof(inline_groups))
      return 0;
    groups = malloc(len);
    if (groups == NULL || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
      free(groups);
      return 0;
    }
  }
  for (size_t i = 0; i < len / sizeof(gid_t); i++)
    if (groups[i] == group)
      found = 1;
  if (groups != inline_groups)
    free(groups);
  return found;
}

/* Root, the daemon's own user and members of the configured group may control it. */
int control__peer_allowed(const struct control_peers *s, int fd, uid_t uid, gid_t gid) {
  if (uid == 0 || uid == s->euid)
    return 1;
  return s->group != (gid_t)-1 && peer_in_group(fd, gid, s->group);
}

/* "uid 1001 (gid 1001) may not control runwayd: run as root, as ..., or as ...". */
void control__refusal(const struct control_peers *s, uid_t uid, gid_t gid, char *buf, size_t len) {
  char user[NAME_MAX_LEN + 64] = "", group[2 * NAME_MAX_LEN + 128] = "";

  if (s->euid != 0) {
    if (s->user_name[0] != '\0')
      snprintf(user, sizeof(user), "as the daemon's user %s (uid %u)", s->user_name,
               (unsigned)s->euid);
    else
      snprintf(user, sizeof(user), "as the daemon's user (uid %u)", (unsigned)s->euid);
  }
  if (s->group != (gid_t)-1) {
    char name[NAME_MAX_LEN];
    if (s->group_name[0] != '\0')
      snprintf(name, sizeof(name), "%s", s->group_name);
    else
      snprintf(name, sizeof(name), "%u", (unsigned)s->group);
    snprintf(group, sizeof(group),
             "as a member of group %s (gid %u; after `usermod -aG %s USER`, log in again)", name,
             (unsigned)s->group, name);
  }
  if (user[0] != '\0' && group[0] != '\0')
    snprintf(buf, len, "uid %u (gid %u) may not control runwayd: run as root, %s, or %s",
             (unsigned)uid, (unsigned)gid, user, group);
  else if (user[0] != '\0' || group[0] != '\0')
    snprintf(buf, len, "uid %u (gid %u) may not control runwayd: run as root or %s", (unsigned)uid,
             (unsigned)gid, user[0] != '\0' ? user : group);
  else
    snprintf(buf, len, "uid %u (gid %u) may not control runwayd: run as root", (unsigned)uid,
             (unsigned)gid);
}

/*
 * Names for the refusal message, looked up once at start: a lookup may ask a
 * directory service, which the loop must never wait for at accept time.
 * Leaves buf empty when the id has no name.
 */
void control__peers_init(struct control_peers *s, gid_t group) {
  size_t cap = 4096;
  char *buf = NULL;

  memset(s, 0, sizeof(*s));
  s->euid = geteuid();
  s->group = group;

  for (;;) {
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    int rc, rc2 = 0;
    char *more = realloc(buf, cap);
    if (more == NULL)
      break;
    buf = more;
    rc = getpwuid_r(s->euid, &pw, buf, cap, &pwp);
    if (rc == 0 && pwp != NULL)
      snprintf(s->user_name, sizeof(s->user_name), "%s", pwp->pw_name);
    if (s->group != (gid_t)-1) {
      rc2 = getgrgid_r(s->group, &gr, buf, cap, &grp);
      if (rc2 == 0 && grp != NULL)
        snprintf(s->group_name, sizeof(s->group_name), "%s", grp->gr_name);
    }
    /* A group with many members needs a bigger buffer; 1 MiB is plenty. */
    if ((rc != ERANGE && rc2 != ERANGE) || cap >= 1024 * 1024)
      break;
    cap *= 4;
  }
  free(buf);
}
