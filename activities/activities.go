// Package activities holds dumpflow's Temporal activities: thin adapters
// over kafka/, transform/ and sink/ with no business logic of their own.
//
// All activities are methods on *Activities, which holds the per-process
// clients (one Kafka client per cluster, one sink per connector spec).
// Workflows refer to them through a nil *Activities, by method value.
//
// Errors are classified at this boundary: configuration, authentication and
// schema problems become non-retryable application errors whose type names
// the problem (InvalidSpec, NoSuchTopic, NoSuchTable, AccessDenied, ...);
// everything else is returned wrapped and retried by the workflow's policy.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
)

// Activities holds the dependencies of every activity. Build it once per
// worker process with New.
type Activities struct {
	kafka    *kafka.Pool
	logger   *slog.Logger
	open     SinkOpener
	temporal temporalClient // asks workflows for specs the cache lacks
	budget   *sink.Budget   // batch buffers held at once, per worker
	metrics  *metrics.Metrics

	mu           sync.Mutex
	sinks        map[string]sink.Sink
	credsChecked map[string]time.Time        // spec ref → when its credentials were checked
	chains       map[string]*transform.Chain // spec ref → its compiled transform chain
}

// SinkOpener builds a sink for a validated spec, resolving credentials on
// the worker.
type SinkOpener func(ctx context.Context, spec *connector.Spec) (sink.Sink, error)

// Option configures Activities.
type Option func(*Activities)

// WithSinkOpener replaces how sinks are built (the default opens OSS and
// MaxCompute sinks with credentials from the environment).
func WithSinkOpener(o SinkOpener) Option { return func(a *Activities) { a.open = o } }

// WithLogger sets the logger for worker-side messages.
func WithLogger(l *slog.Logger) Option { return func(a *Activities) { a.logger = l } }

// WithTemporalClient lets activities read the spec a V2 input refers to
// from the workflow's history when the worker's cache does not hold it
// (after a restart, or when the workflow ran on another worker).
func WithTemporalClient(c client.Client) Option {
	return func(a *Activities) { a.temporal = historyClient{c} }
}

// WithBudget caps the bytes of batches the worker buffers at once (OSS
// object bodies); see sink.Budget. Optional. Default: unlimited.
func WithBudget(b *sink.Budget) Option { return func(a *Activities) { a.budget = b } }

// WithMetrics records what the activities write, and the partitions' lag
// and state, in m. Optional. Default: no metrics.
func WithMetrics(m *metrics.Metrics) Option { return func(a *Activities) { a.metrics = m } }

// New returns Activities using pool for Kafka.
func New(pool *kafka.Pool, opts ...Option) *Activities {
	a := &Activities{kafka: pool, logger: slog.Default(), open: OpenSink, sinks: map[string]sink.Sink{}}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Close closes every cached sink.
func (a *Activities) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.sinks {
		_ = s.Close()
		delete(a.sinks, k)
	}
}

// OpenSink is the default SinkOpener.
func OpenSink(ctx context.Context, spec *connector.Spec) (sink.Sink, error) {
	switch spec.Sink.Type {
	case connector.SinkOSS:
		creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
		if err != nil {
			return nil, sink.Permanent("MissingCredentials", fmt.Errorf("sink.oss.credentials: %w", err))
		}
		return oss.New(spec, creds)
	case connector.SinkMaxCompute:
		return openMaxCompute(ctx, spec)
	}
	return nil, sink.Permanent("InvalidSpec", fmt.Errorf("sink.type %q: must be oss or maxcompute", spec.Sink.Type))
}

// sink returns the cached sink for spec, opening it on first use. Sinks
// are keyed by everything they are built from: the name, sink and batch.
func (a *Activities) sink(ctx context.Context, spec *connector.Spec) (sink.Sink, error) {
	b, _ := json.Marshal([]any{spec.Sink, spec.Batch})
	h := sha256.Sum256(b)
	key := spec.Name + "/" + hex.EncodeToString(h[:8])
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.sinks[key]; ok {
		return s, nil
	}
	s, err := a.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	a.sinks[key] = s
	return s, nil
}

// partition names a partition of spec's topic in metrics.
func partition(spec *connector.Spec, p int32) metrics.Partition {
	return metrics.Partition{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: p}
}

// retried counts an attempt after the first of the activity running in ctx
// for each of partitions.
func (a *Activities) retried(ctx context.Context, spec *connector.Spec, partitions ...int32) {
	if a.metrics == nil || !activity.IsActivity(ctx) {
		return
	}
	info := activity.GetInfo(ctx)
	if info.Attempt <= 1 {
		return
	}
	for _, p := range partitions {
		a.metrics.Retried(partition(spec, p), info.ActivityType.Name)
	}
}

// nonRetryable is a non-retryable application error of type typ.
func nonRetryable(typ string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err)
}

// checkSpec defaults and validates a spec received in an activity input.
func checkSpec(spec *connector.Spec) error {
	spec.Default()
	if err := spec.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	return nil
}

// classify turns permanent failures into non-retryable application errors.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *sink.PermanentError
	if errors.As(err, &pe) {
		return temporal.NewNonRetryableApplicationError(err.Error(), pe.Type, err)
	}
	if errors.Is(err, kafka.ErrNoTopic) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "NoSuchTopic", err)
	}
	for _, e := range []error{kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism,
		kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed} {
		if errors.Is(err, e) {
			return temporal.NewNonRetryableApplicationError(err.Error(), "KafkaAccessDenied", err)
		}
	}
	var te *sink.ThrottledError
	if errors.As(err, &te) {
		return temporal.NewApplicationErrorWithOptions(err.Error(), sink.ErrThrottled, temporal.ApplicationErrorOptions{Cause: err})
	}
	if dl, ok := kafka.IsDataLost(err); ok {
		// The details carry the log start, where the partition can go on
		// once an operator acknowledges the loss.
		return temporal.NewApplicationErrorWithOptions(err.Error(), "DataLost",
			temporal.ApplicationErrorOptions{NonRetryable: true, Cause: dl, Details: []any{dl.LogStart}})
	}
	return err
}
