// Package sink defines the contract every destination implements. Each
// destination is one package below this one (sink/oss, sink/maxcompute).
//
// Lifecycle: a worker builds one Sink per connector spec and reuses it for
// every batch of every partition; Sink methods are safe for concurrent use.
// A Batch belongs to one goroutine: Begin, then Add for every record of the
// range in offset order, then Commit or Abort.
//
// Exactly-once contract: everything a sink writes is a pure function of the
// BatchID and the records, so writing the same batch again (an activity
// retry, a worker crash, a resumed connector) rewrites the same objects or
// re-attaches the same sessions and never duplicates a record.
package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// BatchID identifies one batch: a range of one partition of one connector.
// The range written is [First, End); End is the exclusive offset after the
// last record the batch covers (records skipped to the dead-letter topic are
// covered too).
type BatchID struct {
	Connector string
	Topic     string
	Partition int32
	// Start is the first offset this connector ever wrote for the partition;
	// sinks record it in their meta state so verify knows where tiling begins.
	Start int64
	First int64
	End   int64
	// Writer identifies the connector run chain writing the batch
	// ("<namespace>/<workflow id>/<first run id>"). Sinks record it with
	// each range and refuse a batch that would overlap another writer's
	// ranges: one connector name, one writer.
	Writer string
	// Transform is the hash of the transform chain the batch's records went
	// through ("" without one): sinks stamp it into each object and ledger
	// entry, so a spec change is visible in the data.
	Transform string
	// LegacyNames names OSS objects as the first build did (the hash
	// covers the range's end as well as its first offset). Only batches
	// planned by connector runs that started under that build set it.
	LegacyNames bool
	// Epoch counts the operator rewinds of the partition (offsets set
	// backwards): a range written again after a rewind is a new epoch's, so
	// its OSS object has a name of its own and never collides with the
	// object the earlier epoch wrote from the same offset. 0 until the first
	// rewind.
	Epoch int
	// Redrive, when set, makes the batch a re-drive of dead letters: First
	// and End are offsets of the dead-letter topic's partition, Partition
	// the origin partition of every letter in it. Sinks write such a batch
	// under names of its own, deterministic per (connector, dead-letter
	// partition, first dead-letter offset), outside the tiling of the
	// origin partition's ranges, and move no resume state.
	Redrive *Redrive
	// Group, when set, makes the batch a group batch: the ranges of several
	// partitions of the topic (at least one), written in this order into
	// one set of prepared sessions and recorded in the sink as one unit, so
	// a flush of many partitions costs one session per destination
	// partition, not one per Kafka partition (sink.GroupWriter). Partition,
	// Start, First, End and Epoch are then Group[0]'s, for messages.
	Group []Member
}

// Member is one Kafka partition's range in a group batch.
type Member struct {
	Partition int32 `json:"partition"`
	// Start is the first offset the connector ever wrote for the partition.
	Start int64 `json:"start"`
	First int64 `json:"first"`
	End   int64 `json:"end"`
	Epoch int   `json:"epoch,omitempty"`
}

// GroupWriter is implemented by Preparers that write group batches
// (BatchID.Group): one Prepare names the sessions of every destination
// partition the members' records land in, Begin takes the members'
// records in Group's order (each member's range in offset order), and
// Commit records all the ranges at once. A member whose resume point's
// Pending names a Group is finished by writing that whole group again with
// the same sessions.
type GroupWriter interface {
	Preparer
	// GroupWrites reports whether the sink writes group batches.
	GroupWrites() bool
}

// Redrive says which dead letters a re-drive batch holds.
type Redrive struct {
	DeadLetterTopic     string
	DeadLetterPartition int32
	// Overrides is the hash of the spec changes the re-drive ran with
	// ("" for none), so verify --deep replays the letters as they ran.
	Overrides string
	// OverridesSpec is the overrides themselves (JSON; nil for none), for
	// sinks that keep them with what the batch wrote (the MaxCompute
	// sink's ledger row). They name transform steps and limits, never
	// credentials.
	OverridesSpec []byte
}

// KindRedriven is the kind of what a re-drive batch writes: the records of
// dead letters written to the destination after all.
const KindRedriven = "redriven"

func (id BatchID) String() string {
	return fmt.Sprintf("%s/%s[%d] [%d,%d)", id.Connector, id.Topic, id.Partition, id.First, id.End)
}

// Sink is a destination.
type Sink interface {
	// Begin starts writing batch id. prepared is what Prepare returned for
	// this batch, or nil for sinks that are not Preparers.
	Begin(ctx context.Context, id BatchID, prepared *Prepared) (Batch, error)
	// Close releases the sink's clients.
	Close() error
}

// Batch collects the records of one range and writes them.
type Batch interface {
	// Add takes the next record. A *RejectError means the sink cannot take
	// this record: the caller sends it to the dead-letter topic and goes on.
	// Any other error fails the batch.
	Add(ctx context.Context, r *transform.Record) error
	// Commit durably writes everything added. After Commit returns nil the
	// range [id.First, id.End) is in the sink exactly once.
	Commit(ctx context.Context) (Written, error)
	// Abort discards the batch; it is safe after a failed Commit.
	Abort(ctx context.Context)
}

