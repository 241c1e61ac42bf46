package verify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
)

// Redriven is a range of the dead-letter topic that a re-drive wrote into
// the sink.
type Redriven struct {
	DeadLetterPartition int32 `json:"deadLetterPartition"`
	sink.Range
	// Partition is the origin partition of its letters.
	Partition int32 `json:"partition"`
	// Records is how many records the sink holds from it.
	Records int64 `json:"records"`
}

// ossRedriven accounts for the connector's re-drive objects: they lie
// outside the tiling of the origin partitions' ranges (a re-driven record's
// offset is covered by the data range that sent it to the dead-letter
// topic). Their dead-letter ranges must not overlap, each range's objects
// must be its parts, and — deep — each range replayed from the dead-letter
// topic through the write path, with the re-drive's overrides, must give
// the objects' bodies; a letter the replay refuses must be back in the
// dead-letter topic with its attempt one higher, and no origin offset may
// be delivered by two re-drives.
func ossRedriven(ctx context.Context, s *oss.Sink, spec *connector.Spec, o Options, rep *Report, out map[int32]*Partition) error {
	all, err := s.RedrivenObjects(ctx, spec.Kafka.Topic)
	if err != nil {
		return err
	}
	var objs []oss.Object
	for _, x := range all {
		if x.Connector == spec.Name && x.DeadLetterTopic == spec.Errors.DeadLetterTopic {
			objs = append(objs, x)
		}
	}
	if len(objs) == 0 {
		return nil
	}
	part := func(p int32) *Partition {
		if out[p] == nil {
			out[p] = &Partition{Partition: p}
		}
		return out[p]
	}
	// Group by dead-letter range (objects are sorted by dead-letter
	// partition, first offset, part).
	var groups [][]oss.Object
	for _, x := range objs {
		if n := len(groups); n > 0 && groups[n-1][0].DeadLetterPartition == x.DeadLetterPartition && groups[n-1][0].First == x.First {
			groups[n-1] = append(groups[n-1], x)
			continue
		}
		groups = append(groups, []oss.Object{x})
	}
	lastEnd := map[int32]int64{}
	for _, g := range groups {
		x := g[0]
		r := sink.Range{First: x.First, End: x.End, Object: x.Key}
		red := Redriven{DeadLetterPartition: x.DeadLetterPartition, Range: r, Partition: x.Partition}
		for _, y := range g {
			red.Records += y.Records
		}
		rep.Redriven = append(rep.Redriven, red)
		p := part(x.Partition)
		p.Redriven += red.Records
		if end, ok := lastEnd[x.DeadLetterPartition]; ok && x.First < end {
			p.Mismatches = append(p.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("re-drive of dead letters [%d,%d) of %s[%d] overlaps the one before it, which ends at %d: letters re-driven twice",
				x.First, x.End, x.DeadLetterTopic, x.DeadLetterPartition, end)})
		}
		lastEnd[x.DeadLetterPartition] = max(lastEnd[x.DeadLetterPartition], x.End)
		if x.Records > 0 || len(g) > 1 {
			if problem := groupProblem(g); problem != "" {
				p.Mismatches = append(p.Mismatches, Mismatch{Range: r, Problem: "re-drive: " + problem})
			}
		}
	}
	if !o.Deep {
		return nil
	}
	kc, err := kafkaClient(spec)
	if err != nil {
		return err
	}
	defer kc.Close()
	// Attempts per record, from every letter of the connector.
	type origin struct {
		p int32
		o int64
	}
	attempts := map[origin]map[int]bool{}
	err = kc.ReadLetters(ctx, spec.Errors.DeadLetterTopic, func(_ *kgo.Record, l kafka.Letter, ok bool) error {
		if ok && l.Connector == spec.Name && l.Topic == spec.Kafka.Topic {
			k := origin{l.OriginPartition, l.OriginOffset}
			if attempts[k] == nil {
				attempts[k] = map[int]bool{}
			}
			attempts[k][l.Attempt] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	chains := map[string]*transform.Chain{}
	defer func() {
		for _, c := range chains {
			_ = c.Close(ctx)
		}
	}()
	delivered := map[origin]int{}
	for _, g := range groups {
		x := g[0]
		r := sink.Range{First: x.First, End: x.End, Object: x.Key}
		p := part(x.Partition)
		o.Progress("verify --deep: re-driven dead letters [%d,%d) of %s[%d]", x.First, x.End, x.DeadLetterTopic, x.DeadLetterPartition)
		rspec := spec
		if x.Overrides != "" {
			body, err := s.RedriveOverrides(ctx, spec.Kafka.Topic, x.Overrides)
			var ov activities.RedriveOverrides
			if err == nil {
				err = json.Unmarshal(body, &ov)
			}
			if err == nil {
				rspec, err = ov.Apply(spec)
			}
			if err != nil {
				p.Mismatches = append(p.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("the overrides %s the re-drive ran with cannot be read: %v", x.Overrides, err)})
				continue
			}
		}
		var chain *transform.Chain
		if len(rspec.Transforms) > 0 {
			key := x.Overrides
			if chain = chains[key]; chain == nil {
				if chain, err = transform.Compile(rspec.Transforms, transform.Options{Functions: wasm.Load}); err != nil {
					return fmt.Errorf("compile the transforms of re-drive %s: %w", x.Overrides, err)
				}
				chains[key] = chain
			}
		}
		plan := activities.RedrivePlan{DeadLetterPartition: x.DeadLetterPartition, First: x.First, End: x.End, OriginPartition: x.Partition}
		problem, got, err := replayRedrive(ctx, s, kc, rspec, chain, plan, x.Overrides, g, func(l kafka.Letter) bool {
			return attempts[origin{l.OriginPartition, l.OriginOffset}][l.Attempt+1]
		})
		if errors.Is(err, errGone) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("re-driven dead letters [%d,%d) of %s[%d] not compared: the dead-letter topic no longer holds them (retention)",
				x.First, x.End, x.DeadLetterTopic, x.DeadLetterPartition))
			continue
		}
		if err != nil {
			return err
		}
		p.RedrivenChecked++
		if problem != "" {
			p.Mismatches = append(p.Mismatches, Mismatch{Range: r, Problem: "re-drive: " + problem})
		}
		for _, l := range got {
			k := origin{l.OriginPartition, l.OriginOffset}
			delivered[k]++
			if delivered[k] == 2 {
				p.Mismatches = append(p.Mismatches, Mismatch{Range: sink.Range{First: l.OriginOffset, End: l.OriginOffset + 1, Object: x.Key},
					Problem: fmt.Sprintf("offset %d of partition %d is re-driven into the sink twice", l.OriginOffset, l.OriginPartition)})
			}
		}
	}
	return nil
}

