package window

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

const mcYAML = `
name: orders-hourly
reader:
  brokers: ["kafka:9092"]
  topic: orders
  valueType: STRING
writer:
  maxcompute:
    endpoint: http://service.cn-hangzhou.maxcompute.aliyun.com/api
    project: dw
    table: orders
    credentials: odps
    partition: pt=${yyyyMMddHH}
    columns:
      - {name: value, source: __value__}
schedule:
  cron: "0 * * * *"
`

const ossYAML = `
name: orders-oss
reader:
  brokers: ["kafka:9092"]
  topic: orders
writer:
  oss:
    endpoint: https://oss-cn-hangzhou.aliyuncs.com
    bucket: dumps
    credentials: oss
`

func parse(t *testing.T, doc string) *Spec {
	t.Helper()
	s, err := Parse([]byte(doc))
	require.NoError(t, err)
	return s
}

func TestDefaults(t *testing.T) {
	s := parse(t, mcYAML)
	r := s.Reader
	require.Equal(t, WindowPosition(), r.Begin)
	require.Equal(t, WindowPosition(), r.End)
	require.Equal(t, TypeByteArray, r.KeyType)
	require.Equal(t, TypeString, r.ValueType)
	require.True(t, *r.SkipExceedRecord)
	m := s.Writer.MaxCompute
	require.Equal(t, "GMT+08:00", m.TimeZone)
	require.True(t, *m.Truncate)
	require.Equal(t, DefaultConcurrent, s.Settings.Speed.Concurrent)
	require.Equal(t, 0, s.Settings.ErrorLimit.Record)
	require.Equal(t, connector.ByteSize(0), s.Settings.Speed.Bytes)
	require.Equal(t, "window-error-orders-hourly", s.Settings.DeadLetterTopic)
	require.Equal(t, "window-orders-hourly", s.Group())
	require.Equal(t, "window-orders-hourly", s.ScheduleID())
	sc := s.Schedule
	require.Equal(t, "GMT+08:00", sc.TimeZone)
	require.Equal(t, OverlapBufferAll, sc.Overlap)
	require.Equal(t, DefaultCatchupWindow, sc.CatchupWindow.D())
	require.False(t, sc.PauseOnFailure)
	require.Zero(t, sc.Jitter)

	o := parse(t, ossYAML)
	require.Equal(t, "orders/${begin}_${end}", o.Writer.OSS.Prefix)
	require.Equal(t, "UTC", o.Writer.OSS.TimeZone)
	require.Equal(t, format.Raw, o.Writer.OSS.Format.Type)
	loc, err := o.Location()
	require.NoError(t, err)
	require.Equal(t, "UTC", loc.String())

	// Seed 004's default table, when no columns are given.
	s = parse(t, strings.Replace(mcYAML, "    columns:\n      - {name: value, source: __value__}\n", "", 1))
	require.Equal(t, DefaultColumns(), s.Writer.MaxCompute.Columns)

	// One zone for the job: the writer's becomes the schedule's ...
	s = parse(t, strings.Replace(mcYAML, "    credentials: odps\n", "    credentials: odps\n    timeZone: Asia/Shanghai\n", 1))
	require.Equal(t, "Asia/Shanghai", s.Schedule.TimeZone)
	// ... and the schedule's the writer's.
	s = parse(t, mcYAML+"  timeZone: UTC\n")
	require.Equal(t, "UTC", s.Writer.MaxCompute.TimeZone)
	loc, err = s.Location()
	require.NoError(t, err)
	require.Equal(t, "UTC", loc.String())

	// A dense schedule gets a shorter catch-up window, within the buffer.
	s = parse(t, strings.Replace(strings.Replace(mcYAML, `cron: "0 * * * *"`, `cron: "*/5 * * * *"`, 1), "${yyyyMMddHH}", "${yyyyMMddHHmm}", 1))
	require.Equal(t, 81*time.Hour, s.Schedule.CatchupWindow.D())
	s = parse(t, strings.Replace(strings.Replace(mcYAML, `cron: "0 * * * *"`, `cron: "* * * * *"`, 1), "${yyyyMMddHH}", "${yyyyMMddHHmm}", 1))
	require.Equal(t, 14*time.Hour, s.Schedule.CatchupWindow.D())

	// Default is idempotent.
	before := s.JSON()
	s.Default()
	require.Equal(t, before, s.JSON())
}

