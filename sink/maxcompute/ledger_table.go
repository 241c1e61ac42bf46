package maxcompute

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// DefaultLedgerTable is the table, in the sink's project, where the sink
// records every range it writes. It is the MaxCompute sink's source of
// truth, as the meta and data objects are the OSS sink's: a connector whose
// workflow was lost (terminated, deleted, its Temporal cluster rebuilt)
// resumes from it, verify tiles its ranges, and a second writer of a
// partition is refused by it.
const DefaultLedgerTable = "dumpflow_ledger"

// LedgerDDL creates the ledger table (%s: its name). One partition per
// connector, topic and Kafka partition; one row per range.
const LedgerDDL = "CREATE TABLE IF NOT EXISTS %s (start_offset BIGINT, first_offset BIGINT, end_offset BIGINT, kind STRING, records BIGINT, " +
	"target STRING, sessions STRING, writer STRING, note STRING, written_ms BIGINT) " +
	"PARTITIONED BY (connector STRING, topic STRING, kafka_partition STRING)"

var ledgerColumns = []string{"start_offset", "first_offset", "end_offset", "kind", "records", "target", "sessions", "writer", "note", "written_ms"}

// Ledger entry kinds.
const (
	// KindData is a range written into upload sessions. The entry is
	// recorded after every block is uploaded and before any session is
	// committed (an intent): the range is complete once its sessions are
	// committed, which Resume checks.
	KindData = "data"
)

