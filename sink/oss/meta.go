package oss

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/dumpflow/dumpflow/sink"
)

// Meta is the content of a partition's meta object: the last range
// recorded (written, routed or declared lost) and who wrote it. It is
// enough to resume the partition after the workflow is lost, and it lets a
// writer see another writer of the same partition.
type Meta struct {
	Connector string `json:"connector"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"` // first offset ever written
	First     int64  `json:"first"` // last range [First, End)
	End       int64  `json:"end"`
	Object    string `json:"object"`
	Records   int64  `json:"records"`
	// CRC64 is the CRC-64 of the last object's body (0 for a marker).
	CRC64 uint64 `json:"crc64,omitempty"`
	// Writer is the writer (sink.BatchID.Writer) of the last range; empty
	// in meta objects written by the first build.
	Writer  string    `json:"writer,omitempty"`
	Updated time.Time `json:"updated"`
	// Epoch is the partition's epoch (sink.BatchID.Epoch): how many times
	// an operator rewound it. Objects of earlier epochs from First on are
	// superseded: a resumed connector does not follow them.
	Epoch int `json:"epoch,omitempty"`
}

// MetaKey is the key of partition's meta object: seed 000's
// .oss_meta_file_partition_<p> in the path's static folder when that folder
// names the topic, else .oss_meta_file_<topic>_partition_<p>, so connectors
// of different topics never share a meta object whatever the template.
func (s *Sink) MetaKey(topic string, partition int32) string {
	if s.topicInRoot() {
		return s.root(topic, partition) + fmt.Sprintf(".oss_meta_file_partition_%d", partition)
	}
	return s.root(topic, partition) + fmt.Sprintf(".oss_meta_file_%s_partition_%d", topic, partition)
}

// legacyMetaKey is where the first build put the meta object.
func (s *Sink) legacyMetaKey(topic string, partition int32) string {
	return s.root(topic, partition) + fmt.Sprintf(".oss_meta_file_partition_%d", partition)
}

func (s *Sink) writeMeta(ctx context.Context, id sink.BatchID, object string, records int64, crc uint64) error {
	m := Meta{Connector: id.Connector, Topic: id.Topic, Partition: id.Partition, Start: id.Start,
		First: id.First, End: id.End, Object: object, Records: records, CRC64: crc, Writer: id.Writer, Updated: time.Now().UTC(), Epoch: id.Epoch}
	data, _ := json.MarshalIndent(m, "", "  ")
	key := s.MetaKey(id.Topic, id.Partition)
	if err := s.bucket.PutObject(key, bytes.NewReader(data), oss.ContentType("application/json"), oss.WithContext(ctx)); err != nil {
		return classify(fmt.Errorf("write meta %s: %w", key, err))
	}
	return nil
}

// ReadMeta returns partition's meta object, or ok=false if there is none.
func (s *Sink) ReadMeta(ctx context.Context, topic string, partition int32) (m Meta, ok bool, err error) {
	m, ok, err = s.readMetaAt(ctx, s.MetaKey(topic, partition))
	if err != nil || ok || s.topicInRoot() {
		return m, ok, err
	}
	m, ok, err = s.readMetaAt(ctx, s.legacyMetaKey(topic, partition))
	if ok && m.Topic != topic {
		return Meta{}, false, nil // another topic's, from the first build
	}
	return m, ok, err
}

func (s *Sink) readMetaAt(ctx context.Context, key string) (m Meta, ok bool, err error) {
	rc, err := s.bucket.GetObject(key, oss.WithContext(ctx))
	if isCode(err, "NoSuchKey") {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, false, classify(fmt.Errorf("read meta %s: %w", key, err))
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return Meta{}, false, fmt.Errorf("read meta %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, false, sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s is not dumpflow meta JSON: %w", key, err))
	}
	return m, true, nil
}