// TestDatetimeInJobZone: yyyyMMddHHmmss is read in the job's zone.
func TestDatetimeInJobZone(t *testing.T) {
	s := parse(t, strings.Replace(mcYAML, "  valueType: STRING\n", "  valueType: STRING\n  begin: \"20240101080000\"\n  end: \"2024-01-01T09:00:00+08:00\"\n", 1))
	loc, err := s.Location()
	require.NoError(t, err)
	require.Equal(t, "Etc/GMT-8", loc.String())
	b, err := s.Reader.Begin.Parse(loc)
	require.NoError(t, err)
	require.Equal(t, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), b.Time.UTC())
	e, err := s.Reader.End.Parse(loc)
	require.NoError(t, err)
	require.Equal(t, time.Hour, e.Time.Sub(b.Time))
}

// violationCase breaks one rule of a valid spec.
type violationCase struct {
	name   string
	base   string
	mutate func(s *Spec)
	field  string
	value  string
	rule   string
}

func TestValidateViolations(t *testing.T) {
	long := strings.Repeat("a", 49)
	cases := []violationCase{
		{"name required", mcYAML, func(s *Spec) { s.Name = "" }, "name", "", "is required"},
		{"name too long", mcYAML, func(s *Spec) { s.Name = long }, "name", long, "must be at most 48 characters (has 49)"},
		{"name starts with -", mcYAML, func(s *Spec) { s.Name = "-x" }, "name", "-x", "must not start with '-'"},
		{"name characters", mcYAML, func(s *Spec) { s.Name = "Orders_1" }, "name", "Orders_1", "may contain only lowercase letters, digits and '-'"},

		{"brokers required", mcYAML, func(s *Spec) { s.Reader.Brokers = nil }, "reader.brokers", "", "needs at least one host:port"},
		{"broker without port", mcYAML, func(s *Spec) { s.Reader.Brokers = []string{"kafka"} }, "reader.brokers[0]", "kafka", "must be host:port"},
		{"broker port", mcYAML, func(s *Spec) { s.Reader.Brokers = []string{"k:1", "k:99999"} }, "reader.brokers[1]", "k:99999", "port must be 1..65535"},
		{"topic required", mcYAML, func(s *Spec) { s.Reader.Topic = "" }, "reader.topic", "", "is required"},
		{"topic characters", mcYAML, func(s *Spec) { s.Reader.Topic = "a b" }, "reader.topic", "a b", "may contain only letters, digits, '.', '_' and '-'"},
		{"topic dot", mcYAML, func(s *Spec) { s.Reader.Topic = ".." }, "reader.topic", "..", "must not be '.' or '..'"},
		{"sasl mechanism", mcYAML, func(s *Spec) { s.Reader.SASL = &connector.SASLSpec{Mechanism: "GSSAPI", Credentials: "kafka"} }, "reader.sasl.mechanism", "GSSAPI", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"sasl credentials", mcYAML, func(s *Spec) { s.Reader.SASL = &connector.SASLSpec{Mechanism: "PLAIN"} }, "reader.sasl.credentials", "", "is required: name the credentials"},
		{"sasl secret", mcYAML, func(s *Spec) { s.Reader.SASL = &connector.SASLSpec{Mechanism: "PLAIN", Credentials: "user:pa ss"} }, "reader.sasl.credentials", "user:pa ss", "never the secret itself"},

		{"begin", mcYAML, func(s *Spec) { s.Reader.Begin = NewPosition("yesterday") }, "reader.begin", "yesterday", "must be an offset, a datetime (yyyyMMddHHmmss or RFC 3339"},
		{"begin datetime as number", mcYAML, func(s *Spec) { s.Reader.Begin = OffsetPosition(20240101000000) }, "reader.begin", "20240101000000", "is ambiguous"},
		{"end seekToLast", mcYAML, func(s *Spec) { s.Reader.End = NewPosition("seekToLast") }, "reader.end", "seekToLast", "seekToLast is a begin only"},
		{"end before begin offsets", mcYAML, func(s *Spec) { s.Reader.Begin, s.Reader.End = OffsetPosition(100), OffsetPosition(50) }, "reader.end", "50", "must not be before reader.begin (offset 100): the window is [begin, end)"},
		{"end before begin times", mcYAML, func(s *Spec) {
			s.Reader.Begin, s.Reader.End = NewPosition("20240102000000"), NewPosition("2024-01-01T00:00:00Z")
		}, "reader.end", "2024-01-01T00:00:00Z", "must not be before reader.begin (2024-01-02T00:00:00+08:00)"},
		{"end in a DST gap", mcYAML, func(s *Spec) {
			s.Schedule.TimeZone, s.Writer.MaxCompute.TimeZone = "Europe/Berlin", "Europe/Berlin"
			s.Reader.End = NewPosition("20240331023000")
		}, "reader.end", "20240331023000", "does not exist in time zone Europe/Berlin"},
		{"negative partition", mcYAML, func(s *Spec) { s.Reader.Partitions = []int32{-1} }, "reader.partitions[0]", "-1", "must be 0 or more"},
		{"partition twice", mcYAML, func(s *Spec) { s.Reader.Partitions = []int32{1, 2, 1} }, "reader.partitions[2]", "1", "is listed twice"},
		{"keyType", mcYAML, func(s *Spec) { s.Reader.KeyType = "INT" }, "reader.keyType", "INT", "must be BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT or STRING"},
		{"valueType", mcYAML, func(s *Spec) { s.Reader.ValueType = "JSON" }, "reader.valueType", "JSON", "must be BYTEARRAY, DOUBLE"},
		{"valueType with a JSON path", mcYAML, func(s *Spec) {
			s.Reader.ValueType = TypeLong
			s.Writer.MaxCompute.Columns = []connector.ColumnSpec{{Name: "v", Source: "__value__"}, {Name: "id", Source: "order.id"}}
		}, "reader.valueType", "LONG", "must be BYTEARRAY or STRING when a column reads a JSON path of the value (writer.maxcompute.columns[1])"},
		{"valueType with transforms", mcYAML, func(s *Spec) {
			s.Reader.ValueType = TypeDouble
			s.Transforms = []transform.StepSpec{{Type: "filter", If: "true"}}
		}, "reader.valueType", "DOUBLE", "must be BYTEARRAY or STRING with transforms"},
		{"skipExceedRecord false", mcYAML, func(s *Spec) { s.Reader.SkipExceedRecord = ptr(false) }, "reader.skipExceedRecord", "false", "must be true (or left out): dumpflow reads exactly [begin, end) and never writes records past the end"},
		{"kafkaConfig group.id", mcYAML, func(s *Spec) { s.Reader.KafkaConfig = map[string]any{"group.id": "g"} }, `reader.kafkaConfig["group.id"]`, "g", "is not accepted: the job keeps its position in its own group"},
		{"kafkaConfig unknown", mcYAML, func(s *Spec) { s.Reader.KafkaConfig = map[string]any{"linger.ms": float64(5)} }, `reader.kafkaConfig["linger.ms"]`, "5", "is not a known key (unknown keys are refused, not ignored); the keys are client.id"},
		{"kafkaConfig isolation", mcYAML, func(s *Spec) { s.Reader.KafkaConfig = map[string]any{"isolation.level": "read_uncommitted"} }, `reader.kafkaConfig["isolation.level"]`, "read_uncommitted", "must be read_committed"},

		{"writer none", mcYAML, func(s *Spec) { s.Writer.MaxCompute = nil }, "writer", "", "needs exactly one of maxcompute and oss"},
		{"writer both", mcYAML, func(s *Spec) {
			s.Writer.OSS = &OSSWriter{Endpoint: "http://o", Bucket: "abc", Credentials: "c", Prefix: "p", TimeZone: "UTC"}
		}, "writer", "maxcompute and oss", "must set exactly one of maxcompute and oss"},
		{"mc endpoint", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Endpoint = "" }, "writer.maxcompute.endpoint", "", "is required"},
		{"mc endpoint scheme", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Endpoint = "ftp://x" }, "writer.maxcompute.endpoint", "ftp://x", "must be an http:// or https:// URL with a host"},
		{"mc tunnel endpoint", mcYAML, func(s *Spec) { s.Writer.MaxCompute.TunnelEndpoint = "dt.aliyun.com" }, "writer.maxcompute.tunnelEndpoint", "dt.aliyun.com", "must be an http:// or https:// URL"},
		{"mc project", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Project = "1dw" }, "writer.maxcompute.project", "1dw", "must be a MaxCompute identifier"},
		{"mc table", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Table = "or-ders" }, "writer.maxcompute.table", "or-ders", "must be a MaxCompute identifier of at most 128 characters"},
		{"mc credentials", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Credentials = "" }, "writer.maxcompute.credentials", "", "is required"},
		{"mc zone half hour", mcYAML, func(s *Spec) { s.Writer.MaxCompute.TimeZone = "GMT+05:30" }, "writer.maxcompute.timeZone", "GMT+05:30", "has no Etc zone (Etc zones are whole hours) and Temporal takes IANA names only: use the region's name, such as Asia/Kolkata"},
		{"mc zone unknown", mcYAML, func(s *Spec) { s.Writer.MaxCompute.TimeZone = "Beijing" }, "writer.maxcompute.timeZone", "Beijing", "is not a zone the time zone database knows"},
		{"partition variable", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "pt=${date}" }, "writer.maxcompute.partition", "pt=${date}", "unknown variable ${date}; the variables are ${bizdate}"},
		{"partition braces", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "pt={yyyyMMdd}" }, "writer.maxcompute.partition", "pt={yyyyMMdd}", "writes variables as ${name} (e.g. ${bizdate}), not {name}"},
		{"partition not k=v", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "${bizdate}" }, "writer.maxcompute.partition", "${bizdate}", "must be the last-level partition spec, key=value levels separated by ','"},
		{"truncate daily partition hourly", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "pt=${bizdate}" }, "writer.maxcompute.partition", "pt=${bizdate}",
			`gives the windows [2024-01-01 09:00 +08, 2024-01-01 10:00 +08) and [2024-01-01 10:00 +08, 2024-01-01 11:00 +08) the same partition "pt=20240101": with truncate true each load would replace the rows of the one before; use variables that differ for every window (e.g. ${yyyyMMddHH} for an hourly schedule) or set truncate: false to append`},
		{"truncate hour of day", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "pt=${HH}" }, "writer.maxcompute.partition", "pt=${HH}", `the same partition "pt=09"`},
		{"truncate no partition", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Partition = "" }, "writer.maxcompute.partition", "", `the same partition ""`},
		{"truncate across fall-back", mcYAML, func(s *Spec) {
			s.Schedule.TimeZone = "UTC"
			s.Writer.MaxCompute.TimeZone = "Europe/Berlin"
		}, "writer.maxcompute.partition", "pt=${yyyyMMddHH}", `[2024-10-27 02:00 CEST, 2024-10-27 02:00 CET) and [2024-10-27 02:00 CET, 2024-10-27 03:00 CET) the same partition "pt=2024102702"`},
		{"column name", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Columns[0].Name = "my value" }, "writer.maxcompute.columns[0].name", "my value", "must be a table column name"},
		{"column twice", mcYAML, func(s *Spec) {
			s.Writer.MaxCompute.Columns = append(s.Writer.MaxCompute.Columns, connector.ColumnSpec{Name: "VALUE", Source: "__key__"})
		}, "writer.maxcompute.columns[1].name", "VALUE", "fills the column writer.maxcompute.columns[0] already fills (column names are case-insensitive)"},
		{"column source", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Columns[0].Source = "__val__" }, "writer.maxcompute.columns[0].source", "__val__", "must be one of __key__, __value__"},
		{"column constant", mcYAML, func(s *Spec) { s.Writer.MaxCompute.Columns[0].Source = "'web" }, "writer.maxcompute.columns[0].source", "'web", "a constant must be in single quotes"},

		{"oss endpoint", ossYAML, func(s *Spec) { s.Writer.OSS.Endpoint = "oss-cn-hangzhou.aliyuncs.com" }, "writer.oss.endpoint", "oss-cn-hangzhou.aliyuncs.com", "must be an http:// or https:// URL"},
		{"oss bucket", ossYAML, func(s *Spec) { s.Writer.OSS.Bucket = "My_Bucket" }, "writer.oss.bucket", "My_Bucket", "must be 3..63 lowercase letters"},
		{"oss credentials", ossYAML, func(s *Spec) { s.Writer.OSS.Credentials = "LTAI5t:secret" }, "writer.oss.credentials", "LTAI5t:secret", "never the secret itself"},
		{"oss zone", ossYAML, func(s *Spec) { s.Writer.OSS.TimeZone = "CST+8" }, "writer.oss.timeZone", "CST+8", "is not a zone the time zone database knows"},
		{"oss prefix slash", ossYAML, func(s *Spec) { s.Writer.OSS.Prefix = "/dumps" }, "writer.oss.prefix", "/dumps", "must not start or end with '/'"},
		{"oss prefix trailing slash", ossYAML, func(s *Spec) { s.Writer.OSS.Prefix = "dumps/" }, "writer.oss.prefix", "dumps/", "must not start or end with '/'"},
		{"oss prefix dots", ossYAML, func(s *Spec) { s.Writer.OSS.Prefix = "a/../b" }, "writer.oss.prefix", "a/../b", "must not contain '//' or '..'"},
		{"oss prefix braces", ossYAML, func(s *Spec) { s.Writer.OSS.Prefix = "{topic}/{yyyy}" }, "writer.oss.prefix", "{topic}/{yyyy}", "writes variables as ${name} (e.g. ${yyyy}), not {name}"},
		{"oss prefix variable", ossYAML, func(s *Spec) { s.Writer.OSS.Prefix = "x/${topic}" }, "writer.oss.prefix", "x/${topic}", "unknown variable ${topic}"},
		{"oss prefix shared", ossYAML + "schedule: {cron: \"0 * * * *\"}\n", func(s *Spec) { s.Writer.OSS.Prefix = "orders/${yyyyMMdd}" }, "writer.oss.prefix", "orders/${yyyyMMdd}",
			`gives the windows [2024-01-01 01:00 UTC, 2024-01-01 02:00 UTC) and [2024-01-01 02:00 UTC, 2024-01-01 03:00 UTC) the same prefix "orders/20240101": each window needs a prefix of its own`},
		{"oss format", ossYAML, func(s *Spec) { s.Writer.OSS.Format = &format.Spec{Type: "xml"} }, "writer.oss.format.type", "xml", ""},

		{"errorLimit", mcYAML, func(s *Spec) { s.Settings.ErrorLimit.Record = -1 }, "settings.errorLimit.record", "-1", "must be 0 or more"},
		{"speed bytes", mcYAML, func(s *Spec) { s.Settings.Speed.Bytes = 100 }, "settings.speed.bytes", "100", "must be 0 (no cap) or at least 1KiB per second"},
		{"speed concurrent", mcYAML, func(s *Spec) { s.Settings.Speed.Concurrent = 65 }, "settings.speed.concurrent", "65", "must be 1..64"},
		{"dead-letter topic", mcYAML, func(s *Spec) { s.Settings.DeadLetterTopic = "orders" }, "settings.deadLetterTopic", "orders", "must differ from reader.topic"},
		{"dead-letter topic characters", mcYAML, func(s *Spec) { s.Settings.DeadLetterTopic = "dead letters" }, "settings.deadLetterTopic", "dead letters", "may contain only letters"},
		{"transforms", mcYAML, func(s *Spec) { s.Transforms = []transform.StepSpec{{Type: "bogus"}} }, "transforms[0].type", "bogus", ""},

		{"cron", mcYAML, func(s *Spec) { s.Schedule.Cron = "0 0 * * 7" }, "schedule.cron", "0 0 * * 7", "7 for Sunday is refused: robfig/cron reads 0-6; write 0 or SUN"},
		{"cron dom and dow", mcYAML, func(s *Spec) { s.Schedule.Cron = "0 0 1 * MON" }, "schedule.cron", "0 0 1 * MON", "restricts both day of month (1) and day of week (MON)"},
		{"cron around DST", mcYAML, func(s *Spec) {
			s.Schedule.Cron, s.Schedule.TimeZone = "*/15 * * * *", "Europe/Berlin"
			s.Writer.MaxCompute.Partition = "pt=${yyyyMMddHHmm}"
		}, "schedule.cron", "*/15 * * * *", "in Europe/Berlin, around the daylight-saving change of 2024-10-27 02:00 CET the Temporal server's fire times depend on when it computes them"},
		{"schedule zone", mcYAML, func(s *Spec) { s.Schedule.TimeZone = "GMT+05:30" }, "schedule.timeZone", "GMT+05:30", "such as Asia/Kolkata"},
		{"overlap", mcYAML, func(s *Spec) { s.Schedule.Overlap = "buffer" }, "schedule.overlap", "buffer", "must be one of bufferAll, bufferOne, skip, cancelOther, terminateOther, allowAll"},
		{"catchupWindow short", mcYAML, func(s *Spec) { s.Schedule.CatchupWindow = connector.Duration(5 * time.Second) }, "schedule.catchupWindow", "5s", "must be at least 10s (Temporal's minimum)"},
		{"catchupWindow long", mcYAML, func(s *Spec) {
			s.Schedule.Cron = "* * * * *"
			s.Writer.MaxCompute.Partition = "pt=${yyyyMMddHHmm}"
			s.Schedule.CatchupWindow = connector.Duration(24 * time.Hour)
		}, "schedule.catchupWindow", "24h0m0s", "must be at most 14h0m0s for this cron expression: a catch-up over a longer span could give more windows than the 1000 a Temporal schedule buffers"},
		{"jitter negative", mcYAML, func(s *Spec) { s.Schedule.Jitter = connector.Duration(-time.Second) }, "schedule.jitter", "-1s", "must be 0..24h"},
		{"jitter long", mcYAML, func(s *Spec) { s.Schedule.Jitter = connector.Duration(25 * time.Hour) }, "schedule.jitter", "25h0m0s", "must be 0..24h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, tc.base)
			tc.mutate(s)
			err := s.Validate()
			var ve *connector.ValidationError
			require.True(t, errors.As(err, &ve), "want a violation, got %v", err)
			require.Equal(t, DocName, ve.Doc)
			require.Contains(t, err.Error(), "invalid window job spec")
			for _, v := range ve.Violations {
				if v.Field == tc.field && v.Value == tc.value && strings.Contains(v.Rule, tc.rule) {
					return
				}
			}
			t.Fatalf("no violation %s: %q …%s…; got:\n%s", tc.field, tc.value, tc.rule, err)
		})
	}
}

