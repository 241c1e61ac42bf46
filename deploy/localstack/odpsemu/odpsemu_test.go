package odpsemu_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/datatype"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/restclient"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
)

const (
	testAK      = "test-access-id"
	testSK      = "test-access-secret"
	testProject = "dumpflow"

	// defaultDDL is dumpflow's default MaxCompute table (DESIGN.md, seed 004).
	defaultDDL = "CREATE TABLE IF NOT EXISTS t(topic STRING, partition BIGINT, offset BIGINT, key STRING, value STRING) PARTITIONED BY (pt STRING)"
)

// env is one emulator behind a real HTTP server and SDK clients pointed at it.
type env struct {
	t      *testing.T
	opts   odpsemu.Options
	srv    *odpsemu.Server
	http   *httptest.Server
	odps   *odps.Odps
	tunnel *tunnel.Tunnel
}

func newEnv(t *testing.T, opts odpsemu.Options) *env {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.AccessKeyID == "" {
		opts.AccessKeyID, opts.AccessKeySecret = testAK, testSK
	}
	e := &env{t: t, opts: opts}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	srv, err := odpsemu.New(e.opts)
	require.NoError(e.t, err)
	e.srv = srv
	e.http = httptest.NewServer(srv)
	e.odps = newOdps(e.http.URL, testAK, testSK)
	e.tunnel = tunnel.NewTunnel(e.odps, e.http.URL)
}

func (e *env) stop() {
	if e.http == nil {
		return
	}
	e.http.Close()
	require.NoError(e.t, e.srv.Close())
	e.http = nil
}

// restart closes the emulator and opens a new one on the same directory.
func (e *env) restart() {
	e.stop()
	e.start()
}

func newOdps(baseURL, ak, sk string) *odps.Odps {
	o := odps.NewOdps(account.NewAliyunAccount(ak, sk), baseURL+"/api")
	o.SetDefaultProjectName(testProject)
	return o
}

func (e *env) sql(query string) error {
	ins, err := e.odps.ExecSQl(query)
	if err != nil {
		return err
	}
	return ins.WaitForSuccess()
}

func (e *env) mustSQL(query string) {
	e.t.Helper()
	require.NoError(e.t, e.sql(query))
}

// upload writes blocks (block id -> records) in one session and commits them.
func (e *env) upload(table string, blocks map[int][]data.Record, opts ...tunnel.Option) *tunnel.UploadSession {
	e.t.Helper()
	s, err := e.tunnel.CreateUploadSession(testProject, table, opts...)
	require.NoError(e.t, err)
	ids := make([]int, 0, len(blocks))
	for id, recs := range blocks {
		writeBlock(e.t, s, id, recs)
		ids = append(ids, id)
	}
	require.NoError(e.t, s.Commit(ids))
	return s
}

func writeBlock(t *testing.T, s *tunnel.UploadSession, blockID int, recs []data.Record) {
	t.Helper()
	require.NoError(t, tryWriteBlock(s, blockID, recs))
}

