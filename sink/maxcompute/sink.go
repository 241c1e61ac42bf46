package maxcompute

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

var (
	_ sink.Sink     = (*Sink)(nil)
	_ sink.Preparer = (*Sink)(nil)
	_ sink.Rejecter = (*Sink)(nil)
	_ sink.Resumer  = (*Sink)(nil)
	_ sink.Marker   = (*Sink)(nil)
)

// Sink writes batches into one MaxCompute table through tunnel upload
// sessions. Build one per connector spec and reuse it; its methods are safe
// for concurrent use.
type Sink struct {
	c    *client
	part partitioner

	mu          sync.Mutex
	schema      *tableschema.TableSchema // set once the table is known to exist and fit
	conv        *converter               // for the table's schema, set with schema
	ledgerReady bool                     // the ledger table exists and fits
	// loaded is conv, for the per-record PartitionOf without the lock.
	loaded atomic.Pointer[converter]
}

// New returns a Sink for spec's sink.maxcompute section. It does no I/O;
// the table is checked (and created when spec allows it) on first use or by
// EnsureTable.
func New(spec *connector.Spec, creds connector.Credentials, opts ...Option) (*Sink, error) {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return nil, err
	}
	p, err := newPartitioner(c.mc)
	if err != nil {
		return nil, sink.Permanent(ErrInvalidSpec, err)
	}
	return &Sink{c: c, part: p}, nil
}

// Close releases nothing: the SDK holds no long-lived resources.
func (s *Sink) Close() error { return nil }

// EnsureTable loads the table schema once: it creates the table with
// DefaultDDL when it is missing and the spec sets createTable, and checks
// that its columns fit the spec's mode and format. Errors are permanent
// (NoSuchProject, NoSuchTable, AccessDenied, SchemaMismatch,
// CreateTableFailed) or retryable. A failed call is retried by the next.
func (s *Sink) EnsureTable(ctx context.Context) error {
	_, err := s.ensureTable(ctx)
	return err
}

