package oss

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
)

// TestCheckCRC shows the sink's own end-to-end CRC-64 check, which
// replaces the SDK's second pass over each body: an upload answered with
// the CRC-64 of what the sink sent passes; one whose stored object has
// another CRC-64 fails with both values named and the damaged object is
// deleted, so the retry can write it again.
func TestCheckCRC(t *testing.T) {
	srv, err := ossfake.New(ossfake.Options{Dir: t.TempDir(), Buckets: []string{"bkt"}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	spec := &connector.Spec{Sink: connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{Endpoint: hs.URL, Bucket: "bkt", PathStyle: true, TimeZone: "UTC"}}}
	s, err := New(spec, connector.Credentials{AccessKeyID: "ak", AccessKeySecret: "sk"})
	require.NoError(t, err)
	ctx := context.Background()

	var b buffer
	_, _ = b.Write([]byte("one\ntwo\n"))
	defer b.release()
	var h http.Header
	require.NoError(t, s.upload.PutObject("k", b.reader(0, b.Len()), oss.GetResponseHeader(&h)))
	require.Equal(t, strconv.FormatUint(b.crc, 10), h.Get(oss.HTTPHeaderOssCRC64), "the fake answers the body's CRC-64, as OSS does")
	require.NoError(t, s.checkCRC(ctx, "k", h, b.crc))

	require.NoError(t, s.upload.PutObject("bad", bytes.NewReader([]byte("one\ntwX\n")), oss.GetResponseHeader(&h)))
	err = s.checkCRC(ctx, "bad", h, b.crc)
	require.ErrorContains(t, err, "CRC-64 of bad: the server stored "+h.Get(oss.HTTPHeaderOssCRC64)+", the sink sent "+strconv.FormatUint(b.crc, 10))
	require.ErrorContains(t, err, "the damaged object was deleted")
	ok, err := s.bucket.IsObjectExist("bad")
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, s.checkCRC(ctx, "k", http.Header{}, 1), "a server that answers no CRC-64 is not checked")
}
