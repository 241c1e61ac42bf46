package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

var (
	scaleMode       = flag.Bool("scale", false, "measure one connector on a -scale-partitions topic instead: (a) an OSS connector dumping a -scale-records backlog, (b) a MaxCompute connector fed -scale-rate records/s for -scale-duration with the emulator's tunnel quotas on")
	scalePartitions = flag.Int("scale-partitions", 256, "-scale: topic partitions")
	scaleRecords    = flag.Int("scale-records", 512_000, "-scale: records of the backlog phase (a)")
	scaleRate       = flag.Int("scale-rate", 2000, "-scale: records per second of the steady phase (b), spread over all partitions")
	scaleDuration   = flag.Duration("scale-duration", 3*time.Minute, "-scale: how long phase (b) produces")
	scaleMCFlush    = flag.Duration("scale-mc-flush", 0, "-scale: phase (b)'s batch.flushInterval; 0: the connector default (60s for MaxCompute)")
	scaleCatchUp    = flag.Duration("scale-catchup", 0, "-scale: how long phase (b) waits for the connector to catch up after production stops; 0: 4 flush intervals")
	scalePhases     = flag.String("scale-phases", "ab", "-scale: the phases to run: a (OSS backlog), b (MaxCompute steady stream with quotas), or ab")
)

// runScale is -scale: one connector at its defaults on a topic with many
// partitions, in a worker process of its own.
func runScale(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	parts := *scalePartitions
	for k, v := range map[string]string{"ACCESS_KEY_ID": localstack.LocalAccessKeyID, "ACCESS_KEY_SECRET": localstack.LocalAccessKeySecret} {
		if err := os.Setenv(connector.CredentialsEnvPrefix(mcCredName)+k, v); err != nil { // before the worker starts
			return err
		}
	}
	// The MaxCompute emulator runs here, not in the local stack (whose
	// emulator takes no options): with the tunnel quotas at the service's
	// values, behind a handler that counts the tunnel's requests.
	tc := &tunnelCounter{dir: filepath.Join(dir, "odpsemu"), tables: map[string]*tableCounts{}}
	if err := tc.open(true); err != nil {
		return err
	}
	defer tc.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: tc}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	emuAddr := "http://" + ln.Addr().String()

	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	st, err := localstack.Start(ctx, localstack.Options{
		DataDir: filepath.Join(dir, "stack"), TemporalPort: 0, UIPort: -1, KafkaBrokers: brokers, OSSPort: 0,
		MaxComputeEndpoint: emuAddr + "/api", MaxComputeTunnelEndpoint: emuAddr, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer st.Close()
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		return err
	}
	defer c.Close()
	pe := &procEnv{brokers: brokers, stack: st, client: c, env: &env{stack: st, client: c}}
	bin, err := buildWorker(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale: %d partitions, %d B records; one connector at its defaults in a worker process per phase; MaxCompute emulator with the tunnel quotas on (per table: 500 upload sessions / 5m, 500 blocks / 5m, 75 commits / 15s, 32 concurrent commits, 200 download sessions / 5m)\n",
		parts, o.size)

	var failures []error
	if strings.Contains(*scalePhases, "a") {
		if err := scaleBacklog(ctx, out, pe, bin, o, parts); err != nil {
			fmt.Fprintf(out, "scale a: FAIL: %v\n", err)
			failures = append(failures, fmt.Errorf("phase a: %w", err))
		}
	}
	if strings.Contains(*scalePhases, "b") {
		if err := scaleStream(ctx, out, pe, bin, tc, o, parts); err != nil {
			fmt.Fprintf(out, "scale b: FAIL: %v\n", err)
			failures = append(failures, fmt.Errorf("phase b: %w", err))
		}
	}
	return errors.Join(failures...)
}

