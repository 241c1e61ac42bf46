// Package connector owns the connector Spec: the one typed document (YAML or
// JSON) that describes a Kafka → OSS or Kafka → MaxCompute connector, its
// documented defaults, and Validate, which reports every violation at once.
// It also owns Credentials: resolving a credentials name on a worker, and
// checking that the spec uses them only where they are allowed.
//
// Everything else in dumpflow (workflows, activities, sinks, the starter CLI)
// takes a validated Spec. A Spec never carries a secret: it names credentials
// (see Credentials) and workers resolve the name from their environment.
//
// # Reading a spec
//
// Parse and Load read YAML or JSON; ParseJSON reads the JSON a workflow
// receives. All three decode strictly: CheckFields reports unknown keys,
// keys that differ from a field only in letter case, and fields given twice,
// and those violations come in one *ValidationError together with Validate's.
// So starter create, the temporal CLI and the Web UI give the same errors for
// the same document. CheckFields is generic (it walks any Go type by its json
// tags) so other document kinds decode the same way.
//
// # Specs in workflows
//
// A workflow receives its spec through Temporal's default data converter,
// which is encoding/json: unknown keys are dropped and keys match in any
// case. A workflow that has the spec's raw JSON should therefore:
//
//   - on a first start, call ParseJSON and fail on its error: a misspelt
//     field never silently becomes a default;
//   - on a run continued as new (the connector is already running, and a
//     build with stricter rules may have been deployed since it started),
//     call DecodeLenient and then Validate, and log the violations as a
//     warning instead of failing a running connector.
//
// ParseJSON, DecodeLenient, Default and Validate do no I/O other than
// reading time zone data and are deterministic, so workflow code may call
// them.
//
// # Credentials
//
// ResolveCredentials finds credentials by name on a worker. Credentials may
// carry an allow-list (CredentialScope) of endpoints, buckets, projects and
// brokers; a worker calls CheckCredentialUse (or Credentials.Permit) before
// using them, and a refusal is a *CredentialUseError.
package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA time zones on minimal machines

	"sigs.k8s.io/yaml"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// Spec describes one connector. Field comments give each default; Default
// fills them in and Validate checks the result. Keys are the json tags,
// matched with exact case; any other key is an error (see Parse).
type Spec struct {
	// Name identifies the connector: lowercase letters, digits and '-', not
	// starting with '-', at most 48 characters. Required.
	Name string `json:"name"`
	// Kafka is the source topic and how to reach it. Required.
	Kafka KafkaSpec `json:"kafka"`
	// Concurrency is how many partition loops run in parallel; partitions are
	// spread over the loops round-robin. One of 1, 2, 3, 6, 12.
	// Optional. Default: 6.
	Concurrency int `json:"concurrency,omitempty"`
	// PartitionsPerWorkflow is how many partitions one workflow runs. A
	// topic with more partitions when the connector starts has its
	// partitions spread over shard workflows, children of the connector's
	// workflow (partition p runs in shard p mod shards), so that no one
	// history grows faster than Temporal sustains; concurrency is then
	// shared among them. Fixed for the connector's life. 1..4096.
	// Optional. Default (0): 32.
	PartitionsPerWorkflow int `json:"partitionsPerWorkflow,omitempty"`
	// Batch bounds each write. Optional; see BatchSpec for defaults.
	Batch BatchSpec `json:"batch,omitempty"`
	// Errors says what happens to records and writes that fail.
	Errors ErrorSpec `json:"errors,omitempty"`
	// Transforms is the chain of steps every record goes through between
	// Kafka and the sink: filter, reshape, route, or a WebAssembly function
	// (docs/transforms.md). Optional. Default: none (records are written as
	// they are).
	Transforms []transform.StepSpec `json:"transforms,omitempty"`
	// Sink is the destination. Required.
	Sink SinkSpec `json:"sink"`
}

// KafkaSpec is the source.
type KafkaSpec struct {
	// Brokers are seed broker addresses, host:port. Required.
	Brokers []string `json:"brokers"`
	// Topic is the source topic. Required.
	Topic string `json:"topic"`
	// InitialPosition is where a new connector starts when neither the sink's
	// meta state nor the consumer group has an offset: earliest or latest.
	// Optional. Default: earliest.
	InitialPosition string `json:"initialPosition,omitempty"`
	// Group is the consumer group whose offsets mirror progress. It is always
	// connect-<name>; setting anything else is an error.
	// Optional. Default: connect-<name>.
	Group string `json:"group,omitempty"`
	// SASL enables SASL authentication. Optional. Default: none.
	SASL *SASLSpec `json:"sasl,omitempty"`
	// TLS enables TLS to the brokers. Optional. Default: plaintext.
	TLS *TLSSpec `json:"tls,omitempty"`
}

