package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
)

// Activity names of the Redrive workflow.
const (
	RedriveSpecName  = "RedriveSpec"
	PlanRedriveName  = "PlanRedrive"
	RedriveBatchName = "RedriveBatch"
)

// DefaultRedriveBatch is how many dead letters one re-drive batch takes at
// most.
const DefaultRedriveBatch = 500

// RedriveSelection says which of a connector's dead letters to re-drive.
// Exactly one of All, Partition (with From and To) and DeadLetterOffsets is
// set.
type RedriveSelection struct {
	// All selects every dead letter of the connector.
	All bool `json:"all,omitempty"`
	// Partition selects dead letters whose record came from this partition
	// of the connector's topic, at offsets [From, To) (To 0: no end).
	Partition *int32 `json:"partition,omitempty"`
	From      int64  `json:"from,omitempty"`
	To        int64  `json:"to,omitempty"`
	// DeadLetterOffsets selects dead letters by their own offsets in
	// partition DeadLetterPartition of the dead-letter topic: ranges
	// [first, end).
	DeadLetterPartition int32        `json:"deadLetterPartition,omitempty"`
	DeadLetterOffsets   []sink.Range `json:"deadLetterOffsets,omitempty"`
}

// Validate checks that exactly one selection is made.
func (s RedriveSelection) Validate() error {
	n := 0
	if s.All {
		n++
	}
	if s.Partition != nil {
		n++
		if s.From < 0 || (s.To != 0 && s.To <= s.From) {
			return fmt.Errorf("selection: from %d, to %d: want 0 ≤ from < to (to 0: no end)", s.From, s.To)
		}
	}
	if len(s.DeadLetterOffsets) > 0 {
		n++
		for _, r := range s.DeadLetterOffsets {
			if r.First < 0 || r.End <= r.First {
				return fmt.Errorf("selection: dead-letter offsets [%d,%d): want 0 ≤ first < end", r.First, r.End)
			}
		}
	}
	if n != 1 {
		return errors.New("selection: set exactly one of all, partition (with from and to), deadLetterOffsets")
	}
	return nil
}

func (s RedriveSelection) has(l kafka.Letter) bool {
	switch {
	case s.All:
		return true
	case s.Partition != nil:
		return l.OriginPartition == *s.Partition && l.OriginOffset >= s.From && (s.To == 0 || l.OriginOffset < s.To)
	}
	if l.Partition != s.DeadLetterPartition {
		return false
	}
	for _, r := range s.DeadLetterOffsets {
		if l.Offset >= r.First && l.Offset < r.End {
			return true
		}
	}
	return false
}

// RedriveOverrides change the connector's spec for a re-drive, to fix why
// the records failed. Unset fields keep the connector's.
type RedriveOverrides struct {
	// Transforms replace the connector's transform chain ([] for none).
	Transforms *[]transform.StepSpec `json:"transforms,omitempty"`
	// MaxRecordBytes replaces errors.maxRecordBytes.
	MaxRecordBytes connector.ByteSize `json:"maxRecordBytes,omitempty"`
}

// Empty reports whether o changes nothing.
func (o RedriveOverrides) Empty() bool { return o.Transforms == nil && o.MaxRecordBytes == 0 }

