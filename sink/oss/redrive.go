package oss

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"golang.org/x/sync/errgroup"

	"github.com/dumpflow/dumpflow/sink"
)

// RedriveName is the name, without folder, of what a re-drive batch writes
// (sink.BatchID.Redrive): redrive_<dead-letter partition>_offset_<first
// dead-letter offset>_<8 hex chars of SHA-256(connector, dead-letter topic,
// dead-letter partition, first)>. The same letters re-driven again (an
// activity retry, a second re-drive) land on the same key, which
// forbid-overwrite keeps to one object.
func RedriveName(id sink.BatchID) string {
	rd := id.Redrive
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d", id.Connector, rd.DeadLetterTopic, rd.DeadLetterPartition, id.First)))
	return fmt.Sprintf("redrive_%d_offset_%d_%s", rd.DeadLetterPartition, id.First, hex.EncodeToString(h[:4]))
}

// redriveRE matches the names RedriveName gives.
var redriveRE = regexp.MustCompile(`(?:^|/)redrive_(\d+)_offset_(\d+)_([0-9a-f]{8})(\.[a-z0-9.]+)?$`)

// overridesRE matches the objects PutRedriveOverrides writes.
var overridesRE = regexp.MustCompile(`(?:^|/)\.dumpflow_redrive_[0-9a-f]+\.json$`)

// commitRedrive writes a re-drive batch: one object per folder named by
// RedriveName, put with forbid-overwrite (an object already there counts
// only if it is this very part), or, when every letter failed again, an
// empty marker object in the partition's static folder, so that the
// letters count as re-driven. The partition's meta object is not touched:
// re-driven records lie outside the tiling of the partition's ranges.
func (b *batch) commitRedrive(ctx context.Context) (sink.Written, error) {
	defer b.Abort(ctx)
	id, s := b.id, b.s
	if len(b.order) == 0 {
		key := s.root(id.Topic, id.Partition) + RedriveName(id)
		obj := objectMeta{id: id, kind: sink.KindRedriven, parts: 1}
		err := s.bucket.PutObject(key, bytes.NewReader(nil), append(obj.options(), oss.ForbidOverWrite(true), oss.WithContext(ctx))...)
		if isCode(err, "FileAlreadyExists") {
			err = s.sameRange(ctx, key, obj)
		}
		if err != nil {
			return sink.Written{}, classify(fmt.Errorf("write %s: %w", key, err))
		}
		return sink.Written{Objects: []string{key}}, nil
	}
	return b.putParts(ctx, RedriveName(id), sink.KindRedriven)
}

// RedrivenObjects lists the objects re-drive batches wrote under the
// topic's folder (any connector's), sorted by dead-letter partition, first
// dead-letter offset and part.
func (s *Sink) RedrivenObjects(ctx context.Context, topic string) ([]Object, error) {
	prefix := s.listPrefix(topic)
	var cands []oss.ObjectProperties
	token := ""
	for page := 0; ; page++ {
		opts := []oss.Option{oss.Prefix(prefix), oss.MaxKeys(1000), oss.WithContext(ctx)}
		if token != "" {
			opts = append(opts, oss.ContinuationToken(token))
		}
		res, err := s.bucket.ListObjectsV2(opts...)
		if err != nil {
			return nil, classify(fmt.Errorf("list %s/%s: %w", s.spec.Bucket, prefix, err))
		}
		for _, o := range res.Objects {
			if redriveRE.MatchString(o.Key) {
				cands = append(cands, o)
			}
		}
		if !res.IsTruncated {
			break
		}
		if res.NextContinuationToken == "" || res.NextContinuationToken == token {
			return nil, fmt.Errorf("list %s/%s: page %d says it is truncated but gives no new continuation token", s.spec.Bucket, prefix, page+1)
		}
		token = res.NextContinuationToken
	}
	objs := make([]*Object, len(cands))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range cands {
		g.Go(func() error {
			h, err := s.bucket.GetObjectDetailedMeta(o.Key, oss.WithContext(gctx))
			if isCode(err, "NoSuchKey") {
				return nil
			}
			if err != nil {
				return classify(fmt.Errorf("head %s: %w", o.Key, err))
			}
			om, err := parseObjectMeta(o.Key, h)
			if err != nil || om.kind != sink.KindRedriven || om.id.Redrive == nil {
				return nil // not a re-drive object of dumpflow's
			}
			srv, _ := strconv.ParseUint(h.Get(oss.HTTPHeaderOssCRC64), 10, 64)
			objs[i] = &Object{Key: o.Key, Connector: om.id.Connector, Partition: om.id.Partition, Kind: om.kind, Start: om.id.Start,
				First: om.id.First, End: om.id.End, Records: om.records, Size: o.Size, CRC64: om.crc, ServerCRC64: srv, Writer: om.id.Writer,
				Note: om.note, Part: om.part, Parts: om.parts, Transform: om.id.Transform, Format: om.format,
				DeadLetterTopic: om.id.Redrive.DeadLetterTopic, DeadLetterPartition: om.id.Redrive.DeadLetterPartition, Overrides: om.id.Redrive.Overrides}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Object
	for _, o := range objs {
		if o != nil {
			out = append(out, *o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.DeadLetterPartition != b.DeadLetterPartition {
			return a.DeadLetterPartition < b.DeadLetterPartition
		}
		if a.First != b.First {
			return a.First < b.First
		}
		return a.Part < b.Part
	})
	return out, nil
}

// overridesKey is where PutRedriveOverrides keeps the overrides of hash.
func (s *Sink) overridesKey(topic, hash string) string {
	return s.listPrefix(topic) + ".dumpflow_redrive_" + hash + ".json"
}

// PutRedriveOverrides keeps the spec changes a re-drive ran with (JSON,
// named by their hash) beside the topic's objects, so verify --deep can
// replay re-driven letters as they ran. The content is a function of the
// hash: writing it again is harmless.
func (s *Sink) PutRedriveOverrides(ctx context.Context, topic, hash string, body []byte) error {
	key := s.overridesKey(topic, hash)
	err := s.bucket.PutObject(key, bytes.NewReader(body), oss.ContentType("application/json"), oss.ForbidOverWrite(true), oss.WithContext(ctx))
	if isCode(err, "FileAlreadyExists") {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	return nil
}

// RedriveOverrides reads what PutRedriveOverrides kept for hash.
func (s *Sink) RedriveOverrides(ctx context.Context, topic, hash string) ([]byte, error) {
	var out []byte
	err := s.ReadObject(ctx, s.overridesKey(topic, hash), func(r io.Reader) error {
		var err error
		out, err = io.ReadAll(r)
		return err
	})
	return out, err
}
