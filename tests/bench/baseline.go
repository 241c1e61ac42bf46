package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// baselineResult is what the raw consumer did.
type baselineResult struct {
	Wall    time.Duration
	CPU     time.Duration
	Records int64
	Bytes   int64 // record value bytes
	Written int64 // file bytes (values and newlines)
}

// baseline is the yardstick: one plain franz-go client consuming every
// partition directly (no group) from offset 0 to its high watermark,
// writing values newline-separated to one buffered file per partition. The
// time covers client creation to the files being closed.
func baseline(ctx context.Context, brokers []string, topic string, hwm map[int32]int64, dir string, fetchPartBytes int32) (baselineResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return baselineResult{}, err
	}
	start, cpu0 := time.Now(), cpuTime()
	offsets := map[int32]kgo.Offset{}
	files := map[int32]*os.File{}
	writers := map[int32]*bufio.Writer{}
	remaining := int64(0)
	for p, end := range hwm {
		offsets[p] = kgo.NewOffset().At(0)
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("partition_%d.txt", p)))
		if err != nil {
			return baselineResult{}, err
		}
		files[p], writers[p] = f, bufio.NewWriterSize(f, 1<<20)
		remaining += end
	}
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})}
	if fetchPartBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(fetchPartBytes), kgo.FetchMaxBytes(4*fetchPartBytes))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return baselineResult{}, err
	}
	closeClient := sync.OnceFunc(cl.Close)
	defer closeClient()

	var res baselineResult
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return res, ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			w, end := writers[fp.Partition], hwm[fp.Partition]
			for _, r := range fp.Records {
				if r.Offset >= end {
					continue
				}
				w.Write(r.Value)
				w.WriteByte('\n')
				res.Records++
				res.Bytes += int64(len(r.Value))
				remaining--
			}
		})
	}
	for p, w := range writers {
		if err := w.Flush(); err != nil {
			return res, err
		}
		st, err := files[p].Stat()
		if err != nil {
			return res, err
		}
		res.Written += st.Size()
		if err := files[p].Close(); err != nil {
			return res, err
		}
	}
	closeClient()
	res.Wall, res.CPU = time.Since(start), cpuTime()-cpu0
	return res, nil
}
