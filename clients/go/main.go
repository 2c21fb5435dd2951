package runway

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main opens a worker, calls process for every block until SIGTERM, SIGINT
// or runwayd's departure ends it, and returns a process exit status (0 on a
// clean stop). Call it from main: os.Exit(runway.Main(opts, process)).
func Main(o Options, process func(*Block)) int {
	name := o.Plugin
	if name == "" {
		name = "worker"
	}
	w, err := Open(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	defer w.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			w.RequestStop()
		}
	}()
	if err := w.Run(process); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
