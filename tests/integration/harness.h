/*
 * Integration test harness: everything a test needs to drive the real
 * system. A test starts its own JACK server (jackd -d dummy, a unique name),
 * its own runwayd (its own socket in a temporary directory, its own JACK
 * client name), talks to it over the real control socket, and measures audio
 * and MIDI with a probe of two JACK clients living in the test process:
 *
 *   probe source (audio + MIDI outputs) -> runway slot -> probe sink (audio inputs)
 *
 * The source emits events scheduled at absolute JACK frame times; the sink
 * records every non-zero sample with its absolute frame time. Two clients,
 * so the graph has no feedback cycle: a slot with latency L then delays the
 * signal by exactly L frames.
 *
 * Every process the harness starts is registered and killed by pid when the
 * test ends, passes or fails (children also get PR_SET_PDEATHSIG, so nothing
 * outlives a crashed test). Waits are for conditions with deadlines, never
 * bare sleeps.
 *
 * Paths of the programs under test come from CMake as compile definitions
 * (RWT_RUNWAYD, RWT_WORKER, ...). Not thread safe: call from the test's main
 * thread only.
 */
#ifndef RUNWAY_TESTS_HARNESS_H
#define RUNWAY_TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* ---- test life ------------------------------------------------------------------ */

/*
 * Starts a test called tag: cleanup handlers, a temporary directory (also
 * $XDG_STATE_HOME, so no runwayd the test starts touches a shared state
 * directory), and a watchdog that fails the test (killing its children)
 * after timeout_s.
 */
void h_init(const char *tag, unsigned timeout_s);

/* Stops everything still running, removes the temporary directory, exits 0. */
_Noreturn void h_pass(void);

