package window

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
)

func TestCheckCronAccepted(t *testing.T) {
	for _, expr := range append([]string{
		"  0 * * * *  ",
		"0\t*\t*\t*\t*",
		"0-59/5 * * * *",
		"1,2,3-5,10-20/5 * * * *",
		"0 0 * jan-Mar,OCT *",
		"0 0 * * sat,SUN",
		"0 0 * * 5-6",
		"0 0 1 1 *",
		"*/1 * * * *",
		"0 0 * * *",
	}, equivalenceCrons...) {
		t.Run(expr, func(t *testing.T) {
			require.NoError(t, CheckCron(expr))
		})
	}
}

func TestCheckCronRefused(t *testing.T) {
	for _, tc := range []struct{ expr, reason string }{
		{"", "is empty"},
		{"0 * * *", "has 4 fields: want five"},
		{"0 0 * * * *", "has 6 fields: use five"},
		{"0 0 0 * * * 2024", "has 7 fields"},
		{"0 12 1 * MON", "restricts both day of month (1) and day of week (MON): robfig/cron fires when either matches, Temporal only when both do"},
		{"0 0 1-31 * 1-5", "restricts both day of month"},
		{"0 0 */2 * */2", "restricts both day of month"},
		{"0 0 * * 1/2", "n/s is refused in day of week: Temporal reads its end as 7"},
		{"0 0 * * MON/2", "write MON-6/2"},
		{"0 0 * * 7", "7 for Sunday is refused"},
		{"0 0 * * 0-7", "7 for Sunday is refused"},
		{"0 0 ? * *", "'?' is refused: the Temporal server does not read it"},
		{"@every 1h", "@every is refused: robfig/cron counts the interval from when the schedule starts, Temporal from the Unix epoch"},
		{"@every 15m", "@every is refused"},
		{"@reboot", "not a known descriptor"},
		{"@HOURLY", "not a known descriptor"},
		{"TZ=Asia/Shanghai 0 * * * *", "set schedule.timeZone instead"},
		{"CRON_TZ=UTC 0 * * * *", "set schedule.timeZone instead"},
		{"0 * * * * # hourly", "must not contain '#'"},
		{"0 0 * JANUARY *", `"JANUARY" is not a name: use the three-letter names`},
		{"0 0 * * TU", `"TU" is not a name`},
		{"0 0 L * *", "is not a number"},
		{"0 0 * * 5L", "is not a number"},
		{"0 0 15W * *", "is not a number"},
		{"H * * * *", "is not a number"},
		{"0 0 * * 1#2", "must not contain '#'"},
		{"60 * * * *", "60 is out of range 0-59"},
		{"0 24 * * *", "24 is out of range 0-23"},
		{"0 0 0 * *", "0 is out of range 1-31"},
		{"0 0 32 * *", "32 is out of range 1-31"},
		{"0 0 * 13 *", "13 is out of range 1-12"},
		{"-5 * * * *", "must be *, n, n-m"},
		{"5- * * * *", "must be *, n, n-m"},
		{"1-2-3 * * * *", "must be *, n, n-m"},
		{"*/0 * * * *", "the step must be 1 or more"},
		{"*/60 * * * *", "a step of 60 is not less than the field's span (0-59)"},
		{"0 */24 * * *", "a step of 24 is not less than the field's span"},
		{"*/ * * * *", "must be *, n, n-m"},
		{"3/5/7 * * * *", "must be *, n, n-m"},
		{"*-5 * * * *", "* cannot start a range"},
		{"30-10 * * * *", "the range ends before it starts"},
		{"+5 * * * *", "must be *, n, n-m"},
		{"0,,5 * * * *", "must be *, n, n-m"},
		{"0 0 30 2 *", "never fires"},
		{"0 0 31 4,6 *", "never fires"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			err := CheckCron(tc.expr)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.reason)
		})
	}
}