func tryWriteBlock(s *tunnel.UploadSession, blockID int, recs []data.Record) error {
	w, err := s.OpenRecordWriter(blockID)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// download reads every row of a partition ("" for none), optionally projected onto columns.
func (e *env) download(table, partition string, columns []string, opts ...tunnel.Option) [][]any {
	e.t.Helper()
	if partition != "" {
		opts = append(opts, tunnel.SessionCfg.WithPartitionKey(partition))
	}
	ds, err := e.tunnel.CreateDownloadSession(testProject, table, opts...)
	require.NoError(e.t, err)
	if ds.RecordCount() == 0 {
		return nil
	}
	r, err := ds.OpenRecordReader(0, ds.RecordCount(), columns)
	require.NoError(e.t, err)
	defer r.Close()
	var rows [][]any
	require.NoError(e.t, r.Iterator(func(rec data.Record, err error) {
		require.NoError(e.t, err)
		rows = append(rows, values(rec))
	}))
	return rows
}

// values converts a record to plain Go values for comparison.
func values(rec data.Record) []any {
	out := make([]any, len(rec))
	for i, d := range rec {
		switch v := d.(type) {
		case nil:
			out[i] = nil
		case data.String:
			out[i] = string(v)
		case data.BigInt:
			out[i] = int64(v)
		case data.Double:
			out[i] = float64(v)
		case data.Bool:
			out[i] = bool(v)
		case data.DateTime:
			out[i] = v.Time().UnixMilli()
		case data.Binary:
			out[i] = []byte(v)
		default:
			out[i] = fmt.Sprintf("unexpected %T", d)
		}
	}
	return out
}

// kafkaRecords makes n records of the default table, with offsets from first.
func kafkaRecords(topic string, first, n int) []data.Record {
	recs := make([]data.Record, n)
	for i := range recs {
		off := int64(first + i)
		recs[i] = data.Record{data.String(topic), data.BigInt(3), data.BigInt(off),
			data.String(fmt.Sprintf("k%d", off)), data.String(fmt.Sprintf("value-%d", off))}
	}
	return recs
}

func rowsOf(recs ...[]data.Record) [][]any {
	var out [][]any
	for _, rs := range recs {
		for _, r := range rs {
			out = append(out, values(r))
		}
	}
	return out
}

// errorCode returns the service error code the SDK surfaced in err.
func errorCode(t *testing.T, err error) string {
	t.Helper()
	require.Error(t, err)
	var he restclient.HttpError
	require.True(t, errors.As(err, &he), "not an HttpError: %v", err)
	require.NotNil(t, he.ErrorMessage, "no error body: %s", he.Body)
	return he.ErrorMessage.ErrorCode
}

func TestCreateTableByDDLAndReadSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	e.mustSQL(defaultDDL) // IF NOT EXISTS: a second run is fine

	tbl := e.odps.Table("t")
	require.NoError(t, tbl.Load())
	schema := tbl.Schema()
	var cols []string
	for _, c := range schema.Columns {
		cols = append(cols, c.Name+" "+c.Type.Name())
	}
	require.Equal(t, []string{"topic STRING", "partition BIGINT", "offset BIGINT", "key STRING", "value STRING"}, cols)
	require.Len(t, schema.PartitionColumns, 1)
	require.Equal(t, "pt", schema.PartitionColumns[0].Name)
	require.Equal(t, datatype.STRING, schema.PartitionColumns[0].Type.ID())

	ok, err := tbl.Exists()
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = e.odps.Table("missing").Exists()
	require.NoError(t, err)
	require.False(t, ok)

	// Tables.Create builds the DDL itself (tableschema.ToSQLString).
	all := tableschema.NewSchemaBuilder().Name("all_types").Columns(
		tableschema.Column{Name: "s", Type: datatype.StringType, Comment: "a string"},
		tableschema.Column{Name: "i", Type: datatype.BigIntType, NotNull: true},
		tableschema.Column{Name: "d", Type: datatype.DoubleType},
		tableschema.Column{Name: "b", Type: datatype.BooleanType},
		tableschema.Column{Name: "ts", Type: datatype.DateTimeType},
		tableschema.Column{Name: "bin", Type: datatype.BinaryType},
	).Lifecycle(7).Build()
	require.NoError(t, e.odps.Tables().Create(all, true, nil, nil))
	loaded := e.odps.Table("all_types")
	require.NoError(t, loaded.Load())
	require.Len(t, loaded.Schema().Columns, 6)
	require.Empty(t, loaded.Schema().PartitionColumns)
	require.Equal(t, 7, loaded.LifeCycle())
	require.True(t, loaded.Schema().Columns[1].NotNull)
	require.Equal(t, "a string", loaded.Schema().Columns[0].Comment)

	var listed []string
	e.odps.Tables().List(func(tb *odps.Table, err error) {
		require.NoError(t, err)
		listed = append(listed, tb.Name())
	})
	require.Equal(t, []string{"all_types", "t"}, listed)

	for _, tc := range []struct {
		name, sql, want string
	}{
		{"exists", "CREATE TABLE t(a STRING)", "ODPS-0130071"},
		{"select", "SELECT * FROM t", "ODPS-0130161"},
		{"insert", "INSERT INTO t PARTITION (pt='x') VALUES ('a', 1, 2, 'k', 'v')", "ODPS-0130161"},
		{"unsupported type", "CREATE TABLE d(a DECIMAL(10,2))", "not supported by the odpsemu emulator"},
		{"drop missing", "DROP TABLE nope", "ODPS-0130131"},
		{"partition on missing table", "ALTER TABLE nope ADD PARTITION (pt='x')", "ODPS-0130131"},
		{"bad partition key", "ALTER TABLE t ADD PARTITION (day='x')", "invalid partition spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.sql(tc.sql)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}

	e.mustSQL("DROP TABLE IF EXISTS all_types")
	ok, err = e.odps.Table("all_types").Exists()
	require.NoError(t, err)
	require.False(t, ok)
}

func TestPartitionsDDLAndListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	tbl := e.odps.Table("t")
	require.NoError(t, tbl.AddPartitions(true, []string{"pt=a", "pt=b"}))
	e.mustSQL("ALTER TABLE t ADD IF NOT EXISTS PARTITION (pt='b') PARTITION (pt='c');")
	require.Error(t, e.sql("ALTER TABLE t ADD PARTITION (pt='a')"))

	values, err := tbl.GetPartitionValues()
	require.NoError(t, err)
	require.Equal(t, []string{"pt=a", "pt=b", "pt=c"}, values)

	require.NoError(t, tbl.DeletePartition(true, "pt=c"))
	parts, err := tbl.GetPartitions()
	require.NoError(t, err)
	require.Len(t, parts, 2)
	require.Equal(t, "pt='a'", parts[0].Spec())

	p, err := tbl.GetPartition("pt=b")
	require.NoError(t, err)
	require.Equal(t, "pt=b", p.Value())
	_, err = tbl.GetPartition("pt=zzz")
	require.ErrorContains(t, err, "not found")
}

func TestUploadTwoBlocksCommitAndDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=2024-05-01 10"

	block0, block1 := kafkaRecords("orders", 0, 3), kafkaRecords("orders", 3, 2)
	block0[1][3] = nil // a NULL key
	s := e.upload("t", map[int][]data.Record{0: block0, 1: block1},
		tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	require.NoError(t, s.Load())
	require.Equal(t, tunnel.UploadStatusClosed, s.Status())

	require.Equal(t, rowsOf(block0, block1), e.download("t", part, nil))
	require.Equal(t, [][]any{{"value-1", int64(1)}, {"value-2", int64(2)}},
		e.projected("t", part, 1, 2, []string{"value", "offset"}))

	parts, err := e.odps.Table("t").GetPartitions()
	require.NoError(t, err)
	require.Len(t, parts, 1)
	require.Equal(t, part, parts[0].Value())
	require.Equal(t, 5, parts[0].RecordNum())

	p := odps.NewPartition(e.odps, testProject, "", "t", part)
	require.NoError(t, p.Load())
	require.Equal(t, 5, p.RecordNum())

	// A second session appends; a download session created before reads its snapshot.
	before, err := e.tunnel.CreateDownloadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	more := kafkaRecords("orders", 5, 1)
	e.upload("t", map[int][]data.Record{7: more}, tunnel.SessionCfg.WithPartitionKey(part))
	require.Equal(t, rowsOf(block0, block1, more), e.download("t", part, nil))

	attached, err := e.tunnel.AttachToExistedDownloadSession(testProject, "t", before.Id, tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	require.Equal(t, 5, attached.RecordCount())

	require.NoError(t, e.odps.Tables().Delete("t", false))
	ok, err := e.odps.Table("t").Exists()
	require.NoError(t, err)
	require.False(t, ok)
}

func (e *env) projected(table, partition string, start, count int, columns []string) [][]any {
	e.t.Helper()
	ds, err := e.tunnel.CreateDownloadSession(testProject, table, tunnel.SessionCfg.WithPartitionKey(partition))
	require.NoError(e.t, err)
	r, err := ds.OpenRecordReader(start, count, columns)
	require.NoError(e.t, err)
	defer r.Close()
	var rows [][]any
	require.NoError(e.t, r.Iterator(func(rec data.Record, err error) {
		require.NoError(e.t, err)
		rows = append(rows, values(rec))
	}))
	return rows
}

func TestAllTypesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL("CREATE TABLE typed (s STRING, i BIGINT, d DOUBLE, b BOOLEAN, ts DATETIME, bin BINARY)")
	at := time.Date(2024, 5, 1, 10, 30, 0, 123_000_000, time.UTC)
	recs := []data.Record{
		{data.String("héllo"), data.BigInt(-42), data.Double(3.25), data.Bool(true), data.DateTime(at), data.Binary{0, 1, 255}},
		{data.String(""), data.BigInt(1 << 62), data.Double(-0.5), data.Bool(false), data.DateTime(at.Add(-48 * time.Hour)), data.Binary{}},
		{nil, nil, nil, nil, nil, nil},
	}
	e.upload("typed", map[int][]data.Record{0: recs})
	got := e.download("typed", "", nil)
	require.Equal(t, rowsOf(recs), got)
}

func TestOverwriteReplacesRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=day1"
	first := kafkaRecords("a", 0, 4)
	e.upload("t", map[int][]data.Record{0: first}, tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())

	// Until the overwrite commits, readers see the old rows.
	s, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.Overwrite())
	require.NoError(t, err)
	second := kafkaRecords("b", 100, 2)
	writeBlock(t, s, 0, second)
	require.Equal(t, rowsOf(first), e.download("t", part, nil))
	require.NoError(t, s.Commit([]int{0}))
	require.Equal(t, rowsOf(second), e.download("t", part, nil))
}

func TestAttachReuploadAndCommitErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=p1"
	s, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	require.NoError(t, err)
	writeBlock(t, s, 0, kafkaRecords("x", 0, 3))
	replacement := kafkaRecords("y", 10, 2)
	writeBlock(t, s, 0, replacement) // the same block id again replaces it
	writeBlock(t, s, 4, kafkaRecords("z", 20, 1))

	attached, err := e.tunnel.AttachToExistedUploadSession(testProject, "t", s.Id, tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	require.Equal(t, s.Id, attached.Id)
	require.Equal(t, tunnel.UploadStatusNormal, attached.Status())
	require.ElementsMatch(t, []int{0, 4}, attached.BlockIds())
	require.Equal(t, s.Schema().Columns, attached.Schema().Columns)

	// The SDK checks the block list against the server's before committing.
	require.ErrorContains(t, attached.Commit([]int{0, 4, 5}), "blocks server got are")

	require.NoError(t, attached.Commit([]int{0, 4}))
	require.Equal(t, rowsOf(replacement, kafkaRecords("z", 20, 1)), e.download("t", part, nil))

	// Attaching to a committed session works and shows it closed; committing again is the
	// service's StatusConflict. (The SDK retries a failed commit 3 times, sleeping ~11s.)
	again, err := e.tunnel.AttachToExistedUploadSession(testProject, "t", s.Id, tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	require.Equal(t, tunnel.UploadStatusClosed, again.Status())
	require.Equal(t, codeStatusConflict, errorCode(t, again.Commit([]int{0, 4})))
	require.Equal(t, codeStatusConflict, errorCode(t, tryWriteBlock(again, 9, kafkaRecords("late", 0, 1))))
	require.Len(t, e.download("t", part, nil), 3)

	_, err = e.tunnel.AttachToExistedUploadSession(testProject, "t", "no-such-session")
	require.Equal(t, "NoSuchUpload", errorCode(t, err))
}

const codeStatusConflict = "StatusConflict"

// tamperingProxy is a proxy in front of the emulator that rewrites bytes inside a
// value of every uploaded block, as a damaged network path would.
func tamperingProxy(t *testing.T, next http.Handler, find, replace string) *httptest.Server {
	t.Helper()
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			body, err := io.ReadAll(r.Body)
			require.NoError(t, err)
			require.True(t, bytes.Contains(body, []byte(find)), "marker not in the block")
			body = bytes.ReplaceAll(body, []byte(find), []byte(replace))
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func TestCorruptBlockIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	proxy := tamperingProxy(t, e.srv, "tamper-me", "tamper-ME")
	tt := tunnel.NewTunnel(e.odps, proxy.URL)

	const part = "pt=c"
	s, err := tt.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	require.NoError(t, err)
	recs := kafkaRecords("c", 0, 3)
	recs[1][4] = data.String("tamper-me")
	err = tryWriteBlock(s, 0, recs)
	require.Equal(t, "CorruptedDataStream", errorCode(t, err))

	require.NoError(t, s.Load())
	require.Empty(t, s.BlockIds())
	require.Error(t, s.Commit([]int{0}))
	require.Empty(t, e.download("t", part, nil))
}

// rawBlock builds a record stream by hand with the SDK's exported protobuf writer and
// checksum, so that tests can send blocks the SDK's record writer would not produce.
type rawBlock struct {
	buf      bytes.Buffer
	w        *tunnel.ProtocStreamWriter
	crc      tunnel.Crc32CheckSum
	crcOfCrc tunnel.Crc32CheckSum
	count    int64
}

func newRawBlock() *rawBlock {
	b := &rawBlock{crc: tunnel.NewCrc32CheckSum(), crcOfCrc: tunnel.NewCrc32CheckSum()}
	b.w = tunnel.NewProtocStreamWriter(&b.buf)
	return b
}

func (b *rawBlock) bytesField(col int, v string) *rawBlock {
	b.crc.Update(int32(col))
	_ = b.w.WriteTag(protowire.Number(col), protowire.BytesType)
	b.crc.Update([]byte(v))
	_ = b.w.WriteBytes([]byte(v))
	return b
}

func (b *rawBlock) bigintField(col int, v int64) *rawBlock {
	b.crc.Update(int32(col))
	_ = b.w.WriteTag(protowire.Number(col), protowire.VarintType)
	b.crc.Update(v)
	_ = b.w.WriteSInt64(v)
	return b
}

func (b *rawBlock) endRecord() *rawBlock {
	_ = b.w.WriteTag(tunnel.EndRecord, protowire.VarintType)
	v := b.crc.Value()
	_ = b.w.WriteUInt32(v)
	b.crc.Reset()
	b.crcOfCrc.Update(v)
	b.count++
	return b
}

func (b *rawBlock) finish(count int64) []byte {
	_ = b.w.WriteTag(tunnel.MetaCount, protowire.VarintType)
	_ = b.w.WriteSInt64(count)
	_ = b.w.WriteTag(tunnel.MetaChecksum, protowire.VarintType)
	_ = b.w.WriteUInt32(b.crcOfCrc.Value())
	return b.buf.Bytes()
}

// putBlock sends a raw block with the SDK's signed REST client.
func (e *env) putBlock(s *tunnel.UploadSession, blockID int, body []byte) error {
	client := restclient.NewOdpsRestClient(account.NewAliyunAccount(testAK, testSK), e.http.URL)
	q := url.Values{}
	q.Set("uploadid", s.Id)
	q.Set("blockid", fmt.Sprint(blockID))
	q.Set("partition", s.PartitionKey())
	req, err := client.NewRequestWithUrlQuery(http.MethodPut, s.ResourceUrl(), bytes.NewReader(body), q)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := client.Do(req)
	if err == nil {
		_ = res.Body.Close()
	}
	return err
}

func TestMalformedBlocksAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	s, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey("pt=m"), tunnel.SessionCfg.WithCreatePartition())
	require.NoError(t, err)

	good := func() *rawBlock {
		return newRawBlock().bytesField(1, "topic").bigintField(2, 1).bigintField(3, 7).bytesField(4, "k").bytesField(5, "v")
	}
	for _, tc := range []struct {
		name string
		body []byte
		code string
	}{
		{"well formed", good().endRecord().finish(1), ""},
		{"string in a BIGINT column", newRawBlock().bytesField(1, "topic").bytesField(2, "not a number").endRecord().finish(1), "MalformedDataStream"},
		{"more fields than columns", good().bytesField(6, "extra").endRecord().finish(1), "MalformedDataStream"},
		{"wrong record count", good().endRecord().finish(2), "CorruptedDataStream"},
		{"missing trailer", good().endRecord().buf.Bytes(), "MalformedDataStream"},
		{"unterminated record", good().finish(0), "MalformedDataStream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.putBlock(s, 0, tc.body)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tc.code, errorCode(t, err))
		})
	}
	require.NoError(t, s.Load())
	require.Equal(t, []int{0}, s.BlockIds()) // only the well-formed block was stored
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestExpiredSessionsAreRefused(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, odpsemu.Options{SessionTTL: 50 * time.Millisecond, Now: clock.Now})
	e.mustSQL(defaultDDL)
	const part = "pt=old"
	e.upload("t", map[int][]data.Record{0: kafkaRecords("e", 0, 2)},
		tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())

	up, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	down, err := e.tunnel.CreateDownloadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)

	clock.Advance(100 * time.Millisecond)

	err = tryWriteBlock(up, 0, kafkaRecords("e", 2, 1))
	require.Equal(t, codeStatusConflict, errorCode(t, err))
	require.ErrorContains(t, err, "expired")
	require.NoError(t, up.Load())
	require.Equal(t, tunnel.UploadStatusExpired, up.Status())

	_, err = down.OpenRecordReader(0, 1, nil)
	require.Equal(t, codeStatusConflict, errorCode(t, err))
	require.ErrorContains(t, err, "expired")
}

func TestServiceErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	e.mustSQL("CREATE TABLE flat (a STRING)")
	withPart := tunnel.SessionCfg.WithPartitionKey("pt=none")
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"upload to missing table", func() error {
			_, err := e.tunnel.CreateUploadSession(testProject, "nope", withPart)
			return err
		}, "NoSuchTable"},
		{"upload to missing partition", func() error {
			_, err := e.tunnel.CreateUploadSession(testProject, "t", withPart)
			return err
		}, "NoSuchPartition"},
		{"download missing partition", func() error {
			_, err := e.tunnel.CreateDownloadSession(testProject, "t", withPart)
			return err
		}, "NoSuchPartition"},
		{"upload without partition", func() error {
			_, err := e.tunnel.CreateUploadSession(testProject, "t")
			return err
		}, "MissingPartitionSpec"},
		{"partition of an unpartitioned table", func() error {
			_, err := e.tunnel.CreateUploadSession(testProject, "flat", withPart)
			return err
		}, "InvalidPartitionSpec"},
		{"missing project", func() error {
			_, err := e.tunnel.CreateUploadSession("nope", "t", withPart)
			return err
		}, "NoSuchProject"},
		{"block id out of range", func() error {
			s, err := e.tunnel.CreateUploadSession(testProject, "flat")
			require.NoError(t, err)
			return e.putBlock(s, 20000, newRawBlock().finish(0))
		}, "InvalidBlockID"},
		{"row range beyond the session", func() error {
			ds, err := e.tunnel.CreateDownloadSession(testProject, "flat")
			require.NoError(t, err)
			_, err = ds.OpenRecordReader(0, 1, nil)
			return err
		}, "InvalidRowRange"},
		{"REST missing table", func() error { return e.odps.Table("nope").Load() }, "NoSuchObject"},
		{"REST missing project", func() error { return e.odps.Project("nope").Load() }, "NoSuchObject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.code, errorCode(t, tc.call()))
		})
	}
}

