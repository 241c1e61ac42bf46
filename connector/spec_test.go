package connector

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ossYAML = `
name: demo-oss
kafka:
  brokers: ["127.0.0.1:9092"]
  topic: demo
sink:
  type: oss
  oss:
    endpoint: http://127.0.0.1:9300
    bucket: dumpflow
    credentials: local
`

func validSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := Parse([]byte(ossYAML))
	require.NoError(t, err)
	return s
}

func validMC() *Spec {
	s := &Spec{Name: "demo-mc", Kafka: KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, Topic: "demo"},
		Sink: SinkSpec{Type: SinkMaxCompute, MaxCompute: &MaxComputeSpec{Endpoint: "http://127.0.0.1:9400/api", Project: "dumpflow", Table: "kafka_demo", Credentials: "local"}}}
	s.Default()
	return s
}

func TestDefaults(t *testing.T) {
	s := validSpec(t)
	require.Equal(t, 6, s.Concurrency)
	require.Equal(t, "earliest", s.Kafka.InitialPosition)
	require.Equal(t, "connect-demo-oss", s.Kafka.Group)
	require.Equal(t, "connect-demo-oss", s.Group())
	require.Equal(t, "connector-demo-oss", s.WorkflowID())
	require.Equal(t, 50000, s.Batch.MaxRecords)
	require.Equal(t, ByteSize(16<<20), s.Batch.MaxBytes)
	require.Equal(t, 10*time.Second, s.Batch.FlushInterval.D())
	require.Equal(t, ToleranceContinue, s.Errors.Tolerance)
	require.Equal(t, "connect-error-demo-oss", s.Errors.DeadLetterTopic)
	require.Equal(t, s.Errors.DeadLetterTopic, s.Errors.ErrorDataTopic)
	require.Equal(t, "{topic}", s.Sink.OSS.Path)
	require.Equal(t, ByteSize(8<<20), s.Sink.OSS.PartSize)

	m := validMC()
	require.NoError(t, m.Validate())
	require.Equal(t, 250000, m.Batch.MaxRecords)
	require.Equal(t, ByteSize(64<<20), m.Batch.MaxBytes)
	require.Equal(t, 60*time.Second, m.Batch.FlushInterval.D())
	require.Equal(t, "DEFAULT", m.Sink.MaxCompute.Mode)
	require.Equal(t, "TEXT", m.Sink.MaxCompute.Format)
	require.Equal(t, "HOUR", m.Sink.MaxCompute.Partition)
	require.Equal(t, "GMT+08:00", m.Sink.MaxCompute.TimeZone)
}

func TestParseUnitsAndJSON(t *testing.T) {
	s, err := Parse([]byte(ossYAML + "batch:\n  maxBytes: 4MiB\n  flushInterval: 2s\n"))
	require.NoError(t, err)
	require.Equal(t, ByteSize(4<<20), s.Batch.MaxBytes)
	require.Equal(t, 2*time.Second, s.Batch.FlushInterval.D())

	again, err := Parse([]byte(s.JSON()))
	require.NoError(t, err)
	require.Equal(t, s, again)

	_, err = Parse([]byte(ossYAML + "bogus: 1\n"))
	require.ErrorContains(t, err, "bogus")
}

