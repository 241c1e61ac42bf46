package oss

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"golang.org/x/sync/errgroup"
)

// Object is one data or marker object as verify sees it.
type Object struct {
	Key       string `json:"key"`
	Connector string `json:"connector"`
	Partition int32  `json:"partition"`
	// Kind is data, gap (a declared gap) or routed (sent to the error-data
	// topic).
	Kind    string `json:"kind"`
	Start   int64  `json:"start"`
	First   int64  `json:"first"`
	End     int64  `json:"end"`
	Records int64  `json:"records"`
	Size    int64  `json:"size"`
	// CRC64 is the body's CRC-64 as the writer recorded it; ServerCRC64 is
	// the one OSS computed (x-oss-hash-crc64ecma), when it answers one.
	CRC64       uint64 `json:"crc64,omitempty"`
	ServerCRC64 uint64 `json:"serverCrc64,omitempty"`
	Writer      string `json:"writer,omitempty"`
	Note        string `json:"note,omitempty"`
	// Part and Parts: the object is part Part (from 0) of the Parts objects
	// its range was written as (one per folder its records were routed to).
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// Transform is the hash of the transform chain the records went
	// through; Format the object's format.
	Transform string `json:"transform,omitempty"`
	Format    string `json:"format,omitempty"`
	// Epoch is the partition's epoch the object was written in (how many
	// operator rewinds came before it).
	Epoch int `json:"epoch,omitempty"`
	// DeadLetterTopic, DeadLetterPartition and Overrides are set on
	// re-drive objects (kind redriven): First and End are then offsets of
	// that dead-letter partition (see RedrivenObjects).
	DeadLetterTopic     string `json:"deadLetterTopic,omitempty"`
	DeadLetterPartition int32  `json:"deadLetterPartition,omitempty"`
	Overrides           string `json:"overrides,omitempty"`
}

// Listing is what lies under a connector's folder.
type Listing struct {
	// Objects are data and marker objects with dumpflow metadata, of any
	// connector, sorted by partition then first offset.
	Objects []Object `json:"objects"`
	// Foreign are objects named like dumpflow's that have no (or broken)
	// dumpflow metadata: verify reports them, never skips them.
	Foreign []ForeignObject `json:"foreign,omitempty"`
	// Other are keys under the folder that are neither dumpflow objects nor
	// meta objects.
	Other []string `json:"other,omitempty"`
}

// ForeignObject is an object named like a dumpflow object that is not one.
type ForeignObject struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// objectRE matches data and marker object names: partition_<p>_offset_<first>_<8 hex>, with an optional extension.
var objectRE = regexp.MustCompile(`(?:^|/)partition_(\d+)_offset_(\d+)_([0-9a-f]{8})(\.[a-z0-9.]+)?$`)

// Objects lists every data and marker object under the topic's folder with
// its metadata, whoever wrote it, plus the objects named like dumpflow's
// that are not (see Listing).
func (s *Sink) Objects(ctx context.Context, topic string) (Listing, error) {
	return s.list(ctx, topic, nil)
}

// list lists the topic's folder. keep, if set, selects objects by partition
// and first offset from their names before their metadata is read.
func (s *Sink) list(ctx context.Context, topic string, keep func(p int32, first int64) bool) (Listing, error) {
	prefix := s.listPrefix(topic)
	var cands []oss.ObjectProperties
	var out Listing
	token := ""
	for page := 0; ; page++ {
		opts := []oss.Option{oss.Prefix(prefix), oss.MaxKeys(1000), oss.WithContext(ctx)}
		if token != "" {
			opts = append(opts, oss.ContinuationToken(token))
		}
		res, err := s.bucket.ListObjectsV2(opts...)
		if err != nil {
			return Listing{}, classify(fmt.Errorf("list %s/%s: %w", s.spec.Bucket, prefix, err))
		}
		for _, o := range res.Objects {
			m := objectRE.FindStringSubmatch(o.Key)
			if m == nil {
				if !strings.Contains(o.Key, ".oss_meta_file_") && !redriveRE.MatchString(o.Key) && !overridesRE.MatchString(o.Key) {
					out.Other = append(out.Other, o.Key)
				}
				continue
			}
			p, _ := strconv.ParseInt(m[1], 10, 32)
			first, _ := strconv.ParseInt(m[2], 10, 64)
			if keep == nil || keep(int32(p), first) {
				cands = append(cands, o)
			}
		}
		if !res.IsTruncated {
			break
		}
		if res.NextContinuationToken == "" || res.NextContinuationToken == token {
			return Listing{}, fmt.Errorf("list %s/%s: page %d says it is truncated but gives no new continuation token: the service's listing is broken, refusing to list the same page again", s.spec.Bucket, prefix, page+1)
		}
		token = res.NextContinuationToken
	}
	objs := make([]*Object, len(cands))
	foreign := make([]*ForeignObject, len(cands))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range cands {
		g.Go(func() error {
			h, err := s.bucket.GetObjectDetailedMeta(o.Key, oss.WithContext(gctx))
			if isCode(err, "NoSuchKey") {
				return nil // deleted since the listing
			}
			if err != nil {
				return classify(fmt.Errorf("head %s: %w", o.Key, err))
			}
			om, err := parseObjectMeta(o.Key, h)
			if err != nil {
				foreign[i] = &ForeignObject{Key: o.Key, Reason: err.Error()}
				return nil
			}
			m := objectRE.FindStringSubmatch(o.Key)
			p, _ := strconv.ParseInt(m[1], 10, 32)
			first, _ := strconv.ParseInt(m[2], 10, 64)
			if om.id.First != first || (h.Get(oss.HTTPHeaderOssMetaPrefix+metaPartition) != "" && om.id.Partition != int32(p)) {
				foreign[i] = &ForeignObject{Key: o.Key, Reason: fmt.Sprintf("its name says partition %d offset %d, its metadata partition %d offset %d", p, first, om.id.Partition, om.id.First)}
				return nil
			}
			srv, _ := strconv.ParseUint(h.Get(oss.HTTPHeaderOssCRC64), 10, 64)
			objs[i] = &Object{Key: o.Key, Connector: om.id.Connector, Partition: int32(p), Kind: om.kind, Start: om.id.Start,
				First: om.id.First, End: om.id.End, Records: om.records, Size: o.Size, CRC64: om.crc, ServerCRC64: srv, Writer: om.id.Writer, Note: om.note,
				Part: om.part, Parts: om.parts, Transform: om.id.Transform, Format: om.format, Epoch: om.id.Epoch}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Listing{}, err
	}
	for i := range cands {
		if objs[i] != nil {
			out.Objects = append(out.Objects, *objs[i])
		}
		if foreign[i] != nil {
			out.Foreign = append(out.Foreign, *foreign[i])
		}
	}
	sort.Slice(out.Objects, func(i, j int) bool {
		a, b := out.Objects[i], out.Objects[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		if a.First != b.First {
			return a.First < b.First
		}
		if a.Epoch != b.Epoch {
			return a.Epoch < b.Epoch
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Part < b.Part
	})
	return out, nil
}

// ReadObject calls fn with the body of key, streamed.
func (s *Sink) ReadObject(ctx context.Context, key string, fn func(io.Reader) error) error {
	rc, err := s.bucket.GetObject(key, oss.WithContext(ctx))
	if err != nil {
		return classify(fmt.Errorf("read %s: %w", key, err))
	}
	defer rc.Close()
	if err := fn(rc); err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}
