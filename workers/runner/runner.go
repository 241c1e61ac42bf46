// Package runner builds and runs a dumpflow worker: one Temporal client, one
// Kafka client per cluster, the activities and workflows registered
// explicitly on the dumpflow task queue. The workers command and the local
// stack's in-process worker both use it.
package runner

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/kafka"
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
}

func (c *Config) defaults() {
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
}

// Interceptors are the worker interceptors dumpflow's workflows need; a
// replayer must use them too.
func Interceptors() []interceptor.WorkerInterceptor {
	return []interceptor.WorkerInterceptor{workflows.SignalOrder()}
}

// Dial connects a Temporal client per cfg.
func Dial(ctx context.Context, cfg Config) (client.Client, error) {
	cfg.defaults()
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.Namespace,
		Logger:    tlog.NewStructuredLogger(cfg.Logger),
		Identity:  cfg.Identity,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.TemporalAddress, cfg.Namespace, err)
	}
	return c, nil
}

// Run runs a worker until ctx is done, then stops it gracefully.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	c, err := Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return RunWithClient(ctx, c, cfg)
}

// RunWithClient runs a worker on an existing client until ctx is done.
func RunWithClient(ctx context.Context, c client.Client, cfg Config) error {
	cfg.defaults()
	pool := kafka.NewPool()
	defer pool.Close()
	acts := activities.New(pool, activities.WithLogger(cfg.Logger), activities.WithTemporalClient(c),
		activities.WithBudget(sink.NewBudget(cfg.BatchMemory)))
	defer acts.Close()
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
