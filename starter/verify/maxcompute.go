package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
)

// maxComputeLedger tiles the ranges of the connector's ledger table (the
// last entry per range), then checks the table's rows against them: no
// offset twice (count(*) = count(distinct topic, partition, offset)), no row
// outside a recorded range, and as many rows in each complete range as its
// entry says. Deep compares each data range's rows with Kafka's records
// (count and an order-independent digest of offset, key and value) and
// checks that each record of a routed range is in the error-data topic or
// the table, not both. Rows written before the ledger existed (a connector
// started by the first build) are tiled from their offsets.
func maxComputeLedger(ctx context.Context, spec *connector.Spec, cursors map[int32]Cursor, o Options, rep *Report) (map[int32]*Partition, error) {
	if spec.Sink.MaxCompute.Format == connector.FormatCSV {
		return nil, fmt.Errorf("verify needs the topic, partition and offset columns; a CSV table has none (compare row counts with 'starter table rows' instead)")
	}
	creds, err := connector.ResolveCredentials(spec.Sink.MaxCompute.Credentials)
	if err != nil {
		return nil, err
	}
	entries, err := maxcompute.ReadLedgerEntries(ctx, spec, creds)
	if err != nil {
		return nil, err
	}
	// Rows: offsets per partition, with a digest per row when deep.
	type rowInfo struct {
		count  int
		digest uint64
		one    uint64 // the first row's digest
	}
	rows := map[int32]map[int64]*rowInfo{}
	o.Progress("verify: reading the table's rows")
	// Rows are compared with Kafka by an order-independent digest of their
	// (offset, key, value) where the table holds those; a FIELDS table only
	// by count.
	digestable := o.Deep && spec.Sink.MaxCompute.Format != connector.FormatFields
	err = maxcompute.ScanRows(ctx, spec, creds, digestable, func(r maxcompute.Row) error {
		if r.Topic != spec.Kafka.Topic {
			return nil
		}
		m := rows[r.Partition]
		if m == nil {
			m = map[int64]*rowInfo{}
			rows[r.Partition] = m
		}
		ri := m[r.Offset]
		if ri == nil {
			ri = &rowInfo{}
			m[r.Offset] = ri
		}
		ri.count++
		if digestable {
			d := rowDigest(r.Offset, r.Key, r.Value)
			ri.digest += d
			if ri.count == 1 {
				ri.one = d
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var (
		kc    *kafka.Client
		lets  letters
		chain *transform.Chain
		mcs   *maxcompute.Sink
	)
	if o.Deep {
		if kc, err = kafkaClient(spec); err != nil {
			return nil, err
		}
		defer kc.Close()
		if lets, err = readLetters(ctx, kc, spec); err != nil {
			return nil, err
		}
		if len(spec.Transforms) > 0 {
			if chain, err = transform.Compile(spec.Transforms, transform.Options{Functions: wasm.Load}); err != nil {
				return nil, fmt.Errorf("compile the connector's transforms: %w", err)
			}
			defer func() { _ = chain.Close(ctx) }()
			if mcs, err = conversion(ctx, spec, creds); err != nil {
				return nil, err
			}
		}
	}
	red, err := mcRedriven(ctx, spec, creds, func() (*maxcompute.Sink, error) {
		if mcs != nil {
			return mcs, nil
		}
		mcs, err = conversion(ctx, spec, creds)
		return mcs, err
	}, digestable, o, rep)
	if err != nil {
		return nil, err
	}
	mode := spec.Sink.MaxCompute.Mode
	out := map[int32]*Partition{}
	partitions := map[int32]bool{}
	for p := range entries {
		partitions[p] = true
	}
	for p := range rows {
		partitions[p] = true
	}
	for p := range red.mismatches {
		partitions[p] = true
	}
	for p := range partitions {
		part := &Partition{Partition: p, Redriven: red.redriven[p], RedrivenChecked: red.checked[p]}
		part.Mismatches = append(part.Mismatches, red.mismatches[p]...)
		var rewinds []maxcompute.LedgerEntry
		var kept []maxcompute.LedgerEntry
		for _, e := range entries[p] {
			if e.Kind == sink.MarkRewind {
				rewinds = append(rewinds, e)
				part.Rewinds = append(part.Rewinds, Marked{Range: sink.Range{First: e.First, End: e.End}, Kind: e.Kind, Note: e.Note})
				continue
			}
			kept = append(kept, e)
		}
		eff := effective(kept, rewinds)
		// mult is how many data ranges cover an offset: more than one only
		// where a rewind wrote the offset again, declared.
		mult := func(off int64) int {
			n := 0
			for _, e := range eff {
				if e.Kind == maxcompute.KindData && e.First <= off && off < e.End {
					n++
				}
			}
			return max(n, 1)
		}
		var ranges []sink.Range
		inRange := func(off int64) bool {
			if len(rewinds) > 0 { // the ranges of two epochs overlap
				for _, e := range eff {
					if e.First <= off && off < e.End {
						return true
					}
				}
				return false
			}
			i := sort.Search(len(eff), func(i int) bool { return eff[i].End > off })
			return i < len(eff) && eff[i].First <= off
		}
		var ledgerStart int64 = -1
		if len(eff) > 0 {
			ledgerStart = eff[0].First
		}
		// Rows of the first build, before the ledger's first range.
		var legacy []int64
		for off, ri := range rows[p] {
			part.Records += int64(ri.count)
			// A transform function may write several rows from one record:
			// then each range's row count is checked instead (below).
			if m := mult(off); ri.count > m && len(spec.Transforms) == 0 {
				part.Duplicates += int64(ri.count - m)
				part.Overlaps = append(part.Overlaps, sink.Range{First: off, End: off + 1, Object: fmt.Sprintf("row %s[%d]@%d %d times", spec.Kafka.Topic, p, off, ri.count)})
			}
			switch {
			case ledgerStart < 0 || off < ledgerStart:
				legacy = append(legacy, off)
			case !inRange(off):
				part.Mismatches = append(part.Mismatches, Mismatch{Range: sink.Range{First: off, End: off + 1}, Problem: "a row outside every range the ledger records"})
			}
		}
		sort.Slice(legacy, func(i, j int) bool { return legacy[i] < legacy[j] })
		for _, off := range legacy {
			if n := len(ranges); n > 0 && ranges[n-1].End == off {
				ranges[n-1].End++
				continue
			}
			ranges = append(ranges, sink.Range{First: off, End: off + 1, Object: "rows written before the ledger"})
		}
		if len(legacy) > 0 && len(eff) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("partition %d: offsets below %d were written before the ledger table existed; they are tiled from the rows", p, ledgerStart))
		}
		first := ledgerStart
		if len(ranges) > 0 {
			first = ranges[0].First
		}
		c := cursorFor(cursors, p, first)
		for _, e := range eff {
			ranges = append(ranges, sink.Range{First: e.First, End: e.End, Object: e.Kind + " " + e.Target})
			switch e.Kind {
			case sink.MarkGap, sink.MarkSkipped:
				part.Declared = append(part.Declared, Marked{Range: sink.Range{First: e.First, End: e.End}, Kind: e.Kind, Note: e.Note})
			case sink.MarkRouted:
				part.Routed = append(part.Routed, Marked{Range: sink.Range{First: e.First, End: e.End}, Kind: e.Kind, Records: e.Records, Note: e.Note})
			}
		}
		part.Tiling = sink.Tile(c.Start, c.Committed, ranges)
		part.declareOverlaps()
		for _, e := range eff {
			if e.End > c.Committed {
				continue // not committed yet: its sessions may still be open
			}
			// Rows re-driven from the range's dead letters are not the
			// range's: they are taken out (mcRedriven checked them).
			var n int64
			var digest uint64
			unknown := false
			for off, ri := range rows[p] {
				if off >= e.First && off < e.End {
					cnt := int64(ri.count) - red.rows[p][off]
					dig := ri.digest - red.digest[p][off]
					unknown = unknown || red.unknown[p][off]
					// An offset a rewind wrote again holds one row per data
					// range over it: this range's is one of them, when the
					// rows are the same.
					if m := mult(off); m > 1 && cnt == int64(m) && (!digestable || dig == uint64(m)*ri.one) {
						n++
						digest += ri.one
						continue
					}
					n += cnt
					digest += dig
				}
			}
			if unknown {
				digest = 0 // compared by count only
			}
			r := sink.Range{First: e.First, End: e.End}
			if e.Kind == maxcompute.KindData && n != e.Records {
				part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("the ledger says %d rows, the table holds %d", e.Records, n)})
				continue
			}
			if !o.Deep {
				continue
			}
			if e.Kind == sink.MarkGap || e.Kind == sink.MarkSkipped {
				part.Checked++ // the records are gone from Kafka, or skipped on purpose; declared
				continue
			}
			o.Progress("verify --deep: partition %d %s [%d,%d)", p, e.Kind, e.First, e.End)
			if chain != nil && e.Kind == maxcompute.KindData {
				want, wantDigest, err := replayRows(ctx, kc, spec, mcs, chain, p, e)
				if errors.Is(err, errGone) {
					part.Gone = append(part.Gone, r)
					continue
				}
				if err != nil {
					return nil, err
				}
				part.Checked++
				if n != want || (digestable && !unknown && digest != wantDigest) {
					part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("the table holds %d rows of the range; replayed from Kafka through the transforms it is %d; digests %016x and %016x", n, want, digest, wantDigest)})
				}
				continue
			}
			var want, missing, both int64
			var wantDigest uint64
			err := kafkaRange(ctx, kc, spec, p, e.First, e.End, func(rec *kgo.Record) {
				if _, ok := rows[p][rec.Offset]; ok || e.Kind == maxcompute.KindData {
					if ok && e.Kind == sink.MarkRouted && lets.has(p, rec.Offset, true) {
						both++ // delivered twice: a row and an error-data record
					}
					if !lets.has(p, rec.Offset, false) {
						want++
						wantDigest += rowDigest(rec.Offset, modeKey(mode, rec.Key), modeValue(mode, rec.Value))
					}
					return
				}
				if !lets.has(p, rec.Offset, true) {
					missing++
				}
			})
			if errors.Is(err, errGone) {
				part.Gone = append(part.Gone, r)
				continue
			}
			if err != nil {
				return nil, err
			}
			part.Checked++
			switch {
			case missing > 0:
				part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("routed range: %d records are neither in the table nor in the error-data topic %s", missing, spec.Errors.ErrorDataTopic)})
			case both > 0:
				part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("routed range: %d records are both in the table and in the error-data topic %s", both, spec.Errors.ErrorDataTopic)})
			case n != want || (!unknown && digest != wantDigest):
				part.Mismatches = append(part.Mismatches, Mismatch{Range: r, Problem: fmt.Sprintf("the table holds %d rows of the range, Kafka %d records (less dead letters); digests %016x and %016x", n, want, digest, wantDigest)})
			}
		}
		out[p] = part
	}
	return out, nil
}

