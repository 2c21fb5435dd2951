/*
 * runway-worker's LV2 host: one LV2 plugin, found and run through lilv, in
 * the worker process of a slot. Nothing here runs on the daemon's real-time
 * thread; the worker may allocate and block, so none of these functions is
 * RT safe, and none needs to be.
 *
 * The pieces, one file each:
 *
 *   world.c     the lilv world, the URIs the host asks about, URID map/unmap
 *   describe.c  a plugin as runway sees it: ports, parameters (ranges,
 *               defaults, snapping), latency port, MIDI port, and whether
 *               runway can host it (required features and options)
 *   features.c  the host features a plugin instance gets (URID, options with
 *               bounded block lengths, worker schedule, log)
 *   work.c      the worker extension, run synchronously in this process
 *   instance.c  instantiating (with lilv's and the dynamic linker's reasons
 *               when it fails), activating, resetting, freeing
 *   run.c       one runway block: run() split at parameter changes, MIDI as
 *               an atom sequence with frame times, the latency port read
 *   state.c     the state extension through lilv state, as the SDK's state
 *               handlers
 *   catalog.c   `runway-worker --list-lv2 [URI] [--json]`
 *   session.c   `runway-worker --lv2 URI`: attach, host, loop
 *
 * Parameters: every control input port whose symbol runway can show (1 to
 * 31 of [A-Za-z0-9_], as all of Debian's are), up to RW_MAX_PARAMS of them,
 * is a runway parameter: id = port index, name = lv2:symbol, range and
 * default from the plugin's data (multiplied by the sample rate for
 * lv2:sampleRate ports), snapped to an integer, a toggle or the nearest scale
 * point when the port says so. Other control inputs keep their defaults and
 * still travel in the plugin's state.
 */
#ifndef RUNWAY_WORKER_LV2HOST_H
#define RUNWAY_WORKER_LV2HOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <lilv/lilv.h>
#include <lv2/atom/atom.h>
#include <lv2/log/log.h>
#include <lv2/options/options.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>

#include <runway/segment.h>
#include <runway/worker.h>

/* ---- world.c ------------------------------------------------------------------ */

/* The URID map: every URI gets a stable id for the life of the process. */
struct lv2host_urid {
  pthread_mutex_t lock; /* plugin threads may map too (the spec allows it) */
  char **uris;          /* uris[id - 1] */
  uint32_t n;
  uint32_t cap;
  uint32_t *slots; /* open-addressing hash of ids, 0 = empty */
  uint32_t n_slots;
  LV2_URID_Map map;
  LV2_URID_Unmap unmap;
};

/* Nodes and URIDs the host asks about, made once. */
struct lv2host_nodes {
  LilvNode *audio_port, *control_port, *cv_port, *atom_port, *input_port, *output_port;
  LilvNode *connection_optional, *integer, *toggled, *enumeration, *logarithmic, *sample_rate;
  LilvNode *latency, *reports_latency, *designation, *midi_event, *minimum_size;
  LilvNode *coarse_block_length, *required_option, *unit, *unit_symbol, *rdfs_label;
  LilvNode *load_default_state;
};

struct lv2host_urids {
  LV2_URID atom_sequence, atom_chunk, atom_float, atom_double, atom_int, atom_long, atom_bool;
  LV2_URID midi_event, sample_rate, min_block, max_block, nominal_block, sequence_size;
  LV2_URID log_error, log_warning, log_note, log_trace;
};

struct lv2host_world {
  LilvWorld *world;
  struct lv2host_nodes n;
  struct lv2host_urid urid;
  struct lv2host_urids u;
};

/*
 * Creates the world and loads every installed bundle (LV2_PATH, else lilv's
 * default path). Returns 0 or -ENOMEM.
 */
int lv2host_world_open(struct lv2host_world *w);
void lv2host_world_close(struct lv2host_world *w);

/* The plugin with this URI, or NULL with the reason in err. */
const LilvPlugin *lv2host_world_find(struct lv2host_world *w, const char *uri, char *err,
                                     size_t errlen);

/* Shared by describe.c and catalog.c: "x" of a node, or NULL. */
const char *lv2host_node_string(const LilvNode *node);

/* ---- describe.c ------------------------------------------------------------------ */

enum lv2host_port_kind {
  LV2HOST_AUDIO_IN,
  LV2HOST_AUDIO_OUT,
  LV2HOST_CONTROL_IN,
  LV2HOST_CONTROL_OUT,
  LV2HOST_ATOM_IN,
  LV2HOST_ATOM_OUT,
  LV2HOST_CV_IN,
  LV2HOST_CV_OUT,
  LV2HOST_UNCONNECTED /* an optional port of a type runway does not feed */
};