// TestValidateAccepts: variants that break no rule.
func TestValidateAccepts(t *testing.T) {
	for name, mutate := range map[string]func(*Spec){
		"append to a daily partition hourly": func(s *Spec) {
			s.Writer.MaxCompute.Partition, s.Writer.MaxCompute.Truncate = "pt=${bizdate}", ptr(false)
		},
		"two levels":            func(s *Spec) { s.Writer.MaxCompute.Partition = "ds=${yyyyMMdd},hh=${HH}" },
		"no schedule":           func(s *Spec) { s.Schedule, s.Writer.MaxCompute.Partition = nil, "" },
		"offsets":               func(s *Spec) { s.Reader.Begin, s.Reader.End = OffsetPosition(0), OffsetPosition(0) },
		"seekToLast to the end": func(s *Spec) { s.Reader.Begin, s.Reader.End = NewPosition("seekToLast"), NewPosition("seekToEnd") },
		"begin seekToEnd":       func(s *Spec) { s.Reader.Begin = NewPosition("seekToEnd") },
		"datetime to window":    func(s *Spec) { s.Reader.Begin = NewPosition("20240101000000") },
		"hourly in Berlin":      func(s *Spec) { s.Schedule.TimeZone, s.Writer.MaxCompute.TimeZone = "Europe/Berlin", "Europe/Berlin" },
		"every kafkaConfig key": func(s *Spec) {
			s.Reader.KafkaConfig = map[string]any{"client.id": "x", "fetch.max.bytes": "1048576", "isolation.level": "read_committed"}
		},
		"numeric valueType with metadata columns": func(s *Spec) {
			s.Reader.ValueType = TypeLong
			s.Writer.MaxCompute.Columns = []connector.ColumnSpec{{Name: "v", Source: "__value__"}, {Name: "c", Source: "'x'"}}
		},
		"speed cap": func(s *Spec) { s.Settings.Speed.Bytes = 1 << 10 },
	} {
		t.Run(name, func(t *testing.T) {
			s := parse(t, mcYAML)
			mutate(s)
			require.NoError(t, s.Validate())
		})
	}
}

