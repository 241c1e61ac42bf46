package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/dumpflow/dumpflow/connector"
)

// limitResult is what the limit contender did.
type limitResult struct {
	Wall    time.Duration
	CPU     time.Duration
	Records int64
	Bytes   int64 // record value bytes
	Written int64 // object bytes (values and newlines)
	Objects int64
	Multi   int64 // objects uploaded as multipart uploads
}

// limitConfig is the limit contender's setup.
type limitConfig struct {
	Brokers        []string
	Topic          string
	HWM            map[int32]int64
	FetchPartBytes int32
	Endpoint       string // the OSS fake
	Bucket         string
	Prefix         string // objects go under <prefix>/<topic>/
	Batch          int    // bytes per object (values and newlines), at most
	PartSize       int64  // objects larger than this are multipart uploads
}

// limitUploads is how many objects the limit contender uploads at once, and
// limitParts how many parts of one multipart upload; both are dumpflow's
// (a connector's loops each upload one batch, and sink/oss putMultipart
// uploads three parts at a time).
const (
	limitUploads = 3
	limitParts   = 3
)

// limit is the real limit of a Kafka → OSS dump on this machine: the
// baseline's plain franz-go consumer (no group, every partition directly
// from offset 0 to its high watermark, the same kgo options), but instead
// of files it appends each partition's values newline-separated to a buffer
// and PUTs every cfg.Batch bytes as one object, with the unmodified OSS SDK
// against the same OSS fake and with the client options dumpflow's OSS sink
// uses (sink/oss New: oss.Timeout(10, 120), path style; the SDK's CRC-64
// check, on by default, is asked for explicitly) and x-oss-forbid-overwrite
// on every write. limitUploads objects are in flight at once (a bounded
// pool; the consumer waits for a free buffer, buffers are recycled).
//
// Objects larger than cfg.PartSize are uploaded as dumpflow's sink does it
// (sink/oss putMultipart): HEAD the key (forbid-overwrite does not apply to
// InitiateMultipartUpload), initiate, upload parts of cfg.PartSize
// limitParts at a time, complete with x-oss-forbid-overwrite. With the
// defaults (16 MiB objects, 8 MiB parts) that is a multipart upload of two
// parts per object, like a dumpflow batch at the connector's default
// maxBytes. What the limit leaves out is everything that makes dumpflow
// exactly-once and observable: the object metadata headers, the
// per-range metadata objects, the Temporal workflow and its activities,
// commits of group offsets.
//
// The remaining partial buffers are PUT at the end. The time covers client
// creation to the last upload's response.
func limit(ctx context.Context, cfg limitConfig) (limitResult, error) {
	start, cpu0 := time.Now(), cpuTime()
	var res limitResult
	creds, err := connector.ResolveCredentials(credName)
	if err != nil {
		return res, err
	}
	ocl, err := oss.New(cfg.Endpoint, creds.AccessKeyID, creds.AccessKeySecret,
		oss.Timeout(10, 120), oss.ForcePathStyle(true), oss.EnableCRC(true))
	if err != nil {
		return res, err
	}
	bucket, err := ocl.Bucket(cfg.Bucket)
	if err != nil {
		return res, err
	}

	offsets := map[int32]kgo.Offset{}
	remaining := int64(0)
	for p, end := range cfg.HWM {
		offsets[p] = kgo.NewOffset().At(0)
		remaining += end
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets})}
	if cfg.FetchPartBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(cfg.FetchPartBytes), kgo.FetchMaxBytes(4*cfg.FetchPartBytes))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return res, err
	}
	closeClient := sync.OnceFunc(cl.Close)
	defer closeClient()

	// Buffers: one filling per partition, limitUploads uploading.
	free := make(chan []byte, len(cfg.HWM)+limitUploads)
	for range len(cfg.HWM) + limitUploads {
		free <- nil // allocated on first use
	}
	getBuf := func() []byte {
		b := <-free
		if b == nil {
			b = make([]byte, 0, cfg.Batch)
		}
		return b[:0]
	}
	type job struct {
		p     int32
		first int64
		body  []byte
	}
	jobs := make(chan job)
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		uerr error
		wg   sync.WaitGroup
	)
	for range limitUploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				key := path.Join(cfg.Prefix, cfg.Topic, fmt.Sprintf("partition_%d_offset_%d_%08x", j.p, j.first, 0))
				multi, err := limitPut(uctx, bucket, key, j.body, cfg.PartSize)
				mu.Lock()
				if err != nil {
					if uerr == nil {
						uerr = fmt.Errorf("put %s: %w", key, err)
					}
					cancel()
				} else {
					res.Objects++
					res.Written += int64(len(j.body))
					if multi {
						res.Multi++
					}
				}
				mu.Unlock()
				free <- j.body
			}
		}()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return uerr
	}
	finish := func() error {
		close(jobs)
		wg.Wait()
		return failed()
	}

	bufs := map[int32][]byte{}
	firsts := map[int32]int64{}
	submit := func(p int32) error {
		select {
		case jobs <- job{p, firsts[p], bufs[p]}:
			bufs[p] = nil
			return nil
		case <-uctx.Done():
			return context.Cause(uctx)
		}
	}
	for remaining > 0 {
		if err := failed(); err != nil {
			_ = finish()
			return res, err
		}
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			_ = finish()
			return res, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			p, end := fp.Partition, cfg.HWM[fp.Partition]
			for _, r := range fp.Records {
				if r.Offset >= end || ferr != nil {
					continue
				}
				b := bufs[p]
				if len(b) > 0 && len(b)+len(r.Value)+1 > cfg.Batch {
					if ferr = submit(p); ferr != nil {
						continue
					}
					b = nil
				}
				if b == nil {
					b = getBuf()
					firsts[p] = r.Offset
				}
				b = append(b, r.Value...)
				b = append(b, '\n')
				bufs[p] = b
				res.Records++
				res.Bytes += int64(len(r.Value))
				remaining--
			}
		})
		if ferr != nil {
			_ = finish()
			return res, ferr
		}
	}
	closeClient()
	ps := make([]int32, 0, len(bufs))
	for p, b := range bufs {
		if len(b) > 0 {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	for _, p := range ps {
		if err := submit(p); err != nil {
			_ = finish()
			return res, err
		}
	}
	if err := finish(); err != nil {
		return res, err
	}
	res.Wall, res.CPU = time.Since(start), cpuTime()-cpu0
	return res, nil
}

// limitPut writes body at key with x-oss-forbid-overwrite: one PutObject,
// or, above partSize, a multipart upload as sink/oss putMultipart does it.
// It reports whether it used a multipart upload.
func limitPut(ctx context.Context, b *oss.Bucket, key string, body []byte, partSize int64) (bool, error) {
	size := int64(len(body))
	if size <= partSize {
		return false, b.PutObject(key, bytes.NewReader(body), oss.ForbidOverWrite(true), oss.WithContext(ctx))
	}
	if ok, err := b.IsObjectExist(key, oss.WithContext(ctx)); err != nil {
		return true, err
	} else if ok {
		return true, &oss.ServiceError{Code: "FileAlreadyExists", StatusCode: http.StatusConflict}
	}
	imur, err := b.InitiateMultipartUpload(key, oss.WithContext(ctx))
	if err != nil {
		return true, fmt.Errorf("initiate multipart: %w", err)
	}
	n := (size + partSize - 1) / partSize
	parts := make([]oss.UploadPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limitParts)
	for i := int64(0); i < n; i++ {
		off := i * partSize
		chunk := body[off:min(size, off+partSize)]
		g.Go(func() error {
			p, err := b.UploadPart(imur, bytes.NewReader(chunk), int64(len(chunk)), int(i+1), oss.WithContext(gctx))
			if err != nil {
				return fmt.Errorf("upload part %d of %d: %w", i+1, n, err)
			}
			parts[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = b.AbortMultipartUpload(imur)
		return true, err
	}
	if _, err := b.CompleteMultipartUpload(imur, parts, oss.ForbidOverWrite(true), oss.WithContext(ctx)); err != nil {
		_ = b.AbortMultipartUpload(imur)
		return true, fmt.Errorf("complete multipart: %w", err)
	}
	return true, nil
}

// verifyLimit checks, by listing the bucket with the SDK, that the limit
// contender's objects under <prefix>/<topic>/ cover every partition from
// offset 0 to its high watermark exactly once (each object holds
// size(object)/(size+1) consecutive records from the offset in its name),
// then reads every object from the OSS fake's directory and checks each
// line is the expected value (checkContent). It returns the objects, their
// bytes, and the records and value bytes checkContent found.
func verifyLimit(ctx context.Context, cfg limitConfig, bucketDir string, size int) (objects, written, records, valueBytes int64, err error) {
	creds, err := connector.ResolveCredentials(credName)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	ocl, err := oss.New(cfg.Endpoint, creds.AccessKeyID, creds.AccessKeySecret, oss.Timeout(10, 120), oss.ForcePathStyle(true))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	bucket, err := ocl.Bucket(cfg.Bucket)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	type span struct{ first, n int64 }
	spans := map[int32][]span{}
	prefix := path.Join(cfg.Prefix, cfg.Topic) + "/"
	for token := ""; ; {
		lr, err := bucket.ListObjectsV2(oss.Prefix(prefix), oss.MaxKeys(1000), oss.ContinuationToken(token), oss.WithContext(ctx))
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range lr.Objects {
			m := objectName.FindStringSubmatch(path.Base(o.Key))
			if m == nil {
				return 0, 0, 0, 0, fmt.Errorf("unexpected object %s", o.Key)
			}
			if o.Size%int64(size+1) != 0 {
				return 0, 0, 0, 0, fmt.Errorf("object %s: %d bytes is not a whole number of %d-byte lines", o.Key, o.Size, size+1)
			}
			p, _ := strconv.Atoi(m[1])
			first, _ := strconv.ParseInt(m[2], 10, 64)
			spans[int32(p)] = append(spans[int32(p)], span{first, o.Size / int64(size+1)})
			objects++
			written += o.Size
		}
		if !lr.IsTruncated {
			break
		}
		token = lr.NextContinuationToken
	}
	for p, end := range cfg.HWM {
		ss := spans[p]
		sort.Slice(ss, func(i, j int) bool { return ss[i].first < ss[j].first })
		next := int64(0)
		for _, s := range ss {
			if s.first != next {
				return 0, 0, 0, 0, fmt.Errorf("partition %d: object at offset %d, want %d (a gap or an overlap)", p, s.first, next)
			}
			next += s.n
		}
		if next != end {
			return 0, 0, 0, 0, fmt.Errorf("partition %d: objects end at offset %d, want the high watermark %d", p, next, end)
		}
	}
	for p := range spans {
		if _, ok := cfg.HWM[p]; !ok {
			return 0, 0, 0, 0, fmt.Errorf("objects for partition %d, which the topic does not have", p)
		}
	}
	records, valueBytes, err = checkContent(filepath.Join(bucketDir, cfg.Prefix, cfg.Topic), size)
	return objects, written, records, valueBytes, err
}
