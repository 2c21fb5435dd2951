/*
 * What runwayd keeps resident. Everything of its own is locked whole
 * (mlockall), so the RT callback never faults on code, stack, heap or a
 * segment. A mapping that is mostly something else's, JACK2's port table
 * above all (about 33 KB of the server's shared memory per port of the
 * whole server, 100 MB and more, of which a client reads a page or two per
 * port it uses), is instead locked page by page as it is touched: the
 * pages the callback uses stay resident, the rest is neither locked nor
 * counted in runwayd's memory. Control thread only.
 */
#ifndef RUNWAY_DAEMON_MEMLOCK_H
#define RUNWAY_DAEMON_MEMLOCK_H

#include <stddef.h>

/* mlockall of everything now and later. Returns 0 or -errno (no privilege: RLIMIT_MEMLOCK). */
int sys_lock_all(void);

/*
 * Every shared mapping of a file whose path starts with prefix and that is
 * at least min_size bytes: unlocked, its pages dropped from this process
 * (the file keeps them) and locked again on touch (MLOCK_ONFAULT). Call it
 * before the RT thread runs: each page the RT path then needs must be
 * touched first (sys_touch), or it faults once, the first time. *released:
 * the bytes of mappings so treated (none when sys_lock_all had failed, or
 * was not called). Returns 0 or -errno.
 */
int sys_lock_on_touch(const char *prefix, size_t min_size, size_t *released);

/* Reads a byte of every page of [p, p + n): they are mapped, and locked if locked on touch. */
void sys_touch(const void *p, size_t n);

#endif
