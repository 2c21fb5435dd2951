/*
 * runway-probe: plays a test signal into a runway slot through JACK, records
 * what the slot plays, writes it to a WAV file and measures the latency on
 * the recording.
 *
 *   runway-probe [--client runway] --slot NAME (--phrase | --impulse)
 *                [--wav FILE] [--seconds S] [--json]
 *
 * --phrase sends a short MIDI phrase to NAME.midi_in (for a synth slot);
 * --impulse sends single-sample clicks into NAME.in_1. The measured latency
 * is the distance between when a note or click was sent and when its onset
 * shows up on NAME.out_1, next to the latency JACK reports for that port.
 *
 * The sender and the recorder are two JACK clients, so the graph runs
 * sender -> runway -> recorder in one cycle without a feedback loop, and a
 * slot of latency L delays the signal by exactly L frames.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jack/jack.h>
#include <jack/midiport.h>

#define MAX_CHANNELS 2
#define MAX_EVENTS 64

struct event {
  jack_nframes_t frame; /* absolute JACK frame time */
  uint8_t data[3];
};

struct probe {
  jack_client_t *sender;
  jack_client_t *recorder;
  jack_port_t *midi_out;
  jack_port_t *audio_out;
  jack_port_t *rec[MAX_CHANNELS];
  uint32_t channels;
  bool impulse;

  /* Set before the start flag is raised, read-only afterwards in the callbacks. */
  struct event events[MAX_EVENTS];
  uint32_t n_events;
  jack_nframes_t rec_start; /* first absolute frame to record */
  uint32_t rec_frames;
  float *rec_buf[MAX_CHANNELS];

  _Atomic int armed;
  _Atomic uint32_t next_event; /* sender only writes */
  _Atomic uint32_t recorded;   /* recorder only writes */
};

static struct probe P;

/* True when absolute frame f lies in [t, t + n), robust to wrap of jack_nframes_t. */
static bool in_cycle(jack_nframes_t f, jack_nframes_t t, jack_nframes_t n) {
  return (jack_nframes_t)(f - t) < n;
}

static int sender_process(jack_nframes_t n, void *arg) {
  struct probe *p = arg;
  jack_nframes_t t = jack_last_frame_time(p->sender);
  void *midi = p->midi_out ? jack_port_get_buffer(p->midi_out, n) : NULL;
  float *audio = p->audio_out ? jack_port_get_buffer(p->audio_out, n) : NULL;
  if (midi != NULL)
    jack_midi_clear_buffer(midi);
  if (audio != NULL)
    memset(audio, 0, n * sizeof(float));
  if (!atomic_load_explicit(&p->armed, memory_order_acquire))
    return 0;
  uint32_t i = atomic_load_explicit(&p->next_event, memory_order_relaxed);
  while (i < p->n_events && in_cycle(p->events[i].frame, t, n)) {
    jack_nframes_t off = p->events[i].frame - t;
    if (midi != NULL)
      jack_midi_event_write(midi, off, p->events[i].data, 3);
    if (audio != NULL)
      audio[off] = 1.0f;
    i++;
  }
  /* Events whose time passed without a cycle (not armed in time) are skipped. */
  while (i < p->n_events && (int32_t)(p->events[i].frame - t) < 0)
    i++;
  atomic_store_explicit(&p->next_event, i, memory_order_release);
  return 0;
}

static int recorder_process(jack_nframes_t n, void *arg) {
  struct probe *p = arg;
  if (!atomic_load_explicit(&p->armed, memory_order_acquire))
    return 0;
  jack_nframes_t t = jack_last_frame_time(p->recorder);
  const float *in[MAX_CHANNELS];
  for (uint32_t c = 0; c < p->channels; c++)
    in[c] = jack_port_get_buffer(p->rec[c], n);
  /* Indexed by absolute frame: a cycle JACK skipped leaves silence, never a shift. */
  uint32_t done = atomic_load_explicit(&p->recorded, memory_order_relaxed);
  for (jack_nframes_t k = 0; k < n; k++) {
    int32_t idx = (int32_t)(t + k - p->rec_start);
    if (idx < 0 || (uint32_t)idx >= p->rec_frames)
      continue;
    for (uint32_t c = 0; c < p->channels; c++)
      p->rec_buf[c][idx] = in[c][k];
    done = (uint32_t)idx + 1;
  }
  atomic_store_explicit(&p->recorded, done, memory_order_release);
  return 0;
}

