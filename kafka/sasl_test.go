package kafka

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dumpflow/dumpflow/connector"
)

// TestSASL connects to a SASL-only kfake with credentials resolved from the
// environment, for each mechanism the spec allows, and fails clearly with a
// wrong password.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "admin", "s3cret"), kfake.SeedTopics(2, "t"))
			require.NoError(t, err)
			defer c.Close()
			spec := &connector.Spec{Kafka: connector.KafkaSpec{Brokers: c.ListenAddrs(), Topic: "t", SASL: &connector.SASLSpec{Mechanism: mech, Credentials: "kafka-sasl"}}}

			t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_ID", "admin")
			t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_SECRET", "s3cret")
			opts, err := Options(spec)
			require.NoError(t, err)
			kc, err := NewClient(opts...)
			require.NoError(t, err)
			ps, err := kc.Partitions(context.Background(), "t")
			kc.Close()
			require.NoError(t, err)
			require.Equal(t, []int32{0, 1}, ps)

			t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_SECRET", "wrong")
			opts, err = Options(spec)
			require.NoError(t, err)
			kc, err = NewClient(opts...)
			require.NoError(t, err)
			defer kc.Close()
			_, err = kc.Partitions(context.Background(), "t")
			require.Error(t, err)
		})
	}
	t.Run("missing credentials", func(t *testing.T) {
		t.Setenv("DUMPFLOW_CREDENTIALS_DIR", t.TempDir())
		_, err := Options(&connector.Spec{Kafka: connector.KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, SASL: &connector.SASLSpec{Mechanism: "PLAIN", Credentials: "absent"}}})
		require.ErrorContains(t, err, "kafka.sasl")
		require.ErrorContains(t, err, "DUMPFLOW_CRED_ABSENT_ACCESS_KEY_ID")
	})
}