func TestCheckSchedule(t *testing.T) {
	for _, tc := range []struct {
		expr, zone string
		reason     string // "" when accepted
	}{
		{"0 * * * *", "Europe/Berlin", ""},
		{"0 0 * * *", "Europe/Berlin", ""},
		{"0 9 * * *", "Australia/Lord_Howe", ""},
		{"* * * * *", "America/New_York", ""},
		{"*/15 * * * *", "Etc/GMT-8", ""},
		{"* * * * *", "GMT+08:00", ""},
		{"*/15 * * * *", "Europe/Berlin", "in Europe/Berlin, around the daylight-saving change of 2024-10-27 02:00 CET the Temporal server's fire times depend on when it computes them"},
		{"0 2 * * *", "Europe/Berlin", "around the daylight-saving change of 2024-10-27"},
		{"0 * * * *", "GMT+05:30", "has no Etc zone"},
		{"0 * * * *", "Mars/Olympus", "not a zone the time zone database knows"},
		{"0 0 * * 1/2", "UTC", "n/s is refused"},
	} {
		t.Run(tc.expr+" "+tc.zone, func(t *testing.T) {
			err := CheckSchedule(tc.expr, tc.zone)
			if tc.reason == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.reason)
		})
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func TestNextFireTimes(t *testing.T) {
	sh := mustLoc(t, "Etc/GMT-8")
	berlin := mustLoc(t, "Europe/Berlin")
	for _, tc := range []struct {
		expr, zone string
		from       time.Time
		want       []time.Time
	}{
		{"5 * * * *", "GMT+08:00", time.Date(2024, 1, 1, 10, 5, 0, 0, sh), []time.Time{
			time.Date(2024, 1, 1, 11, 5, 0, 0, sh), time.Date(2024, 1, 1, 12, 5, 0, 0, sh), time.Date(2024, 1, 1, 13, 5, 0, 0, sh),
			time.Date(2024, 1, 1, 14, 5, 0, 0, sh), time.Date(2024, 1, 1, 15, 5, 0, 0, sh)}},
		{"@daily", "GMT+08:00", time.Date(2024, 2, 28, 0, 0, 0, 1, sh), []time.Time{
			time.Date(2024, 2, 29, 0, 0, 0, 0, sh), time.Date(2024, 3, 1, 0, 0, 0, 0, sh), time.Date(2024, 3, 2, 0, 0, 0, 0, sh),
			time.Date(2024, 3, 3, 0, 0, 0, 0, sh), time.Date(2024, 3, 4, 0, 0, 0, 0, sh)}},
		{"*/15 * * * *", "UTC", time.Date(2024, 1, 1, 23, 40, 0, 0, time.UTC), []time.Time{
			time.Date(2024, 1, 1, 23, 45, 0, 0, time.UTC), time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 2, 0, 15, 0, 0, time.UTC),
			time.Date(2024, 1, 2, 0, 30, 0, 0, time.UTC), time.Date(2024, 1, 2, 0, 45, 0, 0, time.UTC)}},
		// Spring forward in Berlin: 02:00 does not exist on 31 March.
		{"0 * * * *", "Europe/Berlin", time.Date(2024, 3, 31, 0, 30, 0, 0, berlin), []time.Time{
			time.Date(2024, 3, 31, 1, 0, 0, 0, berlin), time.Date(2024, 3, 31, 3, 0, 0, 0, berlin), time.Date(2024, 3, 31, 4, 0, 0, 0, berlin),
			time.Date(2024, 3, 31, 5, 0, 0, 0, berlin), time.Date(2024, 3, 31, 6, 0, 0, 0, berlin)}},
		{"0 0 29 2 *", "UTC", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), []time.Time{
			time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2032, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2036, 2, 29, 0, 0, 0, 0, time.UTC),
			time.Date(2040, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2044, 2, 29, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.expr+" "+tc.zone, func(t *testing.T) {
			got, err := NextFireTimes(tc.expr, tc.zone, tc.from, 5)
			require.NoError(t, err)
			require.Len(t, got, 5)
			for i := range got {
				require.True(t, tc.want[i].Equal(got[i]), "fire %d: got %s, want %s", i, got[i], tc.want[i])
			}
		})
	}
	// Nothing after 2100.
	got, err := NextFireTimes("0 0 29 2 *", "UTC", time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC), 5)
	require.NoError(t, err)
	require.Len(t, got, 2) // 2092, 2096; 2100 is not a leap year
	_, err = NextFireTimes("0 0 * * 7", "UTC", time.Time{}, 5)
	require.ErrorContains(t, err, "7 for Sunday")
}

