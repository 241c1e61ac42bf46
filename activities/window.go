package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	ossink "github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/window"
)

// Window activity names, as registered on the worker.
const (
	ResolveWindowName        = "ResolveWindow"
	PrepareWindowName        = "PrepareWindow"
	LoadWindowRangeName      = "LoadWindowRange"
	PublishWindowName        = "PublishWindow"
	CommitWindowPositionName = "CommitWindowPosition"
)

// WindowJob is a window load's job and window, part of every window
// activity's input. The spec is inline: a window run is short, and the
// job's spec is what a run was started with.
type WindowJob struct {
	Spec  json.RawMessage `json:"spec"`
	Begin time.Time       `json:"begin"`
	End   time.Time       `json:"end"`
}

// WindowRange is one Kafka partition's offsets in a window, [First, End).
type WindowRange struct {
	Partition int32 `json:"partition"`
	First     int64 `json:"first"`
	End       int64 `json:"end"`
}

// ResolveWindowResult is a window resolved to offsets and a destination.
type ResolveWindowResult struct {
	// Destination is the MaxCompute partition spec or the OSS prefix.
	Destination string        `json:"destination"`
	Ranges      []WindowRange `json:"ranges"`
	// Loaded says an append load of this window was published by an
	// earlier run: there is nothing to do.
	Loaded bool `json:"loaded,omitempty"`
	// Session is the upload session of an earlier run of this window that
	// recorded it and did not commit: the run finishes it.
	Session *sink.Session `json:"session,omitempty"`
}

// PrepareWindowInput asks for the window's MaxCompute upload session.
type PrepareWindowInput struct {
	WindowJob
	Destination string `json:"destination"`
}

// LoadWindowRangeInput loads one partition's range of a window.
type LoadWindowRangeInput struct {
	WindowJob
	Destination string        `json:"destination"`
	Session     *sink.Session `json:"session,omitempty"`
	Range       WindowRange   `json:"range"`
	// Index is the range's place in the window; FirstBlock and Span its
	// block ids in the window's session.
	Index      int `json:"index"`
	FirstBlock int `json:"firstBlock"`
	Span       int `json:"span"`
	// BytesPerSecond caps the range's reading (0: none).
	BytesPerSecond int64 `json:"bytesPerSecond,omitempty"`
	// ErrorLimit is settings.errorLimit.record: a range with more failed
	// records fails the load at once (after its dead letters are produced),
	// as the window's total exceeds it too.
	ErrorLimit int64 `json:"errorLimit"`
}

// LoadWindowRangeResult is what a range wrote. It goes into history:
// block ids, object keys and counts, never record bytes.
type LoadWindowRangeResult struct {
	Blocks      []int                  `json:"blocks,omitempty"`
	Objects     []WindowObject         `json:"objects,omitempty"`
	Records     int64                  `json:"records"`
	Bytes       int64                  `json:"bytes"`
	DeadLetters int64                  `json:"deadLetters"`
	Duration    time.Duration          `json:"duration"`
	Transform   []transform.StepCounts `json:"transform,omitempty"`
}

// WindowObject is an OSS object of a window and the range it holds.
type WindowObject struct {
	Key     string `json:"key"`
	First   int64  `json:"first"`
	End     int64  `json:"end"`
	Records int64  `json:"records"`
}

// PublishWindowInput publishes a loaded window.
type PublishWindowInput struct {
	WindowJob
	Destination string           `json:"destination"`
	Session     *sink.Session    `json:"session,omitempty"`
	Blocks      []int            `json:"blocks,omitempty"`
	Parts       []PublishedRange `json:"parts"`
	Records     int64            `json:"records"`
}

// PublishedRange is a partition's loaded range, for the _SUCCESS object.
type PublishedRange struct {
	WindowRange
	Records int64          `json:"records"`
	Objects []WindowObject `json:"objects,omitempty"`
}

// CommitWindowPositionInput records a window's end offsets as the job's
// position (seekToLast).
type CommitWindowPositionInput struct {
	WindowJob
	Ranges []WindowRange `json:"ranges"`
}

