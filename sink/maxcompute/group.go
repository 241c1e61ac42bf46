package maxcompute

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/sink"
)

// Group batches (sink.BatchID.Group) write the ranges of several Kafka
// partitions into one set of upload sessions, one per destination
// partition, and record them in one ledger row in the connector's and
// topic's group ledger partition, kafka_partition=group (see doc.go,
// "Group batches").

var (
	_ sink.GroupWriter = (*Sink)(nil)
	_ sink.BulkResumer = (*Sink)(nil)
)

// groupLedgerKey is the kafka_partition value of the group ledger
// partition. Builds before group batches skip ledger partitions whose
// kafka_partition is not an integer, so they never read it.
const groupLedgerKey = "group"

// groupTailSize is how many trailing rows of the group ledger partition a
// group batch reads before its intent and again after it. Every group
// batch and mark of the connector's topic appends one row there, so 512
// rows hold the last several flushes of every group even at 256 Kafka
// partitions in groups of 32 (8 rows a flush); a member absent from them
// has its own (pre-group) ledger partition read, when it has one.
const groupTailSize = 512

// ledgerListAge is how old the cached listing of the ledger table's
// partitions may be before a partition missing from it is looked up again.
const ledgerListAge = 3 * time.Minute

// groupLedgerPartition is the ledger partition of the group rows (group
// batches and marks) of one connector and topic.
func groupLedgerPartition(connector, topic string) string {
	return fmt.Sprintf("connector=%s/topic=%s/kafka_partition=%s", connector, topic, groupLedgerKey)
}

// groupNote is the note column of a group ledger row (JSON): the ranges
// the row records, one member per Kafka partition, the transform hash of
// a data row, and the reason of a mark.
type groupNote struct {
	Members   []groupMember `json:"members"`
	Transform string        `json:"transform"`
	Reason    string        `json:"reason,omitempty"`
}

// groupMember is one member of a group ledger row: its range and the rows
// the row's sessions hold of it.
type groupMember struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	First     int64 `json:"first"`
	End       int64 `json:"end"`
	Records   int64 `json:"records"`
	Epoch     int   `json:"epoch,omitempty"`
}

// GroupWrites implements sink.GroupWriter: the sink writes group batches.
func (s *Sink) GroupWrites() bool { return true }

// expandGroupRow turns one row of the group ledger partition into one
// entry per member: the member's range and records, the row's kind,
// target, sessions, writer and time, Note as a single partition's row has
// it ("transform <hash>" for data, the reason for a mark), and Group
// holding every member.
func expandGroupRow(row LedgerEntry) ([]LedgerEntry, error) {
	var note groupNote
	if err := json.Unmarshal([]byte(row.Note), &note); err != nil {
		return nil, fmt.Errorf("group ledger row of %s: note: %w", row.Written.Format(time.RFC3339Nano), err)
	}
	group := make([]sink.Member, len(note.Members))
	for i, m := range note.Members {
		group[i] = sink.Member{Partition: m.Partition, Start: m.Start, First: m.First, End: m.End, Epoch: m.Epoch}
	}
	out := make([]LedgerEntry, len(note.Members))
	for i, m := range note.Members {
		e := row
		e.Partition, e.Start, e.First, e.End, e.Records = m.Partition, m.Start, m.First, m.End, m.Records
		e.Group = group
		e.Note = note.Reason
		if row.Kind == KindData {
			e.Note = ""
			if note.Transform != "" {
				e.Note = "transform " + note.Transform
			}
		}
		out[i] = e
	}
	return out, nil
}

// groupEntries reads the last n rows of the connector's and topic's group
// ledger partition (all when n ≤ 0), expanded into member entries in the
// order written, and how many rows it read. A missing partition has none.
func (c *client) groupEntries(ctx context.Context, connector, topic string, n int) ([]LedgerEntry, int, error) {
	rows, err := c.ledgerTailAt(ctx, groupLedgerPartition(connector, topic), connector, topic, 0, n)
	if err != nil {
		return nil, 0, err
	}
	var out []LedgerEntry
	for _, r := range rows {
		es, err := expandGroupRow(r)
		if err != nil {
			return nil, 0, fmt.Errorf("ledger %s: %w", groupLedgerPartition(connector, topic), err)
		}
		out = append(out, es...)
	}
	return out, len(rows), nil
}

// hasPartition reports whether es holds an entry of Kafka partition p.
func hasPartition(es []LedgerEntry, p int32) bool {
	return slices.ContainsFunc(es, func(e LedgerEntry) bool { return e.Partition == p })
}