func TestPreviousFireTime(t *testing.T) {
	sh := mustLoc(t, "Etc/GMT-8")
	berlin := mustLoc(t, "Europe/Berlin")
	utc := time.UTC
	cest, cet := time.FixedZone("CEST", 2*3600), time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name, expr, zone string
		nominal, want    time.Time
	}{
		{"hourly", "0 * * * *", "UTC", time.Date(2024, 1, 1, 10, 0, 0, 0, utc), time.Date(2024, 1, 1, 9, 0, 0, 0, utc)},
		{"hourly late run", "0 * * * *", "UTC", time.Date(2024, 1, 1, 10, 0, 0, 0, utc), time.Date(2024, 1, 1, 9, 0, 0, 0, utc)},
		{"hourly between fires", "0 * * * *", "UTC", time.Date(2024, 1, 1, 10, 30, 0, 0, utc), time.Date(2024, 1, 1, 10, 0, 0, 0, utc)},
		{"hourly just after a fire", "0 * * * *", "UTC", time.Date(2024, 1, 1, 10, 0, 0, 1, utc), time.Date(2024, 1, 1, 10, 0, 0, 0, utc)},
		{"hourly at 5 past in GMT+08:00", "5 * * * *", "GMT+08:00", time.Date(2024, 1, 1, 0, 5, 0, 0, sh), time.Date(2023, 12, 31, 23, 5, 0, 0, sh)},
		{"daily", "0 0 * * *", "UTC", time.Date(2024, 3, 1, 0, 0, 0, 0, utc), time.Date(2024, 2, 29, 0, 0, 0, 0, utc)},
		{"daily in Etc/GMT-8", "30 0 * * *", "Etc/GMT-8", time.Date(2024, 1, 1, 0, 30, 0, 0, sh), time.Date(2023, 12, 31, 0, 30, 0, 0, sh)},
		{"daily in Etc/GMT-8 from UTC", "0 0 * * *", "Etc/GMT-8", time.Date(2023, 12, 31, 16, 0, 0, 0, utc), time.Date(2023, 12, 30, 16, 0, 0, 0, utc)},
		{"every 15 minutes", "*/15 * * * *", "UTC", time.Date(2024, 1, 1, 0, 0, 0, 0, utc), time.Date(2023, 12, 31, 23, 45, 0, 0, utc)},
		{"every 15 minutes in Etc/GMT-8", "*/15 * * * *", "GMT+08:00", time.Date(2024, 1, 1, 0, 15, 0, 0, sh), time.Date(2024, 1, 1, 0, 0, 0, 0, sh)},
		{"weekdays over a weekend", "0 9 * * MON-FRI", "UTC", time.Date(2024, 1, 8, 9, 0, 0, 0, utc), time.Date(2024, 1, 5, 9, 0, 0, 0, utc)},
		{"monthly", "@monthly", "UTC", time.Date(2024, 3, 1, 0, 0, 0, 0, utc), time.Date(2024, 2, 1, 0, 0, 0, 0, utc)},
		{"yearly", "@yearly", "UTC", time.Date(2024, 1, 1, 0, 0, 0, 0, utc), time.Date(2023, 1, 1, 0, 0, 0, 0, utc)},
		{"leap day, eight years back", "0 0 29 2 *", "UTC", time.Date(2104, 2, 29, 0, 0, 0, 0, utc), time.Date(2096, 2, 29, 0, 0, 0, 0, utc)}, // 2100 is not a leap year
		{"nothing in nine years", "0 0 29 2 *", "UTC", time.Date(2200, 1, 1, 0, 0, 0, 0, utc), time.Time{}},                                   // the server finds nothing after 2100
		{"leap day", "0 0 29 2 *", "UTC", time.Date(2028, 2, 29, 0, 0, 0, 0, utc), time.Date(2024, 2, 29, 0, 0, 0, 0, utc)},
		// Europe/Berlin springs forward on 31 March 2024 at 02:00 → 03:00.
		{"hourly Berlin spring forward", "0 * * * *", "Europe/Berlin", time.Date(2024, 3, 31, 3, 0, 0, 0, berlin), time.Date(2024, 3, 31, 1, 0, 0, 0, berlin)},
		{"daily Berlin spring forward", "0 0 * * *", "Europe/Berlin", time.Date(2024, 4, 1, 0, 0, 0, 0, berlin), time.Date(2024, 3, 31, 0, 0, 0, 0, berlin)},
		// ... and falls back on 27 October at 03:00 CEST → 02:00 CET. The
		// server fires 02:00 CEST and then 03:00 CET, not 02:00 CET.
		{"hourly Berlin fall back", "0 * * * *", "Europe/Berlin", time.Date(2024, 10, 27, 3, 0, 0, 0, cet), time.Date(2024, 10, 27, 2, 0, 0, 0, cest)},
		{"hourly Berlin fall back, before", "0 * * * *", "Europe/Berlin", time.Date(2024, 10, 27, 2, 0, 0, 0, cest), time.Date(2024, 10, 27, 1, 0, 0, 0, cest)},
		{"hourly Berlin fall back, after", "0 * * * *", "Europe/Berlin", time.Date(2024, 10, 27, 4, 0, 0, 0, cet), time.Date(2024, 10, 27, 3, 0, 0, 0, cet)},
		{"daily Berlin fall back", "0 0 * * *", "Europe/Berlin", time.Date(2024, 10, 28, 0, 0, 0, 0, berlin), time.Date(2024, 10, 27, 0, 0, 0, 0, berlin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PreviousFireTime(tc.expr, tc.zone, tc.nominal)
			if tc.want.IsZero() {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %s, want %s", got, tc.want)
			if d := tc.nominal.Sub(got); tc.name == "daily Berlin spring forward" {
				require.Equal(t, 23*time.Hour, d, "the window is 23 hours long")
			}
		})
	}
}

