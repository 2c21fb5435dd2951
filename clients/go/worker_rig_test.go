//go:build runway_rig

package runway

import (
	"bytes"
	"os"
	"testing"
	"time"

	"runway/internal/testrig"
)

const (
	rate   = 48000
	period = 64
	lat    = 256
)

// ramp is the input at timeline positions [t, t+period) of channel c: distinct, exact in a float32.
func ramp(t uint64, c int) []float32 {
	x := make([]float32, period)
	for k := range x {
		x[k] = float32((t+uint64(k))%65536+1) + float32(c)*100000
	}
	return x
}

func newRig(t *testing.T, in, out int, midi bool) *testrig.Rig {
	r := testrig.New(rate, in, out, midi, lat, period)
	if r == nil {
		t.Fatal("the rig refused the slot")
	}
	t.Cleanup(r.Close)
	if r.Export("go") < 0 {
		t.Fatal("rig export")
	}
	return r
}

func openWorker(t *testing.T, o Options) *Worker {
	w, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	os.Unsetenv("RUNWAY_SEGMENT_FD")
	t.Cleanup(func() { w.Close() })
	return w
}

// drain handles every block pending, each through process.
func drain(t *testing.T, w *Worker, process func(*Block)) int {
	n := 0
	for {
		b, err := w.Next(0)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if b == nil {
			return n
		}
		process(b)
		if err := w.Done(); err != nil {
			t.Fatalf("Done: %v", err)
		}
		n++
	}
}

func copyThrough(b *Block) {
	for c := range b.Out {
		copy(b.Out[c], b.In[c])
	}
}

func TestAudioLandsExactlyLLater(t *testing.T) {
	r := newRig(t, 2, 2, false)
	w := openWorker(t, Options{Plugin: "go-test"})
	info := w.Info()
	if info.Latency != lat || info.Inputs != 2 || info.Period != period || info.WakeFrames != period {
		t.Fatalf("info %+v", info)
	}
	played := map[uint64][2]float32{}
	for i := 0; i < 20; i++ {
		pos := r.Position()
		valid, out := r.Cycle([][]float32{ramp(pos, 0), ramp(pos, 1)})
		if valid != period {
			t.Fatalf("cycle %d: %d frames valid", i, valid)
		}
		for k := 0; k < period; k++ {
			played[pos+uint64(k)] = [2]float32{out[0][k], out[1][k]}
		}
		drain(t, w, copyThrough)
	}
	for p := uint64(0); p < 20*period; p++ {
		var want [2]float32
		if p >= lat {
			k := p - lat
			for c := 0; c < 2; c++ {
				want[c] = float32(k%65536+1) + float32(c)*100000
				if k < 64 { // the SDK's fade-in after the first block's discontinuity
					want[c] *= float32(k+1) / 64
				}
			}
		}
		if played[p] != want {
			t.Fatalf("output at %d: %v, want %v", p, played[p], want)
		}
	}
	if r.PluginName() != "go-test" || r.WorkerPID() != os.Getpid() {
		t.Errorf("declared %q, pid %d", r.PluginName(), r.WorkerPID())
	}
	if st := w.Stats(); st.Frames != 20*period || st.Discontinuities != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTypedEventsAtTheirOffsets(t *testing.T) {
	r := newRig(t, 0, 1, true)
	w := openWorker(t, Options{Params: []Param{
		{ID: 0, Name: "gain_db", Min: -60, Max: 24, Unit: "dB"},
		{ID: 9, Name: "mix", Min: 0, Max: 1, Default: 0.5},
	}})
	if r.DeclaredParams() != 2 {
		t.Fatalf("declared %d parameters", r.DeclaredParams())
	}
	r.MIDI(10, 0x90, 60, 100)
	r.Param(20, 9, 0.25)
	r.Param(21, 0, 99) // clamped to 24
	r.Cycle(nil)
	var got []string
	drain(t, w, func(b *Block) {
		for _, ev := range b.Events {
			switch e := ev.(type) {
			case *MIDIEvent:
				if !bytes.Equal(e.Bytes(), []byte{0x90, 60, 100}) || e.Offset() != 10 {
					t.Errorf("midi %+v", e)
				}
				got = append(got, "midi")
			case *ParamEvent:
				got = append(got, e.Name)
				if e.Name == "mix" && (e.Value != 0.25 || e.At != 20) {
					t.Errorf("mix %+v", e)
				}
				if e.Name == "gain_db" && (e.Value != 24 || e.At != 21) {
					t.Errorf("gain_db %+v", e)
				}
			}
		}
	})
	if len(got) != 3 || got[0] != "midi" || got[1] != "mix" || got[2] != "gain_db" {
		t.Fatalf("events %v", got)
	}
	if v, ok := w.Param(9); !ok || v != 0.25 {
		t.Errorf("Param(9) = %v %v", v, ok)
	}
	if _, ok := w.Param(5); ok {
		t.Error("an undeclared parameter has a value")
	}
}

// Blocks are views over the SDK's buffers: a cycle's block, with events,
// allocates nothing.
func TestNoAllocationPerBlock(t *testing.T) {
	r := newRig(t, 2, 2, true)
	w := openWorker(t, Options{Params: []Param{{ID: 1, Name: "x", Max: 1}}})
	r.CycleSilent()
	drain(t, w, copyThrough)
	blocks := 0
	allocs := testing.AllocsPerRun(50, func() {
		pos := r.Position()
		r.MIDI(pos+3, 0x90, 64, 1)
		r.Param(pos+5, 1, 0.5)
		r.CycleSilent()
		for {
			b, err := w.Next(0)
			if err != nil || b == nil {
				return
			}
			blocks++
			copyThrough(b)
			w.Done()
		}
	})
	if blocks < 50 {
		t.Fatalf("only %d blocks", blocks)
	}
	if allocs != 0 {
		t.Errorf("a cycle's block allocates %.1f times", allocs)
	}
}

func TestOwnStateRoundTrip(t *testing.T) {
	r := newRig(t, 0, 1, false)
	state := []byte("hello")
	w := openWorker(t, Options{
		SaveState: func() ([]byte, error) { return state, nil },
		LoadState: func(b []byte) error { state = b; return nil },
	})
	wait := func(req uint32) {
		deadline := time.Now().Add(5 * time.Second)
		for !r.StateAnswered(req) {
			if time.Now().After(deadline) {
				t.Fatal("the state request was never answered")
			}
			if b, _ := w.Next(0); b != nil {
				t.Fatal("a block without input")
			}
		}
	}
	req := r.StatePost(1, nil)
	wait(req)
	if r.StateStatus() != 0 || string(r.StateData()) != "hello" {
		t.Fatalf("save: status %d, %q", r.StateStatus(), r.StateData())
	}
	req = r.StatePost(2, []byte("world"))
	wait(req)
	if r.StateStatus() != 0 || string(state) != "world" {
		t.Fatalf("load: status %d, state %q", r.StateStatus(), state)
	}
}

func TestRequestStopFromAnotherGoroutine(t *testing.T) {
	newRig(t, 1, 1, false)
	w := openWorker(t, Options{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		w.RequestStop()
	}()
	start := time.Now()
	if err := w.Run(func(*Block) {}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the stop took %v", d)
	}
	if _, err := w.Next(0); err != ErrClosed {
		t.Errorf("Next after a stop: %v", err)
	}
}
