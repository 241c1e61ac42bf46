package activities

import (
	"time"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// Activity names, as registered on the worker and shown in history.
const (
	DiscoverName       = "Discover"
	FetchRangesName    = "FetchRanges"
	PrepareWriteName   = "PrepareWrite"
	WritePartitionName = "WritePartition"
	CommitOffsetsName  = "CommitOffsets"
	RouteRangeName     = "RouteRange"
	DeclareGapName     = "DeclareGap"
)

// Input versions. Inputs recorded by the first build carry no version and
// the whole spec; they keep their first meaning, so connector runs that
// started under that build finish their in-flight activities correctly.
const (
	// V1 is the first build: the write cuts its range itself, objects are
	// named by their range's first and end offsets.
	V1 = 0
	// V2 plans and cuts every range in FetchRanges (recorded in history
	// before the write), takes the spec by reference, and names objects by
	// their first offset.
	V2 = 2
	// V3 adds, for sinks that buffer their batches (OSS) under tolerance
	// continue, uncut plans: FetchRanges plans [next, PlanEnd) without
	// scanning it, and one WritePartition writes it as consecutive batches,
	// each cut where the V2 scan would have cut it (see WriteInput.Batches).
	// A V3 FetchRanges also waits for data without returning empty plans
	// every flush interval (see FetchRangesInput.Version).
	V3 = 3
)

// SpecInput is how an activity gets its connector spec: inline (V1), or by
// reference (V2) to the spec the workflow holds, resolved from the worker's
// cache or by querying the workflow. Exactly one is set.
type SpecInput struct {
	Spec    *connector.Spec `json:"spec,omitempty"`
	SpecRef string          `json:"specRef,omitempty"`
}

// DiscoverInput asks for the topic's partitions and where each one starts.
type DiscoverInput struct {
	SpecInput
	// Known partitions are not resolved again (partition discovery later on).
	Known []int32 `json:"known,omitempty"`
	// Version is V1 or V2.
	Version int `json:"v,omitempty"`
	// Initial is set on a connector's first discovery: partitions without
	// any recorded position start at spec.kafka.initialPosition. Later
	// discoveries (V2) start new partitions at their earliest offset, so
	// nothing produced before a partition was noticed is skipped.
	Initial bool `json:"initial,omitempty"`
	// Writer identifies the connector's run chain (sink.BatchID.Writer).
	Writer string `json:"writer,omitempty"`
	// Wait, when set, makes a discovery that finds no new partition look
	// again every Every (heartbeating) until one appears or Wait has
	// passed, so that a connector's history does not record a discovery
	// that found nothing every Every.
	Wait  time.Duration `json:"wait,omitempty"`
	Every time.Duration `json:"every,omitempty"`
	// Shard, when set, limits discovery to the shard's partitions (a
	// sharded connector's shard workflow).
	Shard *Shard `json:"shard,omitempty"`
	// ListOnly returns the topic's partitions (and its id) without
	// resolving where they start, creating topics or checking the sink: a
	// new connector's workflow uses it to decide whether to shard.
	ListOnly bool `json:"listOnly,omitempty"`
}

// DiscoverResult lists new partitions with their starting cursors.
type DiscoverResult struct {
	Partitions []PartitionStart `json:"partitions"`
	// TopicID is the topic's id (hex), so a deleted and recreated topic is
	// noticed.
	TopicID string `json:"topicId,omitempty"`
}

// PartitionStart is where a partition's loop begins.
type PartitionStart struct {
	Partition int32 `json:"partition"`
	// Start is the first offset the connector ever wrote (for verify).
	Start int64 `json:"start"`
	// Next is the next offset to write.
	Next int64 `json:"next"`
	// From says where Next came from: sink (OSS meta and data objects, the MaxCompute ledger), group,
	// earliest or latest.
	From string `json:"from"`
	// Pending is a range at Next whose write began before the workflow was
	// lost: it is finished with the same sessions first.
	Pending *sink.Pending `json:"pending,omitempty"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times an
	// operator rewound its offsets. Optional. Default: 0.
	Epoch int `json:"epoch,omitempty"`
}

// Cursor is a partition's next offset.
type Cursor struct {
	Partition int32 `json:"partition"`
	Next      int64 `json:"next"`
	Start     int64 `json:"start"`
	// Backlog says the partition already had data past Next when it was
	// last planned: FetchRanges plans it at once instead of waiting for a
	// full batch or the flush interval.
	Backlog bool `json:"backlog,omitempty"`
	// SkipAt is a poison offset the operator resumed past (V2 plans do not
	// stop at it), or -1 / 0 when none.
	SkipAt int64 `json:"skipAt,omitempty"`
	// Until, when set, caps the plan's end: a V3 range that failed is cut
	// again (V2) within the bounds it was planned with.
	Until int64 `json:"until,omitempty"`
}

// FetchRangesInput asks for the next range of each partition of a loop.
type FetchRangesInput struct {
	SpecInput
	Cursors []Cursor `json:"cursors"`
	// Version V2 cuts each plan (see Plan.End). From V3 a call with no data
	// past any cursor waits for data (heartbeating) up to IdleWait instead
	// of returning empty plans at every flush interval, which would fill
	// history with events that decide nothing: the flush interval runs from
	// when data is first seen. The workflow cancels the call when it has
	// something else to do (a pause, a spec update, continue-as-new).
	Version int `json:"v,omitempty"`
	// Since (V3), when set, is when the loop's previous plan was made: the
	// flush interval runs from then, not from when this call first sees
	// data, so a record that arrived while the previous range was being
	// written waits one flush interval in all, not that plus the write.
	Since *time.Time `json:"since,omitempty"`
	// Batches (V3) asks for uncut plans of up to Batches × batch.maxRecords
	// offsets, written by one V3 WritePartition each; 0 cuts one batch (V2).
	Batches int `json:"batches,omitempty"`
	// TopicID, when set, is checked: a recreated topic is an error.
	TopicID string `json:"topicId,omitempty"`
}

// FetchRangesResult plans one range per partition; First == PlanEnd means
// no data arrived within the flush interval.
type FetchRangesResult struct {
	Plans []Plan `json:"plans"`
	// At (V3) is when the offsets the plans end at were read: the next
	// call's flush interval runs from then (FetchRangesInput.Since).
	At *time.Time `json:"at,omitempty"`
}

// Plan is a planned range [First, PlanEnd) of one partition. It carries no
// record bytes.
type Plan struct {
	Partition     int32 `json:"partition"`
	First         int64 `json:"first"`
	PlanEnd       int64 `json:"planEnd"`
	HighWatermark int64 `json:"highWatermark"`
	LogStart      int64 `json:"logStart"`
	// Stable is the last stable offset: reads are read_committed, so no
	// plan goes past an undecided transaction.
	Stable int64 `json:"stable,omitempty"`

	// V2: the cut. The range to write is [First, End): End is where the
	// batch reaches batch.maxBytes, where a poison record stops it under
	// tolerance stop, or where it would open more than
	// MaxDestinationPartitions destination partitions; else PlanEnd.
	End int64 `json:"end,omitempty"`
	// Records and Bytes (key + value) the range holds, from the scan.
	Records int64 `json:"records,omitempty"`
	Bytes   int64 `json:"bytes,omitempty"`
	// Parts are the destination partitions the range's rows land in
	// (MaxCompute).
	Parts []string `json:"parts,omitempty"`
	// Poison is the record at End that stops the partition (tolerance stop).
	Poison *Poison `json:"poison,omitempty"`
	// DataLost is set when the partition's log start has moved past First:
	// [First, DataLost.End) was deleted before it was dumped.
	DataLost *sink.Range `json:"dataLost,omitempty"`
	// Error is why this partition could not be planned (the others were).
	Error string `json:"error,omitempty"`
}

// MaxDestinationPartitions caps the destination partitions (MaxCompute
// `pt` values) one batch writes: a batch whose record timestamps spread
// wider is cut at the record that would open one more, and the rest goes
// into the next batch. Each destination partition costs an upload session
// and a commit, which the service limits per table.
const MaxDestinationPartitions = 24

// PrepareInput asks a Preparer sink (MaxCompute) to create the upload
// sessions of a range.
type PrepareInput struct {
	SpecInput
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	First     int64 `json:"first"`
	// V1: PlanEnd bounds the range and the step cuts it. V2: End is the
	// cut FetchRanges made and Parts the destination partitions.
	PlanEnd int64 `json:"planEnd,omitempty"`
	// SkipAt is as in WriteInput (V1).
	SkipAt  int64    `json:"skipAt"`
	Version int      `json:"v,omitempty"`
	End     int64    `json:"end,omitempty"`
	Parts   []string `json:"parts,omitempty"`
	// Keep are the range's sessions from an earlier Prepare: committed and
	// open ones are kept, expired ones replaced.
	Keep   []sink.Session `json:"keep,omitempty"`
	Writer string         `json:"writer,omitempty"`
	// TopicID, when set, is checked: a recreated topic is an error.
	TopicID string `json:"topicId,omitempty"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times an
	// operator rewound its offsets. Optional. Default: 0.
	Epoch int `json:"epoch,omitempty"`
	// Group (V2, sinks that write group batches) prepares one set of
	// sessions for the ranges of several partitions: Parts is the union of
	// their destination partitions; Partition, Start, First and End are
	// Group[0]'s. Optional.
	Group []sink.Member `json:"group,omitempty"`
}

// PrepareResult is the cut range and its sessions, recorded in history.
type PrepareResult struct {
	End      int64          `json:"end"`
	Prepared *sink.Prepared `json:"prepared"`
}

// WriteInput writes one range of one partition.
type WriteInput struct {
	SpecInput
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	First     int64 `json:"first"`
	// PlanEnd bounds the range; a V1 write cuts it at the byte limit.
	PlanEnd int64 `json:"planEnd,omitempty"`
	// End, when set (> First), is the exact end of the range.
	End      int64          `json:"end,omitempty"`
	Prepared *sink.Prepared `json:"prepared,omitempty"`
	// SkipAt is the offset of a poison record an operator resumed past: it
	// goes to the dead-letter topic even under tolerance stop. -1: none.
	SkipAt  int64 `json:"skipAt"`
	Version int   `json:"v,omitempty"`
	// Bytes is the range's key and value bytes (from the plan): the write
	// takes that much of the worker's batch memory budget.
	Bytes  int64  `json:"bytes,omitempty"`
	Writer string `json:"writer,omitempty"`
	// TopicID, when set, is checked before the range is read and before
	// it is committed: a range is never written from a recreated topic.
	TopicID string `json:"topicId,omitempty"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times an
	// operator rewound its offsets. Optional. Default: 0.
	Epoch int `json:"epoch,omitempty"`
	// Batches (V3) is how many batches the write may commit: it writes
	// [First, PlanEnd) as consecutive batches, each cut as a V2 scan cuts
	// it (at batch.maxRecords offsets or where its bytes reach
	// batch.maxBytes), and stops after Batches of them. WriteResult.End
	// says where it stopped.
	Batches int `json:"batches,omitempty"`
	// Group (V2, sinks that write group batches) writes the ranges of
	// several partitions, in this order, into the sessions in Prepared as
	// one group batch; Partition, Start, First and End are Group[0]'s.
	// WriteResult.Members says what each member wrote. Optional.
	Group []sink.Member `json:"group,omitempty"`
}

// WriteResult says what was written. End is the exclusive end of the range
// now in the sink.
type WriteResult struct {
	End         int64        `json:"end"`
	Written     sink.Written `json:"written"`
	DeadLetters int64        `json:"deadLetters"`
	// Stopped is set when tolerance is stop and a record was rejected: the
	// range ends before it and the partition parks.
	Stopped *Poison `json:"stopped,omitempty"`
	// Expired (V2, MaxCompute) names destination partitions whose sessions
	// expired before they were committed; Committed those whose sessions are
	// committed. The range is not complete: prepare the expired ones again
	// (keeping the others) and write it again.
	Expired   []string `json:"expired,omitempty"`
	Committed []string `json:"committed,omitempty"`
	// Batches (V3) is how many batches the write committed. Failed is set
	// when a batch failed after earlier ones were committed: the result
	// reports those (End is where they end) and the next write starts
	// there.
	Batches int    `json:"batches,omitempty"`
	Failed  string `json:"failed,omitempty"`
	// Transform is what each transform step did to the batch's records:
	// in, out, dropped, failed. Empty without a chain.
	Transform []transform.StepCounts `json:"transform,omitempty"`
	// Members are a group write's results per member, in Group's order:
	// each member's range is complete (End) and counted here; Written and
	// DeadLetters are their sums.
	Members []MemberResult `json:"members,omitempty"`
}

// MemberResult is what a group write wrote of one member's range.
type MemberResult struct {
	Partition   int32 `json:"partition"`
	End         int64 `json:"end"`
	Records     int64 `json:"records"`
	Bytes       int64 `json:"bytes"`
	DeadLetters int64 `json:"deadLetters,omitempty"`
}

// Poison describes a rejected record.
type Poison struct {
	Offset int64  `json:"offset"`
	Stage  string `json:"stage"`
	Error  string `json:"error"`
}

// CommitOffsetsInput mirrors cursors into the connect-<name> group.
type CommitOffsetsInput struct {
	SpecInput
	Offsets []Cursor `json:"offsets"`
	Writer  string   `json:"writer,omitempty"`
}

// RouteRangeInput sends a range that could not be written to the
// error-data topic (tolerance continue).
type RouteRangeInput struct {
	SpecInput
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
	End       int64  `json:"end"`
	Reason    string `json:"reason"`
	Version   int    `json:"v,omitempty"`
	Start     int64  `json:"start,omitempty"`
	Writer    string `json:"writer,omitempty"`
	// Prepared are the range's sessions (MaxCompute): records whose
	// sessions are committed are in the table and are not routed.
	Prepared *sink.Prepared `json:"prepared,omitempty"`
	// TopicID, when set, is checked before the range is read.
	TopicID string `json:"topicId,omitempty"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times an
	// operator rewound its offsets. Optional. Default: 0.
	Epoch int `json:"epoch,omitempty"`
}

// RouteRangeResult counts the records routed.
type RouteRangeResult struct {
	Records int64 `json:"records"`
	// Written (V2) is set when the range turned out to be in the sink
	// already (a write that succeeded although its activity failed): it
	// counts as written and nothing was routed.
	Written bool `json:"written,omitempty"`
}

// DeclareGapInput records, after an operator acknowledged it, that the
// offsets from From up to the partition's current log start were deleted
// from Kafka before they were dumped.
type DeclareGapInput struct {
	SpecInput
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	From      int64  `json:"from"`
	Writer    string `json:"writer,omitempty"`
	// By says who acknowledged the loss and how.
	By string `json:"by"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times an
	// operator rewound its offsets. Optional. Default: 0.
	Epoch int `json:"epoch,omitempty"`
}

// DeclareGapResult is the declared gap [From, To); To is where the
// partition continues.
type DeclareGapResult struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}