static int write_wav(const char *path, float *const *chan, uint32_t channels, uint32_t frames,
                     uint32_t rate) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return -errno;
  uint32_t data_bytes = frames * channels * 4;
  uint8_t h[44];
  memcpy(h, "RIFF", 4);
  uint32_t v = 36 + data_bytes;
  memcpy(h + 4, &v, 4);
  memcpy(h + 8, "WAVEfmt ", 8);
  v = 16;
  memcpy(h + 16, &v, 4);
  uint16_t fmt = 3; /* IEEE float */
  uint16_t nch = (uint16_t)channels;
  memcpy(h + 20, &fmt, 2);
  memcpy(h + 22, &nch, 2);
  memcpy(h + 24, &rate, 4);
  v = rate * channels * 4;
  memcpy(h + 28, &v, 4);
  uint16_t align = (uint16_t)(channels * 4), bits = 32;
  memcpy(h + 32, &align, 2);
  memcpy(h + 34, &bits, 2);
  memcpy(h + 36, "data", 4);
  memcpy(h + 40, &data_bytes, 4);
  int ok = fwrite(h, sizeof(h), 1, f) == 1;
  for (uint32_t i = 0; ok && i < frames; i++)
    for (uint32_t c = 0; ok && c < channels; c++)
      ok = fwrite(&chan[c][i], 4, 1, f) == 1;
  if (fclose(f) != 0 || !ok)
    return -EIO;
  return 0;
}

static void usage(FILE *out) {
  fprintf(out, "usage: runway-probe [--client NAME] --slot SLOT (--phrase | --impulse)\n"
               "                    [--wav FILE] [--seconds S] [--json]\n");
}