// replayRedrive replays a re-drive range from the dead-letter topic
// through the write path (activities.RedriveRecord on a dry batch) and
// compares what it would write with the range's objects. It returns the
// letters the replay delivers. refusedBack tells whether a letter the
// replay refuses is in the dead-letter topic again, attempt one higher.
func replayRedrive(ctx context.Context, s *oss.Sink, kc *kafka.Client, spec *connector.Spec, chain *transform.Chain, plan activities.RedrivePlan, overrides string,
	g []oss.Object, refusedBack func(kafka.Letter) bool) (string, []kafka.Letter, error) {
	var run *transform.Run
	if chain != nil {
		var err error
		if run, err = chain.Begin(ctx); err != nil {
			return "", nil, err
		}
		defer func() { _ = run.Close(ctx) }()
	}
	id := activities.RedriveBatchID(spec, plan, chain.Hash(), overrides)
	dry := s.DryRun(id)
	defer dry.Abort(ctx)
	var (
		problem   string
		delivered []kafka.Letter
	)
	err := kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, plan.DeadLetterPartition, plan.First, plan.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		dl, took, err := activities.RedriveRecord(ctx, spec, run, dry, plan, r)
		if err != nil || !took {
			return err == nil, err
		}
		l, _ := kafka.ParseLetter(r)
		if dl == nil {
			delivered = append(delivered, l)
		} else if problem == "" && !refusedBack(l) {
			problem = fmt.Sprintf("dead letter %d (offset %d of partition %d) is refused again (%s) but is not back in the dead-letter topic with attempt %d",
				r.Offset, l.OriginOffset, l.OriginPartition, dl.Stage, l.Attempt+1)
		}
		return true, nil
	})
	if _, lost := kafka.IsDataLost(err); lost {
		return "", nil, errGone
	}
	if err != nil {
		return "", nil, err
	}
	if problem != "" {
		return problem, delivered, nil
	}
	want, err := dry.Parts()
	if err != nil {
		return "", nil, err
	}
	if len(want) == 0 {
		if len(g) != 1 || g[0].Records != 0 {
			return fmt.Sprintf("replayed, the range writes no records, but %d objects hold %d", len(g), g[0].Records), delivered, nil
		}
		return "", delivered, nil
	}
	if len(want) != len(g) {
		return fmt.Sprintf("the range is %d objects; replayed from the dead-letter topic it is %d", len(g), len(want)), delivered, nil
	}
	for i, w := range want {
		x := g[i]
		if x.Key != w.Key {
			return fmt.Sprintf("object %d of the range is %s; replayed it is %s", i, x.Key, w.Key), delivered, nil
		}
		var bodyCRC uint64
		var bodyLen int64
		err := s.ReadObject(ctx, x.Key, func(r io.Reader) error {
			h := crc64.New(crcTable)
			n, err := io.Copy(h, bufio.NewReaderSize(r, 1<<20))
			bodyCRC, bodyLen = h.Sum64(), n
			return err
		})
		if err != nil {
			return "", nil, err
		}
		switch {
		case bodyLen != w.Size || bodyCRC != w.CRC64:
			return fmt.Sprintf("%s: body is %d bytes with CRC-64 %d; replayed from the dead-letter topic (%d records) it is %d bytes with CRC-64 %d", x.Key, bodyLen, bodyCRC, w.Records, w.Size, w.CRC64), delivered, nil
		case x.Records != w.Records:
			return fmt.Sprintf("%s: metadata says %d records, the replay %d", x.Key, x.Records, w.Records), delivered, nil
		case x.CRC64 != bodyCRC:
			return fmt.Sprintf("%s: metadata CRC-64 %d differs from the body's %d", x.Key, x.CRC64, bodyCRC), delivered, nil
		case x.Transform != id.Transform:
			return fmt.Sprintf("%s: written by transform chain %q, the re-drive's is %q", x.Key, x.Transform, id.Transform), delivered, nil
		}
	}
	return "", delivered, nil
}
