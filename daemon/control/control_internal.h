/*
 * What the control server's files share (control__ names): peer checks
 * (peers.c) and the socket file (socket_file.c). Control thread only.
 */
#ifndef RUNWAY_DAEMON_CONTROL_INTERNAL_H
#define RUNWAY_DAEMON_CONTROL_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#include "protocol.h"

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define NAME_MAX_LEN 64

struct control_peers {
  uid_t euid;                    /* the daemon's own user */
  gid_t group;                   /* (gid_t)-1: none */
  char user_name[NAME_MAX_LEN];  /* euid's name for messages, or empty */
  char group_name[NAME_MAX_LEN]; /* group's name for messages, or empty */
};

/*
 * Fills p, looking names up once, at start: a lookup may ask a directory
 * service, which the loop must never wait for at accept time.
 */
void control__peers_init(struct control_peers *p, gid_t group);

/* 1 when the peer on fd (uid, primary gid) may use the socket. */
int control__peer_allowed(const struct control_peers *p, int fd, uid_t uid, gid_t gid);

/* "uid 1001 (gid 1001) may not control runwayd: run as root, as ..., or as ...". */
void control__refusal(const struct control_peers *p, uid_t uid, gid_t gid, char *buf, size_t len);

/* Creates the socket's directory (0755) when missing. 0 or -errno with a message. */
int control__ensure_parent_dir(const char *path, char *err, size_t errlen);

/* Leaves path free to bind: nothing there, or a stale socket removed. */
int control__clear_path(const char *path, char *err, size_t errlen);

void control__fill_addr(struct sockaddr_un *addr, const char *path);

#endif
