package window

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	schedulepb "go.temporal.io/api/schedule/v1"
	"go.temporal.io/server/service/worker/scheduler"
)

// The Temporal server's own schedule code (service/worker/scheduler) is the
// reference: every accepted expression must give the same fire times under
// robfig/cron (Schedule.Next) as under the server, and Previous must give
// the server's previous fire time, in zones with and without daylight
// saving, across every transition of 2024.

var equivalenceZones = []string{
	"UTC",
	"Etc/GMT-8",           // GMT+08:00
	"Asia/Shanghai",       // no DST
	"Europe/Berlin",       // DST at 02:00/03:00
	"America/New_York",    // DST at 02:00
	"America/Santiago",    // DST at midnight (00:00 skipped, 23:00 repeated)
	"Australia/Lord_Howe", // 30-minute DST
}

var equivalenceCrons = []string{
	"* * * * *",
	"*/15 * * * *",
	"5/20 * * * *",
	"0 * * * *",
	"30 * * * *",
	"@hourly",
	"0 */2 * * *",
	"15,45 1-3 * * *",
	"0 0 * * *",
	"@daily",
	"@midnight",
	"30 2 * * *",
	"0 2 * * *",
	"59 1 * * *",
	"0 23 * * *",
	"30 0 * * *",
	"0 9 * * MON-FRI",
	"0 9 * * 1-5",
	"0 0 * * 0",
	"@weekly",
	"0 6 * * sun,Wed",
	"0 0 * * */2",
	"0 0 * * 0-6/3",
	"0 0 1 * *",
	"@monthly",
	"0 0 1,15 * *",
	"0 0 */10 * *",
	"0 0 31 * *",
	"0 0 1 */3 *",
	"0 0 1 JAN,jul *",
	"@yearly",
	"@annually",
	"0 0 29 2 *",
	"0-10/5 8-17 * * *",
	"0 12 * 6-8 *",
}

func temporalSpec(t *testing.T, expr, zone string) *scheduler.CompiledSpec {
	t.Helper()
	b := scheduler.NewSpecBuilder(func() int { return 1 << 20 }, func() int { return 1 << 22 })
	cs, err := b.NewCompiledSpec(&schedulepb.ScheduleSpec{CronString: []string{expr}, TimezoneName: zone})
	require.NoError(t, err, "Temporal refuses %q", expr)
	return cs
}

func temporalNext(t *testing.T, cs *scheduler.CompiledSpec, after time.Time) time.Time {
	t.Helper()
	r, err := cs.GetNextTime("", after)
	require.NoError(t, err)
	return r.Nominal
}

// transitions lists the instants of 2024 at which zone's offset changes.
func transitions(zone string) []time.Time {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		panic(err)
	}
	var out []time.Time
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	_, prev := t.In(loc).Zone()
	for ; t.Year() == 2024; t = t.Add(15 * time.Minute) {
		if _, off := t.In(loc).Zone(); off != prev {
			out = append(out, t)
			prev = off
		}
	}
	return out
}

func TestCronAgreesWithTemporal(t *testing.T) {
	refused := map[string][]string{}
	defer func() {
		for _, zone := range equivalenceZones {
			t.Logf("%s: CheckSchedule refuses %q", zone, refused[zone])
		}
	}()
	for _, zone := range equivalenceZones {
		starts := []time.Time{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		for _, tr := range transitions(zone) {
			starts = append(starts, tr.Add(-26*time.Hour), tr.Add(-90*time.Minute))
		}
		if zone != "UTC" && zone != "Etc/GMT-8" && zone != "Asia/Shanghai" {
			require.Len(t, starts, 5, "%s has two transitions in 2024", zone)
		}
		for _, expr := range equivalenceCrons {
			t.Run(zone+"/"+expr, func(t *testing.T) {
				s, err := NewSchedule(expr, zone)
				require.NoError(t, err)
				// A schedule CheckSchedule refuses must still agree on
				// Next; Previous is only promised for accepted ones.
				accepted := CheckSchedule(expr, zone) == nil
				if !accepted {
					refused[zone] = append(refused[zone], expr)
				}
				for _, cron := range []string{expr, s.Cron()} {
					cs := temporalSpec(t, cron, zone)
					for _, start := range starts {
						want := temporalNext(t, cs, start)
						got := s.Next(start)
						for i := 0; i < 120 && !want.IsZero(); i++ {
							require.True(t, want.Equal(got), "%q in %s after %s: Temporal fires at %s, robfig at %s", cron, zone, start, want, got)
							next := temporalNext(t, cs, want)
							if next.IsZero() {
								break
							}
							// Previous gives the server's previous fire time
							// from the next one, from just before it and
							// from just after this one.
							for _, at := range []time.Time{next, next.Add(-time.Second), want.Add(time.Second), want.Add(time.Nanosecond)} {
								if at.After(next) || !accepted || cron != expr {
									continue
								}
								prev, err := s.Previous(at)
								require.NoError(t, err)
								require.True(t, want.Equal(prev), "%q in %s: Previous(%s) = %s, want %s", cron, zone, at, prev, want)
							}
							want, got = next, s.Next(want)
						}
					}
				}
			})
		}
	}
}

// TestRefusedCronDisagree shows, for the refusals that come from a real
// difference, that robfig/cron and the Temporal server do read the
// expression differently.
func TestRefusedCronDisagree(t *testing.T) {
	for _, tc := range []struct{ expr, why string }{
		{"0 12 13 * 5", "day of month and day of week: robfig fires on either, Temporal on both"},
		{"0 0 1-31 * 1-5", "1-31 is not *: robfig fires every day, Temporal on weekdays"},
		{"0 0 * * 1/2", "n/s in day of week: Temporal adds Sunday"},
		{"0 0 * * 3/2", "n/s in day of week: Temporal adds Sunday"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			require.Error(t, CheckCron(tc.expr))
			fields, err := robfig([]string{tc.expr}, time.UTC)
			require.NoError(t, err, "robfig reads it")
			cs := temporalSpec(t, tc.expr, "UTC")
			from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			differ := false
			r, tm := from, from
			for i := 0; i < 60 && !differ; i++ {
				r, tm = fields.Next(r), temporalNext(t, cs, tm)
				differ = !r.Equal(tm)
			}
			require.True(t, differ, tc.why)
		})
	}
}
