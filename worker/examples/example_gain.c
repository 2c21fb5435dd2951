/*
 * example_gain: a complete runway worker in one file, written against the
 * installed SDK in the pull style (rw_worker_open / next / done), the style a
 * garbage-collected runtime would use through its FFI.
 *
 * README snippet:
 *
 *   # build against the installed SDK
 *   cc -O2 example_gain.c $(pkg-config --cflags --libs runway-worker) -lm -o example-gain
 *
 *   # make a slot that waits for a worker, then attach this one to it
 *   runwayctl slot add vox --external --inputs 2 --outputs 2
 *   RUNWAY_SLOT=vox ./example-gain
 *
 *   # change the gain; the change is heard exactly L frames after the
 *   # timeline position it was stamped with, ramped over 5 ms
 *   runwayctl param set vox gain_db -12
 *
 *   # save and restore the plugin's state
 *   runwayctl state save vox vox.state
 *   runwayctl state load vox vox.state
 *
 * Each block brings input frames and the events that fall inside them, each
 * at its sample offset. The loop below renders up to the next event, applies
 * it, and goes on: that is all sample accuracy takes.
 *
 * State needs no code here: the gain is a declared parameter, and the SDK's
 * default state saves the declared parameters' values and, on a load (or
 * when runwayd restarts the worker), hands them back as parameter events at
 * offset 0 of the next block, which handle_event already takes. A plugin with
 * state beyond its parameters (a loaded sample, a learned profile) installs
 * its own with rw_worker_set_state_handlers() before its first
 * rw_worker_next().
 */
/* sigaction() under a strict -std=c11. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <signal.h>
#include <stdio.h>

#include <runway/worker.h>

#define GAIN_DB 0

static const rw_param_info params[] = {
    {.id = GAIN_DB, .name = "gain_db", .min = -60.0f, .max = 24.0f, .def = 0.0f, .unit = "dB"},
};

struct state {
  float gain;   /* current linear gain */
  float target; /* where the ramp goes */
  float step;
  uint32_t ramp_left;
  uint32_t ramp_frames;
};

static void handle_event(struct state *s, const rw_event *ev, int discontinuity) {
  if (ev->kind != RW_EV_PARAM || ev->u.param.id != GAIN_DB)
    return;
  s->target = powf(10.0f, ev->u.param.value / 20.0f);
  if (discontinuity && ev->offset == 0) {
    /* Restored state at a (re)start applies at once; the SDK fades the output in. */
    s->gain = s->target;
    s->ramp_left = 0;
    return;
  }
  s->ramp_left = s->ramp_frames;
  s->step = (s->target - s->gain) / (float)s->ramp_frames;
}

/* Renders frames [from, to) of the block. */
static void render(struct state *s, const rw_block *b, uint32_t from, uint32_t to) {
  for (uint32_t k = from; k < to; k++) {
    if (s->ramp_left > 0)
      s->gain = --s->ramp_left == 0 ? s->target : s->gain + s->step;
    for (uint32_t c = 0; c < b->n_outputs; c++)
      b->outputs[c][k] = c < b->n_inputs ? b->inputs[c][k] * s->gain : 0.0f;
  }
}

/* Ctrl-C and SIGTERM end the loop cleanly: request_stop is async-signal-safe. */
static rw_worker *worker;

static void on_signal(int sig) {
  (void)sig;
  rw_worker_request_stop(worker);
}

int main(void) {
  rw_worker_options opts = {
      .api_version = RW_WORKER_API_VERSION,
      .params = params,
      .n_params = 1,
      .plugin = "example-gain",
  };
  rw_worker *w;
  if (rw_worker_open(&opts, &w) != 0) {
    fprintf(stderr, "example-gain: %s\n", rw_worker_error(NULL));
    return 1;
  }
  worker = w;
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const rw_worker_info *info = rw_worker_get_info(w);
  fprintf(stderr, "example-gain: attached to \"%s\": %u in, %u out, %u Hz, latency %u frames\n",
          info->slot, info->n_inputs, info->n_outputs, info->sample_rate, info->latency);

  struct state s = {.gain = 1.0f, .target = 1.0f, .ramp_frames = info->sample_rate / 200};
  rw_block b;
  int rc;
  /* A timeout lets a real program do housekeeping between blocks; 0 means "nothing yet". */
  while ((rc = rw_worker_next(w, &b, 100)) >= 0) {
    if (rc == 0)
      continue;
    uint32_t frame = 0;
    for (uint32_t e = 0; e < b.n_events; e++) {
      render(&s, &b, frame, b.events[e].offset);
      frame = b.events[e].offset;
      handle_event(&s, &b.events[e], b.discontinuity);
    }
    render(&s, &b, frame, b.frames);
    rw_worker_done(w, &b);
  }
  if (rc != RW_ERR_CLOSED)
    fprintf(stderr, "example-gain: %s\n", rw_worker_error(w));
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  rw_worker_close(w);
  return rc == RW_ERR_CLOSED ? 0 : 1;
}
