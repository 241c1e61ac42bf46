package maxcompute_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/transform"
)

const (
	project = "connector_test"
	topic   = "maxcompute-test-input"
)

var creds = connector.Credentials{AccessKeyID: "test-ak", AccessKeySecret: "test-sk"}

// emulator is one odpsemu server over httptest.
type emulator struct {
	url string
	srv *odpsemu.Server // for fault injection
}

func startEmulator(t testing.TB, edit ...func(*odpsemu.Options)) *emulator {
	t.Helper()
	opts := odpsemu.Options{
		Dir:             t.TempDir(),
		Projects:        []string{project},
		AccessKeyID:     creds.AccessKeyID,
		AccessKeySecret: creds.AccessKeySecret,
	}
	for _, e := range edit {
		e(&opts)
	}
	h, err := odpsemu.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &emulator{url: srv.URL, srv: h}
}

// spec is a valid connector spec writing to table on e.
func (e *emulator) spec(t testing.TB, table string, edit func(*connector.MaxComputeSpec)) *connector.Spec {
	t.Helper()
	mc := &connector.MaxComputeSpec{
		Endpoint:       e.url + "/api",
		TunnelEndpoint: e.url,
		Project:        project,
		Table:          table,
		Credentials:    "local",
	}
	if edit != nil {
		edit(mc)
	}
	s := &connector.Spec{
		Name:  "mc-test",
		Kafka: connector.KafkaSpec{Brokers: []string{"localhost:9092"}, Topic: topic},
		Sink:  connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: mc},
	}
	s.Default()
	require.NoError(t, s.Validate())
	return s
}

// exec runs DDL through the SDK, as a user would with odpscmd.
func (e *emulator) exec(t *testing.T, sql string) {
	t.Helper()
	o := odps.NewOdps(account.NewAliyunAccount(creds.AccessKeyID, creds.AccessKeySecret), e.url+"/api")
	o.SetDefaultProjectName(project)
	ins, err := o.ExecSQl(sql)
	require.NoError(t, err)
	require.NoError(t, ins.WaitForSuccess())
}