// TestWindowsTile: consecutive windows of a schedule share their bounds,
// so no time is loaded twice or left out, across DST changes too.
func TestWindowsTile(t *testing.T) {
	for _, c := range [][2]string{{"0 * * * *", "Europe/Berlin"}, {"*/15 * * * *", "GMT+08:00"}, {"30 0 * * *", "Asia/Shanghai"}, {"0 2 * * *", "America/New_York"}} {
		s, err := NewSchedule(c[0], c[1])
		require.NoError(t, err)
		require.NoError(t, CheckSchedule(c[0], c[1]))
		for _, start := range []time.Time{time.Date(2024, 3, 30, 0, 0, 0, 0, time.UTC), time.Date(2024, 10, 26, 0, 0, 0, 0, time.UTC), time.Date(2024, 11, 2, 0, 0, 0, 0, time.UTC)} {
			nominal := s.Next(start)
			var prevEnd time.Time
			for i := 0; i < 200; i++ {
				b, e, err := s.Window(nominal)
				require.NoError(t, err)
				require.True(t, e.Equal(nominal))
				require.True(t, b.Before(e))
				if !prevEnd.IsZero() {
					require.True(t, b.Equal(prevEnd), "%v: window [%s, %s) does not start where the last ended (%s)", c, b, e, prevEnd)
				}
				prevEnd = e
				nominal = s.Next(nominal)
			}
		}
	}
}

