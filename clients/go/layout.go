package runway

/*
#include <runway/worker.h>
*/
import "C"

import "unsafe"

// headerLayout is what the header this package was compiled with says, for
// the test that compares it with the library it links (LayoutOffset).
func headerLayout() map[string]int64 {
	var b C.rw_block
	var e C.rw_event
	var p C.rw_param_info
	var i C.rw_worker_info
	var o C.rw_worker_options
	return map[string]int64{
		"rw_block":                   int64(unsafe.Sizeof(b)),
		"rw_block.frames":            int64(unsafe.Offsetof(b.frames)),
		"rw_block.inputs":            int64(unsafe.Offsetof(b.inputs)),
		"rw_block.outputs":           int64(unsafe.Offsetof(b.outputs)),
		"rw_block.events":            int64(unsafe.Offsetof(b.events)),
		"rw_block.n_events":          int64(unsafe.Offsetof(b.n_events)),
		"rw_block.position":          int64(unsafe.Offsetof(b.position)),
		"rw_block.discontinuity":     int64(unsafe.Offsetof(b.discontinuity)),
		"rw_block.skipped":           int64(unsafe.Offsetof(b.skipped)),
		"rw_event":                   int64(unsafe.Sizeof(e)),
		"rw_event.kind":              int64(unsafe.Offsetof(e.kind)),
		"rw_event.u":                 int64(unsafe.Offsetof(e.u)),
		"rw_param_info":              int64(unsafe.Sizeof(p)),
		"rw_param_info.def":          int64(unsafe.Offsetof(p.def)),
		"rw_param_info.unit":         int64(unsafe.Offsetof(p.unit)),
		"rw_worker_info":             int64(unsafe.Sizeof(i)),
		"rw_worker_info.period":      int64(unsafe.Offsetof(i.period)),
		"rw_worker_info.wake_frames": int64(unsafe.Offsetof(i.wake_frames)),
		"rw_worker_options":          int64(unsafe.Sizeof(o)),
		"rw_worker_options.plugin":   int64(unsafe.Offsetof(o.plugin)),
	}
}