/* Prints the message and the logs, kills every child, exits 1. */
_Noreturn void h_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define H_FAIL(...) h_fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define H_CHECK(cond, ...)                                                                     \
  do {                                                                                         \
    if (!(cond))                                                                               \
      h_fail_at(__FILE__, __LINE__, "check failed: " #cond ": " __VA_ARGS__);                  \
  } while (0)

/* Progress and measurements, prefixed with the test tag and elapsed time. */
void h_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Counts a soft problem (reported, test fails at h_pass when any). */
void h_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned h_errors(void);

const char *h_tag(void);
const char *h_tmpdir(void);
uint64_t h_now_ms(void);
/* Paces a scenario (never used to wait for a condition). */
void h_sleep_ms(unsigned ms);

/*
 * Runs shell_cmd (sh -c) once the test process has gone, however it went
 * (passed, failed, watchdog, even SIGKILL), from a guard process of its own:
 * for undoing what outlives the test's processes (users, groups, mounts).
 * Commands run newest first, as root if the test ran as root, with output
 * discarded; make them idempotent, since the test normally undoes the same
 * things itself before it passes.
 */
void h_guard(const char *shell_cmd);

/* ---- processes ------------------------------------------------------------------ */

struct h_proc {
  pid_t pid;
  char what[64];
  char log[PATH_MAX];
  bool reaped;
  bool graceful; /* stopped with SIGTERM first even when the test fails (jackd) */
  int status;    /* wait status once reaped */
};

/*
 * Forks and execs argv (argv[0] searched in PATH) with stdout and stderr
 * appended to log, stdin from /dev/null, the environment plus set ("K=V")
 * minus unset ("K"). The child dies with the test (PDEATHSIG SIGKILL).
 * Fails the test if fork fails.
 */
void h_spawn(struct h_proc *p, const char *what, const char *const *argv, const char *const *set,
             const char *const *unset, const char *log);

/* True while the process has not exited (reaps it when it has). */
bool h_proc_alive(struct h_proc *p);

/*
 * Waits up to timeout_ms for the process to exit. Returns true when it did
 * (status in p->status).
 */
bool h_proc_wait(struct h_proc *p, unsigned timeout_ms);

/* Sends sig, waits up to timeout_ms, then SIGKILL. Returns the wait status. */
int h_proc_stop(struct h_proc *p, int sig, unsigned timeout_ms);

/* Human readable wait status ("exit 0", "signal 6 (Aborted)"). */
const char *h_status_str(int status, char *buf, size_t len);

/* Runs argv to completion (timeout_ms), capturing stdout into *out (malloc'd). Returns the
 * wait status. stderr goes to log. */
int h_run_capture(const char *const *argv, const char *const *set, const char *const *unset,
                  const char *log, unsigned timeout_ms, char **out);

/* True when a process with this pid exists (any process, not just children). */
bool h_pid_exists(pid_t pid);

/*
 * Time the process's threads spent runnable but waiting for a CPU, in ns
 * (run_delay of /proc/PID/task/N/schedstat, summed), or 0 when unknown: tells
 * a worker the scheduler kept off the CPU from one that was slow by itself.
 */
uint64_t h_sched_delay_ns(pid_t pid);

/* ---- files ---------------------------------------------------------------------- */

size_t h_file_size(const char *path);
/* Number of lines after byte offset `from` that contain needle. */
unsigned h_file_count(const char *path, size_t from, const char *needle);
/* Reads a whole file (malloc'd, NUL terminated) or NULL. */
char *h_file_read(const char *path);

/* ---- the audio server ---------------------------------------------------------------- */

/*
 * The backend under test: "jack" (jackd -d dummy), or "pipewire" when
 * RWT_BACKEND=pipewire (a private headless PipeWire daemon; runwayd with
 * --backend pipewire; the probe through PipeWire's libjack, so the test must
 * run under pw-jack). The server functions below (h_jack_*) start and stop
 * whichever it is.
 */
bool h_pipewire(void);
const char *h_backend(void);

struct h_jack;
/*
 * PipeWire only: starts the server with its socket at <dir>/<name> (a user's
 * own is $XDG_RUNTIME_DIR/pipewire-0), as h_jack_start does in the test's
 * directory; the test's own clients find it there from now on.
 */
void h_pipewire_start_at(struct h_jack *j, const char *dir, const char *name, uint32_t rate,
                         uint32_t period);

struct h_jack {
  struct h_proc proc;
  char name[64];
  uint32_t rate;
  uint32_t period;
};

/*
 * Starts jackd -n <unique> -d dummy -r rate -p period and waits until a client can connect
 * (on PipeWire: pipewire with a dummy driver at rate and period, until it listens).
 */
void h_jack_start(struct h_jack *j, uint32_t rate, uint32_t period);
void h_jack_stop(struct h_jack *j);
/* Stops the server and starts one under the same name at another rate and period. */
void h_jack_restart(struct h_jack *j, uint32_t rate, uint32_t period);
/* Changes the running server's period (jack_bufsize; PipeWire: clock.force-quantum). */
void h_server_set_period(struct h_jack *j, uint32_t period);

/*
 * Xruns in jackd's log after byte offset `from`. At an xrun jackd names every
 * client that had not finished the previous cycle ("JackEngine::XRun: client
 * = NAME was not finished, state = ..."). An xrun is put down to `client`
 * when its state was Running: its own callback was still executing when the
 * next cycle began. Triggered means it had been woken but had not started:
 * the machine did not give its real-time thread a CPU in time (typically
 * with the upstream client, the probe's source, late as well), which says
 * nothing about the client's callback.
 */
struct h_xruns {
  unsigned events;           /* xruns logged */
  unsigned client_running;   /* the client's callback overran: its fault */
  unsigned client_waiting;   /* the client named, its callback not started */
  unsigned upstream_late;    /* the upstream client named too: the graph started late */
  unsigned driver_late;      /* "JackTimedDriver::Process XRun": the driver's timer slipped */
};
void h_jack_xruns(const struct h_jack *j, size_t from, const char *client, const char *upstream,
                  struct h_xruns *out);

/* ---- runwayd ------------------------------------------------------------------------- */

struct h_daemon {
  struct h_proc proc;
  char socket[108];
  char name[64]; /* JACK client name */
  char state_dir[PATH_MAX];
};

/*
 * Starts runwayd on j's server (--backend of the test, JACK_DEFAULT_SERVER,
 * RUNWAY_WORKER, its own --socket, --name and --state-dir in the test's
 * directory) with extra arguments and environment, and waits until its
 * socket answers status with the backend active.
 */
void h_daemon_start(struct h_daemon *d, const struct h_jack *j, const char *const *extra_args,
                    const char *const *extra_env);

/* SIGTERM, then waits (SIGKILL after 20 s). Returns the wait status. */
int h_daemon_stop(struct h_daemon *d);

/* ---- control connection ------------------------------------------------------------- */

struct h_conn {
  int fd;
  char *buf;
  size_t len;
  size_t cap;
  long long next_id;
};

/* Connects to a control socket. Returns 0 or -errno. */
int h_conn_open(struct h_conn *c, const char *path);
void h_conn_close(struct h_conn *c);
/* Sends raw bytes. Returns 0 or -errno. */
int h_conn_send(struct h_conn *c, const void *data, size_t len);
/*
 * Reads the next line (without newline) within timeout_ms. Returns a
 * malloc'd string, or NULL with *err = -ETIMEDOUT, -EPIPE (EOF) or -errno.
 */
char *h_conn_read_line(struct h_conn *c, unsigned timeout_ms, int *err);

/* Sends {"id":N,"cmd":cmd,"args":args} (args stolen, may be NULL); returns the response. */
json_t *h_request(struct h_conn *c, const char *cmd, json_t *args);
/* Like h_request, but fails the test unless ok; returns the result (new reference). */
json_t *h_call(struct h_conn *c, const char *cmd, json_t *args);
/* Fails the test unless the response is an error with this code; returns the response. */
json_t *h_call_error(struct h_conn *c, const char *cmd, json_t *args, const char *code);
/* The response's error code, or NULL when ok. */
const char *h_error_code(const json_t *resp);

/* The slot object from slot.list (new reference) or NULL. */
json_t *h_slot(struct h_conn *c, const char *name);
/* The slot's stats object (new reference); fails the test when missing. */
json_t *h_slot_stats(struct h_conn *c, const char *name);
/* One counter of slot.stats for the slot (-1 when absent). */
json_int_t h_slot_stat(struct h_conn *c, const char *name, const char *key);
/* The daemon's stats object (new reference). */
json_t *h_daemon_stats(struct h_conn *c);

json_int_t h_int(const json_t *obj, const char *key);        /* -1 when absent or null */
const char *h_str(const json_t *obj, const char *key);       /* NULL when absent */

/*
 * Polls slot.list until the slot's state is `state` (and, when not 0, its
 * pid differs from not_pid). Returns the slot object; fails on timeout.
 */
json_t *h_wait_slot(struct h_conn *c, const char *name, const char *state, json_int_t not_pid,
                    unsigned timeout_ms);

/* Adds a slot (args stolen, "name" set from name) and waits until it runs. */
json_t *h_add_slot(struct h_conn *c, const char *name, json_t *args, unsigned timeout_ms);

/* ---- the probe ------------------------------------------------------------------------ */

#define H_PROBE_MAX_PORTS 8

enum h_event_status { H_EV_PENDING = 0, H_EV_EMITTED = 1, H_EV_LATE = 2 };

struct h_record {
  uint64_t frame;
  uint32_t port;
  float value;
};

struct h_probe;

/*
 * Opens the source client (n_out audio outputs out_1.., a MIDI output
 * midi_out when midi) and the sink client (n_in audio inputs in_1..) on j.
 * The source reports capture latency src_latency on its outputs, the sink
 * playback latency sink_latency on its inputs.
 */
struct h_probe *h_probe_open(const struct h_jack *j, unsigned n_out, bool midi, unsigned n_in,
                             uint32_t src_latency, uint32_t sink_latency);
void h_probe_close(struct h_probe *p);

const char *h_probe_out(const struct h_probe *p, unsigned i);  /* full name, i from 0 */
const char *h_probe_midi(const struct h_probe *p);
const char *h_probe_in(const struct h_probe *p, unsigned i);
/* The source client's JACK name. */
const char *h_probe_source_client(const struct h_probe *p);

/* Sink port i only counts samples instead of recording them (for continuous audio). */
void h_probe_count_only(struct h_probe *p, unsigned i);

/*
 * Source output `port` carries a constant `level` from its next cycle on (0:
 * silence again); impulses scheduled on it replace the level at their frame.
 * Recording a level costs one record per frame: the sink holds about 21 s of
 * one port at 48 kHz, so keep a level on only while measuring.
 */
void h_probe_dc(struct h_probe *p, unsigned port, float level);

/*
 * Sink port `port` over frames [from, to) into out[0 .. to-from): each
 * recorded sample at its frame, 0 where none was recorded (a zero sample).
 * Returns the number of recorded samples found.
 */
uint64_t h_probe_samples(struct h_probe *p, unsigned port, uint64_t from, uint64_t to,
                         float *out);

/* jack_connect; fails the test on error. */
void h_connect(struct h_probe *p, const char *from, const char *to);

/* The current frame time (estimated between cycles). */
uint64_t h_probe_now(struct h_probe *p);

/*
 * The start of the probe source's latest cycle, on the probe's own clock: a
 * lower bound of "now" that never depends on JACK's frame-time estimate
 * (which may be off by cycles after an xrun). 0 before the first cycle.
 */
uint64_t h_probe_cycle(const struct h_probe *p);

/* Schedules events in nondecreasing frame order; returns their ids. */
uint32_t h_probe_impulse(struct h_probe *p, unsigned port, uint64_t frame, float value);
uint32_t h_probe_midi3(struct h_probe *p, uint64_t frame, uint8_t b0, uint8_t b1, uint8_t b2);
enum h_event_status h_probe_status(const struct h_probe *p, uint32_t id);
uint64_t h_probe_frame(const struct h_probe *p, uint32_t id);
/* Frame of the last scheduled event (0 when none). */
uint64_t h_probe_last_scheduled(const struct h_probe *p);

/* Waits until the sink has recorded every frame before `frame`. */
void h_probe_wait_frame(struct h_probe *p, uint64_t frame, unsigned timeout_ms);

/* Records so far (stable array, valid until h_probe_close). */
size_t h_probe_records(const struct h_probe *p, const struct h_record **recs);
/* Per sink port: samples seen non-zero, and of those not finite. */
uint64_t h_probe_nonzero(const struct h_probe *p, unsigned port);
uint64_t h_probe_nonfinite(const struct h_probe *p, unsigned port);
/* Xruns the probe's source client was told about; late events; sink discontinuities. */
uint64_t h_probe_xruns(const struct h_probe *p);
uint64_t h_probe_late(const struct h_probe *p);
uint64_t h_probe_gaps(const struct h_probe *p);
uint64_t h_probe_overflow(const struct h_probe *p);
/* First frame of the sink's first cycle (cycles start at multiples of the period on dummy). */
uint64_t h_probe_sink_first(const struct h_probe *p);

/* Port latency range as JACK reports it (any client's port). playback: JackPlaybackLatency. */
void h_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t *min,
                    uint32_t *max);
