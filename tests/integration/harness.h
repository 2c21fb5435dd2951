/*
 * Integration test harness: everything a test needs to drive the real
 * system. A test starts its own JACK server (jackd -d dummy, a unique name),
 * its own runwayd (its own socket in a temporary directory, its own JACK
 * client name), talks to it over the real control socket, and measures audio
 * and MIDI with a probe: one JACK client in the test process that both sends
 * and receives,
 *
 *   probe outputs (audio + MIDI) -> runway slot(s) -> probe inputs (audio)
 *
 * so the frame an event was sent at and the frame it came back at are
 * counted by the same callback, on the same clock (as jack_iodelay does): a
 * slot with latency L then delays the signal by exactly L frames, however
 * late the machine runs the probe.
 *
 * Every process the harness starts is registered and killed by pid when the
 * test ends, passes or fails (children also get PR_SET_PDEATHSIG, so nothing
 * outlives a crashed test). Waits are for conditions with deadlines
 * (H_WAIT_UNTIL), never bare sleeps; checks need a floor of exact samples,
 * and a measurement that a disturbance of the graph spoiled is repeated
 * (h_measure) rather than failed or passed.
 *
 * The harness is in files by section: harness_life.c (a test's life and
 * waiting), harness_proc.c (processes, files), harness_jack.c (the JACK
 * server), harness_daemon.c (runwayd and its slots), harness_conn.c (the
 * control connection), harness_probe.c (the probe), harness_check.c
 * (checks). Paths of the programs under test come from CMake as compile
 * definitions (RWT_RUNWAYD, RWT_WORKER, ...; RUNWAY_TEST_RUNWAYD and
 * RUNWAY_TEST_JACKD in the environment take the place of runwayd and
 * jackd). Not thread safe: call from the test's main thread only.
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
 * after timeout_s. In instrumented builds (TSan) the watchdog and every
 * deadline of the waits below stretch by the build's RWT_TIMEOUT_SCALE.
 */
void h_init(const char *tag, unsigned timeout_s);

/* Stops everything still running, removes the temporary directory, exits 0. */
_Noreturn void h_pass(void);

/*
 * Stops everything still running, removes the temporary directory, exits
 * H_SKIP_STATUS: the test could not run here (ctest reports it skipped).
 */
#define H_SKIP_STATUS 77
_Noreturn void h_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the message and the logs, kills every child, exits 1. */
_Noreturn void h_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define H_FAIL(...) h_fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define H_CHECK(cond, ...)                                                                         \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      h_fail_at(__FILE__, __LINE__, "check failed: " #cond ": " __VA_ARGS__);                      \
  } while (0)

/* Progress and measurements, prefixed with the test tag and elapsed time. */
void h_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Counts a soft problem (reported, test fails at h_pass when any). */
void h_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned h_errors(void);

const char *h_tag(void);
const char *h_tmpdir(void);
uint64_t h_now_ms(void);
/* Paces a scenario (never used to wait for a condition: see H_WAIT_UNTIL). */
void h_sleep_ms(unsigned ms);

/*
 * Waiting for a condition. cond(arg, seen, seen_len) returns true once the
 * condition holds; when it does not, it may say what it saw in `seen` for the
 * failure message. It may fail the test itself (a process that died).
 */
typedef bool h_cond_fn(void *arg, char *seen, size_t seen_len);

/*
 * Asks cond until it holds (at once, then every few ms, backing off to 20 ms)
 * or timeout_ms have passed; then fails the test at the caller's line:
 * "gave up waiting for <what> after N ms (last seen: ...)".
 */
#define H_WAIT_UNTIL(cond, arg, timeout_ms, ...)                                                   \
  h_wait_until_at(__FILE__, __LINE__, (cond), (arg), (timeout_ms), __VA_ARGS__)
void h_wait_until_at(const char *file, int line, h_cond_fn *cond, void *arg, unsigned timeout_ms,
                     const char *what_fmt, ...) __attribute__((format(printf, 6, 7)));