// startScaleWorker starts a worker process and waits until it polls.
func startScaleWorker(ctx context.Context, pe *procEnv, bin string) (*workerProc, error) {
	w, err := startWorkerProc(bin, pe.stack.TemporalAddress, pe.stack.Namespace)
	if err != nil {
		return nil, err
	}
	waitPolling(ctx, pe.client, w.cmd.Process.Pid)
	quiesce()
	w.resetPeak()
	return w, nil
}

// scaleBacklog is phase (a): a backlog dumped by an OSS connector.
func scaleBacklog(ctx context.Context, out io.Writer, pe *procEnv, bin string, o options, parts int) error {
	const name, aTopic = "scale-oss", "scale-a"
	n := *scaleRecords
	t0 := time.Now()
	hwm, err := produce(ctx, pe.brokers, aTopic, parts, n, o.size)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fmt.Fprintf(out, "scale a: produced %d records (%.1f MB) into %d partitions in %.1fs (not measured)\n", n, float64(n)*float64(o.size)/1e6, parts, time.Since(t0).Seconds())
	spec, err := pe.env.spec(dumpConfig{Name: name, Topic: aTopic, Brokers: pe.brokers})
	if err != nil {
		return err
	}
	w, err := startScaleWorker(ctx, pe, bin)
	if err != nil {
		return err
	}
	defer w.close()
	fmt.Fprintf(out, "scale a: OSS connector at its defaults: concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s, partSize %s\n",
		spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, spec.Batch.FlushInterval.D(), spec.Sink.OSS.PartSize)
	cpu0, start := w.cpu(), time.Now()
	run, err := pe.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, workflows.NewInput(spec))
	if err != nil {
		return err
	}
	status, err := pe.waitCaughtUp(ctx, name, hwm, 30*time.Minute)
	wall, cpu := time.Since(start), w.cpu()-cpu0
	peak, _ := w.peak()
	if err != nil {
		return err
	}
	if err := pe.env.waitCommitted(ctx, spec, hwm); err != nil {
		fmt.Fprintf(out, "scale a: %v (history counted anyway)\n", err)
	}
	h, err := connectorHistory(ctx, pe.client, spec, run.GetRunID())
	if err != nil {
		return err
	}
	terminateConnector(ctx, pe.client, spec, h.shards)
	ranges, records, err := pe.verifyExact(ctx, spec, status, hwm, o.size)
	if err != nil {
		return fmt.Errorf("exactly-once: %w", err)
	}
	var objects int64
	for _, p := range status.Partitions {
		objects += p.Objects
	}
	mb := float64(records) * float64(o.size) / 1e6
	fmt.Fprintf(out, "scale a: caught up in %.1fs: %.0f records/s, %.2f MB/s; worker CPU %.1fs (%.2f of a core), peak RSS %.0f MiB; %d objects\n",
		wall.Seconds(), float64(records)/wall.Seconds(), mb/wall.Seconds(), cpu.Seconds(), cpu.Seconds()/wall.Seconds(), mib(peak), objects)
	h.report(out, "scale a", mb/1e3)
	fmt.Fprintf(out, "scale a: verify: ledger exact over %d partitions (%d ranges), every object's lines the expected values (%d records)\n", len(hwm), ranges, records)
	fmt.Fprintf(out, "scale a: SUMMARY %d partitions, %d records: %.1fs, %.0f records/s, %.2f MB/s, CPU %.1fs, RSS %.0f MiB, %d runs, %d events (%.0f/GB), busiest run %.1f events/s, exactly-once OK\n",
		parts, records, wall.Seconds(), float64(records)/wall.Seconds(), mb/wall.Seconds(), cpu.Seconds(), mib(peak), len(h.runs), h.events, float64(h.events)/(mb/1e3), h.busiest().rate())
	return nil
}