// checkWriter refuses batch id when the partition's meta object shows that
// ranges at or past id.First were recorded by someone else, or by this
// writer for a different range. It accepts a batch that continues the
// recorded ranges (id.First at or past the meta's end: the normal case, a
// writer taking over after the previous connector was deleted, or a
// connector started ahead), and the retry of the recorded range itself.
func (s *Sink) checkWriter(ctx context.Context, id sink.BatchID) error {
	m, ok, err := s.ReadMeta(ctx, id.Topic, id.Partition)
	if err != nil || !ok {
		return err
	}
	key := s.MetaKey(id.Topic, id.Partition)
	switch {
	case m.Connector != id.Connector:
		return sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s belongs to connector %q, not %q: give each connector its own path", key, m.Connector, id.Connector))
	case id.Epoch < m.Epoch:
		return sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s says partition %d was rewound by an operator (epoch %d, at offset %d); batch %s of epoch %d comes from before the rewind", key, id.Partition, m.Epoch, m.First, id, id.Epoch))
	case m.End <= id.First, m.First == id.First && m.End == id.End:
		return nil
	case m.Writer != id.Writer:
		return sink.Permanent(sink.ErrConcurrentWriter, fmt.Errorf("partition %d of connector %s is being written by another writer (%s, up to offset %d, %s); this writer (%s) is at offset %d: one connector name must have one writer",
			id.Partition, id.Connector, orUnknown(m.Writer), m.End, m.Updated.Format(time.RFC3339), orUnknown(id.Writer), id.First))
	default:
		return sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s records [%d,%d), past this batch %s: the range was recorded already", key, m.First, m.End, id))
	}
}

func orUnknown(w string) string {
	if w == "" {
		return "writer unknown"
	}
	return w
}

// Resume implements sink.Resumer: it reads the partition's meta object, then
// lists the partition's objects past the meta's end and follows the chain of
// ranges from there, so a range whose object was written but whose meta
// update was lost (a crash between the two) is not written again. The last
// data object of that chain is returned as the pending range: the connector
// writes it again, which confirms it against Kafka (record count and
// CRC-64) without rewriting it, or parks on an ObjectConflict.
func (s *Sink) Resume(ctx context.Context, connectorName, topic string, partition int32, _ string) (sink.ResumePoint, bool, error) {
	m, ok, err := s.ReadMeta(ctx, topic, partition)
	if err != nil {
		return sink.ResumePoint{}, false, err
	}
	if ok && m.Connector != connectorName {
		return sink.ResumePoint{}, false, sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s belongs to connector %q, not %q: give each connector its own path", s.MetaKey(topic, partition), m.Connector, connectorName))
	}
	listed, err := s.list(ctx, topic, func(p int32, first int64) bool { return p == partition && (!ok || first >= m.End) })
	if err != nil {
		return sink.ResumePoint{}, false, err
	}
	byFirst := map[int64]Object{}
	for _, o := range listed.Objects {
		// A rewind marker is no range of the chain; objects of an epoch
		// before the meta's were superseded by the rewind.
		if o.Connector != connectorName || o.Kind == sink.MarkRewind || ok && o.Epoch < m.Epoch {
			continue
		}
		if cur, dup := byFirst[o.First]; !dup || cur.Epoch < o.Epoch || cur.Epoch == o.Epoch && cur.End < o.End {
			byFirst[o.First] = o
		}
	}
	var rp sink.ResumePoint
	switch {
	case ok:
		rp = sink.ResumePoint{Start: m.Start, Next: m.End, Epoch: m.Epoch}
	case len(byFirst) == 0:
		return sink.ResumePoint{}, false, nil
	default:
		// No meta object (lost, or never written): the chain starts at the
		// earliest object.
		first := true
		for f, o := range byFirst {
			if first || f < rp.Next {
				rp, first = sink.ResumePoint{Start: o.Start, Next: f}, false
			}
		}
		for _, o := range byFirst {
			rp.Epoch = max(rp.Epoch, o.Epoch)
		}
	}
	var last *Object
	for {
		o, found := byFirst[rp.Next]
		if !found || o.End <= rp.Next {
			break
		}
		rp.Next = o.End
		last = &o
	}
	// The last data object followed is the one most likely written just
	// before the workflow was lost, without its meta update: nothing but its
	// own metadata vouches for it, and a truncated object can carry
	// consistent metadata. It comes back as the pending range, so the write
	// path reads its records from Kafka and counts it as written only if its
	// record count and CRC-64 match (sameRange); otherwise the partition
	// parks on an ObjectConflict instead of skipping the range.
	if last != nil && last.Kind == kindData {
		rp.Next = last.First
		rp.Pending = &sink.Pending{First: last.First, End: last.End, Bytes: last.Size}
	}
	return rp, true, nil
}

