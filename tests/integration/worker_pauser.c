/*
 * A test worker on librunway-worker's pull API: a passthrough that stops for
 * PAUSE_MS (its argument, default 30) once per second of audio, as a
 * garbage collector might. Its lead on the daemon then dips by about that
 * much once a second, which is what the latency advisor has to see.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <runway/worker.h>

static rw_worker *worker;

static void on_signal(int sig) {
  (void)sig;
  rw_worker_request_stop(worker);
}

int main(int argc, char **argv) {
  long pause_ms = argc > 1 ? strtol(argv[1], NULL, 10) : 30;
  rw_worker *w;
  if (pause_ms < 0 || pause_ms > 10000 || rw_worker_open(NULL, &w) != 0) {
    fprintf(stderr, "worker-pauser: %s\n",
            pause_ms < 0 || pause_ms > 10000 ? "the pause is 0 to 10000 ms"
                                             : rw_worker_error(NULL));
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
    for (uint32_t c = 0; c < b.n_outputs; c++) {
      if (c < b.n_inputs)
        memcpy(b.outputs[c], b.inputs[c], (size_t)b.frames * sizeof(float));
      else
        memset(b.outputs[c], 0, (size_t)b.frames * sizeof(float));
    }
    /* A new second of audio begins in this block: stop for a while first. */
    uint64_t rate = b.sample_rate ? b.sample_rate : 48000;
    if ((b.position + b.frames) / rate != b.position / rate) {
      struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) != 0)
        ;
    }
    rw_worker_done(w, &b);
  }
  if (rc != RW_ERR_CLOSED)
    fprintf(stderr, "worker-pauser: %s\n", rw_worker_error(w));
  rw_worker_close(w);
  return rc == RW_ERR_CLOSED ? 0 : 1;
}
