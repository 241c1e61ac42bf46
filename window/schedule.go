package window

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // IANA time zones on minimal machines

	"github.com/robfig/cron/v3"
	enumspb "go.temporal.io/api/enums/v1"
)

// Overlap policies (ScheduleSpec.Overlap), named as Temporal names them.
const (
	OverlapBufferAll      = "bufferAll"
	OverlapBufferOne      = "bufferOne"
	OverlapSkip           = "skip"
	OverlapCancelOther    = "cancelOther"
	OverlapTerminateOther = "terminateOther"
	OverlapAllowAll       = "allowAll"
)

// OverlapPolicies maps each overlap policy name to Temporal's value.
var OverlapPolicies = map[string]enumspb.ScheduleOverlapPolicy{
	OverlapBufferAll:      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	OverlapBufferOne:      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	OverlapSkip:           enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	OverlapCancelOther:    enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
	OverlapTerminateOther: enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER,
	OverlapAllowAll:       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
}

// overlapNames lists the policies in a fixed order, for messages.
var overlapNames = []string{OverlapBufferAll, OverlapBufferOne, OverlapSkip, OverlapCancelOther, OverlapTerminateOther, OverlapAllowAll}

// OverlapPolicy returns Temporal's value for an overlap policy name; ""
// is the default, bufferAll.
func OverlapPolicy(name string) (enumspb.ScheduleOverlapPolicy, error) {
	if name == "" {
		name = OverlapBufferAll
	}
	if p, ok := OverlapPolicies[name]; ok {
		return p, nil
	}
	return enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, fmt.Errorf("overlap policy %q: must be one of %s", name, strings.Join(overlapNames, ", "))
}

// OverlapLosesWindows reports whether a policy can leave a window
// unloaded: bufferOne drops windows past one waiting, skip drops those
// due while a run runs, cancelOther and terminateOther stop the running
// one. Temporal counts them in the schedule's info; they must be
// backfilled.
func OverlapLosesWindows(name string) bool {
	switch name {
	case OverlapBufferOne, OverlapSkip, OverlapCancelOther, OverlapTerminateOther:
		return true
	}
	return false
}

// Temporal's schedule limits (go.temporal.io/server, service/worker/scheduler).
const (
	// MinCatchupWindow is the shortest catch-up window Temporal honours.
	MinCatchupWindow = 10 * time.Second
	// TemporalBufferSize is how many starts a schedule buffers; starts
	// beyond it are dropped (counted as BufferDropped).
	TemporalBufferSize = 1000
	// maxCatchupWindow bounds catchupWindow from above (Temporal's default
	// catch-up window).
	maxCatchupWindow = 365 * 24 * time.Hour
)

// cron fields.
type cronField struct {
	name     string
	min, max int
	names    []string // three-letter names from min
}

