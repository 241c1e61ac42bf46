package oss

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"golang.org/x/sync/errgroup"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// Sink writes batches to one OSS bucket. It is safe for concurrent use.
type Sink struct {
	spec   connector.OSSSpec
	format format.Spec
	loc    *time.Location
	bucket *oss.Bucket
	// upload is the bucket through a client that leaves CRC-64 to the
	// sink: batch bodies are checked against the CRC-64 their buffer
	// computed as it was written (checkCRC), in one pass instead of the
	// SDK's second one.
	upload *oss.Bucket
	tmpl   []pathToken // the path template, parsed
	byRec  bool        // the template has record variables
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Marker  = (*Sink)(nil)
	_ sink.Resumer = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New builds the sink for spec.Sink.OSS with resolved credentials. It does
// no I/O; call Check to verify the bucket is reachable.
func New(spec *connector.Spec, creds connector.Credentials) (*Sink, error) {
	o := spec.Sink.OSS
	if o == nil {
		return nil, errors.New("oss sink: spec has no sink.oss")
	}
	loc, err := connector.ParseTimeZone(o.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("sink.oss.timeZone: %w", err)
	}
	opts := []oss.ClientOption{oss.Timeout(10, 120)}
	if o.PathStyle {
		opts = append(opts, oss.ForcePathStyle(true))
	}
	if creds.SecurityToken != "" {
		opts = append(opts, oss.SecurityToken(creds.SecurityToken))
	}
	cl, err := oss.New(o.Endpoint, creds.AccessKeyID, creds.AccessKeySecret, opts...)
	if err != nil {
		return nil, fmt.Errorf("oss client for %s: %w", o.Endpoint, err)
	}
	b, err := cl.Bucket(o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("oss bucket %q: %w", o.Bucket, err)
	}
	ucl, err := oss.New(o.Endpoint, creds.AccessKeyID, creds.AccessKeySecret, append(opts, oss.EnableCRC(false))...)
	if err != nil {
		return nil, fmt.Errorf("oss client for %s: %w", o.Endpoint, err)
	}
	ub, err := ucl.Bucket(o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("oss bucket %q: %w", o.Bucket, err)
	}
	fs := format.Spec{}
	if o.Format != nil {
		fs = *o.Format
	}
	fs.Default()
	sk := &Sink{spec: *o, format: fs, loc: loc, bucket: b, upload: ub, tmpl: parseTemplate(o.Path)}
	for _, tok := range sk.tmpl {
		sk.byRec = sk.byRec || isRecordVar(tok.v)
	}
	return sk, nil
}

// Close releases nothing: the SDK's HTTP client is shared.
func (s *Sink) Close() error { return nil }

// Check verifies the bucket exists and the credentials can list it.
func (s *Sink) Check(ctx context.Context) error {
	_, err := s.bucket.ListObjectsV2(oss.MaxKeys(1), oss.WithContext(ctx))
	if err != nil {
		return classify(fmt.Errorf("check bucket %q at %s: %w", s.spec.Bucket, s.spec.Endpoint, err))
	}
	return nil
}

// Begin starts a batch. Its bodies are held in memory until Commit (the
// caller bounds that with a sink.Budget).
func (s *Sink) Begin(_ context.Context, id sink.BatchID, _ *sink.Prepared) (sink.Batch, error) {
	return &batch{s: s, id: id, parts: map[string]*part{}}, nil
}

// batch is one range's records, encoded per folder: a path template that
// uses record fields ({key}, {route}, {value.x}, {header.h}) can send a
// batch's records to several folders, one object each.
type batch struct {
	s       *Sink
	id      sink.BatchID
	firstTS time.Time
	started bool
	parts   map[string]*part // by folder
	order   []*part          // in the order their first record came
	single  *part            // the one part, when the folder does not depend on records
}

// part is the object of one folder.
type part struct {
	folder  string
	buf     buffer
	enc     format.Encoder
	records int64
}

// Cut implements sink.Cutter.
func (b *batch) Cut(end int64) { b.id.End = end }

func (b *batch) Add(_ context.Context, r *transform.Record) error {
	if !b.started {
		b.firstTS, b.started = r.Timestamp, true
	}
	if b.single != nil {
		// A template without record variables: one folder for the batch.
		return b.single.write(r)
	}
	folder, err := b.s.folderOf(r, b.firstTS)
	if err != nil {
		return sink.Reject("route", err)
	}
	p := b.parts[folder]
	if p == nil {
		p = &part{folder: folder}
		if p.enc, err = format.New(b.s.format, &p.buf); err != nil {
			return sink.Permanent("InvalidSpec", fmt.Errorf("sink.oss.format: %w", err))
		}
		b.parts[folder] = p
		b.order = append(b.order, p)
		if !b.s.routesByRecord() {
			b.single = p
		}
	}
	return p.write(r)
}

// write encodes r into the part's body.
func (p *part) write(r *transform.Record) error {
	if err := p.enc.Write(r); err != nil {
		var re *format.RejectError
		if errors.As(err, &re) {
			return sink.Reject(re.Stage, re)
		}
		return err
	}
	p.records++
	return nil
}

func (b *batch) Abort(context.Context) {
	for _, p := range b.order {
		p.buf.release()
	}
}

// Commit writes the batch's objects, one per folder, then the partition's
// meta object:
//
//  1. The meta object is read: a batch that would overlap ranges another
//     writer recorded is refused (ConcurrentWriter).
//  2. Each object is put with x-oss-forbid-overwrite, its range, part
//     number, record count, CRC-64, transform hash and format in user
//     metadata. Its name depends on the range's first offset only, so two
//     writers of one range collide on one key.
//  3. An object already at a key counts as written only if it is this very
//     part: same connector, range, part, record count and CRC-64 (a retry of
//     this batch). A truncated or foreign object is an ObjectConflict.
//  4. The meta object moves to the batch's end.
//
// A batch the transform chain filtered whole writes an empty marker object
// of kind filtered instead, so its offsets stay accounted for.
func (b *batch) Commit(ctx context.Context) (sink.Written, error) {
	if b.id.Redrive != nil {
		return b.commitRedrive(ctx)
	}
	defer b.Abort(ctx)
	id := b.id
	s := b.s
	if err := s.checkWriter(ctx, id); err != nil {
		return sink.Written{}, err
	}
	if len(b.order) == 0 {
		key, err := s.mark(ctx, sink.Mark{ID: id, Kind: kindFiltered, At: time.Now().UTC()}, s.root(id.Topic, id.Partition))
		if err != nil {
			return sink.Written{}, err
		}
		return sink.Written{Objects: []string{key}}, nil
	}
	w, err := b.putParts(ctx, ObjectName(id), kindData)
	if err != nil {
		return sink.Written{}, err
	}
	first := b.order[0]
	if err := s.writeMeta(ctx, id, w.Objects[0], w.Records, first.buf.crc); err != nil {
		return sink.Written{}, err
	}
	return w, nil
}

// putParts encodes and uploads each of the batch's parts as the object
// name (plus the format's extension) in its folder, with kind in its
// metadata. An object already there counts only if it holds this very part
// (sameRange).
func (b *batch) putParts(ctx context.Context, name, kind string) (sink.Written, error) {
	id, s := b.id, b.s
	w := sink.Written{Objects: make([]string, 0, len(b.order))}
	for i, p := range b.order {
		if err := p.enc.Close(); err != nil {
			return sink.Written{}, fmt.Errorf("encode %s: %w", id, err)
		}
		key := p.folder + name + s.format.Extension()
		obj := objectMeta{id: id, kind: kind, records: p.records, crc: p.buf.crc, part: i, parts: len(b.order), format: s.format.Name()}
		opts := append(obj.options(), oss.ContentType(p.enc.ContentType()))
		size := p.buf.Len()
		var err error
		if size > int64(s.spec.PartSize) {
			err = s.putMultipart(ctx, key, &p.buf, opts)
		} else {
			var h http.Header
			err = s.upload.PutObject(key, p.buf.reader(0, size), append(opts, oss.ForbidOverWrite(true), oss.WithContext(ctx), oss.GetResponseHeader(&h))...)
			if err == nil {
				err = s.checkCRC(ctx, key, h, p.buf.crc)
			}
		}
		if isCode(err, "FileAlreadyExists") {
			err = s.sameRange(ctx, key, obj)
		}
		if err != nil {
			return sink.Written{}, classify(fmt.Errorf("write %s: %w", key, err))
		}
		w.Objects = append(w.Objects, key)
		w.Records += p.records
		w.Bytes += size
	}
	return w, nil
}

// putMultipart uploads the body in parts of PartSize, three at a time. An
// object already at key is reported as FileAlreadyExists.
func (s *Sink) putMultipart(ctx context.Context, key string, body *buffer, opts []oss.Option) error {
	if ok, err := s.bucket.IsObjectExist(key, oss.WithContext(ctx)); err != nil {
		return err
	} else if ok {
		return &oss.ServiceError{Code: "FileAlreadyExists", StatusCode: http.StatusConflict}
	}
	imur, err := s.upload.InitiateMultipartUpload(key, append(opts, oss.WithContext(ctx))...)
	if err != nil {
		return fmt.Errorf("initiate multipart: %w", err)
	}
	partSize := int64(s.spec.PartSize)
	size := body.Len()
	n := (size + partSize - 1) / partSize
	parts := make([]oss.UploadPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for i := int64(0); i < n; i++ {
		off := i * partSize
		chunk := body.reader(off, min(size, off+partSize)-off)
		g.Go(func() error {
			p, err := s.upload.UploadPart(imur, chunk, int64(chunk.Len()), int(i+1), oss.WithContext(gctx))
			if err != nil {
				return fmt.Errorf("upload part %d of %d: %w", i+1, n, err)
			}
			parts[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = s.upload.AbortMultipartUpload(imur)
		return err
	}
	var h http.Header
	if _, err := s.upload.CompleteMultipartUpload(imur, parts, oss.ForbidOverWrite(true), oss.WithContext(ctx), oss.GetResponseHeader(&h)); err != nil {
		_ = s.upload.AbortMultipartUpload(imur)
		return fmt.Errorf("complete multipart: %w", err)
	}
	return s.checkCRC(ctx, key, h, body.crc)
}

// checkCRC compares the CRC-64 the server computed of the object it stored
// at key (x-oss-hash-crc64ecma, in h) with want, the CRC-64 of the body the
// sink sent: the end-to-end check the SDK's CRC option makes, without its
// second pass over the body. An object that differs was damaged on its way:
// it is deleted, so the batch's retry writes it again. A server that
// returns no CRC-64 is not checked (as the SDK does).
func (s *Sink) checkCRC(ctx context.Context, key string, h http.Header, want uint64) error {
	v := h.Get(oss.HTTPHeaderOssCRC64)
	if v == "" {
		return nil
	}
	got, err := strconv.ParseUint(v, 10, 64)
	if err == nil && got == want {
		return nil
	}
	derr := s.upload.DeleteObject(key, oss.WithContext(ctx))
	msg := fmt.Sprintf("CRC-64 of %s: the server stored %s, the sink sent %d (request %s)", key, v, want, h.Get(oss.HTTPHeaderOssRequestID))
	if derr != nil {
		return fmt.Errorf("%s; deleting the damaged object failed too: %w", msg, derr)
	}
	return errors.New(msg + "; the damaged object was deleted and the batch is written again")
}

// sameRange accepts an existing object at key only if it is the object
// want describes: that is the retry of a batch that was already written.
func (s *Sink) sameRange(ctx context.Context, key string, want objectMeta) error {
	h, err := s.bucket.GetObjectDetailedMeta(key, oss.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("head existing object: %w", err)
	}
	got, perr := parseObjectMeta(key, h)
	if perr != nil {
		return sink.Permanent("ObjectConflict", fmt.Errorf("object %s exists but is not a dumpflow object (%v); want %s: another writer uses this path", key, perr, want))
	}
	if diff := got.differs(want); diff != "" {
		typ := "ObjectConflict"
		if got.id.Writer != want.id.Writer && got.id.Writer != "" {
			typ = sink.ErrConcurrentWriter
		}
		return sink.Permanent(typ, fmt.Errorf("object %s exists and is %s, not %s (%s): another writer wrote this range, or the object was changed", key, got, want, diff))
	}
	return nil
}

// ObjectName is a data object's name, without its folder:
// partition_<p>_offset_<first>_<8 hex chars of SHA-256(connector, topic,
// partition, first)>. It depends on where the range starts and not where
// it ends, so a key can hold only one range starting at that offset:
// forbid-overwrite then makes two writers of one partition collide instead
// of writing overlapping objects. Legacy batches (BatchID.LegacyNames) hash
// the end too, as the first build did.
func ObjectName(id sink.BatchID) string {
	var h [32]byte
	if id.LegacyNames {
		h = sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", id.Connector, id.Topic, id.Partition, id.First, id.End)))
	} else {
		h = sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d", id.Connector, id.Topic, id.Partition, id.First)))
	}
	if id.Epoch > 0 {
		// A range written again after an operator's rewind: a name of its
		// own, so it never collides with the earlier epoch's object.
		h = sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00epoch %d", id.Connector, id.Topic, id.Partition, id.First, id.Epoch)))
	}
	return fmt.Sprintf("partition_%d_offset_%d_%s", id.Partition, id.First, hex.EncodeToString(h[:4]))
}

// rewindName is the name of a rewind marker object: named like a data
// object of its range, with a hash of its own, so neither the earlier
// epoch's object nor the new epoch's first object collides with it.
func rewindName(id sink.BatchID) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00rewind %d", id.Connector, id.Topic, id.Partition, id.First, id.Epoch)))
	return fmt.Sprintf("partition_%d_offset_%d_%s", id.Partition, id.First, hex.EncodeToString(h[:4]))
}

// folder expands the path template's topic, partition and time variables
// for a batch whose first record has timestamp ts, with a trailing '/' (or
// "" for an empty template), up to the first record variable (see expand
// and folderOf).
func (s *Sink) folder(topic string, partition int32, ts time.Time) string {
	p, _ := s.expand(topic, partition, ts, nil)
	return p
}

// folderOf is the folder of record r in a batch whose first record has
// timestamp ts.
func (s *Sink) folderOf(r *transform.Record, ts time.Time) (string, error) {
	return s.expand(r.Topic, r.Partition, ts, r)
}

// timeVars are the path template's time variables.
var timeVars = []string{"{yyyy}", "{MM}", "{dd}", "{HH}", "{mm}"}

// root is the static part of the path template, the folder where the
// partition's meta object lives: the template up to its first time
// variable, cut back to a '/' boundary, with {topic} and {partition} filled.
func (s *Sink) root(topic string, partition int32) string {
	return s.static(topic, strconv.Itoa(int(partition)), append(timeVars, recordVars...)...)
}

// listPrefix is the folder under which every partition's objects lie.
func (s *Sink) listPrefix(topic string) string {
	return s.static(topic, "", append(append([]string{"{partition}"}, timeVars...), recordVars...)...)
}

// recordVars start the path template's variables that take their value from
// each record: the static folders end before them.
var recordVars = []string{"{key}", "{route}", "{value.", "{header."}

// topicInRoot reports whether the meta objects' folder names the topic.
func (s *Sink) topicInRoot() bool {
	p := s.spec.Path
	i := strings.Index(p, "{topic}")
	if i < 0 {
		return false
	}
	for _, v := range append(timeVars, recordVars...) {
		if j := strings.Index(p, v); j >= 0 && j < i {
			return false
		}
	}
	return true
}

func (s *Sink) static(topic, partition string, stops ...string) string {
	p := s.spec.Path
	cut := len(p)
	for _, v := range stops {
		if i := strings.Index(p, v); i >= 0 && i < cut {
			cut = i
		}
	}
	if cut < len(p) {
		p = p[:strings.LastIndex(p[:cut], "/")+1]
	}
	return withSlash(strings.NewReplacer("{topic}", topic, "{partition}", partition).Replace(p))
}

func withSlash(p string) string {
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func isCode(err error, code string) bool {
	if se, ok := serviceError(err); ok {
		return se.Code == code
	}
	return false
}

func serviceError(err error) (oss.ServiceError, bool) {
	var se oss.ServiceError
	if errors.As(err, &se) {
		return se, true
	}
	var sep *oss.ServiceError
	if errors.As(err, &sep) && sep != nil {
		return *sep, true
	}
	return oss.ServiceError{}, false
}

// retryableCodes are the 4xx answers a retry can fix: throttling, request
// timeouts, and conflicts this sink resolves itself.
var retryableCodes = map[string]bool{
	"RequestTimeout": true, "RequestTimeTooSkewed": true, "TooManyRequests": true, "QpsLimitExceeded": true,
	"SlowDown": true, "Throttling": true, "ServiceUnavailable": true, "FileAlreadyExists": true,
	"OperationAborted": true, "NoSuchUpload": true, "ConcurrentUpdateObjectLimit": true,
}

// throttleCodes are the answers that say requests come too fast.
var throttleCodes = map[string]bool{"TooManyRequests": true, "QpsLimitExceeded": true, "TotalQpsLimitExceeded": true, "SlowDown": true, "Throttling": true}

// classify marks errors no retry can fix as permanent, and throttling as
// such (sink.Throttled): an answer of 400..499
// other than throttling, a timeout or a conflict the sink handles is the
// request's or the bucket's fault (bad credentials, no such bucket, access
// denied, an invalid argument), so the partition parks instead of retrying
// and then routing every range to the error-data topic.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *sink.PermanentError
	if errors.As(err, &pe) {
		return err
	}
	se, ok := serviceError(err)
	if !ok {
		return err
	}
	if se.StatusCode == http.StatusTooManyRequests || throttleCodes[se.Code] {
		return sink.Throttled(err)
	}
	if se.StatusCode == http.StatusRequestTimeout || se.StatusCode < 400 || se.StatusCode >= 500 || retryableCodes[se.Code] {
		return err
	}
	typ := se.Code
	if typ == "" {
		typ = "HTTP" + strconv.Itoa(se.StatusCode)
	}
	return sink.Permanent(typ, err)
}

// DryBatch encodes a batch as Commit would write it, without writing:
// verify --deep replays a range through it and compares the result with
// the objects in the bucket.
type DryBatch struct{ b *batch }

// DryRun starts a dry batch for id.
func (s *Sink) DryRun(id sink.BatchID) *DryBatch {
	return &DryBatch{b: &batch{s: s, id: id, parts: map[string]*part{}}}
}

// Add is Batch.Add.
func (d *DryBatch) Add(ctx context.Context, r *transform.Record) error { return d.b.Add(ctx, r) }

// Commit and Abort make a DryBatch a sink.Batch; Commit writes nothing.
func (d *DryBatch) Commit(context.Context) (sink.Written, error) { return sink.Written{}, nil }

// Abort releases the bodies.
func (d *DryBatch) Abort(ctx context.Context) { d.b.Abort(ctx) }

// DryPart is one object a batch would write.
type DryPart struct {
	Key     string
	Records int64
	Size    int64
	CRC64   uint64
}

// Parts closes the encoders and returns the objects, in Commit's order.
func (d *DryBatch) Parts() ([]DryPart, error) {
	var out []DryPart
	for _, p := range d.b.order {
		if err := p.enc.Close(); err != nil {
			return nil, err
		}
		name := ObjectName(d.b.id)
		if d.b.id.Redrive != nil {
			name = RedriveName(d.b.id)
		}
		out = append(out, DryPart{Key: p.folder + name + d.b.s.format.Extension(), Records: p.records, Size: p.buf.Len(), CRC64: p.buf.crc})
	}
	return out, nil
}

// SuccessName is the object that publishes a window load under its prefix:
// its presence says the window is complete, and it lists every object and
// offset range of the window.
const SuccessName = "_SUCCESS"

// PutSuccess writes the _SUCCESS object under prefix (replacing an earlier
// run's: a re-run of the window publishes the same content).
func (s *Sink) PutSuccess(ctx context.Context, prefix string, body io.Reader) error {
	key := withSlash(prefix) + SuccessName
	if err := s.bucket.PutObject(key, body, oss.ContentType("application/json"), oss.WithContext(ctx)); err != nil {
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	return nil
}

// WindowPublished reports whether a window load published prefix: whether
// its _SUCCESS object exists.
func (s *Sink) WindowPublished(ctx context.Context, prefix string) (bool, error) {
	key := withSlash(prefix) + SuccessName
	ok, err := s.bucket.IsObjectExist(key, oss.WithContext(ctx))
	if err != nil {
		return false, classify(fmt.Errorf("look for %s: %w", key, err))
	}
	return ok, nil
}

// ClearWindow deletes what an unpublished load of the window job
// connectorName left under prefix (a run that failed before its
// _SUCCESS): its data objects and meta objects, recognised by the
// connector named in their metadata, so that a new run of the window,
// whose ranges may differ, starts from an empty prefix. Objects of anyone
// else are left alone. It refuses a published prefix. It returns the keys
// it deleted.
func (s *Sink) ClearWindow(ctx context.Context, prefix, connectorName string) ([]string, error) {
	dir := withSlash(prefix)
	var deleted []string
	token := ""
	for page := 0; ; page++ {
		opts := []oss.Option{oss.Prefix(dir), oss.MaxKeys(1000), oss.WithContext(ctx)}
		if token != "" {
			opts = append(opts, oss.ContinuationToken(token))
		}
		res, err := s.bucket.ListObjectsV2(opts...)
		if err != nil {
			return deleted, classify(fmt.Errorf("list %s/%s: %w", s.spec.Bucket, dir, err))
		}
		for _, o := range res.Objects {
			ours := false
			switch {
			case o.Key == dir+SuccessName:
				return deleted, sink.Permanent("ObjectConflict", fmt.Errorf("%s is published (%s exists): refusing to clear it", dir, o.Key))
			case strings.Contains(o.Key, ".oss_meta_file_"):
				m, ok, err := s.readMetaAt(ctx, o.Key)
				if err != nil {
					return deleted, err
				}
				ours = ok && m.Connector == connectorName
			default:
				h, err := s.bucket.GetObjectDetailedMeta(o.Key, oss.WithContext(ctx))
				if err != nil {
					return deleted, classify(fmt.Errorf("head %s: %w", o.Key, err))
				}
				m, err := parseObjectMeta(o.Key, h)
				ours = err == nil && m.id.Connector == connectorName
			}
			if !ours {
				continue
			}
			if err := s.bucket.DeleteObject(o.Key, oss.WithContext(ctx)); err != nil {
				return deleted, classify(fmt.Errorf("delete %s: %w", o.Key, err))
			}
			deleted = append(deleted, o.Key)
		}
		if !res.IsTruncated {
			return deleted, nil
		}
		if res.NextContinuationToken == "" || res.NextContinuationToken == token {
			return deleted, fmt.Errorf("list %s/%s: page %d says it is truncated but gives no new continuation token", s.spec.Bucket, dir, page+1)
		}
		token = res.NextContinuationToken
	}
}
