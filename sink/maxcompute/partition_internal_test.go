package maxcompute

import (
	"math/rand"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/datatype"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

// TestSpecCache: the cached spec is the formatted one for every
// granularity, in zones with DST, half- and quarter-hour offsets and
// half-hour DST (Lord Howe), around their transitions, before 1970, and
// with times visited out of order so slots are replaced.
func TestSpecCache(t *testing.T) {
	zones := []string{"UTC", "GMT+08:00", "GMT-03:30", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns"}
	grans := []string{connector.GranularityMinute, connector.GranularityHour, connector.GranularityDay}
	rng := rand.New(rand.NewSource(1))
	for _, z := range zones {
		for _, g := range grans {
			p, err := newPartitioner(&connector.MaxComputeSpec{Partition: g, TimeZone: z})
			require.NoError(t, err)
			check := func(ts time.Time) {
				want := PartitionSpec(p.value(ts))
				require.Equal(t, want, p.spec(ts), "%s %s %s", z, g, ts.Format(time.RFC3339Nano))
				require.Equal(t, want, p.spec(ts), "%s %s %s (cached)", z, g, ts.Format(time.RFC3339Nano))
			}
			// Every 7 minutes 30 seconds through 2021 (the transitions)
			// and across 1970 backwards.
			for ts := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC); ts.Year() < 2022; ts = ts.Add(450 * time.Second) {
				check(ts)
				check(ts.Add(-time.Nanosecond))
			}
			for ts := time.Unix(3*86400, 0); ts.Unix() > -3*86400; ts = ts.Add(-1799 * time.Second) {
				check(ts)
			}
			for range 20000 {
				check(time.Unix(rng.Int63n(4e9)-1e9, rng.Int63n(1e9)))
			}
		}
	}
}

// TestAcceptIsRow: accept returns what row returns, for every format and
// mode, on good and bad keys and values.
func TestAcceptIsRow(t *testing.T) {
	loc := time.UTC
	str := func(n string) tableschema.Column { return tableschema.Column{Name: n, Type: datatype.StringType} }
	big := func(n string) tableschema.Column { return tableschema.Column{Name: n, Type: datatype.BigIntType} }
	pt := []tableschema.Column{str(PartitionColumn)}
	text := tableschema.TableSchema{Columns: []tableschema.Column{str("topic"), big("partition"), big("offset"), str("key"), str("value")}, PartitionColumns: pt}
	binary := tableschema.TableSchema{Columns: []tableschema.Column{str("topic"), big("partition"), big("offset"),
		{Name: "key", Type: datatype.BinaryType}, {Name: "value", Type: datatype.BinaryType}}, PartitionColumns: pt}
	csv := tableschema.TableSchema{Columns: []tableschema.Column{str("a"), big("b")}, PartitionColumns: pt}
	cases := []struct {
		format string
		schema tableschema.TableSchema
		modes  []string
	}{
		{connector.FormatText, text, []string{connector.ModeDefault, connector.ModeKey, connector.ModeValue}},
		{connector.FormatText, binary, []string{connector.ModeDefault, connector.ModeKey, connector.ModeValue}},
		{connector.FormatBinary, binary, []string{connector.ModeDefault, connector.ModeKey, connector.ModeValue}},
		{connector.FormatCSV, csv, []string{connector.ModeKey, connector.ModeValue}},
		{connector.FormatFields, csv, []string{connector.ModeDefault}},
	}
	vals := [][]byte{nil, {}, []byte("x,1"), []byte("x,y"), []byte("\xff\xfe"), []byte(`{"a":"x","b":2}`), []byte(`{"b":"z"}`)}
	for _, tc := range cases {
		for _, mode := range tc.modes {
			c, err := newConverter("p.t", &connector.MaxComputeSpec{Format: tc.format, Mode: mode}, loc, tc.schema)
			require.NoError(t, err, "%s %s", tc.format, mode)
			for _, k := range vals {
				for _, v := range vals {
					r := &transform.Record{Topic: "t", Partition: 1, Offset: 2, Timestamp: time.Unix(1, 0), Key: k, Value: v}
					_, _, rerr := c.row(r)
					aerr := c.accept(r)
					if rerr == nil {
						require.NoError(t, aerr, "%s %s key %q value %q", tc.format, mode, k, v)
					} else {
						require.EqualError(t, aerr, rerr.Error(), "%s %s key %q value %q", tc.format, mode, k, v)
					}
				}
			}
		}
	}
}

// TestRowSharesValue: a TEXT row's STRING and BINARY values are the
// record's bytes, not copies, and read back as they were.
func TestRowSharesValue(t *testing.T) {
	str := tableschema.Column{Name: "s", Type: datatype.StringType}
	big := tableschema.Column{Name: "b", Type: datatype.BigIntType}
	schema := tableschema.TableSchema{Columns: []tableschema.Column{str, big, big, str, {Name: "value", Type: datatype.BinaryType}},
		PartitionColumns: []tableschema.Column{{Name: PartitionColumn, Type: datatype.StringType}}}
	schema.Columns[0].Name, schema.Columns[1].Name, schema.Columns[2].Name, schema.Columns[3].Name = "topic", "partition", "offset", "key"
	c, err := newConverter("p.t", &connector.MaxComputeSpec{}, time.UTC, schema)
	require.NoError(t, err)
	r := &transform.Record{Topic: "t", Key: []byte("héllo"), Value: []byte("wörld")}
	row, size, err := c.row(r)
	require.NoError(t, err)
	require.Equal(t, data.String("héllo"), row[3])
	require.Equal(t, data.Binary("wörld"), row[4])
	require.Equal(t, int64(len("t")+24+len(r.Key)+len(r.Value)), size)
	// The row and the three boxed values (topic, key, value; small
	// BIGINTs are not boxed), no copies of the bytes.
	require.Equal(t, 4.0, testing.AllocsPerRun(100, func() { _, _, _ = c.row(r) }))
}
