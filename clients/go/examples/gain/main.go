// Command gain is a stereo gain for runway, written in Go.
//
//	go build -o gain ./examples/gain         # PKG_CONFIG_PATH=build/worker for an uninstalled SDK
//	runwayctl slot add vox --inputs 2 --outputs 2 --exec "$PWD/gain"
//	runwayctl param set vox gain_db -6       # heard exactly L after the cycle it was set in
//
// A gain change starts at the exact sample of its event and ramps linearly
// over 5 ms; at 0 dB the output is the input, bit for bit. Its state is the
// declared parameter, which runwayd keeps across restarts.
//
// -pause-ms MS -pause-every N sleeps MS inside every Nth block, to hear (or
// test) what a pause of that length does: up to L minus one period, nothing.
package main

import (
	"flag"
	"math"
	"os"
	"time"

	"runway"
)

const gainDB = 0

type gain struct {
	gain, target, step float32
	rampLeft, ramp     int
}

func (g *gain) change(db float32, atStart bool) {
	g.target = float32(math.Pow(10, float64(db)/20))
	if atStart {
		// Restored state (a restart) applies at once; the SDK fades the output in.
		g.gain, g.rampLeft = g.target, 0
		return
	}
	g.rampLeft = g.ramp
	g.step = (g.target - g.gain) / float32(g.ramp)
}

// render writes frames [from, to) of every output.
func (g *gain) render(b *runway.Block, from, to int) {
	for k := from; k < to; k++ {
		if g.rampLeft > 0 {
			g.rampLeft--
			if g.rampLeft == 0 {
				g.gain = g.target
			} else {
				g.gain += g.step
			}
		}
		for c, out := range b.Out {
			if c < len(b.In) {
				out[k] = b.In[c][k] * g.gain
			}
		}
	}
}

func main() {
	pauseMS := flag.Float64("pause-ms", 0, "sleep this long inside every Nth block")
	pauseEvery := flag.Int("pause-every", 0, "N: which blocks sleep (0: none)")
	flag.Parse()

	g := &gain{gain: 1, target: 1}
	n := 0
	opts := runway.Options{
		Plugin: "go-gain",
		Params: []runway.Param{{ID: gainDB, Name: "gain_db", Min: -60, Max: 24, Default: 0, Unit: "dB"}},
	}
	os.Exit(runway.Main(opts, func(b *runway.Block) {
		if g.ramp == 0 {
			g.ramp = int(b.SampleRate / 200)
		}
		from := 0
		for _, ev := range b.Events {
			if p, ok := ev.(*runway.ParamEvent); ok && p.ID == gainDB {
				g.render(b, from, int(p.At))
				from = int(p.At)
				g.change(p.Value, b.Discontinuity && p.At == 0)
			}
		}
		g.render(b, from, int(b.Frames))
		n++
		if *pauseEvery > 0 && n%*pauseEvery == 0 {
			time.Sleep(time.Duration(*pauseMS * float64(time.Millisecond)))
		}
	}))
}
