#include "lv2_rig.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lilv/lilv.h>
#include <lv2/atom/atom.h>
#include <lv2/atom/util.h>
#include <lv2/midi/midi.h>
#include <lv2/urid/urid.h>

const char *lv2rig_env(void) { return "LV2_PATH=" RWT_LV2_PATH; }

void lv2rig_daemon_start(struct h_daemon *d, const struct h_jack *j, const char *const *args) {
  const char *env[] = {lv2rig_env(), NULL};
  h_daemon_start(d, j, args, env);
}

json_t *lv2rig_add_slot(struct h_conn *c, const char *name, const char *uri, unsigned n_in,
                        unsigned n_out, bool midi, uint32_t latency) {
  json_t *args =
      json_pack("{s:s, s:I, s:I, s:b, s:I}", "lv2", uri, "inputs", (json_int_t)n_in, "outputs",
                (json_int_t)n_out, "midi", midi, "latency_frames", (json_int_t)latency);
  json_t *slot = h_add_slot(c, name, args, 15000);
  H_CHECK(strcmp(h_str(slot, "kind"), "lv2") == 0 && strcmp(h_str(slot, "lv2"), uri) == 0,
          "slot %s runs <%s> as kind %s", name, h_str(slot, "lv2"), h_str(slot, "kind"));
  return slot;
}