// TestStrictFields: unknown keys, keys in the wrong case and keys given
// twice are violations, reported with Validate's.
func TestStrictFields(t *testing.T) {
	for _, tc := range []struct {
		name, doc, field, rule string
	}{
		{"DataWorks beginOffset", strings.Replace(mcYAML, "  valueType: STRING\n", "  valueType: STRING\n  beginOffset: seekToLast\n", 1), "reader.beginOffset", "unknown field; known fields are brokers, topic, sasl, tls, begin, end, partitions, keyType, valueType, skipExceedRecord, kafkaConfig"},
		{"near miss", strings.Replace(mcYAML, "    table: orders\n", "    tables: orders\n", 1), "writer.maxcompute.tables", `unknown field; did you mean "table"?`},
		{"case", strings.Replace(mcYAML, `  cron: "0 * * * *"`, `  Cron: "0 * * * *"`, 1), "schedule.Cron", `unknown field; did you mean "cron"? (field names are case-sensitive)`},
		{"nested case", mcYAML + "settings:\n  errorLimit:\n    Record: 5\n", "settings.errorLimit.Record", `did you mean "record"?`},
		{"percentage", mcYAML + "settings:\n  errorLimit:\n    percentage: 0.1\n", "settings.errorLimit.percentage", "unknown field; known fields are record"},
		{"twice", mcYAML + "name: again\n", "name", connector.RuleDuplicateField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var ve *connector.ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			require.Equal(t, DocName, ve.Doc)
			found := false
			for _, v := range ve.Violations {
				found = found || (v.Field == tc.field && strings.Contains(v.Rule, tc.rule))
			}
			require.True(t, found, "no %s: %s in\n%s", tc.field, tc.rule, err)
		})
	}
	// kafkaConfig's keys are free-form for CheckFields and checked by
	// Validate, in the same error.
	_, err := Parse([]byte(strings.Replace(mcYAML, "  valueType: STRING\n", "  valueType: STRING\n  kafkaConfig: {group.id: g}\n  topicc: x\n", 1)))
	require.ErrorContains(t, err, `reader.topicc: "" unknown field; did you mean "topic"?`)
	require.ErrorContains(t, err, `reader.kafkaConfig["group.id"]: "g" is not accepted`)
	// A value of the wrong type is a plain error.
	_, err = Parse([]byte(strings.Replace(mcYAML, "    table: orders\n", "    table: orders\n    truncate: yes please\n", 1)))
	require.ErrorContains(t, err, "parse window job spec")
}