// scaleStream is phase (b): a steady stream into a MaxCompute connector
// with the emulator's quotas on.
func scaleStream(ctx context.Context, out io.Writer, pe *procEnv, bin string, tc *tunnelCounter, o options, parts int) error {
	name := "scale-mc"
	if *scaleMCFlush > 0 {
		name = fmt.Sprintf("scale-mc-%ds", int(scaleMCFlush.Seconds()))
	}
	bTopic := name
	st := pe.stack
	spec := &connector.Spec{
		Name:  name,
		Kafka: connector.KafkaSpec{Brokers: pe.brokers, Topic: bTopic},
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: st.MaxComputeEndpoint, TunnelEndpoint: st.MaxComputeTunnelEndpoint, Project: st.MaxComputeProject,
			Table: strings.ReplaceAll(name, "-", "_"), CreateTable: true, Credentials: mcCredName,
		}},
	}
	spec.Default()
	if *scaleMCFlush > 0 {
		spec.Batch.FlushInterval = connector.Duration(*scaleMCFlush)
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	flush := spec.Batch.FlushInterval.D()
	catchUp := *scaleCatchUp
	if catchUp <= 0 {
		catchUp = 4 * flush
	}
	w, err := startScaleWorker(ctx, pe, bin)
	if err != nil {
		return err
	}
	stopWorker := sync.OnceFunc(w.close)
	defer stopWorker()
	need := float64(parts) * (5 * time.Minute).Seconds() / flush.Seconds()
	shards := spec.Shards(parts)
	loops := shards * ((spec.Concurrency + shards - 1) / shards)
	fmt.Fprintf(out, "scale b: MaxCompute connector: concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s; %d records/s x %d B for %s; a write per partition per flush would need %.0f upload sessions per 5m on the table (quota 500); a group batch per loop per flush (%d shards, %d loops) needs about %.0f\n",
		spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, flush, *scaleRate, o.size, *scaleDuration, need, shards, loops, float64(loops)*(5*time.Minute).Seconds()/flush.Seconds())
	runID, err := pe.startConnector(ctx, spec, parts)
	if err != nil {
		return err
	}
	cpu0, start := w.cpu(), time.Now()
	tc.reset()
	prod, err := produceAsync(ctx, pe.brokers, bTopic, parts, *scaleRate, o.size, *scaleDuration)()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale b: produced %d records in %.1fs (%.0f records/s); waiting up to %s for the connector to catch up\n", prod.Records, prod.Wall.Seconds(), float64(prod.Records)/prod.Wall.Seconds(), catchUp)
	status, cerr := pe.waitCaughtUp(ctx, name, prod.HWM, catchUp)
	wall, cpu := time.Since(start), w.cpu()-cpu0
	peak, _ := w.peak()
	caught := cerr == nil
	if !caught {
		if s, err := pe.env.status(ctx, name); err == nil {
			status = s
		}
	}
	var behind, committed, errorRecords, deadLetters int64
	stopped, withErr := 0, 0
	for _, p := range status.Partitions {
		behind += max(0, prod.HWM[p.Partition]-p.Next)
		committed += p.Next - p.Start
		errorRecords += p.ErrorRecords
		deadLetters += p.DeadLetters
		if p.Stopped {
			stopped++
		}
		if p.LastError != "" {
			withErr++
		}
	}
	h, err := connectorHistory(ctx, pe.client, spec, runID)
	if err != nil {
		return err
	}
	snap := tc.snapshot()
	cursors := map[int32]verify.Cursor{}
	var lastErrs []string
	for _, p := range status.Partitions {
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
		if p.LastError != "" && len(lastErrs) < 3 {
			lastErrs = append(lastErrs, fmt.Sprintf("partition %d: %s", p.Partition, p.LastError))
		}
	}
	mb := float64(prod.Records) * float64(o.size) / 1e6
	if caught {
		fmt.Fprintf(out, "scale b: caught up %.1fs after production stopped (%.1fs from the first record)\n", wall.Seconds()-prod.Wall.Seconds(), wall.Seconds())
	} else {
		fmt.Fprintf(out, "scale b: NOT caught up %s after production stopped: %d records behind the high watermarks, %d committed\n", catchUp, behind, committed)
	}
	fmt.Fprintf(out, "scale b: status: %d partitions with an error, %d stopped, %d records routed to the error-data topic, %d dead letters\n", withErr, stopped, errorRecords, deadLetters)
	if len(lastErrs) > 0 {
		fmt.Fprintf(out, "scale b: partition errors in the status (the first %d): %s\n", len(lastErrs), strings.Join(lastErrs, "; "))
	}
	fmt.Fprintf(out, "scale b: worker CPU %.1fs over %.0fs (%.2f of a core), peak RSS %.0f MiB\n", cpu.Seconds(), wall.Seconds(), cpu.Seconds()/wall.Seconds(), mib(peak))
	snap.report(out, "scale b", wall)
	h.report(out, "scale b", mb/1e3)

	// Verify with the cursors of the status (a range written past them,
	// its offset commit pending, is "ahead", not an error), once the
	// connector and its worker are stopped, against the emulator reopened
	// on the same state without quotas: verify reads the ledger with a
	// download session per partition, more than the quota allows.
	terminateConnector(ctx, pe.client, spec, h.shards)
	stopWorker()
	if err := tc.open(false); err != nil {
		return err
	}
	rep, err := verify.Run(ctx, spec, cursors)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var rows, dups, ahead, routed int64
	ranges, routedRanges := 0, 0
	for _, p := range rep.Partitions {
		rows += p.Records
		dups += p.Duplicates
		ranges += p.Ranges
		for _, r := range p.Ahead {
			ahead += r.End - r.First
		}
		for _, r := range p.Routed {
			routed += r.End - r.First
			routedRanges++
		}
	}
	// Exactly-once is the ledger's verdict: no gap, no overlap, no
	// duplicate row; a range routed to the error-data topic is accounted
	// for. Whether every record reached the table is reported apart (a
	// quota can route ranges away).
	exact := rep.OK && dups == 0
	complete := caught && rows == int64(prod.Records)
	fmt.Fprintf(out, "scale b: verify: ledger OK=%v over %d partitions, %d ranges; table rows %d, duplicates %d; %d records in %d ranges routed to the error-data topic; committed by the cursors %d, ahead of them %d (rows + routed = %d); produced %d; rows == records: %v\n",
		rep.OK, len(rep.Partitions), ranges, rows, dups, routed, routedRanges, committed, ahead, rows+routed, prod.Records, complete)
	if len(rep.Notes) > 0 {
		fmt.Fprintf(out, "scale b: verify notes: %s\n", strings.Join(rep.Notes, "; "))
	}
	hit := snap.refused() > 0
	fmt.Fprintf(out, "scale b: SUMMARY %d partitions, %d records/s for %s, flush %s: quotas hit %v (%d FlowExceeded answers), caught up %v, rows %d of %d produced (%d routed to the error-data topic), exactly-once %v, %d runs, %d events (%.0f/GB), busiest run %.1f events/s\n",
		parts, *scaleRate, *scaleDuration, flush, hit, snap.refused(), caught, rows, prod.Records, routed, exact, len(h.runs), h.events, float64(h.events)/(mb/1e3), h.busiest().rate())
	if !exact {
		return fmt.Errorf("exactly-once: ledger OK=%v, %d rows, %d duplicates, %d committed + %d ahead, %d routed, %d produced: %+v", rep.OK, rows, dups, committed, ahead, routed, prod.Records, rep)
	}
	return nil
}

