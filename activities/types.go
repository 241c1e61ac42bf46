package activities

import (
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// Activity names, as registered on the worker and shown in history.
const (
	DiscoverName       = "Discover"
	FetchRangesName    = "FetchRanges"
	PrepareWriteName   = "PrepareWrite"
	WritePartitionName = "WritePartition"
	CommitOffsetsName  = "CommitOffsets"
	RouteRangeName     = "RouteRange"
)

// DiscoverInput asks for the topic's partitions and where each one starts.
type DiscoverInput struct {
	Spec connector.Spec `json:"spec"`
	// Known partitions are not resolved again (partition discovery later on).
	Known []int32 `json:"known,omitempty"`
}

// DiscoverResult lists new partitions with their starting cursors.
type DiscoverResult struct {
	Partitions []PartitionStart `json:"partitions"`
}

// PartitionStart is where a partition's loop begins.
type PartitionStart struct {
	Partition int32 `json:"partition"`
	// Start is the first offset the connector ever wrote (for verify).
	Start int64 `json:"start"`
	// Next is the next offset to write.
	Next int64 `json:"next"`
	// From says where Next came from: sink-meta, group, earliest or latest.
	From string `json:"from"`
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
}

// FetchRangesInput asks for the next range of each partition of a loop.
type FetchRangesInput struct {
	Spec    connector.Spec `json:"spec"`
	Cursors []Cursor       `json:"cursors"`
}

// FetchRangesResult plans one range per partition; First == PlanEnd means
// no data arrived within the flush interval.
type FetchRangesResult struct {
	Plans []Plan `json:"plans"`
}

// Plan is a planned range [First, PlanEnd) of one partition. It carries no
// record bytes.
type Plan struct {
	Partition     int32 `json:"partition"`
	First         int64 `json:"first"`
	PlanEnd       int64 `json:"planEnd"`
	HighWatermark int64 `json:"highWatermark"`
	LogStart      int64 `json:"logStart"`
}

// PrepareInput asks a Preparer sink (MaxCompute) to cut the planned range and
// create its upload sessions.
type PrepareInput struct {
	Spec      connector.Spec `json:"spec"`
	Partition int32          `json:"partition"`
	Start     int64          `json:"start"`
	First     int64          `json:"first"`
	PlanEnd   int64          `json:"planEnd"`
	// SkipAt is as in WriteInput: under tolerance stop, preparation stops at
	// the first rejected record other than SkipAt, where the write will end.
	SkipAt int64 `json:"skipAt"`
}

// PrepareResult is the cut range and its sessions, recorded in history.
type PrepareResult struct {
	End      int64          `json:"end"`
	Prepared *sink.Prepared `json:"prepared"`
}

// WriteInput writes one range of one partition.
type WriteInput struct {
	Spec      connector.Spec `json:"spec"`
	Partition int32          `json:"partition"`
	Start     int64          `json:"start"`
	First     int64          `json:"first"`
	// PlanEnd bounds the range; the write cuts it at the byte limit.
	PlanEnd int64 `json:"planEnd"`
	// End, when set (> First), is the exact end cut by PrepareWrite.
	End      int64          `json:"end,omitempty"`
	Prepared *sink.Prepared `json:"prepared,omitempty"`
	// SkipAt is the offset of a poison record an operator resumed past: it
	// goes to the dead-letter topic even under tolerance stop. -1: none.
	SkipAt int64 `json:"skipAt"`
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
}

// Poison describes a rejected record.
type Poison struct {
	Offset int64  `json:"offset"`
	Stage  string `json:"stage"`
	Error  string `json:"error"`
}

// CommitOffsetsInput mirrors cursors into the connect-<name> group.
type CommitOffsetsInput struct {
	Spec    connector.Spec `json:"spec"`
	Offsets []Cursor       `json:"offsets"`
}

// RouteRangeInput sends a range that could not be written to the
// error-data topic (tolerance continue).
type RouteRangeInput struct {
	Spec      connector.Spec `json:"spec"`
	Partition int32          `json:"partition"`
	First     int64          `json:"first"`
	End       int64          `json:"end"`
	Reason    string         `json:"reason"`
}

// RouteRangeResult counts the records routed.
type RouteRangeResult struct {
	Records int64 `json:"records"`
}
