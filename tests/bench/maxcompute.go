package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// mcCredName names the MaxCompute emulator's access key pair
// (localstack.LocalAccessKeyID/Secret) for the connector, the worker and
// the limit process.
const mcCredName = "benchmc"

// mcLimitChild, set, makes this process the limit contender of -maxcompute:
// it runs the JSON mcLimitConfig it holds, prints a mcLimitResult as JSON on
// stdout and exits. The parent starts it so that the limit's CPU and
// memory are its own, as the dumpflow worker's are.
var mcLimitChild = flag.String("mc-limit-child", "", "internal: run the -maxcompute limit contender with this JSON config")

// mcLimitConfig is the limit contender's job.
type mcLimitConfig struct {
	Brokers        []string
	Topic          string
	HWM            map[int32]int64
	Endpoint       string // REST, …/api
	TunnelEndpoint string
	Project, Table string
	BlockSize      int64
	FetchPartBytes int32
	CPUProfile     string
}

// mcLimitResult is what the limit contender did, timed from its first
// request (client creation, CREATE TABLE) to the last session's commit.
type mcLimitResult struct {
	Wall, CPU time.Duration
	Records   int64
	Bytes     int64 // record value bytes
	Sessions  int
	Blocks    int
	HWM       int64 // the process's VmHWM at the end, bytes
	// StartupCPU is the process's CPU before the timed part.
	StartupCPU time.Duration
}

// mcPhase is one contender's measurement in one round.
type mcPhase struct {
	Records, Bytes int64
	Wall, CPU      time.Duration
	PeakRSS        int64         // the contender process's, bytes
	ServerCPU      time.Duration // this process (kfake, the emulator, Temporal) over the wall
	OthersCPU      time.Duration // the rest of the machine meanwhile (other processes)
	Sessions       int           // upload sessions committed
	Blocks         int           // blocks they committed
}

// mcRound is one limit and one dumpflow run.
type mcRound struct {
	limit, dump mcPhase
	spec        *connector.Spec
	status      workflows.Status
	hist        historyStats
	histBytes   int64
	ledger      verify.Report
	limitRows   int64
}

// runMaxCompute is -maxcompute: the same topic dumped into MaxCompute (the
// local stack's emulator) by a raw franz-go + ODPS SDK program and by a
// dumpflow worker process at the connector's defaults, rounds alternating.
func runMaxCompute(o options, out io.Writer, logger *slog.Logger, dir string) error {
	for k, v := range map[string]string{"ACCESS_KEY_ID": localstack.LocalAccessKeyID, "ACCESS_KEY_SECRET": localstack.LocalAccessKeySecret} {
		if err := os.Setenv(connector.CredentialsEnvPrefix(mcCredName)+k, v); err != nil {
			return err
		}
	}
	if *mcLimitChild != "" {
		return limitChild(*mcLimitChild)
	}
	ctx := context.Background()
	fmt.Fprintf(out, "dumpflow maxcompute bench: %d records x %d B over %d partitions (%.1f MB of values); %d CPUs\n",
		o.records, o.size, o.partitions, float64(o.records)*float64(o.size)/1e6, runtime.NumCPU())
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	t0 := time.Now()
	st, err := localstack.Start(ctx, localstack.Options{DataDir: filepath.Join(dir, "stack"), TemporalPort: 0, UIPort: -1, KafkaBrokers: brokers, OSSPort: 0, MaxComputePort: 0, Logger: logger})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer func() { _ = st.Close() }()
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "stack: Temporal %s, MaxCompute emulator %s (tunnel %s, dir %s), kfake %s; started in %.2fs\n",
		st.TemporalAddress, st.MaxComputeEndpoint, st.MaxComputeTunnelEndpoint, st.MaxComputeDir, strings.Join(brokers, ","), time.Since(t0).Seconds())

	t0 = time.Now()
	hwm, err := produce(ctx, brokers, topic, o.partitions, o.records, o.size)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fmt.Fprintf(out, "produce: %d records in %.2fs, not measured\n", o.records, time.Since(t0).Seconds())
	bin, err := buildWorker(dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e := &env{stack: st, client: c}
	var rounds []mcRound
	for i := 1; i <= o.repeat; i++ {
		var r mcRound
		lprof, dprof := o.baselineProfile, o.cpuProfile
		if i > 1 { // profile the first round only
			lprof, dprof = "", ""
		}
		quiesce()
		cfg := mcLimitConfig{Brokers: brokers, Topic: topic, HWM: hwm, Endpoint: st.MaxComputeEndpoint, TunnelEndpoint: st.MaxComputeTunnelEndpoint,
			Project: st.MaxComputeProject, Table: fmt.Sprintf("bench_limit_%d", i), BlockSize: maxcompute.DefaultBlockSize,
			FetchPartBytes: int32(o.baselineFetch), CPUProfile: lprof}
		if r.limit, err = runLimit(self, cfg); err != nil {
			return fmt.Errorf("limit #%d: %w", i, err)
		}
		lspec := mcSpec(st, brokers, "bench-limit", cfg.Table)
		led, err := maxcompute.ReadLedger(ctx, lspec, mcCreds())
		if err != nil {
			return fmt.Errorf("limit #%d: read table: %w", i, err)
		}
		r.limitRows = led.Rows
		if led.Rows != int64(o.records) || led.Distinct() != int64(o.records) || r.limit.Records != int64(o.records) {
			return fmt.Errorf("limit #%d: table %s holds %d rows, %d distinct offsets; the limit wrote %d; want %d", i, cfg.Table, led.Rows, led.Distinct(), r.limit.Records, o.records)
		}
		syscall.Sync()

		quiesce()
		var extra []string
		if dprof != "" {
			extra = []string{"-cpuprofile", dprof}
		}
		spec := mcSpec(st, brokers, fmt.Sprintf("bench-mc-%d", i), fmt.Sprintf("bench_dumpflow_%d", i))
		if err := dumpMaxCompute(ctx, e, bin, spec, hwm, o, extra, &r); err != nil {
			return fmt.Errorf("dumpflow #%d: %w", i, err)
		}
		syscall.Sync()
		// Free the disk: both tables hold the whole topic.
		for _, t := range []string{cfg.Table, spec.Sink.MaxCompute.Table} {
			if err := dropTable(st, t); err != nil {
				return fmt.Errorf("drop %s: %w", t, err)
			}
		}
		rounds = append(rounds, r)
	}
	mcReport(out, o, rounds)
	return nil
}