func (s *Sink) ensureTable(ctx context.Context) (*tableschema.TableSchema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.schema != nil {
		return s.schema, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	schema, err := s.c.loadOrCreateTable(ctx)
	if err != nil {
		return nil, err
	}
	conv, err := newConverter(s.c.name(), s.c.mc, s.part.loc, schema)
	if err != nil {
		return nil, err
	}
	if err := s.c.resolveTunnel(); err != nil {
		return nil, err
	}
	s.schema, s.conv = &schema, conv
	s.loaded.Store(conv)
	return s.schema, nil
}

// PartitionOf returns the partition spec of r's Kafka timestamp in the
// spec's time zone, e.g. "pt=11-17-2020 14" for granularity HOUR. A record
// without a timestamp is rejected, and so, once the table is known
// (EnsureTable), is a record that will not convert to a row: Prepare then
// opens no session, and creates no partition, for records that never land.
//
// It checks the conversion without building the row where the format
// allows (converter.accept) and formats each hour's spec once
// (partitioner.spec): the cut calls it for every record.
func (s *Sink) PartitionOf(r *transform.Record) (string, error) {
	if r.Timestamp.IsZero() {
		return "", noTimestamp(r)
	}
	if conv := s.loaded.Load(); conv != nil {
		if err := conv.accept(r); err != nil {
			return "", err
		}
	}
	return s.part.spec(r.Timestamp), nil
}

func noTimestamp(r *transform.Record) error {
	return sink.Reject("partition", fmt.Errorf("topic %s partition %d offset %d: no timestamp to choose a partition from", r.Topic, r.Partition, r.Offset))
}

// Reject implements sink.Rejecter: the record cannot be written when it has
// no timestamp or does not convert to a row of the table. It is
// PartitionOf's check: a caller that needs both calls PartitionOf alone.
func (s *Sink) Reject(r *transform.Record) error {
	_, err := s.PartitionOf(r)
	return err
}

// Prepare creates one tunnel upload session per destination partition, in
// the order given, creating missing partitions on the way. The session ids
// go into workflow history; Begin re-attaches to them. A session in keep is
// kept when it is committed (marked Committed: its rows are in the table)
// or still open; one that expired is replaced. So a range whose sessions
// partly committed is never written twice. Sessions of a failed Prepare are
// never committed and expire after 24h.
func (s *Sink) Prepare(ctx context.Context, id sink.BatchID, partitions []string, keep []sink.Session) (*sink.Prepared, error) {
	if _, err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	kept := map[string]sink.Session{}
	for _, k := range keep {
		part, err := normalizeSpec(k.Partition)
		if err != nil {
			return nil, sink.Permanent(ErrInvalidSpec, fmt.Errorf("prepare %s: %w", id, err))
		}
		k.Partition = part
		kept[part] = k
	}
	p := &sink.Prepared{Sessions: make([]sink.Session, 0, len(partitions))}
	seen := make(map[string]bool, len(partitions))
	for _, raw := range partitions {
		part, err := normalizeSpec(raw)
		if err != nil {
			return nil, sink.Permanent(ErrInvalidSpec, fmt.Errorf("prepare %s: %w", id, err))
		}
		if seen[part] {
			continue
		}
		seen[part] = true
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if k, ok := kept[part]; ok {
			done, err := s.sessionState(ctx, k)
			switch {
			case err == nil:
				k.Committed = done
				p.Sessions = append(p.Sessions, k)
				continue
			case permanentTypeOf(err) != ErrSessionExpired:
				return nil, err
			}
		}
		up, err := s.createSession(part)
		if err != nil {
			return nil, err
		}
		p.Sessions = append(p.Sessions, sink.Session{Partition: part, ID: up.Id})
	}
	return p, nil
}

// sessionState reads a prepared session's status: committed (true), open
// (false), or a SessionExpired error.
func (s *Sink) sessionState(ctx context.Context, sess sink.Session) (bool, error) {
	mc := s.c.mc
	up, err := s.c.tunnel.AttachToExistedUploadSession(mc.Project, mc.Table, sess.ID, tunnel.SessionCfg.WithPartitionKey(sess.Partition))
	if err != nil {
		if isNotFound(err) {
			return false, sink.Permanent(ErrSessionExpired, fmt.Errorf("upload session %s on %s is gone: %w", sess.ID, sess.Partition, err))
		}
		return false, classify(fmt.Sprintf("attach upload session %s on %s", sess.ID, sess.Partition), err)
	}
	return s.settled(ctx, &stream{id: sess.ID, part: sess.Partition, up: up})
}

// createSession creates an upload session on part, asking the tunnel to
// create the partition; a service that does not honour that gets the
// partition added by DDL first.
func (s *Sink) createSession(part string) (*tunnel.UploadSession, error) {
	mc := s.c.mc
	create := func() (*tunnel.UploadSession, error) {
		return s.c.tunnel.CreateUploadSession(mc.Project, mc.Table,
			tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	}
	up, err := create()
	if err != nil && errorCode(err) == "NoSuchPartition" {
		if aerr := s.c.odps.Table(mc.Table).AddPartition(true, part); aerr != nil {
			return nil, classify(fmt.Sprintf("add partition %s to %s", part, s.c.name()), aerr)
		}
		up, err = create()
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("create upload session on %s %s", s.c.name(), part), err)
	}
	return up, nil
}

// Begin starts writing batch id into the sessions prepared for it. It
// attaches every session not known to be committed; sessions already
// committed (a retried batch) take no rows again, and sessions found
// expired take none either: Commit reports them in a *sink.ExpiredError.
//
// For a group batch (id.Group set, not with id.Redrive) the records of
// every member are added in Group's order, each member's range in offset
// order; a record of a partition that is not a member fails the batch.
func (s *Sink) Begin(ctx context.Context, id sink.BatchID, prepared *sink.Prepared) (sink.Batch, error) {
	if prepared == nil {
		return nil, sink.Permanent(ErrNotPrepared, fmt.Errorf("begin %s: the maxcompute sink needs the sessions Prepare returned", id))
	}
	if _, err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	if err := s.ensureLedger(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	conv := s.conv
	s.mu.Unlock()
	b := &batch{s: s, id: id, conv: conv, streams: make(map[string]*stream, len(prepared.Sessions))}
	if id.Redrive != nil {
		b.origins = map[int64]int64{}
	}
	if len(id.Group) > 0 {
		if err := checkGroupID(id); err != nil {
			return nil, sink.Permanent(ErrInvalidSpec, err)
		}
		b.member = make(map[int32]int, len(id.Group))
		for i, m := range id.Group {
			b.member[m.Partition] = i
		}
		b.mrows, b.mbytes = make([]int64, len(id.Group)), make([]int64, len(id.Group))
	}
	for _, sess := range prepared.Sessions {
		part, err := normalizeSpec(sess.Partition)
		if err != nil {
			return nil, sink.Permanent(ErrInvalidSpec, fmt.Errorf("begin %s: %w", id, err))
		}
		if _, dup := b.streams[part]; dup {
			return nil, sink.Permanent(ErrInvalidSpec, fmt.Errorf("begin %s: partition %s has two sessions", id, part))
		}
		st := &stream{id: sess.ID, part: part, done: sess.Committed, conv: conv}
		if !sess.Committed {
			if st, err = s.attach(ctx, sess.ID, part); err != nil {
				if permanentTypeOf(err) != ErrSessionExpired {
					return nil, err
				}
				st = &stream{id: sess.ID, part: part, expired: true, conv: conv}
			}
		}
		b.streams[part] = st
		b.order = append(b.order, st)
	}
	return b, nil
}

// attach re-attaches to session id on part and builds its row converter
// from the session's schema.
func (s *Sink) attach(ctx context.Context, id, part string) (*stream, error) {
	mc := s.c.mc
	up, err := s.c.tunnel.AttachToExistedUploadSession(mc.Project, mc.Table, id, tunnel.SessionCfg.WithPartitionKey(part))
	if err != nil {
		if isNotFound(err) {
			return nil, sink.Permanent(ErrSessionExpired, fmt.Errorf("upload session %s on %s is gone: %w", id, part, err))
		}
		return nil, classify(fmt.Sprintf("attach upload session %s on %s", id, part), err)
	}
	st := &stream{id: id, part: part, up: up}
	done, err := s.settled(ctx, st)
	if err != nil {
		return nil, err
	}
	st.done = done
	conv, err := newConverter(s.c.name(), mc, s.part.loc, up.Schema())
	if err != nil {
		return nil, err
	}
	// The session's schema is the table's (as it always is unless the
	// table changed since it was loaded): share the table's converter, so
	// Add converts each record once (batch.Add).
	if tc := s.loaded.Load(); tc != nil && tc.sameColumns(conv) {
		conv = tc
	}
	st.conv = conv
	return st, nil
}

// blockList renders ids for messages.
func blockList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "[" + strings.Join(s, " ") + "]"
}
