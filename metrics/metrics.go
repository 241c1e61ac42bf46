// Package metrics owns a worker's Prometheus registry: dumpflow's own
// instruments (records, bytes, batches and objects written, lag, dead
// letters, transform counts, write durations, retries, the stopped gauge),
// the Temporal SDK's metrics (through contrib/opentelemetry's
// MetricsHandler and the OpenTelemetry Prometheus exporter) and franz-go's
// (through its kprom plugin), all served on one /metrics endpoint.
//
// The main type is Metrics: build one per worker with New, give
// TemporalHandler to the Temporal client, KafkaHooks to the Kafka clients,
// and the Metrics itself to the activities, which record what they wrote.
// A nil *Metrics records nothing, so code that runs without metrics (tests,
// starter) needs no checks. docs/metrics.md lists every name.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// Stopped reasons: the values of dumpflow_stopped's reason label. The set
// is fixed; every partition exports each of them, 1 for the reason it is
// parked for (if any) and 0 for the others.
const (
	ReasonPaused   = "paused"        // the connector is paused
	ReasonPoison   = "poison"        // parked on a record the sink refuses (tolerance stop)
	ReasonError    = "stopped-error" // parked on an error no retry fixes, until resume
	ReasonDataLost = "data-lost"     // records were deleted from Kafka before they were dumped
)

// Reasons is the fixed set of stopped reasons.
var Reasons = []string{ReasonPaused, ReasonPoison, ReasonError, ReasonDataLost}

// Stages of error-topic records: a range given up after its retries is
// routed whole with stage "write". Dead letters carry the stage that
// refused the record (size, transform, route, format, convert, ...).
const StageWrite = "write"

// DefaultGaugeTTL is how long a worker keeps exporting a partition's lag
// and stopped gauges after it last ran one of the partition's activities.
const DefaultGaugeTTL = 5 * time.Minute

// Metric names, as exported. Tests check that the dashboard and the alert
// rules use only names a worker exports.
const (
	RecordsWritten   = "dumpflow_records_written_total"
	BytesWritten     = "dumpflow_bytes_written_total"
	BatchesWritten   = "dumpflow_batches_written_total"
	ObjectsWritten   = "dumpflow_objects_written_total"
	DeadLetters      = "dumpflow_dead_letters_total"
	ErrorRecords     = "dumpflow_error_records_total"
	TransformRecords = "dumpflow_transform_records_total"
	Retries          = "dumpflow_retries_total"
	WriteDuration    = "dumpflow_batch_write_duration_seconds"
	BatchRecords     = "dumpflow_batch_records"
	BatchBytes       = "dumpflow_batch_bytes"
	LagRecords       = "dumpflow_lag_records"
	LagSeconds       = "dumpflow_lag_seconds"
	Stopped          = "dumpflow_stopped"
)

// Namespaces of the metrics the libraries export: franz-go's kprom metrics
// are kafka_*, the Temporal SDK's temporal_*.
const KafkaNamespace = "kafka"

var partitionLabels = []string{"connector", "topic", "partition"}

// Metrics is a worker's registry and dumpflow's instruments. It is safe for
// concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	records, bytes, batches, objects *prometheus.CounterVec
	deadLetters, errorRecords        *prometheus.CounterVec
	transform, retries               *prometheus.CounterVec
	duration, batchRecords, batchBy  *prometheus.HistogramVec

	temporal client.MetricsHandler
	kafka    *kafkaHooks

	gauges *gaugeCollector
}

// Options configures New.
type Options struct {
	// GaugeTTL: see DefaultGaugeTTL. Optional. Default: 5m.
	GaugeTTL time.Duration
	// Now is the clock of the lag gauges. Optional. Default: time.Now.
	Now func() time.Time
}

// New builds a worker's registry with every instrument registered.
func New(opts Options) (*Metrics, error) {
	if opts.GaugeTTL <= 0 {
		opts.GaugeTTL = DefaultGaugeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(append([]string(nil), partitionLabels...), extra...))
		reg.MustRegister(v)
		return v
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, partitionLabels)
		reg.MustRegister(v)
		return v
	}
	m.records = counter(RecordsWritten, "Records written to the sink (after transforms: a record a step splits counts once per output).")
	m.bytes = counter(BytesWritten, "Bytes written to the sink (object bodies for OSS, row bytes for MaxCompute), as the sink reports them.")
	m.batches = counter(BatchesWritten, "Batches (ranges) written to the sink.")
	m.objects = counter(ObjectsWritten, "OSS objects or MaxCompute upload sessions written.")
	m.deadLetters = counter(DeadLetters, "Records sent to the dead-letter topic, by the stage that refused them.", "stage")
	m.errorRecords = counter(ErrorRecords, "Records copied to the error-data topic because their range still failed after its retries (tolerance continue), by stage.", "stage")
	m.transform = counter(TransformRecords, "Records through each transform step, by result: in, out, dropped, failed.", "step", "type", "result")
	m.retries = counter(Retries, "Activity attempts after the first, by activity.", "activity")
	m.duration = histogram(WriteDuration, "Wall time of a successful WritePartition attempt: read, transform, write and commit of one batch.", prometheus.ExponentialBuckets(0.05, 2, 14))
	m.batchRecords = histogram(BatchRecords, "Records per written batch.", prometheus.ExponentialBuckets(10, 4, 10))
	m.batchBy = histogram(BatchBytes, "Bytes per written batch.", prometheus.ExponentialBuckets(1<<10, 4, 12))
	m.gauges = &gaugeCollector{ttl: opts.GaugeTTL, now: opts.Now, parts: map[partKey]*partState{},
		lagRecords: prometheus.NewDesc(LagRecords, "Records in the partition past the connector's cursor (high watermark − next offset).", partitionLabels, nil),
		lagSeconds: prometheus.NewDesc(LagSeconds, "Age of the oldest record not yet written (now − its timestamp); 0 when caught up.", partitionLabels, nil),
		stopped:    prometheus.NewDesc(Stopped, "1 while the partition is parked for the reason in the label, else 0.", append(append([]string(nil), partitionLabels...), "reason"), nil),
	}
	reg.MustRegister(m.gauges)

	// The Temporal SDK's metrics, through the OpenTelemetry Prometheus
	// exporter into the same registry.
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry Prometheus exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m.temporal = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		OnError:              func(error) {}, // a metric the meter refuses is left out, never a panic
	})

	// franz-go's metrics, through kprom into the same registry.
	m.kafka = &kafkaHooks{Metrics: kprom.NewMetrics(KafkaNamespace, kprom.Registry(reg))}
	return m, nil
}

