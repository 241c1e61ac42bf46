package verify

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
)

// mcRedrive is what re-drives wrote into a MaxCompute table, per origin
// partition and offset: rows (from the redriven ledger rows), and — deep —
// their digest, replayed from the dead-letter topic.
type mcRedrive struct {
	rows   map[int32]map[int64]int64
	digest map[int32]map[int64]uint64
	// unknown are offsets whose re-driven rows could not be replayed
	// (retention): the ranges holding them are compared by count only.
	unknown    map[int32]map[int64]bool
	mismatches map[int32][]Mismatch
	redriven   map[int32]int64
	checked    map[int32]int
}

func (m *mcRedrive) add(p int32, off, rows int64) {
	if m.rows[p] == nil {
		m.rows[p] = map[int64]int64{}
	}
	m.rows[p][off] += rows
}

func (m *mcRedrive) mismatch(p int32, mm Mismatch) { m.mismatches[p] = append(m.mismatches[p], mm) }

// mcRedriven accounts for the connector's redriven ledger rows. Their rows
// carry origin offsets that lie inside data ranges the ledger records (the
// ranges that sent them to the dead-letter topic): the ranges' checks take
// them out by these counts and digests. The dead-letter ranges must not
// overlap and no origin offset may be re-driven by two rows; deep, each
// row is replayed from the dead-letter topic through the write path with
// the re-drive's overrides, and must give the origin offsets and row counts
// it lists, and a letter the replay refuses must be back in the
// dead-letter topic with its attempt one higher.
func mcRedriven(ctx context.Context, spec *connector.Spec, creds connector.Credentials, conv func() (*maxcompute.Sink, error), digestable bool, o Options, rep *Report) (*mcRedrive, error) {
	m := &mcRedrive{rows: map[int32]map[int64]int64{}, digest: map[int32]map[int64]uint64{}, unknown: map[int32]map[int64]bool{},
		mismatches: map[int32][]Mismatch{}, redriven: map[int32]int64{}, checked: map[int32]int{}}
	all, err := maxcompute.ReadRedriveEntries(ctx, spec, creds)
	if err != nil {
		return nil, err
	}
	var es []maxcompute.RedriveEntry
	for _, e := range all {
		if e.DeadLetterTopic != spec.Errors.DeadLetterTopic {
			continue
		}
		if !e.Committed {
			rep.Notes = append(rep.Notes, fmt.Sprintf("re-drive of dead letters [%d,%d) of %s[%d] (%s) is not committed: its rows are not in the table (a re-drive running, or one stopped before its commit)",
				e.First, e.End, e.DeadLetterTopic, e.DeadLetterPartition, e.Writer))
			continue
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		return m, nil
	}
	lastEnd := map[int32]int64{}
	type origin struct {
		p int32
		o int64
	}
	by := map[origin]int64{} // dead-letter first offset of the row that re-drove it
	for _, e := range es {
		r := sink.Range{First: e.First, End: e.End, Object: "redriven " + e.Target}
		rep.Redriven = append(rep.Redriven, Redriven{DeadLetterPartition: e.DeadLetterPartition, Range: r, Partition: e.Partition, Records: e.Records})
		m.redriven[e.Partition] += e.Records
		if end, ok := lastEnd[e.DeadLetterPartition]; ok && e.First < end {
			m.mismatch(e.Partition, Mismatch{Range: r, Problem: fmt.Sprintf("re-drive of dead letters [%d,%d) of %s[%d] overlaps the one before it, which ends at %d: letters re-driven twice",
				e.First, e.End, e.DeadLetterTopic, e.DeadLetterPartition, end)})
		}
		lastEnd[e.DeadLetterPartition] = max(lastEnd[e.DeadLetterPartition], e.End)
		var sum int64
		for _, oc := range e.Origins {
			k := origin{e.Partition, oc[0]}
			if first, ok := by[k]; ok {
				m.mismatch(e.Partition, Mismatch{Range: sink.Range{First: oc[0], End: oc[0] + 1, Object: r.Object},
					Problem: fmt.Sprintf("offset %d of partition %d is re-driven into the sink twice (dead letters [%d,…) and [%d,%d) of %s[%d])",
						oc[0], e.Partition, first, e.First, e.End, e.DeadLetterTopic, e.DeadLetterPartition)})
			}
			by[k] = e.First
			m.add(e.Partition, oc[0], oc[1])
			sum += oc[1]
		}
		if sum != e.Records {
			m.mismatch(e.Partition, Mismatch{Range: r, Problem: fmt.Sprintf("re-drive: the ledger row says %d rows, its origin offsets list %d", e.Records, sum)})
		}
	}
	if !o.Deep {
		return m, nil
	}
	mcs, err := conv()
	if err != nil {
		return nil, err
	}
	kc, err := kafkaClient(spec)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
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
		return nil, err
	}
	chains := map[string]*transform.Chain{}
	defer func() {
		for _, c := range chains {
			_ = c.Close(ctx)
		}
	}()
	for _, e := range es {
		r := sink.Range{First: e.First, End: e.End, Object: "redriven " + e.Target}
		o.Progress("verify --deep: re-driven dead letters [%d,%d) of %s[%d]", e.First, e.End, e.DeadLetterTopic, e.DeadLetterPartition)
		rspec := spec
		if e.Overrides != "" {
			var ov activities.RedriveOverrides
			err := json.Unmarshal(e.OverridesSpec, &ov)
			if err == nil && ov.Hash() != e.Overrides {
				err = fmt.Errorf("they hash to %s", ov.Hash())
			}
			if err == nil {
				rspec, err = ov.Apply(spec)
			}
			if err != nil {
				m.mismatch(e.Partition, Mismatch{Range: r, Problem: fmt.Sprintf("the overrides %s the re-drive ran with cannot be read: %v", e.Overrides, err)})
				continue
			}
		}
		var run *transform.Run
		if len(rspec.Transforms) > 0 {
			chain := chains[e.Overrides]
			if chain == nil {
				if chain, err = transform.Compile(rspec.Transforms, transform.Options{Functions: wasm.Load}); err != nil {
					return nil, fmt.Errorf("compile the transforms of re-drive %s: %w", e.Overrides, err)
				}
				chains[e.Overrides] = chain
			}
			if chain.Hash() != e.Transform {
				m.mismatch(e.Partition, Mismatch{Range: r, Problem: fmt.Sprintf("re-drive: written by transform chain %q, the re-drive's is %q", e.Transform, chain.Hash())})
				continue
			}
			if run, err = chain.Begin(ctx); err != nil {
				return nil, err
			}
		}
		plan := activities.RedrivePlan{DeadLetterPartition: e.DeadLetterPartition, First: e.First, End: e.End, OriginPartition: e.Partition}
		dry := &originBatch{countBatch: countBatch{s: mcs, mode: spec.Sink.MaxCompute.Mode}, rows: map[int64]int64{}, digest: map[int64]uint64{}}
		problem := ""
		err := kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, e.DeadLetterPartition, e.First, e.End, kafka.ReadOptions{}, func(rec *kgo.Record) (bool, error) {
			dl, took, err := activities.RedriveRecord(ctx, rspec, run, dry, plan, rec)
			if err != nil || !took {
				return err == nil, err
			}
			if l, _ := kafka.ParseLetter(rec); dl != nil && problem == "" && !attempts[origin{l.OriginPartition, l.OriginOffset}][l.Attempt+1] {
				problem = fmt.Sprintf("dead letter %d (offset %d of partition %d) is refused again (%s) but is not back in the dead-letter topic with attempt %d",
					rec.Offset, l.OriginOffset, l.OriginPartition, dl.Stage, l.Attempt+1)
			}
			return true, nil
		})
		if run != nil {
			_ = run.Close(ctx)
		}
		if _, lost := kafka.IsDataLost(err); lost {
			rep.Notes = append(rep.Notes, fmt.Sprintf("re-driven dead letters [%d,%d) of %s[%d] not compared: the dead-letter topic no longer holds them (retention)",
				e.First, e.End, e.DeadLetterTopic, e.DeadLetterPartition))
			for _, oc := range e.Origins {
				if m.unknown[e.Partition] == nil {
					m.unknown[e.Partition] = map[int64]bool{}
				}
				m.unknown[e.Partition][oc[0]] = true
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		m.checked[e.Partition]++
		listed := map[int64]int64{}
		for _, oc := range e.Origins {
			listed[oc[0]] = oc[1]
		}
		if problem == "" && len(listed) != len(dry.rows) {
			problem = fmt.Sprintf("the ledger row lists %d origin offsets; replayed from the dead-letter topic it is %d", len(listed), len(dry.rows))
		}
		for off, n := range dry.rows {
			if problem == "" && listed[off] != n {
				problem = fmt.Sprintf("origin offset %d: the ledger row lists %d rows; replayed from the dead-letter topic it is %d", off, listed[off], n)
			}
			if digestable {
				if m.digest[e.Partition] == nil {
					m.digest[e.Partition] = map[int64]uint64{}
				}
				m.digest[e.Partition][off] += dry.digest[off]
			}
		}
		if problem != "" {
			m.mismatch(e.Partition, Mismatch{Range: r, Problem: "re-drive: " + problem})
		}
	}
	return m, nil
}

// originBatch is a countBatch that also counts and digests rows per origin
// offset.
type originBatch struct {
	countBatch
	rows   map[int64]int64
	digest map[int64]uint64
}

func (b *originBatch) Add(ctx context.Context, r *transform.Record) error {
	before := b.countBatch.digest
	if err := b.countBatch.Add(ctx, r); err != nil {
		return err
	}
	b.rows[r.Offset]++
	b.digest[r.Offset] += b.countBatch.digest - before
	return nil
}
