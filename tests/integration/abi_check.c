/*
 * abi_check: the layouts <runway/worker.h> states, checked against the
 * installed header (compiled here with only pkg-config's flags) and against
 * the installed library's own view (rw_worker_abi_offset). The table below
 * is the statement: the header's "@N" and "N bytes" comments, member by
 * member; a layout that changes without its statement fails here.
 * Prints every mismatch; exits 1 on any. Built and run by abi_install.cmake.
 */
#include <stddef.h>
#include <stdio.h>

#include <runway/worker.h>

struct stated {
  const char *name; /* "rw_block" (its size) or "rw_block.position" (an offset) */
  long stated;
  long compiled; /* sizeof or offsetof from the installed header */
};

#define SIZE(type, n)                                                                              \
  { #type, n, (long)sizeof(type) }
#define OFF(type, member, n)                                                                       \
  { #type "." #member, n, (long)offsetof(type, member) }

static const struct stated table[] = {
    SIZE(rw_event, 16),
    OFF(rw_event, offset, 0),
    OFF(rw_event, kind, 4),
    OFF(rw_event, size, 6),
    OFF(rw_event, u, 8),
    OFF(rw_event, u.midi.data, 8),
    OFF(rw_event, u.param.id, 8),
    OFF(rw_event, u.param.value, 12),

    SIZE(rw_param_info, 40),
    OFF(rw_param_info, id, 0),
    OFF(rw_param_info, name, 8),
    OFF(rw_param_info, min, 16),
    OFF(rw_param_info, max, 20),
    OFF(rw_param_info, def, 24),
    OFF(rw_param_info, unit, 32),

    SIZE(rw_block, 80),
    OFF(rw_block, frames, 0),
    OFF(rw_block, n_inputs, 4),
    OFF(rw_block, n_outputs, 8),
    OFF(rw_block, inputs, 16),
    OFF(rw_block, outputs, 24),
    OFF(rw_block, events, 32),
    OFF(rw_block, n_events, 40),
    OFF(rw_block, position, 48),
    OFF(rw_block, latency, 56),
    OFF(rw_block, sample_rate, 60),
    OFF(rw_block, discontinuity, 64),
    OFF(rw_block, skipped, 72),

    SIZE(rw_worker_info, 40),
    OFF(rw_worker_info, slot, 0),
    OFF(rw_worker_info, sample_rate, 8),
    OFF(rw_worker_info, n_inputs, 12),
    OFF(rw_worker_info, n_outputs, 16),
    OFF(rw_worker_info, midi, 20),
    OFF(rw_worker_info, latency, 24),
    OFF(rw_worker_info, max_block, 28),
    OFF(rw_worker_info, period, 32),
    OFF(rw_worker_info, wake_frames, 36),

    SIZE(rw_worker_stats, 64),
    OFF(rw_worker_stats, blocks, 0),
    OFF(rw_worker_stats, frames, 8),
    OFF(rw_worker_stats, skipped_frames, 16),
    OFF(rw_worker_stats, discontinuities, 24),
    OFF(rw_worker_stats, events, 32),
    OFF(rw_worker_stats, events_late, 40),
    OFF(rw_worker_stats, events_invalid, 48),
    OFF(rw_worker_stats, messages_dropped, 56),

    SIZE(rw_worker_options, 56),
    OFF(rw_worker_options, api_version, 0),
    OFF(rw_worker_options, socket, 8),
    OFF(rw_worker_options, slot, 16),
    OFF(rw_worker_options, max_block, 24),
    OFF(rw_worker_options, wake_frames, 28),
    OFF(rw_worker_options, params, 32),
    OFF(rw_worker_options, n_params, 40),
    OFF(rw_worker_options, plugin, 48),

    SIZE(rw_state_handlers, 24),
    OFF(rw_state_handlers, save, 0),
    OFF(rw_state_handlers, load, 8),
    OFF(rw_state_handlers, user, 16),

    SIZE(rw_plugin, 88),
    OFF(rw_plugin, name, 0),
    OFF(rw_plugin, description, 8),
    OFF(rw_plugin, n_inputs, 16),
    OFF(rw_plugin, n_outputs, 20),
    OFF(rw_plugin, midi, 24),
    OFF(rw_plugin, params, 32),
    OFF(rw_plugin, n_params, 40),
    OFF(rw_plugin, create, 48),
    OFF(rw_plugin, destroy, 56),
    OFF(rw_plugin, process, 64),
    OFF(rw_plugin, save_state, 72),
    OFF(rw_plugin, load_state, 80),
};

int main(void) {
  unsigned bad = 0, n = sizeof(table) / sizeof(table[0]);
  for (unsigned i = 0; i < n; i++) {
    const struct stated *t = &table[i];
    long library = (long)rw_worker_abi_offset(t->name);
    if (t->compiled != t->stated || library != t->stated) {
      printf("MISMATCH %-32s stated %3ld, installed header %3ld, installed library %3ld\n", t->name,
             t->stated, t->compiled, library);
      bad++;
    }
  }
  if (RW_WORKER_API_VERSION != 1) {
    printf("MISMATCH RW_WORKER_API_VERSION is %d: the table states version 1\n",
           RW_WORKER_API_VERSION);
    bad++;
  }
  printf("%u stated sizes and offsets checked against the installed header and library: %u "
         "mismatch(es)\n",
         n, bad);
  return bad ? 1 : 0;
}
