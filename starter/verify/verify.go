// Package verify builds a connector's offset-coverage ledger: for every
// partition, whether the ranges the sink records tile [start, committed)
// exactly — no gap (loss), no overlap (duplicate) — counting ranges routed
// to the error-data topic and gaps an operator declared (records deleted
// from Kafka before they were dumped) as accounted for, and listing them.
//
// Run reads the sink's own records: OSS data and marker objects with their
// metadata, the MaxCompute ledger table and the table's (topic, partition,
// offset) columns. With Options.Deep it also reads the data itself — every
// object's body, every row — and compares each range's record count and
// checksum with the records Kafka holds for it, so it finds what metadata
// hides: a truncated or altered object, a missing or duplicated row, a
// routed range whose records never reached the error-data topic.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
)

// Cursor is a partition's start and committed offsets.
type Cursor struct {
	Start     int64 `json:"start"`
	Committed int64 `json:"committed"`
}

// Options tune Run.
type Options struct {
	// Deep reads the data itself and compares it with Kafka's records.
	Deep bool
	// Progress, if set, is told what Deep is reading.
	Progress func(format string, args ...any)
}

// Partition is one partition's ledger.
type Partition struct {
	Partition int32 `json:"partition"`
	sink.Tiling
	// Records is how many records the sink holds for the partition.
	Records int64 `json:"records"`
	// Duplicates counts records present more than once (MaxCompute rows:
	// count(*) - count(distinct topic, partition, offset)).
	Duplicates int64 `json:"duplicates"`
	// Declared are gaps an operator acknowledged (records deleted from
	// Kafka before they were dumped, kind gap) and ranges an operator's
	// forward offset jump skipped (kind skipped, with who set it and when).
	Declared []Marked `json:"declared,omitempty"`
	// Rewinds are an operator's backward offset jumps: each range was
	// written again from its first offset.
	Rewinds []Marked `json:"rewinds,omitempty"`
	// DeclaredOverlaps are offsets present twice because a rewind wrote
	// them again: declared, not duplicates.
	DeclaredOverlaps []sink.Range `json:"declaredOverlaps,omitempty"`
	// Routed are ranges sent to the error-data topic.
	Routed []Marked `json:"routed,omitempty"`
	// Checked is how many ranges Deep compared with Kafka.
	Checked int `json:"checked,omitempty"`
	// Gone are ranges Deep could not compare because Kafka no longer holds
	// their records (retention deleted them after they were dumped).
	Gone []sink.Range `json:"gone,omitempty"`
	// Mismatches are ranges whose data does not match Kafka (Deep).
	Mismatches []Mismatch `json:"mismatches,omitempty"`
	// Redriven is how many records the sink holds from the partition's
	// dead letters, re-driven (outside the tiling: their offsets are
	// covered by the ranges that sent them to the dead-letter topic);
	// RedrivenChecked how many re-drive ranges Deep replayed.
	Redriven        int64 `json:"redriven,omitempty"`
	RedrivenChecked int   `json:"redrivenChecked,omitempty"`
}