// mcSpec is a MaxCompute connector at the connector's defaults (no batch
// fields, default concurrency), writing table in the emulator.
func mcSpec(st *localstack.Stack, brokers []string, name, table string) *connector.Spec {
	spec := &connector.Spec{
		Name:  name,
		Kafka: connector.KafkaSpec{Brokers: brokers, Topic: topic},
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: st.MaxComputeEndpoint, TunnelEndpoint: st.MaxComputeTunnelEndpoint, Project: st.MaxComputeProject,
			Table: table, CreateTable: true, Credentials: mcCredName,
		}},
	}
	spec.Default()
	return spec
}

func mcCreds() connector.Credentials {
	return connector.Credentials{AccessKeyID: localstack.LocalAccessKeyID, AccessKeySecret: localstack.LocalAccessKeySecret}
}

func dropTable(st *localstack.Stack, table string) error {
	o := odps.NewOdps(account.NewAliyunAccount(localstack.LocalAccessKeyID, localstack.LocalAccessKeySecret), st.MaxComputeEndpoint)
	o.SetDefaultProjectName(st.MaxComputeProject)
	ins, err := o.ExecSQl("DROP TABLE IF EXISTS "+table+";", map[string]string{"odps.namespace.schema": "false"})
	if err != nil {
		return err
	}
	return ins.WaitForSuccess()
}

// runLimit runs the limit contender as a child process (this binary with
// -mc-limit-child) and samples its resident memory.
func runLimit(self string, cfg mcLimitConfig) (mcPhase, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return mcPhase{}, err
	}
	var stdout bytes.Buffer
	cmd := exec.Command(self, "-maxcompute", "-mc-limit-child", string(js))
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return mcPhase{}, err
	}
	w := &workerProc{cmd: cmd, done: make(chan struct{}), stop: make(chan struct{})}
	var werr error
	go func() { werr = cmd.Wait(); close(w.done) }()
	go w.sample()
	srv0, busy0 := cpuTime(), machineBusy()
	<-w.done
	srv, busy := cpuTime()-srv0, machineBusy()-busy0
	if werr != nil {
		return mcPhase{}, fmt.Errorf("limit process: %w", werr)
	}
	var res mcLimitResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return mcPhase{}, fmt.Errorf("limit process output %q: %w", stdout.String(), err)
	}
	w.mu.Lock()
	peak := max(w.peakRSS, res.HWM)
	w.mu.Unlock()
	// The server CPU is over the child's whole life, a little longer than
	// its timed wall.
	return mcPhase{Records: res.Records, Bytes: res.Bytes, Wall: res.Wall, CPU: res.CPU, PeakRSS: peak, ServerCPU: srv, Sessions: res.Sessions, Blocks: res.Blocks,
		OthersCPU: max(0, busy-srv-res.CPU-res.StartupCPU)}, nil
}

