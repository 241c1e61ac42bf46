package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
)

// maxComputeLedger reads the (topic, partition, offset) columns of every
// table partition and the connector's dead letters: together their offsets
// must tile [start, committed), and no offset may be in the table twice
// (count(*) = count(distinct topic, partition, offset)). Offsets Kafka
// itself skips (transaction markers, compaction) would show as gaps.
func maxComputeLedger(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor) (map[int32]Partition, error) {
	if spec.Sink.MaxCompute.Format == connector.FormatCSV {
		return nil, errors.New("verify needs the topic, partition and offset columns; a CSV table has none (compare row counts with 'starter table rows' instead)")
	}
	creds, err := connector.ResolveCredentials(spec.Sink.MaxCompute.Credentials)
	if err != nil {
		return nil, err
	}
	led, err := maxcompute.ReadLedger(ctx, spec, creds)
	if err != nil {
		return nil, err
	}
	opts, err := kafka.Options(spec)
	if err != nil {
		return nil, err
	}
	kc, err := kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	present := map[int32]map[int64]bool{}
	add := func(p int32, offs []int64) {
		if present[p] == nil {
			present[p] = map[int64]bool{}
		}
		for _, o := range offs {
			present[p][o] = true
		}
	}
	for p, offs := range led.Offsets {
		add(p, offs)
	}
	topics := []string{spec.Errors.DeadLetterTopic}
	if spec.Errors.ErrorDataTopic != spec.Errors.DeadLetterTopic {
		topics = append(topics, spec.Errors.ErrorDataTopic)
	}
	for _, t := range topics {
		dl, err := kc.DeadLetterOffsets(ctx, t, spec.Name, spec.Kafka.Topic)
		if err != nil {
			return nil, err
		}
		for p, offs := range dl {
			add(p, offs)
		}
	}
	out := map[int32]Partition{}
	for p, set := range present {
		offs := make([]int64, 0, len(set))
		for o := range set {
			offs = append(offs, o)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		var rs []sink.Range
		for _, o := range offs {
			if n := len(rs); n > 0 && rs[n-1].End == o {
				rs[n-1].End++
				continue
			}
			rs = append(rs, sink.Range{First: o, End: o + 1})
		}
		c, ok := cursors[p]
		if !ok {
			c = Cursor{Start: offs[0], Committed: offs[0]}
		}
		part := Partition{Partition: p, Tiling: sink.Tile(c.Start, c.Committed, rs), Records: int64(len(led.Offsets[p])), Duplicates: int64(len(led.Duplicates[p]))}
		for _, d := range led.Duplicates[p] {
			part.Overlaps = append(part.Overlaps, sink.Range{First: d, End: d + 1, Object: fmt.Sprintf("row %s[%d]@%d more than once", spec.Kafka.Topic, p, d)})
		}
		out[p] = part
	}
	return out, nil
}
