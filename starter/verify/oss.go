package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
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
	out := map[int32]*Partition{}
	for p, objs := range byPart {
		var ranges []sink.Range
		part := &Partition{Partition: p}
		for _, obj := range objs {
			ranges = append(ranges, sink.Range{First: obj.First, End: obj.End, Object: obj.Key})
			switch obj.Kind {
			case sink.MarkGap:
				part.Declared = append(part.Declared, Marked{Range: sink.Range{First: obj.First, End: obj.End, Object: obj.Key}, Note: obj.Note})
			case sink.MarkRouted:
				part.Routed = append(part.Routed, Marked{Range: sink.Range{First: obj.First, End: obj.End, Object: obj.Key}, Records: obj.Records, Note: obj.Note})
			default:
				part.Records += obj.Records
			}
		}
		c := cursorFor(cursors, p, objs[0].First)
		part.Tiling = sink.Tile(c.Start, c.Committed, ranges)
		if o.Deep {
			for _, obj := range objs {
				o.Progress("verify --deep: partition %d %s [%d,%d)", p, obj.Kind, obj.First, obj.End)
				problem, err := deepObject(ctx, s, kc, spec, obj, lets)
				if errors.Is(err, errGone) {
					part.Gone = append(part.Gone, sink.Range{First: obj.First, End: obj.End, Object: obj.Key})
					continue
				}
				if err != nil {
					return nil, err
				}
				part.Checked++
				if problem != "" {
					part.Mismatches = append(part.Mismatches, Mismatch{Range: sink.Range{First: obj.First, End: obj.End, Object: obj.Key}, Problem: problem})
				}
			}
		}
		out[p] = part
	}
	return out, nil
}

// deepObject compares one object with Kafka; it returns the problem, or "".
func deepObject(ctx context.Context, s *oss.Sink, kc *kafka.Client, spec *connector.Spec, obj oss.Object, lets letters) (string, error) {
	switch obj.Kind {
	case sink.MarkGap:
		return "", nil // the records are gone from Kafka; the gap is declared
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
	// The object's body.
	var bodyCRC uint64
	var bodyLen int64
	err := s.ReadObject(ctx, obj.Key, func(r io.Reader) error {
		h := crc64.New(crcTable)
		n, err := io.Copy(h, bufio.NewReaderSize(r, 1<<20))
		bodyCRC, bodyLen = h.Sum64(), n
		return err
	})
	if err != nil {
		return "", err
	}
	// What Kafka says it should be.
	want := crc64.New(crcTable)
	var records, wantLen int64
	err = kafkaRange(ctx, kc, spec, obj.Partition, obj.First, obj.End, func(r *kgo.Record) {
		if lets.has(obj.Partition, r.Offset, false) {
			return // sent to the dead-letter topic
		}
		_, _ = want.Write(r.Value)
		_, _ = want.Write([]byte{'\n'})
		records++
		wantLen += int64(len(r.Value)) + 1
	})
	if err != nil {
		return "", err
	}
	switch {
	case bodyLen != wantLen || bodyCRC != want.Sum64():
		return fmt.Sprintf("body is %d bytes with CRC-64 %d; Kafka's %d records of the range (less dead letters) make %d bytes with CRC-64 %d", bodyLen, bodyCRC, records, wantLen, want.Sum64()), nil
	case obj.Records != records:
		return fmt.Sprintf("metadata says %d records, Kafka holds %d for the range (less dead letters)", obj.Records, records), nil
	case obj.CRC64 != bodyCRC:
		return fmt.Sprintf("metadata CRC-64 %d differs from the body's %d", obj.CRC64, bodyCRC), nil
	case obj.ServerCRC64 != 0 && obj.ServerCRC64 != bodyCRC:
		return fmt.Sprintf("OSS's CRC-64 %d differs from the body's %d", obj.ServerCRC64, bodyCRC), nil
	}
	return "", nil
}
