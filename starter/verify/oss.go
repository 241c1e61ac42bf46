package verify

import (
	"bufio"
	"context"
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

var crcTable = crc64.MakeTable(crc64.ECMA)

// ossLedger tiles the connector's data and marker objects. Deep reads each
// data object and compares its body with the values Kafka holds for its
// range (less the records sent to the dead-letter topic), and checks that
// every record of a routed range is in the error-data topic.
func ossLedger(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor, o Options, rep *Report) (map[int32]*Partition, error) {
	creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
	if err != nil {
		return nil, err
	}
	s, err := oss.New(spec, creds)
	if err != nil {
		return nil, err
	}
	listing, err := s.Objects(ctx, spec.Kafka.Topic)
	if err != nil {
		return nil, err
	}
	for _, f := range listing.Foreign {
		rep.Foreign = append(rep.Foreign, Foreign{Key: f.Key, Reason: f.Reason})
	}
	rep.Other = listing.Other
	byPart := map[int32][]oss.Object{}
	for _, obj := range listing.Objects {
		if obj.Connector != spec.Name {
			rep.OtherConnectors++
			continue
		}
		byPart[obj.Partition] = append(byPart[obj.Partition], obj)
	}
	if rep.OtherConnectors > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d objects of other connectors share this folder", rep.OtherConnectors))
	}
	var (
		kc   *kafka.Client
		lets letters
	)
	if o.Deep {
		if kc, err = kafkaClient(spec); err != nil {
			return nil, err
		}
		defer kc.Close()
		if lets, err = readLetters(ctx, kc, spec); err != nil {
			return nil, err
		}
	}
	var chain *transform.Chain
	if o.Deep && len(spec.Transforms) > 0 {
		if chain, err = transform.Compile(spec.Transforms, transform.Options{Functions: wasm.Load}); err != nil {
			return nil, fmt.Errorf("compile the connector's transforms: %w", err)
		}
		defer func() { _ = chain.Close(ctx) }()
	}
	out := map[int32]*Partition{}
	for p, objs := range byPart {
		var ranges []sink.Range
		part := &Partition{Partition: p}
		groups := groupRanges(objs)
		for _, g := range groups {
			obj := g[0]
			r := sink.Range{First: obj.First, End: obj.End, Object: obj.Key}
			if obj.Kind == sink.MarkRewind {
				part.Rewinds = append(part.Rewinds, Marked{Range: r, Kind: obj.Kind, Note: obj.Note})
				continue // no range of data: the ranges written again are
			}
			ranges = append(ranges, r)
			switch obj.Kind {
			case sink.MarkGap, sink.MarkSkipped:
				part.Declared = append(part.Declared, Marked{Range: r, Kind: obj.Kind, Note: obj.Note})
			case sink.MarkRouted:
				part.Routed = append(part.Routed, Marked{Range: r, Kind: obj.Kind, Records: obj.Records, Note: obj.Note})
			default:
				for _, x := range g {
					part.Records += x.Records
				}
			}
			if n := max(obj.Parts, 1); len(g) > n {
				// More objects than the range was written as: the extra ones
				// are duplicates, which the tiling reports as overlaps.
				for _, x := range g[n:] {
					ranges = append(ranges, sink.Range{First: x.First, End: x.End, Object: x.Key})
				}
			} else if problem := groupProblem(g); problem != "" {
				part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: problem})
			}
		}
		c := cursorFor(cursors, p, objs[0].First)
		part.Tiling = sink.Tile(c.Start, c.Committed, ranges)
		part.declareOverlaps()
		if o.Deep {
			for _, g := range groups {
				obj := g[0]
				if obj.Kind == sink.MarkRewind {
					continue
				}
				r := sink.Range{First: obj.First, End: obj.End, Object: obj.Key}
				o.Progress("verify --deep: partition %d %s [%d,%d)", p, obj.Kind, obj.First, obj.End)
				problem, err := deepRange(ctx, s, kc, spec, chain, g, lets)
				if errors.Is(err, errGone) {
					part.Gone = append(part.Gone, r)
					continue
				}
				if err != nil {
					return nil, err
				}
				part.Checked++
				if problem != "" {
					part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: problem})
				}
			}
		}
		out[p] = part
	}
	if err := ossRedriven(ctx, s, spec, o, rep, out); err != nil {
		return nil, err
	}
	return out, nil
}

// groupRanges groups a partition's objects (sorted by first offset, then
// part) by range: a range routed to several folders is several objects.
func groupRanges(objs []oss.Object) [][]oss.Object {
	var out [][]oss.Object
	for _, o := range objs {
		if n := len(out); n > 0 && out[n-1][0].First == o.First && out[n-1][0].Kind == o.Kind && out[n-1][0].Epoch == o.Epoch {
			out[n-1] = append(out[n-1], o)
			continue
		}
		out = append(out, []oss.Object{o})
	}
	return out
}

