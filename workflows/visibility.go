package workflows

import (
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/connector"
)

// Custom search attributes of connector workflows, for filtering in the Web
// UI and with `temporal workflow list --query`, e.g.
//
//	DumpflowSink = "oss" AND DumpflowState = "stopped"
//
// A cluster must define them first (the local stack does):
//
//	temporal operator search-attribute create --name DumpflowConnector --type Keyword
//
// and likewise DumpflowTopic, DumpflowSink and DumpflowState. Connectors
// started without them still run; they just cannot be filtered.
var (
	// SearchConnector is the connector's name.
	SearchConnector = temporal.NewSearchAttributeKeyKeyword("DumpflowConnector")
	// SearchTopic is the Kafka topic.
	SearchTopic = temporal.NewSearchAttributeKeyKeyword("DumpflowTopic")
	// SearchSink is the sink type, oss or maxcompute.
	SearchSink = temporal.NewSearchAttributeKeyKeyword("DumpflowSink")
	// SearchState is the connector's worst partition state: data-lost,
	// stopped, error, paused or running (see ConnectorState).
	SearchState = temporal.NewSearchAttributeKeyKeyword("DumpflowState")
)

// SearchAttributeTypes are the custom search attributes and their types,
// for registering them on a cluster.
var SearchAttributeTypes = map[string]enumspb.IndexedValueType{
	SearchConnector.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchTopic.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchSink.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchState.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// SearchAttributes are a new connector workflow's search attributes.
func SearchAttributes(spec *connector.Spec) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchConnector.ValueSet(spec.Name),
		SearchTopic.ValueSet(spec.Kafka.Topic),
		SearchSink.ValueSet(spec.Sink.Type),
		SearchState.ValueSet(StateRunning),
	)
}

// versionVisibility: runs publish their state as a search attribute.
const versionVisibility = "visibility-state"

// maxDetailRows caps the partition table in the current details.
const maxDetailRows = 16

// publish keeps the workflow's current details (the Web UI's "current
// details": a short per-partition table) and its DumpflowState search
// attribute up to date. Details cost no history event; the state is
// upserted (one event) only when it changes, and only in runs started with
// the attribute, so a cluster without it never fails a workflow task.
func (c *conn) publish(ctx workflow.Context) {
	upsert := workflow.GetVersion(ctx, versionVisibility, workflow.DefaultVersion, 1) == 1
	if upsert {
		_, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(SearchState)
		upsert = ok
	}
	lastState, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(SearchState)
	var lastKey uint64
	first := true
	// A shard reports its state to its connector's workflow, which
	// publishes the worst of its shards' (reportShardStates).
	report := c.shard != nil
	reported := ""
	for {
		if key := c.progressKey(); first || key != lastKey {
			workflow.SetCurrentDetails(ctx, c.currentDetails())
			lastKey, first = key, false
		}
		if state := c.connectorState(); upsert && state != lastState {
			if err := workflow.UpsertTypedSearchAttributes(ctx, SearchState.ValueSet(state)); err == nil {
				lastState = state
			}
		}
		if state := c.connectorState(); report && state != reported {
			err := workflow.SignalExternalWorkflow(ctx, connector.WorkflowID(c.spec.Name), "", signalShardState, ShardState{Index: c.shard.Index, State: state}).Get(ctx, nil)
			if err != nil && ctx.Err() != nil {
				return
			}
			reported = state // a root that is gone is not told again
		}
		if err := workflow.Await(ctx, func() bool {
			return c.draining || c.progressKey() != lastKey || upsert && c.connectorState() != lastState || report && c.connectorState() != reported
		}); err != nil || c.draining {
			return
		}
	}
}

// signalShardState carries a shard's state (ShardState) to its connector's
// workflow.
const signalShardState = "shard-state"

// ShardState is a shard's worst partition state, as it reports it.
type ShardState struct {
	Index int    `json:"index"`
	State string `json:"state"`
}

// reportShardStates takes the shards' state reports in a sharded root.
func (c *conn) reportShardStates(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, signalShardState)
	for {
		var r ShardState
		if !ch.Receive(ctx, &r) {
			return
		}
		c.takeShardState(r)
		c.checkHistory(ctx) // reports add to the root's history too
	}
}

