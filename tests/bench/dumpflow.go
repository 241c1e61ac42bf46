package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// env is the running Temporal server, OSS fake and in-process worker.
type env struct {
	stack  *localstack.Stack
	client client.Client
	stop   func() // stops the worker, the client and the stack
}

// startEnv starts the local stack (Temporal on SQLite, the file-backed OSS
// fake; Kafka is the caller's kfake) and a dumpflow worker in this process.
func startEnv(ctx context.Context, dir string, brokers []string, logger *slog.Logger) (*env, error) {
	st, err := localstack.Start(ctx, localstack.Options{
		DataDir:      dir,
		TemporalPort: 0,
		UIPort:       -1,
		KafkaBrokers: brokers,
		OSSPort:      0,
		Logger:       logger,
	})
	if err != nil {
		return nil, err
	}
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runner.RunWithClient(wctx, c, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger, Identity: "bench"})
	}()
	return &env{stack: st, client: c, stop: func() {
		cancel()
		if err := <-done; err != nil {
			logger.Error("worker", "error", err)
		}
		c.Close()
		if err := st.Close(); err != nil {
			logger.Error("stop local stack", "error", err)
		}
	}}, nil
}

// dumpConfig is the connector under test.
type dumpConfig struct {
	Name          string // connector name; objects go under <name>/<topic>/
	Topic         string
	Brokers       []string
	Concurrency   int
	MaxRecords    int
	MaxBytes      int64
	PartSize      int64
	FlushInterval time.Duration
	HistoryLimit  int
	Size          int // record value size, for the content check
}

// dumpResult is what the dumpflow run did.
type dumpResult struct {
	Spec    connector.Spec
	Wall    time.Duration
	CPU     time.Duration
	Status  workflows.Status
	Records int64
	Bytes   int64 // record value bytes (file bytes minus one newline per record)
	Written int64 // object bytes, as reported by the workflow
	Objects int64
	History historyStats
	Ledger  verify.Report
	// Content is what checkContent found in the objects' files.
	ContentRecords, ContentBytes int64
}

func (e *env) spec(cfg dumpConfig) (*connector.Spec, error) {
	spec := &connector.Spec{
		Name:        cfg.Name,
		Kafka:       connector.KafkaSpec{Brokers: cfg.Brokers, Topic: cfg.Topic},
		Concurrency: cfg.Concurrency,
		Batch: connector.BatchSpec{
			MaxRecords:    cfg.MaxRecords,
			MaxBytes:      connector.ByteSize(cfg.MaxBytes),
			FlushInterval: connector.Duration(cfg.FlushInterval),
		},
		Sink: connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{
			Endpoint:    e.stack.OSSEndpoint,
			Bucket:      e.stack.OSSBucket,
			Path:        cfg.Name + "/{topic}",
			Credentials: credName,
			PathStyle:   true,
			PartSize:    connector.ByteSize(cfg.PartSize),
		}},
	}
	spec.Default()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return spec, nil
}

// dump starts the connector and times it from ExecuteWorkflow until the
// status query shows every partition's cursor at its high watermark. Then
// it waits for the group offsets to mirror the cursors, counts the history
// of every run, terminates the workflow and checks the ledger and the
// objects' content. caught is called at that moment (to stop a CPU profile).
func (e *env) dump(ctx context.Context, cfg dumpConfig, hwm map[int32]int64, poll time.Duration, caught func()) (dumpResult, error) {
	spec, err := e.spec(cfg)
	if err != nil {
		return dumpResult{}, err
	}
	res := dumpResult{Spec: *spec}
	start, cpu0 := time.Now(), cpuTime()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue},
		workflows.ConnectorName, func() workflows.ConnectorInput {
			in := workflows.NewInput(spec)
			in.HistoryLimit = cfg.HistoryLimit
			return in
		}())
	if err != nil {
		return res, fmt.Errorf("start connector: %w", err)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		st, err := e.status(ctx, spec.Name)
		if err == nil && caughtUp(st, hwm) {
			res.Wall, res.CPU = time.Since(start), cpuTime()-cpu0
			res.Status = st
			caught()
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("connector did not catch up in 30m; last status %+v, error %v", st, err)
		}
		time.Sleep(poll)
	}
	for _, p := range res.Status.Partitions {
		if p.LastError != "" || p.Stopped || p.DeadLetters > 0 || p.ErrorRecords > 0 {
			return res, fmt.Errorf("partition %d: error %q stopped %v dead letters %d error records %d", p.Partition, p.LastError, p.Stopped, p.DeadLetters, p.ErrorRecords)
		}
		res.Records += p.Records
		res.Written += p.Bytes
		res.Objects += p.Objects
	}
	res.Bytes = res.Written - res.Records

	if err := e.waitCommitted(ctx, spec, hwm); err != nil {
		return res, err
	}
	res.History, err = countHistory(ctx, e.client, spec.WorkflowID(), run.GetRunID())
	if err != nil {
		return res, err
	}
	if err := e.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "benchmark done"); err != nil {
		return res, fmt.Errorf("terminate: %w", err)
	}
	cursors := map[int32]verify.Cursor{}
	for _, p := range res.Status.Partitions {
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
	}
	res.Ledger, err = verify.Run(ctx, spec, cursors)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	if e.stack.OSSBucketDir != "" {
		res.ContentRecords, res.ContentBytes, err = checkContent(filepath.Join(e.stack.OSSBucketDir, cfg.Name, cfg.Topic), cfg.Size)
		if err != nil {
			return res, fmt.Errorf("content: %w", err)
		}
	}
	return res, nil
}