/* Like H_WAIT_UNTIL, but returns false at the deadline (the caller reports it). */
bool h_wait_for(h_cond_fn *cond, void *arg, unsigned timeout_ms);
/* h_wait_for that leaves cond's last description in seen. */
bool h_wait_seen(h_cond_fn *cond, void *arg, unsigned timeout_ms, char *seen, size_t seen_len);

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

/* True when some thread of the process runs with a real-time policy (SCHED_FIFO, SCHED_RR). */
bool h_proc_realtime(pid_t pid);

/* True when name (a path, or searched in $PATH) is an executable file. */
bool h_find_program(const char *name);

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
 * Starts jackd -n <unique> -d dummy -r rate -p period and waits until a
 * client can connect (on PipeWire: pipewire with a dummy driver at rate and
 * period, until it listens). Without jackd ($RUNWAY_TEST_JACKD or jackd in
 * $PATH) the test is skipped, or fails when RUNWAY_TEST_REQUIRE_JACKD=1 (CI).
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
 * with the upstream client, the probe, late as well), which says
 * nothing about the client's callback. upstream: the probe (h_probe_client).
 */
struct h_xruns {
  unsigned events;         /* xruns logged */
  unsigned client_running; /* the client's callback overran: its fault */
  unsigned client_waiting; /* the client named, its callback not started */
  unsigned upstream_late;  /* the upstream client named too: the graph started late */
  unsigned driver_late;    /* "JackTimedDriver::Process XRun": the driver's timer slipped */
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

struct h_conn; /* below: the control connection */

/* The slot object from slot.list (new reference) or NULL. */
json_t *h_slot(struct h_conn *c, const char *name);
/* The name of port i of a slot object's "inputs" or "outputs" (dir), or NULL. */
const char *h_slot_port(const json_t *slot, const char *dir, size_t i);
/* The slot's stats object (new reference); fails the test when missing. */
json_t *h_slot_stats(struct h_conn *c, const char *name);
/* One counter of slot.stats for the slot (-1 when absent). */
json_int_t h_slot_stat(struct h_conn *c, const char *name, const char *key);
/* The daemon's stats object (new reference). */
json_t *h_daemon_stats(struct h_conn *c);
/*
 * Frames runwayd's engine skipped so far (stats: skipped_frames): each time
 * its clock jumped ahead with JACK's frame time, after cycles the graph
 * skipped or a run that began late.
 */
uint64_t h_daemon_skipped(struct h_conn *c);

/*
 * Waits until slot.list shows the slot in `state` (and, when not 0, with a
 * pid other than not_pid). Returns the slot object; fails on timeout.
 */
json_t *h_wait_slot(struct h_conn *c, const char *name, const char *state, json_int_t not_pid,
                    unsigned timeout_ms);

/* Adds a slot (args stolen, "name" set from name) and waits until it runs. */
json_t *h_add_slot(struct h_conn *c, const char *name, json_t *args, unsigned timeout_ms);

/*
 * The RT checker's verdict (tests/integration/rtcheck.c, LD_PRELOADed into
 * runwayd with RUNWAY_RTCHECK_REPORT=report), once runwayd has exited with
 * status: an error unless it exited 0, watched at least 500 cycles and saw
 * no violation.
 */
void h_check_rt_report(const char *report, int status);

/* ---- control connection (a JSON-lines client of the socket) -------------------------- */

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

json_int_t h_int(const json_t *obj, const char *key);  /* -1 when absent or null */
const char *h_str(const json_t *obj, const char *key); /* NULL when absent */

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
 * Opens the probe on j: n_out audio outputs out_1.., a MIDI output midi_out
 * when midi, n_in audio inputs in_1... Its outputs report capture latency
 * out_latency, its inputs playback latency in_latency.
 *
 * Each run the probe first records its inputs, which carry what the graph
 * delivered for its previous run, labelled with that run's frames, then
 * sends what is scheduled for this run. Connect only paths that come back to
 * the probe (probe -> slots -> probe): there an impulse sent at frame f
 * through a latency L is recorded at exactly f + L. (A slot that only
 * generates, with no input from the probe, is heard a cycle early: count its
 * samples, do not time them.)
 */
struct h_probe *h_probe_open(const struct h_jack *j, unsigned n_out, bool midi, unsigned n_in,
                             uint32_t out_latency, uint32_t in_latency);
void h_probe_close(struct h_probe *p);

const char *h_probe_out(const struct h_probe *p, unsigned i); /* full name, i from 0 */
const char *h_probe_midi(const struct h_probe *p);
const char *h_probe_in(const struct h_probe *p, unsigned i);
/* The probe's JACK client name. */
const char *h_probe_client(const struct h_probe *p);
/* The period of the probe's server. */
uint32_t h_probe_period(const struct h_probe *p);

/* Input i only counts samples instead of recording them (for continuous audio). */
void h_probe_count_only(struct h_probe *p, unsigned i);

/*
 * Output `port` carries a constant `level` from its next run on (0: silence
 * again); impulses scheduled on it replace the level at their frame.
 * Recording a level costs one record per frame: the probe holds about 21 s
 * of one input at 48 kHz, so keep a level on only while measuring.
 */
void h_probe_dc(struct h_probe *p, unsigned port, float level);

/*
 * Input `port` over frames [from, to) into out[0 .. to-from): each recorded
 * sample at its frame, 0 where none was recorded (a zero sample). Returns
 * the number of recorded samples found.
 */
uint64_t h_probe_samples(struct h_probe *p, unsigned port, uint64_t from, uint64_t to, float *out);

/* jack_connect; fails the test on error. */
void h_connect(struct h_probe *p, const char *from, const char *to);

/* The current frame on the probe's clock (estimated between runs). */
uint64_t h_probe_now(struct h_probe *p);

/*
 * The start of the probe's latest run, on its own clock: a lower bound of
 * "now" that never depends on JACK's frame-time estimate (which may be off by
 * cycles when the probe ran late). 0 before the first run.
 */
uint64_t h_probe_cycle(const struct h_probe *p);

/* Schedules events in nondecreasing frame order; returns their ids. */
uint32_t h_probe_impulse(struct h_probe *p, unsigned port, uint64_t frame, float value);
uint32_t h_probe_midi3(struct h_probe *p, uint64_t frame, uint8_t b0, uint8_t b1, uint8_t b2);
enum h_event_status h_probe_status(const struct h_probe *p, uint32_t id);
uint64_t h_probe_frame(const struct h_probe *p, uint32_t id);
/* Frame of the last scheduled event (0 when none). */
uint64_t h_probe_last_scheduled(const struct h_probe *p);
/* Events scheduled so far (ids are 0 .. n-1). */
uint32_t h_probe_n_events(const struct h_probe *p);

/* Waits until the probe has recorded every frame before `frame`. */
void h_probe_wait_frame(struct h_probe *p, uint64_t frame, unsigned timeout_ms);

/* Records so far (stable array, valid until h_probe_close). */
size_t h_probe_records(const struct h_probe *p, const struct h_record **recs);
/* Per input: samples seen non-zero, and of those not finite. */
uint64_t h_probe_nonzero(const struct h_probe *p, unsigned port);
uint64_t h_probe_nonfinite(const struct h_probe *p, unsigned port);
/*
 * Xruns JACK reported to the probe; events scheduled too late to be sent;
 * runs JACK started late or skipped (its frame time moved on by more or less
 * than the previous run's length); records lost to a full buffer.
 */
uint64_t h_probe_xruns(const struct h_probe *p);
uint64_t h_probe_late(const struct h_probe *p);
uint64_t h_probe_gaps(const struct h_probe *p);
uint64_t h_probe_overflow(const struct h_probe *p);
/* First frame of the probe's first run (runs start at multiples of the period on dummy). */
uint64_t h_probe_sink_first(const struct h_probe *p);

/* Port latency range as JACK reports it (any client's port). playback: JackPlaybackLatency. */
void h_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t *min,
                    uint32_t *max);