enum {
  LV2HOST_CTL_INTEGER = 1u << 0,
  LV2HOST_CTL_TOGGLED = 1u << 1,
  LV2HOST_CTL_ENUMERATION = 1u << 2,
  LV2HOST_CTL_LOGARITHMIC = 1u << 3,
  LV2HOST_CTL_SAMPLE_RATE = 1u << 4, /* the range was given in multiples of the rate */
  LV2HOST_CTL_EXPOSED = 1u << 5      /* declared as a runway parameter */
};

struct lv2host_scale_point {
  float value;
  char *label;
};

/* A control input port. */
struct lv2host_control {
  uint32_t port; /* port index: the runway parameter id */
  const char *symbol;
  char *label;
  char unit[RW_UNIT_MAX];
  float min; /* finite, min <= def <= max, already scaled by the rate */
  float max;
  float def;
  uint32_t flags;                     /* LV2HOST_CTL_* */
  struct lv2host_scale_point *points; /* sorted by value */
  uint32_t n_points;
};

struct lv2host_port {
  enum lv2host_port_kind kind;
  const char *symbol;
  uint32_t channel;     /* audio ports: index among the plugin's audio inputs or outputs */
  uint32_t control;     /* control inputs: index into controls[] */
  size_t atom_capacity; /* atom ports: buffer bytes */
  int midi;             /* atom ports: takes (or gives) MIDI events */
};

struct lv2host_desc {
  const LilvPlugin *plugin;
  const char *uri;
  char *name;
  char *class_label;
  uint32_t n_ports;
  struct lv2host_port *ports;
  uint32_t n_audio_in;
  uint32_t n_audio_out;
  struct lv2host_control *controls; /* control inputs, in port order */
  uint32_t n_controls;
  uint32_t n_exposed;   /* of those, runway parameters (LV2HOST_CTL_EXPOSED) */
  int64_t latency_port; /* control output reporting latency, or -1 */
  int64_t midi_port;    /* atom input receiving MIDI, or -1 */
  int coarse;           /* prefers long blocks: run() is never split */
  int load_default_state;
  /* Why runway cannot host it ("" when it can): a required feature, option or port. */
  char unsupported[512];
};

/*
 * Describes plugin p for a slot at sample_rate (0: ranges relative to the
 * rate stay as written, flagged LV2HOST_CTL_SAMPLE_RATE). Fills *d even when
 * runway cannot host the plugin (d->unsupported says why). Returns 0 or
 * -ENOMEM.
 */
int lv2host_describe(struct lv2host_world *w, const LilvPlugin *p, uint32_t sample_rate,
                     struct lv2host_desc *d);
void lv2host_desc_free(struct lv2host_desc *d);

/*
 * The value a control port takes for a requested value: clamped to its range,
 * then rounded (integer), forced to min or max (toggled: "on" is any value
 * above zero, as the LV2 spec says), or moved to the nearest scale point
 * (enumeration). A NaN requests the default.
 */
float lv2host_control_snap(const struct lv2host_control *c, float v);

/* The control input with this symbol, or NULL. */
const struct lv2host_control *lv2host_desc_control(const struct lv2host_desc *d,
                                                   const char *symbol);

/* ---- features.c -------------------------------------------------------------------- */

/* Friendly name of a feature or option URI runway knows ("a fixed block length"), or NULL. */
const char *lv2host_feature_name(const char *uri);

/* 1 when runway-worker provides the host feature with this URI. */
int lv2host_feature_supported(const char *uri);

struct lv2host;

/* Builds h->features (h->options must hold the slot's rate and block lengths). */
void lv2host_features_init(struct lv2host *h);

/* ---- work.c ------------------------------------------------------------------------ */

/* Requests or responses, packed as (uint32_t size, bytes, padding to 8). */
struct lv2host_work_queue {
  unsigned char *data;
  size_t len;
  size_t cap;
};

struct lv2host_work {
  const LV2_Worker_Interface *iface; /* NULL: the plugin has no worker */
  LV2_Handle handle;
  struct lv2host_work_queue requests;
  struct lv2host_work_queue responses;
  struct lv2host_work_queue doing; /* the queue being worked through */
  uint64_t refused;                /* requests refused for lack of memory */
};

/* schedule_work of the LV2_Worker_Schedule feature (handle: struct lv2host_work). */
LV2_Worker_Status lv2host_work_schedule(LV2_Worker_Schedule_Handle handle, uint32_t size,
                                        const void *data);

/*
 * After a run() (or a state restore): runs every scheduled work() here and
 * now, then hands the plugin the responses (work_response), repeating while
 * the responses schedule more, a few rounds at most; then end_run when
 * after_run. Deterministic: what a run schedules is answered before the next.
 */
void lv2host_work_flush(struct lv2host_work *k, int after_run);

void lv2host_work_free(struct lv2host_work *k);

/* ---- instance.c, run.c, state.c: the hosted plugin ----------------------------------- */

/* A parameter value the plugin uses that differs from the one requested (snapped). */
struct lv2host_report {
  uint32_t id;
  float value;
};

