// Package verify builds a connector's offset-coverage ledger: for every
// partition, whether the ranges present in the sink tile [start, committed)
// exactly — no gap (loss), no overlap (duplicate). The starter's verify
// command prints it; tests assert it.
package verify

import (
	"context"
	"fmt"
	"sort"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
)

// Cursor is a partition's start and committed offsets.
type Cursor struct {
	Start     int64 `json:"start"`
	Committed int64 `json:"committed"`
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
}

// Report is a connector's ledger.
type Report struct {
	Connector  string      `json:"connector"`
	Sink       string      `json:"sink"`
	Partitions []Partition `json:"partitions"`
	OK         bool        `json:"ok"`
}

// Run builds the ledger of spec's sink against cursors (partition → start
// and committed offset, from the workflow or the consumer group).
func Run(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor) (Report, error) {
	rep := Report{Connector: spec.Name, Sink: spec.Sink.Type, OK: true}
	var parts map[int32]Partition
	var err error
	switch spec.Sink.Type {
	case connector.SinkOSS:
		parts, err = ossLedger(ctx, spec, cursors)
	case connector.SinkMaxCompute:
		parts, err = maxComputeLedger(ctx, spec, cursors)
	default:
		err = fmt.Errorf("sink.type %q: verify supports oss and maxcompute", spec.Sink.Type)
	}
	if err != nil {
		return Report{}, err
	}
	for p, c := range cursors {
		if _, ok := parts[p]; !ok {
			parts[p] = Partition{Partition: p, Tiling: sink.Tile(c.Start, c.Committed, nil)}
		}
	}
	for _, p := range parts {
		rep.Partitions = append(rep.Partitions, p)
		if !p.OK() || p.Duplicates > 0 {
			rep.OK = false
		}
	}
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Partition < rep.Partitions[j].Partition })
	return rep, nil
}

func ossLedger(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor) (map[int32]Partition, error) {
	creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
	if err != nil {
		return nil, err
	}
	s, err := oss.New(spec, creds)
	if err != nil {
		return nil, err
	}
	objs, err := s.Objects(ctx, spec.Name, spec.Kafka.Topic)
	if err != nil {
		return nil, err
	}
	ranges := map[int32][]sink.Range{}
	records := map[int32]int64{}
	for _, o := range objs {
		ranges[o.Partition] = append(ranges[o.Partition], sink.Range{First: o.First, End: o.End, Object: o.Key})
		records[o.Partition] += o.Records
	}
	out := map[int32]Partition{}
	for p, rs := range ranges {
		c, ok := cursors[p]
		if !ok {
			// Objects of a partition with no cursor: nothing is committed.
			c = Cursor{Start: rs[0].First, Committed: rs[0].First}
		}
		out[p] = Partition{Partition: p, Tiling: sink.Tile(c.Start, c.Committed, rs), Records: records[p]}
	}
	return out, nil
}