// TestWindowOfTriggeredRun: a run started by hand between fire times (its
// nominal time is when it was triggered) loads the last complete window,
// never a partial one.
func TestWindowOfTriggeredRun(t *testing.T) {
	s, err := NewSchedule("0 * * * *", "GMT+08:00")
	require.NoError(t, err)
	loc := s.Location()
	for _, nominal := range []time.Time{
		time.Date(2024, 1, 1, 10, 23, 17, 500, loc),
		time.Date(2024, 1, 1, 10, 59, 59, 999999999, loc),
		time.Date(2024, 1, 1, 10, 0, 0, 0, loc), // a fire time: its own window
		time.Date(2024, 1, 1, 10, 0, 0, 1, loc),
	} {
		b, e, err := s.Window(nominal)
		require.NoError(t, err)
		require.Equal(t, time.Date(2024, 1, 1, 9, 0, 0, 0, loc).Format(time.RFC3339), b.Format(time.RFC3339), "begin for %s", nominal)
		require.Equal(t, time.Date(2024, 1, 1, 10, 0, 0, 0, loc).Format(time.RFC3339), e.Format(time.RFC3339), "end for %s", nominal)
	}
}

func TestScheduleIsPure(t *testing.T) {
	// The same nominal time gives the same window however often it is asked
	// and in whatever location the nominal time is expressed.
	n := time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)
	a, err := PreviousFireTime("0 * * * *", "Asia/Shanghai", n)
	require.NoError(t, err)
	b, err := PreviousFireTime("0 * * * *", "Asia/Shanghai", n.In(mustLoc(t, "America/New_York")))
	require.NoError(t, err)
	require.True(t, a.Equal(b))
	require.Equal(t, "Asia/Shanghai", a.Location().String())
}

func TestIANAZone(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"UTC", "UTC", ""},
		{"GMT", "UTC", ""},
		{"GMT+00:00", "UTC", ""},
		{"GMT+08:00", "Etc/GMT-8", ""},
		{"GMT 08:00", "Etc/GMT-8", ""}, // seed 004's spelling
		{"GMT+8", "Etc/GMT-8", ""},
		{"UTC+08:00", "Etc/GMT-8", ""},
		{"GMT-05:00", "Etc/GMT+5", ""},
		{"GMT+14:00", "Etc/GMT-14", ""},
		{"GMT-12:00", "Etc/GMT+12", ""},
		{"Asia/Shanghai", "Asia/Shanghai", ""},
		{"Europe/Berlin", "Europe/Berlin", ""},
		{"Etc/GMT-8", "Etc/GMT-8", ""},
		{"GMT+05:30", "", "has no Etc zone (Etc zones are whole hours) and Temporal takes IANA names only: use the region's name, such as Asia/Kolkata"},
		{"GMT+05:45", "", "Asia/Kathmandu"},
		{"GMT-03:30", "", "America/St_Johns"},
		{"GMT+01:15", "", "use the IANA name of the region"},
		{"GMT+15:00", "", "offsets run from GMT-12:00 to GMT+14:00"},
		{"GMT+08:60", "", "minutes 00-59"},
		{"", "", "must be UTC, GMT+hh:00 or an IANA name"},
		{"Local", "", "must be UTC, GMT+hh:00 or an IANA name"},
		{"Beijing", "", "not a zone the time zone database knows"},
		{"utc", "", "not a zone the time zone database knows"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := IANAZone(tc.in)
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

// TestEtcGMTSign: Etc/GMT-8 is eight hours ahead of UTC (POSIX's inverted
// sign), the same instant as connector.ParseTimeZone's GMT+08:00.
func TestEtcGMTSign(t *testing.T) {
	loc, err := LoadZone("GMT+08:00")
	require.NoError(t, err)
	require.Equal(t, "Etc/GMT-8", loc.String())
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).In(loc)
	_, off := at.Zone()
	require.Equal(t, 8*3600, off)
	require.Equal(t, 8, at.Hour())
	west, err := LoadZone("GMT-05:00")
	require.NoError(t, err)
	_, off = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).In(west).Zone()
	require.Equal(t, -5*3600, off)
	// The daily midnight fire of a GMT+08:00 schedule is 16:00 UTC.
	n, err := NextFireTimes("@daily", "GMT+08:00", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 1)
	require.NoError(t, err)
	require.Equal(t, time.Date(2024, 1, 1, 16, 0, 0, 0, time.UTC), n[0].UTC())
}