// ledgerList caches the ledger table's partitions, so a member without an
// own (pre-group) ledger partition costs no download session.
type ledgerList struct {
	mu    sync.Mutex
	parts map[string]bool
	at    time.Time
}

// ledgerListed reports whether ledger partition part exists, from a
// listing at most maxAge old when part is missing from it (a listed
// partition is taken as existing).
func (c *client) ledgerListed(ctx context.Context, part string, maxAge time.Duration) (bool, error) {
	l := &c.ledgers
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts[part] {
		return true, nil
	}
	if l.parts != nil && time.Since(l.at) <= maxAge {
		return false, nil
	}
	if err := c.listLedgerLocked(ctx); err != nil {
		return false, err
	}
	return l.parts[part], nil
}

// refreshLedgerList lists the ledger table's partitions now.
func (c *client) refreshLedgerList(ctx context.Context) error {
	c.ledgers.mu.Lock()
	defer c.ledgers.mu.Unlock()
	return c.listLedgerLocked(ctx)
}

func (c *client) listLedgerLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parts := map[string]bool{}
	ps, err := c.odps.Table(c.opts.ledgerTable).GetPartitions()
	if err != nil {
		if code := errorCode(err); code != "NoSuchTable" && code != "NoSuchObject" && !isNotFound(err) {
			return classify("list ledger partitions", err)
		}
	}
	for _, pt := range ps {
		v, err := normalizeSpec(pt.Value())
		if err == nil {
			parts[v] = true
		}
	}
	c.ledgers.parts, c.ledgers.at = parts, time.Now()
	return nil
}

// ledgerAdded notes that ledger partition part exists (a row was appended).
func (c *client) ledgerAdded(part string) {
	c.ledgers.mu.Lock()
	defer c.ledgers.mu.Unlock()
	if c.ledgers.parts != nil {
		c.ledgers.parts[part] = true
	}
}

// ownRead says when view reads a Kafka partition's own ledger partition.
type ownRead int

const (
	// ownAlways reads it (a missing partition answers nothing).
	ownAlways ownRead = iota
	// ownListed reads it when the cached listing shows it.
	ownListed
	// ownUngrouped reads it when the listing shows it and the group
	// entries given hold nothing of the partition: once a partition is
	// written in groups, its own ledger partition holds only older rows.
	ownUngrouped
)

// view is Kafka partition p's ledger as the writer checks, Resume and Mark
// read it: p's entries of group (rows of the group ledger partition, read
// by the caller) and, as own says, the last rows of p's own ledger
// partition, ordered by Written.
func (s *Sink) view(ctx context.Context, connector, topic string, p int32, own ownRead, group []LedgerEntry) ([]LedgerEntry, error) {
	var out []LedgerEntry
	for _, e := range group {
		if e.Partition == p {
			out = append(out, e)
		}
	}
	read := true
	if own != ownAlways {
		listed, err := s.c.ledgerListed(ctx, ledgerPartition(connector, topic, p), ledgerListAge)
		if err != nil {
			return nil, err
		}
		read = listed && (own == ownListed || len(out) == 0)
	}
	if read {
		rows, err := s.c.ledgerTail(ctx, connector, topic, p, ledgerTailSize)
		if err != nil {
			return nil, err
		}
		out = append(rows, out...)
	}
	sortWritten(out)
	return out, nil
}

// sortWritten orders es by Written, keeping the order of equals.
func sortWritten(es []LedgerEntry) {
	slices.SortStableFunc(es, func(a, b LedgerEntry) int { return a.Written.Compare(b.Written) })
}

// memberID is the single-partition BatchID of group member m of id, for
// the per-partition checks and their messages.
func memberID(id sink.BatchID, m sink.Member) sink.BatchID {
	id.Partition, id.Start, id.First, id.End, id.Epoch, id.Group = m.Partition, m.Start, m.First, m.End, m.Epoch, nil
	return id
}

// sameMembers reports whether a and b are the same ranges in the same order.
func sameMembers(a, b []sink.Member) bool {
	return slices.EqualFunc(a, b, func(x, y sink.Member) bool {
		return x.Partition == y.Partition && x.First == y.First && x.End == y.End
	})
}

// sessions is the batch's sessions as recorded in the ledger.
func (b *batch) sessions() []sink.Session {
	out := make([]sink.Session, len(b.order))
	for i, st := range b.order {
		out[i] = sink.Session{Partition: st.part, ID: st.id}
	}
	return out
}

