/*
 * The PipeWire backend's own structures, shared by its three files:
 * pipewire.c (the connection and the operations table), pipewire_slot.c (a
 * pw_filter node per slot and its latency) and pipewire_rt.c (what runs on
 * PipeWire's data thread).
 *
 * Threads and locks. Every pw_* call and every field marked "loop" is made
 * or touched under the thread loop's lock, by the control thread or by
 * PipeWire's loop thread (which holds the lock while it runs our events).
 * The data thread (PipeWire's RT thread) runs the process callbacks: it
 * takes no lock, touches only the fields marked "RT" and the atomics, and
 * never runs a node after pw_filter_destroy() returned (PipeWire removes the
 * node from the data loop with a blocking invoke first).
 */
#ifndef RUNWAY_DAEMON_BACKEND_PIPEWIRE_INTERNAL_H
#define RUNWAY_DAEMON_BACKEND_PIPEWIRE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <pipewire/filter.h>
#include <pipewire/pipewire.h>
#include <spa/param/latency-utils.h>
#include <spa/utils/result.h>

#include "backend.h"

/* pw_filter sizes DSP buffers for this many frames (MAX_SAMPLES in filter.c). */
#define PWB_MAX_FRAMES 8192u
/* MIDI events taken from one port in one cycle; the rest are dropped. */
#define PWB_MAX_MIDI 512u

struct pwb;
struct pwb_slot;

/* A port's user data in its pw_filter: what the slot's backend_slot handles point to. */
struct pwb_port {
  struct pwb_slot *slot;
  bool output;
  bool midi;
  /* RT: the buffer taken in the slot's cycle `taken`, and the MIDI parsed from it. */
  uint64_t taken;
  float *buf;
  uint32_t n_events;
  /* loop: latencies the graph gave the port, by direction; what we gave it. */
  struct spa_latency_info latency[2];
  struct spa_latency_info reported;
  struct engine_midi events[]; /* PWB_MAX_MIDI of them on a MIDI port */
};

struct pwb_slot {
  struct backend_slot pub; /* first: the engine finds the slot by its address */
  struct pwb *b;
  char name[128];
  /* loop: NULL once the node is gone (retired, closed, or its connection lost). */
  struct pw_filter *filter;
  struct spa_hook listener;
  struct spa_list link; /* in b->slots while filter != NULL */
  struct pwb_port *ports[2 * RW_MAX_CHANNELS + 1];
  uint32_t n_ports;
  uint32_t latency; /* loop: L */
  /* RT */
  uint32_t hint;
  uint64_t cycle;
};

enum pwb_state {
  PWB_IDLE,       /* no connection */
  PWB_CONNECTING, /* waiting for the server's answer and the first cycle */
  PWB_ENDED,      /* the attempt ended (conn_error says how); finish_connect next */
  PWB_OPEN,
};

struct pwb {
  struct backend base;
  uv_loop_t *loop;
  struct engine *engine;
  char *requested_name;
  backend_event_fn on_event;
  void *user;
  uv_async_t async;
  _Atomic uint32_t events;

  struct pw_thread_loop *tloop;
  struct pw_context *context;

  /* loop */
  enum pwb_state state;
  struct pw_core *core;
  struct spa_hook core_listener;
  bool core_lost;
  int connect_seq;
  bool answered;
  uint64_t connect_started_ms;
  int conn_error;
  char conn_err[256];
  uint32_t info_rate;    /* the server's default.clock.rate */
  uint32_t info_quantum; /* the server's default.clock.quantum */
  struct pw_filter *clock;
  struct spa_hook clock_listener;
  struct spa_source *timer;
  int wait_seq;
  bool wait_done;
  struct spa_list slots;

  /* Control thread. */
  char client_name[128];
  uint32_t sample_rate;
  uint32_t period;
  uint64_t epoch;
  bool open;

  /* RT -> loop: the graph's period and rate as the clock node last saw them (0: not yet). */
  _Atomic uint32_t seen_period;
  _Atomic uint32_t seen_rate;
  /* loop -> control thread: the values of the last BACKEND_EV_PERIOD / _RATE. */
  _Atomic uint32_t pending_period;
  _Atomic uint32_t pending_rate;

  /* RT */
  float *zeros;   /* PWB_MAX_FRAMES: the input of an unlinked port */
  float *scratch; /* PWB_MAX_FRAMES: where an unlinked output's audio goes */
};

/* pipewire.c */
void pwb__post(struct pwb *b, uint32_t events);
/* Waits (loop lock held) until the server has handled everything sent so far. 0 or -errno. */
int pwb__roundtrip(struct pwb *b, unsigned timeout_ms);

/* pipewire_rt.c: the process callbacks. */
void pwb__slot_process(void *data, struct spa_io_position *position);
void pwb__clock_process(void *data, struct spa_io_position *position);

/* pipewire_slot.c (loop lock held). */
int pwb__slot_open(struct pwb *b, const char *name, uint32_t n_in, uint32_t n_out, bool midi,
                   struct backend_slot **out, char *err, size_t errlen);
void pwb__slot_destroy_node(struct pwb_slot *s);
void pwb__slot_update_latency(struct pwb_slot *s, enum spa_direction direction);

#endif