void lv2rig_set(struct h_conn *c, const char *slot, const char *param, double value) {
  json_t *r = h_call(c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", slot, "param", param, "value", value));
  double got = json_number_value(json_object_get(r, "value"));
  H_CHECK((float)got == (float)value, "%s.%s set to %g, the daemon applied %g", slot, param, value,
          got);
  json_decref(r);
}

void lv2rig_wire(struct h_probe *p, const json_t *slot, const unsigned *out, unsigned n_out,
                 const unsigned *in, unsigned n_in) {
  const json_t *ports = json_object_get(slot, "ports");
  const json_t *ins = json_object_get(ports, "inputs");
  const json_t *outs = json_object_get(ports, "outputs");
  H_CHECK(json_array_size(ins) >= n_out && json_array_size(outs) >= n_in, "slot ports");
  for (unsigned i = 0; i < n_out; i++)
    h_connect(p, h_probe_out(p, out[i]), json_string_value(json_array_get(ins, i)));
  for (unsigned i = 0; i < n_in; i++)
    h_connect(p, json_string_value(json_array_get(outs, i)), h_probe_in(p, in[i]));
  const char *midi = json_string_value(json_object_get(ports, "midi"));
  if (midi != NULL && h_probe_midi(p) != NULL)
    h_connect(p, h_probe_midi(p), midi);
}

void lv2rig_play(struct h_probe *p, const unsigned *ports, unsigned n_ch, float *const *sig,
                 uint32_t n, uint64_t start) {
  for (uint32_t k = 0; k < n; k++)
    for (unsigned c = 0; c < n_ch; c++)
      if (sig[c][k] != 0.0f)
        h_probe_impulse(p, ports[c], start + k, sig[c][k]);
}

float *lv2rig_signal(uint32_t n, unsigned seed) {
  float *s = malloc((size_t)n * sizeof(float));
  H_CHECK(s != NULL, "out of memory");
  uint32_t r = seed * 2654435761u + 1u;
  for (uint32_t k = 0; k < n; k++) {
    r = r * 1664525u + 1013904223u;
    double noise = (double)(r >> 8) / (double)(1u << 24) - 0.5;
    double t = (double)k / 48000.0;
    double v = 0.35 * sin(2 * M_PI * 220.0 * (1 + seed) * t) +
               0.2 * sin(2 * M_PI * 1375.0 * t + seed) + 0.25 * noise;
    s[k] = (float)v;
  }
  return s;
}

bool lv2rig_same(const float *got, const float *want, uint32_t n, const char *label) {
  unsigned shown = 0;
  uint32_t differ = 0, sound = 0;
  for (uint32_t k = 0; k < n; k++) {
    sound += want[k] != 0.0f;
    if (got[k] == want[k])
      continue;
    differ++;
    if (shown++ < 5)
      h_log("%s: frame %u: %.9g, the reference has %.9g", label, k, (double)got[k],
            (double)want[k]);
  }
  if (differ > 0)
    h_log("%s: %u of %u samples differ", label, differ, n);
  else
    h_log("%s: %u samples identical (%u of them sound)", label, n, sound);
  if (sound < n / 4) {
    h_log("%s: the reference is mostly silence (%u of %u samples): nothing was compared", label,
          sound, n);
    return false;
  }
  return differ == 0;
}

/* ---- WAV --------------------------------------------------------------------------- */

static void put16(FILE *f, uint16_t v) {
  unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
  fwrite(b, 1, 2, f);
}

static void put32(FILE *f, uint32_t v) {
  unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  fwrite(b, 1, 4, f);
}

void lv2rig_wav_write(const char *path, float *const *ch, unsigned n_ch, uint32_t n,
                      uint32_t rate) {
  FILE *f = fopen(path, "wb");
  H_CHECK(f != NULL, "%s: %s", path, strerror(errno));
  uint32_t data = n * n_ch * 4u;
  fwrite("RIFF", 1, 4, f);
  put32(f, 36 + data);
  fwrite("WAVEfmt ", 1, 8, f);
  put32(f, 16);
  put16(f, 3); /* IEEE float */
  put16(f, (uint16_t)n_ch);
  put32(f, rate);
  put32(f, rate * n_ch * 4u);
  put16(f, (uint16_t)(n_ch * 4u));
  put16(f, 32);
  fwrite("data", 1, 4, f);
  put32(f, data);
  for (uint32_t k = 0; k < n; k++)
    for (unsigned c = 0; c < n_ch; c++)
      fwrite(&ch[c][k], 4, 1, f); /* little-endian, as the machine */
  H_CHECK(fclose(f) == 0, "%s: %s", path, strerror(errno));
}

static uint32_t get32(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

void lv2rig_wav_read(const char *path, float ***ch, unsigned *n_ch, uint32_t *n) {
  FILE *f = fopen(path, "rb");
  H_CHECK(f != NULL, "%s: %s", path, strerror(errno));
  unsigned char head[12], chunk[8], fmt[40];
  H_CHECK(fread(head, 1, 12, f) == 12 && memcmp(head, "RIFF", 4) == 0 &&
              memcmp(head + 8, "WAVE", 4) == 0,
          "%s is not a WAV file", path);
  unsigned channels = 0, format = 0, bits = 0;
  /* Walk the chunks: libsndfile adds some (PEAK, fact) between fmt and data. */
  for (;;) {
    H_CHECK(fread(chunk, 1, 8, f) == 8, "%s has no data chunk", path);
    uint32_t size = get32(chunk + 4);
    if (memcmp(chunk, "fmt ", 4) == 0) {
      H_CHECK(size >= 16 && size <= sizeof(fmt) && fread(fmt, 1, size, f) == size, "%s: fmt", path);
      format = fmt[0] | fmt[1] << 8;
      channels = fmt[2] | fmt[3] << 8;
      bits = fmt[14] | fmt[15] << 8;
      if (format == 0xFFFE && size >= 26) /* WAVE_FORMAT_EXTENSIBLE: the sub-format's first word */
        format = fmt[24] | fmt[25] << 8;
      if (size % 2)
        fseek(f, 1, SEEK_CUR);
    } else if (memcmp(chunk, "data", 4) == 0) {
      H_CHECK(format == 3 && bits == 32 && channels > 0,
              "%s is not 32-bit float (format %u, %u "
              "bits)",
              path, format, bits);
      uint32_t frames = size / (channels * 4u);
      float **out = calloc(channels, sizeof(float *));
      for (unsigned c = 0; c < channels; c++)
        out[c] = calloc(frames ? frames : 1, sizeof(float));
      for (uint32_t k = 0; k < frames; k++)
        for (unsigned c = 0; c < channels; c++)
          H_CHECK(fread(&out[c][k], 4, 1, f) == 1, "%s: short data", path);
      fclose(f);
      *ch = out;
      *n_ch = channels;
      *n = frames;
      return;
    } else {
      fseek(f, (long)(size + (size % 2)), SEEK_CUR);
    }
  }
}

void lv2rig_lv2apply(const char *uri, const char *const *controls, const char *in,
                     const char *out) {
  const char *argv[64];
  size_t a = 0;
  argv[a++] = "lv2apply";
  argv[a++] = "-i";
  argv[a++] = in;
  argv[a++] = "-o";
  argv[a++] = out;
  for (size_t i = 0; controls != NULL && controls[i] != NULL && a < 58; i += 2) {
    argv[a++] = "-c";
    argv[a++] = controls[i];
    argv[a++] = controls[i + 1];
  }
  argv[a++] = uri;
  argv[a] = NULL;
  const char *env[] = {lv2rig_env(), NULL};
  char log[PATH_MAX], st[64];
  snprintf(log, sizeof(log), "%s/lv2apply.log", h_tmpdir());
  char *stdout_text = NULL;
  int status = h_run_capture(argv, env, NULL, log, 60000, &stdout_text);
  free(stdout_text);
  H_CHECK(status == 0, "lv2apply %s failed (%s); see %s", uri, h_status_str(status, st, sizeof(st)),
          log);
}

/* ---- the reference renderer ---------------------------------------------------------- */

/* A URID map of its own: the reference shares nothing with the host it checks. */
struct ref_map {
  char *uris[256];
  uint32_t n;
};

static LV2_URID ref_map_uri(LV2_URID_Map_Handle handle, const char *uri) {
  struct ref_map *m = handle;
  for (uint32_t i = 0; i < m->n; i++)
    if (strcmp(m->uris[i], uri) == 0)
      return i + 1;
  H_CHECK(m->n < 256, "reference renderer: too many URIs");
  m->uris[m->n++] = strdup(uri);
  return m->n;
}

void lv2rig_render(const char *uri, uint32_t rate, const struct lv2rig_midi *events,
                   size_t n_events, uint64_t start, uint32_t frames, float **out, unsigned n_out) {
  setenv("LV2_PATH", RWT_LV2_PATH, 1);
  LilvWorld *world = lilv_world_new();
  lilv_world_load_all(world);
  LilvNode *uri_node = lilv_new_uri(world, uri);
  const LilvPlugin *plugin = lilv_plugins_get_by_uri(lilv_world_get_all_plugins(world), uri_node);
  H_CHECK(plugin != NULL, "reference renderer: %s is not installed", uri);

  struct ref_map map = {.n = 0};
  LV2_URID_Map map_feature = {&map, ref_map_uri};
  LV2_Feature f_map = {LV2_URID__map, &map_feature};
  const LV2_Feature *features[] = {&f_map, NULL};
  LilvInstance *inst = lilv_plugin_instantiate(plugin, rate, features);
  H_CHECK(inst != NULL, "reference renderer: %s does not instantiate", uri);

  LilvNode *audio = lilv_new_uri(world, LV2_CORE__AudioPort);
  LilvNode *control = lilv_new_uri(world, LV2_CORE__ControlPort);
  LilvNode *atom = lilv_new_uri(world, LV2_ATOM__AtomPort);
  LilvNode *input = lilv_new_uri(world, LV2_CORE__InputPort);
  uint32_t n_ports = lilv_plugin_get_num_ports(plugin);
  float *defaults = calloc(n_ports, sizeof(float));
  float *values = calloc(n_ports, sizeof(float));
  lilv_plugin_get_port_ranges_float(plugin, NULL, NULL, defaults);
  float frame_out[8][1];
  float frame_in[1] = {0};
  uint64_t seq_buf[4096]; /* 8-byte aligned, as atoms must be */
  LV2_Atom_Sequence *seq = (LV2_Atom_Sequence *)seq_buf;
  unsigned audio_out = 0;
  for (uint32_t i = 0; i < n_ports; i++) {
    const LilvPort *port = lilv_plugin_get_port_by_index(plugin, i);
    if (lilv_port_is_a(plugin, port, control)) {
      values[i] = isnan(defaults[i]) ? 0.0f : defaults[i];
      lilv_instance_connect_port(inst, i, &values[i]);
    } else if (lilv_port_is_a(plugin, port, audio)) {
      if (lilv_port_is_a(plugin, port, input))
        lilv_instance_connect_port(inst, i, frame_in);
      else
        lilv_instance_connect_port(inst, i, frame_out[audio_out < 8 ? audio_out++ : 7]);
    } else if (lilv_port_is_a(plugin, port, atom) && lilv_port_is_a(plugin, port, input)) {
      lilv_instance_connect_port(inst, i, seq);
    }
  }
  H_CHECK(audio_out >= n_out, "reference renderer: %s has %u audio outputs", uri, audio_out);
  LV2_URID sequence = ref_map_uri(&map, LV2_ATOM__Sequence);
  LV2_URID midi_event = ref_map_uri(&map, LV2_MIDI__MidiEvent);

  lilv_instance_activate(inst);
  size_t e = 0;
  for (uint32_t k = 0; k < frames; k++) {
    seq->atom.type = sequence;
    seq->atom.size = sizeof(LV2_Atom_Sequence_Body);
    seq->body.unit = 0;
    seq->body.pad = 0;
    while (e < n_events && events[e].frame < start + k)
      e++; /* before the rendering: not part of it */
    for (; e < n_events && events[e].frame == start + k; e++) {
      LV2_Atom_Event *ev = lv2_atom_sequence_end(&seq->body, seq->atom.size);
      ev->time.frames = 0;
      ev->body.type = midi_event;
      ev->body.size = 3;
      memcpy(ev + 1, events[e].bytes, 3);
      seq->atom.size += lv2_atom_pad_size(sizeof(LV2_Atom_Event) + 3);
    }
    lilv_instance_run(inst, 1);
    for (unsigned c = 0; c < n_out; c++)
      out[c][k] = frame_out[c][0];
  }
  lilv_instance_deactivate(inst);
  lilv_instance_free(inst);
  lilv_node_free(audio);
  lilv_node_free(control);
  lilv_node_free(atom);
  lilv_node_free(input);
  lilv_node_free(uri_node);
  lilv_world_free(world);
  for (uint32_t i = 0; i < map.n; i++)
    free(map.uris[i]);
  free(defaults);
  free(values);
}

/* ---- undisturbed stretches --------------------------------------------------------------- */

void lv2rig_mark(struct h_probe *p, struct h_conn *c, const char *const *slots, unsigned n,
                 struct lv2rig_marks *out) {
  memset(out, 0, sizeof(*out));
  out->xruns = h_probe_xruns(p);
  out->gaps = h_probe_gaps(p);
  for (unsigned i = 0; i < n && i < 4; i++) {
    out->underruns[i] = h_slot_stat(c, slots[i], "underruns");
    out->discontinuities[i] = h_slot_stat(c, slots[i], "discontinuities");
  }
}

bool lv2rig_disturbed(const struct lv2rig_marks *a, const struct lv2rig_marks *b, unsigned n) {
  bool moved = a->xruns != b->xruns || a->gaps != b->gaps;
  for (unsigned i = 0; i < n && i < 4; i++)
    moved |= a->underruns[i] != b->underruns[i] || a->discontinuities[i] != b->discontinuities[i];
  if (moved)
    h_log("the stretch was disturbed: xruns %llu -> %llu, probe gaps %llu -> %llu, slot 0 "
          "underruns %lld -> %lld, discontinuities %lld -> %lld",
          (unsigned long long)a->xruns, (unsigned long long)b->xruns, (unsigned long long)a->gaps,
          (unsigned long long)b->gaps, (long long)a->underruns[0], (long long)b->underruns[0],
          (long long)a->discontinuities[0], (long long)b->discontinuities[0]);
  return moved;
}

struct level_wait {
  struct h_probe *p;
  unsigned port;
  float level;
  uint64_t from;
  float *seen;
};

/* The last 1024 frames recorded since `from` are all `level`. */
static bool level_held(void *arg, char *note, size_t len) {
  struct level_wait *w = arg;
  float buf[1024];
  uint64_t end = h_probe_cycle(w->p);
  if (end < w->from + 1024)
    return false;
  h_probe_wait_frame(w->p, end, 2000);
  h_probe_samples(w->p, w->port, end - 1024, end, buf);
  *w->seen = buf[1023];
  for (unsigned k = 0; k < 1024; k++) {
    if (buf[k] != w->level) {
      snprintf(note, len, "%.9g at frame %llu", (double)buf[k],
               (unsigned long long)(end - 1024 + k));
      return false;
    }
  }
  return true;
}

bool lv2rig_wait_level(struct h_probe *p, unsigned port, float level, uint64_t from,
                       unsigned timeout_ms, float *seen) {
  struct level_wait w = {p, port, level, from, seen};
  return h_wait_for(level_held, &w, timeout_ms);
}
