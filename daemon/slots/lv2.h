/*
 * LV2 plugins as runwayd learns them. runwayd never loads plugin code: it
 * asks `runway-worker --list-lv2 [URI] --json --sample-rate R`, started the
 * way workers are (unprivileged when runwayd runs as root, an allow-listed
 * environment, killed with runwayd), and reads its answer, which it trusts
 * no more than a worker's. Asking about one plugin loads that plugin's
 * library in the query's process, to learn whether it loads at all.
 *
 * Control thread only.
 */
#ifndef RUNWAY_DAEMON_SLOTS_LV2_H
#define RUNWAY_DAEMON_SLOTS_LV2_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "protocol.h"
#include "runwayd.h"

struct slot_spec;

/* How long a query may take (a big plugin collection takes seconds to read). */
#define LV2_QUERY_TIMEOUT_MS 30000

/*
 * The answer to a query, or why there is none: code is PROTO_OK with answer
 * (borrowed for the call: {"plugins":[...]} for every plugin, {"plugin":{...}}
 * for one), PROTO_E_NOT_FOUND for a URI nothing is installed under, or
 * another code with err.
 */
typedef void (*lv2_query_fn)(struct runwayd *d, enum proto_err code, const json_t *answer,
                             const char *err, void *user);

/*
 * Starts a query about uri (NULL: every installed plugin) on loop; done
 * runs once, later, from that loop. Ranges relative to the sample rate are
 * given for the server's rate (48 kHz while none is connected). Returns 0,
 * or a negative errno with err (done does not run then): -EINVAL for
 * something that is not a URI, -EBUSY when LV2_QUERIES_MAX are running.
 */
int lv2_query(struct runwayd *d, uv_loop_t *loop, const char *uri, lv2_query_fn done, void *user,
              char *err, size_t errlen);

/*
 * The same, waiting for the answer (on a loop of its own; the daemon's loop
 * stands still meanwhile, tens of milliseconds for one plugin). For the
 * configuration file, which adds its slots at once. *answer is a new
 * reference when PROTO_OK is returned.
 */
enum proto_err lv2_query_wait(struct runwayd *d, const char *uri, json_t **answer, char *err,
                              size_t errlen);

/*
 * Checks one plugin's answer (the uri asked about, supported, channel counts)
 * and fills what spec leaves to the plugin: inputs, outputs (at most
 * RW_MAX_CHANNELS of the plugin's) and MIDI. PROTO_OK, or an error with a
 * message that names the reason runway cannot host it.
 */
enum proto_err lv2_fill_spec(const json_t *answer, const char *uri, struct slot_spec *spec,
                             char *err, size_t errlen);

/* Ends every query still running (runwayd is stopping); their callbacks run with an error. */
void lv2_queries_cancel(struct runwayd *d);

#endif
