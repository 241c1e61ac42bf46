package maxcompute

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// Re-drive batches (sink.BatchID.Redrive) write the records of dead letters
// into the connector's table through upload sessions prepared, like a
// range's, in a step of their own (their ids are in the Redrive workflow's
// history). Their ledger row — kind redriven (sink.KindRedriven) — goes
// into a ledger partition of its own per dead-letter partition,
// kafka_partition=redrive-<dead-letter partition>, so the partition tails
// of the connector's ranges, Resume and the one-writer checks never see
// it. The row is an intent, as a data row is: it is appended after every
// block is uploaded and before any session commits; the letters count as
// re-driven once its sessions are committed (a row with no session, every
// letter having failed again, counts at once). In the row, first_offset
// and end_offset are the dead-letter offsets [first, end), start_offset is
// the origin partition of its letters, and note is a RedriveNote (JSON)
// listing the origin offsets written and their rows.

// redriveLedgerPrefix begins the kafka_partition value of re-drive rows.
const redriveLedgerPrefix = "redrive-"

// redriveLedgerPartition is the ledger partition of the re-drive rows of
// one dead-letter partition.
func redriveLedgerPartition(connector, topic string, dlp int32) string {
	return fmt.Sprintf("connector=%s/topic=%s/kafka_partition=%s%d", connector, topic, redriveLedgerPrefix, dlp)
}

// RedriveNote is the note of a redriven ledger row.
type RedriveNote struct {
	DeadLetterTopic string `json:"deadLetterTopic"`
	// Transform is the hash of the chain the letters went through ("" for
	// none); Overrides the hash of the re-drive's overrides and
	// OverridesSpec the overrides themselves (JSON), so verify --deep
	// replays the letters as they ran.
	Transform     string          `json:"transform,omitempty"`
	Overrides     string          `json:"overrides,omitempty"`
	OverridesSpec json.RawMessage `json:"overridesSpec,omitempty"`
	// Origins are the origin offsets (of the row's origin partition) whose
	// records the sessions hold, and how many rows each: [offset, rows].
	Origins [][2]int64 `json:"origins"`
}

// RedriveEntry is a redriven ledger row as it stands: the last one
// written per dead-letter partition and first offset.
type RedriveEntry struct {
	// First and End are dead-letter offsets; Partition the origin
	// partition; Records the rows written.
	LedgerEntry
	DeadLetterPartition int32 `json:"deadLetterPartition"`
	RedriveNote
	// Committed: every session of the row is committed (its rows are in
	// the table), or it has none.
	Committed bool `json:"committed"`
}

