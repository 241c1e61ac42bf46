// Command bench measures how close dumpflow's Kafka → OSS throughput comes
// to the real limit of the machine, in one process and one run:
//
//  1. kfake (in-process, real Kafka protocol on loopback) gets -records
//     records of -size bytes spread over -partitions partitions;
//  2. the local stack starts (Temporal on SQLite, the file-backed OSS fake)
//     and the worker binary (./workers) is built;
//  3. -repeat rounds, each running the contenders in turn:
//     - limit: one franz-go client consumes every partition directly (the
//     baseline's kgo options) and PUTs each partition's values,
//     newline-separated, as -limit-batch objects with the unmodified OSS
//     SDK against the same OSS fake, with dumpflow's client options
//     (CRC-64, x-oss-forbid-overwrite, path style), 3 uploads in flight,
//     multipart above dumpflow's default partSize like dumpflow's sink;
//     the bucket listing and every object's lines are then checked;
//     - baseline: the same consumer writing one buffered local file per
//     partition (the historical yardstick);
//     - defaults: dumpflow with a connector spec that sets no batch fields
//     and no partSize (the connector's defaults; concurrency too, unless
//     -concurrency is given), run by a worker process of its own;
//     - tuned: dumpflow with -tuned-max-bytes batches, -tuned-flush,
//     -tuned-max-records, -tuned-part-size, by a fresh worker process;
//     each dumpflow run is timed from ExecuteWorkflow until the status
//     query shows every cursor at its high watermark, and its
//     offset-coverage ledger (starter/verify) and objects must be exact;
//  4. a table: records/s, MB/s, CPU (the worker process's own for dumpflow,
//     the rest of the machine separately), peak RSS; the ratios
//     defaults/limit (target >= 0.9), tuned/limit, tuned/baseline (the old
//     dumpflow/baseline) of the medians; Temporal history events and bytes
//     per GB (target <= 200 events and <= 100 KB per GB for defaults) and
//     activities by type.
//
// Usage:
//
//	go run ./tests/bench [-records 1000000] [-size 512] [-partitions 3]
//	    [-limit-batch 16MiB] [-tuned-max-bytes 32MiB]
//	    [-tuned-max-records 0 (tuned-max-bytes/size)] [-tuned-part-size 8MiB]
//	    [-tuned-flush 1s] [-concurrency 0] [-repeat 3] [-dir DIR]
//	    [-cpuprofile FILE (the worker process, first defaults run)]
//	    [-limit-cpuprofile FILE] [-baseline-cpuprofile FILE] [-diag]
//	go run ./tests/bench -memory [-partitions 12] [-records N]
//
// -concurrency 0 means: the connector default for defaults, the smallest
// allowed value >= partitions for tuned. The connector's own defaults are
// maxBytes 16MiB, maxRecords 50000, partSize 8MiB, flushInterval 10s,
// concurrency 6. (-max-bytes, -max-records, -part-size and -flush are the
// old names of the -tuned- flags.)
//
// -memory measures a worker process's peak memory instead (see memory.go).
//
// With -maxcompute it measures the MaxCompute sink instead, against the
// local stack's emulator (deploy/localstack/odpsemu): the same produced
// topic is dumped, -repeat rounds alternating, by the limit — a child
// process with one franz-go client consuming every partition from 0 to its
// high watermark and writing, through the unmodified ODPS SDK tunnel, one
// upload session per Kafka partition in 16MiB blocks of the default
// table's rows (topic, partition, offset, key, value; partition pt of the
// record's hour in GMT+08:00), committed with all its block ids — and by a
// MaxCompute connector at the connector's defaults running in a worker
// process (./workers, with -cpuprofile on the first round), timed from
// ExecuteWorkflow until every cursor is at its high watermark. The limit's
// table must hold each offset once; the connector's ledger (starter/verify)
// must be exact. It prints records/s, MB/s, CPU and peak RSS of each
// contender's process, the dumpflow/limit ratio of the medians (target
// >= 0.8), and Temporal history events and bytes per GB.
//
// With -scale it measures one connector at its defaults on a topic of
// -scale-partitions (256) partitions, in a worker process per phase:
// (a) an OSS connector dumps a backlog of -scale-records (512,000) records
// produced before it starts, timed until every cursor is at its high
// watermark and checked exactly-once (ledger and objects' lines); (b) a
// MaxCompute connector (flush interval -scale-mc-flush, default the
// connector's 60s) is fed -scale-rate (2000) records/s for -scale-duration
// (3m) against an emulator (run by the bench, not the local stack, whose
// emulator takes no options) with the tunnel's per-table quotas on at the
// service's values (500 upload sessions and 500 blocks per 5m, 75 commits
// per 15s, 200 download sessions per 5m), then given -scale-catchup (4
// flush intervals) to catch up, stopped, and verified against its cursors
// (with the emulator reopened on the same state without quotas). Each
// phase prints records/s, the worker's CPU and peak RSS, its workflow runs
// (continue-as-new), history events and bytes (per GB, and events/s of the
// busiest run), activities by type and their retries; (b) also the
// tunnel's upload sessions, blocks, commits and download sessions per
// table, the most within any quota window, the 429 FlowExceeded answers,
// and the records routed to the error-data topic. -scale-phases a or b
// runs one phase. It fails only when a dump is not exactly-once; a quota
// being hit, records routed away or (b) not catching up are reported, not
// failed.
//
// See docs/benchmark.md for results and where the time goes.
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
)

