/*
 * A slot on PipeWire: a pw_filter node of its own, with the slot's ports,
 * so slots chained to each other run in graph order within one cycle and a
 * slot comes and goes as a whole node (a running node's ports are never
 * added or removed). Its latency L is reported through the ports' Latency
 * params: PipeWire tells an input port the capture latency upstream of it
 * and an output port the playback latency downstream of it, and the node
 * answers on the other side with that plus L.
 *
 * Everything here runs with the thread loop's lock held.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipewire_internal.h"

/* How long slot_open waits for the server to create the node. */
#define NODE_TIMEOUT_MS 5000

/*
 * DESIGN.md: every output's capture latency is the inputs' capture latency
 * plus L, every input's playback latency is the outputs' playback latency
 * plus L; a slot without inputs (a synth) reports L alone, and the MIDI
 * input counts as an input. L goes into the rate (frames) part only, so it
 * stays L whatever the quantum is. direction is SPA_DIRECTION_OUTPUT for
 * capture latency, SPA_DIRECTION_INPUT for playback latency.
 */
void pwb__slot_update_latency(struct pwb_slot *s, enum spa_direction direction) {
  struct spa_latency_info acc;
  bool set_outputs = direction == SPA_DIRECTION_OUTPUT;
  if (s->filter == NULL)
    return;
  spa_latency_info_combine_start(&acc, direction);
  for (uint32_t i = 0; i < s->n_ports; i++)
    if (s->ports[i]->output != set_outputs)
      spa_latency_info_combine(&acc, &s->ports[i]->latency[direction]);
  spa_latency_info_combine_finish(&acc);
  acc.min_rate += s->latency;
  acc.max_rate += s->latency;
  for (uint32_t i = 0; i < s->n_ports; i++) {
    struct pwb_port *p = s->ports[i];
    if (p->output != set_outputs || spa_latency_info_compare(&p->reported, &acc) == 0)
      continue;
    uint8_t buf[512];
    struct spa_pod_builder pb = SPA_POD_BUILDER_INIT(buf, sizeof(buf));
    const struct spa_pod *param = spa_latency_build(&pb, SPA_PARAM_Latency, &acc);
    if (pw_filter_update_params(s->filter, p, &param, 1) < 0)
      log_warn("slot %s: PipeWire refused the latency of a port", s->name);
    else
      p->reported = acc;
  }
}

/* The graph set a latency on one of our ports: answer on the slot's other side. */
static void on_param_changed(void *data, void *port_data, uint32_t id,
                             const struct spa_pod *param) {
  struct pwb_slot *s = data;
  struct pwb_port *p = port_data;
  struct spa_latency_info info;
  if (p == NULL || id != SPA_PARAM_Latency || param == NULL || spa_latency_parse(param, &info) < 0)
    return;
  p->latency[info.direction] = info;
  pwb__slot_update_latency(s, info.direction);
}

static void on_state_changed(void *data, enum pw_filter_state old, enum pw_filter_state state,
                             const char *error) {
  struct pwb_slot *s = data;
  (void)old;
  if (state == PW_FILTER_STATE_ERROR)
    log_warn("slot %s: the PipeWire node failed: %s", s->name, error ? error : "no reason given");
}

static const struct pw_filter_events slot_events = {
    PW_VERSION_FILTER_EVENTS,
    .state_changed = on_state_changed,
    .param_changed = on_param_changed,
    .process = pwb__slot_process,
};

static int add_port(struct pwb *b, struct pwb_slot *s, const char *suffix, uint32_t index,
                    bool output, bool midi, void **handle, char **full, char *err, size_t errlen) {
  char name[160], alias[320];
  if (backend_port_name(name, sizeof(name), s->name, suffix, index) != 0 ||
      (size_t)snprintf(alias, sizeof(alias), "%s:%s", b->client_name, name) >= sizeof(alias)) {
    snprintf(err, errlen, "port name too long for slot %s", s->name);
    return -ENAMETOOLONG;
  }
  /*
   * pw-jack names a port "<node.description>:<port.name>", pw-link takes
   * "<node.name>:<port.name>" or the alias: both find "runway:fx.in_1".
   */
  struct pw_properties *props =
      pw_properties_new(PW_KEY_FORMAT_DSP, midi ? "8 bit raw midi" : "32 bit float mono audio",
                        PW_KEY_PORT_NAME, name, PW_KEY_PORT_ALIAS, alias, NULL);
  if (props == NULL)
    return -ENOMEM;
  size_t size = sizeof(struct pwb_port) + (midi ? PWB_MAX_MIDI * sizeof(struct engine_midi) : 0);
  struct pwb_port *p =
      pw_filter_add_port(s->filter, output ? PW_DIRECTION_OUTPUT : PW_DIRECTION_INPUT,
                         PW_FILTER_PORT_FLAG_MAP_BUFFERS, size, props, NULL, 0);
  if (p == NULL) {
    snprintf(err, errlen, "PipeWire refused port %s", alias);
    return -EIO;
  }
  p->slot = s;
  p->output = output;
  p->midi = midi;
  p->latency[SPA_DIRECTION_INPUT] = SPA_LATENCY_INFO(SPA_DIRECTION_INPUT);
  p->latency[SPA_DIRECTION_OUTPUT] = SPA_LATENCY_INFO(SPA_DIRECTION_OUTPUT);
  p->reported = SPA_LATENCY_INFO(output ? SPA_DIRECTION_OUTPUT : SPA_DIRECTION_INPUT);
  s->ports[s->n_ports++] = p;
  *handle = p;
  *full = strdup(alias);
  return *full != NULL ? 0 : -ENOMEM;
}

