package window

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPositionParse(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	berlin := mustLoc(t, "Europe/Berlin")
	for _, tc := range []struct {
		name string
		json string
		loc  *time.Location
		want Bound
		err  string
	}{
		{"offset number", `42`, nil, Bound{Kind: KindOffset, Offset: 42}, ""},
		{"offset zero", `0`, nil, Bound{Kind: KindOffset}, ""},
		{"offset string", `"1234"`, nil, Bound{Kind: KindOffset, Offset: 1234}, ""},
		{"large offset", `9223372036854775807`, nil, Bound{Kind: KindOffset, Offset: 1<<63 - 1}, ""},
		{"14-digit number that is not a datetime", `10000000000000`, nil, Bound{Kind: KindOffset, Offset: 10000000000000}, ""},
		{"datetime in the job's zone", `"20240101080000"`, sh, Bound{Kind: KindTime, Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"datetime in UTC", `"20240101000000"`, nil, Bound{Kind: KindTime, Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"datetime repeated hour is the first", `"20241027023000"`, berlin, Bound{Kind: KindTime, Time: time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC)}, ""},
		{"datetime repeated hour west of UTC", `"20241103013000"`, mustLoc(t, "America/New_York"), Bound{Kind: KindTime, Time: time.Date(2024, 11, 3, 5, 30, 0, 0, time.UTC)}, ""},
		{"RFC 3339 keeps its offset", `"2024-01-01T08:00:00+08:00"`, berlin, Bound{Kind: KindTime, Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"RFC 3339 Z", `"2024-01-01T00:00:00.5Z"`, nil, Bound{Kind: KindTime, Time: time.Date(2024, 1, 1, 0, 0, 0, 5e8, time.UTC)}, ""},
		{"seekToBeginning", `"seekToBeginning"`, nil, Bound{Kind: KindSeekToBeginning}, ""},
		{"seekToLast", `"seekToLast"`, nil, Bound{Kind: KindSeekToLast}, ""},
		{"seekToEnd", `"seekToEnd"`, nil, Bound{Kind: KindSeekToEnd}, ""},
		{"window", `"window"`, nil, Bound{Kind: KindWindow}, ""},

		{"datetime as a number", `20240101000000`, nil, Bound{}, `is ambiguous: a 14-digit number that reads as the datetime 2024-01-01 00:00:00; write it in quotes ("20240101000000")`},
		{"negative", `-5`, nil, Bound{}, "must not be negative (an offset is 0 or more)"},
		{"Kafka's latest", `-1`, nil, Bound{}, "for Kafka's -1 (latest) write seekToEnd"},
		{"Kafka's earliest", `"-2"`, nil, Bound{}, "for Kafka's -2 (earliest) write seekToBeginning"},
		{"fraction", `1.5`, nil, Bound{}, "must be a whole number"},
		{"exponent", `1e3`, nil, Bound{}, "must be a whole number"},
		{"too large", `99999999999999999999`, nil, Bound{}, "must be a whole number of at most 19 digits"},
		{"bad month", `"20241301000000"`, nil, Bound{}, "is not a valid yyyyMMddHHmmss datetime: month out of range"},
		{"bad day", `"20240230000000"`, nil, Bound{}, "is not a valid yyyyMMddHHmmss datetime"},
		{"daylight-saving gap", `"20240331023000"`, berlin, Bound{}, "does not exist in time zone Europe/Berlin"},
		{"case", `"SeekToEnd"`, nil, Bound{}, `did you mean "seekToEnd"? (names are case-sensitive)`},
		{"DataWorks date form", `"2024-01-01 00:00:00"`, nil, Bound{}, "must be an offset, a datetime (yyyyMMddHHmmss or RFC 3339"},
		{"RFC 3339 without offset", `"2024-01-01T00:00:00"`, nil, Bound{}, "must be an offset, a datetime"},
		{"empty", `""`, nil, Bound{}, "must be an offset, a datetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Position
			require.NoError(t, json.Unmarshal([]byte(tc.json), &p))
			got, err := p.Parse(tc.loc)
			if tc.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.Kind, got.Kind)
			require.Equal(t, tc.want.Offset, got.Offset)
			require.True(t, tc.want.Time.Equal(got.Time), "got %s, want %s", got.Time, tc.want.Time)
			// The JSON is what was written.
			b, err := json.Marshal(p)
			require.NoError(t, err)
			require.JSONEq(t, tc.json, string(b))
		})
	}
}

func TestPositionJSON(t *testing.T) {
	var p Position
	require.NoError(t, json.Unmarshal([]byte(`null`), &p))
	require.True(t, p.IsZero())
	for _, bad := range []string{`true`, `{}`, `[1]`} {
		require.Error(t, json.Unmarshal([]byte(bad), &p), bad)
	}
	b, _ := json.Marshal(OffsetPosition(7))
	require.Equal(t, `7`, string(b))
	b, _ = json.Marshal(NewPosition("7"))
	require.Equal(t, `"7"`, string(b))
	b, _ = json.Marshal(WindowPosition())
	require.Equal(t, `"window"`, string(b))
}