// encodingRecorder is a proxy in front of the emulator that records the Content-Encoding of
// uploaded blocks and of downloaded record streams.
type encodingRecorder struct {
	mu       sync.Mutex
	up, down []string
}

func (rec *encodingRecorder) proxy(t *testing.T, next http.Handler) *httptest.Server {
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			rec.mu.Lock()
			rec.up = append(rec.up, r.Header.Get("Content-Encoding"))
			rec.mu.Unlock()
		}
		next.ServeHTTP(w, r)
		if r.URL.Query().Has("data") {
			rec.mu.Lock()
			rec.down = append(rec.down, w.Header().Get("Content-Encoding"))
			rec.mu.Unlock()
		}
	}))
	t.Cleanup(p.Close)
	return p
}

func (rec *encodingRecorder) take() (up, down []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	up, down, rec.up, rec.down = rec.up, rec.down, nil, nil
	return up, down
}

func TestCompressionsRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	var rec encodingRecorder
	e.tunnel = tunnel.NewTunnel(e.odps, rec.proxy(t, e.srv).URL)
	for i, tc := range []struct {
		name     string
		opt      tunnel.Option
		encoding string
	}{
		{"none", nil, ""},
		{"deflate", tunnel.SessionCfg.WithDefaultDeflateCompressor(), "deflate"},
		{"deflate best compression", tunnel.SessionCfg.WithDeflateCompressor(tunnel.DeflateLevel.BestCompression), "deflate"},
		{"snappy framed", tunnel.SessionCfg.WithSnappyFramedCompressor(), "x-snappy-framed"},
		{"zstd", tunnel.SessionCfg.WithDefaultZstdCompressor(), "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			part := fmt.Sprintf("pt=c%d", i)
			opts := []tunnel.Option{tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition()}
			var dlOpts []tunnel.Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
				dlOpts = append(dlOpts, tc.opt)
			}
			recs := kafkaRecords(strings.Repeat("compressible-", 20), 0, 200)
			e.upload("t", map[int][]data.Record{0: recs[:120], 1: recs[120:]}, opts...)
			require.Equal(t, rowsOf(recs), e.download("t", part, nil, dlOpts...))
			up, down := rec.take()
			require.Equal(t, []string{tc.encoding, tc.encoding}, up)
			require.Equal(t, []string{tc.encoding}, down)
		})
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=r"
	committed := kafkaRecords("r", 0, 3)
	e.upload("t", map[int][]data.Record{0: committed}, tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	open, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	pending := kafkaRecords("r", 3, 2)
	writeBlock(t, open, 3, pending)

	e.restart()

	tbl := e.odps.Table("t")
	require.NoError(t, tbl.Load())
	require.Len(t, tbl.Schema().Columns, 5)
	values, err := tbl.GetPartitionValues()
	require.NoError(t, err)
	require.Equal(t, []string{part}, values)
	require.Equal(t, rowsOf(committed), e.download("t", part, nil))

	attached, err := e.tunnel.AttachToExistedUploadSession(testProject, "t", open.Id, tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(t, err)
	require.Equal(t, []int{3}, attached.BlockIds())
	require.NoError(t, attached.Commit([]int{3}))

	e.restart()
	require.Equal(t, rowsOf(committed, pending), e.download("t", part, nil))
}

func TestSignatureIsVerified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)

	bad := newOdps(e.http.URL, testAK, "wrong-secret")
	err := bad.Table("t").Load()
	require.Equal(t, "SignatureNotMatch", errorCode(t, err))
	var he restclient.HttpError
	require.True(t, errors.As(err, &he))
	require.Equal(t, http.StatusForbidden, he.StatusCode)

	_, err = tunnel.NewTunnel(bad, e.http.URL).CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey("pt=x"))
	require.Equal(t, "Unauthorized", errorCode(t, err))

	other := newOdps(e.http.URL, "someone-else", testSK)
	require.Equal(t, "SignatureNotMatch", errorCode(t, other.Table("t").Load()))

	// Signature V4 (an account with a region) is accepted too.
	v4 := odps.NewOdps(account.NewAliyunAccount(testAK, testSK, "cn-hangzhou"), e.http.URL+"/api")
	v4.SetDefaultProjectName(testProject)
	require.NoError(t, v4.Table("t").Load())
}

func TestTunnelEndpointDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	tt, err := tunnel.NewTunnelFromProject(e.odps.DefaultProject())
	require.NoError(t, err)
	require.Equal(t, e.http.URL, tt.GetEndpoint())

	e.tunnel = tunnel.NewTunnel(e.odps) // discovers the endpoint on first use
	recs := kafkaRecords("d", 0, 2)
	e.upload("t", map[int][]data.Record{0: recs}, tunnel.SessionCfg.WithPartitionKey("pt=d"), tunnel.SessionCfg.WithCreatePartition())
	require.Equal(t, e.http.URL, e.tunnel.GetEndpoint())
	require.Equal(t, rowsOf(recs), e.download("t", "pt=d", nil))
}

func TestNoCredentialsConfiguredAcceptsAnySigner(t *testing.T) {
	t.Parallel()
	srv, err := odpsemu.New(odpsemu.Options{Dir: t.TempDir(), Projects: []string{testProject, "other"}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		require.NoError(t, srv.Close())
	})
	o := newOdps(hs.URL, "anyone", "anything")
	p := o.DefaultProject()
	require.NoError(t, p.Load())
	require.Equal(t, "AVAILABLE", p.Status().String())
	require.NoError(t, o.Project("other").Load())
}
