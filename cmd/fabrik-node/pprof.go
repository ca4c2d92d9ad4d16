package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// startPprof serves Go's profiler on addr when FABRIK_PPROF_BIND is set (off
// by default; it exposes internals, so bind it to loopback). It is how the
// figures in BENCHMARKS.md were explained.
func startPprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Warn("profiler enabled", "addr", addr)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Error("profiler stopped", "err", err)
		}
	}()
}