var cronFields = []cronField{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{"day of week", 0, 6, []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

var itemRE = regexp.MustCompile(`^(\*|[0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?(?:/([0-9]+))?$`)

// cronRef is the fixed instant CheckCron and the catch-up rules count fire
// times from, so that they are pure functions of the expression.
var cronRef = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// CheckCron reports whether expr is in the cron subset that robfig/cron/v3
// and the Temporal server read the same way. Its error is the rule expr
// breaks, worded to follow the expression ("0 0 * * 7" 7 for Sunday is
// refused: ...), as in a violation.
//
// A schedule's expression is read twice: by the Temporal server, which
// fires the runs, and by robfig/cron/v3 here, which checks it before any
// schedule is created. Both must read it the same way, so CheckCron
// accepts only this subset, on which the two parsers agree (robfig/cron's
// value sets are compared with ours for every expression, and the tests
// compare fire times with the server's own code):
//
//   - five fields: minute (0-59), hour (0-23), day of month (1-31), month
//     (1-12 or JAN-DEC) and day of week (0-6 or SUN-SAT, 0 is Sunday),
//     separated by spaces; names are three letters in any case;
//   - in each field a comma-separated list of items: *, n, n-m, */s,
//     n-m/s and n/s (n to the field's maximum, every s), s at least 1 and
//     less than the field's span;
//   - the descriptors @yearly, @annually, @monthly, @weekly, @daily,
//     @midnight and @hourly.
//
// Refused, each with its reason:
//
//   - both day of month and day of week restricted (neither is *): robfig
//     fires when either matches (Vixie cron), Temporal only when both do;
//   - n/s in day of week: Temporal reads its end as 7, another Sunday
//     ("1/2" is Sunday too), robfig as 6; write n-6/s;
//   - 7 for Sunday: robfig refuses it; write 0 or SUN;
//   - ?: Temporal does not read it; write *;
//   - a seconds or a year field (six or seven fields): robfig's standard
//     parser reads five fields; Temporal would read a sixth as the year;
//   - @every: robfig counts the interval from when the schedule starts,
//     Temporal from the Unix epoch;
//   - TZ= or CRON_TZ= prefixes: the zone is schedule.timeZone;
//   - # comments: Temporal drops them, robfig refuses them;
//   - full month and day names and other prefixes (JANUARY, TU): Temporal
//     reads them, robfig does not;
//   - L, W, H and the like: neither parser reads them;
//   - a step that is not less than the field's span (*/60 for minutes):
//     it matches one value, never "every 60 minutes";
//   - an expression that never fires (such as 30 February).
//
// Fire times are computed with the server's arithmetic (see calendar),
// since the server fires the runs, and CheckSchedule refuses, in a zone
// with daylight saving, an expression whose fire times around a change
// the server computes differently depending on when it starts (such as
// */15 * * * * in Europe/Berlin): only then is a run's window a function
// of its nominal time.
func CheckCron(expr string) error {
	_, _, err := checkCron(expr)
	return err
}

// checkCron checks expr and returns its five fields (descriptors
// expanded) and the values each field matches.
func checkCron(expr string) ([]string, [5][]bool, error) {
	var sets [5][]bool
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return nil, sets, errors.New("is empty: want five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly")
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, sets, errors.New("must not name a time zone: set schedule.timeZone instead")
	case strings.Contains(e, "#"):
		return nil, sets, errors.New("must not contain '#': the Temporal server drops a comment, robfig/cron refuses it")
	case strings.HasPrefix(e, "@every"):
		return nil, sets, errors.New("@every is refused: robfig/cron counts the interval from when the schedule starts, Temporal from the Unix epoch; write the times as five fields (e.g. */15 * * * *)")
	case strings.HasPrefix(e, "@"):
		d, ok := descriptors[e]
		if !ok {
			return nil, sets, errors.New("is not a known descriptor: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
		}
		e = d
	}
	fields := strings.Fields(e)
	switch {
	case len(fields) == 6 || len(fields) == 7:
		return nil, sets, fmt.Errorf("has %d fields: use five (minute hour day-of-month month day-of-week); seconds and years are refused because robfig/cron reads five and the Temporal server would read a sixth as the year", len(fields))
	case len(fields) != 5:
		return nil, sets, fmt.Errorf("has %d fields: want five (minute hour day-of-month month day-of-week)", len(fields))
	}
	for i, f := range fields {
		set, err := checkCronField(f, cronFields[i])
		if err != nil {
			return nil, sets, fmt.Errorf("%s %q: %w", cronFields[i].name, f, err)
		}
		sets[i] = set
	}
	if fields[2] != "*" && fields[4] != "*" {
		return nil, sets, fmt.Errorf("restricts both day of month (%s) and day of week (%s): robfig/cron fires when either matches, Temporal only when both do; restrict one and leave the other *", fields[2], fields[4])
	}
	r, err := robfig(fields, time.UTC)
	if err != nil {
		return nil, sets, err
	}
	for i, bits := range []uint64{r.Minute, r.Hour, r.Dom, r.Month, r.Dow} {
		for v, want := range sets[i] {
			if (bits>>v)&1 == 1 != want {
				return nil, sets, fmt.Errorf("%s %q: robfig/cron reads it differently", cronFields[i].name, fields[i])
			}
		}
	}
	if newCalendar(sets, time.UTC).next(cronRef).IsZero() {
		return nil, sets, errors.New("never fires (no such date in any year)")
	}
	return fields, sets, nil
}

// checkCronField checks one field and returns the values it matches.
func checkCronField(f string, cf cronField) ([]bool, error) {
	set := make([]bool, cf.max+1)
	for _, item := range strings.Split(f, ",") {
		if item == "?" {
			return nil, errors.New("'?' is refused: the Temporal server does not read it; write *")
		}
		m := itemRE.FindStringSubmatch(item)
		if m == nil {
			return nil, fmt.Errorf("item %q must be *, n, n-m, */s, n-m/s or n/s (L, W, H, ? and the like are not read by both robfig/cron and Temporal)", item)
		}
		lo, hi := cf.min, cf.max
		if m[1] != "*" {
			v, err := cronValue(m[1], cf)
			if err != nil {
				return nil, err
			}
			lo, hi = v, v
			if m[3] != "" {
				hi = cf.max
				if cf.name == "day of week" && m[2] == "" {
					return nil, fmt.Errorf("item %q: n/s is refused in day of week: Temporal reads its end as 7 (Sunday again), robfig/cron as 6; write %s-6/%s", item, m[1], m[3])
				}
			}
		} else if m[2] != "" {
			return nil, fmt.Errorf("item %q: * cannot start a range", item)
		}
		if m[2] != "" {
			v, err := cronValue(m[2], cf)
			if err != nil {
				return nil, err
			}
			if v < lo {
				return nil, fmt.Errorf("item %q: the range ends before it starts", item)
			}
			hi = v
		}
		step := 1
		if m[3] != "" {
			n, err := strconv.Atoi(m[3])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("item %q: the step must be 1 or more", item)
			}
			if n >= cf.max-cf.min+1 {
				return nil, fmt.Errorf("item %q: a step of %d is not less than the field's span (%d-%d), so it matches one value only; cron cannot express longer intervals", item, n, cf.min, cf.max)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	return set, nil
}

func cronValue(s string, cf cronField) (int, error) {
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil || strings.Trim(s, "0123456789") != "" {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		if cf.name == "day of week" && n == 7 {
			return 0, errors.New("7 for Sunday is refused: robfig/cron reads 0-6; write 0 or SUN")
		}
		if n < cf.min || n > cf.max {
			return 0, fmt.Errorf("%d is out of range %d-%d", n, cf.min, cf.max)
		}
		return n, nil
	}
	up := strings.ToUpper(s)
	for i, n := range cf.names {
		if up == n {
			return cf.min + i, nil
		}
	}
	if cf.names == nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return 0, fmt.Errorf("%q is not a name: use the three-letter names %s", s, strings.Join(cf.names, ", "))
}

func robfig(fields []string, loc *time.Location) (*cron.SpecSchedule, error) {
	sch, err := cron.ParseStandard(strings.Join(fields, " "))
	if err != nil {
		return nil, fmt.Errorf("robfig/cron: %w", err)
	}
	spec, ok := sch.(*cron.SpecSchedule)
	if !ok {
		return nil, errors.New("robfig/cron: not a calendar schedule")
	}
	spec.Location = loc
	return spec, nil
}

// Schedule is a checked cron expression in a time zone, computing fire
// times as the Temporal server does (see calendar). It is immutable and
// safe for concurrent use; its methods are pure (no clock, no I/O).
type Schedule struct {
	expr string
	cron string // the five fields
	zone string // IANA name
	loc  *time.Location
	cal  *calendar
}

// NewSchedule checks expr (CheckCron) and zone (IANAZone) and compiles
// them. It does not run CheckSchedule's daylight-saving check, which
// Validate runs once, before a schedule is created.
func NewSchedule(expr, zone string) (*Schedule, error) {
	fields, sets, err := checkCron(expr)
	if err != nil {
		return nil, fmt.Errorf("cron %q %w", expr, err)
	}
	iana, err := IANAZone(zone)
	if err != nil {
		return nil, err
	}
	loc, err := loadLocation(iana)
	if err != nil {
		return nil, err
	}
	return &Schedule{expr: expr, cron: strings.Join(fields, " "), zone: iana, loc: loc, cal: newCalendar(sets, loc)}, nil
}

// Zone is the schedule's IANA zone name, the Temporal ScheduleSpec's
// TimezoneName.
func (s *Schedule) Zone() string { return s.zone }

// Cron is the expression as five fields separated by single spaces
// (descriptors expanded): the CronString to give Temporal, read by it as
// by robfig/cron.
func (s *Schedule) Cron() string { return s.cron }

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first fire time strictly after t, in the schedule's
// zone, as the Temporal server computes it; the zero time when there is
// none up to 2100.
func (s *Schedule) Next(t time.Time) time.Time {
	return s.cal.next(t)
}

// maxLookback bounds Previous: the longest gap between fire times of an
// expression CheckCron accepts is 29 February's eight years (2096-2104).
const maxLookback = 9 * 366 * 24 * time.Hour

// Previous returns the last fire time strictly before t. It is exact and
// takes O(log) Next calls: an exponential search backwards for a span that
// holds a fire time, then a binary search (to the second) for the last one
// in it. It relies on Next(x) being the first fire time after x for every
// x, which CheckSchedule verifies around daylight-saving changes.
func (s *Schedule) Previous(t time.Time) (time.Time, error) {
	// Fire times are whole seconds: the last one before t is the last one
	// before end, t rounded up to a second.
	end := t.Truncate(time.Second)
	if end.Before(t) {
		end = end.Add(time.Second)
	}
	// fireIn reports whether a fire time lies in [a, b).
	fireIn := func(a, b time.Time) bool {
		n := s.cal.next(a.Add(-time.Second))
		return !n.IsZero() && n.Before(b)
	}
	hi, step := end, time.Minute
	for end.Sub(hi) < maxLookback {
		lo := hi.Add(-step)
		if fireIn(lo, hi) {
			// A fire time in [lo, hi), none in [hi, end).
			for hi.Sub(lo) > time.Second {
				mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
				if fireIn(mid, hi) {
					lo = mid
				} else {
					hi = mid
				}
			}
			return lo.In(s.loc), nil
		}
		hi = lo
		step *= 2
	}
	return time.Time{}, fmt.Errorf("cron %q in %s: no fire time in the 9 years before %s", s.expr, s.zone, t.Format(time.RFC3339))
}

// Window returns the window of the run whose nominal time (its
// TemporalScheduledStartTime) is nominal: [Previous(nominal), nominal)
// when nominal is a fire time. A late, retried or repeated run of the same
// nominal time gets the same window. A nominal time between fire times (a
// run triggered by hand) gets the last complete window, the one ending at
// the last fire time at or before it, never a partial one.
func (s *Schedule) Window(nominal time.Time) (begin, end time.Time, err error) {
	// The last fire time at or before nominal (fire times are whole
	// seconds).
	end, err = s.Previous(nominal.Truncate(time.Second).Add(time.Second))
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	begin, err = s.Previous(end)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return begin, end.In(s.loc), nil
}

// CheckSchedule checks a schedule before it is created: expr (CheckCron)
// and zone (IANAZone), and, in a zone with daylight saving, that the
// Temporal server's fire times around every change from 2024 to 2035 do
// not depend on when it computes them. Around a change the server's
// arithmetic can skip or repeat fire times depending on where it starts
// (see calendar); where it does, a run's window could not be computed
// from its nominal time alone, so such a schedule is refused with the
// change and the times that disagree. Expressions that fire away from
// the changed hours (say 0 9 * * *) always pass, and so do most that fire
// through them (hourly, every 15 minutes); every-minute schedules in
// Europe/Berlin do not.
func CheckSchedule(expr, zone string) error {
	s, err := NewSchedule(expr, zone)
	if err != nil {
		return err
	}
	return s.checkTransitions()
}

// dstHorizon is the span of years CheckSchedule examines.
var dstHorizon = [2]int{2024, 2036}

// checkTransitions checks that around each offset change of the zone, for
// every minute x within three hours of it, Next(x) is the first fire time
// after x of the chain of fire times the server computes from one fire
// time to the next.
func (s *Schedule) checkTransitions() error {
	for _, tr := range zoneTransitions(s.loc, dstHorizon[0], dstHorizon[1]) {
		from, to := tr.Add(-3*time.Hour), tr.Add(3*time.Hour)
		chain := []time.Time{s.cal.next(from.Add(-time.Second))}
		for last := chain[0]; !last.IsZero() && !last.After(to); {
			last = s.cal.next(last)
			chain = append(chain, last)
		}
		i := 0
		for x := from.Truncate(time.Minute); x.Before(to); x = x.Add(time.Minute) {
			for i < len(chain) && !chain[i].IsZero() && !chain[i].After(x) {
				i++
			}
			if i >= len(chain) || chain[i].IsZero() {
				break
			}
			if got := s.cal.next(x); !got.Equal(chain[i]) {
				prev := from.Add(-time.Second).In(s.loc).Format("2006-01-02 15:04:05 MST")
				if i > 0 {
					prev = chain[i-1].In(s.loc).Format("2006-01-02 15:04 MST")
				}
				return fmt.Errorf("cron %q: in %s, around the daylight-saving change of %s the Temporal server's fire times depend on when it computes them (from %s it next fires at %s, from %s at %s), so windows could overlap or leave gaps; use a zone without daylight saving (UTC or GMT+hh:00) or fire times away from the changed hours",
					s.expr, s.zone, tr.In(s.loc).Format("2006-01-02 15:04 MST"), prev, chain[i].In(s.loc).Format("2006-01-02 15:04 MST"), x.In(s.loc).Format("2006-01-02 15:04 MST"), got.In(s.loc).Format("2006-01-02 15:04 MST"))
			}
		}
	}
	return nil
}

// zoneTransitions returns the instants in [fromYear, toYear) at which
// loc's UTC offset changes.
func zoneTransitions(loc *time.Location, fromYear, toYear int) []time.Time {
	var out []time.Time
	t := time.Date(fromYear, time.January, 1, 0, 0, 0, 0, time.UTC)
	stop := time.Date(toYear, time.January, 1, 0, 0, 0, 0, time.UTC)
	_, off := t.In(loc).Zone()
	for t.Before(stop) {
		n := t.Add(24 * time.Hour)
		if _, o := n.In(loc).Zone(); o != off {
			lo, hi := t, n // offset off at lo, o at hi
			for hi.Sub(lo) > time.Second {
				mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
				if _, mo := mid.In(loc).Zone(); mo == off {
					lo = mid
				} else {
					hi = mid
				}
			}
			out = append(out, hi)
			off = o
		}
		t = n
	}
	return out
}

// NextFireTimes returns the first n fire times of expr in zone strictly
// after from (fewer when it has fewer up to 2100), in zone's location, as
// the Temporal server computes them. The starter shows the next five.
func NextFireTimes(expr, zone string, from time.Time, n int) ([]time.Time, error) {
	s, err := NewSchedule(expr, zone)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	t := from
	for len(out) < n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// PreviousFireTime returns the last fire time of expr in zone strictly
// before nominal: the begin of the window of the run whose nominal time
// is nominal. It is a pure function (no clock, no I/O beyond time zone
// data), so workflow code may call it.
func PreviousFireTime(expr, zone string, nominal time.Time) (time.Time, error) {
	s, err := NewSchedule(expr, zone)
	if err != nil {
		return time.Time{}, err
	}
	return s.Previous(nominal)
}

// maxFires is an upper bound on the fire times of sets in any span of
// length d, in any zone: per clock hour at most |minutes|; per day at most
// |minutes|×|hours| plus one repeated hour when clocks go back.
func maxFires(sets [5][]bool, d time.Duration) int {
	count := func(set []bool) int {
		n := 0
		for _, b := range set {
			if b {
				n++
			}
		}
		return n
	}
	perHour := count(sets[0])
	perDay := perHour * (count(sets[1]) + 1)
	hours := int((d+time.Hour-1)/time.Hour) + 2
	days := int((d+24*time.Hour-1)/(24*time.Hour)) + 1
	return min(perHour*hours, perDay*days)
}

// MaxCatchupWindow is the longest catch-up window (in whole minutes, at
// most a year) whose missed windows fit Temporal's buffer of
// TemporalBufferSize starts, by a bound that holds in every time zone
// (including a repeated hour when clocks go back): a year for @daily, 998
// hours (41 days) for @hourly, 248 hours for */15 * * * *, 81 hours for
// */5 * * * * and 14 hours for * * * * *.
func MaxCatchupWindow(expr string) (time.Duration, error) {
	_, sets, err := checkCron(expr)
	if err != nil {
		return 0, err
	}
	lo, hi := 0, int(maxCatchupWindow/time.Minute)
	if maxFires(sets, maxCatchupWindow) <= TemporalBufferSize {
		return maxCatchupWindow, nil
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if maxFires(sets, time.Duration(mid)*time.Minute) <= TemporalBufferSize {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Duration(lo) * time.Minute, nil
}

var gmtOffsetRE = regexp.MustCompile(`^(?:GMT|UTC) ?([+-]?)(\d{1,2})(?::?(\d{2}))?$`)

// halfHourZones suggests an IANA name for offsets that have no Etc zone.
var halfHourZones = map[int]string{
	-9*60 - 30: "Pacific/Marquesas",
	-3*60 - 30: "America/St_Johns",
	3*60 + 30:  "Asia/Tehran",
	4*60 + 30:  "Asia/Kabul",
	5*60 + 30:  "Asia/Kolkata",
	5*60 + 45:  "Asia/Kathmandu",
	6*60 + 30:  "Asia/Yangon",
	8*60 + 45:  "Australia/Eucla",
	9*60 + 30:  "Australia/Darwin",
	10*60 + 30: "Australia/Lord_Howe",
	12*60 + 45: "Pacific/Chatham",
}

// IANAZone returns the IANA name Temporal is given for a time zone, since
// a Temporal Schedule takes IANA names only:
//
//   - "UTC" and "GMT" (and GMT+00:00) are "UTC";
//   - "GMT+08:00", "GMT+8", "UTC+08:00" and "GMT 08:00" (seed 004's
//     spelling, where the '+' was lost) are "Etc/GMT-8": the Etc zones
//     follow POSIX, whose sign is inverted (Etc/GMT-8 is eight hours ahead
//     of UTC); offsets run from -12 to +14 whole hours;
//   - an offset that is not whole hours (GMT+05:30) has no Etc zone and is
//     refused, with the IANA name of a region that uses it (Asia/Kolkata);
//   - an IANA name (Asia/Shanghai, Europe/Berlin) is returned as it is
//     when the time zone database knows it.
func IANAZone(zone string) (string, error) {
	name, rule := ianaZone(zone)
	if rule != "" {
		return "", fmt.Errorf("time zone %q %s", zone, rule)
	}
	return name, nil
}

// ianaZone is IANAZone, with the rule a refused zone breaks.
func ianaZone(zone string) (name, rule string) {
	const want = "must be UTC, GMT+hh:00 or an IANA name such as Asia/Shanghai (Temporal takes IANA names only)"
	z := strings.TrimSpace(zone)
	switch z {
	case "UTC", "GMT":
		return "UTC", ""
	case "", "Local":
		return "", want
	}
	if m := gmtOffsetRE.FindStringSubmatch(z); m != nil {
		h, _ := strconv.Atoi(m[2])
		mins := 0
		if m[3] != "" {
			mins, _ = strconv.Atoi(m[3])
		}
		if mins > 59 {
			return "", "must have minutes 00-59"
		}
		off := h*60 + mins
		if m[1] == "-" {
			off = -off
		}
		if mins != 0 {
			suggest := "the IANA name of the region"
			if name, ok := halfHourZones[off]; ok {
				suggest = "the region's name, such as " + name
			}
			return "", "has no Etc zone (Etc zones are whole hours) and Temporal takes IANA names only: use " + suggest
		}
		switch {
		case off == 0:
			return "UTC", ""
		case off < -12*60 || off > 14*60:
			return "", "is out of range: offsets run from GMT-12:00 to GMT+14:00"
		case off > 0:
			return "Etc/GMT-" + strconv.Itoa(h), "" // POSIX: inverted sign
		default:
			return "Etc/GMT+" + strconv.Itoa(h), ""
		}
	}
	if _, err := loadLocation(z); err != nil {
		return "", "is not a zone the time zone database knows: " + want
	}
	return z, ""
}

var zoneCache sync.Map // IANA name → *time.Location

// LoadZone loads a time zone given in any form IANAZone accepts, as the
// IANA zone IANAZone maps it to. Zones are loaded once per process, so that
// a zone keeps its rules for the life of the process.
func LoadZone(zone string) (*time.Location, error) {
	name, err := IANAZone(zone)
	if err != nil {
		return nil, err
	}
	return loadLocation(name)
}

func loadLocation(name string) (*time.Location, error) {
	if l, ok := zoneCache.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	l, _ := zoneCache.LoadOrStore(name, loc)
	return l.(*time.Location), nil
}