/* The node goes; after this its process callback never runs again. */
void pwb__slot_destroy_node(struct pwb_slot *s) {
  if (s->filter == NULL)
    return;
  spa_list_remove(&s->link);
  pw_filter_destroy(s->filter); /* waits for the data thread to drop the node */
  s->filter = NULL;
  s->n_ports = 0;
  for (uint32_t i = 0; i < RW_MAX_CHANNELS; i++)
    s->pub.in[i] = s->pub.out[i] = NULL;
  s->pub.midi_in = NULL;
}

int pwb__slot_open(struct pwb *b, const char *name, uint32_t n_in, uint32_t n_out, bool midi,
                   struct backend_slot **out, char *err, size_t errlen) {
  char node_name[300];
  int rc = 0;
  if (n_in > RW_MAX_CHANNELS || n_out > RW_MAX_CHANNELS)
    return -EINVAL;
  struct pwb_slot *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->b = b;
  snprintf(s->name, sizeof(s->name), "%s", name);
  s->pub.n_in = n_in;
  s->pub.n_out = n_out;
  s->pub.midi = midi;
  s->pub.epoch = b->epoch;
  snprintf(node_name, sizeof(node_name), "%s.%s", b->client_name, name);
  /*
   * always-process: the node runs every cycle, linked or not, as a JACK
   * client does (a synth slot whose output nobody listens to yet keeps its
   * timeline). lock-quantum: other clients' latency wishes do not change the
   * period under the slots (a period change rebuilds every slot).
   */
  struct pw_properties *props = pw_properties_new(
      PW_KEY_NODE_NAME, node_name, PW_KEY_NODE_DESCRIPTION, b->client_name, PW_KEY_MEDIA_TYPE,
      "Audio", PW_KEY_MEDIA_CATEGORY, "Filter", PW_KEY_MEDIA_ROLE, "DSP",
      PW_KEY_NODE_ALWAYS_PROCESS, "true", PW_KEY_NODE_LOCK_QUANTUM, "true", NULL);
  if (props == NULL) {
    free(s);
    return -ENOMEM;
  }
  s->filter = pw_filter_new(b->core, node_name, props);
  if (s->filter == NULL) {
    snprintf(err, errlen, "cannot create the PipeWire node of slot %s", name);
    free(s);
    return -ENOMEM;
  }
  spa_list_append(&b->slots, &s->link);
  pw_filter_add_listener(s->filter, &s->listener, &slot_events, s);
  struct backend_slot *p = &s->pub;
  for (uint32_t i = 0; i < n_in && rc == 0; i++)
    rc = add_port(b, s, "in", i + 1, false, false, &p->in[i], &p->in_names[i], err, errlen);
  for (uint32_t i = 0; i < n_out && rc == 0; i++)
    rc = add_port(b, s, "out", i + 1, true, false, &p->out[i], &p->out_names[i], err, errlen);
  if (midi && rc == 0)
    rc = add_port(b, s, "midi_in", 0, false, true, &p->midi_in, &p->midi_name, err, errlen);
  if (rc == 0 &&
      pw_filter_connect(s->filter, PW_FILTER_FLAG_RT_PROCESS | PW_FILTER_FLAG_CUSTOM_LATENCY, NULL,
                        0) < 0) {
    snprintf(err, errlen, "cannot connect the PipeWire node of slot %s", name);
    rc = -EIO;
  }
  /* The ports exist on the server when slot.add answers, for whoever links them next. */
  if (rc == 0 && pwb__roundtrip(b, NODE_TIMEOUT_MS) != 0) {
    snprintf(err, errlen, "the PipeWire server did not create the node of slot %s", name);
    rc = -ETIMEDOUT;
  }
  if (rc == 0 && pw_filter_get_state(s->filter, NULL) == PW_FILTER_STATE_ERROR) {
    const char *why = NULL;
    pw_filter_get_state(s->filter, &why);
    snprintf(err, errlen, "PipeWire refused the node of slot %s: %s", name,
             why ? why : "no reason given");
    rc = -EIO;
  }
  if (rc != 0) {
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory opening the ports of slot %s", name);
    pwb__slot_destroy_node(s);
    backend_slot_clear(p);
    free(s);
    return rc;
  }
  *out = p;
  return 0;
}