// takeShardStates takes the reports waiting on the channel (before a
// root continues as new).
func (c *conn) takeShardStates(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, signalShardState)
	var r ShardState
	for ch.ReceiveAsync(&r) {
		c.takeShardState(r)
	}
}

func (c *conn) takeShardState(r ShardState) {
	if r.Index < 0 || r.Index >= c.st.Shards {
		return
	}
	if len(c.st.ShardStates) != c.st.Shards {
		c.st.ShardStates = make([]string, c.st.Shards)
	}
	c.st.ShardStates[r.Index] = r.State
}

// stateRank orders partition states from best to worst.
var stateRank = map[string]int{StateRunning: 0, StatePaused: 1, StateError: 2, StateStopped: 3, StateDataLost: 4}

// connectorState is the worst state of the connector's partitions. It is
// evaluated in publish's Await condition, so it allocates nothing.
func (c *conn) connectorState() string {
	rank := stateRank
	state := StateRunning
	if c.st.Paused {
		state = StatePaused
	}
	if c.err != "" && rank[state] < rank[StateError] {
		state = StateError
	}
	for _, p := range c.st.Partitions {
		if s := partitionState(c.st, p); rank[s] > rank[state] {
			state = s
		}
	}
	for _, s := range c.st.ShardStates {
		if rank[s] > rank[state] {
			state = s
		}
	}
	return state
}

// partitionState is a partition's state as status shows it.
func partitionState(st *ConnectorState, p *PartitionState) string {
	switch {
	case p.Stopped:
		return StateStopped
	case p.DataLost != nil:
		return StateDataLost
	case st.Paused:
		return StatePaused
	case p.FetchErrors >= 3:
		return StateError
	}
	return StateRunning
}

// progressKey changes whenever the current details would.
func (c *conn) progressKey() uint64 {
	h := uint64(len(c.st.Partitions))
	if c.st.Paused {
		h++
	}
	h = h*31 + uint64(c.st.Shards)
	for _, s := range c.st.ShardStates {
		h = h*131 + uint64(len(s)) + uint64(stateRank[s])<<8 // "" (not reported) differs from running
	}
	for _, p := range c.st.Partitions {
		h = h*1099511628211 + uint64(p.Next) + uint64(p.HighWatermark)<<20 + uint64(p.DeadLetters)<<40
		h = h*31 + uint64(len(partitionState(c.st, p))) + uint64(len(p.LastError))
	}
	return h
}

// currentDetails is a Markdown summary of the connector and a table of its
// first partitions.
func (c *conn) currentDetails() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** · topic `%s` → `%s` · state **%s** · run %d\n\n", c.spec.Name, c.spec.Kafka.Topic, c.spec.Destination(), c.connectorState(), c.st.Run)
	if c.st.Shards > 0 {
		fmt.Fprintf(&b, "Partitions run in %d shard workflows (partition p in shard p mod %d); `starter status %s` shows them all.\n\n| shard | state |\n|---|---|\n", c.st.Shards, c.st.Shards, c.spec.Name)
		for k, id := range c.shardIDs() {
			state := "starting"
			if k < len(c.st.ShardStates) && c.st.ShardStates[k] != "" {
				state = c.st.ShardStates[k]
			}
			fmt.Fprintf(&b, "| `%s` | %s |\n", id, state)
		}
		if c.err != "" {
			fmt.Fprintf(&b, "\nError: %s\n", shortError(c.err, 200))
		}
		return b.String()
	}
	b.WriteString("| partition | next | lag | records | dead letters | state |\n|---:|---:|---:|---:|---:|---|\n")
	for i, p := range c.st.Partitions {
		if i == maxDetailRows {
			fmt.Fprintf(&b, "\n… and %d more partitions: `starter status %s`\n", len(c.st.Partitions)-i, c.spec.Name)
			break
		}
		state := partitionState(c.st, p)
		if p.LastError != "" && state != StateRunning {
			state += ": " + shortError(p.LastError, 60)
		}
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %s |\n", p.Partition, p.Next, max(0, p.HighWatermark-p.Next), p.Records, p.DeadLetters, strings.ReplaceAll(state, "|", "/"))
	}
	if c.err != "" {
		fmt.Fprintf(&b, "\nError: %s\n", shortError(c.err, 200))
	}
	return b.String()
}

func shortError(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
