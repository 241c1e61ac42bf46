package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// DocName names the document in a *connector.ValidationError.
const DocName = "window job spec"

// Spec describes one window job: what to read from Kafka (Reader), where
// to load it (Writer), how many failures and how much speed it may have
// (Settings), the transform chain, and optionally a cron schedule. Keys are
// the json tags, matched with exact case; any other key is a violation.
type Spec struct {
	// Name identifies the job: lowercase letters, digits and '-', not
	// starting with '-', at most 48 characters (the connector name rules).
	// Its schedule is window-<name> and its consumer group (seekToLast)
	// window-<name>. Required.
	Name string `json:"name"`
	// Reader is the Kafka side (seed 003's Kafka Reader). Required.
	Reader ReaderSpec `json:"reader"`
	// Writer is the destination: exactly one of maxcompute and oss. Required.
	Writer WriterSpec `json:"writer"`
	// Settings bounds failures and speed. Optional; see SettingsSpec.
	Settings SettingsSpec `json:"settings,omitempty"`
	// Transforms is the chain every record goes through between Kafka and
	// the writer (docs/transforms.md). Optional. Default: none.
	Transforms []transform.StepSpec `json:"transforms,omitempty"`
	// Schedule runs the job from a Temporal Schedule. Optional. Default: no
	// schedule; runs are started by hand with a window (--from/--to).
	Schedule *ScheduleSpec `json:"schedule,omitempty"`
}

// ReaderSpec is what to read: the records of the partitions of a topic
// whose offsets fall in [begin, end), as resolved when the run starts.
type ReaderSpec struct {
	// Brokers are seed broker addresses, host:port. Required.
	Brokers []string `json:"brokers"`
	// Topic is the source topic. Required.
	Topic string `json:"topic"`
	// SASL enables SASL authentication. Optional. Default: none.
	SASL *connector.SASLSpec `json:"sasl,omitempty"`
	// TLS enables TLS to the brokers. Optional. Default: plaintext.
	TLS *connector.TLSSpec `json:"tls,omitempty"`
	// Begin is the first position read, inclusive, in every partition: an
	// offset, a datetime (yyyyMMddHHmmss in the job's time zone, or RFC
	// 3339), seekToBeginning, seekToLast (the job's committed position, so
	// consecutive runs continue each other), seekToEnd, or window (the
	// window's begin). See Position. A datetime resolves to the first offset
	// whose timestamp is at or after it (ListOffsets by timestamp).
	// Optional. Default: window.
	Begin Position `json:"begin,omitempty"`
	// End is the first position not read, exclusive: as Begin, except
	// seekToLast. seekToEnd is the last stable offset when the run starts.
	// Optional. Default: window.
	End Position `json:"end,omitempty"`
	// Partitions restricts the read to these partitions.
	// Optional. Default: every partition of the topic.
	Partitions []int32 `json:"partitions,omitempty"`
	// KeyType is how a record key's bytes are read for the __key__ column:
	// BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT or STRING (see Decode).
	// Optional. Default: BYTEARRAY.
	KeyType string `json:"keyType,omitempty"`
	// ValueType is how a record value's bytes are read for the __value__
	// column, as KeyType. JSON paths and transforms need BYTEARRAY or
	// STRING. Optional. Default: BYTEARRAY.
	ValueType string `json:"valueType,omitempty"`
	// SkipExceedRecord is seed 003's switch for the records a DataWorks
	// reader polls past end: true skips them. dumpflow reads exactly
	// [begin, end) and never writes a record past end (it belongs to the
	// next window), so only true is accepted; false is a violation rather
	// than being silently ignored. Optional. Default: true.
	SkipExceedRecord *bool `json:"skipExceedRecord,omitempty"`
	// KafkaConfig sets client options by their Kafka (Java client) names,
	// e.g. fetch.max.bytes or client.id; see KafkaConfigKeys for the keys
	// and how each maps to franz-go. An unknown key is a violation, never
	// ignored. Optional. Default: none.
	KafkaConfig map[string]any `json:"kafkaConfig,omitempty"`
}