// runStats is one workflow run's history.
type runStats struct {
	events      int
	bytes       int64
	first, last time.Time
}

func (r runStats) dur() time.Duration { return r.last.Sub(r.first) }

func (r runStats) rate() float64 {
	if r.dur() <= 0 {
		return 0
	}
	return float64(r.events) / r.dur().Seconds()
}

// scaleHist is a connector's history over all its runs.
type scaleHist struct {
	runs   []runStats
	events int
	bytes  int64
	acts   map[string]int // activities scheduled, by type
	// retries are activity attempts past the first, by type; flowRetries
	// those whose last failure was FlowExceeded.
	retries     map[string]int
	flowRetries int
	// failed are activities that failed or timed out for good, by type;
	// flowFailed those with FlowExceeded.
	failed     map[string]int
	flowFailed int
	// shards are the shard workflows of a sharded connector (their runs
	// are among runs).
	shards []string
}

// connectorHistory is scaleHistory over connector spec's workflow from
// firstRun and, when it is sharded, over every run of each shard workflow.
func connectorHistory(ctx context.Context, c client.Client, spec *connector.Spec, firstRun string) (scaleHist, error) {
	h, err := scaleHistory(ctx, c, spec.WorkflowID(), firstRun)
	if err != nil {
		return h, err
	}
	v, err := c.QueryWorkflow(ctx, spec.WorkflowID(), "", workflows.QueryStatus)
	if err != nil {
		return h, err
	}
	var root workflows.Status
	if err := v.Get(&root); err != nil {
		return h, err
	}
	for _, id := range root.Shards {
		first, err := firstRunOf(ctx, c, id)
		if err != nil {
			return h, err
		}
		sh, err := scaleHistory(ctx, c, id, first)
		if err != nil {
			return h, err
		}
		h.runs = append(h.runs, sh.runs...)
		h.events += sh.events
		h.bytes += sh.bytes
		for k, n := range sh.acts {
			h.acts[k] += n
		}
		for k, n := range sh.retries {
			h.retries[k] += n
		}
		for k, n := range sh.failed {
			h.failed[k] += n
		}
		h.flowRetries += sh.flowRetries
		h.flowFailed += sh.flowFailed
		h.shards = append(h.shards, id)
	}
	return h, nil
}