// SASLSpec selects a SASL mechanism; the user name and password come from
// the named credentials (AccessKeyID is the user, AccessKeySecret the
// password).
type SASLSpec struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Required.
	Mechanism string `json:"mechanism"`
	// Credentials names the credentials to resolve. Required. When they
	// carry an allow-list, every broker of kafka.brokers must be on it
	// (CheckCredentialUse).
	Credentials string `json:"credentials"`
}

// TLSSpec configures TLS to the brokers.
type TLSSpec struct {
	// CAFile is a PEM bundle to trust. Optional. Default: system roots.
	CAFile string `json:"caFile,omitempty"`
	// InsecureSkipVerify disables certificate checks. Optional. Default: false.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// BatchSpec bounds one write (one OSS object, one set of tunnel sessions).
// A batch ends at whichever limit comes first.
type BatchSpec struct {
	// MaxRecords caps the records in one batch. It is also the backlog a
	// partition waits for before it writes without waiting for
	// FlushInterval. Optional. Default: 50000 for OSS, whose batch is
	// built in memory; 250000 for MaxCompute, whose batch holds no rows
	// (each row is streamed into its tunnel session's open block as it is
	// added), so that MaxBytes (64MiB) ends the batch for records of about
	// 270 bytes and more instead. It is not higher because a partition
	// with fewer records than this waiting and no backlog yet (a first
	// write, a topic that just woke) waits up to FlushInterval.
	MaxRecords int `json:"maxRecords,omitempty"`
	// MaxBytes caps the record bytes in one batch; the record that crosses it
	// ends the batch. Optional. Default: 16MiB for OSS, 64MiB for MaxCompute.
	MaxBytes ByteSize `json:"maxBytes,omitempty"`
	// FlushInterval is how long a partition waits for a full batch before it
	// writes what it has. Optional. Default: 10s for OSS, 60s for MaxCompute.
	FlushInterval Duration `json:"flushInterval,omitempty"`
}

// Tolerance values for ErrorSpec.Tolerance.
const (
	ToleranceContinue = "continue"
	ToleranceStop     = "stop"
)

// ErrorSpec says what happens on failure.
type ErrorSpec struct {
	// Tolerance is what a partition does when a write still fails after its
	// retries: continue (route the range to the error-data topic and go on) or
	// stop (park the partition until a resume signal). Records the sink
	// cannot take always go to the dead-letter topic.
	// Optional. Default: continue.
	Tolerance string `json:"tolerance,omitempty"`
	// DeadLetterTopic receives records the sink cannot take, with headers
	// naming their origin and the error. Optional. Default: connect-error-<name>.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	// ErrorDataTopic receives records of ranges given up under continue. It
	// may be the same topic as DeadLetterTopic.
	// Optional. Default: the dead-letter topic.
	ErrorDataTopic string `json:"errorDataTopic,omitempty"`
	// MaxRecordBytes is the largest record (key+value) the sink takes; larger
	// ones go to the dead-letter topic. Optional. Default: 8MiB.
	MaxRecordBytes ByteSize `json:"maxRecordBytes,omitempty"`
}

// Sink types.
const (
	SinkOSS        = "oss"
	SinkMaxCompute = "maxcompute"
)

// SinkSpec selects and configures the destination. Exactly one of OSS and
// MaxCompute is set, matching Type.
type SinkSpec struct {
	// Type is oss or maxcompute. Required.
	Type string `json:"type"`
	// OSS configures the OSS sink when Type is oss.
	OSS *OSSSpec `json:"oss,omitempty"`
	// MaxCompute configures the MaxCompute sink when Type is maxcompute.
	MaxCompute *MaxComputeSpec `json:"maxcompute,omitempty"`
}

// OSSSpec configures the OSS sink.
type OSSSpec struct {
	// Endpoint is the OSS endpoint URL, e.g. https://oss-cn-hangzhou.aliyuncs.com. Required.
	Endpoint string `json:"endpoint"`
	// Bucket is the destination bucket. Required.
	Bucket string `json:"bucket"`
	// Path is the folder template objects are written under. It may use
	// {topic}, {partition}, {yyyy}, {MM}, {dd}, {HH} and {mm}; time fields
	// come from the first record's timestamp in TimeZone.
	// Optional. Default: "{topic}".
	Path string `json:"path,omitempty"`
	// TimeZone for the time folders: "UTC", "GMT+08:00" or an IANA name.
	// Optional. Default: UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// Credentials names the access key to resolve. Required. When the
	// credentials carry an allow-list, Endpoint and Bucket must be on it
	// (CheckCredentialUse).
	Credentials string `json:"credentials"`
	// PathStyle addresses the bucket in the path instead of the host name
	// (needed by S3-compatible local servers). Optional. Default: false.
	PathStyle bool `json:"pathStyle,omitempty"`
	// PartSize is the multipart part size; a batch larger than one part is
	// uploaded in parts. 100KiB..5GiB. Optional. Default: 8MiB.
	PartSize ByteSize `json:"partSize,omitempty"`
	// Format is the objects' format — raw values (seed 000), JSON lines, CSV
	// or Parquet — and compression (package format, docs/transforms.md).
	// Optional. Default: raw, uncompressed; a value holding a line break is
	// rejected to the dead-letter topic.
	Format *format.Spec `json:"format,omitempty"`
}

// MaxCompute modes, formats and partition granularities (seed 004).
const (
	ModeDefault = "DEFAULT"
	ModeKey     = "KEY"
	ModeValue   = "VALUE"

	FormatText   = "TEXT"
	FormatBinary = "BINARY"
	FormatCSV    = "CSV"
	// FormatFields fills the table's columns by name from the record's
	// fields (the transform chain's output, or a JSON object value).
	FormatFields = "FIELDS"

	GranularityDay    = "DAY"
	GranularityHour   = "HOUR"
	GranularityMinute = "MINUTE"
)

// MaxComputeSpec configures the MaxCompute sink.
type MaxComputeSpec struct {
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
	// CreateTable creates the table with the default schema when it is
	// missing. Optional. Default: false.
	CreateTable bool `json:"createTable,omitempty"`
	// Credentials names the access key to resolve. Required. When the
	// credentials carry an allow-list, Endpoint, TunnelEndpoint (if set) and
	// Project must be on it (CheckCredentialUse).
	Credentials string `json:"credentials"`
	// Mode is KEY, VALUE or DEFAULT (key and value). Optional. Default: DEFAULT.
	Mode string `json:"mode,omitempty"`
	// Format is TEXT, BINARY or CSV; CSV only with KEY or VALUE.
	// Optional. Default: TEXT.
	Format string `json:"format,omitempty"`
	// Partition is the partition granularity: DAY, HOUR or MINUTE.
	// Optional. Default: HOUR.
	Partition string `json:"partition,omitempty"`
	// TimeZone of the producers, for partition values: "GMT+08:00" or an IANA
	// name. Optional. Default: GMT+08:00.
	TimeZone string `json:"timeZone,omitempty"`
	// Columns maps table columns to where their values come from, for
	// format FIELDS. Optional. Default: every column from the record's field
	// of the same name (see ColumnSpec).
	Columns []ColumnSpec `json:"columns,omitempty"`
}

// ColumnSpec fills one table column (format FIELDS).
type ColumnSpec struct {
	// Name is the table column. Required.
	Name string `json:"name"`
	// Source is where the value comes from: a field path into the record's
	// fields (e.g. "user.id"; the transform chain's output, or the value
	// parsed as a JSON object), one of __key__, __value__, __topic__,
	// __partition__, __offset__, __timestamp__ (seed 003's names) and
	// __headers__ (a JSON object of the headers), or a constant in single
	// quotes ('web'). Optional. Default: Name, as a field path.
	Source string `json:"source,omitempty"`
}

// Group returns the consumer group, connect-<name>.
func (s *Spec) Group() string { return "connect-" + s.Name }

// WorkflowID returns the connector workflow's id, connector-<name>.
func (s *Spec) WorkflowID() string { return WorkflowID(s.Name) }

// WorkflowID returns the workflow id of the connector named name.
func WorkflowID(name string) string { return "connector-" + name }

// DefaultPartitionsPerWorkflow is PartitionsPerWorkflow's default.
const DefaultPartitionsPerWorkflow = 32

// Shards is how many shard workflows a connector over a topic of n
// partitions runs: 0 (its own workflow runs them) unless n exceeds
// PartitionsPerWorkflow.
func (s *Spec) Shards(n int) int {
	per := s.PartitionsPerWorkflow
	if per <= 0 {
		per = DefaultPartitionsPerWorkflow
	}
	if n <= per {
		return 0
	}
	return (n + per - 1) / per
}

// ShardWorkflowID returns the workflow id of shard k of the connector
// named name: connector-<name>/shard-<k>. A name cannot hold '/', so it
// is never another connector's id.
func ShardWorkflowID(name string, k int) string {
	return WorkflowID(name) + "/shard-" + strconv.Itoa(k)
}

// Default fills in every optional field that is unset. It is idempotent.
func (s *Spec) Default() {
	if s.Concurrency == 0 {
		s.Concurrency = 6
	}
	if s.Kafka.InitialPosition == "" {
		s.Kafka.InitialPosition = "earliest"
	}
	if s.Kafka.Group == "" && s.Name != "" {
		s.Kafka.Group = s.Group()
	}
	mc := s.Sink.Type == SinkMaxCompute
	if s.Batch.MaxRecords == 0 {
		s.Batch.MaxRecords = 50000
		if mc {
			s.Batch.MaxRecords = 250000
		}
	}
	if s.Batch.MaxBytes == 0 {
		s.Batch.MaxBytes = 16 << 20
		if mc {
			s.Batch.MaxBytes = 64 << 20
		}
	}
	if s.Batch.FlushInterval == 0 {
		s.Batch.FlushInterval = Duration(10 * time.Second)
		if mc {
			s.Batch.FlushInterval = Duration(60 * time.Second)
		}
	}
	if s.Errors.Tolerance == "" {
		s.Errors.Tolerance = ToleranceContinue
	}
	if s.Errors.DeadLetterTopic == "" && s.Name != "" {
		s.Errors.DeadLetterTopic = "connect-error-" + s.Name
	}
	if s.Errors.ErrorDataTopic == "" {
		s.Errors.ErrorDataTopic = s.Errors.DeadLetterTopic
	}
	if s.Errors.MaxRecordBytes == 0 {
		s.Errors.MaxRecordBytes = 8 << 20
	}
	if o := s.Sink.OSS; o != nil {
		if o.Path == "" {
			o.Path = "{topic}"
		}
		if o.Format == nil {
			o.Format = &format.Spec{}
		}
		o.Format.Default()
		if o.TimeZone == "" {
			o.TimeZone = "UTC"
		}
		if o.PartSize == 0 {
			o.PartSize = 8 << 20
		}
	}
	if m := s.Sink.MaxCompute; m != nil {
		if m.Mode == "" {
			m.Mode = ModeDefault
		}
		if m.Format == "" {
			m.Format = FormatText
		}
		if m.Partition == "" {
			m.Partition = GranularityHour
		}
		if m.TimeZone == "" {
			m.TimeZone = "GMT+08:00"
		}
		m.Mode = strings.ToUpper(m.Mode)
		m.Format = strings.ToUpper(m.Format)
		m.Partition = strings.ToUpper(m.Partition)
	}
}

// Parse reads a Spec from YAML or JSON (JSON is YAML), fills in defaults and
// validates it. Unknown fields, fields in the wrong letter case and fields
// given twice are violations (see CheckFields), reported in one
// *ValidationError with Validate's, so a typo never silently becomes a
// default. A document that cannot be read, or a value of the wrong type, is
// a plain error.
func Parse(data []byte) (*Spec, error) {
	var s Spec
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	fvs, err := CheckFields(data, &s)
	if err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	return finish(&s, fvs)
}

// ParseJSON is Parse for the JSON a workflow receives: it decodes raw with
// encoding/json (as Temporal's default data converter does), reports unknown
// and mis-cased fields like Parse, fills in defaults and validates. For the
// same document it returns the same violations as Parse. Use it when a
// connector first starts; see DecodeLenient for runs continued as new.
func ParseJSON(raw []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	tree, err := jsonTree(raw)
	if err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	fvs, err := checkTree(tree, &s)
	if err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	return finish(&s, fvs)
}

// DecodeLenient decodes the JSON of a spec the way Temporal's default data
// converter does, ignoring unknown fields, and fills in defaults. It does not
// validate: a run continued as new calls Validate itself and may log the
// violations instead of failing, because the spec was accepted when the
// connector started and a newer build may have stricter rules. The error is
// non-nil only when raw is not JSON of the spec's shape.
func DecodeLenient(raw []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	s.Default()
	return &s, nil
}

// finish defaults and validates s and reports fvs, the field violations,
// first.
func finish(s *Spec, fvs []Violation) (*Spec, error) {
	s.Default()
	vs := fvs
	if err := s.Validate(); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		vs = append(vs, ve.Violations...)
	}
	if len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	return s, nil
}

// Load reads and parses the spec file at path (see Parse).
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
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