func TestOverlapPolicy(t *testing.T) {
	for name, want := range map[string]enumspb.ScheduleOverlapPolicy{
		"":               enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
		"bufferAll":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
		"bufferOne":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
		"skip":           enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		"cancelOther":    enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
		"terminateOther": enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER,
		"allowAll":       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
	} {
		got, err := OverlapPolicy(name)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
	}
	_, err := OverlapPolicy("BufferAll")
	require.ErrorContains(t, err, "must be one of bufferAll, bufferOne, skip, cancelOther, terminateOther, allowAll")
	require.False(t, OverlapLosesWindows("bufferAll"))
	require.False(t, OverlapLosesWindows("allowAll"))
	require.True(t, OverlapLosesWindows("skip"))
	require.True(t, OverlapLosesWindows("bufferOne"))
}

func TestMaxCatchupWindow(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"@daily", 365 * 24 * time.Hour},
		{"@hourly", 998 * time.Hour},
		{"*/15 * * * *", 248 * time.Hour},
		{"*/5 * * * *", 81 * time.Hour},
		{"* * * * *", 14 * time.Hour},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := MaxCatchupWindow(tc.expr)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			// The bound holds: no span of that length has more fire times
			// than the buffer, here counted from the start of 2024 and
			// around Berlin's fall-back.
			for _, zone := range []string{"UTC", "Europe/Berlin"} {
				for _, from := range []time.Time{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 10, 26, 20, 0, 0, 0, time.UTC)} {
					n := 0
					s, err := NewSchedule(tc.expr, zone)
					require.NoError(t, err)
					for f := s.Next(from.Add(-time.Second)); !f.IsZero() && f.Before(from.Add(got)); f = s.Next(f) {
						n++
					}
					require.LessOrEqual(t, n, TemporalBufferSize, fmt.Sprint(zone, from))
				}
			}
		})
	}
}

// TestRobfigDiffersAroundDST is why fire times are computed with the
// server's arithmetic: robfig/cron agrees with the server in zones without
// daylight saving, but not around a change.
func TestRobfigDiffersAroundDST(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	r, err := robfig([]string{"59", "1", "*", "*", "*"}, berlin)
	require.NoError(t, err)
	s, err := NewSchedule("59 1 * * *", "Europe/Berlin")
	require.NoError(t, err)
	from := time.Date(2024, 10, 27, 1, 59, 0, 0, berlin)
	require.Equal(t, time.Date(2024, 10, 28, 1, 59, 0, 0, berlin), r.Next(from))
	require.Equal(t, time.Date(2024, 10, 27, 0, 59, 0, 0, time.UTC), s.Next(from).UTC(), "the server fires again at 02:59 CEST")

	for _, zone := range []string{"UTC", "Etc/GMT-8", "Asia/Shanghai"} {
		loc := mustLoc(t, zone)
		for _, expr := range equivalenceCrons {
			s, err := NewSchedule(expr, zone)
			require.NoError(t, err)
			fields, _, err := checkCron(expr)
			require.NoError(t, err)
			r, err := robfig(fields, loc)
			require.NoError(t, err)
			a, b := time.Date(2024, 1, 1, 0, 0, 0, 0, loc), time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
			for i := 0; i < 100; i++ {
				if a, b = s.Next(a), r.Next(b); a.IsZero() {
					require.True(t, b.IsZero() || b.Year() > 2100, "only after 2100 does the server stop")
					break
				}
				require.True(t, a.Equal(b), "%q in %s: %s vs robfig %s", expr, zone, a, b)
			}
		}
	}
}
