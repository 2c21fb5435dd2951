/*
 * runway-bench-jack-passthrough: the reference for the DSP-load comparison.
 * A plain JACK client with two inputs and two outputs whose process callback
 * copies each input to its output, the classic simple client: what a chain of
 * ordinary in-graph clients costs the graph, next to runwayd hosting the same
 * number of passthrough slots (tests/bench/bench_dsp_load.sh).
 *
 * usage: runway-bench-jack-passthrough NAME
 * Connects to $JACK_DEFAULT_SERVER (never starts a server), registers
 * NAME:in_1, NAME:in_2, NAME:out_1, NAME:out_2, activates, and runs until
 * SIGTERM or SIGINT. Connections are the caller's business. Exit status 0, 1
 * when the server refused us or shut down, 2 for a usage error.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jack/jack.h>

#define PT_CHANNELS 2

struct passthrough {
  jack_port_t *in[PT_CHANNELS];
  jack_port_t *out[PT_CHANNELS];
};

static int pt_process(jack_nframes_t nframes, void *arg) {
  struct passthrough *pt = arg;
  for (int c = 0; c < PT_CHANNELS; c++) {
    const float *in = jack_port_get_buffer(pt->in[c], nframes);
    float *out = jack_port_get_buffer(pt->out[c], nframes);
    memcpy(out, in, (size_t)nframes * sizeof(float));
  }
  return 0;
}

static atomic_int pt_server_gone;

/*
 * On a JACK thread when the server goes away: wake the main thread's sigwait
 * with a process-directed signal (raise() would target this thread, which
 * has the signal blocked).
 */
static void pt_shutdown(void *arg) {
  (void)arg;
  atomic_store(&pt_server_gone, 1);
  kill(getpid(), SIGTERM);
}

int main(int argc, char **argv) {
  struct passthrough pt;
  jack_status_t status = 0;
  sigset_t stop;
  int sig = 0;
  int rc = 1;

  if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
    fprintf(stderr, "usage: runway-bench-jack-passthrough NAME\n");
    return 2;
  }

  /* Blocked before JACK starts its threads, so only sigwait below ever sees them. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  jack_client_t *client = jack_client_open(argv[1], JackNoStartServer | JackUseExactName, &status);
  if (client == NULL) {
    fprintf(stderr,
            "runway-bench-jack-passthrough: cannot open client \"%s\" (status 0x%x); is jackd "
            "running (JACK_DEFAULT_SERVER) and the name free?\n",
            argv[1], (unsigned)status);
    return 1;
  }
  for (int c = 0; c < PT_CHANNELS; c++) {
    char name[16];
    snprintf(name, sizeof(name), "in_%d", c + 1);
    pt.in[c] = jack_port_register(client, name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
    snprintf(name, sizeof(name), "out_%d", c + 1);
    pt.out[c] = jack_port_register(client, name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (pt.in[c] == NULL || pt.out[c] == NULL) {
      fprintf(stderr, "runway-bench-jack-passthrough: cannot register ports\n");
      goto out;
    }
  }
  jack_set_process_callback(client, pt_process, &pt);
  jack_on_shutdown(client, pt_shutdown, NULL);
  if (jack_activate(client) != 0) {
    fprintf(stderr, "runway-bench-jack-passthrough: cannot activate\n");
    goto out;
  }

  sigwait(&stop, &sig);
  if (atomic_load(&pt_server_gone)) {
    fprintf(stderr, "runway-bench-jack-passthrough: the JACK server shut down\n");
    goto out;
  }
  rc = 0;
  jack_deactivate(client);
out:
  jack_client_close(client);
  return rc;
}
