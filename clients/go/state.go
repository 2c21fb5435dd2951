package runway

// The state callbacks librunway-worker calls inside rw_worker_next. A file
// with //export may only declare in its preamble, hence apart from worker.go.

/*
#include <stddef.h>
#include <stdint.h>
#include <runway/worker.h>
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/cgo"
	"unsafe"
)

//export runwayGoSave
func runwayGoSave(user unsafe.Pointer, buf *C.uchar, capacity C.size_t) C.int64_t {
	h := cgo.Handle(uintptr(user)).Value().(*stateHandlers)
	data, err := h.save()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runway: saving the plugin's state: %v\n", err)
		return C.RW_ERR_INVALID
	}
	if data == nil {
		return C.RW_ERR_UNSUPPORTED
	}
	if C.size_t(len(data)) > capacity {
		return C.RW_ERR_NOMEM
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), len(data)), data)
	return C.int64_t(len(data))
}

//export runwayGoLoad
func runwayGoLoad(user unsafe.Pointer, data *C.uchar, length C.size_t) C.int {
	h := cgo.Handle(uintptr(user)).Value().(*stateHandlers)
	// A private copy: the library's lives only during the call.
	state := C.GoBytes(unsafe.Pointer(data), C.int(length))
	if err := h.load(state); err != nil {
		fmt.Fprintf(os.Stderr, "runway: the plugin refused a state: %v\n", err)
		return C.RW_ERR_INVALID
	}
	return 0
}