static int connect_ports(jack_client_t *c, const char *from, const char *to) {
  int rc = jack_connect(c, from, to);
  if (rc != 0 && rc != EEXIST) {
    fprintf(stderr, "runway-probe: cannot connect %s to %s (is the slot there?)\n", from, to);
    return -1;
  }
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  const char *client = "runway", *slot = NULL, *wav = NULL;
  double seconds = 2.5;
  bool phrase = false, json = false;
  static const struct option longopts[] = {{"client", required_argument, NULL, 'c'},
                                           {"slot", required_argument, NULL, 's'},
                                           {"phrase", no_argument, NULL, 'p'},
                                           {"impulse", no_argument, NULL, 'i'},
                                           {"wav", required_argument, NULL, 'w'},
                                           {"seconds", required_argument, NULL, 'S'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'c':
      client = optarg;
      break;
    case 's':
      slot = optarg;
      break;
    case 'p':
      phrase = true;
      break;
    case 'i':
      P.impulse = true;
      break;
    case 'w':
      wav = optarg;
      break;
    case 'S':
      seconds = atof(optarg);
      break;
    case 'j':
      json = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (slot == NULL || phrase == P.impulse || !(seconds > 0.2 && seconds <= 60)) {
    usage(stderr);
    return 2;
  }

  jack_status_t st;
  P.sender = jack_client_open("runway-probe-send", JackNoStartServer, &st);
  P.recorder = jack_client_open("runway-probe-rec", JackNoStartServer, &st);
  if (P.sender == NULL || P.recorder == NULL) {
    fprintf(stderr, "runway-probe: cannot connect to the JACK server\n");
    return 3;
  }
  uint32_t rate = jack_get_sample_rate(P.recorder);
  char port[320];
  P.channels = 0;
  for (uint32_t k = 1; k <= MAX_CHANNELS; k++) {
    snprintf(port, sizeof(port), "%s:%s.out_%u", client, slot, k);
    if (jack_port_by_name(P.recorder, port) != NULL)
      P.channels = k;
  }
  if (P.channels == 0) {
    fprintf(stderr, "runway-probe: %s:%s.out_1 does not exist; add the slot first\n", client, slot);
    return 1;
  }
  if (phrase)
    P.midi_out =
        jack_port_register(P.sender, "midi_out", JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput, 0);
  else
    P.audio_out = jack_port_register(P.sender, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
  for (uint32_t k = 0; k < P.channels; k++) {
    snprintf(port, sizeof(port), "in_%u", k + 1);
    P.rec[k] = jack_port_register(P.recorder, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
  }
  P.rec_frames = (uint32_t)(seconds * rate);
  for (uint32_t k = 0; k < P.channels; k++) {
    P.rec_buf[k] = calloc(P.rec_frames, sizeof(float));
    if (P.rec_buf[k] == NULL)
      return 1;
  }
  jack_set_process_callback(P.sender, sender_process, &P);
  jack_set_process_callback(P.recorder, recorder_process, &P);
  if (jack_activate(P.sender) != 0 || jack_activate(P.recorder) != 0) {
    fprintf(stderr, "runway-probe: cannot activate JACK clients\n");
    return 1;
  }
  if (phrase) {
    snprintf(port, sizeof(port), "%s:%s.midi_in", client, slot);
    if (connect_ports(P.sender, jack_port_name(P.midi_out), port) != 0)
      return 1;
  } else {
    snprintf(port, sizeof(port), "%s:%s.in_1", client, slot);
    if (connect_ports(P.sender, jack_port_name(P.audio_out), port) != 0)
      return 1;
  }
  for (uint32_t k = 0; k < P.channels; k++) {
    snprintf(port, sizeof(port), "%s:%s.out_%u", client, slot, k + 1);
    if (connect_ports(P.recorder, port, jack_port_name(P.rec[k])) != 0)
      return 1;
  }
  sleep_ms(200); /* let the graph settle after connecting; timing comes from frame times */

  /* Schedule the signal 0.25 s from now and record from there. */
  jack_nframes_t start = jack_frame_time(P.recorder) + rate / 4;
  P.rec_start = start;
  if (phrase) {
    static const uint8_t notes[] = {60, 64, 67, 72, 67, 64, 60};
    double step = (seconds - 0.6) / (sizeof(notes));
    for (size_t i = 0; i < sizeof(notes) && P.n_events + 2 <= MAX_EVENTS; i++) {
      jack_nframes_t on = start + (jack_nframes_t)(i * step * rate);
      jack_nframes_t off = on + (jack_nframes_t)(step * 0.8 * rate);
      P.events[P.n_events++] = (struct event){on, {0x90, notes[i], 100}};
      P.events[P.n_events++] = (struct event){off, {0x80, notes[i], 0}};
    }
  } else {
    for (int i = 0; i < 4; i++)
      P.events[P.n_events++] =
          (struct event){start + (jack_nframes_t)(i * (seconds - 0.3) / 4 * rate), {0, 0, 0}};
  }
  atomic_store_explicit(&P.armed, 1, memory_order_release);

  /* Wait for the recording, with a deadline well past its length. */
  for (int waited = 0; atomic_load(&P.recorded) < P.rec_frames; waited += 10) {
    if (waited > (int)(seconds * 1000) + 5000) {
      fprintf(stderr, "runway-probe: recording did not complete (is JACK running?)\n");
      return 1;
    }
    sleep_ms(10);
  }

  jack_latency_range_t reported = {0, 0};
  snprintf(port, sizeof(port), "%s:%s.out_1", client, slot);
  jack_port_get_latency_range(jack_port_by_name(P.recorder, port), JackCaptureLatency, &reported);

  /* The onset: the first frame from the first event on where the output is not silent. */
  int64_t onset = -1;
  uint32_t first = P.events[0].frame - start;
  for (uint32_t i = first; i < P.rec_frames && onset < 0; i++)
    for (uint32_t k = 0; k < P.channels; k++)
      if (fabsf(P.rec_buf[k][i]) > 1e-6f) {
        onset = (int64_t)i - first;
        break;
      }
  float peak = 0.0f;
  for (uint32_t k = 0; k < P.channels; k++)
    for (uint32_t i = 0; i < P.rec_frames; i++)
      peak = fmaxf(peak, fabsf(P.rec_buf[k][i]));

  int wav_rc = 0;
  if (wav != NULL)
    wav_rc = write_wav(wav, P.rec_buf, P.channels, P.rec_frames, rate);

  jack_client_close(P.sender);
  jack_client_close(P.recorder);

  if (json) {
    printf("{\"slot\":\"%s\",\"sample_rate\":%u,\"reported_latency_frames\":%u,"
           "\"measured_latency_frames\":%lld,\"peak\":%.4f,\"frames\":%u,\"wav\":%s%s%s}\n",
           slot, rate, reported.max, (long long)onset, peak, P.rec_frames, wav ? "\"" : "",
           wav ? wav : "null", wav ? "\"" : "");
  } else {
    printf("recorded %u frames at %u Hz from %s:%s (peak %.3f)%s%s\n", P.rec_frames, rate, client,
           slot, peak, wav ? " into " : "", wav ? wav : "");
    printf("reported latency: %u frames (%.2f ms)\n", reported.max, reported.max * 1000.0 / rate);
    if (onset >= 0)
      printf("measured latency: %lld frames (%.2f ms) from the first %s to its onset\n",
             (long long)onset, onset * 1000.0 / rate, phrase ? "note-on" : "click");
    else
      printf("measured latency: no onset found: the slot played silence\n");
  }
  if (wav_rc != 0) {
    fprintf(stderr, "runway-probe: cannot write %s: %s\n", wav, strerror(-wav_rc));
    return 1;
  }
  return onset >= 0 ? 0 : 1;
}
