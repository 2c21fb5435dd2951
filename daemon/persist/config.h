/*
 * The configuration file (INI, parsed by inih):
 *
 *   [daemon]
 *   name = runway              ; JACK client name
 *   socket = /run/runway/control.sock
 *   socket_group = audio       ; may use the control socket besides root and the daemon's user
 *   state_dir = /var/lib/runway
 *   latency_ms = 50            ; default write-ahead of new slots
 *   log_level = info
 *   stall_timeout_ms = 2000
 *   worker = /usr/bin/runway-worker
 *
 *   [slot synth]               ; a slot that must exist
 *   plugin = synth             ; or lv2 = URI, exec = CMD, or external = yes
 *   inputs = 0                 ; channel counts and MIDI default to the plugin's
 *   outputs = 2
 *   midi = yes
 *   latency_ms = 50            ; or latency_frames = N
 *   on_fault = bypass          ; or silence (the default): what plays while no worker can
 *   param.level_db = -6        ; initial parameter values
 *
 * Command-line options win over [daemon] keys. SIGHUP reads the file again:
 * new [slot] sections are added, changed ones replaced, removed ones removed
 * (slots created at run time are left alone), changed param.* values applied,
 * log_level, latency_ms and stall_timeout_ms take effect; the other [daemon]
 * keys need a restart. A file with an error changes nothing. Control thread only.
 */
#ifndef RUNWAY_DAEMON_CONFIG_H
#define RUNWAY_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "runwayd.h"

/* Parses path. 0, or -errno / -EINVAL with a message naming the line. */
int config_load(const char *path, struct config *c, char *err, size_t errlen);
void config_free(struct config *c);

/*
 * Applies [daemon] keys to options the command line did not set (cli_set
 * names them). Returns 0 or -EINVAL with a message.
 */
int config_apply_options(const struct config *c, struct runwayd_options *opt, const json_t *cli_set,
                         char *err, size_t errlen);

/* Makes the slots match the file's [slot] sections (see above). Errors are logged. */
void config_apply_slots(struct runwayd *d, const struct config *c);

/* SIGHUP: reads the file again and applies what can change at run time. */
int config_reload(struct runwayd *d, char *err, size_t errlen);

#endif
