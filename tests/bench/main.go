// Command bench measures dumpflow's Kafka → OSS throughput against a raw
// franz-go consume-to-file baseline, in one process and one run:
//
//  1. kfake (in-process, real Kafka protocol on loopback) gets -records
//     records of -size bytes spread over -partitions partitions;
//  2. baseline: one franz-go client consumes every partition directly and
//     writes the values newline-separated to one buffered file per
//     partition;
//  3. dumpflow: the local stack (Temporal on SQLite, the file-backed OSS
//     fake) and an in-process worker dump the same topic with an OSS
//     connector, timed from ExecuteWorkflow until the status query shows
//     every cursor at its high watermark;
//  4. the offset-coverage ledger (starter/verify) must be exact;
//  5. a table: records/s, MB/s, CPU, peak RSS and Go heap per phase, the
//     dumpflow/baseline ratio, and Temporal history events per GB.
//
// Usage:
//
//	go run ./tests/bench [-records 1000000] [-size 512] [-partitions 3]
//	    [-max-records 50000] [-max-bytes 16MiB] [-part-size 32MiB]
//	    [-concurrency 3] [-dir DIR] [-cpuprofile FILE]
//
// See docs/benchmark.md for results and where the time goes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
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
	poll                      time.Duration
	verbose                   bool
	diag                      bool
}

