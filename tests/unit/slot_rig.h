/*
 * The daemon's side of one slot, for the language bindings' unit tests
 * (clients/python, clients/go): a real segment, the daemon end of its
 * timeline, its event ring, its state mailbox and its info block, behind a
 * plain C interface that ctypes and cgo call without mirroring any struct.
 * A worker in the same process attaches to it the way a managed worker
 * does (rig_export sets RUNWAY_SEGMENT_FD and RUNWAY_SEGMENT_WORKER_FD), so a test plays daemon
 * cycles and worker blocks in turn on one thread. Built in the build tree only, never installed.
 */
#ifndef RUNWAY_TEST_SLOT_RIG_H
#define RUNWAY_TEST_SLOT_RIG_H

#include <stdint.h>

struct rig;

/* A slot's segment; NULL when the parameters are refused. midi: 0 or 1. */
struct rig *rig_new(uint32_t rate, uint32_t n_in, uint32_t n_out, int midi, uint32_t latency,
                    uint32_t period);
void rig_free(struct rig *r);

/*
 * Exports dups of the segment's files in RUNWAY_SEGMENT_FD and
 * RUNWAY_SEGMENT_WORKER_FD, and RUNWAY_SLOT=slot (the C environment).
 * Returns the first descriptor (the daemon file), or -1.
 */
int rig_export(struct rig *r, const char *slot);

/*
 * One daemon cycle of `period` frames: input from `in` (n_in channels of
 * period floats, one after the other; NULL: silence), the clock reference
 * published, the worker woken if it sleeps and its input is due, output into
 * `out` (n_out channels the same way; NULL: dropped). Returns the frames the
 * worker had written, or -1 on an impossible position.
 */
int rig_cycle(struct rig *r, const float *in, float *out);

/* Input published and not yet taken by the worker (in_write - in_read). */
uint64_t rig_pending(const struct rig *r);

/* The timeline position of the next cycle. */
uint64_t rig_position(const struct rig *r);

/* Events for the worker at timeline time `time`. 0, or -1 when the ring is full. */
int rig_push_midi(struct rig *r, uint64_t time, uint8_t b0, uint8_t b1, uint8_t b2);
int rig_push_param(struct rig *r, uint64_t time, uint32_t id, float value);

/*
 * The state mailbox, as the daemon uses it: post a request (op 1 save, 2
 * load with data), wait for rig_state_answered, then read its status (0 ok,
 * 1 unsupported, 2 too large, 3 failed) and, for a save, its data.
 */
uint32_t rig_state_post(struct rig *r, uint32_t op, const void *data, uint32_t len);
int rig_state_answered(const struct rig *r, uint32_t request);
int32_t rig_state_status(const struct rig *r);
uint32_t rig_state_read(const struct rig *r, void *buf, uint32_t cap);

/* The worker's declaration and wake-up request as the daemon reads them. */
const char *rig_plugin_name(const struct rig *r);
uint32_t rig_declared_params(const struct rig *r);
uint32_t rig_worker_pid(const struct rig *r);
uint32_t rig_wake_frames(const struct rig *r);

#endif