// windowJob decodes a window job spec and builds the connector spec the
// shared machinery (Kafka clients, sinks, the transform chain, dead
// letters) runs it with, writing to dest.
func (a *Activities) windowJob(in WindowJob, dest string) (*window.Spec, *connector.Spec, error) {
	ws, err := window.ParseJSON(in.Spec)
	if err != nil {
		return nil, nil, nonRetryable("InvalidSpec", err)
	}
	cs := &connector.Spec{
		Name:       "window-" + ws.Name,
		Kafka:      ws.Reader.KafkaSpec(),
		Transforms: ws.Transforms,
		Errors: connector.ErrorSpec{
			Tolerance:       connector.ToleranceContinue,
			DeadLetterTopic: ws.Settings.DeadLetterTopic,
			ErrorDataTopic:  ws.Settings.DeadLetterTopic,
		},
	}
	switch {
	case ws.Writer.MaxCompute != nil:
		m := ws.Writer.MaxCompute
		cs.Sink = connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: m.Endpoint, TunnelEndpoint: m.TunnelEndpoint, Project: m.Project, Table: m.Table, Credentials: m.Credentials,
			Format: connector.FormatFields, Columns: m.Columns, Partition: maxcompute.AnyPartition, TimeZone: m.TimeZone,
		}}
	case ws.Writer.OSS != nil:
		o := ws.Writer.OSS
		cs.Sink = connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{
			Endpoint: o.Endpoint, Bucket: o.Bucket, Credentials: o.Credentials, PathStyle: o.PathStyle, Path: dest, Format: o.Format,
		}}
	}
	cs.Default()
	if cs.Sink.MaxCompute != nil {
		cs.Sink.MaxCompute.Partition = maxcompute.AnyPartition // Default upper-cases; keep it
	}
	if err := connector.CheckCredentialUse(cs, nil); err != nil {
		return nil, nil, nonRetryable("CredentialNotAllowed", err)
	}
	return ws, cs, nil
}

// kafkaFor is the Kafka client of a window job: the pool's, or one of its
// own when the job sets kafkaConfig.
func (a *Activities) kafkaFor(ws *window.Spec, cs *connector.Spec) (*kafka.Client, func(), error) {
	if len(ws.Reader.KafkaConfig) == 0 {
		kc, err := a.kafka.For(cs)
		return kc, func() {}, err
	}
	opts, err := kafka.Options(cs)
	if err != nil {
		return nil, nil, err
	}
	extra, err := ws.Reader.KafkaOptions()
	if err != nil {
		return nil, nil, nonRetryable("InvalidSpec", err)
	}
	kc, err := kafka.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	return kc, kc.Close, nil
}

