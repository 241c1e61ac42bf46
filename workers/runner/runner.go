// Package runner builds and runs a dumpflow worker: one Temporal client, one
// Kafka client per cluster, the activities and workflows registered
// explicitly on the dumpflow task queue. The workers command and the local
// stack's in-process worker both use it.
package runner

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/workflows"
)

// Config says where the worker connects.
type Config struct {
	// TemporalAddress is the frontend host:port. Optional. Default: 127.0.0.1:7233.
	TemporalAddress string
	// Namespace. Optional. Default: default.
	Namespace string
	// TaskQueue. Optional. Default: dumpflow.
	TaskQueue string
	// Logger. Optional. Default: slog.Default().
	Logger *slog.Logger
	// Identity shown in the Web UI for this worker. Optional.
	Identity string
	// BatchMemory caps the bytes of batches the worker buffers at once
	// (OSS object bodies wait for their share before they are read).
	// Optional. Default: 128MiB; negative: unlimited.
	BatchMemory int64
	// MaxConcurrentActivities caps activities running at once on this
	// worker. Optional. Default: 64.
	MaxConcurrentActivities int
	// MaxConcurrentWorkflowTasks caps workflow tasks running at once.
	// Optional. Default: the SDK's.
	MaxConcurrentWorkflowTasks int
	// MetricsAddr is where the worker serves Prometheus metrics
	// (host:port, path /metrics). Optional. Default: none, no metrics.
	MetricsAddr string
	// Metrics is the registry the worker records into. Optional. Default:
	// a new one when MetricsAddr is set. Run and Dial give its Temporal
	// handler to the client they dial; RunWithClient's caller does that
	// for the client it passes (client.Options.MetricsHandler).
	Metrics *metrics.Metrics
}

func (c *Config) defaults() error {
	if c.Metrics == nil && c.MetricsAddr != "" {
		m, err := metrics.New(metrics.Options{})
		if err != nil {
			return err
		}
		c.Metrics = m
	}
	if c.TemporalAddress == "" {
		c.TemporalAddress = "127.0.0.1:7233"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.TaskQueue == "" {
		c.TaskQueue = workflows.TaskQueue
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchMemory == 0 {
		c.BatchMemory = DefaultBatchMemory
	}
	if c.MaxConcurrentActivities == 0 {
		c.MaxConcurrentActivities = 64
	}
	return nil
}

// DefaultBatchMemory is a worker's default batch memory budget.
const DefaultBatchMemory = 128 << 20

// Register registers every dumpflow workflow and activity on r under their
// documented names.
func Register(r worker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	for name, fn := range map[string]any{
		activities.DiscoverName:       acts.Discover,
		activities.FetchRangesName:    acts.FetchRanges,
		activities.PrepareWriteName:   acts.PrepareWrite,
		activities.WritePartitionName: acts.WritePartition,
		activities.CommitOffsetsName:  acts.CommitOffsets,
		activities.RouteRangeName:     acts.RouteRange,
		activities.DeclareGapName:     acts.DeclareGap,
		activities.SetOffsetsName:     acts.SetOffsets,
		activities.RefreshBoundsName:  acts.RefreshBounds,
		activities.ForwardUpdateName:  acts.ForwardUpdate,
		activities.AwaitClosedName:    acts.AwaitClosed,

		activities.RedriveSpecName:    acts.RedriveSpec,
		activities.PlanRedriveName:    acts.PlanRedrive,
		activities.PrepareRedriveName: acts.PrepareRedrive,
		activities.RedriveBatchName:   acts.RedriveBatch,

		activities.ResolveWindowName:        acts.ResolveWindow,
		activities.PrepareWindowName:        acts.PrepareWindow,
		activities.LoadWindowRangeName:      acts.LoadWindowRange,
		activities.PublishWindowName:        acts.PublishWindow,
		activities.CommitWindowPositionName: acts.CommitWindowPosition,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// RegisterWorkflows registers dumpflow's workflows on r (a worker or a
// replayer) under their documented names.
func RegisterWorkflows(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(workflows.Connector, workflow.RegisterOptions{Name: workflows.ConnectorName})
	r.RegisterWorkflowWithOptions(workflows.WindowLoad, workflow.RegisterOptions{Name: workflows.WindowLoadName})
	r.RegisterWorkflowWithOptions(workflows.WindowBackfill, workflow.RegisterOptions{Name: workflows.WindowBackfillName})
	r.RegisterWorkflowWithOptions(workflows.Redrive, workflow.RegisterOptions{Name: workflows.RedriveName})
}

// Interceptors are the worker interceptors dumpflow's workflows need; a
// replayer must use them too.
func Interceptors() []interceptor.WorkerInterceptor {
	return []interceptor.WorkerInterceptor{workflows.SignalOrder()}
}

// Dial connects a Temporal client per cfg.
func Dial(ctx context.Context, cfg Config) (client.Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.Namespace,
		Logger:         tlog.NewStructuredLogger(cfg.Logger),
		Identity:       cfg.Identity,
		MetricsHandler: cfg.Metrics.TemporalHandler(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.TemporalAddress, cfg.Namespace, err)
	}
	return c, nil
}

// Run runs a worker until ctx is done, then stops it gracefully.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	c, err := Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return RunWithClient(ctx, c, cfg)
}

// RunWithClient runs a worker on an existing client until ctx is done.
// With cfg.MetricsAddr it serves the worker's metrics there while it runs.
func RunWithClient(ctx context.Context, c client.Client, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	var kopts []kgo.Opt
	if cfg.Metrics != nil {
		kopts = append(kopts, kgo.WithHooks(cfg.Metrics.KafkaHooks()))
	}
	pool := kafka.NewPool(kopts...)
	defer pool.Close()
	acts := activities.New(pool, activities.WithLogger(cfg.Logger), activities.WithTemporalClient(c),
		activities.WithBudget(sink.NewBudget(cfg.BatchMemory)), activities.WithMetrics(cfg.Metrics))
	defer acts.Close()
	if cfg.MetricsAddr != "" {
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		addr, err := cfg.Metrics.Serve(mctx, cfg.MetricsAddr)
		if err != nil {
			return err
		}
		cfg.Logger.Info("serving metrics", "url", "http://"+addr.String()+"/metrics")
	}
	if id := buildID(debug.ReadBuildInfo()); id != "" {
		worker.SetBinaryChecksum(id)
	}
	w := worker.New(c, cfg.TaskQueue, worker.Options{
		Interceptors:                           Interceptors(),
		MaxConcurrentActivityExecutionSize:     cfg.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.MaxConcurrentWorkflowTasks,
	})
	Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker on task queue %s: %w", cfg.TaskQueue, err)
	}
	cfg.Logger.Info("worker started", "temporal", cfg.TemporalAddress, "namespace", cfg.Namespace, "taskQueue", cfg.TaskQueue)
	<-ctx.Done()
	w.Stop()
	cfg.Logger.Info("worker stopped")
	return nil
}