func TestParseJSONRoundTrip(t *testing.T) {
	for _, doc := range []string{mcYAML, ossYAML} {
		s := parse(t, doc)
		j, err := ParseJSON([]byte(s.JSON()))
		require.NoError(t, err)
		require.Equal(t, s, j)
		p, err := Parse([]byte(s.JSON()))
		require.NoError(t, err)
		require.Equal(t, s, p)
	}
	// The same violations from ParseJSON as from Parse.
	bad := `{"name": "x", "reader": {"brokers": ["k:1"], "topic": "t", "Topic": "u", "begin": -1}, "writer": {"oss": {"endpoint": "http://o", "bucket": "abc", "credentials": "c"}}}`
	_, e1 := Parse([]byte(bad))
	_, e2 := ParseJSON([]byte(bad))
	require.Error(t, e1)
	require.Equal(t, e1.Error(), e2.Error())
	require.Contains(t, e1.Error(), `reader.begin: "-1" must not be negative; for Kafka's -1 (latest) write seekToEnd`)
	_, err := ParseJSON([]byte(`{"name": 5}`))
	require.ErrorContains(t, err, "parse window job spec")
}

// TestExamplesParse: the shipped window job examples parse, and their
// JSON form parses the same.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../deploy/examples/window/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 3)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			require.NoError(t, err)
			j, err := ParseJSON([]byte(s.JSON()))
			require.NoError(t, err)
			require.Equal(t, s, j)
			require.NotNil(t, s.Schedule)
			require.NoError(t, CheckSchedule(s.Schedule.Cron, s.Schedule.TimeZone))
			next, err := NextFireTimes(s.Schedule.Cron, s.Schedule.TimeZone, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 5)
			require.NoError(t, err)
			require.Len(t, next, 5)
		})
	}
	s, err := Load("../deploy/examples/window/window-maxcompute-hourly.yaml")
	require.NoError(t, err)
	// The run of 10:00 Beijing time loads [09:00, 10:00) into pt=2024010109.
	sched, err := NewSchedule(s.Schedule.Cron, s.Schedule.TimeZone)
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, s.Schedule.Delay.D())
	nominal := time.Date(2024, 1, 1, 2, 0, 0, 0, time.UTC)
	b, e, err := sched.Window(nominal)
	require.NoError(t, err)
	require.Equal(t, time.Hour, e.Sub(b))
	pt, err := s.Writer.MaxCompute.PartitionSpec(b, e)
	require.NoError(t, err)
	require.Equal(t, "pt=2024010109", pt)

	s, err = Load("../deploy/examples/window/window-maxcompute-daily.yaml")
	require.NoError(t, err)
	sched, err = NewSchedule(s.Schedule.Cron, s.Schedule.TimeZone)
	require.NoError(t, err)
	b, e, err = sched.Window(time.Date(2024, 3, 1, 0, 0, 0, 0, mustLoc(t, "Asia/Shanghai")))
	require.NoError(t, err)
	pt, err = s.Writer.MaxCompute.PartitionSpec(b, e)
	require.NoError(t, err)
	require.Equal(t, "pt=20240229", pt, "the business date is the day before the run")
	require.True(t, *s.Writer.MaxCompute.Truncate)

	_, err = Load("../deploy/examples/window/missing.yaml")
	require.ErrorContains(t, err, "read window job spec")
}