// firstRunOf is the first run of workflow id's continue-as-new chain.
func firstRunOf(ctx context.Context, c client.Client, id string) (string, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", err
	}
	run := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	for {
		it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		ev, err := it.Next()
		if err != nil {
			return "", fmt.Errorf("history of %s/%s: %w", id, run, err)
		}
		prev := ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		if prev == "" {
			return run, nil
		}
		run = prev
	}
}

// terminateConnector ends a benchmark's connector: its workflow and its
// shard workflows, which a terminated parent leaves running.
func terminateConnector(ctx context.Context, c client.Client, spec *connector.Spec, shards []string) {
	for _, id := range append([]string{spec.WorkflowID()}, shards...) {
		_ = c.TerminateWorkflow(ctx, id, "", "benchmark done")
	}
}

// busiest is the run with the most events per second among those that
// lasted at least 5s (all runs if none did).
func (h scaleHist) busiest() runStats {
	var b runStats
	for _, long := range []bool{true, false} {
		for _, r := range h.runs {
			if (!long || r.dur() >= 5*time.Second) && r.rate() > b.rate() {
				b = r
			}
		}
		if b.events > 0 {
			break
		}
	}
	return b
}

func scaleHistory(ctx context.Context, c client.Client, id, firstRun string) (scaleHist, error) {
	h := scaleHist{acts: map[string]int{}, retries: map[string]int{}, failed: map[string]int{}}
	flow := func(msg string) bool { return strings.Contains(msg, "FlowExceeded") }
	for run := firstRun; run != ""; {
		next := ""
		var rs runStats
		sched := map[int64]string{}
		it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return h, fmt.Errorf("history of %s/%s: %w", id, run, err)
			}
			at := ev.GetEventTime().AsTime()
			if rs.events == 0 {
				rs.first = at
			}
			rs.last = at
			rs.events++
			rs.bytes += int64(proto.Size(ev))
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
				h.acts[name]++
				sched[ev.GetEventId()] = name
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				a := ev.GetActivityTaskStartedEventAttributes()
				if n := int(a.GetAttempt()); n > 1 {
					h.retries[sched[a.GetScheduledEventId()]] += n - 1
					if flow(a.GetLastFailure().String()) {
						h.flowRetries += n - 1
					}
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
				a := ev.GetActivityTaskFailedEventAttributes()
				h.failed[sched[a.GetScheduledEventId()]]++
				if flow(a.GetFailure().String()) {
					h.flowFailed++
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
				a := ev.GetActivityTaskTimedOutEventAttributes()
				h.failed[sched[a.GetScheduledEventId()]]++
				if flow(a.GetFailure().String()) {
					h.flowFailed++
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		h.runs = append(h.runs, rs)
		h.events += rs.events
		h.bytes += rs.bytes
		run = next
	}
	return h, nil
}

func (h scaleHist) report(out io.Writer, label string, gb float64) {
	counts := func(m map[string]int) string {
		var xs []string
		for k, v := range m {
			xs = append(xs, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(xs)
		if len(xs) == 0 {
			return "none"
		}
		return strings.Join(xs, ", ")
	}
	first, last := h.runs[0].first, h.runs[0].last
	for _, r := range h.runs {
		if r.first.Before(first) {
			first = r.first
		}
		if r.last.After(last) {
			last = r.last
		}
	}
	span := last.Sub(first)
	b := h.busiest()
	var durs []string
	for _, r := range h.runs {
		durs = append(durs, fmt.Sprintf("%.0fs/%d", r.dur().Seconds(), r.events))
	}
	if len(h.shards) > 0 {
		fmt.Fprintf(out, "%s: history: the connector's workflow and %d shard workflows (%s .. %s)\n", label, len(h.shards), h.shards[0], h.shards[len(h.shards)-1])
	}
	fmt.Fprintf(out, "%s: history: %d runs over %.0fs, %d events, %.1f KB; %.0f events and %.1f KB per GB of values\n",
		label, len(h.runs), span.Seconds(), h.events, float64(h.bytes)/1e3, float64(h.events)/gb, float64(h.bytes)/1e3/gb)
	fmt.Fprintf(out, "%s: history: busiest run %d events in %.1fs = %.1f events/s (%.1f KB/s); runs (duration/events): %s\n",
		label, b.events, b.dur().Seconds(), b.rate(), float64(b.bytes)/1e3/max(b.dur().Seconds(), 1e-9), strings.Join(durs, " "))
	fmt.Fprintf(out, "%s: activities scheduled: %s; attempts past the first: %s (%d after FlowExceeded); failed or timed out: %s (%d FlowExceeded)\n",
		label, counts(h.acts), counts(h.retries), h.flowRetries, counts(h.failed), h.flowFailed)
}

// tunnelCounter counts the MaxCompute tunnel's requests that have a quota
// (upload sessions, blocks, commits, download sessions) per table and
// their answers.
type tunnelCounter struct {
	dir string // the emulator's

	mu     sync.Mutex
	emu    *odpsemu.Server
	tables map[string]*tableCounts
}

// open (re)opens the emulator on dir, with the service's quotas or none;
// the emulator open before is closed (saving its state) first.
func (tc *tunnelCounter) open(quotas bool) error {
	var q *odpsemu.QuotaOptions
	if quotas {
		q = &odpsemu.QuotaOptions{}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.emu != nil {
		if err := tc.emu.Close(); err != nil {
			return err
		}
	}
	emu, err := odpsemu.New(odpsemu.Options{
		Dir: tc.dir, Projects: []string{localstack.DefaultMaxComputeProject},
		AccessKeyID: localstack.LocalAccessKeyID, AccessKeySecret: localstack.LocalAccessKeySecret,
		Quotas: q,
	})
	if err != nil {
		return err
	}
	tc.emu = emu
	return nil
}

func (tc *tunnelCounter) close() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	_ = tc.emu.Close()
}

func (tc *tunnelCounter) handler() http.Handler {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.emu
}

type tunnelOp int

const (
	opCreate tunnelOp = iota
	opBlock
	opCommit
	opDownload
	numTunnelOps
)

var tunnelOpNames = [numTunnelOps]string{"upload sessions created", "blocks written", "commits", "download sessions created"}

// quotaWindows are the service's quota windows and limits, by op.
var quotaWindows = [numTunnelOps]struct {
	window time.Duration
	limit  int
}{{5 * time.Minute, 500}, {5 * time.Minute, 500}, {15 * time.Second, 75}, {5 * time.Minute, 200}}

type tableCounts struct {
	ok      [numTunnelOps][]time.Time // answered 2xx
	refused [numTunnelOps]int         // 429 FlowExceeded
	other   [numTunnelOps]int         // other errors
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (tc *tunnelCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, table := tunnelOpOf(r)
	if op < 0 {
		tc.handler().ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	tc.handler().ServeHTTP(sw, r)
	now := time.Now()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	t := tc.tables[table]
	if t == nil {
		t = &tableCounts{}
		tc.tables[table] = t
	}
	switch {
	case sw.status == 0 || sw.status < 300:
		t.ok[op] = append(t.ok[op], now)
	case sw.status == http.StatusTooManyRequests:
		t.refused[op]++
	default:
		t.other[op]++
	}
}

// tunnelOpOf classifies a tunnel upload request (as odpsemu's classify
// does) and names its table; op is -1 for any other request.
func tunnelOpOf(r *http.Request) (tunnelOp, string) {
	if strings.HasPrefix(r.URL.Path, "/api") {
		return -1, ""
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var table string
	switch {
	case len(segs) == 4 && segs[0] == "projects" && segs[2] == "tables":
		table = segs[1] + "." + strings.ToLower(segs[3])
	case len(segs) == 6 && segs[0] == "projects" && segs[4] == "tables":
		table = segs[1] + "." + strings.ToLower(segs[5])
	default:
		return -1, ""
	}
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		return opCreate, table
	case r.Method == http.MethodPut && q.Has("uploadid"):
		return opBlock, table
	case r.Method == http.MethodPost && q.Has("uploadid"):
		return opCommit, table
	case r.Method == http.MethodPost && q.Has("downloads"):
		return opDownload, table
	}
	return -1, ""
}

func (tc *tunnelCounter) reset() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.tables = map[string]*tableCounts{}
}

type tunnelSnap map[string]tableCounts

func (tc *tunnelCounter) snapshot() tunnelSnap {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	s := tunnelSnap{}
	for k, t := range tc.tables {
		c := *t
		for op := range c.ok {
			c.ok[op] = append([]time.Time(nil), t.ok[op]...)
		}
		s[k] = c
	}
	return s
}

func (s tunnelSnap) refused() int {
	n := 0
	for _, t := range s {
		for _, r := range t.refused {
			n += r
		}
	}
	return n
}

// maxInWindow is the most timestamps (sorted) within any window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, i := 0, 0
	for j := range ts {
		for ts[j].Sub(ts[i]) >= w {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

// report prints each table's counts; span is the phase's length, for the
// rate per quota window.
func (s tunnelSnap) report(out io.Writer, label string, span time.Duration) {
	tables := make([]string, 0, len(s))
	for k := range s {
		tables = append(tables, k)
	}
	sort.Strings(tables)
	for _, k := range tables {
		t := s[k]
		var parts []string
		for op := range numTunnelOps {
			q := quotaWindows[op]
			ts := t.ok[op]
			peak := maxInWindow(ts, q.window)
			avg := float64(len(ts)) * q.window.Seconds() / span.Seconds()
			parts = append(parts, fmt.Sprintf("%s %d (at most %d in any %s, quota %d; a rate of %.0f per %s over the phase), %d refused FlowExceeded, %d other errors",
				tunnelOpNames[op], len(ts), peak, q.window, q.limit, avg, q.window, t.refused[op], t.other[op]))
		}
		fmt.Fprintf(out, "%s: tunnel %s: %s\n", label, k, strings.Join(parts, "; "))
	}
}
