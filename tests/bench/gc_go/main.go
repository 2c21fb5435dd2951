// Command gcbench is the GC benchmark's Go worker (bench_gc.py runs it): a
// stereo passthrough with pauses induced between blocks and timed.
//
// -mode gc: a live heap of linked nodes that grows between pauses and a
// runtime.GC() right after a block is done (it blocks the caller for a whole
// collection: exactly what a worker must never do, and what this measures),
// the heap sized so that each collection lasts about the next of -targets
// (ms). -mode sleep: the same sweep with
// time.Sleep (the baseline). -mode none: no pauses. Automatic collection is
// off (SetGCPercent(-1)), so every pause is one the worker timed. Growing the
// heap takes at most a quarter period per block, so the worker stays on time.
// On stdout: {"ready": true} 30 ms of audio before a pause (the benchmark
// reads the slot's counters then), and {"pause_ms", "objects"} after it.
package main

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"runway"
)

type node struct {
	next *node
	v    [2]int
}

func main() {
	mode := flag.String("mode", "gc", "gc, sleep or none")
	targetList := flag.String("targets", "1,2,5,10,20,50", "pause lengths to aim at, ms")
	spacingMS := flag.Float64("spacing-ms", 400, "audio between two pauses")
	wakeFrames := flag.Uint("wake-frames", 0, "the worker's wake_frames (0: one period)")
	flag.Parse()

	debug.SetGCPercent(-1)
	enc := json.NewEncoder(os.Stdout)
	var targets []float64
	for _, f := range strings.Split(*targetList, ",") {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			os.Stderr.WriteString("gcbench: -targets: " + err.Error() + "\n")
			os.Exit(2)
		}
		targets = append(targets, x)
	}
	steps := len(targets)
	var heap []*node
	nsPerObject := 20.0 // first guess; measured at every collection
	want := 0
	if *mode == "gc" {
		want = int(targets[0] * 1e6 / nsPerObject)
	}
	step, framesSince, armed := 0, 0, -1

	w, err := runway.Open(runway.Options{Plugin: "go-gc-bench", WakeFrames: uint32(*wakeFrames)})
	if err != nil {
		os.Stderr.WriteString("gcbench: " + err.Error() + "\n")
		os.Exit(1)
	}
	defer w.Close()
	rate := float64(w.Info().SampleRate)
	spacing := int(*spacingMS * rate / 1000)
	warning := int(0.030 * rate) // "ready" comes this much audio before a pause
	budget := time.Duration(float64(w.Info().Period) / rate / 4 * float64(time.Second))
	stopOnSignal(w)
	for {
		b, err := w.Next(100 * time.Millisecond)
		if err == runway.ErrClosed {
			break
		}
		if err != nil {
			os.Stderr.WriteString("gcbench: " + err.Error() + "\n")
			os.Exit(1)
		}
		if b == nil {
			continue
		}
		for c := range b.Out {
			copy(b.Out[c], b.In[c])
		}
		framesSince += int(b.Frames)
		pause := false
		if *mode != "none" && step < steps {
			if armed < 0 {
				if *mode == "gc" && len(heap) < want && framesSince > spacing/4 {
					// Once the worker long caught up after the last pause, and a
					// quarter period per block at most, so it stays on time.
					end := time.Now().Add(budget)
					for len(heap) < want && time.Now().Before(end) {
						for i := 0; i < 500 && len(heap) < want; i++ {
							heap = append(heap, &node{next: lastOf(heap), v: [2]int{i, i}})
						}
					}
				}
				if framesSince >= spacing && len(heap) >= want {
					enc.Encode(map[string]bool{"ready": true})
					armed = 0
				}
			} else if armed += int(b.Frames); armed >= warning {
				pause = true
			}
		}
		w.Done()
		if !pause {
			continue
		}
		t0 := time.Now()
		if *mode == "gc" {
			runtime.GC()
		} else {
			time.Sleep(time.Duration(targets[step] * float64(time.Millisecond)))
		}
		ms := float64(time.Since(t0)) / float64(time.Millisecond)
		enc.Encode(map[string]interface{}{"pause_ms": math.Round(ms*1000) / 1000, "objects": len(heap)})
		if *mode == "gc" && len(heap) > 0 {
			nsPerObject = ms * 1e6 / float64(len(heap))
		}
		step++
		framesSince, armed = 0, -1
		if step < steps && *mode == "gc" {
			want = int(targets[step] * 1e6 / nsPerObject)
		}
	}
	st := w.Stats()
	enc.Encode(map[string]interface{}{"done": true, "blocks": st.Blocks, "frames": st.Frames,
		"sleeps": st.Sleeps, "timer_wakes": st.TimerWakes, "early_wakes": st.EarlyWakes})
}

func lastOf(h []*node) *node {
	if len(h) == 0 {
		return nil
	}
	return h[len(h)-1]
}