/* Waits until min == max == want; returns true, or false at the deadline (*got: last max). */
bool h_wait_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t want,
                         unsigned timeout_ms, uint32_t *got_min, uint32_t *got_max);

/* ---- checking --------------------------------------------------------------------------- */

struct h_expect {
  uint64_t frame;
  float value;
  bool optional; /* may be missing, or attenuated (0 < v <= value) at exactly this frame */
};

struct h_check {
  unsigned required;
  unsigned exact;     /* required ones found with the exact value */
  unsigned missing;   /* required ones not found */
  unsigned wrong;     /* found at the frame with another value */
  unsigned unexpected; /* non-zero samples where nothing was expected */
  unsigned optional_seen;
  unsigned optional_exact; /* of those seen, with exactly the expected value */
  unsigned optional_missing;
  unsigned disturbed; /* required ones checked leniently: near a JACK xrun (see below) */
  unsigned tolerated; /* stray samples near a JACK xrun */
};

/*
 * Compares sink port `port` over frames [from, to) with the expectations
 * (any order): every required one present at exactly its frame with exactly
 * its value, optional ones absent or attenuated at exactly their frame, and
 * no other non-zero sample. Prints the first problems under label. Returns
 * true when there are none.
 */
bool h_check_port(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                  uint64_t from, uint64_t to, const char *label, struct h_check *out);