/* Waits until min == max == want; returns true, or false at the deadline (*got: last values). */
bool h_wait_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t want,
                         unsigned timeout_ms, uint32_t *got_min, uint32_t *got_max);

/* Registers a slot latency on a path from the probe back to itself. */
void h_probe_path_latency(struct h_probe *p, uint32_t frames);

/*
 * Marks output frames [from, to) as near a disturbance the probe cannot see
 * by itself: runwayd's engine skipped frames (h_daemon_skipped moved) while
 * they were in flight. Its clock then jumped where the probe's did not, and
 * what was in flight through a slot comes out whole periods off. Checks are
 * lenient there, as near an xrun (h_measure marks its trains by itself).
 */
void h_probe_mark_disturbed(struct h_probe *p, uint64_t from, uint64_t to);

/*
 * Whether what the probe recorded at input frame `frame` is near a
 * disturbance of the graph: a run of the probe JACK started late or
 * skipped, an xrun, a marked range, a skip of runwayd's clock being watched.
 */
bool h_probe_disturbed_at(const struct h_probe *p, uint64_t frame);

/*
 * Watches runwayd's skipped_frames (see h_daemon_skipped) every few ms from
 * a thread with a connection of its own, until the probe closes: each time
 * it moved, the output in flight between the two answers around it (up to
 * the longest path latency later) is near a disturbance. Checks are then
 * lenient only there, where a test that asks the counter once per train
 * must mark the whole train (h_probe_mark_disturbed); h_measure does so only
 * when no watcher runs. One watcher per test.
 */
