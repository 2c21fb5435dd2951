/*
 * runway-bench-lv2: what hosting an LV2 plugin in a runway worker costs, next
 * to the same plugin in jalv (a plain in-graph JACK host) doing the same work
 * at the same time.
 *
 * One private JACK server (dummy, 48 kHz, 128 frames); for each plugin in
 * turn: a runwayd slot running it (`slot add --lv2 URI`) and a jalv running
 * it, both fed the same input by the same probe (a constant level on every
 * audio input; for the instrument, the same chords on both MIDI inputs).
 * After a second of warm-up, the CPU time (user + system, /proc/PID/stat) of
 * the slot's worker process, of runwayd and of jalv is taken over the same
 * seconds. The plugins: mda Delay (stereo effect), mda DX10 (FM instrument)
 * and LSP Compressor Stereo.
 *
 * One JSON object per line on stdout:
 *   {"bench":"lv2","plugin":...,"uri":...,"seconds":...,"worker_ms":...,
 *    "runwayd_ms":...,"jalv_ms":...,"ratio_worker":...,"ratio_runway":...}
 * ratio_worker = worker_ms / jalv_ms: the worker's cost against the plugin
 * in an in-graph host; ratio_runway adds runwayd's whole CPU time (its RT
 * callback and housekeeping, one slot), which the in-graph host has no
 * counterpart of. Progress goes to stderr. Exit status 0, 1 when it could
 * not run, 2 for a usage error, 77 when jalv is missing.
 *
 * usage: runway-bench-lv2 [--quick] [--seconds S]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jack/jack.h>
#include <jack/midiport.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define WARMUP_MS 1000u

struct bench_case {
  const char *label;
  const char *uri;
};

static const struct bench_case cases[] = {
    {"mda Delay", LV2RIG_MDA "Delay"},
    {"mda DX10", LV2RIG_MDA "DX10"},
    {"LSP Compressor Stereo", "http://lsp-plug.in/plugins/lv2/compressor_stereo"},
};

static FILE *json_out;

/* user + system CPU time of a process, in ms (all its threads). */
static double cpu_ms(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  H_CHECK(f != NULL, "cannot read %s", path);
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Fields after the command name, which is in parentheses and may hold spaces. */
  const char *p = strrchr(buf, ')');
  H_CHECK(p != NULL, "%s is not what /proc says it is", path);
  unsigned long long utime = 0, stime = 0;
  int got = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
  H_CHECK(got == 2, "cannot parse %s", path);
  return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/*
 * jalv's console reads commands from stdin and quits at its end, so it gets
 * a pipe that stays open while it runs. It dies with the benchmark.
 */
static pid_t start_jalv(const struct h_jack *j, const char *name, const char *uri, int *stdin_fd) {
  int fds[2];
  H_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
  char log[PATH_MAX];
  snprintf(log, sizeof(log), "%s/jalv-%s.log", h_tmpdir(), name);
  pid_t pid = fork();
  H_CHECK(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fds[0], 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    close(fds[1]);
    setenv("JACK_DEFAULT_SERVER", j->name, 1);
    setenv("LV2_PATH", RWT_LV2_PATH, 1);
    setenv("JACK_NO_START_SERVER", "1", 1);
    execlp("jalv", "jalv", "-n", name, "-x", uri, (char *)NULL);
    _exit(127);
  }
  close(fds[0]);
  *stdin_fd = fds[1];
  return pid;
}

/* The ports of a client whose names start with "client:", of a type and direction. */
static const char **ports_of(jack_client_t *jc, const char *client, const char *type,
                             unsigned long flags) {
  char pattern[128];
  snprintf(pattern, sizeof(pattern), "^%s:", client);
  return jack_get_ports(jc, pattern, type, flags);
}

static void run_case(const struct bench_case *bc, struct h_jack *j, struct h_daemon *d,
                     struct h_conn *c, jack_client_t *jc, unsigned seconds, unsigned index) {
  char jalv_name[32], slot[16];
  snprintf(jalv_name, sizeof(jalv_name), "jalv-bench-%u", index);
  snprintf(slot, sizeof(slot), "lv2-%u", index);

  json_t *s = h_add_slot(c, slot, json_pack("{s:s}", "lv2", bc->uri), 15000);
  pid_t worker = (pid_t)h_int(s, "pid");
  int jalv_stdin;
  pid_t jalv = start_jalv(j, jalv_name, bc->uri, &jalv_stdin);

  /* jalv's ports appear once it runs. */
  const char **jin = NULL, **jmidi = NULL, **jout = NULL;
  for (uint64_t deadline = h_now_ms() + 15000;; h_sleep_ms(50)) {
    jin = ports_of(jc, jalv_name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput);
    jmidi = ports_of(jc, jalv_name, JACK_DEFAULT_MIDI_TYPE, JackPortIsInput);
    jout = ports_of(jc, jalv_name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput);
    if (jout != NULL && (jin != NULL || jmidi != NULL))
      break;
    jack_free(jin);
    jack_free(jmidi);
    jack_free(jout);
    int st;
    H_CHECK(waitpid(jalv, &st, WNOHANG) == 0, "jalv exited (see %s/jalv-%s.log)", h_tmpdir(),
            jalv_name);
    H_CHECK(h_now_ms() < deadline, "jalv did not register its ports within 15 s");
  }

  /* The same input for both: a level on every audio input, the same chords on both MIDI inputs. */
  const json_t *ports = json_object_get(s, "ports");
  const json_t *ins = json_object_get(ports, "inputs");
  unsigned n_in = (unsigned)json_array_size(ins);
  struct h_probe *p = h_probe_open(j, n_in > 0 ? n_in : 1, true, 2, 0, 0);
  /* Both hosts' first outputs reach the probe, counted: a benchmark of silence measures nothing. */
  h_probe_count_only(p, 0);
  h_probe_count_only(p, 1);
  h_connect(p, json_string_value(json_array_get(json_object_get(ports, "outputs"), 0)),
            h_probe_in(p, 0));
  h_connect(p, jout[0], h_probe_in(p, 1));
  for (unsigned i = 0; i < n_in; i++) {
    h_connect(p, h_probe_out(p, i), json_string_value(json_array_get(ins, i)));
    if (jin != NULL && jin[i] != NULL)
      h_connect(p, h_probe_out(p, i), jin[i]);
    h_probe_dc(p, i, 0.25f);
  }
  const char *midi = json_string_value(json_object_get(ports, "midi"));
  if (midi != NULL && jmidi != NULL && jmidi[0] != NULL) {
    h_connect(p, h_probe_midi(p), midi);
    h_connect(p, h_probe_midi(p), jmidi[0]);
    uint64_t f = h_probe_now(p) + RATE / 10;
    static const uint8_t chord[] = {48, 55, 64, 71};
    for (uint64_t t = 0; t < (uint64_t)(seconds * 1000 + WARMUP_MS + 1000) / 250; t++) {
      uint64_t at = f + t * RATE / 4;
      for (size_t k = 0; k < sizeof(chord); k++)
        h_probe_midi3(p, at, 0x90, (uint8_t)(chord[k] + t % 5), 90);
      for (size_t k = 0; k < sizeof(chord); k++)
        h_probe_midi3(p, at + RATE / 5, 0x80, (uint8_t)(chord[k] + t % 5), 0);
    }
  }
  jack_free(jin);
  jack_free(jmidi);
  jack_free(jout);

  h_sleep_ms(WARMUP_MS);
  double w0 = cpu_ms(worker), d0 = cpu_ms(d->proc.pid), j0 = cpu_ms(jalv);
  h_sleep_ms(seconds * 1000);
  double w1 = cpu_ms(worker), d1 = cpu_ms(d->proc.pid), j1 = cpu_ms(jalv);
  json_t *after = h_slot(c, slot);
  H_CHECK(h_int(after, "pid") == worker, "the worker of %s was replaced while measured", bc->label);
  json_decref(after);

  uint64_t sound_runway = h_probe_nonzero(p, 0), sound_jalv = h_probe_nonzero(p, 1);
  H_CHECK(sound_runway > RATE && sound_jalv > RATE,
          "%s made no sound: %llu samples from the slot, %llu from jalv", bc->label,
          (unsigned long long)sound_runway, (unsigned long long)sound_jalv);
  double wk = w1 - w0, dm = d1 - d0, jl = j1 - j0;
  fprintf(json_out,
          "{\"bench\":\"lv2\",\"plugin\":\"%s\",\"uri\":\"%s\",\"seconds\":%u,\"rate\":%u,"
          "\"period\":%u,\"worker_ms\":%.0f,\"runwayd_ms\":%.0f,\"jalv_ms\":%.0f,"
          "\"ratio_worker\":%.3f,\"ratio_runway\":%.3f}\n",
          bc->label, bc->uri, seconds, RATE, PERIOD, wk, dm, jl, jl > 0 ? wk / jl : 0.0,
          jl > 0 ? (wk + dm) / jl : 0.0);
  fflush(json_out);
  h_log("%s: worker %.0f ms, runwayd %.0f ms, jalv %.0f ms of CPU in %u s", bc->label, wk, dm, jl,
        seconds);

  h_probe_close(p);
  close(jalv_stdin); /* jalv quits at the end of its input */
  int st;
  uint64_t until = h_now_ms() + 5000;
  while (waitpid(jalv, &st, WNOHANG) == 0) {
    if (h_now_ms() > until) {
      kill(jalv, SIGKILL);
      waitpid(jalv, &st, 0);
      break;
    }
    h_sleep_ms(20);
  }
  json_decref(h_call(c, "slot.remove", json_pack("{s:s}", "name", slot)));
  json_decref(s);
}

int main(int argc, char **argv) {
  unsigned seconds = 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      seconds = 2;
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = (unsigned)atoi(argv[++i]);
      if (seconds < 1 || seconds > 600) {
        fprintf(stderr, "runway-bench-lv2: --seconds is 1 to 600\n");
        return 2;
      }
    } else {
      fprintf(stderr, "usage: runway-bench-lv2 [--quick] [--seconds S]\n");
      return 2;
    }
  }
  if (system("command -v jalv >/dev/null 2>&1") != 0) {
    fprintf(stderr, "runway-bench-lv2: jalv is not installed (Debian: jalv)\n");
    return 77;
  }
  /* stdout carries the JSON lines only; the harness's progress goes to stderr. */
  int out = dup(1);
  if (out < 0 || (json_out = fdopen(out, "w")) == NULL || dup2(2, 1) < 0) {
    perror("runway-bench-lv2: stdout");
    return 1;
  }

  h_init("bench_lv2", 60 + (unsigned)(sizeof(cases) / sizeof(cases[0])) * (seconds + 15));
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  h_jack_start(&j, RATE, PERIOD);
  lv2rig_daemon_start(&d, &j, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  jack_status_t status;
  jack_client_t *jc =
      jack_client_open("rwbench-lv2-ports", JackNoStartServer | JackServerName, &status, j.name);
  H_CHECK(jc != NULL, "cannot open a JACK client on %s", j.name);

  for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    run_case(&cases[i], &j, &d, &c, jc, seconds, i);

  jack_client_close(jc);
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