// Held implements sink.Holder: what the connector's objects of partition
// with a first offset in [first, end) hold (data objects only; marker
// objects hold no records). It lists the topic's objects, so it is for
// rare paths: a write's retry that resumes past batches an earlier attempt
// committed reports them with it.
func (s *Sink) Held(ctx context.Context, connectorName, topic string, partition int32, first, end int64) (sink.Written, error) {
	listed, err := s.list(ctx, topic, func(p int32, f int64) bool { return p == partition && f >= first && f < end })
	if err != nil {
		return sink.Written{}, err
	}
	var w sink.Written
	for _, o := range listed.Objects {
		if o.Connector != connectorName || o.Kind != kindData {
			continue
		}
		w.Objects = append(w.Objects, o.Key)
		w.Records += o.Records
		w.Bytes += o.Size
	}
	slices.Sort(w.Objects)
	return w, nil
}

// Mark implements sink.Marker with a marker object: an empty object named
// like the range's data object, whose metadata records the range and its
// kind (gap or routed). A routed range's marker goes where its data object
// would be, with forbid-overwrite: if the data object is already there (the
// write succeeded although its activity failed), Mark reports written and
// records nothing. The meta object then moves past the range.
func (s *Sink) Mark(ctx context.Context, m sink.Mark) (bool, error) {
	id := m.ID
	if m.Kind == sink.MarkRewind {
		return false, s.rewind(ctx, m)
	}
	if err := s.checkWriter(ctx, id); err != nil {
		return false, err
	}
	var folder string
	switch m.Kind {
	case sink.MarkRouted:
		folder = s.folder(id.Topic, id.Partition, m.FirstTimestamp)
		if s.routesByRecord() {
			written, err := s.Written(ctx, id, m.FirstTimestamp)
			if err != nil || written {
				return written, err
			}
		}
	case sink.MarkGap, sink.MarkSkipped:
		folder = s.root(id.Topic, id.Partition)
	default:
		return false, fmt.Errorf("mark %s: unknown kind %q", id, m.Kind)
	}
	key, err := s.mark(ctx, m, folder)
	return key == "", err
}

// rewind records an operator's backward jump: [m.ID.First, m.ID.End) is
// written again from First in epoch m.ID.Epoch, which must be past the meta
// object's. The marker object (kind rewind) lists the range for verify; the
// meta object moves back to First, so the next batch, of the new epoch,
// passes the writer check and a resumed connector follows the new epoch's
// objects only.
func (s *Sink) rewind(ctx context.Context, m sink.Mark) error {
	id := m.ID
	meta, ok, err := s.ReadMeta(ctx, id.Topic, id.Partition)
	if err != nil {
		return err
	}
	key := s.MetaKey(id.Topic, id.Partition)
	switch {
	case ok && meta.Connector != id.Connector:
		return sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s belongs to connector %q, not %q: give each connector its own path", key, meta.Connector, id.Connector))
	case ok && id.Epoch <= meta.Epoch && !(meta.Epoch == id.Epoch && meta.First == id.First && meta.End == id.First):
		return sink.Permanent("ObjectConflict", fmt.Errorf("rewind of partition %d to offset %d: its epoch %d is not past the meta object %s's epoch %d", id.Partition, id.First, id.Epoch, key, meta.Epoch))
	}
	mk := rewindName(id)
	obj := objectMeta{id: id, kind: sink.MarkRewind, note: m.Reason, parts: 1}
	err = s.bucket.PutObject(s.root(id.Topic, id.Partition)+mk, bytes.NewReader(nil), append(obj.options(), oss.ForbidOverWrite(true), oss.WithContext(ctx))...)
	if err != nil && !isCode(err, "FileAlreadyExists") { // a retry finds its own marker
		return classify(fmt.Errorf("write rewind marker %s: %w", mk, err))
	}
	back := id
	back.End = id.First
	return s.writeMeta(ctx, back, s.root(id.Topic, id.Partition)+mk, 0, 0)
}