// Hash names the overrides: 16 hex chars of the SHA-256 of their JSON, ""
// when empty.
func (o RedriveOverrides) Hash() string {
	if o.Empty() {
		return ""
	}
	b, _ := json.Marshal(o)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Apply returns a copy of spec with the overrides, defaulted and
// validated.
func (o RedriveOverrides) Apply(spec *connector.Spec) (*connector.Spec, error) {
	cp := *spec
	if o.Transforms != nil {
		cp.Transforms = *o.Transforms
	}
	if o.MaxRecordBytes != 0 {
		cp.Errors.MaxRecordBytes = o.MaxRecordBytes
	}
	cp.Default()
	if err := cp.Validate(); err != nil {
		return nil, fmt.Errorf("the spec with the re-drive's overrides: %w", err)
	}
	return &cp, nil
}

// RedriveSpecInput asks for a connector's spec.
type RedriveSpecInput struct {
	Connector string `json:"connector"`
}

// RedriveSpecResult is the connector's spec, with defaults. It names
// credentials, never holds them.
type RedriveSpecResult struct {
	Spec *connector.Spec `json:"spec"`
}

// RedriveSpec reads the spec of connector-<name> from the input of its
// current run.
func (a *Activities) RedriveSpec(ctx context.Context, in RedriveSpecInput) (RedriveSpecResult, error) {
	if a.temporal == nil {
		return RedriveSpecResult{}, nonRetryable("SpecUnavailable", errors.New("the worker has no Temporal client to read the connector's spec with"))
	}
	id := connector.WorkflowID(in.Connector)
	raw, err := a.temporal.StartInput(ctx, id, "")
	if err != nil {
		return RedriveSpecResult{}, nonRetryable("NoSuchConnector", fmt.Errorf("read the spec of connector %s from workflow %s: %w", in.Connector, id, err))
	}
	var wi struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &wi); err != nil {
		return RedriveSpecResult{}, nonRetryable("InvalidSpec", fmt.Errorf("decode the input of workflow %s: %w", id, err))
	}
	spec, err := connector.DecodeLenient(wi.Spec)
	if err != nil {
		return RedriveSpecResult{}, nonRetryable("InvalidSpec", fmt.Errorf("decode the spec of workflow %s: %w", id, err))
	}
	if err := checkSpec(spec); err != nil {
		return RedriveSpecResult{}, err
	}
	return RedriveSpecResult{Spec: spec}, nil
}

// PlanRedriveInput asks which batches a re-drive writes.
type PlanRedriveInput struct {
	Spec      *connector.Spec  `json:"spec"`
	Selection RedriveSelection `json:"selection"`
	Overrides RedriveOverrides `json:"overrides,omitempty"`
	// MaxLetters caps one batch. Optional. Default: DefaultRedriveBatch.
	MaxLetters int `json:"maxLetters,omitempty"`
}

// RedrivePlan is one re-drive batch: the dead letters of the connector in
// [First, End) of a dead-letter partition, all from one origin partition.
// It carries offsets and counts, never record bytes.
type RedrivePlan struct {
	DeadLetterPartition int32 `json:"deadLetterPartition"`
	First               int64 `json:"first"`
	End                 int64 `json:"end"`
	OriginPartition     int32 `json:"originPartition"`
	Letters             int64 `json:"letters"`
	// Bytes is the letters' key and value bytes: a batch is cut at
	// batch.maxBytes, and takes that much of the worker's batch memory.
	Bytes int64 `json:"bytes,omitempty"`
}

// PlanRedriveResult lists the batches in dead-letter order.
type PlanRedriveResult struct {
	DeadLetterTopic string        `json:"deadLetterTopic"`
	Batches         []RedrivePlan `json:"batches"`
	// Selected counts the connector's dead letters the selection names;
	// Done those of them already re-driven (or superseded by a later
	// letter of the same record), which the batches leave out.
	Selected int64 `json:"selected"`
	Done     int64 `json:"done"`
}

// redriveSink is a sink that can re-drive dead letters.
type redriveSink interface {
	RedrivenObjects(ctx context.Context, topic string) ([]oss.Object, error)
	PutRedriveOverrides(ctx context.Context, topic, hash string, body []byte) error
}

// origin names a record of the connector's topic.
type origin struct {
	p int32
	o int64
}

