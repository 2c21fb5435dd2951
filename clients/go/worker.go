// Package runway writes runway workers in Go, on librunway-worker (cgo).
//
// A worker computes a runway slot's audio a fixed latency L ahead of the
// audio graph, in its own process, so the Go runtime's pauses (a garbage
// collection, a scheduler hiccup) cost no audio as long as they are shorter
// than L minus one period.
//
//	w, err := runway.Open(runway.Options{Plugin: "go-gain", Params: params})
//	...
//	defer w.Close()
//	err = w.Run(func(b *runway.Block) {
//		for c := range b.Out {
//			copy(b.Out[c], b.In[c])
//		}
//	})
//
// A Worker locks the goroutine that opened it to its OS thread until Close:
// use it from that goroutine (RequestStop excepted, which any goroutine may
// call). Block channels are []float32 views over the SDK's own buffers (no
// copies, no allocation per block); events are *MIDIEvent and *ParamEvent.
// Both are valid until Done.
package runway

/*
#cgo pkg-config: runway-worker
#include <stdlib.h>
#include <runway/worker.h>

// The state callbacks (state.go) take the library's const argument without it.
extern int64_t runwayGoSave(void *user, unsigned char *buf, size_t capacity);
extern int runwayGoLoad(void *user, unsigned char *data, size_t len);

// The per-block calls take the worker and block as integers: a cgo call with
// pointer arguments allocates for its pointer check (Go 1.19), and the audio
// loop must not allocate.
static int runway_next(uintptr_t w, uintptr_t b, int timeout_ms) {
	return rw_worker_next((rw_worker *)w, (rw_block *)b, timeout_ms);
}

static int runway_done(uintptr_t w, uintptr_t b) {
	return rw_worker_done((rw_worker *)w, (rw_block *)b);
}

// One event of a block, its union read through the SDK's accessors.
typedef struct {
	uint32_t offset, kind, size, id;
	float value;
	uint8_t midi[4];
} runway_event;

static runway_event runway_event_at(uintptr_t b, uint32_t i) {
	runway_event out = {0};
	const rw_event *ev = rw_block_event((const rw_block *)b, i);
	if (ev == NULL)
		return out;
	out.offset = ev->offset;
	out.kind = ev->kind;
	out.size = ev->size;
	out.id = rw_event_param_id(ev);
	out.value = rw_event_param_value(ev);
	const uint8_t *midi = rw_event_midi_data(ev);
	for (int k = 0; midi != NULL && k < 4; k++)
		out.midi[k] = midi[k];
	return out;
}

static int runway_set_state_handlers(rw_worker *w, int save, int load, uintptr_t user) {
	rw_state_handlers h = {
		.save = save ? runwayGoSave : NULL,
		.load = load ? (int (*)(void *, const unsigned char *, size_t))runwayGoLoad : NULL,
		.user = (void *)user,
	};
	return rw_worker_set_state_handlers(w, &h);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// APIVersion is the layout version this package passes to rw_worker_open.
const APIVersion = C.RW_WORKER_API_VERSION

// ErrClosed is returned by Next when the worker's work is over: a stop was
// requested, or runwayd went away.
var ErrClosed = errors.New("runway: the worker is stopped (stop requested or runwayd gone)")

// Error is a failed librunway-worker call: its rw_status code and the library's message.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return "runway: " + e.Msg }

// Param is a parameter the plugin declares: runwayd shows it, stores it and
// sends its changes as ParamEvents. Name: 1 to 31 of [A-Za-z0-9_]; Min <=
// Default <= Max, all finite; Unit at most 15 bytes.
type Param struct {
	ID       uint32
	Name     string
	Min, Max float32
	Default  float32
	Unit     string
}

// Options of Open. A worker started by runwayd (slot add --exec) inherits
// its slot; one you start attaches to an --external slot named by Slot or
// $RUNWAY_SLOT, over Socket or $RUNWAY_SOCKET.
type Options struct {
	Plugin     string // shown by runwayd; "" takes the program's name
	Params     []Param
	Slot       string
	Socket     string
	MaxBlock   uint32 // 0: 256 frames
	WakeFrames uint32 // 0: one period (the most tolerance of pauses)
	// The plugin's own state (nil both: runwayd keeps the declared
	// parameters' values). They run inside Next, between blocks.
	SaveState func() ([]byte, error)
	LoadState func([]byte) error
}

// Info is what the worker is attached to (frames unless said otherwise).
type Info struct {
	Slot       string
	SampleRate uint32
	Inputs     uint32
	Outputs    uint32
	MIDI       bool
	Latency    uint32
	MaxBlock   uint32
	Period     uint32
	WakeFrames uint32
}

// Event is a *MIDIEvent or a *ParamEvent, at a sample offset of its block.
type Event interface {
	Offset() uint32
}

// MIDIEvent holds 1 to 3 MIDI bytes (Data[:Size]).
type MIDIEvent struct {
	At   uint32
	Size int
	Data [3]byte
}

// Offset is the event's sample offset in its block.
func (e *MIDIEvent) Offset() uint32 { return e.At }

// Bytes is the event's MIDI bytes.
func (e *MIDIEvent) Bytes() []byte { return e.Data[:e.Size] }

// ParamEvent is a declared parameter's new (clamped) value from sample At on.
type ParamEvent struct {
	At    uint32
	ID    uint32
	Name  string
	Value float32
}

// Offset is the event's sample offset in its block.
func (e *ParamEvent) Offset() uint32 { return e.At }

// Block is one block of work, valid from Next until Done. Input frame k is
// timeline position Position+k; its output plays at Position+Latency+k, and
// an event at offset k applies from frame k on. Write every frame of Out.
type Block struct {
	Frames        uint32
	Position      uint64
	Latency       uint32
	SampleRate    uint32
	Discontinuity bool   // the first block, or input before it was skipped
	Skipped       uint64 // input frames skipped just before it
	In            [][]float32
	Out           [][]float32
	Events        []Event
}

// Stats are the SDK's counters for the worker.
type Stats struct {
	Blocks, Frames, SkippedFrames, Discontinuities uint64
	Events, EventsLate, EventsInvalid              uint64
	MessagesDropped                                uint64
	Sleeps, TimerWakes, EarlyWakes                 uint64
}

// Worker is an attached worker. See the package comment for its threading rule.
type Worker struct {
	w       *C.rw_worker
	b       *C.rw_block // C memory: the library fills it, Go reads it
	info    Info
	names   map[uint32]string
	block   Block
	inFull  [][]float32
	outFull [][]float32
	midi    []MIDIEvent
	params  []ParamEvent
	inBlock bool
	state   cgo.Handle
	// RequestStop may come from any goroutine, Close from the worker's own.
	stopMu sync.Mutex
}

type stateHandlers struct {
	save func() ([]byte, error)
	load func([]byte) error
}

// Open attaches to the slot. It locks the calling goroutine to its OS thread
// (the library's open error is per thread, and the audio loop is best kept on
// one), until Close.
func Open(o Options) (*Worker, error) {
	runtime.LockOSThread()
	w, err := open(o)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return w, nil
}

func open(o Options) (*Worker, error) {
	var copts C.rw_worker_options
	copts.api_version = C.RW_WORKER_API_VERSION
	copts.max_block = C.uint32_t(o.MaxBlock)
	copts.wake_frames = C.uint32_t(o.WakeFrames)
	var strs []*C.char
	cstr := func(s string) *C.char {
		p := C.CString(s)
		strs = append(strs, p)
		return p
	}
	defer func() {
		for _, p := range strs {
			C.free(unsafe.Pointer(p))
		}
	}()
	if o.Plugin != "" {
		copts.plugin = cstr(o.Plugin)
	}
	if o.Slot != "" {
		copts.slot = cstr(o.Slot)
	}
	if o.Socket != "" {
		copts.socket = cstr(o.Socket)
	}
	names := make(map[uint32]string, len(o.Params))
	if len(o.Params) > 0 {
		size := C.size_t(unsafe.Sizeof(C.rw_param_info{}))
		arr := (*C.rw_param_info)(C.calloc(C.size_t(len(o.Params)), size))
		defer C.free(unsafe.Pointer(arr))
		infos := unsafe.Slice(arr, len(o.Params))
		for i, p := range o.Params {
			infos[i].id = C.uint32_t(p.ID)
			infos[i].name = cstr(p.Name)
			infos[i].min = C.float(p.Min)
			infos[i].max = C.float(p.Max)
			infos[i].def = C.float(p.Default)
			infos[i].unit = cstr(p.Unit)
			names[p.ID] = p.Name
		}
		copts.params = arr
		copts.n_params = C.uint32_t(len(o.Params))
	}

	var cw *C.rw_worker
	if rc := C.rw_worker_open(&copts, &cw); rc != 0 {
		// Per thread, and this goroutine is locked to it.
		return nil, &Error{Code: int(rc), Msg: C.GoString(C.rw_worker_error(nil))}
	}
	w := &Worker{w: cw, names: names}
	w.b = (*C.rw_block)(C.calloc(1, C.size_t(unsafe.Sizeof(C.rw_block{}))))
	ci := C.rw_worker_get_info(cw)
	w.info = Info{
		Slot: C.GoString(ci.slot), SampleRate: uint32(ci.sample_rate),
		Inputs: uint32(ci.n_inputs), Outputs: uint32(ci.n_outputs), MIDI: ci.midi != 0,
		Latency: uint32(ci.latency), MaxBlock: uint32(ci.max_block),
		Period: uint32(ci.period), WakeFrames: uint32(ci.wake_frames),
	}
	w.midi = make([]MIDIEvent, C.RW_MAX_BLOCK_EVENTS)
	w.params = make([]ParamEvent, C.RW_MAX_BLOCK_EVENTS)
	w.block.Events = make([]Event, 0, C.RW_MAX_BLOCK_EVENTS)
	if o.SaveState != nil || o.LoadState != nil {
		w.state = cgo.NewHandle(&stateHandlers{save: o.SaveState, load: o.LoadState})
		rc := C.runway_set_state_handlers(cw, boolInt(o.SaveState != nil),
			boolInt(o.LoadState != nil), C.uintptr_t(w.state))
		if rc != 0 {
			err := w.lastError(rc)
			w.close()
			return nil, err
		}
	}
	return w, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (w *Worker) lastError(rc C.int) error {
	if rc == C.RW_ERR_CLOSED {
		return ErrClosed
	}
	return &Error{Code: int(rc), Msg: C.GoString(C.rw_worker_error(w.w))}
}

// Info is what the worker is attached to.
func (w *Worker) Info() Info { return w.info }

// Next waits up to timeout (< 0: forever) for the next block. It returns
// (nil, nil) on timeout, ErrClosed when the worker's work is over.
func (w *Worker) Next(timeout time.Duration) (*Block, error) {
	if w.w == nil {
		return nil, ErrClosed
	}
	if w.inBlock {
		return nil, &Error{Code: C.RW_ERR_INVALID, Msg: "Next before Done for the previous block"}
	}
	ms := C.int(-1)
	if timeout >= 0 {
		ms = C.int(timeout / time.Millisecond)
	}
	rc := C.runway_next(C.uintptr_t(uintptr(unsafe.Pointer(w.w))), C.uintptr_t(uintptr(unsafe.Pointer(w.b))), ms)
	if rc == 0 {
		return nil, nil
	}
	if rc < 0 {
		return nil, w.lastError(rc)
	}
	w.inBlock = true
	w.fill()
	return &w.block, nil
}

// Done publishes the block's outputs. Every block from Next must be done once.
func (w *Worker) Done() error {
	if !w.inBlock {
		return &Error{Code: C.RW_ERR_INVALID, Msg: "Done without a block from Next"}
	}
	w.inBlock = false
	if rc := C.runway_done(C.uintptr_t(uintptr(unsafe.Pointer(w.w))), C.uintptr_t(uintptr(unsafe.Pointer(w.b)))); rc != 0 {
		return w.lastError(rc)
	}
	return nil
}

// Run calls process for every block until the worker's work is over; nil
// then, or the error that ended it.
func (w *Worker) Run(process func(*Block)) error {
	for {
		b, err := w.Next(100 * time.Millisecond)
		if err == ErrClosed {
			return nil
		}
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		process(b)
		if err := w.Done(); err != nil {
			return err
		}
	}
}

func (w *Worker) fill() {
	b := w.b
	if w.inFull == nil && w.outFull == nil {
		// The buffers keep their addresses until close: view them once.
		n := int(w.info.MaxBlock)
		for c := C.uint32_t(0); c < b.n_inputs; c++ {
			w.inFull = append(w.inFull, unsafe.Slice((*float32)(unsafe.Pointer(C.rw_block_input(b, c))), n))
		}
		for c := C.uint32_t(0); c < b.n_outputs; c++ {
			w.outFull = append(w.outFull, unsafe.Slice((*float32)(unsafe.Pointer(C.rw_block_output(b, c))), n))
		}
		w.block.In = make([][]float32, len(w.inFull))
		w.block.Out = make([][]float32, len(w.outFull))
	}
	frames := int(b.frames)
	blk := &w.block
	blk.Frames = uint32(b.frames)
	blk.Position = uint64(b.position)
	blk.Latency = uint32(b.latency)
	blk.SampleRate = uint32(b.sample_rate)
	blk.Discontinuity = b.discontinuity != 0
	blk.Skipped = uint64(b.skipped)
	for c := range w.inFull {
		blk.In[c] = w.inFull[c][:frames]
	}
	for c := range w.outFull {
		blk.Out[c] = w.outFull[c][:frames]
	}
	blk.Events = blk.Events[:0]
	nm, np := 0, 0
	bp := C.uintptr_t(uintptr(unsafe.Pointer(b)))
	for i := C.uint32_t(0); i < b.n_events; i++ {
		ev := C.runway_event_at(bp, i)
		switch ev.kind {
		case C.RW_EV_MIDI:
			m := &w.midi[nm]
			nm++
			m.At = uint32(ev.offset)
			m.Size = int(ev.size)
			if m.Size > len(m.Data) {
				m.Size = len(m.Data)
			}
			for k := 0; k < m.Size; k++ {
				m.Data[k] = byte(ev.midi[k])
			}
			blk.Events = append(blk.Events, m)
		case C.RW_EV_PARAM:
			p := &w.params[np]
			np++
			p.At = uint32(ev.offset)
			p.ID = uint32(ev.id)
			p.Value = float32(ev.value)
			p.Name = w.names[p.ID]
			blk.Events = append(blk.Events, p)
		}
	}
}

// Param is a declared parameter's current value (its default until changed).
func (w *Worker) Param(id uint32) (float32, bool) {
	if _, ok := w.names[id]; !ok || w.w == nil {
		return 0, false
	}
	return float32(C.rw_worker_param(w.w, C.uint32_t(id))), true
}

// SendParam reports a parameter's value to runwayd (false: its ring was full).
func (w *Worker) SendParam(id uint32, value float32) bool {
	return C.rw_worker_send_param(w.w, C.uint32_t(id), C.float(value)) == 0
}

// RequestStop makes Next return ErrClosed (Run return), now or after the
// block in progress. Any goroutine may call it, also while the worker waits.
func (w *Worker) RequestStop() {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if w.w != nil {
		C.rw_worker_request_stop(w.w)
	}
}

// Stats are the SDK's counters for the worker.
func (w *Worker) Stats() Stats {
	s := func(which C.int) uint64 { return uint64(C.rw_worker_stat(w.w, which)) }
	return Stats{
		Blocks: s(C.RW_STAT_BLOCKS), Frames: s(C.RW_STAT_FRAMES),
		SkippedFrames: s(C.RW_STAT_SKIPPED_FRAMES), Discontinuities: s(C.RW_STAT_DISCONTINUITIES),
		Events: s(C.RW_STAT_EVENTS), EventsLate: s(C.RW_STAT_EVENTS_LATE),
		EventsInvalid: s(C.RW_STAT_EVENTS_INVALID), MessagesDropped: s(C.RW_STAT_MESSAGES_DROPPED),
		Sleeps: s(C.RW_STAT_SLEEPS), TimerWakes: s(C.RW_STAT_TIMER_WAKES),
		EarlyWakes: s(C.RW_STAT_EARLY_WAKES),
	}
}

// Close detaches (the slot waits for, or restarts, another worker) and
// unlocks the OS thread. Views of the block are invalid afterwards.
func (w *Worker) Close() error {
	if w.w == nil {
		return nil
	}
	w.close()
	runtime.UnlockOSThread()
	return nil
}

func (w *Worker) close() {
	w.stopMu.Lock()
	C.rw_worker_close(w.w)
	w.w = nil
	w.stopMu.Unlock()
	C.free(unsafe.Pointer(w.b))
	w.b = nil
	w.inFull, w.outFull = nil, nil
	if w.state != 0 {
		w.state.Delete()
		w.state = 0
	}
}

// LayoutOffset is the library's own offset of a struct member
// ("rw_block.position"), or size of a struct ("rw_block"); -1 when unknown.
func LayoutOffset(name string) int64 {
	p := C.CString(name)
	defer C.free(unsafe.Pointer(p))
	return int64(C.rw_worker_abi_offset(p))
}

func (e Info) String() string {
	return fmt.Sprintf("slot %q: %d in, %d out, %d Hz, latency %d frames, period %d",
		e.Slot, e.Inputs, e.Outputs, e.SampleRate, e.Latency, e.Period)
}