const (
	topic    = "bench"
	credName = "bench"
)

type options struct {
	records, size, partitions int
	maxRecords                int
	maxBytes, partSize        connector.ByteSize
	concurrency               int
	flush                     time.Duration
	historyLimit              int
	baselineFetch             connector.ByteSize
	dir                       string
	keep                      bool
	cpuProfile                string
	baselineProfile           string
	memProfile                string
	mutexProfile              string
	poll                      time.Duration
	verbose                   bool
	diag                      bool
	repeat                    int
	memory                    bool
	limitBatch                connector.ByteSize
	limitProfile              string
	concurrencySet            bool // -concurrency was given
	maxcompute                bool
}

func parseFlags() options {
	o := options{maxBytes: 32 << 20, partSize: 8 << 20, baselineFetch: 8 << 20, limitBatch: 16 << 20}
	flag.IntVar(&o.repeat, "repeat", 3, "measure limit, baseline, dumpflow defaults and dumpflow tuned this many times, alternating, and compare the medians")
	flag.IntVar(&o.records, "records", 1_000_000, "records to produce and dump")
	flag.IntVar(&o.size, "size", 512, "bytes per record value")
	flag.IntVar(&o.partitions, "partitions", 3, "topic partitions")
	flag.IntVar(&o.maxRecords, "tuned-max-records", 0, "tuned connector batch.maxRecords; 0: tuned-max-bytes / size, so that both limits cut the same batch")
	flag.Var(byteFlag{&o.maxBytes}, "tuned-max-bytes", "tuned connector batch.maxBytes (e.g. 16MiB)")
	flag.Var(byteFlag{&o.partSize}, "tuned-part-size", "tuned connector sink.oss.partSize; batches larger than this use multipart upload")
	flag.DurationVar(&o.flush, "tuned-flush", time.Second, "tuned connector batch.flushInterval (bounds the wait for the last, partial batch)")
	// The old names.
	flag.IntVar(&o.maxRecords, "max-records", 0, "old name of -tuned-max-records")
	flag.Var(byteFlag{&o.maxBytes}, "max-bytes", "old name of -tuned-max-bytes")
	flag.Var(byteFlag{&o.partSize}, "part-size", "old name of -tuned-part-size")
	flag.DurationVar(&o.flush, "flush", time.Second, "old name of -tuned-flush")
	flag.IntVar(&o.concurrency, "concurrency", 0, "connector concurrency (1, 2, 3, 6, 12); 0: the connector default for defaults, the smallest allowed value >= partitions for tuned")
	flag.Var(byteFlag{&o.limitBatch}, "limit-batch", "limit contender's object size (values and newlines)")
	flag.StringVar(&o.limitProfile, "limit-cpuprofile", "", "write a CPU profile of the first limit phase to this file")
	flag.IntVar(&o.historyLimit, "history-limit", 0, "events per run before continue-as-new (0: the workflow default)")
	flag.Var(byteFlag{&o.baselineFetch}, "baseline-fetch", "limit and baseline FetchMaxPartitionBytes (FetchMaxBytes is 4x); 0: franz-go defaults")
	flag.StringVar(&o.dir, "dir", "", "working directory for Temporal, OSS and baseline files (default: a temporary directory, removed)")
	flag.BoolVar(&o.keep, "keep", false, "keep -dir's contents after the run")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the worker process of the first defaults run to this file")
	flag.StringVar(&o.baselineProfile, "baseline-cpuprofile", "", "write a CPU profile of the baseline phase to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile (whole run) to this file")
	flag.StringVar(&o.mutexProfile, "mutexprofile", "", "write a mutex contention profile (whole run) to this file")
	flag.DurationVar(&o.poll, "poll", 50*time.Millisecond, "status query interval while waiting for the dump")
	flag.BoolVar(&o.diag, "diag", false, "after the measurements, time WritePartition's steps (read, add, commit) outside Temporal")
	flag.BoolVar(&o.verbose, "v", false, "log the stack's warnings and errors to stderr")
	flag.BoolVar(&o.memory, "memory", false, "measure a worker process's peak memory instead: -partitions (default 12) partitions, -concurrency loops, connector default batch sizes")
	flag.BoolVar(&o.maxcompute, "maxcompute", false, "compare a MaxCompute connector at its defaults (worker process) with a raw franz-go + ODPS SDK tunnel writer, against the emulator")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.concurrencySet = set["concurrency"]
	if o.memory && !set["partitions"] {
		o.partitions = 12
	}
	o.repeat = max(o.repeat, 1)
	if o.maxRecords == 0 {
		o.maxRecords = min(1_000_000, max(1, int((int64(o.maxBytes)+int64(o.size)-1)/int64(o.size))))
	}
	if o.concurrency == 0 {
		o.concurrency = 12
		for _, c := range []int{12, 6, 3, 2, 1} {
			if c >= o.partitions {
				o.concurrency = c
			}
		}
	}
	return o
}