// WriterSpec selects the destination: exactly one of MaxCompute and OSS.
type WriterSpec struct {
	// MaxCompute loads each window into one partition of a table.
	MaxCompute *MaxComputeWriter `json:"maxcompute,omitempty"`
	// OSS writes each window under one prefix of a bucket.
	OSS *OSSWriter `json:"oss,omitempty"`
}

// MaxComputeWriter loads a window into one partition (seed 003's
// MaxCompute Writer).
type MaxComputeWriter struct {
	// Endpoint is the MaxCompute API endpoint, e.g.
	// http://service.cn-hangzhou.maxcompute.aliyun.com/api. Required.
	Endpoint string `json:"endpoint"`
	// TunnelEndpoint is the tunnel endpoint. Optional. Default: asked of the
	// service.
	TunnelEndpoint string `json:"tunnelEndpoint,omitempty"`
	// Project is the MaxCompute project (workspace). Required.
	Project string `json:"project"`
	// Table is the destination table. Required.
	Table string `json:"table"`
	// Credentials names the access key to resolve on the worker. Required.
	Credentials string `json:"credentials"`
	// Partition is the partition every row of a window goes to, down to the
	// last level: key=value levels separated by ',' (or '/'), whose values
	// may use the window variables (see Expand), e.g. "pt=${bizdate}" or
	// "ds=${yyyyMMdd},hh=${HH}". Empty for a table without partitions.
	// Optional. Default: "" (no partition).
	Partition string `json:"partition,omitempty"`
	// Columns fills the table's columns by name, each from __key__,
	// __value__, __topic__, __partition__, __offset__, __timestamp__,
	// __headers__, a 'constant' or a JSON path into the value (see
	// connector.ColumnSpec). Optional. Default: DefaultColumns, the columns
	// of seed 004's default table.
	Columns []connector.ColumnSpec `json:"columns,omitempty"`
	// Truncate is true to replace the partition's rows with the window's,
	// atomically (one upload session with overwrite, committed once): a
	// re-run or a backfill of a window loads it again without duplicates.
	// false appends. With a schedule and true, consecutive windows must go
	// to different partitions, or each would erase the one before.
	// Optional. Default: true.
	Truncate *bool `json:"truncate,omitempty"`
	// TimeZone is the zone the partition's variables are expanded in: UTC,
	// GMT+hh:00 or an IANA name (see IANAZone).
	// Optional. Default: schedule.timeZone, or GMT+08:00 (seed 004's and
	// DataWorks's zone) without a schedule.
	TimeZone string `json:"timeZone,omitempty"`
}

// OSSWriter writes a window as seed 000's objects
// (partition_<p>_offset_<first>_<8 chars>, newline-separated, one
// .oss_meta_file_partition_<p> per partition) under the window's prefix.
type OSSWriter struct {
	// Endpoint is the OSS endpoint URL. Required.
	Endpoint string `json:"endpoint"`
	// Bucket is the destination bucket. Required.
	Bucket string `json:"bucket"`
	// Credentials names the access key to resolve on the worker. Required.
	Credentials string `json:"credentials"`
	// PathStyle addresses the bucket in the path instead of the host name.
	// Optional. Default: false.
	PathStyle bool `json:"pathStyle,omitempty"`
	// Prefix is the folder a window's objects go under, with the window
	// variables (see Expand), e.g. "logs/${yyyy}/${MM}/${dd}" for a daily
	// schedule. With a schedule, every window must have a prefix of its
	// own, since its meta objects record what it wrote there; a re-run of
	// a window rewrites the same names. No leading or trailing '/'.
	// Optional. Default: "<reader.topic>/${begin}_${end}".
	Prefix string `json:"prefix,omitempty"`
	// TimeZone is the zone the prefix's variables are expanded in.
	// Optional. Default: schedule.timeZone, or UTC without a schedule.
	TimeZone string `json:"timeZone,omitempty"`
	// Format is the objects' format (package format, docs/transforms.md).
	// Optional. Default: raw values, one a line, uncompressed (seed 000).
	Format *format.Spec `json:"format,omitempty"`
}