// recordGroupIntent is recordIntent for a group batch: one read of the
// group ledger partition's tail (and of a member's own ledger partition
// only when the tail holds nothing of it and the partition exists), every
// member checked as a single batch is, one row appended for all members
// unless the tail already holds it (a retry), and one read of the tail
// again for the rivals check.
func (b *batch) recordGroupIntent(ctx context.Context) error {
	id, s := b.id, b.s
	sessions := b.sessions()
	memo := newSessionMemo(s, id.Topic)
	tail, _, err := s.c.groupEntries(ctx, id.Connector, id.Topic, groupTailSize)
	if err != nil {
		return err
	}
	before := make([][]LedgerEntry, len(id.Group))
	lasts := make([]LedgerEntry, len(id.Group))
	for i, m := range id.Group {
		if before[i], err = s.view(ctx, id.Connector, id.Topic, m.Partition, ownUngrouped, tail); err != nil {
			return err
		}
		if lasts[i], err = checkLast(memberID(id, m), before[i]); err != nil {
			return err
		}
	}
	// The intent is recorded already when the tail holds a row of these
	// members' ranges in these sessions: a retry, or a resumed chain
	// finishing an earlier chain's group with its sessions (as a single
	// batch's recordIntent takes it).
	retry := slices.ContainsFunc(tail, func(e LedgerEntry) bool {
		return e.Partition == id.Group[0].Partition && e.Kind == KindData &&
			sameMembers(e.Group, id.Group) && sameSessions(e.Sessions, sessions)
	})
	if !retry {
		for i, m := range id.Group {
			last := lasts[i]
			if len(before[i]) == 0 || last.Kind != KindData || last.First != m.First || last.End != m.End ||
				last.Writer == id.Writer || sameSessions(last.Sessions, sessions) {
				continue
			}
			// As recordIntent: another chain's unfinished range goes on,
			// another writer's committed one refuses the batch.
			committed, err := memo.rangeCommitted(ctx, last)
			if err != nil {
				return err
			}
			if committed {
				return sink.Permanent(sink.ErrConcurrentWriter, fmt.Errorf("partition %d of connector %s [%d,%d) was written by another writer (%s, %s); this writer (%s) stops: one connector name must have one writer",
					m.Partition, id.Connector, m.First, m.End, last.Writer, last.Written.Format(time.RFC3339), id.Writer))
			}
		}
		note := groupNote{Transform: id.Transform, Members: make([]groupMember, len(id.Group))}
		var rows int64
		for i, m := range id.Group {
			note.Members[i] = groupMember{Partition: m.Partition, Start: m.Start, First: m.First, End: m.End, Records: b.mrows[i], Epoch: m.Epoch}
			rows += b.mrows[i]
		}
		js, err := json.Marshal(note)
		if err != nil {
			return err
		}
		if err := s.c.appendLedgerAt(ctx, groupLedgerPartition(id.Connector, id.Topic), LedgerEntry{Connector: id.Connector, Topic: id.Topic,
			Kind: KindData, Records: rows, Target: s.c.name(), Sessions: sessions, Writer: id.Writer, Note: string(js), Written: time.Now().UTC()}); err != nil {
			return err
		}
	}
	after, _, err := s.c.groupEntries(ctx, id.Connector, id.Topic, groupTailSize)
	if err != nil {
		return err
	}
	for i, m := range id.Group {
		// A member's own ledger partition is not read again: only builds
		// before group batches append to it.
		var now []LedgerEntry
		for _, e := range before[i] {
			if e.Group == nil {
				now = append(now, e)
			}
		}
		for _, e := range after {
			if e.Partition == m.Partition {
				now = append(now, e)
			}
		}
		if err := rivals(ctx, memberID(id, m), sessions, before[i], now, memo); err != nil {
			return err
		}
	}
	return nil
}