// limitChild is the limit contender's process.
func limitChild(js string) error {
	var cfg mcLimitConfig
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		return err
	}
	stop := startProfile(cfg.CPUProfile)
	res, err := mcLimit(context.Background(), cfg)
	stop()
	if err != nil {
		return err
	}
	res.HWM = procStatusKB("VmHWM")
	return json.NewEncoder(os.Stdout).Encode(res)
}

// limit is the yardstick: one plain franz-go client consuming every
// partition directly (no group) from 0 to its high watermark, and per Kafka
// partition a goroutine writing its records through the unmodified ODPS SDK
// into one upload session per destination partition (the record's hour in
// GMT+08:00, as the sink's defaults choose it; one session per Kafka
// partition unless its records span an hour), in the default table's rows
// (topic, partition, offset, key, value) built as the sink builds them, in
// blocks closed when their row bytes (the sink's measure) reach
// cfg.BlockSize, then committing each session with its block ids. The
// tunnel client is set up as the sink's (no compression, the same
// timeouts). The time covers client creation and CREATE TABLE to the last
// commit.
func mcLimit(ctx context.Context, cfg mcLimitConfig) (mcLimitResult, error) {
	start, cpu0 := time.Now(), cpuTime()
	res := mcLimitResult{StartupCPU: cpu0}
	o := odps.NewOdps(account.NewAliyunAccount(localstack.LocalAccessKeyID, localstack.LocalAccessKeySecret), cfg.Endpoint)
	o.SetDefaultProjectName(cfg.Project)
	ins, err := o.ExecSQl(fmt.Sprintf(maxcompute.DefaultDDL, cfg.Table)+";", map[string]string{"odps.namespace.schema": "false"})
	if err != nil {
		return mcLimitResult{}, fmt.Errorf("create table: %w", err)
	}
	if err := ins.WaitForSuccess(); err != nil {
		return mcLimitResult{}, fmt.Errorf("create table: %w", err)
	}
	tt := tunnel.NewTunnel(o, cfg.TunnelEndpoint)
	tt.SetHttpTimeout(30 * time.Minute)
	tt.SetTcpConnectionTimeout(30 * time.Second)
	loc, err := connector.ParseTimeZone("GMT+08:00")
	if err != nil {
		return mcLimitResult{}, err
	}

	offsets := map[int32]kgo.Offset{}
	writers := map[int32]*limitWriter{}
	var wg sync.WaitGroup
	for p, end := range cfg.HWM {
		offsets[p] = kgo.NewOffset().At(0)
		lw := &limitWriter{t: tt, cfg: &cfg, loc: loc, in: make(chan []*kgo.Record, 2), end: end, sessions: map[string]*limitSession{}}
		writers[p] = lw
		wg.Add(1)
		go func() { defer wg.Done(); lw.run() }()
	}
	closeAll := sync.OnceFunc(func() {
		for _, lw := range writers {
			close(lw.in)
		}
		wg.Wait()
	})
	defer closeAll()
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets})}
	if cfg.FetchPartBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(cfg.FetchPartBytes), kgo.FetchMaxBytes(4*cfg.FetchPartBytes))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return mcLimitResult{}, err
	}
	defer cl.Close()
	remaining := int64(0)
	for _, end := range cfg.HWM {
		remaining += end
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return mcLimitResult{}, ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			lw := writers[fp.Partition]
			recs := fp.Records[:0:0]
			for _, r := range fp.Records {
				if r.Offset < lw.end {
					recs = append(recs, r)
				}
			}
			remaining -= int64(len(recs))
			if len(recs) > 0 {
				lw.in <- recs
			}
		})
	}
	cl.Close()
	closeAll()
	for p, lw := range writers {
		if lw.err != nil {
			return res, fmt.Errorf("partition %d: %w", p, lw.err)
		}
		res.Records += lw.records
		res.Bytes += lw.bytes
		res.Sessions += len(lw.sessions)
		for _, s := range lw.sessions {
			res.Blocks += len(s.blocks)
		}
	}
	res.Wall, res.CPU = time.Since(start), cpuTime()-cpu0
	return res, nil
}