// ResolveWindow resolves a window to an offset range per Kafka partition
// (reader.begin and reader.end: the window's times through ListOffsets by
// timestamp, an offset, seekToBeginning, seekToEnd, or seekToLast — the
// job's own position in group window-<name>) and to its destination (the
// writer's partition or prefix with the window's variables). For an
// append load it looks the window up in the ledger: published already,
// there is nothing to do; recorded but not committed, the run finishes
// that session. For OSS a _SUCCESS object under the prefix means the
// window is loaded (nothing to do); without one, the job's objects there
// (an earlier run that failed) are deleted first.
func (a *Activities) ResolveWindow(ctx context.Context, in WindowJob) (ResolveWindowResult, error) {
	ws, err := window.ParseJSON(in.Spec)
	if err != nil {
		return ResolveWindowResult{}, nonRetryable("InvalidSpec", err)
	}
	var res ResolveWindowResult
	switch {
	case ws.Writer.MaxCompute != nil:
		res.Destination, err = ws.Writer.MaxCompute.PartitionSpec(in.Begin, in.End)
	case ws.Writer.OSS != nil:
		res.Destination, err = ws.Writer.OSS.WindowPrefix(in.Begin, in.End)
	}
	if err != nil {
		return ResolveWindowResult{}, nonRetryable("InvalidSpec", err)
	}
	_, cs, err := a.windowJob(in, res.Destination)
	if err != nil {
		return ResolveWindowResult{}, err
	}
	kc, done, err := a.kafkaFor(ws, cs)
	if err != nil {
		return ResolveWindowResult{}, classify(err)
	}
	defer done()
	if err := kc.EnsureDeadLetterTopic(ctx, cs.Errors.DeadLetterTopic, int64(cs.Errors.MaxRecordBytes)); err != nil {
		return ResolveWindowResult{}, err
	}
	loc, err := ws.Location()
	if err != nil {
		return ResolveWindowResult{}, nonRetryable("InvalidSpec", err)
	}
	bounds, err := kc.Bounds(ctx, ws.Reader.Topic)
	if err != nil {
		return ResolveWindowResult{}, classify(err)
	}
	parts := ws.Reader.Partitions
	if len(parts) == 0 {
		for p := range bounds {
			parts = append(parts, p)
		}
		slices.Sort(parts)
	}
	var committed map[int32]kafka.Committed
	resolve := func(pos window.Position, at time.Time, what string) (map[int32]int64, error) {
		b, err := pos.Parse(loc)
		if err != nil {
			return nil, nonRetryable("InvalidSpec", fmt.Errorf("reader.%s: %w", what, err))
		}
		out := map[int32]int64{}
		switch b.Kind {
		case window.KindWindow, window.KindTime:
			t := at
			if b.Kind == window.KindTime {
				t = b.Time
			}
			offs, err := kc.OffsetsAfter(ctx, ws.Reader.Topic, t)
			if err != nil {
				return nil, err
			}
			for _, p := range parts {
				o, ok := offs[p]
				if !ok || o < 0 {
					o = bounds[p].End // no record at or after t yet
				}
				out[p] = o
			}
		case window.KindOffset:
			for _, p := range parts {
				out[p] = b.Offset
			}
		case window.KindSeekToBeginning:
			for _, p := range parts {
				out[p] = bounds[p].Start
			}
		case window.KindSeekToEnd:
			for _, p := range parts {
				out[p] = stableEnd(bounds[p])
			}
		case window.KindSeekToLast:
			if committed == nil {
				if committed, err = kc.CommittedOffsets(ctx, ws.Group(), ws.Reader.Topic); err != nil {
					return nil, err
				}
			}
			for _, p := range parts {
				c, ok := committed[p]
				if !ok {
					c.Offset = bounds[p].Start // the job's first run starts at the beginning
				}
				out[p] = c.Offset
			}
		default:
			return nil, nonRetryable("InvalidSpec", fmt.Errorf("reader.%s: position kind %q", what, b.Kind))
		}
		return out, nil
	}
	begins, err := resolve(ws.Reader.Begin, in.Begin, "begin")
	if err != nil {
		return ResolveWindowResult{}, classify(err)
	}
	ends, err := resolve(ws.Reader.End, in.End, "end")
	if err != nil {
		return ResolveWindowResult{}, classify(err)
	}
	for _, p := range parts {
		b, ok := bounds[p]
		if !ok {
			return ResolveWindowResult{}, nonRetryable("InvalidSpec", fmt.Errorf("reader.partitions: topic %q has no partition %d", ws.Reader.Topic, p))
		}
		if b.Err != nil {
			return ResolveWindowResult{}, fmt.Errorf("offsets of partition %d: %w", p, b.Err)
		}
		first, end := begins[p], min(ends[p], stableEnd(b))
		if first < b.Start {
			return ResolveWindowResult{}, nonRetryable("DataLost", fmt.Errorf("the window starts at offset %d of partition %d, but the log starts at %d: records [%d,%d) were deleted (retention) before they were loaded", first, p, b.Start, first, b.Start))
		}
		if end < first {
			end = first // an empty window
		}
		res.Ranges = append(res.Ranges, WindowRange{Partition: p, First: first, End: end})
	}
	if m := ws.Writer.MaxCompute; m != nil && !*m.Truncate {
		s, err := a.windowMaxCompute(ctx, cs)
		if err != nil {
			return ResolveWindowResult{}, err
		}
		e, found, done, err := s.LoadedWindow(ctx, ws.Name, ws.Reader.Topic, in.Begin, in.End)
		if err != nil {
			return ResolveWindowResult{}, classify(err)
		}
		switch {
		case found && done:
			res.Loaded = true
		case found:
			// Recorded, not committed: a run crashed between the two.
			// Its session is finished when it is still open; an expired
			// one holds nothing and a new session is prepared.
			open, err := s.WindowSessionOpen(ctx, e.Sessions[0])
			if err != nil {
				return ResolveWindowResult{}, classify(err)
			}
			if open {
				sess := e.Sessions[0]
				res.Session = &sess
			}
		}
	}
	if ws.Writer.OSS != nil {
		s, err := a.sink(ctx, cs)
		if err != nil {
			return ResolveWindowResult{}, classify(err)
		}
		sk, ok := s.(*ossink.Sink)
		if !ok {
			return ResolveWindowResult{}, nonRetryable("InvalidSpec", errors.New("the window job's writer is not oss"))
		}
		// A published prefix is the window loaded: OSS has no atomic
		// replace, so a re-run does nothing, as an append does. What an
		// unpublished run left is cleared: this run's ranges may differ.
		published, err := sk.WindowPublished(ctx, res.Destination)
		if err != nil {
			return ResolveWindowResult{}, classify(err)
		}
		if published {
			res.Loaded = true
		} else if gone, err := sk.ClearWindow(ctx, res.Destination, cs.Name); err != nil {
			return ResolveWindowResult{}, classify(err)
		} else if len(gone) > 0 {
			activity.GetLogger(ctx).Warn("cleared what an unpublished load of the window left", "prefix", res.Destination, "objects", len(gone))
		}
	}
	return res, nil
}

