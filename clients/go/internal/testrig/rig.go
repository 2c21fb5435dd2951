//go:build runway_rig

// Package testrig plays the daemon's side of a slot for the binding's
// tests, through runway-test-rig (tests/unit/slot_rig.h). It needs
// CGO_CFLAGS=-I<source>/tests/unit and CGO_LDFLAGS=-L<dir of
// librunway-test-rig.so>, which the ctest entry sets, and the build tag
// runway_rig.
package testrig

/*
#cgo LDFLAGS: -lrunway-test-rig
#include <stdlib.h>
#include "slot_rig.h"

// Integers for the calls a test measures for allocations (see worker.go).
static uint64_t rig_position_u(uintptr_t r) { return rig_position((struct rig *)r); }
static int rig_cycle_silent_u(uintptr_t r) { return rig_cycle((struct rig *)r, NULL, NULL); }
static int rig_push_midi_u(uintptr_t r, uint64_t t, uint8_t b0, uint8_t b1, uint8_t b2) {
	return rig_push_midi((struct rig *)r, t, b0, b1, b2);
}
static int rig_push_param_u(uintptr_t r, uint64_t t, uint32_t id, float v) {
	return rig_push_param((struct rig *)r, t, id, v);
}
*/
import "C"

import "unsafe"

// Rig is one slot segment.
type Rig struct {
	r       *C.struct_rig
	In, Out int
	Period  int
}

// New makes the segment; nil when its parameters are refused.
func New(rate, in, out int, midi bool, latency, period int) *Rig {
	m := C.int(0)
	if midi {
		m = 1
	}
	r := C.rig_new(C.uint32_t(rate), C.uint32_t(in), C.uint32_t(out), m, C.uint32_t(latency),
		C.uint32_t(period))
	if r == nil {
		return nil
	}
	return &Rig{r: r, In: in, Out: out, Period: period}
}

// Close frees the segment.
func (r *Rig) Close() { C.rig_free(r.r) }

// Export lets the next worker opened in this process attach (RUNWAY_SEGMENT_FD
// and RUNWAY_SEGMENT_WORKER_FD).
func (r *Rig) Export(slot string) int {
	s := C.CString(slot)
	defer C.free(unsafe.Pointer(s))
	return int(C.rig_export(r.r, s))
}

// Cycle runs one daemon cycle with in (nil: silence); returns the frames the
// worker had written and the output.
func (r *Rig) Cycle(in [][]float32) (int, [][]float32) {
	n := r.Period
	var src *C.float
	if in != nil {
		buf := make([]C.float, r.In*n)
		for c := range in {
			for k, x := range in[c] {
				buf[c*n+k] = C.float(x)
			}
		}
		p := (*C.float)(C.malloc(C.size_t(len(buf)) * 4))
		defer C.free(unsafe.Pointer(p))
		copy(unsafe.Slice(p, len(buf)), buf)
		src = p
	}
	dst := (*C.float)(C.calloc(C.size_t(r.Out*n+1), 4))
	defer C.free(unsafe.Pointer(dst))
	valid := int(C.rig_cycle(r.r, src, dst))
	all := unsafe.Slice(dst, r.Out*n)
	out := make([][]float32, r.Out)
	for c := range out {
		out[c] = make([]float32, n)
		for k := range out[c] {
			out[c][k] = float32(all[c*n+k])
		}
	}
	return valid, out
}

// CycleSilent runs one cycle of silence whose output is dropped; it
// allocates no Go memory.
func (r *Rig) CycleSilent() int { return int(C.rig_cycle_silent_u(r.u())) }

func (r *Rig) u() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(r.r))) }

// Position is the next cycle's timeline position.
func (r *Rig) Position() uint64 { return uint64(C.rig_position_u(r.u())) }

// MIDI and Param queue events for the worker at timeline time t.
func (r *Rig) MIDI(t uint64, b0, b1, b2 byte) bool {
	return C.rig_push_midi_u(r.u(), C.uint64_t(t), C.uint8_t(b0), C.uint8_t(b1), C.uint8_t(b2)) == 0
}

func (r *Rig) Param(t uint64, id uint32, v float32) bool {
	return C.rig_push_param_u(r.u(), C.uint64_t(t), C.uint32_t(id), C.float(v)) == 0
}

// StatePost posts a state request (1 save, 2 load with data).
func (r *Rig) StatePost(op uint32, data []byte) uint32 {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = C.CBytes(data)
		defer C.free(p)
	}
	return uint32(C.rig_state_post(r.r, C.uint32_t(op), p, C.uint32_t(len(data))))
}

func (r *Rig) StateAnswered(req uint32) bool { return C.rig_state_answered(r.r, C.uint32_t(req)) != 0 }
func (r *Rig) StateStatus() int              { return int(C.rig_state_status(r.r)) }

// StateData is a save's answer.
func (r *Rig) StateData() []byte {
	buf := C.malloc(1 << 16)
	defer C.free(buf)
	n := C.rig_state_read(r.r, buf, 1<<16)
	return C.GoBytes(buf, C.int(n))
}

func (r *Rig) PluginName() string { return C.GoString(C.rig_plugin_name(r.r)) }
func (r *Rig) WorkerPID() int     { return int(C.rig_worker_pid(r.r)) }
func (r *Rig) WakeFrames() int    { return int(C.rig_wake_frames(r.r)) }
func (r *Rig) DeclaredParams() int {
	return int(C.rig_declared_params(r.r))
}