void h_watch_skips(const struct h_probe *p, const struct h_daemon *d);
bool h_watching_skips(const struct h_probe *p);

/* ---- checking --------------------------------------------------------------------------- */

struct h_expect {
  uint64_t frame;
  float value;
  bool optional; /* may be missing, or attenuated (0 < v <= value) at exactly this frame */
};

enum h_verdict {
  H_EXACT,      /* every sample where expected, nothing elsewhere, at least `floor` exact */
  H_DISTURBED,  /* nothing misplaced, but too few exact where losses were excused: measure again */
  H_MISALIGNED, /* a sample missing, wrong or out of place that nothing excuses: runway's fault */
};

struct h_check {
  unsigned expected; /* expectations in the window, required or optional */
  unsigned required;
  unsigned exact;      /* required ones found with the exact value */
  unsigned missing;    /* required ones not found */
  unsigned wrong;      /* found at the frame with another value */
  unsigned unexpected; /* non-zero samples where nothing was expected */
  unsigned optional_seen;
  unsigned optional_exact; /* of those seen, with exactly the expected value */
  unsigned optional_missing;
  unsigned disturbed; /* required ones checked leniently: near a disturbance (see below) */
  unsigned tolerated; /* stray samples near a disturbance */
  unsigned floor;     /* exact ones (required or optional) the check needed */
  enum h_verdict verdict;
};

/*
 * The floor of a check: min_exact when given, else more than half of the
 * expected samples (0 only when nothing is expected: a check of silence).
 */
unsigned h_check_floor(unsigned expected, unsigned min_exact);
/*
 * min_exact for a check that only proves nothing is misplaced: a slot that
 * may rightly be silent (a worker down with no bypass), or one whose samples
 * are counted by the test itself.
 */
#define H_FLOOR_NONE ((unsigned)-1)
const char *h_verdict_str(enum h_verdict v);

/*
 * Compares input `port` over frames [from, to) with the expectations (any
 * order): every required one present at exactly its frame with exactly its
 * value, optional ones absent or attenuated at exactly their frame, no other
 * non-zero sample, and at least h_check_floor(expected, min_exact) of them
 * exact, so that no stretch without audio passes. Prints the first problems
 * under label. Returns true when the verdict is H_EXACT.
 *
 * The one thing checked leniently is a disturbance of the graph: at an xrun
 * JACK restarts the graph while clients of the late cycle still run, and a
 * run JACK started late or skipped (the probe's or runway's) may lose or
 * repeat one cycle's data between clients; what was in flight through a slot
 * then comes out a cycle off. Expectations near a disturbance (the window
 * stretched by the longest path latency registered with h_probe_path_latency
 * or `delay`) are optional, and stray samples there are tolerated when they
 * lie within a few periods of an expected one (a displaced or repeated
 * impulse, never a sample where nothing was sent); both are counted and
 * logged. Too few exact next to one is H_DISTURBED: measure again, never
 * pass.
 */