// PlanRedrive reads the connector's dead letters and what earlier
// re-drives wrote, and plans the batches that re-drive the selected
// letters not yet re-driven.
//
// A record is re-driven once per attempt: a letter counts as done when an
// earlier re-drive covered a letter of the same record with the same or a
// higher attempt (HeaderAttempt). Of several letters of one record and
// attempt (a write retried after it produced its dead letters), only the
// first is taken. A batch is a run of taken letters of the connector in
// one dead-letter partition, from one origin partition, with no other
// letter of the connector between them (other connectors' letters may be),
// so the batch's range alone says which letters it holds.
func (a *Activities) PlanRedrive(ctx context.Context, in PlanRedriveInput) (PlanRedriveResult, error) {
	spec := in.Spec
	if spec == nil {
		return PlanRedriveResult{}, nonRetryable("InvalidSpec", errors.New("plan a re-drive: no spec"))
	}
	if err := checkSpec(spec); err != nil {
		return PlanRedriveResult{}, err
	}
	if err := in.Selection.Validate(); err != nil {
		return PlanRedriveResult{}, nonRetryable("InvalidSelection", err)
	}
	if _, err := in.Overrides.Apply(spec); err != nil {
		return PlanRedriveResult{}, nonRetryable("InvalidSpec", err)
	}
	limit := in.MaxLetters
	if limit <= 0 {
		limit = DefaultRedriveBatch
	}
	defer keepAlive(ctx)()
	if spec.Sink.Type != connector.SinkOSS {
		return PlanRedriveResult{}, nonRetryable("RedriveUnsupported", fmt.Errorf("connector %s: re-drive writes to OSS sinks only; sink.type is %s", spec.Name, spec.Sink.Type))
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return PlanRedriveResult{}, classify(err)
	}
	rs, ok := s.(redriveSink)
	if !ok {
		return PlanRedriveResult{}, nonRetryable("RedriveUnsupported", fmt.Errorf("connector %s: re-drive writes to OSS sinks only; sink.type is %s", spec.Name, spec.Sink.Type))
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return PlanRedriveResult{}, classify(err)
	}
	dlq := spec.Errors.DeadLetterTopic
	done, err := redrivenRanges(ctx, rs, spec)
	if err != nil {
		return PlanRedriveResult{}, classify(err)
	}
	var letters []kafka.Letter
	sizes := map[letterKey]int64{}
	err = kc.ReadLetters(ctx, dlq, func(r *kgo.Record, l kafka.Letter, ok bool) error {
		if ok && l.Connector == spec.Name && l.Topic == spec.Kafka.Topic {
			letters = append(letters, l)
			sizes[letterKey{l.Partition, l.Offset}] = int64(len(r.Key) + len(r.Value))
		}
		return nil
	})
	if err != nil {
		return PlanRedriveResult{}, classify(err)
	}
	res := PlanRedriveResult{DeadLetterTopic: dlq}
	take := PickLetters(letters, done, in.Selection.has)
	for _, l := range letters {
		if in.Selection.has(l) {
			res.Selected++
		}
	}
	var cur *RedrivePlan
	closeRun := func() {
		if cur != nil {
			res.Batches = append(res.Batches, *cur)
			cur = nil
		}
	}
	for _, l := range letters {
		if !take[letterKey{l.Partition, l.Offset}] {
			closeRun()
			continue
		}
		size := sizes[letterKey{l.Partition, l.Offset}]
		if cur != nil && (cur.DeadLetterPartition != l.Partition || cur.OriginPartition != l.OriginPartition || cur.Letters >= int64(limit) ||
			cur.Bytes+size > int64(spec.Batch.MaxBytes)) {
			closeRun()
		}
		if cur == nil {
			cur = &RedrivePlan{DeadLetterPartition: l.Partition, First: l.Offset, OriginPartition: l.OriginPartition}
		}
		cur.End = l.Offset + 1
		cur.Letters++
		cur.Bytes += size
	}
	closeRun()
	res.Done = res.Selected - int64(len(take))
	return res, nil
}

// letterKey is a dead letter's place in the dead-letter topic.
type letterKey struct {
	p int32
	o int64
}

// RedrivenRange is a range of a dead-letter partition that a re-drive
// wrote.
type RedrivenRange struct {
	Partition   int32
	First, End  int64
	OriginTopic string
}

// redrivenRanges are the dead-letter ranges earlier re-drives of the
// connector wrote.
func redrivenRanges(ctx context.Context, rs redriveSink, spec *connector.Spec) ([]RedrivenRange, error) {
	objs, err := rs.RedrivenObjects(ctx, spec.Kafka.Topic)
	if err != nil {
		return nil, err
	}
	var out []RedrivenRange
	for _, o := range objs {
		if o.Connector == spec.Name && o.DeadLetterTopic == spec.Errors.DeadLetterTopic {
			out = append(out, RedrivenRange{Partition: o.DeadLetterPartition, First: o.First, End: o.End})
		}
	}
	return out, nil
}

