package oss

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"golang.org/x/sync/errgroup"
)

// Object is one data object as verify sees it.
type Object struct {
	Key       string `json:"key"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
	End       int64  `json:"end"`
	Records   int64  `json:"records"`
	Size      int64  `json:"size"`
}

var objectRE = regexp.MustCompile(`(?:^|/)partition_(\d+)_offset_(\d+)_([0-9a-f]{8})$`)

// Objects lists every data object connector wrote for topic, with the
// range from its metadata, sorted by partition then first offset.
func (s *Sink) Objects(ctx context.Context, connectorName, topic string) ([]Object, error) {
	prefix := s.listPrefix(topic)
	var keys []oss.ObjectProperties
	token := ""
	for {
		opts := []oss.Option{oss.Prefix(prefix), oss.MaxKeys(1000), oss.WithContext(ctx)}
		if token != "" {
			opts = append(opts, oss.ContinuationToken(token))
		}
		res, err := s.bucket.ListObjectsV2(opts...)
		if err != nil {
			return nil, classify(fmt.Errorf("list %s/%s: %w", s.spec.Bucket, prefix, err))
		}
		for _, o := range res.Objects {
			if objectRE.MatchString(o.Key) {
				keys = append(keys, o)
			}
		}
		if !res.IsTruncated {
			break
		}
		token = res.NextContinuationToken
	}
	out := make([]Object, len(keys))
	keep := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range keys {
		g.Go(func() error {
			h, err := s.bucket.GetObjectDetailedMeta(o.Key, oss.WithContext(gctx))
			if err != nil {
				return classify(fmt.Errorf("head %s: %w", o.Key, err))
			}
			get := func(k string) string { return h.Get(oss.HTTPHeaderOssMetaPrefix + k) }
			if get(metaConnector) != connectorName {
				return nil
			}
			m := objectRE.FindStringSubmatch(o.Key)
			p, _ := strconv.Atoi(m[1])
			first, err1 := strconv.ParseInt(get(metaFirst), 10, 64)
			end, err2 := strconv.ParseInt(get(metaEnd), 10, 64)
			recs, _ := strconv.ParseInt(get(metaRecords), 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("object %s lacks dumpflow range metadata", o.Key)
			}
			out[i] = Object{Key: o.Key, Partition: int32(p), First: first, End: end, Records: recs, Size: o.Size}
			keep[i] = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := out[:0]
	for i := range out {
		if keep[i] {
			res = append(res, out[i])
		}
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].Partition != res[j].Partition {
			return res[i].Partition < res[j].Partition
		}
		return res[i].First < res[j].First
	})
	return res, nil
}