// limitWriter writes one Kafka partition's records.
type limitWriter struct {
	t        *tunnel.Tunnel
	cfg      *mcLimitConfig
	loc      *time.Location
	in       chan []*kgo.Record
	end      int64
	sessions map[string]*limitSession // by partition spec
	hour     int64                    // Unix hour of the last record's spec
	last     *limitSession
	err      error
	records  int64
	bytes    int64
}

type limitSession struct {
	up     *tunnel.UploadSession
	w      *tunnel.RecordProtocWriter
	next   int
	fill   int64
	blocks []int
}

func (lw *limitWriter) run() {
	for recs := range lw.in {
		if lw.err != nil {
			continue // drain
		}
		for _, r := range recs {
			if err := lw.write(r); err != nil {
				lw.err = err
				break
			}
		}
	}
	if lw.err != nil {
		for _, s := range lw.sessions {
			if s.w != nil {
				_ = s.w.Close()
			}
		}
		return
	}
	for spec, s := range lw.sessions {
		if s.w != nil {
			if err := s.w.Close(); err != nil {
				lw.err = fmt.Errorf("upload block %d on %s: %w", s.next, spec, err)
				return
			}
			s.blocks = append(s.blocks, s.next)
		}
		if err := s.up.Commit(s.blocks); err != nil {
			lw.err = fmt.Errorf("commit %s: %w", spec, err)
			return
		}
	}
}

func (lw *limitWriter) write(r *kgo.Record) error {
	// GMT+08:00 has whole hours, so Unix hours are the partitions' hours.
	s := lw.last
	if h := r.Timestamp.Unix() / 3600; s == nil || h != lw.hour {
		spec := maxcompute.PartitionSpec(r.Timestamp.In(lw.loc).Format(maxcompute.LayoutHour))
		if s = lw.sessions[spec]; s == nil {
			up, err := lw.t.CreateUploadSession(lw.cfg.Project, lw.cfg.Table, tunnel.SessionCfg.WithPartitionKey(spec), tunnel.SessionCfg.WithCreatePartition())
			if err != nil {
				return fmt.Errorf("create upload session on %s: %w", spec, err)
			}
			s = &limitSession{up: up}
			lw.sessions[spec] = s
		}
		lw.hour, lw.last = h, s
	}
	// The default table's row, as the sink's converter builds it (mode
	// DEFAULT, format TEXT: a null key or value is NULL).
	row := make(data.Record, 5)
	row[0] = data.String(r.Topic)
	row[1] = data.BigInt(r.Partition)
	row[2] = data.BigInt(r.Offset)
	size := int64(len(r.Topic)) + 24
	if r.Key != nil {
		row[3], size = data.String(r.Key), size+int64(len(r.Key))
	}
	if r.Value != nil {
		row[4], size = data.String(r.Value), size+int64(len(r.Value))
	}
	if s.w == nil {
		w, err := s.up.OpenRecordWriter(s.next)
		if err != nil {
			return fmt.Errorf("open block %d: %w", s.next, err)
		}
		s.w = w
	}
	if err := s.w.Write(row); err != nil {
		_ = s.w.Close()
		return fmt.Errorf("write block %d: %w", s.next, err)
	}
	lw.records++
	lw.bytes += int64(len(r.Value))
	s.fill += size
	if s.fill >= lw.cfg.BlockSize {
		err := s.w.Close()
		s.w, s.fill = nil, 0
		if err != nil {
			return fmt.Errorf("upload block %d: %w", s.next, err)
		}
		s.blocks = append(s.blocks, s.next)
		s.next++
	}
	return nil
}

