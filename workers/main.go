// Command workers is the dumpflow worker process: it registers the connector
// workflow and its activities on the dumpflow task queue and runs them until
// SIGINT or SIGTERM.
//
// Credentials named in connector specs are resolved here, from the
// environment (DUMPFLOW_CRED_<NAME>_ACCESS_KEY_ID / _ACCESS_KEY_SECRET) or
// from $DUMPFLOW_CREDENTIALS_DIR/<name>.json.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workers/runner"
)

func main() {
	cfg := runner.Config{}
	flag.StringVar(&cfg.TemporalAddress, "temporal", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	flag.StringVar(&cfg.Namespace, "namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	flag.StringVar(&cfg.TaskQueue, "task-queue", "dumpflow", "task queue to poll")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	batchMemory := connector.ByteSize(runner.DefaultBatchMemory)
	flag.Var(&batchMemory, "batch-memory", "bytes of batches (OSS object bodies) the worker buffers at once; more wait")
	memoryLimit := connector.ByteSize(0)
	flag.Var(&memoryLimit, "memory-limit", "soft memory limit for the Go runtime (default: batch-memory + 96MiB; the GOMEMLIMIT environment variable wins)")
	flag.IntVar(&cfg.MaxConcurrentActivities, "max-activities", 64, "activities run at once")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", "", `serve Prometheus metrics on this host:port at /metrics, e.g. ":9464" (default: off)`)
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (until SIGINT, SIGTERM or exit) to this file")
	memProfile := flag.String("memprofile", "", "on SIGINT or SIGTERM, write a heap profile (as of the last collection) to this file before stopping")
	flag.Parse()
	cfg.BatchMemory = int64(batchMemory)
	if os.Getenv("GOMEMLIMIT") == "" {
		if memoryLimit == 0 {
			memoryLimit = batchMemory + 96<<20
		}
		// The collector works harder as the heap nears the limit, instead of
		// letting it grow to twice what is live.
		debug.SetMemoryLimit(int64(memoryLimit))
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("-log-level %q: want debug, info, warn or error", *level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	stopProfile := func() {}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("-cpuprofile: %v", err)
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Printf("-cpuprofile: %v", err)
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		<-ctx.Done()
		if *memProfile != "" {
			writeHeapProfile(*memProfile)
		}
	}()
	err := runner.Run(ctx, cfg)
	stop()
	<-profiled
	stopProfile()
	if err != nil {
		log.Fatal(err)
	}
}

// writeHeapProfile writes the heap profile as of the last collection, the
// moment the worker is told to stop (before it lets go of anything).
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Printf("memprofile: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Printf("memprofile: %v", err)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