func (e *env) status(ctx context.Context, name string) (workflows.Status, error) {
	return workflows.ConnectorStatus(ctx, e.client, name)
}

func caughtUp(st workflows.Status, hwm map[int32]int64) bool {
	if len(st.Partitions) != len(hwm) {
		return false
	}
	for _, p := range st.Partitions {
		if p.Next < hwm[p.Partition] {
			return false
		}
	}
	return true
}

// waitCommitted waits until the connect-<name> group mirrors the cursors,
// so that the history counted includes the last commit-offset step.
func (e *env) waitCommitted(ctx context.Context, spec *connector.Spec, hwm map[int32]int64) error {
	kc, err := newKafkaClient(spec.Kafka.Brokers)
	if err != nil {
		return err
	}
	defer kc.Close()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		cm, err := kc.CommittedOffsets(ctx, spec.Group(), spec.Kafka.Topic)
		if err == nil {
			ok := len(cm) == len(hwm)
			for p, end := range hwm {
				ok = ok && cm[p].Offset == end
			}
			if ok {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("group offsets did not reach the high watermarks within 1m")
}

// historyStats counts the events of every run of a workflow.
type historyStats struct {
	Runs        int
	Events      int
	Bytes       int64                    // proto.Size of every event of every run
	ByActivity  map[string]int           // activity tasks scheduled, by type
	ActTime     map[string]time.Duration // scheduled to closed, summed by type
	WFTasks     int                      // workflow tasks completed
	VisibleRuns int                      // runs ListWorkflow finds (cross-check), -1 if it failed
}

// countHistory follows the continue-as-new chain from the first run and
// counts every event of every run and its size (proto.Size, as
// GetWorkflowExecutionHistory returns it), then cross-checks the number of runs
// with ListWorkflow.
func countHistory(ctx context.Context, c client.Client, id, firstRun string) (historyStats, error) {
	hs := historyStats{ByActivity: map[string]int{}, ActTime: map[string]time.Duration{}, VisibleRuns: -1}
	type sched struct {
		name string
		at   time.Time
	}
	run := firstRun
	for run != "" {
		hs.Runs++
		next := ""
		scheduled := map[int64]sched{}
		closed := func(id int64, at time.Time) {
			if sc, ok := scheduled[id]; ok {
				hs.ActTime[sc.name] += at.Sub(sc.at)
			}
		}
		it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return hs, fmt.Errorf("history of %s/%s: %w", id, run, err)
			}
			hs.Events++
			hs.Bytes += int64(proto.Size(ev))
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
				hs.ByActivity[name]++
				scheduled[ev.GetEventId()] = sched{name, ev.GetEventTime().AsTime()}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				closed(ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(), ev.GetEventTime().AsTime())
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
				closed(ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId(), ev.GetEventTime().AsTime())
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
				closed(ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId(), ev.GetEventTime().AsTime())
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				hs.WFTasks++
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		run = next
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	if err == nil {
		hs.VisibleRuns = len(resp.GetExecutions())
	}
	return hs, nil
}
