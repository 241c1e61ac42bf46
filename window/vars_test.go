package window

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExpand(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	// The window [2024-01-01 08:00, 09:00) Beijing time.
	begin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := begin.Add(time.Hour)
	for _, tc := range []struct {
		tmpl string
		loc  *time.Location
		want string
		err  string
	}{
		{"pt=${bizdate}", sh, "pt=20240101", ""},
		{"pt=${bizdate}", time.UTC, "pt=20240101", ""},
		{"pt=${yyyyMMddHH}", sh, "pt=2024010108", ""},
		{"pt=${yyyyMMddHH}", nil, "pt=2024010100", ""},
		{"${yyyy}/${MM}/${dd}/${HH}/${mm}", sh, "2024/01/01/08/00", ""},
		{"${yyyyMMdd}-${yyyyMMddHHmm}", sh, "20240101-202401010800", ""},
		{"${begin}_${end}", sh, "20240101080000_20240101090000", ""},
		{"no variables", sh, "no variables", ""},
		{"price $5 and ${HH}", sh, "price $5 and 08", ""},
		{"", sh, "", ""},
		{"pt=${date}", sh, "", "unknown variable ${date}; the variables are ${bizdate}, ${yyyy}, ${MM}, ${dd}, ${HH}, ${mm}, ${yyyyMMdd}, ${yyyyMMddHH}, ${yyyyMMddHHmm}, ${begin}, ${end}"},
		{"pt=${YYYY}", sh, "", "unknown variable ${YYYY}"},
		{"pt=${bizdate", sh, "", `variable "${bizdate" is not closed with '}'`},
		{"pt=${}", sh, "", "unknown variable ${}"},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := Expand(tc.tmpl, begin, end, tc.loc)
			if tc.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	// DataWorks's business date: a daily window run at midnight is the day before.
	d, err := Expand("${bizdate}", time.Date(2024, 3, 1, 0, 0, 0, 0, sh).AddDate(0, 0, -1), time.Date(2024, 3, 1, 0, 0, 0, 0, sh), sh)
	require.NoError(t, err)
	require.Equal(t, "20240229", d)
}

func TestParsePartition(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []PartitionLevel
		err  string
	}{
		{"pt=20240101", []PartitionLevel{{"pt", "20240101"}}, ""},
		{"ds=20240101,hh=08", []PartitionLevel{{"ds", "20240101"}, {"hh", "08"}}, ""},
		{"ds=20240101/hh=08", []PartitionLevel{{"ds", "20240101"}, {"hh", "08"}}, ""},
		{"pt='20240101'", []PartitionLevel{{"pt", "20240101"}}, ""},
		{` pt = "11-17-2020 14" `, []PartitionLevel{{"pt", "11-17-2020 14"}}, ""},
		{"", nil, ""},
		{"20240101", nil, `level "20240101" must be key=value`},
		{"pt=", nil, "the value is empty"},
		{"1pt=x", nil, "the key must be a partition column name"},
		{"pt=a,PT=b", nil, "the key PT is given twice"},
		{"pt=a=b", nil, "the value may hold only"},
		{"pt=中文", nil, "the value may hold only"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParsePartition(tc.spec)
			if tc.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPartitionSpecAndPrefix(t *testing.T) {
	begin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &MaxComputeWriter{Partition: "ds=${yyyyMMdd}/hh=${HH}", TimeZone: "GMT+08:00"}
	got, err := m.PartitionSpec(begin, begin.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, "ds=20240101,hh=08", got)
	m.Partition = ""
	got, err = m.PartitionSpec(begin, begin.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, "", got)
	m.Partition = "pt=${nope}"
	_, err = m.PartitionSpec(begin, begin.Add(time.Hour))
	require.ErrorContains(t, err, "writer.maxcompute.partition: unknown variable ${nope}")

	o := &OSSWriter{Prefix: "logs/${yyyy}/${MM}/${dd}", TimeZone: "UTC"}
	p, err := o.WindowPrefix(begin, begin.Add(24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, "logs/2024/01/01", p)
}