// dumpMaxCompute runs spec in a fresh worker process, timed from
// ExecuteWorkflow until the status query shows every cursor at its high
// watermark; then it waits for the group offsets, counts the history (events
// and their encoded bytes, over every run), terminates the workflow and
// verifies the ledger.
func dumpMaxCompute(ctx context.Context, e *env, bin string, spec *connector.Spec, hwm map[int32]int64, o options, extra []string, r *mcRound) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	r.spec = spec
	w, err := startWorkerProc(bin, e.stack.TemporalAddress, e.stack.Namespace, extra...)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			w.close()
		}
	}()
	time.Sleep(time.Second) // let the worker start and poll
	w.resetPeak()
	cpu0, srv0, busy0, start := w.cpu(), cpuTime(), machineBusy(), time.Now()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, workflows.NewInput(spec))
	if err != nil {
		return fmt.Errorf("start connector: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Minute); ; {
		s, err := e.status(ctx, spec.Name)
		if err == nil && caughtUp(s, hwm) {
			r.status = s
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connector did not catch up in 30m; last status %+v, error %v", s, err)
		}
		time.Sleep(o.poll)
	}
	r.dump.Wall, r.dump.CPU, r.dump.ServerCPU = time.Since(start), w.cpu()-cpu0, cpuTime()-srv0
	r.dump.OthersCPU = max(0, machineBusy()-busy0-r.dump.CPU-r.dump.ServerCPU)
	r.dump.PeakRSS, _ = w.peak()
	for _, p := range r.status.Partitions {
		if p.LastError != "" || p.Stopped || p.DeadLetters > 0 || p.ErrorRecords > 0 {
			return fmt.Errorf("partition %d: error %q stopped %v dead letters %d error records %d", p.Partition, p.LastError, p.Stopped, p.DeadLetters, p.ErrorRecords)
		}
		r.dump.Records += p.Records
	}
	r.dump.Bytes = int64(o.size) * r.dump.Records // the sink reports key plus value bytes; keys are null
	if err := e.waitCommitted(ctx, spec, hwm); err != nil {
		return err
	}
	if r.hist, err = countHistory(ctx, e.client, spec.WorkflowID(), run.GetRunID()); err != nil {
		return err
	}
	if r.histBytes, err = historyBytes(ctx, e.client, spec.WorkflowID(), run.GetRunID()); err != nil {
		return err
	}
	if err := e.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "benchmark done"); err != nil {
		return fmt.Errorf("terminate: %w", err)
	}
	w.close() // writes the CPU profile
	closed = true
	cursors := map[int32]verify.Cursor{}
	for _, p := range r.status.Partitions {
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
	}
	if r.ledger, err = verify.Run(ctx, spec, cursors); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var rows int64
	for _, p := range r.ledger.Partitions {
		rows += p.Records
	}
	if !r.ledger.OK || rows != int64(o.records) || r.dump.Records != int64(o.records) {
		return fmt.Errorf("ledger not exact (ok=%v), or the table holds %d rows and the workflow reports %d records; want %d: %+v", r.ledger.OK, rows, r.dump.Records, o.records, r.ledger)
	}
	r.dump.Sessions, r.dump.Blocks, err = ledgerBlocks(ctx, spec)
	return err
}

// ledgerBlocks counts the upload sessions the ledger names and the blocks
// they committed (the emulator lists a committed session's blocks).
func ledgerBlocks(ctx context.Context, spec *connector.Spec) (sessions, blocks int, err error) {
	entries, err := maxcompute.ReadLedgerEntries(ctx, spec, mcCreds())
	if err != nil {
		return 0, 0, err
	}
	mc := spec.Sink.MaxCompute
	o := odps.NewOdps(account.NewAliyunAccount(localstack.LocalAccessKeyID, localstack.LocalAccessKeySecret), mc.Endpoint)
	o.SetDefaultProjectName(mc.Project)
	tt := tunnel.NewTunnel(o, mc.TunnelEndpoint)
	for _, es := range entries {
		for _, e := range es {
			if e.Kind != maxcompute.KindData {
				continue
			}
			for _, s := range e.Sessions {
				up, err := tt.AttachToExistedUploadSession(mc.Project, mc.Table, s.ID, tunnel.SessionCfg.WithPartitionKey(s.Partition))
				if err != nil {
					return 0, 0, fmt.Errorf("attach %s: %w", s.ID, err)
				}
				sessions++
				blocks += len(up.BlockIds())
			}
		}
	}
	return sessions, blocks, nil
}

// historyBytes sums proto.Size of every event of every run of a workflow,
// following the continue-as-new chain from firstRun.
func historyBytes(ctx context.Context, c client.Client, id, firstRun string) (int64, error) {
	var n int64
	for run := firstRun; run != ""; {
		next := ""
		it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return n, fmt.Errorf("history of %s/%s: %w", id, run, err)
			}
			n += int64(proto.Size(ev))
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		run = next
	}
	return n, nil
}

