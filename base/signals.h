/*
 * Signal masks around thread creation. The libuv loop thread alone handles
 * signals (uv_signal_start); every other thread, the audio server's RT
 * thread first of all, is created with every signal blocked, so a signal
 * handler never runs on it. Threads inherit the mask of their creator:
 * block, create, restore.
 */
#ifndef RUNWAY_BASE_SIGNALS_H
#define RUNWAY_BASE_SIGNALS_H

#include <pthread.h>
#include <signal.h>

/* Blocks every signal in the calling thread; *saved gets the mask to restore. */
static inline void base_block_signals(sigset_t *saved) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, saved);
}

static inline void base_restore_signals(const sigset_t *saved) {
  pthread_sigmask(SIG_SETMASK, saved, NULL);
}

#endif