func stableEnd(b kafka.Bounds) int64 {
	if b.Stable >= 0 && b.Stable < b.End {
		return b.Stable
	}
	return b.End
}

// windowMaxCompute is the window job's MaxCompute sink.
func (a *Activities) windowMaxCompute(ctx context.Context, cs *connector.Spec) (*maxcompute.Sink, error) {
	s, err := a.sink(ctx, cs)
	if err != nil {
		return nil, classify(err)
	}
	mc, ok := s.(*maxcompute.Sink)
	if !ok {
		return nil, nonRetryable("InvalidSpec", errors.New("the window job's writer is not maxcompute"))
	}
	return mc, nil
}

// PrepareWindow creates the window's MaxCompute upload session on its
// partition, with overwrite when the job truncates; its id goes into
// history, so every range and a retried publish use it.
func (a *Activities) PrepareWindow(ctx context.Context, in PrepareWindowInput) (sink.Session, error) {
	ws, cs, err := a.windowJob(in.WindowJob, in.Destination)
	if err != nil {
		return sink.Session{}, err
	}
	s, err := a.windowMaxCompute(ctx, cs)
	if err != nil {
		return sink.Session{}, err
	}
	sess, err := s.PrepareWindow(ctx, in.Destination, *ws.Writer.MaxCompute.Truncate)
	var perm *sink.PermanentError
	if errors.As(err, &perm) && perm.Type == maxcompute.ErrNoSuchTable {
		m := ws.Writer.MaxCompute
		var cols []string
		for _, c := range m.Columns {
			cols = append(cols, c.Name)
		}
		return sink.Session{}, nonRetryable(maxcompute.ErrNoSuchTable, fmt.Errorf("table %s.%s does not exist: a window job does not create tables; create it with the columns writer.maxcompute.columns fills (%s), partitioned by the keys of writer.maxcompute.partition %q",
			m.Project, m.Table, strings.Join(cols, ", "), m.Partition))
	}
	if err != nil {
		return sink.Session{}, classify(fmt.Errorf("prepare the window's session on %s: %w", in.Destination, err))
	}
	return sess, nil
}