// TestValidate covers every rule: each case breaks one and names the field
// and a fragment of the rule the message must carry.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mc     bool
		mutate func(*Spec)
		field  string
		rule   string
	}{
		{"name required", false, func(s *Spec) { s.Name = "" }, "name", "is required"},
		{"name too long", false, func(s *Spec) { s.Name = strings.Repeat("a", 49); s.Kafka.Group = "connect-" + s.Name }, "name", "at most 48"},
		{"name leading dash", false, func(s *Spec) { s.Name = "-x"; s.Kafka.Group = "connect--x" }, "name", "must not start with '-'"},
		{"name uppercase", false, func(s *Spec) { s.Name = "Demo"; s.Kafka.Group = "connect-Demo" }, "name", "lowercase letters, digits and '-'"},
		{"name underscore", false, func(s *Spec) { s.Name = "a_b"; s.Kafka.Group = "connect-a_b" }, "name", "lowercase letters"},
		{"no brokers", false, func(s *Spec) { s.Kafka.Brokers = nil }, "kafka.brokers", "at least one"},
		{"broker without port", false, func(s *Spec) { s.Kafka.Brokers = []string{"localhost"} }, "kafka.brokers[0]", "host:port"},
		{"broker bad port", false, func(s *Spec) { s.Kafka.Brokers = []string{"localhost:99999"} }, "kafka.brokers[0]", "1..65535"},
		{"topic required", false, func(s *Spec) { s.Kafka.Topic = "" }, "kafka.topic", "is required"},
		{"topic chars", false, func(s *Spec) { s.Kafka.Topic = "a b" }, "kafka.topic", "letters, digits"},
		{"initial position", false, func(s *Spec) { s.Kafka.InitialPosition = "middle" }, "kafka.initialPosition", "earliest or latest"},
		{"group fixed", false, func(s *Spec) { s.Kafka.Group = "mine" }, "kafka.group", "connect-demo-oss"},
		{"sasl mechanism", false, func(s *Spec) { s.Kafka.SASL = &SASLSpec{Mechanism: "GSSAPI", Credentials: "k"} }, "kafka.sasl.mechanism", "PLAIN, SCRAM"},
		{"sasl credentials", false, func(s *Spec) { s.Kafka.SASL = &SASLSpec{Mechanism: "PLAIN"} }, "kafka.sasl.credentials", "is required"},
		{"concurrency", false, func(s *Spec) { s.Concurrency = 4 }, "concurrency", "1, 2, 3, 6, 12"},
		{"partitionsPerWorkflow", false, func(s *Spec) { s.PartitionsPerWorkflow = 5000 }, "partitionsPerWorkflow", "1..4096"},
		{"max records", false, func(s *Spec) { s.Batch.MaxRecords = -1 }, "batch.maxRecords", "1..1000000"},
		{"max bytes", false, func(s *Spec) { s.Batch.MaxBytes = 10 }, "batch.maxBytes", "1KiB..1GiB"},
		{"flush interval", false, func(s *Spec) { s.Batch.FlushInterval = Duration(time.Millisecond) }, "batch.flushInterval", "100ms..24h"},
		{"tolerance", false, func(s *Spec) { s.Errors.Tolerance = "ignore" }, "errors.tolerance", "continue or stop"},
		{"dlq chars", false, func(s *Spec) { s.Errors.DeadLetterTopic = "a/b" }, "errors.deadLetterTopic", "letters, digits"},
		{"dlq is source", false, func(s *Spec) { s.Errors.DeadLetterTopic = "demo" }, "errors.deadLetterTopic", "differ from kafka.topic"},
		{"error topic is source", false, func(s *Spec) { s.Errors.ErrorDataTopic = "demo" }, "errors.errorDataTopic", "differ from kafka.topic"},
		{"max record bytes", false, func(s *Spec) { s.Errors.MaxRecordBytes = -1 }, "errors.maxRecordBytes", "1..1GiB"},
		{"sink type", false, func(s *Spec) { s.Sink.Type = "s3" }, "sink.type", "oss or maxcompute"},
		{"oss missing", false, func(s *Spec) { s.Sink.OSS = nil }, "sink.oss", "is required"},
		{"oss and mc", false, func(s *Spec) { s.Sink.MaxCompute = &MaxComputeSpec{} }, "sink.maxcompute", "must be empty"},
		{"oss endpoint", false, func(s *Spec) { s.Sink.OSS.Endpoint = "oss-cn-hangzhou" }, "sink.oss.endpoint", "http:// or https://"},
		{"oss bucket", false, func(s *Spec) { s.Sink.OSS.Bucket = "My_Bucket" }, "sink.oss.bucket", "3..63 lowercase"},
		{"oss path var", false, func(s *Spec) { s.Sink.OSS.Path = "{topic}/{date}" }, "sink.oss.path", "unknown variable {date}"},
		{"oss path slash", false, func(s *Spec) { s.Sink.OSS.Path = "/x" }, "sink.oss.path", "must not start with '/'"},
		{"oss path dots", false, func(s *Spec) { s.Sink.OSS.Path = "a/../b" }, "sink.oss.path", "'..'"},
		{"oss time zone", false, func(s *Spec) { s.Sink.OSS.TimeZone = "Mars/Base" }, "sink.oss.timeZone", "IANA"},
		{"oss credentials", false, func(s *Spec) { s.Sink.OSS.Credentials = "" }, "sink.oss.credentials", "is required"},
		{"oss credentials secret-like", false, func(s *Spec) { s.Sink.OSS.Credentials = "LTAI5t:secret/+=" }, "sink.oss.credentials", "never the secret"},
		{"oss part size", false, func(s *Spec) { s.Sink.OSS.PartSize = 1024 }, "sink.oss.partSize", "100KiB..5GiB"},
		{"mc missing", true, func(s *Spec) { s.Sink.MaxCompute = nil }, "sink.maxcompute", "is required"},
		{"mc endpoint", true, func(s *Spec) { s.Sink.MaxCompute.Endpoint = "" }, "sink.maxcompute.endpoint", "is required"},
		{"mc tunnel endpoint", true, func(s *Spec) { s.Sink.MaxCompute.TunnelEndpoint = "tcp://x" }, "sink.maxcompute.tunnelEndpoint", "http://"},
		{"mc project", true, func(s *Spec) { s.Sink.MaxCompute.Project = "1abc" }, "sink.maxcompute.project", "identifier"},
		{"mc table", true, func(s *Spec) { s.Sink.MaxCompute.Table = "a-b" }, "sink.maxcompute.table", "identifier"},
		{"mc credentials", true, func(s *Spec) { s.Sink.MaxCompute.Credentials = "" }, "sink.maxcompute.credentials", "is required"},
		{"mc mode", true, func(s *Spec) { s.Sink.MaxCompute.Mode = "BOTH" }, "sink.maxcompute.mode", "KEY, VALUE or DEFAULT"},
		{"mc format", true, func(s *Spec) { s.Sink.MaxCompute.Format = "JSON" }, "sink.maxcompute.format", "TEXT, BINARY, CSV or FIELDS"},
		{"mc csv default", true, func(s *Spec) { s.Sink.MaxCompute.Format = "CSV" }, "sink.maxcompute.format", "only with mode KEY or VALUE"},
		{"mc partition", true, func(s *Spec) { s.Sink.MaxCompute.Partition = "WEEK" }, "sink.maxcompute.partition", "DAY, HOUR or MINUTE"},
		{"mc time zone", true, func(s *Spec) { s.Sink.MaxCompute.TimeZone = "GMT+25:00" }, "sink.maxcompute.timeZone", "GMT+hh:mm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec(t)
			if tt.mc {
				s = validMC()
			}
			tt.mutate(s)
			err := s.Validate()
			require.Error(t, err)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			found := false
			for _, v := range ve.Violations {
				if v.Field == tt.field && strings.Contains(v.Rule, tt.rule) {
					found = true
				}
			}
			require.Truef(t, found, "want a violation of %s containing %q, got:\n%v", tt.field, tt.rule, err)
		})
	}
}