/*
 * The one thing checked leniently: at an xrun JACK restarts the graph while
 * clients of the late cycle still run, so one cycle's data may be lost or
 * repeated between clients, and a client may even miss a run (probe or
 * runway; jackd's log names the late client, and it_crash fails on
 * runwayd-caused xruns); what was in flight through a slot then comes out a
 * cycle off. Expectations near such a disturbance (a disagreement of the
 * probe's clocks, or an xrun reported to the probe, the window stretched by
 * the longest path latency registered with h_probe_path_latency or `delay`)
 * are optional, and stray samples there are tolerated; both are counted and
 * logged. h_check_port: delay 0.
 */
bool h_check_port_delay(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                        uint64_t from, uint64_t to, uint32_t delay, const char *label,
                        struct h_check *out);

/* Registers a slot latency on a path from the probe's source to its sink. */
void h_probe_path_latency(struct h_probe *p, uint32_t frames);

/* The first recorded frame on port in [from, to), or UINT64_MAX. */
uint64_t h_first_record(struct h_probe *p, unsigned port, uint64_t from, uint64_t to);

/* Events scheduled so far (ids are 0 .. n-1). */
uint32_t h_probe_n_events(const struct h_probe *p);

/*
 * Schedules `count` impulses of 1.0 on each probe output in ports[] (each
 * output at its own frames), the first at least `lead` frames from now, about
 * `gap` frames apart with varied spacing; some land on the first and some on
 * the last frame of a cycle. Returns the frame of the last one.
 */
