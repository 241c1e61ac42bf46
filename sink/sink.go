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
}

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

// Written reports what a Commit wrote. It goes into workflow history, so it
// holds names and counts, never record bytes.
type Written struct {
	// Objects are the object keys (OSS) or tunnel session ids (MaxCompute).
	Objects []string `json:"objects"`
	Records int64    `json:"records"`
	Bytes   int64    `json:"bytes"`
}

// Preparer is implemented by sinks that must create durable write state in a
// step of its own before the write (MaxCompute upload sessions), so that its
// identity is recorded in workflow history and a retried write re-attaches to
// it instead of creating a new one.
type Preparer interface {
	// PartitionOf names the destination partition a record lands in
	// (e.g. "pt=11-17-2020 14"); it must not depend on anything but r.
	PartitionOf(r *transform.Record) (string, error)
	// Prepare creates (or finds) the write state for batch id covering the
	// given destination partitions, in the order given.
	Prepare(ctx context.Context, id BatchID, partitions []string) (*Prepared, error)
}

// Prepared is the durable write state of one batch, recorded in history.
type Prepared struct {
	Sessions []Session `json:"sessions"`
}

// Session is one destination partition's upload session.
type Session struct {
	Partition string `json:"partition"`
	ID        string `json:"id"`
}

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

// Resumer is implemented by sinks that keep their own per-partition state
// (the OSS meta object), so a connector whose workflow was lost resumes from
// the sink rather than from the consumer group.
type Resumer interface {
	// Resume returns the first offset ever written and the end of the last
	// committed range for topic[partition]; ok is false when the sink has no
	// state for it.
	Resume(ctx context.Context, connector, topic string, partition int32) (start, next int64, ok bool, err error)
}

// Checker is implemented by sinks that can check, up front, that the
// destination exists and the credentials work.
type Checker interface {
	Check(ctx context.Context) error
}