// PickLetters decides which of a connector's letters (in dead-letter
// order) a re-drive takes: those selected whose record was not re-driven
// at their attempt or a later one (done: the dead-letter ranges earlier
// re-drives wrote), the first letter per record and attempt, and only the
// highest attempt of a record.
func PickLetters(letters []kafka.Letter, done []RedrivenRange, selected func(kafka.Letter) bool) map[letterKey]bool {
	covered := func(l kafka.Letter) bool {
		for _, r := range done {
			if r.Partition == l.Partition && l.Offset >= r.First && l.Offset < r.End {
				return true
			}
		}
		return false
	}
	handled := map[origin]int{} // highest attempt re-driven per record
	for _, l := range letters {
		if covered(l) {
			o := origin{l.OriginPartition, l.OriginOffset}
			handled[o] = max(handled[o], l.Attempt)
		}
	}
	best := map[origin]kafka.Letter{}
	for _, l := range letters {
		o := origin{l.OriginPartition, l.OriginOffset}
		if covered(l) || l.Attempt <= handled[o] || !selected(l) {
			continue
		}
		if cur, ok := best[o]; !ok || l.Attempt > cur.Attempt {
			best[o] = l
		}
	}
	take := make(map[letterKey]bool, len(best))
	for _, l := range best {
		take[letterKey{l.Partition, l.Offset}] = true
	}
	return take
}

// RedriveBatchInput re-drives one planned batch.
type RedriveBatchInput struct {
	Spec      *connector.Spec  `json:"spec"`
	Overrides RedriveOverrides `json:"overrides,omitempty"`
	Batch     RedrivePlan      `json:"batch"`
}

// RedriveBatchResult says what a batch wrote: the records written to the
// destination, and the letters that failed again (back in the dead-letter
// topic with their attempt one higher).
type RedriveBatchResult struct {
	Written     sink.Written           `json:"written"`
	Letters     int64                  `json:"letters"`
	DeadLetters int64                  `json:"deadLetters"`
	Transform   []transform.StepCounts `json:"transform,omitempty"`
}

// RedriveBatch reads the batch's dead letters, rebuilds each one's record
// (key, value, timestamp and headers, at its origin topic, partition and
// offset), runs it through the size limit, the transform chain and the
// sink as WritePartition does — with the re-drive's overrides — and writes
// it into the connector's destination under a name that is a function of
// the batch (see sink.BatchID.Redrive), so a retry or a second re-drive of
// the same letters writes nothing twice. Records that fail again go back to
// the dead-letter topic, attempt one higher, before the sink commits.
func (a *Activities) RedriveBatch(ctx context.Context, in RedriveBatchInput) (RedriveBatchResult, error) {
	spec := in.Spec
	if spec == nil {
		return RedriveBatchResult{}, nonRetryable("InvalidSpec", errors.New("re-drive: no spec"))
	}
	if err := checkSpec(spec); err != nil {
		return RedriveBatchResult{}, err
	}
	if err := a.checkCredentials(spec); err != nil {
		return RedriveBatchResult{}, err
	}
	rspec, err := in.Overrides.Apply(spec)
	if err != nil {
		return RedriveBatchResult{}, nonRetryable("InvalidSpec", err)
	}
	defer keepAlive(ctx)()
	kc, err := a.kafka.For(spec)
	if err != nil {
		return RedriveBatchResult{}, classify(err)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return RedriveBatchResult{}, classify(err)
	}
	rs, ok := s.(redriveSink)
	if !ok {
		return RedriveBatchResult{}, nonRetryable("RedriveUnsupported", fmt.Errorf("connector %s: re-drive writes to OSS sinks only; sink.type is %s", spec.Name, spec.Sink.Type))
	}
	hash := in.Overrides.Hash()
	if hash != "" {
		body, _ := json.Marshal(in.Overrides)
		if err := rs.PutRedriveOverrides(ctx, spec.Kafka.Topic, hash, body); err != nil {
			return RedriveBatchResult{}, classify(err)
		}
	}
	chain, err := a.chain(rspec)
	if err != nil {
		return RedriveBatchResult{}, err
	}
	var run *transform.Run
	if !chain.Empty() {
		if run, err = chain.Begin(ctx); err != nil {
			return RedriveBatchResult{}, fmt.Errorf("begin the transform chain: %w", err)
		}
		defer func() { _ = run.Close(ctx) }()
	}
	// Another re-drive of the connector running at the same time may have
	// planned some of these letters into a range of its own: refuse rather
	// than write them twice. (Run one re-drive per connector at a time;
	// this check narrows, but does not close, the window.)
	done, err := redrivenRanges(ctx, rs, spec)
	if err != nil {
		return RedriveBatchResult{}, classify(err)
	}
	for _, r := range done {
		if r.Partition == in.Batch.DeadLetterPartition && r.First != in.Batch.First && r.First < in.Batch.End && in.Batch.First < r.End {
			return RedriveBatchResult{}, nonRetryable("ConcurrentRedrive", fmt.Errorf("re-drive of dead letters [%d,%d): dead letters [%d,%d) were re-driven meanwhile by another re-drive of the connector; plan again", in.Batch.First, in.Batch.End, r.First, r.End))
		}
	}
	held, err := a.budget.Acquire(ctx, in.Batch.Bytes+in.Batch.Letters)
	if err != nil {
		return RedriveBatchResult{}, err
	}
	defer a.budget.Release(held)
	id := RedriveBatchID(spec, in.Batch, chain.Hash(), hash)
	id.Writer = activity.GetInfo(ctx).WorkflowExecution.ID
	b, err := s.Begin(ctx, id, nil)
	if err != nil {
		return RedriveBatchResult{}, classify(fmt.Errorf("begin %s: %w", id, err))
	}
	var (
		dls []kafka.DeadLetter
		res RedriveBatchResult
	)
	err = kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, in.Batch.DeadLetterPartition, in.Batch.First, in.Batch.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		dl, took, err := RedriveRecord(ctx, rspec, run, b, in.Batch, r)
		if err != nil {
			return false, err
		}
		if took {
			res.Letters++
		}
		if dl != nil {
			dls = append(dls, *dl)
		}
		return true, nil
	})
	if err == nil && len(dls) > 0 {
		// Before the commit: a crash after it loses none.
		err = kc.ProduceDeadLetters(ctx, spec.Errors.DeadLetterTopic, dls, int64(rspec.Errors.MaxRecordBytes))
	}
	if err != nil {
		b.Abort(ctx)
		return RedriveBatchResult{}, classify(err)
	}
	res.DeadLetters = int64(len(dls))
	if res.Letters != in.Batch.Letters {
		b.Abort(ctx)
		return RedriveBatchResult{}, nonRetryable("RedriveMismatch", fmt.Errorf("re-drive %s: the plan counted %d letters of the connector, the dead-letter topic holds %d", id, in.Batch.Letters, res.Letters))
	}
	w, err := b.Commit(ctx)
	if err != nil {
		b.Abort(ctx)
		return RedriveBatchResult{}, classify(fmt.Errorf("commit %s: %w", id, err))
	}
	res.Written = w
	if run != nil {
		res.Transform = run.Counts()
	}
	if res.DeadLetters > 0 {
		activity.GetLogger(ctx).Warn("re-driven records failed again", "batch", id.String(), "count", res.DeadLetters, "topic", spec.Errors.DeadLetterTopic)
	}
	return res, nil
}