func parseFlags() options {
	o := options{maxBytes: 16 << 20, partSize: 32 << 20, baselineFetch: 8 << 20}
	flag.IntVar(&o.records, "records", 1_000_000, "records to produce and dump")
	flag.IntVar(&o.size, "size", 512, "bytes per record value")
	flag.IntVar(&o.partitions, "partitions", 3, "topic partitions")
	flag.IntVar(&o.maxRecords, "max-records", 50_000, "connector batch.maxRecords")
	flag.Var(byteFlag{&o.maxBytes}, "max-bytes", "connector batch.maxBytes (e.g. 16MiB)")
	flag.Var(byteFlag{&o.partSize}, "part-size", "connector sink.oss.partSize; batches larger than this use multipart upload")
	flag.IntVar(&o.concurrency, "concurrency", 0, "connector concurrency (1, 2, 3, 6, 12); 0: the smallest allowed value >= partitions")
	flag.DurationVar(&o.flush, "flush", time.Second, "connector batch.flushInterval (bounds the wait for the last, partial batch)")
	flag.IntVar(&o.historyLimit, "history-limit", 0, "events per run before continue-as-new (0: the workflow default)")
	flag.Var(byteFlag{&o.baselineFetch}, "baseline-fetch", "baseline FetchMaxPartitionBytes (FetchMaxBytes is 4x); 0: franz-go defaults")
	flag.StringVar(&o.dir, "dir", "", "working directory for Temporal, OSS and baseline files (default: a temporary directory, removed)")
	flag.BoolVar(&o.keep, "keep", false, "keep -dir's contents after the run")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the dumpflow phase to this file")
	flag.StringVar(&o.baselineProfile, "baseline-cpuprofile", "", "write a CPU profile of the baseline phase to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile (whole run) to this file")
	flag.DurationVar(&o.poll, "poll", 50*time.Millisecond, "status query interval while waiting for the dump")
	flag.BoolVar(&o.diag, "diag", false, "after the measurements, time WritePartition's steps (read, add, commit) outside Temporal")
	flag.BoolVar(&o.verbose, "v", false, "log the stack's warnings and errors to stderr")
	flag.Parse()
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
	ctx := context.Background()
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

	smp := newSampler(20 * time.Millisecond)
	defer smp.close()
	out := os.Stdout
	fmt.Fprintf(out, "dumpflow bench: %d records x %d B over %d partitions (%.1f MB of values); GOMAXPROCS=%d, %s, %s/%s\n",
		o.records, o.size, o.partitions, float64(o.records)*float64(o.size)/1e6, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(out, "work dir: %s\n", dir)

	// Kafka.
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()

	// Temporal, OSS and the worker, started first so that both measurements
	// run beside the same idle server.
	t0 := time.Now()
	e, err := startEnv(ctx, filepath.Join(dir, "stack"), brokers, logger)
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer e.stop()
	fmt.Fprintf(out, "stack: Temporal %s, OSS %s (bucket dir %s), kfake %s; started in %.2fs\n",
		e.stack.TemporalAddress, e.stack.OSSEndpoint, e.stack.OSSBucketDir, strings.Join(brokers, ","), time.Since(t0).Seconds())

	// Produce (not part of either measurement).
	t0 = time.Now()
	hwm, err := produce(ctx, brokers, topic, o.partitions, o.records, o.size)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	prodWall := time.Since(t0)
	fmt.Fprintf(out, "produce: %d records in %.2fs (%.0f records/s), not measured below\n\n", o.records, prodWall.Seconds(), float64(o.records)/prodWall.Seconds())

	quiesce()
	bphase := smp.begin()
	stopProf := startProfile(o.baselineProfile)
	bres, err := baseline(ctx, brokers, topic, hwm, filepath.Join(dir, "baseline"), int32(o.baselineFetch))
	stopProf()
	smp.end(bphase)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if bres.Records != int64(o.records) || bres.Written != int64(o.records)*int64(o.size+1) {
		return fmt.Errorf("baseline wrote %d records, %d bytes; want %d, %d", bres.Records, bres.Written, o.records, int64(o.records)*int64(o.size+1))
	}
	// Write back the baseline's files now, so that the kernel's writeback
	// does not run during the dumpflow phase.
	syscall.Sync()

	quiesce()
	dphase := smp.begin()
	stopProf = startProfile(o.cpuProfile)
	dcfg := dumpConfig{
		Topic: topic, Brokers: brokers, Concurrency: o.concurrency,
		MaxRecords: o.maxRecords, MaxBytes: int64(o.maxBytes), PartSize: int64(o.partSize),
		FlushInterval: o.flush, HistoryLimit: o.historyLimit,
	}
	dres, err := e.dump(ctx, dcfg, hwm, o.poll)
	stopProf()
	smp.end(dphase)
	if err != nil {
		return fmt.Errorf("dumpflow: %w", err)
	}
	// The dumpflow phase's wall and CPU end when the cursors caught up;
	// the sampler's phase also covers history counting and verify.
	if dres.Records != int64(o.records) || dres.Written != int64(o.records)*int64(o.size+1) {
		return fmt.Errorf("dumpflow wrote %d records, %d bytes; want %d, %d", dres.Records, dres.Written, o.records, int64(o.records)*int64(o.size+1))
	}
	var ledgerRecords int64
	for _, p := range dres.Ledger.Partitions {
		ledgerRecords += p.Records
	}
	if !dres.Ledger.OK || ledgerRecords != int64(o.records) {
		return fmt.Errorf("ledger not exact (ok=%v, %d records in the sink): %+v", dres.Ledger.OK, ledgerRecords, dres.Ledger)
	}

	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return err
		}
	}
	report(out, o, bres, bphase, dres, dphase)
	if o.diag {
		fmt.Fprintln(out)
		if err := diagnose(ctx, out, e, dcfg, hwm); err != nil {
			return fmt.Errorf("diag: %w", err)
		}
	}
	return nil
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
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func report(w io.Writer, o options, b baselineResult, bp *phaseStats, d dumpResult, dp *phaseStats) {
	bRate := float64(b.Records) / b.Wall.Seconds()
	dRate := float64(d.Records) / d.Wall.Seconds()
	spec := d.Spec
	fmt.Fprintf(w, "baseline: franz-go direct consume -> one buffered file per partition (FetchMaxPartitionBytes %s)\n", fetchDesc(o.baselineFetch))
	fmt.Fprintf(w, "dumpflow: concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s, oss partSize %s, history limit %s\n\n",
		spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, spec.Batch.FlushInterval.D(), spec.Sink.OSS.PartSize, histLimit(o.historyLimit))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trecords\tMB\twall s\trecords/s\tMB/s\tCPU s\tCPU/wall\tpeak RSS MiB\tpeak Go heap MiB\tVmHWM at end MiB\t")
	row := func(name string, recs, bytes int64, wall, cpu time.Duration, p *phaseStats) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", name, recs, float64(bytes)/1e6, wall.Seconds(),
			float64(recs)/wall.Seconds(), float64(bytes)/1e6/wall.Seconds(), cpu.Seconds(), cpu.Seconds()/wall.Seconds(),
			mib(p.PeakRSS), mib(p.PeakHeap), mib(p.HWMAtEnd))
	}
	row("baseline", b.Records, b.Bytes, b.Wall, b.CPU, bp)
	row("dumpflow", d.Records, d.Bytes, d.Wall, d.CPU, dp)
	tw.Flush()
	fmt.Fprintf(w, "\nratio dumpflow/baseline (records/s): %.2f  (target >= 0.8)\n", dRate/bRate)
	fmt.Fprintf(w, "MB = 10^6 bytes of record values. CPU s is the whole process over the timed wall; memory peaks are per phase (the dumpflow phase also covers history counting and verify);\n")
	fmt.Fprintf(w, "RSS covers the whole process: kfake holding the topic, the Temporal server, the OSS fake and the worker.\n\n")

	h := d.History
	gb := float64(d.Bytes) / 1e9
	var acts []string
	for name, n := range h.ByActivity {
		acts = append(acts, fmt.Sprintf("%s %d", name, n))
	}
	sort.Strings(acts)
	visible := "n/a"
	if h.VisibleRuns >= 0 {
		visible = fmt.Sprint(h.VisibleRuns)
	}
	writes := h.ByActivity["WritePartition"]
	fmt.Fprintf(w, "history: %d runs (ListWorkflow sees %s), %d events, %d workflow tasks; activities: %s\n", h.Runs, visible, h.Events, h.WFTasks, strings.Join(acts, ", "))
	fmt.Fprintf(w, "history: %.0f events per GB (%.0f per GiB), %.1f events per written batch, %d objects of %.1f MiB on average\n",
		float64(h.Events)/gb, float64(h.Events)/(float64(d.Bytes)/(1<<30)), float64(h.Events)/float64(max(writes, 1)), d.Objects, mib(d.Written)/float64(max(d.Objects, 1)))
	var times []string
	for _, name := range []string{"FetchRanges", "WritePartition", "CommitOffsets"} {
		if n := h.ByActivity[name]; n > 0 {
			times = append(times, fmt.Sprintf("%s %.2fs (%.0f ms each)", name, h.ActTime[name].Seconds(), h.ActTime[name].Seconds()*1000/float64(n)))
		}
	}
	fmt.Fprintf(w, "activity time, scheduled to completed, summed over %d parallel loops: %s\n", spec.Concurrency, strings.Join(times, ", "))
	var objs int
	for _, p := range d.Ledger.Partitions {
		objs += p.Ranges
	}
	fmt.Fprintf(w, "verify: ledger OK=%v over %d partitions, %d ranges, %d records; group offsets at the high watermarks\n",
		d.Ledger.OK, len(d.Ledger.Partitions), objs, d.Records)
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
