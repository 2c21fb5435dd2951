package main

import (
	"os"
	"os/signal"
	"syscall"

	"runway"
)

// stopOnSignal ends the worker's loop cleanly on SIGTERM or SIGINT.
func stopOnSignal(w *runway.Worker) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		w.RequestStop()
	}()
}