// recordRedriveIntent appends a re-drive batch's row (its sessions and the
// origin offsets they hold) to the dead-letter partition's re-drive ledger
// partition, unless a row already says exactly that (a retry). It refuses
// the batch when another re-drive's committed row covers some of its
// letters.
func (b *batch) recordRedriveIntent(ctx context.Context) error {
	id, rd := b.id, b.id.Redrive
	part := redriveLedgerPartition(id.Connector, id.Topic, rd.DeadLetterPartition)
	rows, err := b.s.c.ledgerTailAt(ctx, part, id.Connector, id.Topic, id.Partition, 0)
	if err != nil {
		return err
	}
	sessions := make([]sink.Session, len(b.order))
	for i, st := range b.order {
		sessions[i] = sink.Session{Partition: st.part, ID: st.id}
	}
	for _, e := range rows {
		if e.Kind == sink.KindRedriven && e.First == id.First && e.End == id.End && sameSessions(e.Sessions, sessions) {
			return nil
		}
	}
	for _, e := range standing(rows) {
		if e.Kind != sink.KindRedriven || e.End <= id.First || id.End <= e.First || sameSessions(e.Sessions, sessions) {
			continue
		}
		committed, err := b.s.redriveCommitted(ctx, e, id.Topic)
		if err != nil {
			return err
		}
		if committed {
			return sink.Permanent("ConcurrentRedrive", fmt.Errorf("dead letters [%d,%d) of %s[%d]: another re-drive (%s, %s) wrote dead letters [%d,%d) already; plan again",
				id.First, id.End, rd.DeadLetterTopic, rd.DeadLetterPartition, e.Writer, e.Written.Format(time.RFC3339), e.First, e.End))
		}
		if e.Writer == id.Writer {
			continue // this re-drive's own row of sessions that expired
		}
		// Another re-drive's row whose sessions may still commit: it may
		// be running now.
		open, err := b.s.sessionsOpen(ctx, e.Sessions)
		if err != nil {
			return err
		}
		if open {
			return sink.Permanent("ConcurrentRedrive", fmt.Errorf("dead letters [%d,%d) of %s[%d]: another re-drive (%s, %s) is writing dead letters [%d,%d), its upload sessions still open; run one re-drive per connector at a time (a stopped one's sessions expire within 24 hours), then plan again",
				id.First, id.End, rd.DeadLetterTopic, rd.DeadLetterPartition, e.Writer, e.Written.Format(time.RFC3339), e.First, e.End))
		}
	}
	note := RedriveNote{DeadLetterTopic: rd.DeadLetterTopic, Transform: id.Transform, Overrides: rd.Overrides, OverridesSpec: rd.OverridesSpec,
		Origins: make([][2]int64, 0, len(b.origins))}
	var records int64
	for off, n := range b.origins {
		note.Origins = append(note.Origins, [2]int64{off, n})
		records += n
	}
	sort.Slice(note.Origins, func(i, j int) bool { return note.Origins[i][0] < note.Origins[j][0] })
	js, err := json.Marshal(note)
	if err != nil {
		return err
	}
	if err := b.s.c.appendLedgerAt(ctx, part, LedgerEntry{Connector: id.Connector, Topic: id.Topic, Partition: id.Partition, Start: int64(id.Partition),
		First: id.First, End: id.End, Kind: sink.KindRedriven, Records: records, Target: b.s.c.name(), Sessions: sessions, Writer: id.Writer,
		Note: string(js), Written: time.Now().UTC()}); err != nil {
		return err
	}
	// Another re-drive running now over some of these letters may have
	// passed the check above at the same time (its row appended after the
	// check read): of two that both append and then look, the later sees
	// the other's row and stops before committing. A row the check saw is
	// committed or has open sessions (refused above) or can never commit.
	after, err := b.s.c.ledgerTailAt(ctx, part, id.Connector, id.Topic, id.Partition, 0)
	if err != nil {
		return err
	}
	seen := func(e LedgerEntry) bool {
		for _, r := range rows {
			if r.Writer == e.Writer && r.First == e.First && r.End == e.End && r.Written.Equal(e.Written) && sameSessions(r.Sessions, e.Sessions) {
				return true
			}
		}
		return false
	}
	for _, e := range after {
		if e.Kind != sink.KindRedriven || e.Writer == id.Writer || e.End <= id.First || id.End <= e.First || sameSessions(e.Sessions, sessions) || seen(e) {
			continue
		}
		return sink.Permanent("ConcurrentRedrive", fmt.Errorf("dead letters [%d,%d) of %s[%d]: another re-drive (%s) is writing dead letters [%d,%d) at the same time; this one stops before committing: run one re-drive per connector at a time, then plan again",
			id.First, id.End, rd.DeadLetterTopic, rd.DeadLetterPartition, e.Writer, e.First, e.End))
	}
	return nil
}

// sessionsOpen reports whether some of sessions are open (neither
// committed nor expired): rows may still be committed into them.
func (s *Sink) sessionsOpen(ctx context.Context, sessions []sink.Session) (bool, error) {
	for _, sess := range sessions {
		done, err := s.sessionState(ctx, sess)
		switch {
		case permanentTypeOf(err) == ErrSessionExpired:
			continue
		case err != nil:
			return false, err
		case !done:
			return true, nil
		}
	}
	return false, nil
}