// routesByRecord reports whether the path template sends a range's records
// to folders of their own: then a range's objects are not at the marker's
// key, and Mark finds them by listing.
func (s *Sink) routesByRecord() bool { return s.byRec }

// Written implements sink.RouteChecker: it reports whether the range's
// objects are all in the bucket (its write succeeded although the activity
// failed), recording it in the meta object then; a partial write of a range
// routed by record is deleted (see settleParts).
func (s *Sink) Written(ctx context.Context, id sink.BatchID, firstTS time.Time) (bool, error) {
	if s.routesByRecord() {
		return s.settleParts(ctx, id)
	}
	key := s.folder(id.Topic, id.Partition, firstTS) + ObjectName(id) + s.format.Extension()
	h, err := s.bucket.GetObjectDetailedMeta(key, oss.WithContext(ctx))
	if isCode(err, "NoSuchKey") || isNotFoundStatus(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(fmt.Errorf("head %s: %w", key, err))
	}
	got, perr := parseObjectMeta(key, h)
	if perr != nil || got.kind != kindData || got.id.First != id.First || got.id.End != id.End || got.id.Connector != id.Connector {
		return false, nil // not this range's data: the marker's forbid-overwrite decides
	}
	return true, s.writeMeta(ctx, got.id, key, got.records, got.crc)
}

func isNotFoundStatus(err error) bool {
	se, ok := serviceError(err)
	return ok && se.StatusCode == 404
}

// settleParts looks, before a range is routed, for the objects a failed
// write of it may have left in its folders. All of its parts there: the
// range is written (the write succeeded although its activity failed).
// Some of them: they are this connector's partial write of a range that is
// about to be routed whole, and are deleted first, so no record is both in
// the bucket and in the error-data topic.
func (s *Sink) settleParts(ctx context.Context, id sink.BatchID) (written bool, err error) {
	name := ObjectName(id)
	listed, err := s.list(ctx, id.Topic, func(p int32, first int64) bool { return p == id.Partition && first == id.First })
	if err != nil {
		return false, err
	}
	var parts []Object
	n := 0
	for _, o := range listed.Objects {
		if o.Connector != id.Connector || o.Kind != kindData || !strings.Contains(o.Key, name) {
			continue
		}
		parts = append(parts, o)
		n = max(n, o.Parts)
	}
	if len(parts) == 0 {
		return false, nil
	}
	if len(parts) == n && parts[0].End == id.End {
		var records int64
		for _, o := range parts {
			records += o.Records
		}
		return true, s.writeMeta(ctx, id, parts[0].Key, records, parts[0].CRC64)
	}
	for _, o := range parts {
		if err := s.bucket.DeleteObject(o.Key, oss.WithContext(ctx)); err != nil {
			return false, classify(fmt.Errorf("delete %s, a part of [%d,%d) which is routed whole: %w", o.Key, id.First, id.End, err))
		}
	}
	return false, nil
}

// mark puts the marker object of m in folder and moves the meta object
// past its range. It returns the marker's key, or "" when the range's data
// object is there instead (see Mark).
func (s *Sink) mark(ctx context.Context, m sink.Mark, folder string) (string, error) {
	id := m.ID
	key := folder + ObjectName(id)
	obj := objectMeta{id: id, kind: m.Kind, records: m.Records, note: m.Reason, parts: 1}
	err := s.bucket.PutObject(key, bytes.NewReader(nil), append(obj.options(), oss.ForbidOverWrite(true), oss.WithContext(ctx))...)
	if isCode(err, "FileAlreadyExists") {
		h, herr := s.bucket.GetObjectDetailedMeta(key, oss.WithContext(ctx))
		if herr != nil {
			return "", classify(fmt.Errorf("head existing object %s: %w", key, herr))
		}
		got, perr := parseObjectMeta(key, h)
		switch {
		case perr != nil:
			return "", sink.Permanent("ObjectConflict", fmt.Errorf("object %s exists but is not a dumpflow object: %v", key, perr))
		case got.kind == kindData && got.id.First == id.First:
			// The range's data is there: nothing to route.
			if err := s.writeMeta(ctx, got.id, key, got.records, got.crc); err != nil {
				return "", err
			}
			return "", nil
		case got.differs(obj) != "":
			return "", sink.Permanent("ObjectConflict", fmt.Errorf("object %s exists and is %s, not %s", key, got, obj))
		}
		err = nil
	}
	if err != nil {
		return "", classify(fmt.Errorf("write %s marker %s: %w", m.Kind, key, err))
	}
	return key, s.writeMeta(ctx, id, key, 0, 0)
}

