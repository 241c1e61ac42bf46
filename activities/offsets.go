package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/sink"
)

// SetOffsetsName is the SetOffsets activity's name.
const SetOffsetsName = "SetOffsets"

// Offset positions an operator may set a paused connector's partitions to
// (in the manner of Kafka Connect's KIP-875).
const (
	ToEarliest  = "earliest"  // the log start
	ToLatest    = "latest"    // the high watermark: only records produced from now on
	ToTimestamp = "timestamp" // the first record at or after a time
	ToOffset    = "offset"    // an exact offset
)

// OffsetCursor is a partition's position as the workflow holds it.
type OffsetCursor struct {
	Partition int32 `json:"partition"`
	Next      int64 `json:"next"`
	Start     int64 `json:"start"`
	Epoch     int   `json:"epoch,omitempty"`
}

// SetOffsetsInput moves partitions of a paused connector.
type SetOffsetsInput struct {
	SpecInput
	Partitions []OffsetCursor `json:"partitions"`
	// To is earliest, latest, timestamp or offset.
	To string `json:"to"`
	// Offset is the exact offset (To offset).
	Offset int64 `json:"offset,omitempty"`
	// Timestamp is the time (To timestamp): a partition moves to its first
	// record at or after it, or to its high watermark when none is.
	Timestamp time.Time `json:"timestamp,omitempty"`
	// By and At say who set the offsets and when, for the sink's ledger.
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Writer string    `json:"writer,omitempty"`
}

// OffsetMove is what setting one partition's offset did.
type OffsetMove struct {
	Partition int32 `json:"partition"`
	// From is where the partition's data in the sink ended; To is where it
	// continues.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Kind is skipped (a forward jump, declared in the sink), gap (a
	// forward jump over records retention already deleted, no further),
	// rewind (a backward jump: [To, From) is written again, in epoch
	// Epoch), or "" (no move).
	Kind string `json:"kind,omitempty"`
	// Lost is the part of a forward jump that retention had already
	// deleted ([From, log start)), declared as a gap.
	Lost  *sink.Range `json:"lost,omitempty"`
	Epoch int         `json:"epoch,omitempty"`
	// Start is the partition's first offset for verify (lowered by a rewind
	// below it).
	Start int64 `json:"start"`
}

// SetOffsetsResult lists the moves, one per partition asked for.
type SetOffsetsResult struct {
	Moves []OffsetMove `json:"moves"`
}