// standing is the last row per first offset, in offset order.
func standing(es []LedgerEntry) []LedgerEntry {
	by := map[int64]LedgerEntry{}
	for _, e := range es {
		if cur, ok := by[e.First]; !ok || !e.Written.Before(cur.Written) {
			by[e.First] = e
		}
	}
	out := make([]LedgerEntry, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	return out
}

// redriveCommitted reports whether every session of redriven row e is
// committed (true for a row without sessions). A session the service no
// longer knows counts as committed when its table partition holds rows of
// the row's origin offsets.
func (s *Sink) redriveCommitted(ctx context.Context, e LedgerEntry, topic string) (bool, error) {
	var note RedriveNote
	if e.Note != "" {
		if err := json.Unmarshal([]byte(e.Note), &note); err != nil {
			return false, fmt.Errorf("redriven ledger row [%d,%d): note: %w", e.First, e.End, err)
		}
	}
	origins := make(map[int64]bool, len(note.Origins))
	for _, o := range note.Origins {
		origins[o[0]] = true
	}
	for _, sess := range e.Sessions {
		done, err := s.sessionCommittedMatch(ctx, sess, func(t string, p int32, off int64) bool {
			return t == topic && p == e.Partition && origins[off]
		})
		if err != nil || !done {
			return false, err
		}
	}
	return true, nil
}

// RedriveEntries reads the standing redriven ledger rows of connector and
// topic, sorted by dead-letter partition and first offset, each marked
// Committed or not. It creates nothing: without a ledger table there are
// none.
func (s *Sink) RedriveEntries(ctx context.Context, connectorName, topic string) ([]RedriveEntry, error) {
	parts, err := s.c.odps.Table(s.c.opts.ledgerTable).GetPartitions()
	if err != nil {
		if code := errorCode(err); code == "NoSuchTable" || code == "NoSuchObject" || isNotFound(err) {
			return nil, nil
		}
		return nil, classify("list ledger partitions", err)
	}
	prefix := fmt.Sprintf("connector=%s/topic=%s/kafka_partition=%s", connectorName, topic, redriveLedgerPrefix)
	var out []RedriveEntry
	ready := false
	for _, pt := range parts {
		v, _ := normalizeSpec(pt.Value())
		if !strings.HasPrefix(v, prefix) {
			continue
		}
		dlp, err := strconv.ParseInt(strings.TrimPrefix(v, prefix), 10, 32)
		if err != nil {
			continue
		}
		if !ready {
			// The tunnel, to read the sessions' states.
			if _, err := s.ensureTable(ctx); err != nil {
				return nil, err
			}
			ready = true
		}
		rows, err := s.c.ledgerTailAt(ctx, redriveLedgerPartition(connectorName, topic, int32(dlp)), connectorName, topic, 0, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range standing(rows) {
			if e.Kind != sink.KindRedriven {
				continue
			}
			e.Partition = int32(e.Start)
			re := RedriveEntry{LedgerEntry: e, DeadLetterPartition: int32(dlp)}
			if e.Note != "" {
				if err := json.Unmarshal([]byte(e.Note), &re.RedriveNote); err != nil {
					return nil, fmt.Errorf("ledger %s [%d,%d): note: %w", v, e.First, e.End, err)
				}
			}
			if re.Committed, err = s.redriveCommitted(ctx, e, topic); err != nil {
				return nil, err
			}
			out = append(out, re)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DeadLetterPartition != out[j].DeadLetterPartition {
			return out[i].DeadLetterPartition < out[j].DeadLetterPartition
		}
		return out[i].First < out[j].First
	})
	return out, nil
}

// ReadRedriveEntries is RedriveEntries of spec's connector and topic.
func ReadRedriveEntries(ctx context.Context, spec *connector.Spec, creds connector.Credentials, opts ...Option) ([]RedriveEntry, error) {
	s, err := New(spec, creds, opts...)
	if err != nil {
		return nil, err
	}
	return s.RedriveEntries(ctx, spec.Name, spec.Kafka.Topic)
}
