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
//	    [-max-bytes 32MiB] [-max-records 0 (max-bytes/size)] [-part-size 8MiB]
//	    [-flush 100ms] [-concurrency 0 (partitions)] [-repeat 3]
//	    [-dir DIR] [-cpuprofile FILE] [-diag]
//
// The defaults are the best settings found on a 2-core machine (see
// docs/benchmark.md); the connector's own defaults are -max-bytes 16MiB
// -max-records 50000 -part-size 8MiB -flush 10s.
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
	"sync"
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
	mutexProfile              string
	poll                      time.Duration
	verbose                   bool
	diag                      bool
	repeat                    int
	memory                    bool
}

func parseFlags() options {
	o := options{maxBytes: 32 << 20, partSize: 8 << 20, baselineFetch: 8 << 20}
	flag.IntVar(&o.repeat, "repeat", 3, "measure baseline and dumpflow this many times, alternating, and compare the medians")
	flag.IntVar(&o.records, "records", 1_000_000, "records to produce and dump")
	flag.IntVar(&o.size, "size", 512, "bytes per record value")
	flag.IntVar(&o.partitions, "partitions", 3, "topic partitions")
	flag.IntVar(&o.maxRecords, "max-records", 0, "connector batch.maxRecords; 0: max-bytes / size, so that both limits cut the same batch")
	flag.Var(byteFlag{&o.maxBytes}, "max-bytes", "connector batch.maxBytes (e.g. 16MiB)")
	flag.Var(byteFlag{&o.partSize}, "part-size", "connector sink.oss.partSize; batches larger than this use multipart upload")
	flag.IntVar(&o.concurrency, "concurrency", 0, "connector concurrency (1, 2, 3, 6, 12); 0: the smallest allowed value >= partitions")
	flag.DurationVar(&o.flush, "flush", 100*time.Millisecond, "connector batch.flushInterval (bounds the wait for the last, partial batch)")
	flag.IntVar(&o.historyLimit, "history-limit", 0, "events per run before continue-as-new (0: the workflow default)")
	flag.Var(byteFlag{&o.baselineFetch}, "baseline-fetch", "baseline FetchMaxPartitionBytes (FetchMaxBytes is 4x); 0: franz-go defaults")
	flag.StringVar(&o.dir, "dir", "", "working directory for Temporal, OSS and baseline files (default: a temporary directory, removed)")
	flag.BoolVar(&o.keep, "keep", false, "keep -dir's contents after the run")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the dumpflow phase to this file")
	flag.StringVar(&o.baselineProfile, "baseline-cpuprofile", "", "write a CPU profile of the baseline phase to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile (whole run) to this file")
	flag.StringVar(&o.mutexProfile, "mutexprofile", "", "write a mutex contention profile (whole run) to this file")
	flag.DurationVar(&o.poll, "poll", 50*time.Millisecond, "status query interval while waiting for the dump")
	flag.BoolVar(&o.diag, "diag", false, "after the measurements, time WritePartition's steps (read, add, commit) outside Temporal")
	flag.BoolVar(&o.verbose, "v", false, "log the stack's warnings and errors to stderr")
	flag.BoolVar(&o.memory, "memory", false, "measure a worker process's peak memory instead: -partitions (default 12) partitions, -concurrency loops, connector default batch sizes")
	flag.Parse()
	if o.memory {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["partitions"] {
			o.partitions = 12
		}
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

	if o.memory {
		return runMemory(o, os.Stdout, logger, dir)
	}
	if *idleMode {
		return runIdle(o, os.Stdout, logger, dir)
	}
	if *freshnessMode {
		return runFreshness(o, os.Stdout, logger, dir)
	}
	if o.mutexProfile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	smp := newSampler(20 * time.Millisecond)
	defer smp.close()
	out := os.Stdout
	fmt.Fprintf(out, "dumpflow bench: %d records x %d B over %d partitions (%.1f MB of values); GOMAXPROCS=%d, %s, %s/%s\n",
		o.records, o.size, o.partitions, float64(o.records)*float64(o.size)/1e6, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(out, "work dir: %s\n", dir)

	// Kafka.
	traffic := &kafkaTraffic{}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(traffic.listen))
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
	fmt.Fprintf(out, "produce: %d records in %.2fs (%.0f records/s), not measured below\n", o.records, prodWall.Seconds(), float64(o.records)/prodWall.Seconds())
	quiesce()
	fmt.Fprintf(out, "memory floor before the measurements: VmRSS %.0f MiB, Go heap %.0f MiB (kfake holds the topic in memory)\n\n",
		mib(procStatusKB("VmRSS")), mib(heapBytes()))

	dcfg := dumpConfig{
		Topic: topic, Brokers: brokers, Concurrency: o.concurrency,
		MaxRecords: o.maxRecords, MaxBytes: int64(o.maxBytes), PartSize: int64(o.partSize),
		FlushInterval: o.flush, HistoryLimit: o.historyLimit, Size: o.size,
	}
	wantBytes := int64(o.records) * int64(o.size+1)
	var rounds []round
	for i := 1; i <= o.repeat; i++ {
		var r round
		bprof, dprof := o.baselineProfile, o.cpuProfile
		if i > 1 { // profile the first round only
			bprof, dprof = "", ""
		}

		quiesce()
		r.bp = smp.begin()
		sent0, conns0 := traffic.snapshot()
		stopProf := startProfile(bprof)
		bdir := filepath.Join(dir, fmt.Sprintf("baseline-%d", i))
		r.b, err = baseline(ctx, brokers, topic, hwm, bdir, int32(o.baselineFetch))
		stopProf()
		smp.end(r.bp)
		sent1, conns1 := traffic.snapshot()
		r.bSent, r.bConns = sent1-sent0, conns1-conns0
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		if r.b.Records != int64(o.records) || r.b.Written != wantBytes {
			return fmt.Errorf("baseline wrote %d records, %d bytes; want %d, %d", r.b.Records, r.b.Written, o.records, wantBytes)
		}
		// Write the files back now, so that the kernel's writeback does
		// not run during the dumpflow phase; then free the disk space.
		syscall.Sync()
		if !o.keep {
			_ = os.RemoveAll(bdir)
		}

		quiesce()
		dcfg.Name = "bench"
		if o.repeat > 1 {
			dcfg.Name = fmt.Sprintf("bench-%d", i)
		}
		r.dp = smp.begin()
		sent0, conns0 = traffic.snapshot()
		stopProf = startProfile(dprof)
		r.d, err = e.dump(ctx, dcfg, hwm, o.poll, stopProf)
		sent1, conns1 = traffic.snapshot()
		r.dSent, r.dConns = sent1-sent0, conns1-conns0
		stopProf() // no-op unless dump failed before catching up
		smp.end(r.dp)
		if err != nil {
			return fmt.Errorf("dumpflow: %w", err)
		}
		if r.d.Records != int64(o.records) || r.d.Written != wantBytes {
			return fmt.Errorf("dumpflow wrote %d records, %d bytes; want %d, %d", r.d.Records, r.d.Written, o.records, wantBytes)
		}
		var ledgerRecords int64
		for _, p := range r.d.Ledger.Partitions {
			ledgerRecords += p.Records
		}
		if !r.d.Ledger.OK || ledgerRecords != int64(o.records) {
			return fmt.Errorf("ledger not exact (ok=%v, %d records in the sink): %+v", r.d.Ledger.OK, ledgerRecords, r.d.Ledger)
		}
		if r.d.ContentRecords != int64(o.records) || r.d.ContentBytes != r.d.Bytes {
			return fmt.Errorf("objects hold %d records, %d value bytes; want %d, %d", r.d.ContentRecords, r.d.ContentBytes, o.records, r.d.Bytes)
		}
		syscall.Sync()
		rounds = append(rounds, r)
	}

	if o.memProfile != "" {
		if err := writeProfile("allocs", o.memProfile); err != nil {
			return err
		}
	}
	if o.mutexProfile != "" {
		if err := writeProfile("mutex", o.mutexProfile); err != nil {
			return err
		}
	}
	report(out, o, rounds)
	if o.diag {
		fmt.Fprintln(out)
		dcfg.Name = "diag"
		if err := diagnose(ctx, out, e, dcfg, hwm); err != nil {
			return fmt.Errorf("diag: %w", err)
		}
	}
	return nil
}

// round is one baseline measurement and one dumpflow measurement.
type round struct {
	b  baselineResult
	bp *phaseStats
	d  dumpResult
	dp *phaseStats
	// Bytes kfake sent and connections it accepted during each phase
	// (the dumpflow phase's also cover history counting and verify).
	bSent, bConns, dSent, dConns int64
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

func report(w io.Writer, o options, rounds []round) {
	spec := rounds[0].d.Spec
	fmt.Fprintf(w, "baseline: franz-go direct consume -> one buffered file per partition (FetchMaxPartitionBytes %s)\n", fetchDesc(o.baselineFetch))
	fmt.Fprintf(w, "dumpflow: concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s, oss partSize %s, history limit %s\n\n",
		spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, spec.Batch.FlushInterval.D(), spec.Sink.OSS.PartSize, histLimit(o.historyLimit))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trecords\tMB\twall s\trecords/s\tMB/s\tCPU s\tCPU/wall\tothers' CPU s\tpeak RSS MiB\tpeak Go heap MiB\tVmHWM MiB\t")
	row := func(name string, recs, bytes int64, wall, cpu time.Duration, p *phaseStats) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.1f\t%.0f\t%.0f\t%.0f\t\n", name, recs, float64(bytes)/1e6, wall.Seconds(),
			float64(recs)/wall.Seconds(), float64(bytes)/1e6/wall.Seconds(), cpu.Seconds(), cpu.Seconds()/wall.Seconds(), p.Others.Seconds(),
			mib(p.PeakRSS), mib(p.PeakHeap), mib(p.HWMAtEnd))
	}
	var bRates, dRates []float64
	for i, r := range rounds {
		suffix := ""
		if len(rounds) > 1 {
			suffix = fmt.Sprintf(" #%d", i+1)
		}
		row("baseline"+suffix, r.b.Records, r.b.Bytes, r.b.Wall, r.b.CPU, r.bp)
		row("dumpflow"+suffix, r.d.Records, r.d.Bytes, r.d.Wall, r.d.CPU, r.dp)
		bRates = append(bRates, float64(r.b.Records)/r.b.Wall.Seconds())
		dRates = append(dRates, float64(r.d.Records)/r.d.Wall.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(rounds) == 1 {
		fmt.Fprintf(w, "ratio dumpflow/baseline (records/s): %.2f  (target >= 0.8)\n", dRates[0]/bRates[0])
	} else {
		var per []string
		for i := range rounds {
			per = append(per, fmt.Sprintf("%.2f", dRates[i]/bRates[i]))
		}
		fmt.Fprintf(w, "ratio dumpflow/baseline (records/s): %.2f of the medians (%.0f / %.0f records/s); per round %s  (target >= 0.8)\n",
			median(dRates)/median(bRates), median(dRates), median(bRates), strings.Join(per, " "))
	}
	fmt.Fprintf(w, "MB = 10^6 bytes of record values. CPU s: this process over the timed wall; others' CPU s: the rest of the machine meanwhile.\n")
	fmt.Fprintf(w, "Memory peaks are per phase (sampled every 20ms; the dumpflow phase also covers history counting and verify) and cover the\n")
	fmt.Fprintf(w, "whole process: kfake holding the topic in memory, the Temporal server, the OSS fake and the worker. VmHWM is at the phase's end.\n\n")

	for i, r := range rounds {
		fmt.Fprintf(w, "kafka #%d: kfake sent %.1f MB over %d new connections to the baseline (%.2fx the values), %.1f MB over %d to dumpflow (%.2fx)\n",
			i+1, float64(r.bSent)/1e6, r.bConns, float64(r.bSent)/float64(r.b.Bytes), float64(r.dSent)/1e6, r.dConns, float64(r.dSent)/float64(r.d.Bytes))
	}
	d := rounds[len(rounds)-1].d
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
	for i, r := range rounds {
		var objs int
		for _, p := range r.d.Ledger.Partitions {
			objs += p.Ranges
		}
		fmt.Fprintf(w, "verify #%d: ledger OK=%v over %d partitions, %d ranges, %d records; every object's lines are the expected values (%d records, %.1f MB); group offsets at the high watermarks\n",
			i+1, r.d.Ledger.OK, len(r.d.Ledger.Partitions), objs, r.d.Records, r.d.ContentRecords, float64(r.d.ContentBytes)/1e6)
	}
}

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