// conversion is a sink for the table's row conversion, for replays.
func conversion(ctx context.Context, spec *connector.Spec, creds connector.Credentials) (*maxcompute.Sink, error) {
	s, err := maxcompute.New(spec, creds)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureTable(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// effective is the last entry per range start within each epoch (the
// entries between two operator rewinds), in offset order: a range recorded
// again (new sessions after some expired, or routed after its write
// failed) counts once, as last recorded; a range a rewind wrote again
// counts once per epoch.
func effective(es, rewinds []maxcompute.LedgerEntry) []maxcompute.LedgerEntry {
	type key struct {
		epoch int
		first int64
	}
	byFirst := map[key]maxcompute.LedgerEntry{}
	for _, e := range es {
		k := key{first: e.First}
		for _, r := range rewinds {
			if r.Written.Before(e.Written) {
				k.epoch++
			}
		}
		if cur, ok := byFirst[k]; !ok || !e.Written.Before(cur.Written) {
			byFirst[k] = e
		}
	}
	out := make([]maxcompute.LedgerEntry, 0, len(byFirst))
	for _, e := range byFirst {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].First != out[j].First {
			return out[i].First < out[j].First
		}
		return out[i].Written.Before(out[j].Written)
	})
	return out
}

// rowDigest is an order-independent digest term of one row: the first 8
// bytes of SHA-256(offset, key, value), NULLs distinct from empty values.
// Digests of a range are summed, so duplicates change the sum.
func rowDigest(offset int64, key, value []byte) uint64 {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(offset))
	h.Write(b[:])
	for _, f := range [][]byte{key, value} {
		if f == nil {
			h.Write([]byte{0})
			continue
		}
		binary.BigEndian.PutUint64(b[:], uint64(len(f)))
		h.Write([]byte{1})
		h.Write(b[:])
		h.Write(f)
	}
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// modeKey and modeValue are the key and value the sink writes in mode.
func modeKey(mode string, k []byte) []byte {
	if mode == connector.ModeValue {
		return nil
	}
	return k
}