// Cutter is implemented by batches whose range's end may be set after
// Begin, before Commit: a write that cuts its range as it reads it (V3)
// begins a batch knowing only where it starts.
type Cutter interface {
	// Cut sets the end of the batch's range (BatchID.End).
	Cut(end int64)
}

// Written reports what a Commit wrote. It goes into workflow history, so it
// holds names and counts, never record bytes.
type Written struct {
	// Objects are the object keys (OSS) or tunnel session ids (MaxCompute).
	Objects []string `json:"objects"`
	Records int64    `json:"records"`
	Bytes   int64    `json:"bytes"`
	// Members are a group batch's counts per member, in Group's order
	// (Records and Bytes are their sums).
	Members []MemberWritten `json:"members,omitempty"`
}

// MemberWritten is what a group batch wrote of one member's range.
type MemberWritten struct {
	Partition int32 `json:"partition"`
	Records   int64 `json:"records"`
	Bytes     int64 `json:"bytes"`
}

// Preparer is implemented by sinks that must create durable write state in a
// step of its own before the write (MaxCompute upload sessions), so that its
// identity is recorded in workflow history and a retried write re-attaches to
// it instead of creating a new one.
type Preparer interface {
	// PartitionOf names the destination partition a record lands in
	// (e.g. "pt=11-17-2020 14"); it must not depend on anything but r.
	// A record the sink cannot take is a *RejectError.
	PartitionOf(r *transform.Record) (string, error)
	// Prepare creates the write state for batch id covering the given
	// destination partitions, in the order given. Sessions in keep (from an
	// earlier Prepare of the same range) are kept when they are committed
	// or still open, so committed rows are counted, never written again;
	// only missing or expired ones are created anew.
	Prepare(ctx context.Context, id BatchID, partitions []string, keep []Session) (*Prepared, error)
}

// Rejecter is implemented by sinks that can tell, before a write, whether a
// record would be rejected, so a plan can end before a poison record.
type Rejecter interface {
	// Reject returns a *RejectError for a record the sink cannot take.
	Reject(r *transform.Record) error
}

// Prepared is the durable write state of one batch, recorded in history.
type Prepared struct {
	Sessions []Session `json:"sessions"`
}

// Session is one destination partition's upload session.
type Session struct {
	Partition string `json:"partition"`
	ID        string `json:"id"`
	// Committed is set once the session is known to be committed: its rows
	// are in the table and a retry counts them instead of sending them.
	Committed bool `json:"committed,omitempty"`
}

// ExpiredError is returned by a Batch's Commit when some of the prepared
// sessions can never be committed (expired, cancelled) while others may
// already be. The caller prepares new sessions for Expired only, keeping
// the committed ones (whose rows are in the table), and writes the batch
// again: rows are never sent twice.
type ExpiredError struct {
	Committed []string // destination partitions whose sessions are committed
	Expired   []string // destination partitions whose sessions must be replaced
	Err       error
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("upload sessions of %v can no longer be committed (committed: %v): %v", e.Expired, e.Committed, e.Err)
}
func (e *ExpiredError) Unwrap() error { return e.Err }

// RejectError says a record cannot be written (too large, fails to convert,
// wrong field count). The record goes to the dead-letter topic with Stage and
// the error in its headers.
type RejectError struct {
	Stage string // e.g. "convert", "size"
	Err   error
}