bool h_check_port_delay(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                        uint64_t from, uint64_t to, uint32_t delay, unsigned min_exact,
                        const char *label, struct h_check *out);
/* h_check_port_delay with delay 0 and the default floor. */
bool h_check_port(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                  uint64_t from, uint64_t to, const char *label, struct h_check *out);

/* The first recorded frame on port in [from, to), or UINT64_MAX. */
uint64_t h_first_record(struct h_probe *p, unsigned port, uint64_t from, uint64_t to);

/*
 * Schedules `count` impulses of 1.0 on each probe output in ports[] (each
 * output at its own frames), the first at least `lead` frames from now, about
 * `gap` frames apart with varied spacing; some land on the first and some on
 * the last frame of a cycle. Returns the frame of the last one.
 */
uint64_t h_impulse_train(struct h_probe *p, const unsigned *ports, unsigned n_ports, unsigned count,
                         uint32_t gap, uint32_t lead);

/* Impulses sent on a probe output, and where and how they must come back. */
struct h_impulses {
  unsigned out;       /* the probe output they were sent on */
  unsigned in;        /* the probe input they come back on */
  uint32_t delay;     /* exactly this many frames later */
  float gain;         /* scaled by exactly this (0: 1) */
  uint32_t first_id;  /* the impulses scheduled from this event id on */
  uint64_t from, to;  /* the input is checked over [from, to) */
  bool tolerant;      /* a stretch with underruns: impulses may be lost or faded, never moved */
  unsigned min_exact; /* exact impulses needed; 0: more than half of those in the stretch */
};

/* Checks impulses as spec says (h_check_port_delay). True when H_EXACT. */
bool h_check(struct h_probe *p, const struct h_impulses *spec, const char *label,
             struct h_check *out);

/* h_check with the default floor: delay, value times 1.0, first_id, [from, to), tolerant. */
bool h_check_impulses(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                      uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                      const char *label, struct h_check *out);
bool h_check_impulses_gain(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                           float gain, uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                           const char *label, struct h_check *out);

/* ---- measuring, again when disturbed ------------------------------------------------------ */

/* A path from a probe output back to a probe input through runway. */
struct h_path {
  unsigned out;         /* probe output */
  unsigned in;          /* probe input */
  uint32_t delay;       /* exactly this many frames from out to in */
  float gain;           /* impulses come back scaled by exactly this (0: 1) */
  const char *slots[4]; /* the slots on the path: their underruns excuse lost impulses */
  uint64_t checked_to;  /* the input is checked from here on; moved on by each check */
  char label[128];
  int64_t first_delay; /* out: from the last train's first impulse to the first sample after
                          it (-1: none came), for the log */
};

/* Zero fields take the defaults in brackets. */
struct h_train {
  unsigned count;     /* impulses per path and attempt [6] */
  uint32_t gap;       /* about this many frames apart [1100] */
  uint32_t lead;      /* the first at least this far ahead [2400] */
  unsigned min_exact; /* exact impulses a path needs [two thirds of count] */
  unsigned attempts;  /* measurements at least, before a disturbed path fails [12] */
};

/*
 * Sends impulse trains on every path's output and checks its input since
 * checked_to (every impulse exactly `delay` later at exactly `gain`, nothing
 * else, at least min_exact exact). A path whose check is H_DISTURBED (too
 * few exact next to an xrun, a late or skipped run, or an underrun of one
 * of its slots, asked over c) is measured again, up to `attempts` times; a misaligned
 * sample is an error at once. Returns true when every path measured exact;
 * otherwise the error is reported (h_error).
 */
bool h_measure(struct h_probe *p, struct h_conn *c, struct h_path *paths, unsigned n,
               const struct h_train *train);

/*
 * h_measure of one path with no slot to ask about underruns: six impulses
 * about `gap` frames apart, the first at least `lead` ahead, on a server of
 * `period` frames; *checked_to moves on. Reports an error when not exact.
 */
void h_check_train(struct h_probe *p, unsigned out, unsigned in, uint32_t delay, float gain,
                   uint32_t gap, uint32_t lead, uint32_t period, uint64_t *checked_to,
                   const char *label);

#endif