func newSink(t testing.TB, spec *connector.Spec, opts ...maxcompute.Option) *maxcompute.Sink {
	t.Helper()
	// Subtests write the same offsets into tables of their own; each table
	// gets a ledger of its own so the sink's one-writer check keeps them
	// apart.
	opts = append([]maxcompute.Option{maxcompute.WithLedgerTable(spec.Sink.MaxCompute.Table + "_ledger")}, opts...)
	s, err := maxcompute.New(spec, creds, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// at is 2020-11-17 hh:mm:ss UTC.
func at(hh, mm, ss int) time.Time { return time.Date(2020, 11, 17, hh, mm, ss, 0, time.UTC) }

func rec(off int64, ts time.Time, key, value []byte) *transform.Record {
	return &transform.Record{Topic: topic, Partition: 0, Offset: off, Timestamp: ts, Key: key, Value: value}
}

// textRecords are n records at ts with key "k<i>" and value "v<i>", offsets from first.
func textRecords(first int64, n int, ts time.Time) []*transform.Record {
	rs := make([]*transform.Record, n)
	for i := range rs {
		off := first + int64(i)
		rs[i] = rec(off, ts, fmt.Appendf(nil, "k%d", off), fmt.Appendf(nil, "v%d", off))
	}
	return rs
}

func batchID(rs []*transform.Record) sink.BatchID {
	return sink.BatchID{Connector: "mc-test", Topic: topic, Partition: 0, First: rs[0].Offset, End: rs[len(rs)-1].Offset + 1}
}

// prepare prepares the partitions rs land in, in first-seen order.
func prepare(t testing.TB, s *maxcompute.Sink, rs []*transform.Record) *sink.Prepared {
	t.Helper()
	var parts []string
	seen := map[string]bool{}
	for _, r := range rs {
		p, err := s.PartitionOf(r)
		require.NoError(t, err)
		if !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	p, err := s.Prepare(context.Background(), batchID(rs), parts, nil)
	require.NoError(t, err)
	require.Len(t, p.Sessions, len(parts))
	return p
}

// write runs one Begin/Add/Commit of rs and returns what was written and
// the rejected records' errors.
func write(t *testing.T, s *maxcompute.Sink, p *sink.Prepared, rs []*transform.Record) (sink.Written, []error) {
	t.Helper()
	ctx := context.Background()
	b, err := s.Begin(ctx, batchID(rs), p)
	require.NoError(t, err)
	var rejects []error
	for _, r := range rs {
		if err := b.Add(ctx, r); err != nil {
			_, ok := sink.IsReject(err)
			require.True(t, ok, "add offset %d: %v", r.Offset, err)
			rejects = append(rejects, err)
		}
	}
	w, err := b.Commit(ctx)
	require.NoError(t, err)
	return w, rejects
}

// rows reads partition part of spec's table.
func rows(t *testing.T, spec *connector.Spec, part string) [][]any {
	t.Helper()
	var out [][]any
	err := maxcompute.ReadRows(context.Background(), spec, creds, part, func(row []any) error {
		out = append(out, row)
		return nil
	})
	require.NoError(t, err)
	return out
}

func requirePermanent(t *testing.T, err error, typ string) {
	t.Helper()
	require.Error(t, err)
	var pe *sink.PermanentError
	require.ErrorAs(t, err, &pe, "want a permanent %s error, got %v", typ, err)
	require.Equal(t, typ, pe.Type, "error: %v", err)
	t.Logf("%s: %v", typ, err)
}

func TestDefaultTableCreatedOnDemand(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "test_kafka", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec)
	require.NoError(t, s.EnsureTable(context.Background()))
	require.NoError(t, s.EnsureTable(context.Background()), "second call is a no-op")

	info, err := maxcompute.ShowTable(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Equal(t, "test_kafka", info.Name)
	var cols []string
	for _, c := range info.Columns {
		cols = append(cols, c.Name+" "+c.Type)
	}
	require.Equal(t, []string{"topic STRING", "partition BIGINT", "offset BIGINT", "key STRING", "value STRING"}, cols)
	require.Len(t, info.PartitionColumns, 1)
	require.Equal(t, "pt", info.PartitionColumns[0].Name)

	// A first write creates its partition on demand.
	rs := textRecords(0, 3, at(6, 30, 0))
	p := prepare(t, s, rs)
	w, rejects := write(t, s, p, rs)
	require.Empty(t, rejects)
	require.Equal(t, int64(3), w.Records)
	require.Equal(t, []string{p.Sessions[0].ID}, w.Objects)
	parts, err := maxcompute.ListPartitions(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Equal(t, []string{"pt=11-17-2020 14"}, parts)
	require.Len(t, rows(t, spec, parts[0]), 3)
}

func TestPermanentErrors(t *testing.T) {
	emu := startEmulator(t)
	emu.exec(t, "CREATE TABLE wrong(a STRING, b BIGINT) PARTITIONED BY (pt STRING);")
	emu.exec(t, "CREATE TABLE csv_t(c0 STRING, c1 BIGINT) PARTITIONED BY (pt STRING);")
	tests := []struct {
		name  string
		edit  func(*connector.MaxComputeSpec)
		creds connector.Credentials
		typ   string
	}{
		{"missing table", func(mc *connector.MaxComputeSpec) { mc.Table = "absent" }, creds, maxcompute.ErrNoSuchTable},
		{"missing project", func(mc *connector.MaxComputeSpec) { mc.Project = "nowhere"; mc.CreateTable = true }, creds, maxcompute.ErrNoSuchProject},
		{"bad secret", nil, connector.Credentials{AccessKeyID: creds.AccessKeyID, AccessKeySecret: "wrong"}, maxcompute.ErrAccessDenied},
		{"text into non-default table", func(mc *connector.MaxComputeSpec) { mc.Table = "wrong" }, creds, maxcompute.ErrSchemaMismatch},
		{"text into csv table", func(mc *connector.MaxComputeSpec) { mc.Table = "csv_t" }, creds, maxcompute.ErrSchemaMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := emu.spec(t, "wrong", tc.edit)
			s, err := maxcompute.New(spec, tc.creds)
			require.NoError(t, err)
			requirePermanent(t, s.EnsureTable(context.Background()), tc.typ)
		})
	}

	t.Run("schema mismatch names the columns", func(t *testing.T) {
		s := newSink(t, emu.spec(t, "wrong", nil))
		err := s.EnsureTable(context.Background())
		require.ErrorContains(t, err, "(a STRING, b BIGINT) PARTITIONED BY (pt STRING)")
	})
	t.Run("begin without prepare", func(t *testing.T) {
		s := newSink(t, emu.spec(t, "t_np", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true }))
		_, err := s.Begin(context.Background(), sink.BatchID{}, nil)
		requirePermanent(t, err, maxcompute.ErrNotPrepared)
	})
}

func TestModes(t *testing.T) {
	emu := startEmulator(t)
	tests := []struct {
		mode       string
		key, value any
	}{
		{connector.ModeDefault, "k7", "v7"},
		{connector.ModeKey, "k7", nil},
		{connector.ModeValue, nil, "v7"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			spec := emu.spec(t, "modes_"+tc.mode, func(mc *connector.MaxComputeSpec) {
				mc.CreateTable = true
				mc.Mode = tc.mode
			})
			s := newSink(t, spec)
			rs := []*transform.Record{rec(7, at(6, 0, 0), []byte("k7"), []byte("v7"))}
			write(t, s, prepare(t, s, rs), rs)
			got := rows(t, spec, "pt=11-17-2020 14")
			require.Equal(t, [][]any{{topic, int64(0), int64(7), tc.key, tc.value, "11-17-2020 14"}}, got)
		})
	}

	t.Run("null key", func(t *testing.T) {
		spec := emu.spec(t, "modes_null", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
		s := newSink(t, spec)
		rs := []*transform.Record{rec(1, at(6, 0, 0), nil, []byte("v"))}
		write(t, s, prepare(t, s, rs), rs)
		require.Equal(t, [][]any{{topic, int64(0), int64(1), nil, "v", "11-17-2020 14"}}, rows(t, spec, "pt=11-17-2020 14"))
	})
}

func TestFormats(t *testing.T) {
	emu := startEmulator(t)
	bad := []byte{0xff, 0xfe, 'x'}
	tests := []struct {
		format string
		mode   string
		reject bool
	}{
		{connector.FormatText, connector.ModeDefault, true},
		{connector.FormatText, connector.ModeValue, true},
		{connector.FormatText, connector.ModeKey, false}, // the key is valid; the value is not written
		{connector.FormatBinary, connector.ModeDefault, false},
	}
	for _, tc := range tests {
		t.Run(tc.format+"_"+tc.mode, func(t *testing.T) {
			spec := emu.spec(t, "fmt_"+tc.format+"_"+tc.mode, func(mc *connector.MaxComputeSpec) {
				mc.CreateTable = true
				mc.Format = tc.format
				mc.Mode = tc.mode
			})
			s := newSink(t, spec)
			rs := []*transform.Record{
				rec(0, at(6, 0, 0), []byte("k0"), []byte("v0")),
				rec(1, at(6, 0, 0), []byte("k1"), bad),
			}
			w, rejects := write(t, s, prepare(t, s, rs), rs)
			got := rows(t, spec, "pt=11-17-2020 14")
			if tc.reject {
				require.Len(t, rejects, 1)
				re, _ := sink.IsReject(rejects[0])
				require.Equal(t, "convert", re.Stage)
				require.ErrorContains(t, re, "topic "+topic+" partition 0 offset 1")
				require.ErrorContains(t, re, "not valid UTF-8")
				require.Equal(t, int64(1), w.Records)
				require.Len(t, got, 1)
				return
			}
			require.Empty(t, rejects)
			require.Len(t, got, 2)
			if tc.format == connector.FormatBinary {
				require.Equal(t, string(bad), got[1][4], "raw bytes round-trip")
			}
		})
	}
}

func TestCSV(t *testing.T) {
	emu := startEmulator(t)
	emu.exec(t, "CREATE TABLE csv_t(c0 STRING, c1 BIGINT, c2 DOUBLE, c3 BOOLEAN, c4 DATETIME) PARTITIONED BY (pt STRING);")
	spec := emu.spec(t, "csv_t", func(mc *connector.MaxComputeSpec) {
		mc.Mode = connector.ModeValue
		mc.Format = connector.FormatCSV
	})
	s := newSink(t, spec)
	rs := []*transform.Record{
		rec(0, at(6, 0, 0), []byte("ignored"), []byte("a,1,2.5,true,2020-11-17 14:05:00")),
		rec(1, at(6, 0, 0), nil, []byte("b,2,3.5")),                              // too few fields
		rec(2, at(6, 0, 0), nil, []byte("c,x,4.5,false,2020-11-17 14:05:00")),    // bad BIGINT
		rec(3, at(6, 0, 0), nil, []byte("d,4,,false,2020-11-17 14:05:00")),       // empty DOUBLE: NULL
		rec(4, at(6, 0, 0), nil, []byte("e,5,1e3,maybe,2020-11-17 14:05:00")),    // bad BOOLEAN
		rec(5, at(6, 0, 0), nil, []byte("f,6,1,0,2020-11-17 14:05:00,extra")),    // too many fields
		rec(6, at(6, 0, 0), nil, []byte("g,7,1,1,17/11/2020")),                   // bad DATETIME
		rec(7, at(6, 0, 0), nil, []byte("h,-8,0.25,FALSE,2020-11-17T06:05:00Z")), // RFC 3339
	}
	w, rejects := write(t, s, prepare(t, s, rs), rs)
	require.Equal(t, int64(3), w.Records)
	require.Len(t, rejects, 5)
	msgs := make([]string, len(rejects))
	for i, err := range rejects {
		msgs[i] = err.Error()
	}
	require.Contains(t, msgs[0], "offset 1: value has 3 comma-separated fields, table connector_test.csv_t has 5 columns")
	require.Contains(t, msgs[1], `offset 2: value field 1 "x" for column c1 BIGINT`)
	require.Contains(t, msgs[2], `offset 4: value field 3 "maybe" for column c3 BOOLEAN`)
	require.Contains(t, msgs[3], "offset 5: value has 6 comma-separated fields")
	require.Contains(t, msgs[4], `offset 6: value field 4 "17/11/2020" for column c4 DATETIME`)

	got := rows(t, spec, "pt=11-17-2020 14")
	require.Len(t, got, 3)
	dt := time.Date(2020, 11, 17, 6, 5, 0, 0, time.UTC) // 14:05 at GMT+08:00
	want := [][]any{
		{"a", int64(1), 2.5, true, dt},
		{"d", int64(4), nil, false, dt},
		{"h", int64(-8), 0.25, false, dt},
	}
	for i, row := range got {
		require.Len(t, row, 6)
		for j, v := range want[i] {
			if tm, ok := v.(time.Time); ok {
				require.True(t, tm.Equal(row[j].(time.Time)), "row %d column %d: %v", i, j, row[j])
				continue
			}
			require.Equal(t, v, row[j], "row %d column %d", i, j)
		}
	}

	t.Run("key mode", func(t *testing.T) {
		emu.exec(t, "CREATE TABLE csv_k(c0 STRING, c1 BIGINT, c2 DOUBLE) PARTITIONED BY (pt STRING);")
		spec := emu.spec(t, "csv_k", func(mc *connector.MaxComputeSpec) {
			mc.Mode = connector.ModeKey
			mc.Format = connector.FormatCSV
		})
		s := newSink(t, spec)
		rs := []*transform.Record{
			rec(0, at(6, 0, 0), []byte("x,1,1.5"), []byte("not,used")),
			rec(1, at(6, 0, 0), nil, []byte("y,2,2.5")), // null key
		}
		_, rejects := write(t, s, prepare(t, s, rs), rs)
		require.Len(t, rejects, 1)
		require.ErrorContains(t, rejects[0], "key is null")
		require.Equal(t, [][]any{{"x", int64(1), 1.5, "11-17-2020 14"}}, rows(t, spec, "pt=11-17-2020 14"))
	})
}

func TestPartitionOf(t *testing.T) {
	emu := startEmulator(t)
	tests := []struct {
		granularity, zone string
		ts                time.Time
		want              string
	}{
		{"HOUR", "GMT+08:00", at(6, 59, 59), "pt=11-17-2020 14"},
		{"HOUR", "GMT+08:00", at(7, 0, 0), "pt=11-17-2020 15"},
		{"HOUR", "GMT+08:00", at(16, 30, 0), "pt=11-18-2020 00"},
		{"DAY", "GMT+08:00", at(15, 59, 59), "pt=11-17-2020"},
		{"DAY", "GMT+08:00", at(16, 0, 0), "pt=11-18-2020"},
		{"MINUTE", "GMT+08:00", at(6, 5, 59), "pt=11-17-2020 14:05"},
		{"MINUTE", "GMT+08:00", at(6, 6, 0), "pt=11-17-2020 14:06"},
		{"HOUR", "America/New_York", at(19, 59, 59), "pt=11-17-2020 14"}, // EST, UTC-5
		{"HOUR", "America/New_York", at(20, 0, 0), "pt=11-17-2020 15"},
		{"HOUR", "America/New_York", time.Date(2020, 7, 1, 18, 0, 0, 0, time.UTC), "pt=07-01-2020 14"}, // EDT, UTC-4
		{"DAY", "Asia/Kolkata", at(18, 29, 59), "pt=11-17-2020"},
		{"DAY", "Asia/Kolkata", at(18, 30, 0), "pt=11-18-2020"},
		{"MINUTE", "UTC", at(6, 5, 0), "pt=11-17-2020 06:05"},
	}
	for _, tc := range tests {
		t.Run(tc.granularity+"_"+tc.zone+"_"+tc.ts.Format(time.RFC3339), func(t *testing.T) {
			s := newSink(t, emu.spec(t, "t", func(mc *connector.MaxComputeSpec) {
				mc.Partition = tc.granularity
				mc.TimeZone = tc.zone
			}))
			got, err := s.PartitionOf(rec(0, tc.ts, nil, nil))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("no timestamp", func(t *testing.T) {
		s := newSink(t, emu.spec(t, "t", nil))
		_, err := s.PartitionOf(rec(3, time.Time{}, nil, nil))
		_, ok := sink.IsReject(err)
		require.True(t, ok, "got %v", err)
	})
}

// TestPartitionBoundary writes one batch whose records straddle a partition
// boundary and checks each lands in its own partition.
func TestPartitionBoundary(t *testing.T) {
	emu := startEmulator(t)
	tests := []struct {
		granularity, zone string
		before, after     time.Time
		parts             []string
	}{
		{"HOUR", "GMT+08:00", at(6, 59, 59), at(7, 0, 0), []string{"pt=11-17-2020 14", "pt=11-17-2020 15"}},
		{"DAY", "GMT+08:00", at(15, 59, 59), at(16, 0, 0), []string{"pt=11-17-2020", "pt=11-18-2020"}},
		{"MINUTE", "GMT+08:00", at(6, 5, 59), at(6, 6, 0), []string{"pt=11-17-2020 14:05", "pt=11-17-2020 14:06"}},
		{"HOUR", "America/New_York", at(19, 59, 59), at(20, 0, 0), []string{"pt=11-17-2020 14", "pt=11-17-2020 15"}},
	}
	for i, tc := range tests {
		t.Run(tc.granularity+"_"+tc.zone, func(t *testing.T) {
			spec := emu.spec(t, fmt.Sprintf("boundary_%d", i), func(mc *connector.MaxComputeSpec) {
				mc.CreateTable = true
				mc.Partition = tc.granularity
				mc.TimeZone = tc.zone
			})
			s := newSink(t, spec)
			rs := append(textRecords(0, 2, tc.before), textRecords(2, 3, tc.after)...)
			p := prepare(t, s, rs)
			w, _ := write(t, s, p, rs)
			require.Equal(t, int64(5), w.Records)
			require.Len(t, w.Objects, 2)

			parts, err := maxcompute.ListPartitions(context.Background(), spec, creds)
			require.NoError(t, err)
			require.Equal(t, tc.parts, parts)
			require.Len(t, rows(t, spec, tc.parts[0]), 2)
			after := rows(t, spec, tc.parts[1])
			require.Len(t, after, 3)
			require.Equal(t, int64(2), after[0][2])
		})
	}
}

func TestRetriedBatchWritesOnce(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "retry", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	// Tiny blocks: every row is a block, so the retry rewrites many block ids.
	s := newSink(t, spec, maxcompute.WithBlockSize(1))
	rs := append(textRecords(0, 4, at(6, 59, 0)), textRecords(4, 3, at(7, 1, 0))...)
	p := prepare(t, s, rs)

	first, _ := write(t, s, p, rs)
	again, _ := write(t, s, p, rs)
	require.Equal(t, first, again, "a retry reports what the first write did")
	require.Equal(t, int64(7), again.Records)

	l, err := maxcompute.ReadLedger(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Equal(t, int64(7), l.Rows)
	require.Empty(t, l.Duplicates)
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 7}}, l.Ranges(0))
}

// TestCommitAfterCrash uploads every block, dies before committing, and
// retries in a fresh process with the same Prepared.
func TestCommitAfterCrash(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "crash", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	rs := textRecords(100, 20, at(6, 0, 0))
	ctx := context.Background()

	// The first attempt cuts a block after every row.
	s1 := newSink(t, spec, maxcompute.WithBlockSize(40))
	p := prepare(t, s1, rs)
	b, err := s1.Begin(ctx, batchID(rs), p)
	require.NoError(t, err)
	for _, r := range rs {
		require.NoError(t, b.Add(ctx, r))
	}
	b.Abort(ctx) // the worker dies: blocks uploaded, nothing committed
	require.Empty(t, rows(t, spec, "pt=11-17-2020 14"))

	// The retry, with bigger blocks, re-attaches and commits only its rows.
	s2 := newSink(t, spec)
	w, _ := write(t, s2, p, rs)
	require.Equal(t, int64(20), w.Records)
	got := rows(t, spec, "pt=11-17-2020 14")
	require.Len(t, got, 20)
	for i, row := range got {
		require.Equal(t, int64(100+i), row[2])
	}
}

func TestLedgerFindsDuplicate(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "ledger", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec)
	rs := append(textRecords(0, 3, at(6, 0, 0)), textRecords(3, 3, at(7, 0, 0))...)
	write(t, s, prepare(t, s, rs), rs)

	l, err := maxcompute.ReadLedger(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Empty(t, l.Duplicates)
	require.Equal(t, int64(6), l.Distinct())

	// The sink refuses to write offset 4 again: its ledger table records
	// [0,6) for the partition.
	dup := textRecords(4, 1, at(7, 0, 0))
	ctx := context.Background()
	b, err := s.Begin(ctx, batchID(dup), prepare(t, s, dup))
	require.NoError(t, err)
	require.NoError(t, b.Add(ctx, dup[0]))
	_, err = b.Commit(ctx)
	requirePermanent(t, err, "ObjectConflict")

	// Plant a duplicate of offset 4 through another connector writing the
	// same topic into the same table (its own ledger partition).
	other := *spec
	other.Name = "other-connector"
	o := newSink(t, &other)
	id := batchID(dup)
	id.Connector = other.Name
	p, err := o.Prepare(ctx, id, []string{"pt=11-17-2020 15"}, nil)
	require.NoError(t, err)
	ob, err := o.Begin(ctx, id, p)
	require.NoError(t, err)
	require.NoError(t, ob.Add(ctx, dup[0]))
	_, err = ob.Commit(ctx)
	require.NoError(t, err)

	l, err = maxcompute.ReadLedger(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Equal(t, int64(7), l.Rows)
	require.Equal(t, int64(6), l.Distinct())
	require.Equal(t, map[int32][]int64{0: {4}}, l.Duplicates)
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 6}}, l.Ranges(0))
}

func TestSessionExpired(t *testing.T) {
	var skew atomic.Int64 // how far the emulator's clock runs ahead
	emu := startEmulator(t, func(o *odpsemu.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	spec := emu.spec(t, "expired", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec)
	rs := textRecords(0, 2, at(6, 0, 0))
	ctx := context.Background()

	requireExpired := func(t *testing.T, err error) {
		t.Helper()
		var exp *sink.ExpiredError
		require.ErrorAs(t, err, &exp)
		require.Equal(t, []string{"pt=11-17-2020 14"}, exp.Expired)
		require.Empty(t, exp.Committed)
	}
	var expired *sink.Prepared
	t.Run("at begin", func(t *testing.T) {
		p := prepare(t, s, rs)
		skew.Store(int64(25 * time.Hour))
		t.Cleanup(func() { skew.Store(0) })
		b, err := s.Begin(ctx, batchID(rs), p)
		require.NoError(t, err, "an expired session is reported by Commit")
		for _, r := range rs {
			require.NoError(t, b.Add(ctx, r))
		}
		_, err = b.Commit(ctx)
		requireExpired(t, err)
	})
	t.Run("at commit", func(t *testing.T) {
		p := prepare(t, s, rs)
		b, err := s.Begin(ctx, batchID(rs), p)
		require.NoError(t, err)
		for _, r := range rs {
			require.NoError(t, b.Add(ctx, r))
		}
		skew.Store(int64(25 * time.Hour))
		t.Cleanup(func() { skew.Store(0) })
		_, err = b.Commit(ctx)
		requireExpired(t, err)
		expired = p
	})
	t.Run("re-prepare replaces only the expired session", func(t *testing.T) {
		skew.Store(int64(25 * time.Hour))
		t.Cleanup(func() { skew.Store(0) })
		p, err := s.Prepare(ctx, batchID(rs), []string{"pt=11-17-2020 14"}, expired.Sessions)
		require.NoError(t, err)
		require.NotEqual(t, expired.Sessions[0].ID, p.Sessions[0].ID)
		w, _ := write(t, s, p, rs)
		require.Equal(t, int64(2), w.Records)
		require.Len(t, rows(t, spec, "pt=11-17-2020 14"), 2)

		// Prepared again with the committed session kept, the batch counts
		// its rows and sends none.
		again, err := s.Prepare(ctx, batchID(rs), []string{"pt=11-17-2020 14"}, p.Sessions)
		require.NoError(t, err)
		require.Equal(t, p.Sessions[0].ID, again.Sessions[0].ID)
		require.True(t, again.Sessions[0].Committed)
		w, _ = write(t, s, again, rs)
		require.Equal(t, int64(2), w.Records)
		require.Len(t, rows(t, spec, "pt=11-17-2020 14"), 2)
	})
}

func TestAddWithoutSession(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "nosession", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec)
	rs := textRecords(0, 1, at(6, 0, 0))
	p := prepare(t, s, rs)
	ctx := context.Background()
	b, err := s.Begin(ctx, batchID(rs), p)
	require.NoError(t, err)
	err = b.Add(ctx, rec(1, at(9, 0, 0), nil, []byte("v")))
	require.ErrorContains(t, err, "pt=11-17-2020 17 has no prepared session")
	_, isReject := sink.IsReject(err)
	require.False(t, isReject)
	b.Abort(ctx)
}

func TestRetryableErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		spec := (&emulator{url: srv.URL}).spec(t, "t", nil)
		err := newSink(t, spec).EnsureTable(context.Background())
		require.Error(t, err)
		var pe *sink.PermanentError
		require.False(t, errors.As(err, &pe), "a network error is retryable: %v", err)
	})
	t.Run("service unavailable, then recovered", func(t *testing.T) {
		emu := startEmulator(t)
		var down atomic.Bool
		down.Store(true)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>try again</Message></Error>`)
				return
			}
			httputil.NewSingleHostReverseProxy(mustParse(t, emu.url)).ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		spec := (&emulator{url: srv.URL}).spec(t, "t", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
		s := newSink(t, spec)
		err := s.EnsureTable(context.Background())
		require.ErrorContains(t, err, "ServiceUnavailable: try again (HTTP 503")
		var pe *sink.PermanentError
		require.False(t, errors.As(err, &pe), "a 503 is retryable: %v", err)
		down.Store(false)
		require.NoError(t, s.EnsureTable(context.Background()))
	})
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// TestConcurrentAttempts runs two attempts of one batch at once, as when an
// activity times out but keeps running while its retry starts: the second
// to commit finds the session committed and counts it done.
func TestConcurrentAttempts(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "attempts", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	ctx := context.Background()
	for _, blockSize := range []int64{1, maxcompute.DefaultBlockSize} {
		t.Run(fmt.Sprint(blockSize), func(t *testing.T) {
			s := newSink(t, spec, maxcompute.WithBlockSize(blockSize))
			rs := textRecords(blockSize*10, 5, at(6, 0, 0)) // offsets distinct per subtest
			p := prepare(t, s, rs)
			var bs []sink.Batch
			for range 2 {
				b, err := s.Begin(ctx, batchID(rs), p)
				require.NoError(t, err)
				bs = append(bs, b)
			}
			for _, r := range rs {
				for _, b := range bs {
					require.NoError(t, b.Add(ctx, r))
				}
			}
			w1, err := bs[0].Commit(ctx)
			require.NoError(t, err)
			w2, err := bs[1].Commit(ctx)
			require.NoError(t, err)
			require.Equal(t, w1, w2)
		})
	}
	l, err := maxcompute.ReadLedger(ctx, spec, creds)
	require.NoError(t, err)
	require.Equal(t, int64(10), l.Rows)
	require.Empty(t, l.Duplicates)
}

// TestConcurrentBatches shares one Sink between partition loops.
func TestConcurrentBatches(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "shared", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec, maxcompute.WithBlockSize(64))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for p := range int32(4) {
		wg.Go(func() {
			rs := append(textRecords(0, 10, at(6, 59, 0)), textRecords(10, 10, at(7, 0, 0))...)
			for _, r := range rs {
				r.Partition = p
			}
			errs <- writeQuietly(s, rs)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	l, err := maxcompute.ReadLedger(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Equal(t, int64(80), l.Rows)
	for p := range int32(4) {
		require.Equal(t, []maxcompute.Range{{Start: 0, End: 20}}, l.Ranges(p))
	}
}

// writeQuietly is prepare and write without a *testing.T, for goroutines.
func writeQuietly(s *maxcompute.Sink, rs []*transform.Record) error {
	ctx := context.Background()
	var parts []string
	for _, r := range rs {
		p, err := s.PartitionOf(r)
		if err != nil {
			return err
		}
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	id := batchID(rs)
	id.Partition = rs[0].Partition
	prep, err := s.Prepare(ctx, id, parts, nil)
	if err != nil {
		return err
	}
	b, err := s.Begin(ctx, id, prep)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := b.Add(ctx, r); err != nil {
			b.Abort(ctx)
			return err
		}
	}
	_, err = b.Commit(ctx)
	return err
}