// Marked is a declared gap or routed range.
type Marked struct {
	sink.Range
	// Kind is gap, skipped, rewind or routed.
	Kind    string `json:"kind,omitempty"`
	Records int64  `json:"records,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Mismatch is a range whose data disagrees with Kafka.
type Mismatch struct {
	sink.Range
	Problem string `json:"problem"`
}

// OK reports whether the partition's ledger is exact.
func (p Partition) OK() bool {
	return p.Tiling.OK() && p.Duplicates == 0 && len(p.Mismatches) == 0
}

// Report is a connector's ledger.
type Report struct {
	Connector  string      `json:"connector"`
	Sink       string      `json:"sink"`
	Deep       bool        `json:"deep"`
	Partitions []Partition `json:"partitions"`
	// Foreign are objects in the connector's folder named like dumpflow's
	// without (valid) dumpflow metadata: they fail verify.
	Foreign []Foreign `json:"foreign,omitempty"`
	// OtherConnectors counts objects of other connectors in the folder.
	OtherConnectors int `json:"otherConnectors,omitempty"`
	// Other are other keys in the folder (listed, not judged).
	Other []string `json:"other,omitempty"`
	// Redriven are the dead-letter ranges re-drives wrote into the sink.
	Redriven []Redriven `json:"redriven,omitempty"`
	// Notes are facts worth knowing that do not fail verify.
	Notes []string `json:"notes,omitempty"`
	OK    bool     `json:"ok"`
}

// Foreign is an object that looks like dumpflow's and is not.
type Foreign struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Run builds the ledger of spec's sink against cursors (partition → start
// and committed offset, from the workflow or the consumer group).
func Run(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor, opts ...Options) (Report, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	rep := Report{Connector: spec.Name, Sink: spec.Sink.Type, Deep: o.Deep}
	var parts map[int32]*Partition
	var err error
	switch spec.Sink.Type {
	case connector.SinkOSS:
		parts, err = ossLedger(ctx, spec, cursors, o, &rep)
	case connector.SinkMaxCompute:
		parts, err = maxComputeLedger(ctx, spec, cursors, o, &rep)
	default:
		err = fmt.Errorf("sink.type %q: verify supports oss and maxcompute", spec.Sink.Type)
	}
	if err != nil {
		return Report{}, err
	}
	for p, c := range cursors {
		if _, ok := parts[p]; !ok {
			parts[p] = &Partition{Partition: p, Tiling: sink.Tile(c.Start, c.Committed, nil)}
		}
	}
	rep.OK = len(rep.Foreign) == 0
	for _, p := range parts {
		rep.Partitions = append(rep.Partitions, *p)
		if !p.OK() {
			rep.OK = false
		}
	}
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Partition < rep.Partitions[j].Partition })
	return rep, nil
}

// declareOverlaps moves the tiling's overlaps that lie within a rewind's
// range to DeclaredOverlaps: a rewind writes its range again on purpose.
func (p *Partition) declareOverlaps() {
	if len(p.Rewinds) == 0 {
		return
	}
	var left []sink.Range
	for _, o := range p.Overlaps {
		declared := false
		for _, r := range p.Rewinds {
			if o.First >= r.First && o.End <= r.End {
				declared = true
				break
			}
		}
		if declared {
			p.DeclaredOverlaps = append(p.DeclaredOverlaps, o)
		} else {
			left = append(left, o)
		}
	}
	p.Overlaps = left
}

// cursorFor is the partition's cursor, or — for a partition the sink holds
// but the cursors do not name — one that commits nothing.
func cursorFor(cursors map[int32]Cursor, p int32, first int64) Cursor {
	if c, ok := cursors[p]; ok {
		return c
	}
	return Cursor{Start: first, Committed: first}
}

// kafkaClient is a client for spec's cluster.
func kafkaClient(spec *connector.Spec) (*kafka.Client, error) {
	opts, err := kafka.Options(spec)
	if err != nil {
		return nil, err
	}
	return kafka.NewClient(opts...)
}

// letters are the records a connector sent to its dead-letter and
// error-data topics, by source partition and offset: the stages they
// failed at ("write" for records of routed ranges).
type letters map[int32]map[int64][]string

// has reports whether offset o of partition p was sent with a stage other
// than "write" (a dead letter) — or, with routed, with stage "write".
func (l letters) has(p int32, o int64, routed bool) bool {
	for _, st := range l[p][o] {
		if (st == "write") == routed {
			return true
		}
	}
	return false
}

// readLetters reads the connector's dead-letter and error-data topics.
func readLetters(ctx context.Context, kc *kafka.Client, spec *connector.Spec) (letters, error) {
	out := letters{}
	topics := []string{spec.Errors.DeadLetterTopic}
	if spec.Errors.ErrorDataTopic != spec.Errors.DeadLetterTopic {
		topics = append(topics, spec.Errors.ErrorDataTopic)
	}
	for _, t := range topics {
		bounds, err := kc.Bounds(ctx, t)
		if err != nil {
			if errors.Is(err, kafka.ErrNoTopic) {
				continue
			}
			return nil, err
		}
		for p, b := range bounds {
			if b.Err != nil {
				return nil, fmt.Errorf("offsets of %s[%d]: %w", t, p, b.Err)
			}
			err := kc.ReadRange(ctx, t, p, b.Start, min(b.End, max(b.Stable, b.Start)), kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
				h := map[string]string{}
				for _, kv := range r.Headers {
					h[kv.Key] = string(kv.Value)
				}
				if h[kafka.HeaderConnector] != spec.Name || h[kafka.HeaderTopic] != spec.Kafka.Topic {
					return true, nil
				}
				sp, err1 := strconv.ParseInt(h[kafka.HeaderPartition], 10, 32)
				off, err2 := strconv.ParseInt(h[kafka.HeaderOffset], 10, 64)
				if err1 != nil || err2 != nil {
					return true, nil
				}
				if out[int32(sp)] == nil {
					out[int32(sp)] = map[int64][]string{}
				}
				out[int32(sp)][off] = append(out[int32(sp)][off], h[kafka.HeaderStage])
				return true, nil
			})
			if err != nil {
				return nil, fmt.Errorf("read dead letters from %s[%d]: %w", t, p, err)
			}
		}
	}
	return out, nil
}

// kafkaRange calls fn with every record Kafka holds in [first, end) of the
// spec's topic partition (read_committed). It returns errGone when
// retention has deleted records of the range.
func kafkaRange(ctx context.Context, kc *kafka.Client, spec *connector.Spec, p int32, first, end int64, fn func(r *kgo.Record)) error {
	err := kc.ReadRange(ctx, spec.Kafka.Topic, p, first, end, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		fn(r)
		return true, nil
	})
	if _, lost := kafka.IsDataLost(err); lost {
		return errGone
	}
	return err
}

// errGone says Kafka no longer holds a range's records: it cannot be
// compared.
var errGone = errors.New("Kafka no longer holds the range's records")