// Object kinds in the x-oss-meta-dumpflow-kind metadata.
const (
	kindData = "data"
	// kindFiltered marks a range whose every record the transform chain
	// dropped: its offsets are covered, no object holds them.
	kindFiltered = "filtered"
)

// User metadata keys on data and marker objects (the SDK adds x-oss-meta-).
const (
	metaConnector = "Dumpflow-Connector"
	metaTopic     = "Dumpflow-Topic"
	metaPartition = "Dumpflow-Partition"
	metaFirst     = "Dumpflow-First"
	metaEnd       = "Dumpflow-End"
	metaStart     = "Dumpflow-Start"
	metaRecords   = "Dumpflow-Records"
	metaCRC       = "Dumpflow-Crc64"
	metaWriter    = "Dumpflow-Writer"
	metaKind      = "Dumpflow-Kind"
	metaNote      = "Dumpflow-Note"
	metaPart      = "Dumpflow-Part" // "<i>/<n>": the i-th of the range's n objects (routed to n folders)
	metaTransform = "Dumpflow-Transform"
	metaFormat    = "Dumpflow-Format"
	metaEpoch     = "Dumpflow-Epoch"
	// Re-drive objects (kind redriven): where their dead letters are, and
	// the hash of the spec changes the re-drive ran with.
	metaDLTopic     = "Dumpflow-Dlq-Topic"
	metaDLPartition = "Dumpflow-Dlq-Partition"
	metaOverrides   = "Dumpflow-Overrides"
)

// hasBody reports whether objects of kind hold records with a CRC-64.
func hasBody(kind string) bool { return kind == kindData || kind == sink.KindRedriven }

// objectMeta is what a data or marker object's metadata says.
type objectMeta struct {
	id      sink.BatchID
	kind    string
	records int64
	crc     uint64
	note    string
	// part is the object's index among the range's parts objects (one
	// per folder the records were routed to).
	part, parts int
	format      string
}

func (o objectMeta) options() []oss.Option {
	opts := []oss.Option{
		oss.Meta(metaConnector, o.id.Connector),
		oss.Meta(metaTopic, o.id.Topic),
		oss.Meta(metaPartition, strconv.Itoa(int(o.id.Partition))),
		oss.Meta(metaFirst, strconv.FormatInt(o.id.First, 10)),
		oss.Meta(metaEnd, strconv.FormatInt(o.id.End, 10)),
		oss.Meta(metaStart, strconv.FormatInt(o.id.Start, 10)),
		oss.Meta(metaRecords, strconv.FormatInt(o.records, 10)),
		oss.Meta(metaKind, o.kind),
	}
	if rd := o.id.Redrive; rd != nil {
		opts = append(opts, oss.Meta(metaDLTopic, rd.DeadLetterTopic), oss.Meta(metaDLPartition, strconv.Itoa(int(rd.DeadLetterPartition))))
		if rd.Overrides != "" {
			opts = append(opts, oss.Meta(metaOverrides, rd.Overrides))
		}
	}
	if hasBody(o.kind) {
		opts = append(opts, oss.Meta(metaCRC, strconv.FormatUint(o.crc, 10)))
		if o.parts > 1 {
			opts = append(opts, oss.Meta(metaPart, fmt.Sprintf("%d/%d", o.part, o.parts)))
		}
	}
	if o.id.Transform != "" {
		opts = append(opts, oss.Meta(metaTransform, o.id.Transform))
	}
	if o.format != "" {
		opts = append(opts, oss.Meta(metaFormat, o.format))
	}
	if o.id.Writer != "" {
		opts = append(opts, oss.Meta(metaWriter, o.id.Writer))
	}
	if o.id.Epoch > 0 {
		opts = append(opts, oss.Meta(metaEpoch, strconv.Itoa(o.id.Epoch)))
	}
	if o.note != "" {
		opts = append(opts, oss.Meta(metaNote, asciiHeader(o.note, 256)))
	}
	return opts
}

