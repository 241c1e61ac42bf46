package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/starter/dlq"
)

func runDLQCmd(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errw bytes.Buffer
	err := runDLQ(ctx, args, &out, &errw)
	return out.String(), errw.String(), err
}

// TestDLQCommands: starter dlq list groups a connector's dead letters by
// stage, step and error (other connectors' letters left out); dlq redrive
// wants one selection, and refuses a MaxCompute connector.
func TestDLQCommands(t *testing.T) {
	s := newWinStack(t)
	const name, topic = "events-mc", "events"
	s.createTopic(topic, 2)
	file := writeJobFile(t, fmt.Sprintf(`name: %s
kafka: {brokers: [%q], topic: %s}
sink:
  type: maxcompute
  maxcompute: {endpoint: %q, tunnelEndpoint: %q, project: %s, table: events, credentials: %s}
`, name, s.brokers[0], topic, s.mcURL+"/api", s.mcURL, winProject, winCredName))

	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(t, err)
	defer kc.Close()
	ctx := context.Background()
	dlqTopic := "connect-error-" + name
	require.NoError(t, kc.EnsureDeadLetterTopic(ctx, dlqTopic, 1<<20))
	rec := func(p int32, off int64) *kgo.Record {
		return &kgo.Record{Topic: topic, Partition: p, Offset: off, Value: []byte(fmt.Sprintf("v%d", off))}
	}
	require.NoError(t, kc.ProduceDeadLetters(ctx, dlqTopic, []kafka.DeadLetter{
		{Record: rec(0, 7), Connector: name, Stage: "size", Err: errors.New("record events[0]@7 is 2000 bytes, over errors.maxRecordBytes 1KiB")},
		{Record: rec(1, 9), Connector: name, Stage: "size", Err: errors.New("record events[1]@9 is 3000 bytes, over errors.maxRecordBytes 1KiB")},
		{Record: rec(0, 12), Connector: name, Stage: "transform", Step: "parse", Err: errors.New("the value is not JSON")},
		{Record: rec(0, 12), Connector: name, Stage: "transform", Step: "parse", Err: errors.New("the value is not JSON"), Attempt: 2},
		{Record: rec(0, 1), Connector: "someone-else", Stage: "size", Err: errors.New("not ours")},
	}, 1<<20))

	args := append([]string{"list", "-f", file}, s.tflags...)
	out, errw, err := runDLQCmd(append(args, name)...)
	require.NoError(t, err, errw)
	t.Logf("dlq list:\n%s", out)
	require.Contains(t, out, "dead letters of connector events-mc in topic connect-error-events-mc: 4")
	require.Regexp(t, `size\s+-\s+2\s+2\s+≤1\s+0\s+0,1\s+7\.\.9\s+0\.\.1\s+record events\[N\]@N is N bytes`, out)
	require.Regexp(t, `transform\s+parse\s+2\s+1\s+≤2\s+0\s+0\s+12\.\.12\s+2\.\.3\s+the value is not JSON`, out)
	require.NotContains(t, out, "not ours")

	out, errw, err = runDLQCmd(append(append([]string{"list", "-f", file, "--json"}, s.tflags...), name)...)
	require.NoError(t, err, errw)
	var l dlq.Listing
	require.NoError(t, json.Unmarshal([]byte(out), &l))
	require.Equal(t, int64(4), l.Letters)
	require.Len(t, l.Groups, 2)

	_, _, err = runDLQCmd(append(append([]string{"redrive", "-f", file}, s.tflags...), name)...)
	require.ErrorContains(t, err, "set exactly one of all")
	_, _, err = runDLQCmd(append(append([]string{"redrive", "-f", file, "--all"}, s.tflags...), name)...)
	require.ErrorContains(t, err, "re-drive writes to OSS sinks only")
}
