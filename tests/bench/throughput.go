package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// startStack starts the local stack (Temporal on SQLite, the file-backed
// OSS fake; Kafka is the caller's kfake) and a client, but no worker: the
// throughput rounds start a worker process per dumpflow run.
func startStack(ctx context.Context, dir string, brokers []string, logger *slog.Logger) (*env, error) {
	st, err := localstack.Start(ctx, localstack.Options{
		DataDir: dir, TemporalPort: 0, UIPort: -1, KafkaBrokers: brokers, OSSPort: 0, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &env{stack: st, client: c, stop: func() {
		c.Close()
		if err := st.Close(); err != nil {
			logger.Error("stop local stack", "error", err)
		}
	}}, nil
}

// round is one measurement of each contender, in the order they ran.
type round struct {
	l      limitResult
	lp     *phaseStats
	lCheck struct{ objects, written, records, valueBytes int64 }
	b      baselineResult
	bp     *phaseStats
	def    procDump // dumpflow, connector defaults
	tun    procDump // dumpflow, tuned
	// Bytes kfake sent and connections it accepted during each in-process
	// phase.
	lSent, lConns, bSent, bConns int64
}

// procDump is one dumpflow run by a worker process of its own.
type procDump struct {
	d        dumpResult
	cpu      time.Duration // the worker process's user+system CPU over the timed wall
	others   time.Duration // the rest of the machine's CPU over the timed wall
	stackCPU time.Duration // this process's (kfake, Temporal, the OSS fake) over the timed wall
	peakRSS  int64         // the worker's VmRSS, sampled every 20ms over the timed wall
	hwm      int64         // the worker's VmHWM when caught up (its lifetime peak)
	// Bytes kfake sent and connections it accepted during the run (also
	// covering history counting and verify).
	sent, conns int64
}

// runThroughput measures the contenders in alternating rounds: limit,
// baseline, dumpflow with the connector's defaults, dumpflow tuned.
func runThroughput(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	if o.mutexProfile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	smp := newSampler(20 * time.Millisecond)
	defer smp.close()
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

	// Temporal and OSS, started first so that every measurement runs
	// beside the same idle server; the worker binary.
	t0 := time.Now()
	e, err := startStack(ctx, filepath.Join(dir, "stack"), brokers, logger)
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer e.stop()
	fmt.Fprintf(out, "stack: Temporal %s, OSS %s (bucket dir %s), kfake %s; started in %.2fs\n",
		e.stack.TemporalAddress, e.stack.OSSEndpoint, e.stack.OSSBucketDir, strings.Join(brokers, ","), time.Since(t0).Seconds())
	t0 = time.Now()
	bin, err := buildWorker(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "worker binary built in %.1fs\n", time.Since(t0).Seconds())

	// Produce (not part of any measurement).
	t0 = time.Now()
	hwm, err := produce(ctx, brokers, topic, o.partitions, o.records, o.size)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	prodWall := time.Since(t0)
	fmt.Fprintf(out, "produce: %d records in %.2fs (%.0f records/s), not measured below\n", o.records, prodWall.Seconds(), float64(o.records)/prodWall.Seconds())
	quiesce()
	fmt.Fprintf(out, "memory floor of this process before the measurements: VmRSS %.0f MiB, Go heap %.0f MiB (kfake holds the topic in memory)\n\n",
		mib(procStatusKB("VmRSS")), mib(heapBytes()))

	tuned := dumpConfig{
		Topic: topic, Brokers: brokers, Concurrency: o.concurrency,
		MaxRecords: o.maxRecords, MaxBytes: int64(o.maxBytes), PartSize: int64(o.partSize),
		FlushInterval: o.flush, HistoryLimit: o.historyLimit, Size: o.size,
	}
	defaults := dumpConfig{Topic: topic, Brokers: brokers, HistoryLimit: o.historyLimit, Size: o.size}
	if o.concurrencySet {
		defaults.Concurrency = o.concurrency
	}
	// The limit uploads objects above dumpflow's default partSize as
	// multipart uploads, as the defaults run does.
	dspec, err := e.spec(dumpConfig{Name: "limit", Topic: topic, Brokers: brokers})
	if err != nil {
		return err
	}
	lcfg := limitConfig{
		Brokers: brokers, Topic: topic, HWM: hwm, FetchPartBytes: int32(o.baselineFetch),
		Endpoint: e.stack.OSSEndpoint, Bucket: e.stack.OSSBucket, Batch: int(o.limitBatch), PartSize: int64(dspec.Sink.OSS.PartSize),
	}
	wantBytes := int64(o.records) * int64(o.size+1)
	var rounds []round
	for i := 1; i <= o.repeat; i++ {
		var r round
		lprof, bprof, dprof := o.limitProfile, o.baselineProfile, o.cpuProfile
		if i > 1 { // profile the first round only
			lprof, bprof, dprof = "", "", ""
		}
		name := func(s string) string {
			if o.repeat > 1 {
				return fmt.Sprintf("%s-%d", s, i)
			}
			return s
		}

		// limit
		quiesce()
		lcfg.Prefix = name("limit")
		r.lp = smp.begin()
		sent0, conns0 := traffic.snapshot()
		stopProf := startProfile(lprof)
		r.l, err = limit(ctx, lcfg)
		stopProf()
		smp.end(r.lp)
		sent1, conns1 := traffic.snapshot()
		r.lSent, r.lConns = sent1-sent0, conns1-conns0
		if err != nil {
			return fmt.Errorf("limit: %w", err)
		}
		if r.l.Records != int64(o.records) || r.l.Written != wantBytes {
			return fmt.Errorf("limit wrote %d records, %d bytes; want %d, %d", r.l.Records, r.l.Written, o.records, wantBytes)
		}
		c := &r.lCheck
		c.objects, c.written, c.records, c.valueBytes, err = verifyLimit(ctx, lcfg, e.stack.OSSBucketDir, o.size)
		if err != nil {
			return fmt.Errorf("limit: verify: %w", err)
		}
		if c.objects != r.l.Objects || c.written != wantBytes || c.records != int64(o.records) || c.valueBytes != r.l.Bytes {
			return fmt.Errorf("limit: the bucket holds %d objects, %d bytes, %d records, %d value bytes; want %d, %d, %d, %d",
				c.objects, c.written, c.records, c.valueBytes, r.l.Objects, wantBytes, o.records, r.l.Bytes)
		}
		syscall.Sync()

		// baseline
		quiesce()
		r.bp = smp.begin()
		sent0, conns0 = traffic.snapshot()
		stopProf = startProfile(bprof)
		bdir := filepath.Join(dir, name("baseline"))
		r.b, err = baseline(ctx, brokers, topic, hwm, bdir, int32(o.baselineFetch))
		stopProf()
		smp.end(r.bp)
		sent1, conns1 = traffic.snapshot()
		r.bSent, r.bConns = sent1-sent0, conns1-conns0
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		if r.b.Records != int64(o.records) || r.b.Written != wantBytes {
			return fmt.Errorf("baseline wrote %d records, %d bytes; want %d, %d", r.b.Records, r.b.Written, o.records, wantBytes)
		}
		// Write the files back now, so that the kernel's writeback does
		// not run during the next phase; then free the disk space.
		syscall.Sync()
		if !o.keep {
			_ = os.RemoveAll(bdir)
		}

		// dumpflow, connector defaults, then tuned
		defaults.Name, tuned.Name = name("defaults"), name("tuned")
		if r.def, err = runDumpProc(ctx, e, bin, traffic, defaults, hwm, o, dprof, wantBytes); err != nil {
			return fmt.Errorf("dumpflow (defaults): %w", err)
		}
		if r.tun, err = runDumpProc(ctx, e, bin, traffic, tuned, hwm, o, "", wantBytes); err != nil {
			return fmt.Errorf("dumpflow (tuned): %w", err)
		}
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
	report(out, o, lcfg, rounds)
	if o.diag {
		fmt.Fprintln(out)
		tuned.Name = "diag"
		if err := diagnose(ctx, out, e, tuned, hwm); err != nil {
			return fmt.Errorf("diag: %w", err)
		}
	}
	return nil
}

// runDumpProc starts a worker process (with -cpuprofile profile, if set),
// waits for it to poll, runs e.dump and checks the result is exact. The
// worker's CPU and peak memory are taken when the status query shows every
// cursor at its high watermark.
func runDumpProc(ctx context.Context, e *env, bin string, traffic *kafkaTraffic, cfg dumpConfig, hwm map[int32]int64, o options, profile string, wantBytes int64) (procDump, error) {
	var pd procDump
	var extra []string
	if profile != "" {
		extra = append(extra, "-cpuprofile", profile)
	}
	w, err := startWorkerProc(bin, e.stack.TemporalAddress, e.stack.Namespace, extra...)
	if err != nil {
		return pd, err
	}
	defer w.close()
	waitPolling(ctx, e.client, w.cmd.Process.Pid)
	quiesce()
	sent0, conns0 := traffic.snapshot()
	w.resetPeak()
	busy0, wcpu0 := machineBusy(), w.cpu()
	caught := func() {
		pd.cpu = w.cpu() - wcpu0
		pd.others = max(0, machineBusy()-busy0-pd.cpu)
		pd.peakRSS, pd.hwm = w.peak()
	}
	pd.d, err = e.dump(ctx, cfg, hwm, o.poll, caught)
	sent1, conns1 := traffic.snapshot()
	pd.sent, pd.conns = sent1-sent0, conns1-conns0
	pd.stackCPU = pd.d.CPU
	if err != nil {
		return pd, err
	}
	r := pd.d
	if r.Records != int64(o.records) || r.Written != wantBytes {
		return pd, fmt.Errorf("wrote %d records, %d bytes; want %d, %d", r.Records, r.Written, o.records, wantBytes)
	}
	var ledgerRecords int64
	for _, p := range r.Ledger.Partitions {
		ledgerRecords += p.Records
	}
	if !r.Ledger.OK || ledgerRecords != int64(o.records) {
		return pd, fmt.Errorf("ledger not exact (ok=%v, %d records in the sink): %+v", r.Ledger.OK, ledgerRecords, r.Ledger)
	}
	if r.ContentRecords != int64(o.records) || r.ContentBytes != r.Bytes {
		return pd, fmt.Errorf("objects hold %d records, %d value bytes; want %d, %d", r.ContentRecords, r.ContentBytes, o.records, r.Bytes)
	}
	syscall.Sync()
	return pd, nil
}

// waitPolling waits (up to 30s) until the worker process pid polls both the
// workflow and the activity task queue, so that its start-up is not timed.
// Temporal's default worker identity is <pid>@<host>@...
func waitPolling(ctx context.Context, c client.Client, pid int) {
	prefix := fmt.Sprintf("%d@", pid)
	polls := func(typ enumspb.TaskQueueType) bool {
		resp, err := c.DescribeTaskQueue(ctx, workflows.TaskQueue, typ)
		if err != nil {
			return false
		}
		for _, p := range resp.GetPollers() {
			if strings.HasPrefix(p.GetIdentity(), prefix) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if polls(enumspb.TASK_QUEUE_TYPE_WORKFLOW) && polls(enumspb.TASK_QUEUE_TYPE_ACTIVITY) {
			return
		}
	}
	fmt.Fprintf(os.Stderr, "bench: worker %d is not seen polling after 30s; going on\n", pid)
}

func rate(recs int64, wall time.Duration) float64 { return float64(recs) / wall.Seconds() }

func report(w io.Writer, o options, lcfg limitConfig, rounds []round) {
	dspec, tspec := rounds[0].def.d.Spec, rounds[0].tun.d.Spec
	fmt.Fprintf(w, "limit: franz-go direct consume (FetchMaxPartitionBytes %s) -> %s objects PUT with the OSS SDK (CRC-64, forbid-overwrite, path style), %d in flight, multipart above %s (%d parts in flight)\n",
		fetchDesc(o.baselineFetch), connector.ByteSize(lcfg.Batch), limitUploads, connector.ByteSize(lcfg.PartSize), limitParts)
	fmt.Fprintf(w, "baseline: franz-go direct consume -> one buffered file per partition (FetchMaxPartitionBytes %s)\n", fetchDesc(o.baselineFetch))
	for _, d := range []struct {
		name string
		spec connector.Spec
	}{{"defaults", dspec}, {"tuned", tspec}} {
		fmt.Fprintf(w, "%s: worker process; concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s, oss partSize %s, history limit %s\n",
			d.name, d.spec.Concurrency, d.spec.Batch.MaxRecords, d.spec.Batch.MaxBytes, d.spec.Batch.FlushInterval.D(), d.spec.Sink.OSS.PartSize, histLimit(o.historyLimit))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trecords\tMB\twall s\trecords/s\tMB/s\tCPU s\tCPU/wall\tstack CPU s\tothers' CPU s\tpeak RSS MiB\tpeak Go heap MiB\tVmHWM MiB\t")
	inproc := func(name string, recs, bytes int64, wall, cpu time.Duration, p *phaseStats) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t-\t%.2f\t%.0f\t%.0f\t%.0f\t\n", name, recs, float64(bytes)/1e6, wall.Seconds(),
			rate(recs, wall), float64(bytes)/1e6/wall.Seconds(), cpu.Seconds(), cpu.Seconds()/wall.Seconds(), p.Others.Seconds(),
			mib(p.PeakRSS), mib(p.PeakHeap), mib(p.HWMAtEnd))
	}
	proc := func(name string, pd procDump) {
		d := pd.d
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t-\t%.0f\t\n", name, d.Records, float64(d.Bytes)/1e6, d.Wall.Seconds(),
			rate(d.Records, d.Wall), float64(d.Bytes)/1e6/d.Wall.Seconds(), pd.cpu.Seconds(), pd.cpu.Seconds()/d.Wall.Seconds(),
			pd.stackCPU.Seconds(), pd.others.Seconds(), mib(pd.peakRSS), mib(pd.hwm))
	}
	var lRates, bRates, dRates, tRates []float64
	for i, r := range rounds {
		suffix := ""
		if len(rounds) > 1 {
			suffix = fmt.Sprintf(" #%d", i+1)
		}
		inproc("limit"+suffix, r.l.Records, r.l.Bytes, r.l.Wall, r.l.CPU, r.lp)
		inproc("baseline"+suffix, r.b.Records, r.b.Bytes, r.b.Wall, r.b.CPU, r.bp)
		proc("defaults"+suffix, r.def)
		proc("tuned"+suffix, r.tun)
		lRates = append(lRates, rate(r.l.Records, r.l.Wall))
		bRates = append(bRates, rate(r.b.Records, r.b.Wall))
		dRates = append(dRates, rate(r.def.d.Records, r.def.d.Wall))
		tRates = append(tRates, rate(r.tun.d.Records, r.tun.d.Wall))
	}
	tw.Flush()
	fmt.Fprintln(w)
	ratio := func(label string, num, den []float64, target string) {
		if len(rounds) == 1 {
			fmt.Fprintf(w, "ratio %s (records/s): %.2f  %s\n", label, num[0]/den[0], target)
			return
		}
		var per []string
		for i := range num {
			per = append(per, fmt.Sprintf("%.2f", num[i]/den[i]))
		}
		fmt.Fprintf(w, "ratio %s (records/s): %.2f of the medians (%.0f / %.0f records/s); per round %s  %s\n",
			label, median(num)/median(den), median(num), median(den), strings.Join(per, " "), target)
	}
	ratio("defaults/limit", dRates, lRates, "(target >= 0.9)")
	ratio("tuned/limit", tRates, lRates, "")
	ratio("tuned/baseline", tRates, bRates, "(the old dumpflow/baseline; its target was >= 0.8)")
	ratio("limit/baseline", lRates, bRates, "")
	fmt.Fprint(w, `MB = 10^6 bytes of record values. CPU s: the contender's own over the timed wall: this process for limit and
baseline (which includes kfake serving them and, for limit, the OSS fake storing its objects), the worker process for
defaults and tuned. stack CPU s: this process (kfake, the Temporal server, the OSS fake) during a dumpflow run.
others' CPU s: the rest of the machine meanwhile (for dumpflow, including the stack). Memory: limit and baseline are
this whole process (kfake holding the topic, the idle Temporal server, the OSS fake), sampled every 20ms, VmHWM at the
phase's end; defaults and tuned are the worker process alone, VmRSS sampled every 20ms over the timed wall, VmHWM its
lifetime peak (a fresh process per run).

`)
	for i, r := range rounds {
		fmt.Fprintf(w, "kafka #%d: kfake sent %.1f MB over %d new connections to limit (%.2fx the values), %.1f MB over %d to baseline (%.2fx), %.1f MB over %d to defaults (%.2fx), %.1f MB over %d to tuned (%.2fx)\n",
			i+1, float64(r.lSent)/1e6, r.lConns, float64(r.lSent)/float64(r.l.Bytes), float64(r.bSent)/1e6, r.bConns, float64(r.bSent)/float64(r.b.Bytes),
			float64(r.def.sent)/1e6, r.def.conns, float64(r.def.sent)/float64(r.def.d.Bytes), float64(r.tun.sent)/1e6, r.tun.conns, float64(r.tun.sent)/float64(r.tun.d.Bytes))
	}
	last := rounds[len(rounds)-1]
	historyReport(w, "defaults", last.def.d, "  (targets <= 200 events and <= 100 KB per GB)")
	historyReport(w, "tuned", last.tun.d, "")
	for i, r := range rounds {
		fmt.Fprintf(w, "verify #%d: limit: listing covers every partition from 0 to its high watermark exactly once, %d objects (%d multipart) of %.1f MiB on average; every line is the expected value (%d records, %.1f MB)\n",
			i+1, r.lCheck.objects, r.l.Multi, mib(r.lCheck.written)/float64(max(r.lCheck.objects, 1)), r.lCheck.records, float64(r.lCheck.valueBytes)/1e6)
		for _, c := range []struct {
			name string
			d    dumpResult
		}{{"defaults", r.def.d}, {"tuned", r.tun.d}} {
			var ranges int
			for _, p := range c.d.Ledger.Partitions {
				ranges += p.Ranges
			}
			fmt.Fprintf(w, "verify #%d: %s: ledger OK=%v over %d partitions, %d ranges, %d records; every object's lines are the expected values (%d records, %.1f MB); group offsets at the high watermarks\n",
				i+1, c.name, c.d.Ledger.OK, len(c.d.Ledger.Partitions), ranges, c.d.Records, c.d.ContentRecords, float64(c.d.ContentBytes)/1e6)
		}
	}
}

// historyReport prints a dumpflow run's Temporal history: runs, events
// and their bytes per GB of values, activities by type and their time.
func historyReport(w io.Writer, name string, d dumpResult, target string) {
	h := d.History
	gb := float64(d.Bytes) / 1e9
	var acts []string
	for a, n := range h.ByActivity {
		acts = append(acts, fmt.Sprintf("%s %d", a, n))
	}
	sort.Strings(acts)
	visible := "n/a"
	if h.VisibleRuns >= 0 {
		visible = fmt.Sprint(h.VisibleRuns)
	}
	writes := h.ByActivity["WritePartition"]
	fmt.Fprintf(w, "history %s: %d runs (ListWorkflow sees %s), %d events, %.1f KB, %d workflow tasks; activities: %s\n",
		name, h.Runs, visible, h.Events, float64(h.Bytes)/1e3, h.WFTasks, strings.Join(acts, ", "))
	fmt.Fprintf(w, "history %s: %.0f events and %.1f KB per GB of values%s; %.1f events per WritePartition, %d objects of %.1f MiB on average\n",
		name, float64(h.Events)/gb, float64(h.Bytes)/1e3/gb, target, float64(h.Events)/float64(max(writes, 1)), d.Objects, mib(d.Written)/float64(max(d.Objects, 1)))
	var names []string
	for a := range h.ActTime {
		names = append(names, a)
	}
	sort.Strings(names)
	var times []string
	for _, a := range names {
		if n := h.ByActivity[a]; n > 0 {
			times = append(times, fmt.Sprintf("%s %.2fs (%.0f ms each)", a, h.ActTime[a].Seconds(), h.ActTime[a].Seconds()*1000/float64(n)))
		}
	}
	fmt.Fprintf(w, "activity time %s, scheduled to completed, summed over %d parallel loops: %s\n", name, d.Spec.Concurrency, strings.Join(times, ", "))
}