func (e *RejectError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

// Reject wraps err as a *RejectError for stage.
func Reject(stage string, err error) error { return &RejectError{Stage: stage, Err: err} }

// IsReject reports whether err rejects a single record.
func IsReject(err error) (*RejectError, bool) {
	var re *RejectError
	ok := errors.As(err, &re)
	return re, ok
}

// PermanentError marks a failure no retry can fix (bad credentials, missing
// table, schema mismatch). Activities turn it into a non-retryable
// application error of type Type.
type PermanentError struct {
	Type string // e.g. "NoSuchTable", "AccessDenied"
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a *PermanentError of type typ.
func Permanent(typ string, err error) error { return &PermanentError{Type: typ, Err: err} }

// ThrottledError marks a failure the destination gave because requests
// came too fast or its quota for a window is used up (OSS QpsLimitExceeded,
// SlowDown; MaxCompute FlowExceeded, SlotExceeded, QuotaExceeded): no fault
// of the data, and fixed by waiting. Activities turn it into a retryable
// application error of type Throttled; a range that is still throttled
// after its retries waits and is written again, never routed to the
// error-data topic.
type ThrottledError struct{ Err error }

func (e *ThrottledError) Error() string { return e.Err.Error() }
func (e *ThrottledError) Unwrap() error { return e.Err }

// Throttled wraps err as a *ThrottledError.
func Throttled(err error) error { return &ThrottledError{Err: err} }

// ErrThrottled is the application error type of a *ThrottledError.
const ErrThrottled = "Throttled"

// Resumer is implemented by sinks that are the source of truth for what they
// hold (the OSS meta and data objects, the MaxCompute ledger table), so a
// connector whose workflow was lost resumes from the sink rather than from
// the consumer group, which may lag.
type Resumer interface {
	// Resume returns where topic[partition] continues; ok is false when the
	// sink holds nothing of the connector's for it. writer is the resuming
	// writer (see BatchID.Writer).
	Resume(ctx context.Context, connector, topic string, partition int32, writer string) (p ResumePoint, ok bool, err error)
}

// BulkResumer is a Resumer that resumes many partitions at once, reading
// what they share (a MaxCompute group ledger) once: a connector's first
// run over a 256-partition topic must not read the ledger 256 times.
type BulkResumer interface {
	Resumer
	// ResumeMany is Resume for each partition; a partition the sink holds
	// nothing of is absent from the map.
	ResumeMany(ctx context.Context, connector, topic string, partitions []int32, writer string) (map[int32]ResumePoint, error)
}

// Holder is implemented by sinks that can say what they hold of a
// partition's range: what a write's retry found committed by an earlier
// attempt, so its result counts it.
type Holder interface {
	Held(ctx context.Context, connector, topic string, partition int32, first, end int64) (Written, error)
}

// ResumePoint is where a partition continues after its workflow was lost.
type ResumePoint struct {
	// Start is the first offset the connector ever wrote for the partition.
	Start int64 `json:"start"`
	// Next is the end of the last range known to be complete.
	Next int64 `json:"next"`
	// Pending is a range at Next whose write had begun (its sessions are
	// recorded) but is not known to be complete: the connector finishes it
	// with the same sessions before planning anything new.
	Pending *Pending `json:"pending,omitempty"`
	// Epoch is the partition's epoch (BatchID.Epoch): how many times an
	// operator rewound it.
	Epoch int `json:"epoch,omitempty"`
}

// Pending is a range whose write began: its cut and sessions.
type Pending struct {
	First    int64     `json:"first"`
	End      int64     `json:"end"`
	Sessions []Session `json:"sessions,omitempty"`
	// Bytes is about the range's size, for the worker's batch memory budget
	// (0: unknown).
	Bytes int64 `json:"bytes,omitempty"`
	// Group is set when the range was written as a member of a group batch:
	// the members of that batch still pending at it (this one included; a
	// member whose partition has moved on since, e.g. by a declared gap or
	// a rewind, is left out), whose ranges share Sessions. The connector
	// finishes them together, as one group batch with these Sessions.
	Group []Member `json:"group,omitempty"`
}

// Mark kinds: ranges a sink records without holding their records.
const (
	// MarkGap is a declared gap: offsets deleted from Kafka (retention)
	// before they were dumped, acknowledged by an operator.
	MarkGap = "gap"
	// MarkRouted is a range sent to the error-data topic under tolerance
	// continue because it could not be written.
	MarkRouted = "routed"
	// MarkSkipped is an operator's forward jump (starter offsets set, the
	// set-offsets update): [First, End) was skipped on purpose, not lost.
	// Verify lists it as declared, with who set it and when.
	MarkSkipped = "skipped"
	// MarkRewind is an operator's backward jump: [First, End) is written
	// again from First, in a new epoch (BatchID.Epoch). The sink accepts the
	// re-written range instead of refusing it as a second writer, and
	// verify lists its overlap with the earlier epoch's ranges as declared,
	// not as duplicates. A rewind mark holds no records.
	MarkRewind = "rewind"
)

// Declared reports whether kind is a mark an operator declared (a gap,
// skipped range or rewind) rather than data or a routed range.
func Declared(kind string) bool {
	return kind == MarkGap || kind == MarkSkipped || kind == MarkRewind
}

// Mark is a range the ledger accounts for without the sink holding it.
type Mark struct {
	ID      BatchID
	Kind    string // MarkGap, MarkRouted, MarkSkipped or MarkRewind
	Records int64  // records routed (MarkRouted)
	Reason  string // why: the write error, or who acknowledged the loss
	// FirstTimestamp is the timestamp of the range's first record (zero for
	// a gap): OSS puts a routed marker where the range's object would be.
	FirstTimestamp time.Time
	At             time.Time
}

// Marker is implemented by sinks whose ledger records declared gaps and
// routed ranges, so verify accounts for them from the sink alone.
type Marker interface {
	// Mark records m. It reports written=true, and records nothing, when the
	// sink already holds the range's data (a write that succeeded although
	// its activity failed): the range must not be routed then.
	Mark(ctx context.Context, m Mark) (written bool, err error)
}

// RouteChecker is implemented by sinks that can tell, before a range is
// routed to the error-data topic, whether its write succeeded although its
// activity failed (then the range counts as written and is not routed).
type RouteChecker interface {
	// Written reports whether the range id is wholly in the sink; firstTS
	// is the timestamp of the range's first record.
	Written(ctx context.Context, id BatchID, firstTS time.Time) (bool, error)
}

// ErrConcurrentWriter is the PermanentError type of a batch refused because
// another writer holds the partition.
const ErrConcurrentWriter = "ConcurrentWriter"

// Checker is implemented by sinks that can check, up front, that the
// destination exists and the credentials work.
type Checker interface {
	Check(ctx context.Context) error
}