// LoadWindowRange reads one partition's range of a window, decodes keys
// and values as reader.keyType and valueType say, runs the transforms and
// writes: MaxCompute rows into the range's blocks of the window's session
// (nothing is visible until PublishWindow commits it), OSS objects under
// the window's prefix (seed 000's names, cut at about 64 MiB). Records that
// fail go to the job's dead-letter topic and are counted against
// errorLimit. It heartbeats the offset it reached, which `starter window
// run` shows as progress.
func (a *Activities) LoadWindowRange(ctx context.Context, in LoadWindowRangeInput) (LoadWindowRangeResult, error) {
	ws, cs, err := a.windowJob(in.WindowJob, in.Destination)
	if err != nil {
		return LoadWindowRangeResult{}, err
	}
	kc, done, err := a.kafkaFor(ws, cs)
	if err != nil {
		return LoadWindowRangeResult{}, classify(err)
	}
	defer done()
	start := time.Now()
	res := LoadWindowRangeResult{}
	r := in.Range
	if r.End <= r.First {
		return res, nil
	}
	chain, err := a.chain(cs)
	if err != nil {
		return LoadWindowRangeResult{}, err
	}
	s, err := a.sink(ctx, cs)
	if err != nil {
		return LoadWindowRangeResult{}, classify(err)
	}
	limiter := newRateLimiter(in.BytesPerSecond)
	var progress windowProgress
	stopBeat := heartbeatProgress(ctx, &progress)
	defer stopBeat()

	// One batch at a time: the whole range for MaxCompute (its blocks), a
	// cut of about cs.Batch.MaxBytes for OSS.
	write := func(b sink.Batch, first, end int64, id sink.BatchID) (sink.Written, error) {
		var run *transform.Run
		if !chain.Empty() {
			if run, err = chain.Begin(ctx); err != nil {
				return sink.Written{}, err
			}
			defer func() { _ = run.Close(ctx) }()
		}
		var dls []kafka.DeadLetter
		flush := func() error {
			if len(dls) == 0 {
				return nil
			}
			if err := kc.ProduceDeadLetters(ctx, cs.Errors.DeadLetterTopic, dls, int64(cs.Errors.MaxRecordBytes)); err != nil {
				return err
			}
			res.DeadLetters += int64(len(dls))
			dls = dls[:0]
			return nil
		}
		err := kc.ReadRange(ctx, ws.Reader.Topic, r.Partition, first, end, kafka.ReadOptions{}, func(rec *kgo.Record) (bool, error) {
			if err := limiter.wait(ctx, int64(len(rec.Key)+len(rec.Value))); err != nil {
				return false, err
			}
			decoded, derr := decodeRecord(ws, rec)
			var dl *kafka.DeadLetter
			if derr != nil {
				dl = &kafka.DeadLetter{Record: rec, Connector: cs.Name, Stage: "decode", Err: derr}
			} else if dl, err = ApplyRecord(ctx, cs, run, b, decoded); err != nil {
				return false, err
			}
			if dl != nil {
				dl.Record = rec
				dls = append(dls, *dl)
				over := res.DeadLetters+int64(len(dls)) > in.ErrorLimit
				if len(dls) >= deadLetterChunk || over {
					if err := flush(); err != nil {
						return false, err
					}
				}
				if over {
					return false, nonRetryable("ErrorLimitExceeded", fmt.Errorf("%d records of partition %d failed, more than settings.errorLimit.record %d (the last at offset %d: %s): the window is not published (the failed records are in %s)",
						res.DeadLetters, r.Partition, in.ErrorLimit, rec.Offset, transform.ShortPrefix([]byte(dl.Err.Error()), 200), cs.Errors.DeadLetterTopic))
				}
			}
			progress.set(rec.Offset+1, 0)
			return true, nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			b.Abort(ctx)
			return sink.Written{}, err
		}
		if run != nil {
			res.Transform = addCounts(res.Transform, run.Counts())
		}
		return b.Commit(ctx)
	}

	switch sk := s.(type) {
	case *maxcompute.Sink:
		if in.Session == nil {
			return res, nonRetryable("InvalidSpec", errors.New("a maxcompute window range needs the window's session"))
		}
		w, err := sk.WindowWriter(ctx, *in.Session, in.FirstBlock, in.Span)
		if err != nil {
			return res, classify(err)
		}
		wr, err := write(w, r.First, r.End, sink.BatchID{})
		if err != nil {
			return res, rangeErr(fmt.Errorf("load partition %d [%d,%d) into %s: %w", r.Partition, r.First, r.End, in.Destination, err))
		}
		res.Blocks, res.Records, res.Bytes = w.Blocks(), wr.Records, wr.Bytes
	case *ossink.Sink:
		cuts, err := a.windowCuts(ctx, kc, cs, r)
		if err != nil {
			return res, classify(err)
		}
		for _, c := range cuts {
			id := sink.BatchID{Connector: cs.Name, Topic: ws.Reader.Topic, Partition: r.Partition, Start: r.First, First: c.First, End: c.End,
				Writer: "window/" + ws.Name, Transform: chain.Hash()}
			b, err := sk.Begin(ctx, id, nil)
			if err != nil {
				return res, classify(err)
			}
			wr, err := write(b, c.First, c.End, id)
			if err != nil {
				return res, rangeErr(fmt.Errorf("load partition %d [%d,%d) under %s: %w", r.Partition, c.First, c.End, in.Destination, err))
			}
			for _, k := range wr.Objects {
				res.Objects = append(res.Objects, WindowObject{Key: k, First: c.First, End: c.End, Records: wr.Records})
			}
			res.Records += wr.Records
			res.Bytes += wr.Bytes
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// rangeErr classifies a range's write error. A non-retryable application
// error inside it (ErrorLimitExceeded from the read callback) stays
// non-retryable under the context wrapped around it: Temporal's retry
// policy reads only the outermost error's type and flag, so a wrapped one
// would be retried to the policy's last attempt.
func rangeErr(err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() {
		msg := strings.Replace(err.Error(), app.Error(), app.Message(), 1)
		return temporal.NewApplicationErrorWithOptions(msg, app.Type(), temporal.ApplicationErrorOptions{NonRetryable: true})
	}
	return classify(err)
}

// windowCuts cuts an OSS range into batches of about cs.Batch.MaxBytes,
// from the records alone, so a retry cuts the same batches.
func (a *Activities) windowCuts(ctx context.Context, kc *kafka.Client, cs *connector.Spec, r WindowRange) ([]WindowRange, error) {
	var out []WindowRange
	first, bytes := r.First, int64(0)
	err := kc.ReadRange(ctx, cs.Kafka.Topic, r.Partition, r.First, r.End, kafka.ReadOptions{}, func(rec *kgo.Record) (bool, error) {
		bytes += int64(len(rec.Key) + len(rec.Value))
		if bytes >= int64(cs.Batch.MaxBytes) {
			out = append(out, WindowRange{Partition: r.Partition, First: first, End: rec.Offset + 1})
			first, bytes = rec.Offset+1, 0
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if first < r.End {
		out = append(out, WindowRange{Partition: r.Partition, First: first, End: r.End})
	}
	return out, nil
}

// decodeRecord applies reader.keyType and valueType: a typed key or value
// becomes its text (numbers in decimal), so columns and transforms see the
// value, not its bytes.
func decodeRecord(ws *window.Spec, r *kgo.Record) (*kgo.Record, error) {
	if ws.Reader.KeyType == window.TypeByteArray && ws.Reader.ValueType == window.TypeByteArray {
		return r, nil
	}
	out := *r
	for _, f := range []struct {
		typ  string
		b    *[]byte
		what string
	}{{ws.Reader.KeyType, &out.Key, "key"}, {ws.Reader.ValueType, &out.Value, "value"}} {
		if f.typ == window.TypeByteArray || *f.b == nil {
			continue
		}
		v, err := window.Decode(f.typ, *f.b)
		if err != nil {
			return nil, fmt.Errorf("%s as %s: %w", f.what, f.typ, err)
		}
		switch x := v.(type) {
		case string:
			*f.b = []byte(x)
		case []byte:
			*f.b = x
		case float32:
			*f.b = strconv.AppendFloat(nil, float64(x), 'g', -1, 32)
		case float64:
			*f.b = strconv.AppendFloat(nil, x, 'g', -1, 64)
		default:
			*f.b = fmt.Appendf(nil, "%v", x)
		}
	}
	return &out, nil
}

// PublishWindow makes the loaded window visible in one step. MaxCompute:
// the window is recorded in the ledger table, then its session is
// committed with every range's blocks (an overwrite session replaces the
// partition's rows atomically; a session committed already counts as
// done). OSS: a _SUCCESS object under the prefix lists every object and
// offset range of the window.
func (a *Activities) PublishWindow(ctx context.Context, in PublishWindowInput) error {
	ws, cs, err := a.windowJob(in.WindowJob, in.Destination)
	if err != nil {
		return err
	}
	s, err := a.sink(ctx, cs)
	if err != nil {
		return classify(err)
	}
	switch sk := s.(type) {
	case *maxcompute.Sink:
		if in.Session == nil {
			return nonRetryable("InvalidSpec", errors.New("a maxcompute window needs its session"))
		}
		// Recorded before the commit: an append re-run finds the window
		// (and, after a crash between the two, its session to finish). A
		// retried publish records it again, which is harmless.
		ranges, _ := json.Marshal(in.Parts)
		if err := sk.RecordWindow(ctx, ws.Name, ws.Reader.Topic, in.Begin, in.End, *in.Session, in.Records, transform.ShortPrefix(ranges, 1024)); err != nil {
			return classify(err)
		}
		if err := sk.CommitWindow(ctx, *in.Session, in.Blocks); err != nil {
			return classify(fmt.Errorf("publish the window into %s: %w", in.Destination, err))
		}
	case *ossink.Sink:
		doc := map[string]any{
			"job": ws.Name, "topic": ws.Reader.Topic, "begin": in.Begin, "end": in.End,
			"records": in.Records, "partitions": in.Parts, "publishedBy": "dumpflow",
		}
		body, _ := json.MarshalIndent(doc, "", "  ")
		if err := sk.PutSuccess(ctx, in.Destination, bytes.NewReader(body)); err != nil {
			return classify(fmt.Errorf("publish the window under %s: %w", in.Destination, err))
		}
	}
	activity.GetLogger(ctx).Info("window published", "job", ws.Name, "destination", in.Destination, "records", in.Records)
	return nil
}

// CommitWindowPosition commits the window's end offsets to the job's group
// window-<name>: the next run's seekToLast continues there.
func (a *Activities) CommitWindowPosition(ctx context.Context, in CommitWindowPositionInput) error {
	ws, cs, err := a.windowJob(in.WindowJob, "")
	if err != nil {
		return err
	}
	kc, done, err := a.kafkaFor(ws, cs)
	if err != nil {
		return classify(err)
	}
	defer done()
	// The position only moves forward: a run of an older window (a
	// backfill started by `temporal schedule backfill`, which runs the
	// schedule's action as it is, or a late buffered run) leaves it.
	cur, err := kc.CommittedOffsets(ctx, ws.Group(), ws.Reader.Topic)
	if err != nil {
		return classify(err)
	}
	m := map[int32]kafka.Committed{}
	for _, r := range in.Ranges {
		if c, ok := cur[r.Partition]; ok && c.Offset >= r.End {
			continue
		}
		m[r.Partition] = kafka.Committed{Offset: r.End, Start: r.First}
	}
	if len(m) == 0 {
		return nil
	}
	return kc.Commit(ctx, ws.Group(), ws.Reader.Topic, m)
}

// rateLimiter paces reading to a byte rate (0: no limit).
type rateLimiter struct {
	rate  float64 // bytes per second
	start time.Time
	read  int64
}

func newRateLimiter(bytesPerSecond int64) *rateLimiter {
	return &rateLimiter{rate: float64(bytesPerSecond), start: time.Now()}
}

// wait accounts n bytes and sleeps until the rate allows them.
func (l *rateLimiter) wait(ctx context.Context, n int64) error {
	if l.rate <= 0 {
		return nil
	}
	l.read += n
	due := l.start.Add(time.Duration(float64(l.read) / l.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// WindowProgress is a LoadWindowRange's heartbeat details: the offset its
// read reached. `starter window run` reads it from the pending activities.
type WindowProgress struct {
	Offset int64 `json:"offset"`
}

type windowProgress struct {
	mu     sync.Mutex
	offset int64
}

func (p *windowProgress) set(offset int64, _ int64) {
	p.mu.Lock()
	p.offset = offset
	p.mu.Unlock()
}

// heartbeatProgress heartbeats the progress every few seconds until stopped.
func heartbeatProgress(ctx context.Context, p *windowProgress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.mu.Lock()
				o := p.offset
				p.mu.Unlock()
				activity.RecordHeartbeat(ctx, WindowProgress{Offset: o})
			}
		}
	}()
	return func() { close(done); <-finished }
}

// addCounts adds step counts b to a (same chain, same steps).
func addCounts(a, b []transform.StepCounts) []transform.StepCounts {
	if len(a) == 0 {
		return append([]transform.StepCounts(nil), b...)
	}
	for i := range min(len(a), len(b)) {
		a[i].In += b[i].In
		a[i].Out += b[i].Out
		a[i].Dropped += b[i].Dropped
		a[i].Failed += b[i].Failed
	}
	return a
}
