/*
 * One runway block through the plugin.
 *
 * Sample accuracy: LV2 control ports hold one value per run(), so a block
 * whose parameter changes fall inside it is run in pieces, each starting
 * where a change lands (as Carla does). A plugin that asks for long blocks
 * (bufsz:coarseBlockLength, e.g. convolvers and x42's No Delay Line) runs
 * the whole block at once, its changes applied at the block's start. MIDI
 * needs no split: it goes into the plugin's atom sequence at its frame,
 * relative to the piece it falls in.
 *
 * After every run(): the work it scheduled is done and answered, then
 * end_run (work.c), and the latency port is read, since a plugin may change
 * its latency at any time and report a stale value before its first real
 * run() (x42 No Delay Line and LSP report 0 from run(0)).
 */
#include <math.h>
#include <string.h>

#include <lv2/atom/util.h>

#include "lv2host.h"

/* Empty input sequences; output buffers offered whole, as chunks the plugin fills. */
static void reset_atoms(struct lv2host *h) {
  const struct lv2host_desc *d = h->desc;
  const struct lv2host_urids *u = &h->world->u;
  for (uint32_t i = 0; i < d->n_ports; i++) {
    const struct lv2host_port *p = &d->ports[i];
    if (p->kind == LV2HOST_ATOM_IN) {
      LV2_Atom_Sequence *seq = h->atom_bufs[i];
      seq->atom.type = u->atom_sequence;
      seq->atom.size = sizeof(LV2_Atom_Sequence_Body);
      seq->body.unit = 0; /* time stamps in frames */
      seq->body.pad = 0;
    } else if (p->kind == LV2HOST_ATOM_OUT) {
      LV2_Atom *atom = h->atom_bufs[i];
      atom->type = u->atom_chunk;
      atom->size = (uint32_t)p->atom_capacity;
    }
  }
}

static void append_midi(struct lv2host *h, uint32_t frame, const rw_event *ev) {
  uint32_t port = (uint32_t)h->desc->midi_port;
  LV2_Atom_Sequence *seq = h->atom_bufs[port];
  uint32_t need = lv2_atom_pad_size((uint32_t)sizeof(LV2_Atom_Event) + ev->size);
  /* The buffer holds RW_MAX_BLOCK_EVENTS events with room to spare; this never trips. */
  if ((size_t)seq->atom.size + need > h->desc->ports[port].atom_capacity)
    return;
  LV2_Atom_Event *e = lv2_atom_sequence_end(&seq->body, seq->atom.size);
  e->time.frames = frame;
  e->body.type = h->world->u.midi_event;
  e->body.size = ev->size;
  memcpy(e + 1, ev->u.midi.data, ev->size);
  seq->atom.size += need;
}

static void report(struct lv2host *h, uint32_t id, float value) {
  for (uint32_t i = 0; i < h->n_reports; i++) {
    if (h->reports[i].id == id) {
      h->reports[i].value = value;
      return;
    }
  }
  if (h->n_reports < RW_MAX_PARAMS)
    h->reports[h->n_reports++] = (struct lv2host_report){id, value};
}

static void apply_param(struct lv2host *h, uint32_t id, float value) {
  const struct lv2host_desc *d = h->desc;
  if (id >= d->n_ports || d->ports[id].kind != LV2HOST_CONTROL_IN ||
      !(d->controls[d->ports[id].control].flags & LV2HOST_CTL_EXPOSED))
    return;
  float used = lv2host_set_control(h, id, value);
  if (used != value)
    report(h, id, used);
}

/* Audio ports see the block from frame `from` on; a mono slot input feeds every plugin input. */
static void connect_audio(struct lv2host *h, const rw_block *b, uint32_t from) {
  const struct lv2host_desc *d = h->desc;
  for (uint32_t i = 0; i < d->n_ports; i++) {
    const struct lv2host_port *p = &d->ports[i];
    float *buf;
    if (p->kind == LV2HOST_AUDIO_IN) {
      const float *src = p->channel < b->n_inputs ? b->inputs[p->channel]
                         : b->n_inputs == 1       ? b->inputs[0]
                                                  : NULL;
      /* The plugin only reads its inputs (lv2.h); the SDK's input buffers are private copies. */
      buf = src != NULL ? (float *)src + from : h->silence;
    } else if (p->kind == LV2HOST_AUDIO_OUT) {
      buf = p->channel < b->n_outputs ? b->outputs[p->channel] + from : h->scratch;
    } else {
      continue;
    }
    lilv_instance_connect_port(h->inst, i, buf);
  }
}

static void read_latency(struct lv2host *h) {
  if (h->desc->latency_port < 0)
    return;
  float v = h->values[h->desc->latency_port];
  if (!isfinite(v) || v <= 0.0f)
    h->latency = 0;
  else if (v >= (float)RW_MAX_PLUGIN_LATENCY)
    h->latency = RW_MAX_PLUGIN_LATENCY;
  else
    h->latency = (uint32_t)lrintf(v);
}

void lv2host_process(struct lv2host *h, const rw_block *b) {
  const struct lv2host_desc *d = h->desc;
  h->n_reports = 0;
  /* History before a skip no longer lines up with the input: LV2's reset is re-activation. */
  if (b->discontinuity && h->ran)
    lv2host_reset(h);
  /* Plugins must not write their inputs, but one that does must not make noise of silence. */
  memset(h->silence, 0, (size_t)h->max_block * sizeof(float));
  for (uint32_t i = 0; i < d->n_ports; i++)
    if (d->ports[i].kind == LV2HOST_CV_IN)
      memset(h->cv_bufs[i], 0, (size_t)h->max_block * sizeof(float));

  uint32_t e = 0;
  for (uint32_t f = 0, to; f < b->frames; f = to) {
    to = b->frames;
    reset_atoms(h);
    for (; e < b->n_events; e++) {
      const rw_event *ev = &b->events[e];
      uint32_t at = ev->offset < b->frames ? ev->offset : b->frames - 1;
      if (ev->kind == RW_EV_PARAM) {
        if (at > f && !d->coarse) {
          to = at; /* this change starts the next piece */
          break;
        }
        apply_param(h, ev->u.param.id, ev->u.param.value);
      } else if (ev->kind == RW_EV_MIDI && d->midi_port >= 0) {
        append_midi(h, at > f ? at - f : 0, ev);
      }
    }
    connect_audio(h, b, f);
    lilv_instance_run(h->inst, to - f);
    h->ran = 1;
    lv2host_work_flush(&h->work, 1);
    read_latency(h);
  }

  /* A mono plugin in a slot with more outputs plays on all of them. */
  if (d->n_audio_out == 1)
    for (uint32_t c = 1; c < b->n_outputs; c++)
      memcpy(b->outputs[c], b->outputs[0], (size_t)b->frames * sizeof(float));
}
