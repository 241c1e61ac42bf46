package workflows

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

func TestParseUpdate(t *testing.T) {
	base := &connector.Spec{
		Name:  "unit",
		Kafka: connector.KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"},
		Sink: connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{
			Endpoint: "http://127.0.0.1:9300", Bucket: "dumpflow", Credentials: "local", PathStyle: true,
		}},
	}
	base.Default()
	c := &conn{spec: *base}
	for _, tc := range []struct {
		name    string
		change  func(s *connector.Spec)
		changed []string
		err     string
	}{
		{"nothing", func(*connector.Spec) {}, nil, ""},
		{"batch and concurrency", func(s *connector.Spec) { s.Batch.MaxRecords, s.Concurrency = 10, 2 }, []string{"batch.maxRecords", "concurrency"}, ""},
		{"tolerance", func(s *connector.Spec) { s.Errors.Tolerance = connector.ToleranceStop }, []string{"errors.tolerance"}, ""},
		{"transforms", func(s *connector.Spec) {
			s.Transforms = []transform.StepSpec{{Type: "filter", If: "true"}}
		}, []string{"transforms"}, ""},
		{"topic", func(s *connector.Spec) { s.Kafka.Topic = "u" }, nil, "kafka.topic cannot change"},
		{"dead-letter topic", func(s *connector.Spec) { s.Errors.DeadLetterTopic = "dlq" }, nil, "errors.deadLetterTopic cannot change"},
		{"bucket", func(s *connector.Spec) { o := *s.Sink.OSS; o.Bucket = "other"; s.Sink.OSS = &o }, nil, "sink.oss.bucket cannot change"},
		{"invalid", func(s *connector.Spec) { s.Concurrency = 5 }, nil, `concurrency: "5" must be one of 1, 2, 3, 6, 12`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *base
			tc.change(&s)
			raw, err := json.Marshal(&s)
			require.NoError(t, err)
			_, changed, err := c.parseUpdate(UpdateSpecRequest{Spec: raw})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.changed, changed)
		})
	}
}
