package oss

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"golang.org/x/sync/errgroup"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// Sink writes batches to one OSS bucket. It is safe for concurrent use.
type Sink struct {
	spec   connector.OSSSpec
	loc    *time.Location
	bucket *oss.Bucket
	// bufs recycles batch buffers, each grown once to a batch's size, so a
	// busy partition does not reallocate (and zero) a buffer per batch.
	bufs     sync.Pool
	maxBytes int
}

var _ sink.Sink = (*Sink)(nil)

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
	s := &Sink{spec: *o, loc: loc, bucket: b, maxBytes: int(spec.Batch.MaxBytes)}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	return s, nil
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

// Begin starts a batch.
func (s *Sink) Begin(_ context.Context, id sink.BatchID, _ *sink.Prepared) (sink.Batch, error) {
	return &batch{s: s, id: id, buf: s.bufs.Get().(*bytes.Buffer)}, nil
}

type batch struct {
	s       *Sink
	id      sink.BatchID
	buf     *bytes.Buffer // nil once returned to the pool
	records int64
	firstTS time.Time
}

func (b *batch) Add(_ context.Context, r *transform.Record) error {
	if b.records == 0 {
		b.firstTS = r.Timestamp
		// A batch holds up to maxBytes of values plus a newline per record
		// and at most one record past the limit: grow once, not by doubling.
		b.buf.Grow(b.s.maxBytes + b.s.maxBytes/32 + len(r.Value))
	}
	b.buf.Write(r.Value)
	b.buf.WriteByte('\n')
	b.records++
	return nil
}

func (b *batch) Abort(context.Context) { b.release() }

// release returns the buffer to the pool.
func (b *batch) release() {
	if b.buf != nil {
		b.buf.Reset()
		b.s.bufs.Put(b.buf)
		b.buf = nil
	}
}

func (b *batch) Commit(ctx context.Context) (sink.Written, error) {
	id := b.id
	key := b.s.folder(id.Topic, id.Partition, b.firstTS) + ObjectName(id)
	meta := []oss.Option{
		oss.Meta(metaConnector, id.Connector),
		oss.Meta(metaFirst, strconv.FormatInt(id.First, 10)),
		oss.Meta(metaEnd, strconv.FormatInt(id.End, 10)),
		oss.Meta(metaStart, strconv.FormatInt(id.Start, 10)),
		oss.Meta(metaRecords, strconv.FormatInt(b.records, 10)),
		oss.ContentType("text/plain; charset=utf-8"),
	}
	size := int64(b.buf.Len())
	var err error
	if size > int64(b.s.spec.PartSize) {
		err = b.s.putMultipart(ctx, key, b.buf.Bytes(), meta)
	} else {
		err = b.s.bucket.PutObject(key, bytes.NewReader(b.buf.Bytes()), append(meta, oss.ForbidOverWrite(true), oss.WithContext(ctx))...)
	}
	if isCode(err, "FileAlreadyExists") {
		err = b.s.sameRange(ctx, key, id)
	}
	if err != nil {
		return sink.Written{}, classify(fmt.Errorf("write %s: %w", key, err))
	}
	if err := b.s.writeMeta(ctx, id, key, b.records); err != nil {
		return sink.Written{}, err
	}
	b.release()
	return sink.Written{Objects: []string{key}, Records: b.records, Bytes: size}, nil
}