func TestValidateReportsEveryViolation(t *testing.T) {
	s := validSpec(t)
	s.Concurrency = 5
	s.Kafka.Topic = ""
	s.Sink.OSS.Bucket = "X"
	err := s.Validate()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Violations, 3)
	require.Contains(t, err.Error(), `concurrency: "5" must be one of 1, 2, 3, 6, 12`)
}

func TestParseTimeZone(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		ok     bool
	}{
		{"GMT+08:00", 8 * 3600, true},
		{"GMT 08:00", 8 * 3600, true},
		{"GMT-05:30", -(5*3600 + 30*60), true},
		{"UTC+8", 8 * 3600, true},
		{"UTC", 0, true},
		{"Asia/Shanghai", 8 * 3600, true},
		{"GMT+15:00", 0, false},
		{"Nowhere/City", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		loc, err := ParseTimeZone(tt.in)
		if !tt.ok {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		_, off := time.Date(2020, 11, 17, 0, 0, 0, 0, loc).Zone()
		require.Equal(t, tt.offset, off, tt.in)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "4KiB": 4096, "16MiB": 16 << 20, "64MB": 64e6, "1GiB": 1 << 30, "10B": 10} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ParseByteSize("ten")
	require.Error(t, err)
	require.Equal(t, "16MiB", ByteSize(16<<20).String())
}

func TestResolveCredentials(t *testing.T) {
	t.Setenv("DUMPFLOW_CRED_MY_OSS_ACCESS_KEY_ID", "id")
	t.Setenv("DUMPFLOW_CRED_MY_OSS_ACCESS_KEY_SECRET", "secret")
	c, err := ResolveCredentials("my-oss")
	require.NoError(t, err)
	require.Equal(t, "id", c.AccessKeyID)
	require.NotContains(t, c.String(), "secret")

	dir := t.TempDir()
	t.Setenv("DUMPFLOW_CREDENTIALS_DIR", dir)
	_, err = ResolveCredentials("missing")
	require.ErrorContains(t, err, "DUMPFLOW_CRED_MISSING_ACCESS_KEY_ID")
}

func TestShards(t *testing.T) {
	var s Spec
	require.Equal(t, 0, s.Shards(32), "32 partitions fit one workflow at the default")
	require.Equal(t, 2, s.Shards(33))
	require.Equal(t, 8, s.Shards(256))
	s.PartitionsPerWorkflow = 2
	require.Equal(t, 0, s.Shards(2))
	require.Equal(t, 3, s.Shards(6))
	require.Equal(t, 3, s.Shards(5))
	require.Equal(t, "connector-demo/shard-2", ShardWorkflowID("demo", 2))
}