// SetOffsets resolves the target offset of each partition (earliest,
// latest, by timestamp or exact), checks that every target lies within the
// partition's [log start, high watermark] — refusing the whole request,
// naming the partition and value, when one does not — and records each
// move in the sink before the workflow makes it: a forward jump as a
// declared skip [from, target) (the part retention already deleted as a
// declared gap), a backward jump as a rewind of [target, from) that the
// partition writes again in a new epoch. "from" is where the sink's own
// record of the partition ends, as for a declared gap.
func (a *Activities) SetOffsets(ctx context.Context, in SetOffsetsInput) (SetOffsetsResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return SetOffsetsResult{}, err
	}
	defer keepAlive(ctx)()
	kc, err := a.kafka.For(spec)
	if err != nil {
		return SetOffsetsResult{}, classify(err)
	}
	bounds, err := kc.Bounds(ctx, spec.Kafka.Topic)
	if err != nil {
		return SetOffsetsResult{}, classify(err)
	}
	var byTime map[int32]int64
	if in.To == ToTimestamp {
		if byTime, err = kc.OffsetsAfter(ctx, spec.Kafka.Topic, in.Timestamp); err != nil {
			return SetOffsetsResult{}, classify(err)
		}
	}
	targets := map[int32]int64{}
	var bad []string
	for _, c := range in.Partitions {
		b, ok := bounds[c.Partition]
		if !ok {
			bad = append(bad, fmt.Sprintf("partition %d: no such partition of topic %s", c.Partition, spec.Kafka.Topic))
			continue
		}
		if b.Err != nil {
			return SetOffsetsResult{}, fmt.Errorf("offsets of partition %d: %w", c.Partition, b.Err)
		}
		var t int64
		switch in.To {
		case ToEarliest:
			t = b.Start
		case ToLatest:
			t = b.End
		case ToTimestamp:
			t, ok = byTime[c.Partition]
			if !ok || t < 0 {
				t = b.End
			}
			t = max(t, b.Start)
		case ToOffset:
			t = in.Offset
		default:
			return SetOffsetsResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("to: %q must be one of earliest, latest, timestamp, offset", in.To), "BadOffset", nil)
		}
		if t < b.Start || t > b.End {
			bad = append(bad, fmt.Sprintf("partition %d: offset %d is outside [%d, %d], the partition's log start and high watermark", c.Partition, t, b.Start, b.End))
			continue
		}
		targets[c.Partition] = t
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return SetOffsetsResult{}, temporal.NewNonRetryableApplicationError("offsets not set: "+strings.Join(bad, "; "), "BadOffset", nil)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return SetOffsetsResult{}, classify(err)
	}
	// Every move is decided before any is recorded, so a refused one
	// leaves every partition where it was.
	moves := make([]OffsetMove, len(in.Partitions))
	for i, c := range in.Partitions {
		from := c.Next
		if r, ok := s.(sink.Resumer); ok {
			rp, found, err := r.Resume(ctx, spec.Name, spec.Kafka.Topic, c.Partition, in.Writer)
			if err != nil {
				return SetOffsetsResult{}, classify(fmt.Errorf("read where partition %d's data ends: %w", c.Partition, err))
			}
			if found && rp.Epoch == c.Epoch && rp.Next > from {
				from = rp.Next
			}
			// An OSS object past the sink's meta (pending: written, not yet
			// confirmed against Kafka) holds its range: a move starts after
			// it. A MaxCompute pending range (sessions not all committed)
			// holds nothing yet.
			if found && rp.Epoch == c.Epoch && rp.Pending != nil && len(rp.Pending.Sessions) == 0 && rp.Pending.End > from {
				from = rp.Pending.End
			}
		}
		to := targets[c.Partition]
		m := OffsetMove{Partition: c.Partition, From: from, To: to, Epoch: c.Epoch, Start: min(c.Start, to)}
		switch {
		case to > from:
			m.Kind = sink.MarkSkipped
			if ls := bounds[c.Partition].Start; from < ls {
				m.Lost = &sink.Range{First: from, End: min(ls, to)}
				if m.Lost.End == to {
					m.Kind = sink.MarkGap // all of it was lost: a declared gap only
				}
			}
		case to < from:
			m.Kind, m.Epoch = sink.MarkRewind, c.Epoch+1
		}
		moves[i] = m
	}
	m, isMarker := s.(sink.Marker)
	for _, mv := range moves {
		if mv.Kind == "" || !isMarker {
			continue
		}
		note := fmt.Sprintf("offsets set by %s at %s", in.By, in.At.UTC().Format(time.RFC3339))
		id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: mv.Partition, Start: mv.Start, Writer: in.Writer, Epoch: mv.Epoch}
		var marks []sink.Mark
		switch mv.Kind {
		case sink.MarkSkipped, sink.MarkGap:
			first := mv.From
			if mv.Lost != nil {
				gid := id
				gid.First, gid.End = mv.Lost.First, mv.Lost.End
				marks = append(marks, sink.Mark{ID: gid, Kind: sink.MarkGap, Reason: shorten("deleted from Kafka before it was dumped; acknowledged by "+note, 256), At: in.At})
				first = mv.Lost.End
			}
			if first < mv.To {
				id.First, id.End = first, mv.To
				marks = append(marks, sink.Mark{ID: id, Kind: sink.MarkSkipped, Reason: shorten(fmt.Sprintf("skipped: %s (from %d to %d)", note, mv.From, mv.To), 256), At: in.At})
			}
		case sink.MarkRewind:
			id.First, id.End = mv.To, mv.From
			// The worker's clock, as the rows written after it use: a
			// MaxCompute ledger orders a rewind and the rows by it.
			marks = append(marks, sink.Mark{ID: id, Kind: sink.MarkRewind, Reason: shorten(fmt.Sprintf("rewound: %s (from %d back to %d)", note, mv.From, mv.To), 256), At: time.Now().UTC()})
		}
		for _, mk := range marks {
			if _, err := m.Mark(ctx, mk); err != nil {
				return SetOffsetsResult{}, classify(fmt.Errorf("record the %s range [%d,%d) of partition %d: %w", mk.Kind, mk.ID.First, mk.ID.End, mv.Partition, err))
			}
		}
	}
	return SetOffsetsResult{Moves: moves}, nil
}
