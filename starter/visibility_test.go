package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

// TestWebUIVisibility: a connector started by `starter create` shows in the
// Web UI and the temporal CLI with a summary and details naming its topic
// and destination, current details holding a per-partition table, and the
// Dumpflow* search attributes, whose state follows pause and resume, so
// `temporal workflow list --query 'DumpflowState = "paused"'` finds it. On a
// namespace without those attributes the connector starts all the same.
func TestWebUIVisibility(t *testing.T) {
	s := newWinStack(t)
	ctx := context.Background()
	ns := s.temporal.GetDefaultNamespace()
	const topic = "visible"
	s.createTopic(topic, 2)
	var tss []time.Time
	for i := range 40 {
		tss = append(tss, time.Date(2026, 11, 30, 10, 0, i, 0, time.UTC))
	}
	s.produce(topic, 0, tss...)
	s.produce(topic, 1, tss[:25]...)
	spec := func(name string) *connector.Spec {
		sp := &connector.Spec{
			Name:  name,
			Kafka: connector.KafkaSpec{Brokers: s.brokers, Topic: topic},
			Batch: connector.BatchSpec{FlushInterval: connector.Duration(500 * time.Millisecond)},
			Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
				Endpoint: s.mcURL + "/api", TunnelEndpoint: s.mcURL, Project: winProject, Table: "visible_" + name, Credentials: winCredName, CreateTable: true,
			}},
		}
		sp.Default()
		require.NoError(t, sp.Validate())
		return sp
	}

	// A namespace without the attributes: the connector starts without
	// them, and runs.
	plain := spec("plain")
	_, err := startConnector(ctx, s.c, plain)
	require.NoError(t, err)
	desc, err := s.c.DescribeWorkflow(ctx, plain.WorkflowID(), "")
	require.NoError(t, err)
	_, ok := desc.TypedSearchAttributes.GetKeyword(workflows.SearchState)
	require.False(t, ok)
	waitStatus(t, s.c, plain.Name, func(st workflows.Status) bool { return totalNext(st) == 65 })

	// Define them (twice: the second call has nothing to do).
	require.NoError(t, ensureSearchAttributes(ctx, s.c, ns))
	require.NoError(t, ensureSearchAttributes(ctx, s.c, ns))

	sp := spec("shown")
	_, err = startConnector(ctx, s.c, sp)
	require.NoError(t, err)
	waitStatus(t, s.c, sp.Name, func(st workflows.Status) bool { return totalNext(st) == 65 })

	desc, err = s.c.DescribeWorkflow(ctx, sp.WorkflowID(), "")
	require.NoError(t, err)
	summary, err := desc.GetStaticSummary()
	require.NoError(t, err)
	require.Equal(t, "dumpflow connector shown: Kafka topic visible → maxcompute://"+winProject+".visible_shown", summary)
	details, err := desc.GetStaticDetails()
	require.NoError(t, err)
	require.Contains(t, details, "Kafka topic: `visible`")
	for key, want := range map[temporal.SearchAttributeKeyKeyword]string{
		workflows.SearchConnector: "shown", workflows.SearchTopic: topic, workflows.SearchSink: connector.SinkMaxCompute, workflows.SearchState: workflows.StateRunning,
	} {
		got, ok := desc.TypedSearchAttributes.GetKeyword(key)
		require.True(t, ok, key.GetName())
		require.Equal(t, want, got, key.GetName())
	}

	// Current details: the Web UI reads them with the metadata query.
	current := func() string {
		v, err := s.c.QueryWorkflow(ctx, sp.WorkflowID(), "", "__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		return md.GetCurrentDetails()
	}
	require.Eventually(t, func() bool {
		d := current()
		return strings.Contains(d, "| 0 | 40 | 0 | 40 | 0 | running |") && strings.Contains(d, "| 1 | 25 | 0 | 25 | 0 | running |")
	}, 30*time.Second, 200*time.Millisecond, "current details: %s", current())
	t.Logf("current details:\n%s", current())

	// The state attribute follows pause and resume, and filters.
	listed := func(state string) []string {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns,
			Query: fmt.Sprintf(`DumpflowState = %q AND ExecutionStatus = "Running"`, state)})
		require.NoError(t, err)
		var ids []string
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		return ids
	}
	require.NoError(t, s.c.SignalWorkflow(ctx, sp.WorkflowID(), "", workflows.SignalPause, nil))
	require.Eventually(t, func() bool { return slicesEqual(listed(workflows.StatePaused), []string{sp.WorkflowID()}) }, 30*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(current(), "state **paused**") }, 10*time.Second, 200*time.Millisecond)
	require.NoError(t, s.c.SignalWorkflow(ctx, sp.WorkflowID(), "", workflows.SignalResume, nil))
	require.Eventually(t, func() bool { return slicesEqual(listed(workflows.StateRunning), []string{sp.WorkflowID()}) }, 30*time.Second, 200*time.Millisecond)
	require.Empty(t, listed(workflows.StatePaused))
}

func waitStatus(t *testing.T, c client.Client, name string, cond func(workflows.Status) bool) {
	t.Helper()
	var (
		last workflows.Status
		err  error
	)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last, err = queryStatus(context.Background(), c, name); err == nil && cond(last) {
			return
		}
	}
	t.Fatalf("connector %s: last status %+v, error %v", name, last, err)
}

func totalNext(st workflows.Status) int64 {
	var n int64
	for _, p := range st.Partitions {
		n += p.Next
	}
	return n
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