// ResumeMany implements sink.BulkResumer: Resume for each of partitions,
// reading the group ledger partition once (whole), a partition's own
// ledger partition only when it exists and the group rows hold nothing of
// the partition, and each distinct upload session's state once.
func (s *Sink) ResumeMany(ctx context.Context, connectorName, topic string, partitions []int32, _ string) (map[int32]sink.ResumePoint, error) {
	if err := s.ensureLedger(ctx); err != nil {
		return nil, err
	}
	if _, err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	group, _, err := s.c.groupEntries(ctx, connectorName, topic, 0)
	if err != nil {
		return nil, err
	}
	if err := s.c.refreshLedgerList(ctx); err != nil {
		return nil, err
	}
	memo := newSessionMemo(s, topic)
	lasts := map[int32]LedgerEntry{}
	var qs []sessionQuery
	for _, p := range partitions {
		v, err := s.view(ctx, connectorName, topic, p, ownUngrouped, group)
		if err != nil {
			return nil, err
		}
		last, ok := latest(v)
		if !ok {
			continue
		}
		lasts[p] = last
		qs = append(qs, queriesOf(last)...)
	}
	if err := memo.settle(ctx, qs); err != nil {
		return nil, err
	}
	out := make(map[int32]sink.ResumePoint, len(lasts))
	for p, last := range lasts {
		out[p] = memo.resumePoint(last, group)
	}
	return out, nil
}

// sessionQuery asks whether a session holds a range's committed rows.
type sessionQuery struct {
	id, part  string // the session
	partition int32  // the range's Kafka partition
	first     int64
	end       int64
}

func queryOf(sess sink.Session, e LedgerEntry) sessionQuery {
	return sessionQuery{id: sess.ID, part: sess.Partition, partition: e.Partition, first: e.First, end: e.End}
}

// queriesOf are the questions Resume asks about data entry e.
func queriesOf(e LedgerEntry) []sessionQuery {
	if e.Kind != KindData {
		return nil
	}
	qs := make([]sessionQuery, len(e.Sessions))
	for i, sess := range e.Sessions {
		qs[i] = queryOf(sess, e)
	}
	return qs
}

// sessionMemo answers whether sessions hold committed rows, asking the
// service about each session once (group members share sessions) and, for
// sessions the service no longer knows, downloading each one's table
// partition once for all the ranges asked about.
type sessionMemo struct {
	s       *Sink
	topic   string
	status  map[string]bool // by session id, for sessions the service knows: committed
	answers map[sessionQuery]bool
}

func newSessionMemo(s *Sink, topic string) *sessionMemo {
	return &sessionMemo{s: s, topic: topic, status: map[string]bool{}, answers: map[sessionQuery]bool{}}
}

// settle answers qs.
func (m *sessionMemo) settle(ctx context.Context, qs []sessionQuery) error {
	gone := map[string][]sessionQuery{} // by session id
	var order []string
	for _, q := range qs {
		if _, ok := m.answers[q]; ok {
			continue
		}
		done, ok := m.status[q.id]
		if !ok {
			var known bool
			var err error
			done, known, err = m.s.sessionKnown(ctx, sink.Session{ID: q.id, Partition: q.part})
			if err != nil {
				return err
			}
			if !known {
				if gone[q.id] == nil {
					order = append(order, q.id)
				}
				gone[q.id] = append(gone[q.id], q)
				continue
			}
			m.status[q.id] = done
		}
		m.answers[q] = done
	}
	for _, id := range order {
		asked := gone[id]
		found := make([]bool, len(asked))
		err := m.s.scanRows(ctx, asked[0].part, func(t string, p int32, off int64) {
			for i, q := range asked {
				if t == m.topic && p == q.partition && off >= q.first && off < q.end {
					found[i] = true
				}
			}
		})
		if err != nil {
			return err
		}
		for i, q := range asked {
			m.answers[q] = found[i]
		}
	}
	return nil
}

// rangeCommitted reports whether every session of ledger entry e holds
// its committed rows (rangeCommitted, through the memo).
func (m *sessionMemo) rangeCommitted(ctx context.Context, e LedgerEntry) (bool, error) {
	qs := make([]sessionQuery, len(e.Sessions))
	for i, sess := range e.Sessions {
		qs[i] = queryOf(sess, e)
	}
	if err := m.settle(ctx, qs); err != nil {
		return false, err
	}
	for _, q := range qs {
		if !m.answers[q] {
			return false, nil
		}
	}
	return len(qs) > 0, nil
}

// resumePoint is Resume's answer for a partition whose latest entry is
// last, its sessions settled (queriesOf). group holds the group rows read,
// to tell which members of last's group are still pending at it.
func (m *sessionMemo) resumePoint(last LedgerEntry, group []LedgerEntry) sink.ResumePoint {
	rp := sink.ResumePoint{Start: last.Start, Next: last.End}
	if last.Kind != KindData {
		return rp
	}
	pending := &sink.Pending{First: last.First, End: last.End}
	complete := true
	for _, sess := range last.Sessions {
		done := m.answers[queryOf(sess, last)]
		sess.Committed = done
		complete = complete && done
		pending.Sessions = append(pending.Sessions, sess)
	}
	if complete {
		return rp
	}
	rp.Next, rp.Pending = last.First, pending
	if last.Group != nil {
		pending.Group = pendingMembers(last, group)
	}
	return rp
}