// Registry is the worker's registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// TemporalHandler is the Temporal client's MetricsHandler
// (client.Options.MetricsHandler); nil without metrics.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	if m == nil {
		return nil
	}
	return m.temporal
}

// KafkaHooks are the franz-go hooks (kgo.WithHooks) that feed kprom's
// metrics; nil without metrics.
func (m *Metrics) KafkaHooks() kgo.Hook {
	if m == nil {
		return nil
	}
	return m.kafka
}

// Serve serves /metrics on addr until ctx is done. It returns once the
// listener is open; the server stops when ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}

// Partition identifies a connector's partition in every dumpflow metric.
type Partition struct {
	Connector string
	Topic     string
	Partition int32
}

func (p Partition) labels(extra ...string) []string {
	return append([]string{p.Connector, p.Topic, strconv.Itoa(int(p.Partition))}, extra...)
}

// Batch is what one successful write put in the sink.
type Batch struct {
	Records, Bytes, Objects int64
	Duration                time.Duration
}

// Written records a successful write.
func (m *Metrics) Written(p Partition, b Batch) {
	if m == nil {
		return
	}
	l := p.labels()
	m.records.WithLabelValues(l...).Add(float64(b.Records))
	m.bytes.WithLabelValues(l...).Add(float64(b.Bytes))
	m.batches.WithLabelValues(l...).Inc()
	m.objects.WithLabelValues(l...).Add(float64(b.Objects))
	m.duration.WithLabelValues(l...).Observe(b.Duration.Seconds())
	m.batchRecords.WithLabelValues(l...).Observe(float64(b.Records))
	m.batchBy.WithLabelValues(l...).Observe(float64(b.Bytes))
}

// DeadLettered records n records sent to the dead-letter topic by stage.
func (m *Metrics) DeadLettered(p Partition, stage string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.deadLetters.WithLabelValues(p.labels(stage)...).Add(float64(n))
}

// Routed records n records copied to the error-data topic by stage.
func (m *Metrics) Routed(p Partition, stage string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.errorRecords.WithLabelValues(p.labels(stage)...).Add(float64(n))
}

// Transformed records a batch's counts of one transform step.
func (m *Metrics) Transformed(p Partition, step, typ string, in, out, dropped, failed int64) {
	if m == nil {
		return
	}
	for _, r := range []struct {
		result string
		n      int64
	}{{"in", in}, {"out", out}, {"dropped", dropped}, {"failed", failed}} {
		m.transform.WithLabelValues(p.labels(step, typ, r.result)...).Add(float64(r.n))
	}
}

// Retried records an activity attempt after the first.
func (m *Metrics) Retried(p Partition, activity string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(p.labels(activity)...).Inc()
}

// kafkaHooks gives franz-go's hooks to one kprom.Metrics shared by every
// client of the worker (the cluster clients, their range readers and
// dead-letter producers): the per-broker counters add up over all of them.
// kprom registers its collectors when it sees its first client and
// unregisters them when that client closes, so only the first client is
// passed on: kafka_buffered_* gauges describe that client (the worker's
// first cluster client), and the collectors stay registered for the
// worker's life.
type kafkaHooks struct {
	*kprom.Metrics
	once sync.Once
}

var (
	_ kgo.HookNewClient    = (*kafkaHooks)(nil)
	_ kgo.HookClientClosed = (*kafkaHooks)(nil)
	_ kgo.HookBrokerRead   = (*kafkaHooks)(nil)
)

func (h *kafkaHooks) OnNewClient(cl *kgo.Client) {
	h.once.Do(func() { h.Metrics.OnNewClient(cl) })
}

func (h *kafkaHooks) OnClientClosed(*kgo.Client) {}

// histograms are the dumpflow metrics exported as histograms.
var histograms = []string{WriteDuration, BatchRecords, BatchBytes}

// Exported lists the names of every series dumpflow's own instruments
// export (histograms as their _bucket, _sum and _count series), whether or
// not a sample has been recorded yet. The Temporal SDK's temporal_* and
// franz-go's kafka_* series are the libraries'.
func Exported() []string {
	out := []string{RecordsWritten, BytesWritten, BatchesWritten, ObjectsWritten, DeadLetters, ErrorRecords,
		TransformRecords, Retries, LagRecords, LagSeconds, Stopped}
	for _, h := range histograms {
		out = append(out, h+"_bucket", h+"_sum", h+"_count")
	}
	return out
}