type byteFlag struct{ b *connector.ByteSize }

func (f byteFlag) String() string {
	if f.b == nil {
		return ""
	}
	return f.b.String()
}

func (f byteFlag) Set(s string) error {
	v, err := connector.ParseByteSize(s)
	if err != nil {
		return err
	}
	*f.b = v
	return nil
}

func main() {
	o := parseFlags()
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func newKafkaClient(brokers []string) (*kafka.Client, error) {
	return kafka.NewClient(kgo.SeedBrokers(brokers...))
}

func run(o options) error {
	level := slog.LevelError + 4 // silent
	if o.verbose {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "dumpflow-bench-")
		if err != nil {
			return err
		}
		dir = d
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Credentials are resolved on the worker (and by verify) from the environment.
	for k, v := range map[string]string{"ACCESS_KEY_ID": "bench", "ACCESS_KEY_SECRET": "bench-secret"} {
		if err := os.Setenv(connector.CredentialsEnvPrefix(credName)+k, v); err != nil {
			return err
		}
	}

	if o.memory {
		return runMemory(o, os.Stdout, logger, dir)
	}
	if o.maxcompute {
		return runMaxCompute(o, os.Stdout, logger, dir)
	}
	if *idleMode {
		return runIdle(o, os.Stdout, logger, dir)
	}
	if *freshnessMode {
		return runFreshness(o, os.Stdout, logger, dir)
	}
	if *scaleMode {
		return runScale(o, os.Stdout, logger, dir)
	}
	return runThroughput(o, os.Stdout, logger, dir)
}

// quiesce collects garbage and returns freed memory to the OS so that
// each phase starts from the same floor.
func quiesce() {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(200 * time.Millisecond)
}

func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Printf("cpuprofile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Printf("cpuprofile: %v", err)
		f.Close()
		return func() {}
	}
	return sync.OnceFunc(func() { pprof.StopCPUProfile(); f.Close() })
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fetchDesc(b connector.ByteSize) string {
	if b == 0 {
		return "franz-go default"
	}
	return b.String()
}

func histLimit(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}