func modeValue(mode string, v []byte) []byte {
	if mode == connector.ModeKey {
		return nil
	}
	return v
}

// replayRows replays a data range from Kafka through the write path
// (activities.ApplyRecord: the size limit, the transforms, the sink's
// conversion) and returns the rows it would write and their digest.
func replayRows(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s *maxcompute.Sink, chain *transform.Chain, p int32, e maxcompute.LedgerEntry) (int64, uint64, error) {
	run, err := chain.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = run.Close(ctx) }()
	b := &countBatch{s: s, mode: spec.Sink.MaxCompute.Mode}
	var replayErr error
	err = kafkaRange(ctx, kc, spec, p, e.First, e.End, func(r *kgo.Record) {
		if replayErr == nil {
			_, replayErr = activities.ApplyRecord(ctx, spec, run, b, r)
		}
	})
	if err == nil {
		err = replayErr
	}
	return b.n, b.digest, err
}

// countBatch counts and digests the rows a batch would write.
type countBatch struct {
	s      *maxcompute.Sink
	mode   string
	n      int64
	digest uint64
}

func (b *countBatch) Add(_ context.Context, r *transform.Record) error {
	if err := b.s.Reject(r); err != nil {
		return err
	}
	b.n++
	b.digest += rowDigest(r.Offset, modeKey(b.mode, r.Key), modeValue(b.mode, r.Value))
	return nil
}

func (b *countBatch) Commit(context.Context) (sink.Written, error) { return sink.Written{}, nil }
func (b *countBatch) Abort(context.Context)                        {}