func mcReport(w io.Writer, o options, rounds []mcRound) {
	spec := rounds[0].spec
	fmt.Fprintf(w, "\nlimit: franz-go direct consume (FetchMaxPartitionBytes %s) -> ODPS SDK tunnel, one upload session per Kafka partition, %s blocks, one commit each\n",
		fetchDesc(o.baselineFetch), connector.ByteSize(maxcompute.DefaultBlockSize))
	fmt.Fprintf(w, "dumpflow: worker process, connector defaults: concurrency %d, batch maxRecords %d maxBytes %s flushInterval %s; mode %s format %s partition %s\n\n",
		spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, spec.Batch.FlushInterval.D(), spec.Sink.MaxCompute.Mode, spec.Sink.MaxCompute.Format, spec.Sink.MaxCompute.Partition)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trecords\tMB\twall s\trecords/s\tMB/s\tCPU s\tpeak RSS MiB\tserver CPU s\tothers' CPU s\tsessions\tblocks\t")
	row := func(name string, p mcPhase) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%d\t%d\t\n", name, p.Records, float64(p.Bytes)/1e6, p.Wall.Seconds(),
			float64(p.Records)/p.Wall.Seconds(), float64(p.Bytes)/1e6/p.Wall.Seconds(), p.CPU.Seconds(), mib(p.PeakRSS), p.ServerCPU.Seconds(), p.OthersCPU.Seconds(), p.Sessions, p.Blocks)
	}
	var lRates, dRates []float64
	for i, r := range rounds {
		suffix := ""
		if len(rounds) > 1 {
			suffix = fmt.Sprintf(" #%d", i+1)
		}
		row("limit"+suffix, r.limit)
		row("dumpflow"+suffix, r.dump)
		lRates = append(lRates, float64(r.limit.Records)/r.limit.Wall.Seconds())
		dRates = append(dRates, float64(r.dump.Records)/r.dump.Wall.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w)
	var per []string
	for i := range rounds {
		per = append(per, fmt.Sprintf("%.2f", dRates[i]/lRates[i]))
	}
	fmt.Fprintf(w, "ratio dumpflow/limit (records/s): %.2f of the medians (%.0f / %.0f records/s); per round %s  (target >= 0.8)\n",
		median(dRates)/median(lRates), median(dRates), median(lRates), strings.Join(per, " "))
	fmt.Fprintf(w, "MB = 10^6 bytes of record values. CPU s and peak RSS (VmRSS sampled every 20ms) are the contender's own process: the limit's child\n")
	fmt.Fprintf(w, "process, the dumpflow worker process. Server CPU s is the bench process (kfake, the MaxCompute emulator, Temporal) meanwhile\n")
	fmt.Fprintf(w, "(for the limit over the child's whole life); others' CPU s the rest of the machine (other processes) meanwhile. Sessions and blocks committed: dumpflow's are read from its ledger's sessions.\n\n")

	last := rounds[len(rounds)-1]
	h := last.hist
	gb := float64(last.dump.Bytes) / 1e9
	var acts []string
	for name, n := range h.ByActivity {
		acts = append(acts, fmt.Sprintf("%s %d", name, n))
	}
	sort.Strings(acts)
	fmt.Fprintf(w, "history: %d runs, %d events, %d workflow tasks, %d bytes (sum of proto.Size of the events); activities: %s\n",
		h.Runs, h.Events, h.WFTasks, last.histBytes, strings.Join(acts, ", "))
	fmt.Fprintf(w, "history: %.0f events per GB, %.0f bytes per GB (%.1f KiB per GB)\n", float64(h.Events)/gb, float64(last.histBytes)/gb, float64(last.histBytes)/gb/1024)
	var times []string
	for _, name := range []string{"FetchRanges", "PrepareWrite", "WritePartition", "CommitOffsets"} {
		if n := h.ByActivity[name]; n > 0 {
			times = append(times, fmt.Sprintf("%s %.2fs (%.0f ms each)", name, h.ActTime[name].Seconds(), h.ActTime[name].Seconds()*1000/float64(n)))
		}
	}
	fmt.Fprintf(w, "activity time, scheduled to closed, summed over the loops: %s\n", strings.Join(times, ", "))
	for i, r := range rounds {
		var ranges int
		for _, p := range r.ledger.Partitions {
			ranges += p.Ranges
		}
		fmt.Fprintf(w, "verify #%d: limit table %d rows, each offset once; dumpflow ledger OK=%v over %d partitions, %d ranges, %d rows, no duplicates; group offsets at the high watermarks\n",
			i+1, r.limitRows, r.ledger.OK, len(r.ledger.Partitions), ranges, r.dump.Records)
	}
}