// asciiHeader makes s safe as an HTTP header value of at most n bytes.
func asciiHeader(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

func (o objectMeta) String() string {
	s := fmt.Sprintf("%s [%d,%d) of connector %q", o.kind, o.id.First, o.id.End, o.id.Connector)
	if hasBody(o.kind) {
		s += fmt.Sprintf(", %d records, crc64 %d", o.records, o.crc)
	}
	return s
}

// differs names the first field in which o and want disagree, or "".
// Writer is not compared: a writer that took over a partition retries the
// range the previous writer recorded, with the same content.
func (o objectMeta) differs(want objectMeta) string {
	switch {
	case o.id.Connector != want.id.Connector:
		return "connector"
	case o.kind != want.kind:
		return "kind"
	case o.id.First != want.id.First || o.id.End != want.id.End:
		return "range"
	case o.part != want.part || o.parts != want.parts:
		return "part"
	case hasBody(o.kind) && o.records != want.records:
		return "record count"
	case hasBody(o.kind) && o.crc != want.crc:
		return "CRC-64"
	}
	return ""
}

var errNoMeta = errors.New("no dumpflow metadata")

// parseObjectMeta reads an object's dumpflow metadata from its headers.
// Objects of the first build have no kind, topic or CRC: they are data
// objects whose CRC is the one OSS computed.
func parseObjectMeta(key string, h http.Header) (objectMeta, error) {
	get := func(k string) string { return h.Get(oss.HTTPHeaderOssMetaPrefix + k) }
	if get(metaConnector) == "" {
		return objectMeta{}, errNoMeta
	}
	var o objectMeta
	var err error
	num := func(k string) int64 {
		v, e := strconv.ParseInt(get(k), 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("metadata %s=%q is not a number", k, get(k))
		}
		return v
	}
	o.id.Connector = get(metaConnector)
	o.id.Topic = get(metaTopic)
	o.id.First, o.id.End = num(metaFirst), num(metaEnd)
	o.id.Start = num(metaStart)
	o.records = num(metaRecords)
	o.id.Writer = get(metaWriter)
	o.kind = get(metaKind)
	o.note = get(metaNote)
	o.id.Transform = get(metaTransform)
	o.format = get(metaFormat)
	if e := get(metaEpoch); e != "" {
		o.id.Epoch = int(num(metaEpoch))
	}
	o.parts = 1
	if pp := get(metaPart); pp != "" {
		if _, e := fmt.Sscanf(pp, "%d/%d", &o.part, &o.parts); e != nil && err == nil {
			err = fmt.Errorf("metadata %s=%q is not <part>/<parts>", metaPart, pp)
		}
	}
	if o.kind == "" {
		o.kind = kindData
	}
	if p := get(metaPartition); p != "" {
		n, e := strconv.ParseInt(p, 10, 32)
		if e != nil && err == nil {
			err = fmt.Errorf("metadata %s=%q is not a partition", metaPartition, p)
		}
		o.id.Partition = int32(n)
	}
	crc := get(metaCRC)
	if crc == "" {
		crc = h.Get(oss.HTTPHeaderOssCRC64)
	}
	if t := get(metaDLTopic); t != "" {
		n, e := strconv.ParseInt(get(metaDLPartition), 10, 32)
		if e != nil && err == nil {
			err = fmt.Errorf("metadata %s=%q is not a partition", metaDLPartition, get(metaDLPartition))
		}
		o.id.Redrive = &sink.Redrive{DeadLetterTopic: t, DeadLetterPartition: int32(n), Overrides: get(metaOverrides)}
	}
	if hasBody(o.kind) && (o.kind == kindData || o.records > 0) {
		v, e := strconv.ParseUint(crc, 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("metadata %s=%q is not a CRC-64", metaCRC, crc)
		}
		o.crc = v
	}
	if err != nil {
		return objectMeta{}, fmt.Errorf("object %s: %w", key, err)
	}
	return o, nil
}