struct lv2host {
  struct lv2host_world *world;
  const struct lv2host_desc *desc;
  LilvInstance *inst;
  int active;

  uint32_t sample_rate;
  uint32_t max_block;
  uint32_t n_inputs; /* the slot's channels */
  uint32_t n_outputs;
  int midi;

  float *values;    /* one per port: control ports' values (others unused) */
  float *silence;   /* max_block zeros for plugin inputs the slot does not feed */
  float *scratch;   /* max_block samples for plugin outputs the slot does not take */
  void **atom_bufs; /* per port: the atom buffer (NULL for other ports) */
  float **cv_bufs;  /* per port: a CV buffer of max_block (NULL for other ports) */

  struct lv2host_work work;
  LV2_Worker_Schedule schedule;

  /* Log feature: plugins that log every block are cut off at a budget per second. */
  LV2_Log_Log log;
  pthread_mutex_t log_lock; /* the plugin's own threads may log too */
  uint64_t log_second;
  uint32_t log_count;
  uint64_t log_dropped;

  LV2_Options_Option options[6];
  int32_t opt_min_block;
  int32_t opt_max_block;
  int32_t opt_nominal_block;
  int32_t opt_sequence_size;
  float opt_sample_rate;

  LV2_Feature f_map, f_unmap, f_options, f_bounded, f_schedule, f_log;
  const LV2_Feature *features[8];

  uint32_t latency; /* the plugin's latency as last read, in frames */
  int ran;          /* run() has been called since the last (re)activation */
  struct lv2host_report reports[RW_MAX_PARAMS];
  uint32_t n_reports;
  uint64_t resets; /* deactivate/activate after a discontinuity */
};

struct lv2host_config {
  uint32_t sample_rate;
  uint32_t max_block;
  uint32_t n_inputs;
  uint32_t n_outputs;
  int midi;
};

/*
 * Instantiates and activates the described plugin for a slot. Refuses a
 * plugin runway cannot host (desc->unsupported) and reports why
 * instantiation failed: the dynamic linker's message when the library does
 * not load, a missing descriptor, or the plugin's own refusal. Restores the
 * plugin's default state when it asks for it. Returns 0, -ENOTSUP, -ENOENT
 * (no such plugin in its library), -EIO (instantiate failed) or -ENOMEM,
 * with a message in err.
 */
int lv2host_open(struct lv2host *h, struct lv2host_world *w, const struct lv2host_desc *desc,
                 const struct lv2host_config *cfg, char *err, size_t errlen);
void lv2host_close(struct lv2host *h);

/*
 * Loads the plugin's library (as lilv does, RTLD_NOW) and looks for its
 * descriptor, then unloads it: what lv2host_open checks first. Returns 0,
 * -EIO (with the dynamic linker's message) or -ENOENT (no such plugin in it).
 */
int lv2host_check_library(const struct lv2host_desc *d, char *err, size_t errlen);

/*
 * Resets the plugin's history (deactivate, activate): LV2 has no other
 * reset. run.c calls it for a discontinuity after the first block.
 */
void lv2host_reset(struct lv2host *h);

/* Sets a control input (by port index) to lv2host_control_snap of v. Returns the value set. */
float lv2host_set_control(struct lv2host *h, uint32_t port, float v);

/*
 * Processes one block: its parameter events land at their frame (run() is
 * split there, unless the plugin prefers coarse blocks), its MIDI events go
 * to the plugin's MIDI port at their frame, every output frame is written.
 * Afterwards h->latency holds the plugin's latency and h->reports the
 * parameter values that were snapped.
 */
void lv2host_process(struct lv2host *h, const rw_block *b);

/*
 * The SDK's state handlers (user: struct lv2host). The state is lilv's
 * Turtle serialisation of the plugin's state (the state extension's
 * properties, if it has one, and every control input's value), with URIDs
 * written as URIs so another process can load it. A loaded state must be of
 * the same plugin; its port values are clamped and snapped.
 */
int64_t lv2host_state_save(void *user, unsigned char *buf, size_t capacity);
int lv2host_state_load(void *user, const unsigned char *data, size_t len);

/* Restores the plugin's default state (state:loadDefaultState). 0 or -EIO. */
int lv2host_state_load_default(struct lv2host *h);

/* ---- catalog.c, session.c --------------------------------------------------------- */

/*
 * `runway-worker --list-lv2 [--json]` (uri NULL: every installed plugin) or
 * `--list-lv2 URI [--json]` (one plugin's ports and controls, ranges for
 * sample_rate). Prints to stdout; returns a process exit status.
 */
int lv2host_catalog_main(const char *uri, int json, uint32_t sample_rate);

/* `runway-worker --lv2 URI`: hosts the plugin in the slot opts attaches to. Exit status. */
int lv2host_session_main(const char *uri, const rw_worker_options *opts);

#endif