// pendingMembers are the members of last's group row whose latest group
// entry is still that row: a member a later row superseded (a gap
// declared over the dead intent, a rewind) is not written again with it.
func pendingMembers(last LedgerEntry, group []LedgerEntry) []sink.Member {
	var out []sink.Member
	for _, mb := range last.Group {
		var es []LedgerEntry
		for _, e := range group {
			if e.Partition == mb.Partition {
				es = append(es, e)
			}
		}
		l, ok := latest(es)
		if mb.Partition == last.Partition || !ok || sameRow(l, last) {
			out = append(out, mb)
		}
	}
	return out
}

// sameRow reports whether a and b are entries of the same group row.
func sameRow(a, b LedgerEntry) bool {
	return a.Written.Equal(b.Written) && a.Writer == b.Writer && a.Kind == b.Kind && sameSessions(a.Sessions, b.Sessions) && sameMembers(a.Group, b.Group)
}

// sessionKnown reads sess's state while the service knows it: known is
// false for a session it no longer knows (expired past its lifetime).
func (s *Sink) sessionKnown(ctx context.Context, sess sink.Session) (done, known bool, err error) {
	mc := s.c.mc
	up, err := s.c.tunnel.AttachToExistedUploadSession(mc.Project, mc.Table, sess.ID, tunnel.SessionCfg.WithPartitionKey(sess.Partition))
	if err == nil {
		done, serr := s.settled(ctx, &stream{id: sess.ID, part: sess.Partition, up: up})
		if serr == nil {
			return done, true, nil
		}
		if permanentTypeOf(serr) != ErrSessionExpired {
			return false, false, serr
		}
		return false, false, nil
	}
	if permanentType(err) != ErrSessionExpired && !isNotFound(err) {
		return false, false, classify(fmt.Sprintf("attach upload session %s on %s", sess.ID, sess.Partition), err)
	}
	return false, false, nil
}

// scanRows calls fn with the Kafka coordinates of every row of the data
// table's partition part (none when it is missing).
func (s *Sink) scanRows(ctx context.Context, part string, fn func(topic string, partition int32, offset int64)) error {
	err := s.c.download(ctx, part, []string{"topic", "partition", "offset"}, func(rec data.Record) error {
		if t, p, off, ok := ledgerRow(rec); ok {
			fn(t, p, off)
		}
		return nil
	})
	if err != nil && (errorCode(err) == "NoSuchPartition" || isNotFound(err)) {
		return nil
	}
	return err
}

// groupMark appends mark m as a one-member row of the group ledger
// partition.
func (s *Sink) groupMark(ctx context.Context, m sink.Mark) error {
	id := m.ID
	note := groupNote{Transform: id.Transform, Reason: m.Reason, Members: []groupMember{{Partition: id.Partition, Start: id.Start,
		First: id.First, End: id.End, Records: m.Records, Epoch: id.Epoch}}}
	js, err := json.Marshal(note)
	if err != nil {
		return err
	}
	return s.c.appendLedgerAt(ctx, groupLedgerPartition(id.Connector, id.Topic), LedgerEntry{Connector: id.Connector, Topic: id.Topic,
		Kind: m.Kind, Records: m.Records, Target: s.c.name(), Writer: id.Writer, Note: string(js), Written: cmp.Or(m.At, time.Now().UTC())})
}

// checkGroupID validates a group batch's id.
func checkGroupID(id sink.BatchID) error {
	if id.Redrive != nil {
		return fmt.Errorf("begin %s: a re-drive batch cannot be a group batch", id)
	}
	seen := make(map[int32]bool, len(id.Group))
	for _, m := range id.Group {
		if seen[m.Partition] {
			return fmt.Errorf("begin %s: partition %d is twice in the group", id, m.Partition)
		}
		seen[m.Partition] = true
		if m.End < m.First {
			return fmt.Errorf("begin %s: member %d has range [%d,%d)", id, m.Partition, m.First, m.End)
		}
	}
	return nil
}

// groupString names a group's members for messages.
func groupString(g []sink.Member) string {
	parts := make([]string, len(g))
	for i, m := range g {
		parts[i] = fmt.Sprintf("%d[%d,%d)", m.Partition, m.First, m.End)
	}
	return strings.Join(parts, " ")
}