// LedgerEntry is one row of the ledger table.
type LedgerEntry struct {
	Connector string `json:"connector"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	First     int64  `json:"first"`
	End       int64  `json:"end"`
	// Kind is data (KindData), or a mark's kind: gap, routed, skipped or
	// rewind (sink.MarkGap…).
	Kind    string `json:"kind"`
	Records int64  `json:"records"`
	// Target is the data table, project.table.
	Target   string         `json:"target"`
	Sessions []sink.Session `json:"sessions,omitempty"`
	Writer   string         `json:"writer,omitempty"`
	Note     string         `json:"note,omitempty"`
	Written  time.Time      `json:"written"`
	// Group is set on an entry read from a row of the group ledger
	// partition (a group batch or a mark since group batches): every
	// member the row records, this entry's partition among them. The
	// entry's own fields are its member's range and records; Sessions are
	// shared by all members.
	Group []sink.Member `json:"group,omitempty"`
}

// ledgerPartition is the ledger partition of one Kafka partition (or, for
// p < 0, of a window job's windows: kafka_partition=window).
func ledgerPartition(connector, topic string, p int32) string {
	if p < 0 {
		return fmt.Sprintf("connector=%s/topic=%s/kafka_partition=window", connector, topic)
	}
	return fmt.Sprintf("connector=%s/topic=%s/kafka_partition=%d", connector, topic, p)
}

// ensureLedger loads the ledger table once, creating it when missing.
func (s *Sink) ensureLedger(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ledgerReady {
		return nil
	}
	if err := s.c.ensureLedger(ctx); err != nil {
		return err
	}
	s.ledgerReady = true
	return nil
}

func (c *client) ensureLedger(ctx context.Context) error {
	t := c.odps.Table(c.opts.ledgerTable)
	err := t.Load()
	if err != nil {
		if code := errorCode(err); code != "NoSuchTable" && code != "NoSuchObject" && !isNotFound(err) {
			return classify(fmt.Sprintf("load ledger table %s.%s", c.mc.Project, c.opts.ledgerTable), err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ddl := fmt.Sprintf(LedgerDDL, c.opts.ledgerTable) + ";"
		ins, err := c.odps.ExecSQl(ddl, map[string]string{"odps.namespace.schema": "false"})
		if err == nil {
			err = ins.WaitForSuccess()
		}
		if err != nil {
			if permanentType(err) == ErrAccessDenied {
				return classify(fmt.Sprintf("create ledger table %s.%s (ask an administrator to run: %s)", c.mc.Project, c.opts.ledgerTable, ddl), err)
			}
			if _, ok := asServiceError(err); ok {
				return classify(fmt.Sprintf("create ledger table %s.%s", c.mc.Project, c.opts.ledgerTable), err)
			}
			return sink.Permanent(ErrCreateTable, fmt.Errorf("create ledger table %s.%s: %w", c.mc.Project, c.opts.ledgerTable, err))
		}
		if err := t.Load(); err != nil {
			return classify(fmt.Sprintf("load ledger table %s.%s after creating it", c.mc.Project, c.opts.ledgerTable), err)
		}
	}
	var have []string
	for _, col := range t.Schema().Columns {
		have = append(have, strings.ToLower(col.Name))
	}
	if !slices.Equal(have, ledgerColumns) {
		return sink.Permanent(ErrSchemaMismatch, fmt.Errorf("ledger table %s.%s has columns %v, want %v (%s)", c.mc.Project, c.opts.ledgerTable, have, ledgerColumns, fmt.Sprintf(LedgerDDL, c.opts.ledgerTable)))
	}
	return nil
}

// appendLedger records e in its own upload session: one block, one commit.
func (c *client) appendLedger(ctx context.Context, e LedgerEntry) error {
	return c.appendLedgerAt(ctx, ledgerPartition(e.Connector, e.Topic, e.Partition), e)
}

// appendLedgerAt records e in ledger partition part.
func (c *client) appendLedgerAt(ctx context.Context, part string, e LedgerEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	table := c.opts.ledgerTable
	up, err := c.tunnel.CreateUploadSession(c.mc.Project, table, tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	if err != nil && errorCode(err) == "NoSuchPartition" {
		if aerr := c.odps.Table(table).AddPartition(true, part); aerr != nil {
			return classify(fmt.Sprintf("add ledger partition %s", part), aerr)
		}
		up, err = c.tunnel.CreateUploadSession(c.mc.Project, table, tunnel.SessionCfg.WithPartitionKey(part))
	}
	if err != nil {
		return classify(fmt.Sprintf("create upload session on ledger %s %s", table, part), err)
	}
	sessions, _ := json.Marshal(e.Sessions)
	row := data.Record{
		data.BigInt(e.Start), data.BigInt(e.First), data.BigInt(e.End), data.String(e.Kind), data.BigInt(e.Records),
		data.String(e.Target), data.String(sessions), data.String(e.Writer), data.String(e.Note), data.BigInt(e.Written.UnixMilli()),
	}
	w, err := up.OpenRecordWriter(0)
	if err == nil {
		err = w.Write(row)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return classify(fmt.Sprintf("write ledger row %s [%d,%d)", part, e.First, e.End), err)
	}
	if err := up.Commit([]int{0}); err != nil {
		// A lost answer may hide a commit that happened: a duplicate ledger
		// row is harmless (readers take the last row per range).
		if lerr := up.Load(); lerr != nil || up.Status() != tunnel.UploadStatusClosed {
			return classify(fmt.Sprintf("commit ledger row %s [%d,%d)", part, e.First, e.End), err)
		}
	}
	c.ledgerAdded(part)
	return nil
}

// ledgerTail reads the last n entries of one Kafka partition's ledger
// partition (all when n ≤ 0). A missing partition has none.
func (c *client) ledgerTail(ctx context.Context, connector, topic string, p int32, n int) ([]LedgerEntry, error) {
	return c.ledgerTailAt(ctx, ledgerPartition(connector, topic, p), connector, topic, p, n)
}

// ledgerTailAt reads the last n entries (all when n ≤ 0) of ledger
// partition part, giving them connector, topic and p.
func (c *client) ledgerTailAt(ctx context.Context, part, connector, topic string, p int32, n int) ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := c.downloadTable(ctx, c.opts.ledgerTable, part, ledgerColumns, n, func(rec data.Record) error {
		e, err := parseLedgerRow(rec)
		if err != nil {
			return fmt.Errorf("ledger %s: %w", part, err)
		}
		e.Connector, e.Topic, e.Partition = connector, topic, p
		out = append(out, e)
		return nil
	})
	if err != nil && (errorCode(err) == "NoSuchPartition" || isNotFound(err)) {
		return nil, nil
	}
	return out, err
}

func parseLedgerRow(rec data.Record) (LedgerEntry, error) {
	if len(rec) < len(ledgerColumns) {
		return LedgerEntry{}, fmt.Errorf("row has %d columns, want %d", len(rec), len(ledgerColumns))
	}
	var e LedgerEntry
	ints := []*int64{&e.Start, &e.First, &e.End}
	for i, dst := range ints {
		v, ok := goValue(rec[i]).(int64)
		if !ok {
			return LedgerEntry{}, fmt.Errorf("column %s is not a BIGINT", ledgerColumns[i])
		}
		*dst = v
	}
	e.Kind, _ = goValue(rec[3]).(string)
	e.Records, _ = goValue(rec[4]).(int64)
	e.Target, _ = goValue(rec[5]).(string)
	if js, _ := goValue(rec[6]).(string); js != "" && js != "null" {
		if err := json.Unmarshal([]byte(js), &e.Sessions); err != nil {
			return LedgerEntry{}, fmt.Errorf("column sessions: %w", err)
		}
	}
	e.Writer, _ = goValue(rec[7]).(string)
	e.Note, _ = goValue(rec[8]).(string)
	ms, _ := goValue(rec[9]).(int64)
	e.Written = time.UnixMilli(ms).UTC()
	return e, nil
}

// latest returns the entry that ends last (the last written among equals)
// of the entries that stand: an entry is superseded by one written after it
// from the same first offset (a range retried in new sessions, routed, or
// declared lost after its intent died uncommitted), as verify reads them.
//
// An operator's rewind (kind rewind, [First, End) to be written again)
// supersedes every entry written before it: the partition continues at the
// rewind's First, so it stands as an entry ending there, and only entries
// written after it follow.
func latest(es []LedgerEntry) (LedgerEntry, bool) {
	var rewind *LedgerEntry
	for i, e := range es {
		if e.Kind == sink.MarkRewind && (rewind == nil || !e.Written.Before(rewind.Written)) {
			rewind = &es[i]
		}
	}
	if rewind != nil {
		after := []LedgerEntry{{Connector: rewind.Connector, Topic: rewind.Topic, Partition: rewind.Partition, Start: rewind.Start,
			First: rewind.First, End: rewind.First, Kind: sink.MarkRewind, Writer: rewind.Writer, Note: rewind.Note, Written: rewind.Written}}
		for _, e := range es {
			if e.Written.After(rewind.Written) {
				after = append(after, e)
			}
		}
		es = after
	}
	standing := make(map[int64]LedgerEntry, len(es))
	for _, e := range es {
		if cur, ok := standing[e.First]; !ok || !e.Written.Before(cur.Written) {
			standing[e.First] = e
		}
	}
	var best LedgerEntry
	found := false
	for _, e := range standing {
		if !found || e.End > best.End || e.End == best.End && e.Written.After(best.Written) {
			best, found = e, true
		}
	}
	return best, found
}

// ledgerTailSize is how many trailing ledger rows a writer reads to find a
// partition's last range in its own ledger partition.
const ledgerTailSize = 16

// checkWriterTail refuses single-partition batch id when the partition's
// ledger shows ranges at or past id.First recorded by another writer, or
// by this one for another range (see the OSS sink's rule). It returns the
// partition's last entry and the entries it read: the last rows of the
// partition's own ledger partition and its entries among the last rows of
// the group ledger partition (marks, and group batches), merged.
func (s *Sink) checkWriterTail(ctx context.Context, id sink.BatchID) (LedgerEntry, bool, []LedgerEntry, error) {
	es, err := s.singleView(ctx, id)
	if err != nil {
		return LedgerEntry{}, false, nil, err
	}
	last, err := checkLast(id, es)
	return last, len(es) > 0, es, err
}

// singleView is the merged ledger of id's partition as a single-partition
// batch or a mark reads it: its own ledger partition's tail and its
// entries among the group ledger partition's tail.
func (s *Sink) singleView(ctx context.Context, id sink.BatchID) ([]LedgerEntry, error) {
	group, _, err := s.c.groupEntries(ctx, id.Connector, id.Topic, groupTailSize)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, id.Connector, id.Topic, id.Partition, ownAlways, group)
}

// checkLast is checkWriter's rule on the latest of the ledger rows tail.
func checkLast(id sink.BatchID, tail []LedgerEntry) (LedgerEntry, error) {
	last, ok := latest(tail)
	if !ok {
		return last, nil
	}
	switch {
	case last.End <= id.First, last.First == id.First && last.End == id.End:
		return last, nil
	case last.Writer != id.Writer:
		return last, sink.Permanent(sink.ErrConcurrentWriter, fmt.Errorf("partition %d of connector %s is being written by another writer (%s, up to offset %d, %s); this writer (%s) is at offset %d: one connector name must have one writer",
			id.Partition, id.Connector, last.Writer, last.End, last.Written.Format(time.RFC3339), id.Writer, id.First))
	default:
		where := ledgerPartition(id.Connector, id.Topic, id.Partition)
		if last.Group != nil {
			where = groupLedgerPartition(id.Connector, id.Topic)
		}
		return last, sink.Permanent("ObjectConflict", fmt.Errorf("the ledger %s records [%d,%d) of partition %d, past this batch %s: the range was recorded already",
			where, last.First, last.End, id.Partition, id))
	}
}

// checkRivals runs after a single-partition batch's intent row is in the
// ledger and before its sessions commit: it reads the partition's merged
// ledger again and applies rivals.
func (s *Sink) checkRivals(ctx context.Context, id sink.BatchID, sessions []sink.Session, before []LedgerEntry) error {
	after, err := s.singleView(ctx, id)
	if err != nil {
		return err
	}
	return rivals(ctx, id, sessions, before, after, newSessionMemo(s, id.Topic))
}

// rivals is the check after the intent: another writer's data row over
// the same offsets, with other sessions, that appeared after the check
// before the intent (before holds the rows that check read), or whose
// sessions are committed, refuses the batch (after holds the rows read
// since). The check before the intent cannot see a writer that passes it
// at the same time; of two writers that both append and then look, the
// later one sees the other's row (a row is visible once appended) or its
// commit, so no range is committed twice. Both may be refused; the
// partition then parks, visibly, until an operator removes the second
// connector.
func rivals(ctx context.Context, id sink.BatchID, sessions []sink.Session, before, after []LedgerEntry, memo *sessionMemo) error {
	seen := func(e LedgerEntry) bool {
		for _, b := range before {
			if b.Writer == e.Writer && b.First == e.First && b.End == e.End && b.Written.Equal(e.Written) && sameSessions(b.Sessions, e.Sessions) {
				return true
			}
		}
		return false
	}
	for _, e := range after {
		if e.Kind != KindData || e.Writer == id.Writer || e.End <= id.First || id.End <= e.First || sameSessions(e.Sessions, sessions) {
			continue
		}
		// A row the check before the intent saw passed it: an earlier
		// chain's unfinished range this one resumes, unless its sessions
		// are committed by now (a writer running now got there first). A
		// row that appeared since is a writer running now.
		if seen(e) {
			committed, err := memo.rangeCommitted(ctx, e)
			if err != nil {
				return err
			}
			if !committed {
				continue
			}
		}
		return sink.Permanent(sink.ErrConcurrentWriter, fmt.Errorf("partition %d of connector %s [%d,%d) is also being written by another writer (%s, [%d,%d), %s); this writer (%s) stops before committing: one connector name must have one writer",
			id.Partition, id.Connector, id.First, id.End, e.Writer, e.First, e.End, e.Written.Format(time.RFC3339), id.Writer))
	}
	return nil
}

// rangeCommitted reports whether every session of ledger row e is
// committed.
func (s *Sink) rangeCommitted(ctx context.Context, e LedgerEntry) (bool, error) {
	return newSessionMemo(s, e.Topic).rangeCommitted(ctx, e)
}

// Mark implements sink.Marker with a one-member row of the mark's kind in
// the group ledger partition (see groupNote), checked against the
// partition's merged ledger (its own ledger partition and the group one).
//
// A gap may begin where the partition's last data row begins when that
// row's sessions never committed: a worker died between the range's intent
// and its commit, and retention then deleted the range before it was
// written again. None of its rows is in the table; the gap row, written
// later from the same offset, supersedes the intent (see latest). So may
// an operator's skip (offsets set forward) over such a dead intent.
//
// A rewind (offsets set back) goes back over recorded ranges on purpose:
// it is not checked against them, and supersedes them (see latest).
func (s *Sink) Mark(ctx context.Context, m sink.Mark) (bool, error) {
	if err := s.ensureLedger(ctx); err != nil {
		return false, err
	}
	if _, err := s.ensureTable(ctx); err != nil {
		return false, err
	}
	var last LedgerEntry
	var err error
	if m.Kind != sink.MarkRewind { // a rewind goes back over recorded ranges on purpose
		last, _, _, err = s.checkWriterTail(ctx, m.ID)
	}
	if err != nil {
		if m.Kind != sink.MarkGap && m.Kind != sink.MarkSkipped || last.Kind != KindData || last.First != m.ID.First || last.Writer != m.ID.Writer {
			return false, err
		}
		committed, cerr := s.rangeCommitted(ctx, last)
		if cerr != nil {
			return false, cerr
		}
		if committed {
			return false, sink.Permanent("ObjectConflict", fmt.Errorf("the ledger records [%d,%d) of partition %d as written, its sessions committed: the lost range of partition %d begins at %d, not %d",
				last.First, last.End, m.ID.Partition, m.ID.Partition, last.End, m.ID.First))
		}
	}
	return false, s.groupMark(ctx, m)
}

// Resume implements sink.Resumer from the ledger: the partition continues
// at the end of its last range whose sessions are committed. A data range
// whose sessions are not all committed comes back as Pending with its
// sessions (committed ones marked), so the connector finishes it with them;
// when the range is a group batch's member, Pending.Group names the
// members still pending at that batch, written again together. A session
// the service no longer knows (older than its 24-hour lifetime) counts as
// committed when the table holds rows of the range in its partition.
//
// It reads the group ledger partition's tail (all of it when the tail
// holds nothing of the partition) and the partition's own ledger
// partition when it exists.
func (s *Sink) Resume(ctx context.Context, connectorName, topic string, partition int32, _ string) (sink.ResumePoint, bool, error) {
	if err := s.ensureLedger(ctx); err != nil {
		return sink.ResumePoint{}, false, err
	}
	if _, err := s.ensureTable(ctx); err != nil {
		return sink.ResumePoint{}, false, err
	}
	group, rows, err := s.c.groupEntries(ctx, connectorName, topic, groupTailSize)
	if err != nil {
		return sink.ResumePoint{}, false, err
	}
	if rows >= groupTailSize && !hasPartition(group, partition) {
		if group, _, err = s.c.groupEntries(ctx, connectorName, topic, 0); err != nil {
			return sink.ResumePoint{}, false, err
		}
	}
	if err := s.c.refreshLedgerList(ctx); err != nil {
		return sink.ResumePoint{}, false, err
	}
	es, err := s.view(ctx, connectorName, topic, partition, ownListed, group)
	if err != nil {
		return sink.ResumePoint{}, false, err
	}
	last, ok := latest(es)
	if !ok {
		return sink.ResumePoint{}, false, nil
	}
	memo := newSessionMemo(s, topic)
	if err := memo.settle(ctx, queriesOf(last)); err != nil {
		return sink.ResumePoint{}, false, err
	}
	return memo.resumePoint(last, group), true, nil
}

// sessionCommittedMatch tells whether sess holds committed rows: from its
// status while the service knows it, else from the rows of its table
// partition, one of which match must accept.
func (s *Sink) sessionCommittedMatch(ctx context.Context, sess sink.Session, match func(topic string, partition int32, offset int64) bool) (bool, error) {
	done, known, err := s.sessionKnown(ctx, sess)
	if err != nil || known {
		return done, err
	}
	// The session is gone: look for the range's rows.
	found := false
	err = s.scanRows(ctx, sess.Partition, func(t string, p int32, off int64) {
		if match(t, p, off) {
			found = true
		}
	})
	return found, err
}

func permanentTypeOf(err error) string {
	if pe, ok := asPermanent(err); ok {
		return pe.Type
	}
	return ""
}

// ReadLedgerEntries reads every ledger entry of spec's connector and topic,
// per Kafka partition, ordered by the time written: the rows of each
// partition's own ledger partition and its entries of the group ledger
// partition (LedgerEntry.Group set), merged.
func ReadLedgerEntries(ctx context.Context, spec *connector.Spec, creds connector.Credentials, opts ...Option) (map[int32][]LedgerEntry, error) {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return nil, err
	}
	parts, err := c.odps.Table(c.opts.ledgerTable).GetPartitions()
	if err != nil {
		if code := errorCode(err); code == "NoSuchTable" || code == "NoSuchObject" || isNotFound(err) {
			return map[int32][]LedgerEntry{}, nil
		}
		return nil, classify("list ledger partitions", err)
	}
	out := map[int32][]LedgerEntry{}
	prefix := fmt.Sprintf("connector=%s/topic=%s/kafka_partition=", spec.Name, spec.Kafka.Topic)
	for _, pt := range parts {
		v, _ := normalizeSpec(pt.Value())
		if !strings.HasPrefix(v, prefix) {
			continue
		}
		key := strings.TrimPrefix(v, prefix)
		if key == groupLedgerKey {
			es, _, err := c.groupEntries(ctx, spec.Name, spec.Kafka.Topic, 0)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				out[e.Partition] = append(out[e.Partition], e)
			}
			continue
		}
		p, err := strconv.ParseInt(key, 10, 32)
		if err != nil {
			continue
		}
		es, err := c.ledgerTail(ctx, spec.Name, spec.Kafka.Topic, int32(p), 0)
		if err != nil {
			return nil, err
		}
		out[int32(p)] = append(out[int32(p)], es...)
	}
	for _, es := range out {
		sortWritten(es)
	}
	return out, nil
}