uint64_t h_impulse_train(struct h_probe *p, const unsigned *ports, unsigned n_ports,
                         unsigned count, uint32_t gap, uint32_t lead);

/*
 * Checks sink port `sink_port` over [from, to): every impulse emitted on
 * probe output out_port (events with id >= first_id) must appear exactly
 * `delay` frames later with its exact value, and nothing else may be there.
 * tolerant (for a stretch with underruns): impulses may also be missing or
 * faded, but never anywhere else than exactly `delay` later.
 */
bool h_check_impulses(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                      uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                      const char *label, struct h_check *out);

/* Like h_check_impulses, each impulse expected with exactly its value times gain. */
bool h_check_impulses_gain(struct h_probe *p, unsigned out_port, unsigned sink_port,
                           uint32_t delay, float gain, uint32_t first_id, uint64_t from,
                           uint64_t to, bool tolerant, const char *label, struct h_check *out);

/*
 * Six impulses on probe output `out`, about `gap` frames apart, the first at
 * least `lead` frames ahead; each must come out of sink port `in` exactly
 * once, exactly `delay` frames later, scaled by exactly `gain`, with nothing
 * else there since *checked_to (moved on). Next to a JACK xrun the check is
 * lenient; when that leaves fewer than four impulses checked exactly, the
 * train is sent again (three times at most).
 */
void h_check_train(struct h_probe *p, unsigned out, unsigned in, uint32_t delay, float gain,
                   uint32_t gap, uint32_t lead, uint32_t period, uint64_t *checked_to,
                   const char *label);

#endif