// SettingsSpec bounds a run (seed 003's errorLimit and speed).
type SettingsSpec struct {
	// ErrorLimit is how many records may fail before the run fails.
	ErrorLimit ErrorLimitSpec `json:"errorLimit,omitempty"`
	// Speed caps the run's throughput and parallelism.
	Speed SpeedSpec `json:"speed,omitempty"`
	// DeadLetterTopic receives the records that failed (within
	// errorLimit), with headers naming their origin and the error, so that
	// no record is dropped silently. Optional. Default: window-error-<name>.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// ErrorLimitSpec is seed 003's errorLimit.
type ErrorLimitSpec struct {
	// Record is how many records may fail (a key or value that does not
	// decode as keyType/valueType, a transform failure, a value a column
	// cannot take) in one run; the run fails at the next one. Failed
	// records go to settings.deadLetterTopic. Optional. Default: 0 (the
	// first failed record fails the run).
	Record int `json:"record,omitempty"`
}

// SpeedSpec is seed 003's speed.
type SpeedSpec struct {
	// Bytes caps the record bytes read per second, over the whole run: 0
	// for no cap, else at least 1KiB. A number or a size such as "10MiB".
	// Optional. Default: 0 (no cap).
	Bytes connector.ByteSize `json:"bytes,omitempty"`
	// Concurrent is how many Kafka partitions are read in parallel: 1..64.
	// Optional. Default: 6 (the connector's default concurrency).
	Concurrent int `json:"concurrent,omitempty"`
}

// ScheduleSpec runs the job from a Temporal Schedule (never a cron loop of
// our own). Each run loads [previous fire time, nominal time).
type ScheduleSpec struct {
	// Cron is a five-field cron expression (minute hour day-of-month month
	// day-of-week) or @hourly, @daily, @midnight, @weekly, @monthly,
	// @yearly, @annually, in the subset CheckCron accepts and, in a zone
	// with daylight saving, one CheckSchedule accepts. Required.
	Cron string `json:"cron"`
	// TimeZone is the zone the cron expression is read in: UTC, GMT+hh:00
	// or an IANA name (see IANAZone; GMT+08:00 is Etc/GMT-8). It is also
	// the zone of yyyyMMddHHmmss datetimes in reader.begin and reader.end.
	// Optional. Default: the writer's timeZone when set, else GMT+08:00
	// for maxcompute and UTC for oss.
	TimeZone string `json:"timeZone,omitempty"`
	// Overlap is what happens when a window falls due while the previous
	// run is still running (see OverlapPolicies): bufferAll (run it after,
	// in order), bufferOne, skip, cancelOther, terminateOther or allowAll.
	// Only bufferAll and allowAll load every window; the others can leave
	// windows unloaded (counted in the schedule's info, to be backfilled).
	// Optional. Default: bufferAll.
	Overlap string `json:"overlap,omitempty"`
	// CatchupWindow is how far back Temporal still starts windows that fell
	// due while the schedule could not run (the Temporal service was down).
	// Windows older than it are not started; they are counted in the
	// schedule's info as missed and must be backfilled. At least 10s, and
	// short enough that the windows it covers fit Temporal's buffer of
	// 1000 starts (MaxCatchupWindow). Optional. Default: DefaultCatchupWindow
	// (7 days), or MaxCatchupWindow when that is shorter.
	CatchupWindow connector.Duration `json:"catchupWindow,omitempty"`
	// PauseOnFailure pauses the schedule when a run fails. While a schedule
	// is paused Temporal starts no window and does not count them as
	// missed: after unpausing, backfill the paused span.
	// Optional. Default: false (later windows still run; the failed one
	// stays failed, visible in the schedule's recent actions).
	PauseOnFailure bool `json:"pauseOnFailure,omitempty"`
	// Jitter delays each start by a random amount up to it (0..24h). The
	// window does not move: it follows the nominal time. Optional.
	// Default: 0.
	Jitter connector.Duration `json:"jitter,omitempty"`
	// Delay is how long after its nominal time a scheduled run waits
	// before it resolves its window: time for records stamped before the
	// window's end to reach Kafka (producer batching and retries, clock
	// skew). The window does not move: [previous fire time, nominal time).
	// A record that reaches Kafka after its window's run resolved the end
	// is outside both that window and the next (see the docs); a delay
	// longer than producers ever lag rules that out. 0..24h. Optional.
	// Default: 0.
	Delay connector.Duration `json:"delay,omitempty"`
}

// Value types of ReaderSpec.KeyType and ValueType (DataWorks Kafka Reader).
const (
	TypeByteArray = "BYTEARRAY"
	TypeDouble    = "DOUBLE"
	TypeFloat     = "FLOAT"
	TypeInteger   = "INTEGER"
	TypeLong      = "LONG"
	TypeShort     = "SHORT"
	TypeString    = "STRING"
)

// Defaults.
const (
	// DefaultCatchupWindow is ScheduleSpec.CatchupWindow's default: a week
	// covers ordinary downtime (a weekend, a long holiday), and it is also
	// Kafka's default retention (log.retention.hours=168), past which the
	// records of a missed window are usually gone anyway.
	DefaultCatchupWindow = 7 * 24 * time.Hour
	// DefaultConcurrent is SpeedSpec.Concurrent's default.
	DefaultConcurrent = 6
	// DefaultMaxComputeZone and DefaultOSSZone are the job's time zone when
	// neither the schedule nor the writer names one.
	DefaultMaxComputeZone = "GMT+08:00"
	DefaultOSSZone        = "UTC"
)

// DefaultColumns are MaxComputeWriter.Columns' default: the columns of
// seed 004's default table (topic, partition, offset, key, value).
func DefaultColumns() []connector.ColumnSpec {
	return []connector.ColumnSpec{
		{Name: "topic", Source: connector.SourceTopic},
		{Name: "partition", Source: connector.SourcePartition},
		{Name: "offset", Source: connector.SourceOffset},
		{Name: "key", Source: connector.SourceKey},
		{Name: "value", Source: connector.SourceValue},
	}
}

// Group is the job's consumer group, window-<name>: seekToLast reads it
// and a run commits its end there.
func (s *Spec) Group() string { return "window-" + s.Name }

// ScheduleID is the id of the job's Temporal Schedule, window-<name>.
func (s *Spec) ScheduleID() string { return "window-" + s.Name }

// Default fills in every optional field that is unset. It is idempotent.
func (s *Spec) Default() {
	r := &s.Reader
	if r.Begin.IsZero() {
		r.Begin = WindowPosition()
	}
	if r.End.IsZero() {
		r.End = WindowPosition()
	}
	r.KeyType = strings.ToUpper(r.KeyType)
	r.ValueType = strings.ToUpper(r.ValueType)
	if r.KeyType == "" {
		r.KeyType = TypeByteArray
	}
	if r.ValueType == "" {
		r.ValueType = TypeByteArray
	}
	if r.SkipExceedRecord == nil {
		r.SkipExceedRecord = ptr(true)
	}

	// One zone for the job unless the user gives two: the schedule's, else
	// the writer's, else the destination's default.
	zone := ""
	switch {
	case s.Schedule != nil && s.Schedule.TimeZone != "":
		zone = s.Schedule.TimeZone
	case s.Writer.MaxCompute != nil && s.Writer.MaxCompute.TimeZone != "":
		zone = s.Writer.MaxCompute.TimeZone
	case s.Writer.OSS != nil && s.Writer.OSS.TimeZone != "":
		zone = s.Writer.OSS.TimeZone
	case s.Writer.MaxCompute != nil:
		zone = DefaultMaxComputeZone
	default:
		zone = DefaultOSSZone
	}
	if m := s.Writer.MaxCompute; m != nil {
		if m.TimeZone == "" {
			m.TimeZone = zone
		}
		if len(m.Columns) == 0 {
			m.Columns = DefaultColumns()
		}
		if m.Truncate == nil {
			m.Truncate = ptr(true)
		}
	}
	if o := s.Writer.OSS; o != nil {
		if o.TimeZone == "" {
			o.TimeZone = zone
		}
		if o.Prefix == "" && r.Topic != "" {
			o.Prefix = r.Topic + "/${begin}_${end}"
		}
		if o.Format == nil {
			o.Format = &format.Spec{}
		}
		o.Format.Default()
	}

	if s.Settings.Speed.Concurrent == 0 {
		s.Settings.Speed.Concurrent = DefaultConcurrent
	}
	if s.Settings.DeadLetterTopic == "" && s.Name != "" {
		s.Settings.DeadLetterTopic = "window-error-" + s.Name
	}

	if sc := s.Schedule; sc != nil {
		if sc.TimeZone == "" {
			sc.TimeZone = zone
		}
		if sc.Overlap == "" {
			sc.Overlap = OverlapBufferAll
		}
		if sc.CatchupWindow == 0 {
			cw := DefaultCatchupWindow
			if max, err := MaxCatchupWindow(sc.Cron); err == nil && max < cw {
				cw = max
			}
			sc.CatchupWindow = connector.Duration(cw)
		}
	}
}

// Location is the job's time zone for yyyyMMddHHmmss datetimes in
// reader.begin and reader.end: the schedule's, else the writer's. Call it
// on a defaulted, valid Spec.
func (s *Spec) Location() (*time.Location, error) {
	return LoadZone(s.zone())
}

func (s *Spec) zone() string {
	switch {
	case s.Schedule != nil:
		return s.Schedule.TimeZone
	case s.Writer.MaxCompute != nil:
		return s.Writer.MaxCompute.TimeZone
	case s.Writer.OSS != nil:
		return s.Writer.OSS.TimeZone
	}
	return DefaultOSSZone
}

// KafkaSpec returns the reader's connection settings in the connector's
// form, for package kafka's client options (brokers, SASL, TLS).
func (r ReaderSpec) KafkaSpec() connector.KafkaSpec {
	return connector.KafkaSpec{Brokers: r.Brokers, Topic: r.Topic, SASL: r.SASL, TLS: r.TLS}
}

// Parse reads a Spec from YAML or JSON, fills in defaults and validates it.
// Unknown fields, fields in the wrong letter case and fields given twice
// are violations (connector.CheckFields), reported in one
// *connector.ValidationError with Validate's. A document that cannot be
// read, or a value of the wrong type, is a plain error.
func Parse(data []byte) (*Spec, error) {
	var s Spec
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse window job spec: %w", err)
	}
	return finish(data, &s)
}

// ParseJSON is Parse for the JSON a workflow receives (decoded with
// encoding/json, as Temporal's default data converter does). For the same
// document it returns the same violations as Parse.
func ParseJSON(raw []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("parse window job spec: %w", err)
	}
	return finish(raw, &s)
}

// finish checks doc's fields against s's type, defaults and validates s,
// and reports the field violations first.
func finish(doc []byte, s *Spec) (*Spec, error) {
	vs, err := connector.CheckFields(doc, s)
	if err != nil {
		return nil, fmt.Errorf("parse window job spec: %w", err)
	}
	s.Default()
	if err := s.Validate(); err != nil {
		var ve *connector.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		vs = append(vs, ve.Violations...)
	}
	if len(vs) > 0 {
		return nil, &connector.ValidationError{Doc: DocName, Violations: vs}
	}
	return s, nil
}

// Load reads and parses the spec file at path (see Parse).
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read window job spec: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// JSON returns the spec as indented JSON, the form workflow inputs take.
func (s *Spec) JSON() string {
	b, _ := json.MarshalIndent(s, "", "  ")
	return string(b)
}

func ptr[T any](v T) *T { return &v }