// groupProblem checks that a range's objects are its parts 0..n-1, all of
// the same range: a missing part is loss, a second object of one part a
// duplicate.
func groupProblem(g []oss.Object) string {
	n := max(g[0].Parts, 1)
	if len(g) != n {
		return fmt.Sprintf("the range was written as %d objects (one per folder) and %d are here", n, len(g))
	}
	for i, o := range g {
		if o.End != g[0].End || max(o.Parts, 1) != n || o.Part != i {
			return fmt.Sprintf("object %s is part %d/%d of [%d,%d), not part %d/%d of [%d,%d)", o.Key, o.Part, o.Parts, o.First, o.End, i, n, g[0].First, g[0].End)
		}
	}
	return ""
}

// deepRange compares a range's objects with what Kafka holds for it; it
// returns the problem, or "". A data range is replayed through the write
// path itself — the size limit, the transform chain, the sink's folders and
// encoder (activities.ApplyRecord on a dry batch) — and each object's body
// must be what it would write, in length, CRC-64 and record count; every
// record the replay refuses must be in the dead-letter topic.
func deepRange(ctx context.Context, s *oss.Sink, kc *kafka.Client, spec *connector.Spec, chain *transform.Chain, g []oss.Object, lets letters) (string, error) {
	obj := g[0]
	switch obj.Kind {
	case sink.MarkGap, sink.MarkSkipped:
		return "", nil // the records are gone from Kafka, or skipped on purpose; declared
	case sink.MarkRouted:
		missing, total := 0, 0
		err := kafkaRange(ctx, kc, spec, obj.Partition, obj.First, obj.End, func(r *kgo.Record) {
			total++
			if !lets.has(obj.Partition, r.Offset, true) {
				missing++
			}
		})
		if err != nil {
			return "", err
		}
		if missing > 0 {
			return fmt.Sprintf("routed range: %d of its %d records are not in the error-data topic %s", missing, total, spec.Errors.ErrorDataTopic), nil
		}
		return "", nil
	}
	var run *transform.Run
	if chain != nil {
		var err error
		if run, err = chain.Begin(ctx); err != nil {
			return "", err
		}
		defer func() { _ = run.Close(ctx) }()
	}
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: obj.Partition, Start: obj.Start, First: obj.First, End: obj.End, Transform: chain.Hash(), Epoch: obj.Epoch}
	dry := s.DryRun(id)
	defer dry.Abort(ctx)
	var problem string
	var replayErr error
	err := kafkaRange(ctx, kc, spec, obj.Partition, obj.First, obj.End, func(r *kgo.Record) {
		if replayErr != nil {
			return
		}
		dl, err := activities.ApplyRecord(ctx, spec, run, dry, r)
		if err != nil {
			replayErr = err
			return
		}
		if dl != nil && problem == "" && !lets.has(obj.Partition, r.Offset, false) {
			problem = fmt.Sprintf("the record at offset %d is refused (%s: %s) but is not in the dead-letter topic", r.Offset, dl.Stage, transform.ShortPrefix([]byte(dl.Err.Error()), 128))
		}
	})
	if err == nil {
		err = replayErr
	}
	if err != nil {
		return "", err
	}
	if problem != "" {
		return problem, nil
	}
	want, err := dry.Parts()
	if err != nil {
		return "", err
	}
	if obj.Kind == kindFiltered {
		if len(want) > 0 {
			return fmt.Sprintf("a marker says the transform dropped every record of the range, but %d objects would be written", len(want)), nil
		}
		return "", nil
	}
	if len(want) != len(g) {
		return fmt.Sprintf("the range is %d objects; replayed from Kafka it is %d", len(g), len(want)), nil
	}
	for i, w := range want {
		o := g[i]
		if o.Key != w.Key {
			return fmt.Sprintf("object %d of the range is %s; replayed from Kafka it is %s", i, o.Key, w.Key), nil
		}
		var bodyCRC uint64
		var bodyLen int64
		err := s.ReadObject(ctx, o.Key, func(r io.Reader) error {
			h := crc64.New(crcTable)
			n, err := io.Copy(h, bufio.NewReaderSize(r, 1<<20))
			bodyCRC, bodyLen = h.Sum64(), n
			return err
		})
		if err != nil {
			return "", err
		}
		switch {
		case bodyLen != w.Size || bodyCRC != w.CRC64:
			return fmt.Sprintf("%s: body is %d bytes with CRC-64 %d; replayed from Kafka (%d records) it is %d bytes with CRC-64 %d", o.Key, bodyLen, bodyCRC, w.Records, w.Size, w.CRC64), nil
		case o.Records != w.Records:
			return fmt.Sprintf("%s: metadata says %d records, the replay from Kafka %d", o.Key, o.Records, w.Records), nil
		case o.CRC64 != bodyCRC:
			return fmt.Sprintf("%s: metadata CRC-64 %d differs from the body's %d", o.Key, o.CRC64, bodyCRC), nil
		case o.ServerCRC64 != 0 && o.ServerCRC64 != bodyCRC:
			return fmt.Sprintf("%s: OSS's CRC-64 %d differs from the body's %d", o.Key, o.ServerCRC64, bodyCRC), nil
		case o.Transform != id.Transform:
			return fmt.Sprintf("%s: written by transform chain %q, the spec's is %q (the transforms changed since)", o.Key, o.Transform, id.Transform), nil
		}
	}
	return "", nil
}

// kindFiltered is the kind of an OSS marker object of a range the
// transform chain dropped whole.
const kindFiltered = "filtered"
