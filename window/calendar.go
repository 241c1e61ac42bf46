package window

import "time"

// calendar computes fire times exactly as the Temporal server does, since
// the server is what fires the runs. It is a port of compiledCalendar.next
// in go.temporal.io/server service/worker/scheduler/calendar.go (v1.32.1,
// MIT License, Copyright (c) 2025 Temporal Technologies Inc., Copyright
// (c) 2020 Uber Technologies, Inc.), for the fields of CheckCron's subset:
// second 0, any year up to 2100. TestCronAgreesWithTemporal compares it
// with the server's own code.
//
// Why not robfig/cron's Next: around a daylight-saving change the two
// differ. In Europe/Berlin on 27 October 2024 the server fires
// "59 1 * * *" at 01:59 and again at 02:59 CEST, and "* * * * *" jumps
// from 02:00 CEST to 02:01 CET, where robfig/cron fires once and every
// minute. A window computed with robfig/cron would then overlap or miss
// the server's, so robfig/cron checks the expression (CheckCron) and this
// computes the times.
type calendar struct {
	loc                                        *time.Location
	minute, hour, dayOfMonth, month, dayOfWeek []bool
}

// maxCalendarYear is the server's: it finds no fire time after 2100.
const maxCalendarYear = 2100

func newCalendar(sets [5][]bool, loc *time.Location) *calendar {
	return &calendar{loc: loc, minute: sets[0], hour: sets[1], dayOfMonth: sets[2], month: sets[3], dayOfWeek: sets[4]}
}

func in(set []bool, v int) bool { return v >= 0 && v < len(set) && set[v] }

// next returns the earliest fire time after ts (at one-second resolution),
// or the zero time when there is none up to 2100. The control flow is the
// server's, line for line, with second fixed at 0 and every year matching.
func (cc *calendar) next(ts time.Time) time.Time {
	ts = ts.In(cc.loc)
	y, mo, d := ts.Date()
	h, m, s := ts.Clock()
	dstoffset := 0 * time.Hour
	if ts.Add(-time.Hour).Hour() == h {
		// we're in the second copy of a dst repeated hour
		dstoffset = 1 * time.Hour
	}
	s++

Outer:
	for {
		if s >= 60 {
			m, s = m+1, 0
		}
		if m >= 60 {
			prev := time.Date(y, mo, d, h, 0, 0, 0, cc.loc)
			h, m = h+1, 0
			next := time.Date(y, mo, d, h, 0, 0, 0, cc.loc)
			// moved to the next hour but it is two hours later: a dst
			// repeated hour was skipped; try it again with an offset.
			if dstoffset == 0 && next.Sub(prev) > time.Hour {
				h = h - 1
				dstoffset = 1 * time.Hour
			} else {
				dstoffset = 0
			}
		}
		if h >= 24 {
			d, h = d+1, 0
		}
		if d > daysInMonth(mo, y) {
			mo, d = mo+1, 1
		}
		if mo > time.December {
			y, mo = y+1, time.January
		}
		if y > maxCalendarYear {
			break Outer
		}
		for !in(cc.month, int(mo)) {
			mo, d, h, m, s = mo+1, 1, 0, 0, 0
			dstoffset = 0
			if mo > time.December {
				continue Outer
			}
		}
		for !in(cc.dayOfMonth, d) || !in(cc.dayOfWeek, int(time.Date(y, mo, d, h, m, s, 0, cc.loc).Weekday())) {
			d, h, m, s = d+1, 0, 0, 0
			dstoffset = 0
			if d > daysInMonth(mo, y) {
				continue Outer
			}
		}
		for !in(cc.hour, h) {
			h, m, s = h+1, 0, 0
			dstoffset = 0
			if h >= 24 {
				continue Outer
			}
		}
		for !in(cc.minute, m) {
			m, s = m+1, 0
			if m >= 60 {
				continue Outer
			}
		}
		for s != 0 {
			s = s + 1
			if s >= 60 {
				continue Outer
			}
		}
		nextTs := time.Date(y, mo, d, h, m, s, 0, cc.loc)
		// a nonexistent time jumped over by a dst transition shows as
		// another hour.
		if nextTs.Hour() != h {
			h, m, s = h+1, 0, 0
			continue Outer
		}
		return nextTs.Add(dstoffset)
	}
	return time.Time{}
}

func daysInMonth(m time.Month, y int) int {
	if m == time.February {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	const bits = 0b1010110101010
	return 30 + (bits>>m)&1
}
