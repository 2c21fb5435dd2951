/*
 * A test worker on librunway-worker's pull API: silence on every output,
 * except a sample of 1.0 at the offset of each note-on and 0.5 at the offset
 * of each note-off (or note-on with velocity 0). Fed MIDI at known frames,
 * its output shows whether events arrive sample-accurately: an event at
 * timeline frame f must come out at exactly f + L.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <runway/worker.h>

static rw_worker *worker;

static void on_signal(int sig) {
  (void)sig;
  rw_worker_request_stop(worker);
}

int main(void) {
  rw_worker *w;
  if (rw_worker_open(NULL, &w) != 0) {
    fprintf(stderr, "worker-midi-impulse: %s\n", rw_worker_error(NULL));
    return 1;
  }
  worker = w;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  rw_block b;
  int rc;
  while ((rc = rw_worker_next(w, &b, 100)) >= 0) {
    if (rc == 0)
      continue;
    for (uint32_t c = 0; c < b.n_outputs; c++)
      memset(b.outputs[c], 0, (size_t)b.frames * sizeof(float));
    for (uint32_t e = 0; e < b.n_events; e++) {
      const rw_event *ev = &b.events[e];
      if (ev->kind != RW_EV_MIDI || ev->size < 3 || ev->offset >= b.frames)
        continue;
      uint8_t status = ev->u.midi.data[0] & 0xf0;
      float v = 0.0f;
      if (status == 0x90 && ev->u.midi.data[2] > 0)
        v = 1.0f;
      else if (status == 0x80 || status == 0x90)
        v = 0.5f;
      if (v == 0.0f)
        continue;
      for (uint32_t c = 0; c < b.n_outputs; c++)
        b.outputs[c][ev->offset] = v;
    }
    rw_worker_done(w, &b);
  }
  if (rc != RW_ERR_CLOSED)
    fprintf(stderr, "worker-midi-impulse: %s\n", rw_worker_error(w));
  rw_worker_close(w);
  return rc == RW_ERR_CLOSED ? 0 : 1;
}