// RedriveBatchID is the sink batch of a re-drive batch of spec's connector.
func RedriveBatchID(spec *connector.Spec, p RedrivePlan, transformHash, overrides string) sink.BatchID {
	return sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: p.OriginPartition, First: p.First, End: p.End,
		Transform: transformHash, Redrive: &sink.Redrive{DeadLetterTopic: spec.Errors.DeadLetterTopic, DeadLetterPartition: p.DeadLetterPartition, Overrides: overrides}}
}

// RedriveRecord takes one record of a re-drive batch's dead-letter range
// through the write path (ApplyRecord) with spec, the spec the re-drive runs
// with. Letters of other connectors or topics are passed over (took
// false). A letter that fails again is returned as a dead letter with its
// attempt one higher. verify --deep replays the same function.
func RedriveRecord(ctx context.Context, spec *connector.Spec, run *transform.Run, b sink.Batch, p RedrivePlan, r *kgo.Record) (dl *kafka.DeadLetter, took bool, err error) {
	l, ok := kafka.ParseLetter(r)
	if !ok || l.Connector != spec.Name || l.Topic != spec.Kafka.Topic {
		return nil, false, nil
	}
	if l.OriginPartition != p.OriginPartition {
		return nil, false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("dead letter %d of %s[%d] comes from partition %d, not %d as its batch [%d,%d)",
			r.Offset, r.Topic, r.Partition, l.OriginPartition, p.OriginPartition, p.First, p.End), "RedriveMismatch", nil)
	}
	dl, err = ApplyRecord(ctx, spec, run, b, kafka.OriginalRecord(r, l))
	if err != nil {
		return nil, true, fmt.Errorf("re-drive dead letter %d of %s[%d]: %w", r.Offset, r.Topic, r.Partition, err)
	}
	if dl != nil {
		dl.Attempt = l.Attempt + 1
	}
	return dl, true, nil
}