// putMultipart uploads data in parts of PartSize, three at a time. An
// object already present with the same range counts as written.
func (s *Sink) putMultipart(ctx context.Context, key string, data []byte, meta []oss.Option) error {
	if ok, err := s.bucket.IsObjectExist(key, oss.WithContext(ctx)); err != nil {
		return err
	} else if ok {
		return &oss.ServiceError{Code: "FileAlreadyExists", StatusCode: http.StatusConflict}
	}
	imur, err := s.bucket.InitiateMultipartUpload(key, append(meta, oss.WithContext(ctx))...)
	if err != nil {
		return fmt.Errorf("initiate multipart: %w", err)
	}
	partSize := int64(s.spec.PartSize)
	n := (int64(len(data)) + partSize - 1) / partSize
	parts := make([]oss.UploadPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for i := int64(0); i < n; i++ {
		chunk := data[i*partSize : min(int64(len(data)), (i+1)*partSize)]
		g.Go(func() error {
			p, err := s.bucket.UploadPart(imur, bytes.NewReader(chunk), int64(len(chunk)), int(i+1), oss.WithContext(gctx))
			if err != nil {
				return fmt.Errorf("upload part %d of %d: %w", i+1, n, err)
			}
			parts[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = s.bucket.AbortMultipartUpload(imur)
		return err
	}
	if _, err := s.bucket.CompleteMultipartUpload(imur, parts, oss.ForbidOverWrite(true), oss.WithContext(ctx)); err != nil {
		_ = s.bucket.AbortMultipartUpload(imur)
		return fmt.Errorf("complete multipart: %w", err)
	}
	return nil
}

// sameRange accepts an existing object at key only if it holds exactly the
// range id: that is the retry of a batch that was already written.
func (s *Sink) sameRange(ctx context.Context, key string, id sink.BatchID) error {
	h, err := s.bucket.GetObjectDetailedMeta(key, oss.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("head existing object: %w", err)
	}
	first, end := h.Get(oss.HTTPHeaderOssMetaPrefix+metaFirst), h.Get(oss.HTTPHeaderOssMetaPrefix+metaEnd)
	if first != strconv.FormatInt(id.First, 10) || end != strconv.FormatInt(id.End, 10) {
		return sink.Permanent("ObjectConflict", fmt.Errorf("object %s exists with range [%s,%s), want [%d,%d): another writer uses this path", key, first, end, id.First, id.End))
	}
	return nil
}

// User metadata keys on data objects (the SDK adds x-oss-meta-).
const (
	metaConnector = "Dumpflow-Connector"
	metaFirst     = "Dumpflow-First"
	metaEnd       = "Dumpflow-End"
	metaStart     = "Dumpflow-Start"
	metaRecords   = "Dumpflow-Records"
)

// ObjectName is the data object's name for batch id, without the folder:
// partition_<p>_offset_<first>_<8 hex chars of SHA-256(connector, topic,
// partition, first, end)>.
func ObjectName(id sink.BatchID) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", id.Connector, id.Topic, id.Partition, id.First, id.End)))
	return fmt.Sprintf("partition_%d_offset_%d_%s", id.Partition, id.First, hex.EncodeToString(h[:4]))
}

// folder expands the path template for a batch whose first record has
// timestamp ts, with a trailing '/' (or "" for an empty template).
func (s *Sink) folder(topic string, partition int32, ts time.Time) string {
	t := ts.In(s.loc)
	r := strings.NewReplacer(
		"{topic}", topic,
		"{partition}", strconv.Itoa(int(partition)),
		"{yyyy}", t.Format("2006"),
		"{MM}", t.Format("01"),
		"{dd}", t.Format("02"),
		"{HH}", t.Format("15"),
		"{mm}", t.Format("04"),
	)
	return withSlash(r.Replace(s.spec.Path))
}

// root is the static part of the path template, the folder where the
// partition's meta object lives: the template up to its first time
// variable, cut back to a '/' boundary, with {topic} and {partition} filled.
func (s *Sink) root(topic string, partition int32) string {
	return s.static(topic, strconv.Itoa(int(partition)), "{yyyy}", "{MM}", "{dd}", "{HH}", "{mm}")
}

// listPrefix is the folder under which every partition's objects lie.
func (s *Sink) listPrefix(topic string) string {
	return s.static(topic, "", "{partition}", "{yyyy}", "{MM}", "{dd}", "{HH}", "{mm}")
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
	var se oss.ServiceError
	if errors.As(err, &se) {
		return se.Code == code
	}
	var sep *oss.ServiceError
	return errors.As(err, &sep) && sep.Code == code
}

// classify marks errors no retry can fix as permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *sink.PermanentError
	if errors.As(err, &pe) {
		return err
	}
	for _, code := range []string{"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName"} {
		if isCode(err, code) {
			return sink.Permanent(code, err)
		}
	}
	return err
}
