/*
 * The input format of fuzz_segment, shared with gen_segment_seeds:
 *
 *   byte 0                      preset segment geometry (FUZZ_SEG_PRESETS), and
 *                               bit 7: the slot has --on-fault bypass
 *   FUZZ_SEG_HEADER_SIZE bytes  laid over the preset's real header (a shorter
 *                               input leaves the rest of the header as it was)
 *   FUZZ_SEG_CONTROL_SIZE bytes laid over fresh control blocks, the daemon's
 *                               and then the worker's (positions, wake words,
 *                               gap, counters), likewise
 *   the rest                    operations: an opcode byte and its arguments
 *                               (little-endian; missing bytes read as 0)
 *
 * The header image goes through proto_segment_validate (the worker's check
 * of a header it maps) and, written into the live segment, through
 * shm_segment_check (the daemon's tamper check). The control image and the
 * operations drive the daemon's RT path (engine_process) over the segment,
 * with a worker that may be honest (FUZZ_OP_WORKER) or anything else. A
 * worker can only write its own file; the daemon's control block and the
 * header are fuzzed all the same, as the state a long run may leave (and so
 * that each end is checked against whatever the other may hold).
 */
#ifndef RUNWAY_TESTS_FUZZ_SEGMENT_H
#define RUNWAY_TESTS_FUZZ_SEGMENT_H

#include <stdint.h>

#include <runway/segment.h>

#include "segment_layout.h"

#define FUZZ_SEG_HEADER_SIZE sizeof(struct rw_segment_header)
#define FUZZ_SEG_CONTROL_SIZE (sizeof(struct rw_daemon_control) + sizeof(struct rw_worker_control))
#define FUZZ_SEG_MAX_FRAMES 4096 /* longest cycle the harness runs */

enum fuzz_seg_op {
  FUZZ_OP_CYCLE = 0,   /* u16 n: one graph cycle of n % (3 * max_period + 1) frames */
  FUZZ_OP_MOVE = 1,    /* u8 which, i32 delta: moves position which (0..7: in_write, in_read,
                          out_write, out_read, ev_write, ev_read, msg_write, msg_read) */
  FUZZ_OP_SET = 2,     /* u8 which, u64 value: sets position which */
  FUZZ_OP_MESSAGE = 3, /* rw_record bytes: the worker publishes a message; the daemon drains */
  FUZZ_OP_PARAM = 4,   /* u32 id, u32 value bits: a parameter command for the next cycle */
  FUZZ_OP_MIDI = 5,    /* u8 count (<= 8), then per event u16 frame, u8 size, 3 bytes */
  FUZZ_OP_SAMPLES = 6, /* u8 channel, u16 start, u16 count, u32 bits: output ring samples */
  FUZZ_OP_HEADER = 7,  /* u16 offset, u8 value: the worker scribbles on the shared header */
  FUZZ_OP_WAKE = 8,    /* u32 sleeping, u32 wake_frames: the worker's wake words */
  FUZZ_OP_WORKER = 9,  /* u16 max_frames: an honest worker step (plan, copy, commit) */
  FUZZ_OP_GAP = 10,    /* u16 gap, u16 n: a cycle of n frames after the graph skipped gap */
  FUZZ_OP_COUNT
};

/* Geometries the harness builds once; byte 0 of an input picks one. */
static const struct proto_segment_params fuzz_seg_presets[] = {
    /* Small rings leave slack between regions, where the harness puts ASan guards. */
    {.sample_rate = 48000,
     .n_inputs = 2,
     .n_outputs = 2,
     .latency = 64,
     .max_period = 32,
     .event_capacity = 16,
     .message_capacity = 8,
     .generation = 1},
    {.sample_rate = 44100,
     .n_inputs = 1,
     .n_outputs = 4,
     .flags = RW_SEGMENT_F_MIDI,
     .latency = 300,
     .max_period = 128,
     .event_capacity = 64,
     .message_capacity = 16,
     .generation = 7},
    {.sample_rate = 96000,
     .n_inputs = 0,
     .n_outputs = 2,
     .flags = RW_SEGMENT_F_MIDI,
     .latency = 1024,
     .max_period = 512,
     .generation = 2},
};

#define FUZZ_SEG_PRESETS (sizeof(fuzz_seg_presets) / sizeof(fuzz_seg_presets[0]))

#endif
