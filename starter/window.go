package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

// starter window validate|run|watch runs window jobs (package window, seed
// 003) by hand:
//
//	starter window validate -f job.yaml                  check a job; show its next windows
//	starter window run -f job.yaml [--from T --to T]     load a window now and follow it
//	starter window watch WORKFLOW-ID                     follow a running load or backfill
//
// A window that is exactly one window of the job's schedule (or any window
// of a job without one) is loaded by one WindowLoad workflow whose id is
// the one the schedule gives its run of that window (workflows.WindowRunID),
// so a manual run and a scheduled run of a window never overlap: a run
// already loading it is followed instead of started again. A span of
// several schedule windows is loaded by one WindowBackfill workflow, one
// window after another. A manual run never moves the job's position
// (reader.begin seekToLast): only scheduled runs do.

// now is the clock of the window and schedule commands.
var now = time.Now

// windowSubcommands are the window commands, for usage.
var windowSubcommands = []subcommand{
	{"validate", "-f job.yaml", "check a window job spec: every violation, or a summary and its next 5 windows"},
	{"run", "-f job.yaml [--from T --to T] [--detach]", "load a window (or every window of a span) now and follow its progress"},
	{"watch", "WORKFLOW-ID", "follow a running window load or backfill and print its result"},
}

func cmdWindow(ctx context.Context, args []string) error {
	return runWindow(ctx, args, os.Stdout, os.Stderr)
}

func windowUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: starter window COMMAND [flags]\n\ncommands:\n")
	for _, c := range windowSubcommands {
		fmt.Fprintf(w, "  %-9s %-42s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nT is an RFC 3339 time (2024-01-01T08:00:00+08:00) or yyyyMMddHHmmss in the job's time zone.\n"+
		"Run 'starter window COMMAND -h' for a command's flags.\n")
}

// windowCmd is one parsed window command.
type windowCmd struct {
	sub      string
	g        globals
	file     string
	from, to string
	detach   bool
	pos      []string
	out      io.Writer
	errw     io.Writer
}

// runWindow runs a window command, writing its output to out and notes
// (and, with --json, progress) to errw.
func runWindow(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		windowUsage(errw)
		return flag.ErrHelp
	}
	wc := windowCmd{sub: args[0], out: out, errw: errw}
	fs, _, err := subFlags("window", wc.sub, windowSubcommands, windowUsage, errw)
	if err != nil {
		return err
	}
	wc.g.register(fs)
	if wc.sub != "watch" {
		fs.StringVar(&wc.file, "f", "", "window job spec, YAML or JSON (required)")
	}
	if wc.sub == "run" {
		fs.StringVar(&wc.from, "from", "", "the window's begin (inclusive): RFC 3339 or yyyyMMddHHmmss in the job's time zone")
		fs.StringVar(&wc.to, "to", "", "the window's end (exclusive), as --from")
	}
	if wc.sub == "run" {
		fs.BoolVar(&wc.detach, "detach", false, "start the run and return without following it")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	wc.pos = pos
	switch wc.sub {
	case "watch":
		if len(pos) != 1 {
			return fmt.Errorf("want WORKFLOW-ID, got %d argument(s)", len(pos))
		}
	default:
		if len(pos) != 0 {
			return fmt.Errorf("want no arguments besides -f, got %d", len(pos))
		}
		if wc.file == "" {
			return errors.New("-f job.yaml is required")
		}
	}
	switch wc.sub {
	case "validate":
		return windowValidate(&wc)
	case "run":
		return windowRun(ctx, &wc)
	default:
		return windowWatch(ctx, &wc)
	}
}

// ---- validate ----

// violationJSON is one violation, for --json.
type violationJSON struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Rule  string `json:"rule"`
}

// jobSummary describes a valid window job.
type jobSummary struct {
	File        string           `json:"file,omitempty"`
	Valid       bool             `json:"valid"`
	Violations  []violationJSON  `json:"violations,omitempty"`
	Name        string           `json:"name,omitempty"`
	Topic       string           `json:"topic,omitempty"`
	Brokers     []string         `json:"brokers,omitempty"`
	Begin       string           `json:"begin,omitempty"`
	End         string           `json:"end,omitempty"`
	Destination string           `json:"destination,omitempty"` // the template, e.g. maxcompute p.t partition pt=${yyyyMMddHH}
	Mode        string           `json:"mode,omitempty"`        // overwrite or append
	TimeZone    string           `json:"timeZone,omitempty"`    // the job's zone, IANA
	Schedule    *scheduleSummary `json:"schedule,omitempty"`
	NextFires   []fireJSON       `json:"nextFires,omitempty"`
}

type scheduleSummary struct {
	ID             string        `json:"id"`
	Cron           string        `json:"cron"`
	TimeZone       string        `json:"timeZone"` // IANA, as Temporal gets it
	Given          string        `json:"given"`    // as the spec writes it
	Overlap        string        `json:"overlap"`
	CatchupWindow  time.Duration `json:"catchupWindow"`
	Delay          time.Duration `json:"delay"`
	Jitter         time.Duration `json:"jitter"`
	PauseOnFailure bool          `json:"pauseOnFailure"`
}

// fireJSON is a fire time and the window its run loads.
type fireJSON struct {
	Fire        time.Time `json:"fire"`
	Begin       time.Time `json:"begin"`
	End         time.Time `json:"end"`
	Destination string    `json:"destination"`
}

func windowValidate(wc *windowCmd) error {
	spec, err := window.Load(wc.file)
	if err != nil {
		var ve *connector.ValidationError
		if wc.g.json && errors.As(err, &ve) {
			js := jobSummary{File: wc.file}
			for _, v := range ve.Violations {
				js.Violations = append(js.Violations, violationJSON(v))
			}
			if err := writeJSON(wc.out, js); err != nil {
				return err
			}
			return exitError(1)
		}
		return err
	}
	sum, err := summarize(spec, now(), 5)
	if err != nil {
		return err
	}
	sum.File = wc.file
	if wc.g.json {
		return writeJSON(wc.out, sum)
	}
	fmt.Fprintf(wc.out, "window job %s (%s): valid\n", spec.Name, wc.file)
	printSummary(wc.out, spec, sum)
	if spec.Schedule == nil {
		fmt.Fprintf(wc.out, "\nno schedule: load a window with 'starter window run -f %s --from T --to T'\n", wc.file)
	}
	return nil
}

// summarize describes spec and, for a job with a schedule, its next n
// fire times after from with the window each loads.
func summarize(spec *window.Spec, from time.Time, n int) (jobSummary, error) {
	loc, err := spec.Location()
	if err != nil {
		return jobSummary{}, err
	}
	sum := jobSummary{
		Valid: true, Name: spec.Name, Topic: spec.Reader.Topic, Brokers: spec.Reader.Brokers,
		Begin: spec.Reader.Begin.String(), End: spec.Reader.End.String(),
		Destination: destinationTemplate(spec), Mode: loadMode(spec), TimeZone: loc.String(),
	}
	sc := spec.Schedule
	if sc == nil {
		return sum, nil
	}
	sched, err := window.NewSchedule(sc.Cron, sc.TimeZone)
	if err != nil {
		return jobSummary{}, err
	}
	sum.Schedule = &scheduleSummary{
		ID: spec.ScheduleID(), Cron: sched.Cron(), TimeZone: sched.Zone(), Given: sc.TimeZone, Overlap: sc.Overlap,
		CatchupWindow: sc.CatchupWindow.D(), Delay: sc.Delay.D(), Jitter: sc.Jitter.D(), PauseOnFailure: sc.PauseOnFailure,
	}
	fires, err := window.NextFireTimes(sc.Cron, sc.TimeZone, from, n)
	if err != nil {
		return jobSummary{}, err
	}
	for _, f := range fires {
		begin, err := sched.Previous(f)
		if err != nil {
			return jobSummary{}, err
		}
		dest, err := windowDestination(spec, begin, f)
		if err != nil {
			return jobSummary{}, err
		}
		sum.NextFires = append(sum.NextFires, fireJSON{Fire: f, Begin: begin.In(sched.Location()), End: f, Destination: dest})
	}
	return sum, nil
}

// printSummary prints a job summary: what it reads, where it writes, how,
// and when.
func printSummary(w io.Writer, spec *window.Spec, sum jobSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  topic:\t%s (brokers %s; reader.begin %s, reader.end %s)\n", sum.Topic, strings.Join(sum.Brokers, ","), sum.Begin, sum.End)
	fmt.Fprintf(tw, "  destination:\t%s\n", sum.Destination)
	fmt.Fprintf(tw, "  mode:\t%s\n", modeNote(spec))
	if s := sum.Schedule; s != nil {
		zone := s.TimeZone
		if s.Given != s.TimeZone {
			zone += " (" + s.Given + ")"
		}
		fmt.Fprintf(tw, "  schedule:\t%s in %s, schedule id %s\n", s.Cron, zone, s.ID)
		fmt.Fprintf(tw, "  \toverlap %s, catch-up window %s, delay %s, jitter %s, pause on failure %t\n",
			s.Overlap, shortDuration(s.CatchupWindow), shortDuration(s.Delay), shortDuration(s.Jitter), s.PauseOnFailure)
		if window.OverlapLosesWindows(s.Overlap) {
			fmt.Fprintf(tw, "  warning:	overlap %s can leave windows unloaded when a run is still going at the next fire time: Temporal counts them as skipped (schedule describe), backfill them; bufferAll loads every window\n", s.Overlap)
		}
	} else {
		fmt.Fprintf(tw, "  schedule:\tnone (time zone %s)\n", sum.TimeZone)
	}
	tw.Flush()
	if len(sum.NextFires) > 0 {
		loc := sum.NextFires[0].Fire.Location()
		fmt.Fprintf(w, "\nnext %d fire times (%s) and the window each run loads:\n", len(sum.NextFires), loc)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  FIRE TIME\tWINDOW\tDESTINATION")
		for _, f := range sum.NextFires {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", fmtTime(f.Fire, loc), fmtWindow(f.Begin, f.End, loc), f.Destination)
		}
		tw.Flush()
	}
}

// destinationTemplate is where a job writes, its variables unexpanded.
func destinationTemplate(spec *window.Spec) string {
	switch {
	case spec.Writer.MaxCompute != nil:
		m := spec.Writer.MaxCompute
		if m.Partition == "" {
			return fmt.Sprintf("maxcompute %s.%s (no partition)", m.Project, m.Table)
		}
		return fmt.Sprintf("maxcompute %s.%s partition %s", m.Project, m.Table, m.Partition)
	case spec.Writer.OSS != nil:
		o := spec.Writer.OSS
		return fmt.Sprintf("oss://%s/%s/", o.Bucket, o.Prefix)
	}
	return ""
}

// destinationOf names a window's expanded destination in full.
func destinationOf(spec *window.Spec, dest string) string {
	switch {
	case spec.Writer.MaxCompute != nil:
		m := spec.Writer.MaxCompute
		if dest == "" {
			return fmt.Sprintf("maxcompute %s.%s", m.Project, m.Table)
		}
		return fmt.Sprintf("maxcompute %s.%s partition %s", m.Project, m.Table, dest)
	case spec.Writer.OSS != nil:
		return fmt.Sprintf("oss://%s/%s/", spec.Writer.OSS.Bucket, dest)
	}
	return dest
}

// windowDestination is the window's partition or prefix.
func windowDestination(spec *window.Spec, begin, end time.Time) (string, error) {
	switch {
	case spec.Writer.MaxCompute != nil:
		return spec.Writer.MaxCompute.PartitionSpec(begin, end)
	case spec.Writer.OSS != nil:
		return spec.Writer.OSS.WindowPrefix(begin, end)
	}
	return "", nil
}

// loadMode is overwrite (MaxCompute with truncate) or append (MaxCompute
// without, and OSS, which has no atomic replace: a published window is
// not loaded again).
func loadMode(spec *window.Spec) string {
	if m := spec.Writer.MaxCompute; m != nil && m.Truncate != nil && *m.Truncate {
		return "overwrite"
	}
	return "append"
}

func modeNote(spec *window.Spec) string {
	switch {
	case spec.Writer.MaxCompute != nil && loadMode(spec) == "append":
		return "append (writer.maxcompute.truncate false): a window adds its rows; a re-run of a loaded window finds it in the ledger and does nothing"
	case spec.Writer.MaxCompute != nil:
		return "overwrite (writer.maxcompute.truncate true): a window replaces its partition's rows at once; re-runs and backfills never duplicate"
	default:
		return "append: a window published under its prefix (its _SUCCESS object) is not loaded again; what an unpublished run left there is replaced"
	}
}

// ---- run ----

// runPlan is what `window run` starts.
type runPlan struct {
	spec     *window.Spec
	raw      json.RawMessage
	sched    *window.Schedule // nil without a schedule
	loc      *time.Location
	from, to time.Time
	windows  [][2]time.Time // the schedule's windows in [from, to), up to maxListedWindows
	count    int            // how many windows
	backfill bool
	how      string // how the window was chosen
}

// maxListedWindows bounds the windows a plan lists (it counts them all).
const maxListedWindows = 100

// parseWindowTime reads a --from or --to value: RFC 3339, or
// yyyyMMddHHmmss in loc (the job's zone).
func parseWindowTime(flagName, s string, loc *time.Location) (time.Time, error) {
	b, err := window.NewPosition(s).Parse(loc)
	if err == nil && b.Kind == window.KindTime {
		return b.Time, nil
	}
	rule := "must be an RFC 3339 time (such as 2024-01-01T08:00:00+08:00) or yyyyMMddHHmmss in the job's time zone " + loc.String()
	if err != nil && strings.Contains(err.Error(), "time zone") {
		rule = err.Error() // a datetime the zone skips
	}
	return time.Time{}, fmt.Errorf("--%s %q %s", flagName, s, rule)
}

// planRun decides the window(s) of a manual run.
func planRun(spec *window.Spec, fromS, toS string, at time.Time) (*runPlan, error) {
	loc, err := spec.Location()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	p := &runPlan{spec: spec, raw: raw, loc: loc}
	if sc := spec.Schedule; sc != nil {
		if p.sched, err = window.NewSchedule(sc.Cron, sc.TimeZone); err != nil {
			return nil, err
		}
	}
	switch {
	case fromS != "" && toS != "":
		if p.from, err = parseWindowTime("from", fromS, loc); err != nil {
			return nil, err
		}
		if p.to, err = parseWindowTime("to", toS, loc); err != nil {
			return nil, err
		}
		if !p.from.Before(p.to) {
			return nil, fmt.Errorf("--from %s is not before --to %s: the window is [from, to)", fmtTime(p.from, loc), fmtTime(p.to, loc))
		}
		p.how = "--from/--to"
	case fromS != "" || toS != "":
		return nil, errors.New("give both --from and --to, or neither (a job with a schedule then loads its last complete window)")
	case p.sched != nil:
		if p.from, p.to, err = p.sched.Window(at); err != nil {
			return nil, err
		}
		p.how = "the last complete window of the schedule"
	default:
		if p.from, p.to, err = boundsWindow(spec, loc, at); err != nil {
			return nil, err
		}
		p.how = "reader.begin and reader.end"
	}
	if p.sched == nil {
		p.windows, p.count = [][2]time.Time{{p.from, p.to}}, 1
		return p, nil
	}
	// With a schedule, a manual window is made of the schedule's windows:
	// its partitions (or prefixes) are named per window, so a window that
	// is not one of the schedule's would load part of one into it, and
	// with truncate replace the rest.
	for _, b := range []struct {
		name string
		t    time.Time
	}{{"from", p.from}, {"to", p.to}} {
		if !isFireTime(p.sched, b.t) {
			prev, _ := p.sched.Previous(b.t)
			next := p.sched.Next(b.t)
			return nil, fmt.Errorf("--%s %s is not a fire time of the job's schedule (%s in %s): the job's windows begin and end at fire times, and a window's destination is named by its window; the nearest are %s and %s",
				b.name, fmtTime(b.t, loc), p.sched.Cron(), p.sched.Zone(), fmtTime(prev, loc), fmtTime(next, loc))
		}
	}
	p.windows, p.count, err = scheduleWindows(p.sched, p.from, p.to, maxListedWindows)
	if err != nil {
		return nil, err
	}
	p.backfill = p.count > 1
	return p, nil
}

// boundsWindow is the window of a job without a schedule run without
// --from/--to: the one its reader bounds define (datetimes), what the
// workflow needs to name the destination and the ledger entry.
func boundsWindow(spec *window.Spec, loc *time.Location, at time.Time) (time.Time, time.Time, error) {
	b, berr := spec.Reader.Begin.Parse(loc)
	e, eerr := spec.Reader.End.Parse(loc)
	if berr == nil && eerr == nil && b.Kind == window.KindTime {
		switch e.Kind {
		case window.KindTime:
			if b.Time.Before(e.Time) {
				return b.Time, e.Time, nil
			}
		case window.KindSeekToEnd:
			if b.Time.Before(at) {
				return b.Time, at.Truncate(time.Second), nil
			}
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("job %s has no schedule and its reader bounds (begin %s, end %s) do not define a window: give --from and --to "+
		"(the window is [from, to): with begin and end 'window' it is what is read; it also names the destination's ${...} variables and the ledger entry), "+
		"or set reader.begin and reader.end to datetimes", spec.Name, spec.Reader.Begin, spec.Reader.End)
}

// isFireTime reports whether t is a fire time of s.
func isFireTime(s *window.Schedule, t time.Time) bool {
	return t.Equal(t.Truncate(time.Second)) && s.Next(t.Add(-time.Second)).Equal(t)
}

// scheduleWindows lists the windows of s that end in (from, to], as
// WindowBackfill loads them, up to limit, and counts them all.
func scheduleWindows(s *window.Schedule, from, to time.Time, limit int) ([][2]time.Time, int, error) {
	var out [][2]time.Time
	n := 0
	for end := s.Next(from); !end.IsZero() && !end.After(to); end = s.Next(end) {
		if len(out) < limit {
			begin, err := s.Previous(end)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, [2]time.Time{begin.In(s.Location()), end})
		}
		n++
	}
	return out, n, nil
}

// countWindows counts the windows of s that end in (from, to], stopping
// past limit.
func countWindows(s *window.Schedule, from, to time.Time, limit int) int {
	n := 0
	for end := s.Next(from); !end.IsZero() && !end.After(to) && n <= limit; end = s.Next(end) {
		n++
	}
	return n
}

// backfillID is the WindowBackfill workflow id of a span.
func backfillID(name string, from, to time.Time) string {
	const compact = "20060102T150405Z"
	return "window-backfill-" + name + "-" + from.UTC().Format(compact) + "-" + to.UTC().Format(compact)
}

// runJSON is `window run`'s and `window watch`'s --json output.
type runJSON struct {
	WorkflowID string                      `json:"workflowId"`
	RunID      string                      `json:"runId"`
	Workflow   string                      `json:"workflow"`
	Attached   bool                        `json:"attached,omitempty"`
	Status     string                      `json:"status"` // started (--detach), completed, failed
	Error      string                      `json:"error,omitempty"`
	Result     *workflows.WindowResult     `json:"result,omitempty"`
	Backfill   *workflows.BackfillProgress `json:"backfill,omitempty"`
	Windows    []windowRunJSON             `json:"windows,omitempty"`
}

// windowRunJSON is one window of a backfill and its run.
type windowRunJSON struct {
	WorkflowID string                  `json:"workflowId"`
	Begin      time.Time               `json:"begin"`
	End        time.Time               `json:"end"`
	Status     string                  `json:"status"`
	Error      string                  `json:"error,omitempty"`
	Result     *workflows.WindowResult `json:"result,omitempty"`
}

func windowRun(ctx context.Context, wc *windowCmd) error {
	spec, err := window.Load(wc.file)
	if err != nil {
		return err
	}
	plan, err := planRun(spec, wc.from, wc.to, now())
	if err != nil {
		return err
	}
	c, err := dial(ctx, &wc.g)
	if err != nil {
		return err
	}
	defer c.Close()

	notes := wc.out
	if wc.g.json {
		notes = wc.errw
	}
	var id, wf string
	var arg any
	if plan.backfill {
		id, wf = backfillID(spec.Name, plan.from, plan.to), workflows.WindowBackfillName
		arg = workflows.BackfillInput{Spec: plan.raw, From: plan.from, To: plan.to}
		fmt.Fprintf(notes, "window job %s: %d windows of the schedule (%s in %s) in %s, loaded one after another by %s %s\n",
			spec.Name, plan.count, plan.sched.Cron(), plan.sched.Zone(), fmtWindow(plan.from, plan.to, plan.loc), wf, id)
	} else {
		id, wf = workflows.WindowRunID(spec.Name, plan.to), workflows.WindowLoadName
		arg = workflows.WindowInput{Spec: plan.raw, Begin: plan.from, End: plan.to}
		dest, err := windowDestination(spec, plan.from, plan.to)
		if err != nil {
			return err
		}
		fmt.Fprintf(notes, "window job %s: window %s (%s) of topic %s → %s, %s, by %s %s\n",
			spec.Name, fmtWindow(plan.from, plan.to, plan.loc), plan.how, spec.Reader.Topic, destinationOf(spec, dest), loadMode(spec), wf, id)
	}
	if wait := plan.to.Add(scheduleDelay(spec)).Sub(now()); wait > 0 {
		fmt.Fprintf(notes, "note: the window ends at %s: the run waits until then (plus schedule.delay) before it reads\n", fmtTime(plan.to.Add(scheduleDelay(spec)), plan.loc))
	}
	run, attached, err := startOrAttach(ctx, c, id, wf, arg)
	if err != nil {
		return err
	}
	if attached {
		// The running one (a scheduled run of the window, an operator's)
		// was started with its own spec: show that one.
		d, err := c.DescribeWorkflowExecution(ctx, id, run.GetRunID())
		if err != nil {
			return fmt.Errorf("describe the running %s: %w", id, err)
		}
		if t := d.GetWorkflowExecutionInfo().GetType().GetName(); t != wf {
			return fmt.Errorf("%s is a running %s workflow, not %s", id, t, wf)
		}
		if s, err := startedSpec(ctx, c, id, run.GetRunID()); err == nil {
			spec = s
		}
		fmt.Fprintf(notes, "%s is already running (run %s): following it instead of starting another\n", id, run.GetRunID())
	} else {
		fmt.Fprintf(notes, "started %s (run %s) on task queue %s\n", id, run.GetRunID(), workflows.TaskQueue)
	}
	if wc.detach {
		if wc.g.json {
			return writeJSON(wc.out, runJSON{WorkflowID: id, RunID: run.GetRunID(), Workflow: wf, Attached: attached, Status: "started"})
		}
		fmt.Fprintf(wc.out, "follow it with: starter window watch %s\n", id)
		return nil
	}
	return followAndReport(ctx, c, wc, id, run.GetRunID(), wf, spec, attached)
}

func scheduleDelay(spec *window.Spec) time.Duration {
	if spec.Schedule != nil {
		return spec.Schedule.Delay.D()
	}
	return 0
}

// startOrAttach starts workflow wf with id, or, when a run with that id is
// running, returns that run.
func startOrAttach(ctx context.Context, c client.Client, id, wf string, arg any) (client.WorkflowRun, bool, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK returns the running run as if it had started it.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, wf, arg)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return c.GetWorkflow(ctx, id, started.RunId), true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("start %s %s: %w", wf, id, err)
	}
	return run, false, nil
}

// followAndReport follows a run to its end (progress to out, or errw with
// --json), then prints its result and returns its error.
func followAndReport(ctx context.Context, c client.Client, wc *windowCmd, id, runID, wf string, spec *window.Spec, attached bool) error {
	pw := wc.out
	if wc.g.json {
		pw = wc.errw
	}
	loc, err := spec.Location()
	if err != nil {
		return err
	}
	f := &follower{c: c, out: pw, tty: writerIsTerminal(pw), loc: loc, spec: spec, poll: followPoll, every: followLineEvery}
	js := runJSON{WorkflowID: id, RunID: runID, Workflow: wf, Attached: attached, Status: "completed"}
	var runErr error
	if wf == workflows.WindowBackfillName {
		prog, err := f.followBackfill(ctx, id, runID)
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following %s (it goes on; follow it again with 'starter window watch %s'): %w", id, id, ctx.Err())
		}
		runErr = err
		js.Backfill = &prog
		from, to := prog.From, prog.To
		js.Windows = backfillResults(ctx, c, spec, from, to)
		if !wc.g.json {
			printBackfillResult(wc.out, spec, loc, prog, js.Windows)
		}
	} else {
		res, err := f.followLoad(ctx, id, runID)
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following %s (it goes on; follow it again with 'starter window watch %s'): %w", id, id, ctx.Err())
		}
		runErr = err
		js.Result = &res
		if !wc.g.json {
			printLoadResult(wc.out, spec, loc, id, res, runErr != nil)
		}
	}
	if runErr != nil {
		js.Status, js.Error = "failed", explainFailure(runErr)
	}
	if wc.g.json {
		if err := writeJSON(wc.out, js); err != nil {
			return err
		}
		if runErr != nil {
			return exitError(1)
		}
		return nil
	}
	if runErr != nil {
		return fmt.Errorf("%s %s failed: %s", wf, id, explainFailure(runErr))
	}
	return nil
}

// backfillResults looks up the run of every window of a backfill (up to
// maxListedWindows): its status and, once completed, its result.
func backfillResults(ctx context.Context, c client.Client, spec *window.Spec, from, to time.Time) []windowRunJSON {
	var wins [][2]time.Time
	if sc := spec.Schedule; sc != nil {
		sched, err := window.NewSchedule(sc.Cron, sc.TimeZone)
		if err != nil {
			return nil
		}
		if wins, _, err = scheduleWindows(sched, from, to, maxListedWindows); err != nil {
			return nil
		}
	} else {
		wins = [][2]time.Time{{from, to}}
	}
	out := make([]windowRunJSON, 0, len(wins))
	for _, w := range wins {
		out = append(out, windowRun1(ctx, c, workflows.WindowRunID(spec.Name, w[1]), "", w[0], w[1]))
	}
	return out
}

// windowRun1 describes the run id (its latest run when runID is empty) of
// the window [begin, end).
func windowRun1(ctx context.Context, c client.Client, id, runID string, begin, end time.Time) windowRunJSON {
	r := windowRunJSON{WorkflowID: id, Begin: begin, End: end}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(qctx, id, runID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		r.Status = "not started"
		return r
	case err != nil:
		r.Status, r.Error = "unknown", err.Error()
		return r
	}
	st := d.GetWorkflowExecutionInfo().GetStatus()
	r.Status = statusName(st)
	if st == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return r
	}
	var res workflows.WindowResult
	err = c.GetWorkflow(qctx, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId()).Get(qctx, &res)
	if err != nil {
		r.Error = explainFailure(err)
		return r
	}
	r.Result = &res
	r.Begin, r.End = res.Begin, res.End
	return r
}

// statusName is a workflow status in lower case: running, completed, failed, ...
func statusName(st enumspb.WorkflowExecutionStatus) string {
	s := st.String()
	if strings.HasPrefix(s, "WORKFLOW_EXECUTION_STATUS_") {
		s = strings.TrimPrefix(s, "WORKFLOW_EXECUTION_STATUS_")
	}
	return strings.ToLower(strings.ReplaceAll(s, "_", " "))
}

// printLoadResult prints a window load's result table and destination.
func printLoadResult(w io.Writer, spec *window.Spec, loc *time.Location, id string, res workflows.WindowResult, failed bool) {
	fmt.Fprintln(w)
	if res.End.IsZero() {
		fmt.Fprintf(w, "%s: no result\n", id)
		return
	}
	fmt.Fprintf(w, "window %s of topic %s, %s\n", fmtWindow(res.Begin, res.End, loc), spec.Reader.Topic, id)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tFIRST\tEND\tRECORDS\tBYTES\tERRORS\tDURATION\tSTATE\t")
	for _, p := range res.Partitions {
		state := p.State
		if failed {
			// A failed run waits for its loads to end: a partition still
			// loading is one whose load failed.
			switch state {
			case workflows.WindowLoading:
				state = "failed"
			case workflows.WindowPending:
				state = "not started"
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t\n", p.Partition, p.First, p.End, p.Records, human(p.Bytes), p.Errors, roundDuration(p.Duration), state)
	}
	var recs, bytes, errs int64
	for _, p := range res.Partitions {
		recs, bytes, errs = recs+p.Records, bytes+p.Bytes, errs+p.Errors
	}
	fmt.Fprintf(tw, "total\t\t\t%d\t%s\t%d\t%s\t\t\n", recs, human(bytes), errs, roundDuration(res.Duration))
	tw.Flush()
	switch {
	case failed:
		fmt.Fprintf(w, "destination: %s (%s): not published\n", destinationOf(spec, res.Destination), loadMode(spec))
	case res.AlreadyLoaded:
		fmt.Fprintf(w, "destination: %s (%s): already loaded by an earlier run; nothing was written\n", destinationOf(spec, res.Destination), loadMode(spec))
	default:
		fmt.Fprintf(w, "destination: %s (%s): %d records published\n", destinationOf(spec, res.Destination), loadMode(spec), res.Records)
	}
}

// printBackfillResult prints a backfill's windows.
func printBackfillResult(w io.Writer, spec *window.Spec, loc *time.Location, prog workflows.BackfillProgress, wins []windowRunJSON) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "backfill %s of topic %s: %d of %d windows loaded\n", fmtWindow(prog.From, prog.To, loc), spec.Reader.Topic, prog.Done, prog.Total)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WINDOW\tDESTINATION\tRECORDS\tBYTES\tERRORS\tDURATION\tSTATUS\tWORKFLOW ID")
	var recs, bytes, errs int64
	for _, r := range wins {
		if r.Result == nil {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t%s\t%s\n", fmtWindow(r.Begin, r.End, loc), r.Status, r.WorkflowID)
			continue
		}
		x := r.Result
		recs, bytes, errs = recs+x.Records, bytes+x.Bytes, errs+x.Errors
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", fmtWindow(x.Begin, x.End, loc), x.Destination, x.Records, human(x.Bytes), x.Errors, roundDuration(x.Duration), r.Status, r.WorkflowID)
	}
	fmt.Fprintf(tw, "total\t\t%d\t%s\t%d\t\t\t\n", recs, human(bytes), errs)
	tw.Flush()
	if prog.Total > len(wins) {
		fmt.Fprintf(w, "(the first %d of %d windows shown)\n", len(wins), prog.Total)
	}
	fmt.Fprintf(w, "destination: %s (%s)\n", destinationTemplate(spec), loadMode(spec))
}

// ---- watch ----

func windowWatch(ctx context.Context, wc *windowCmd) error {
	id := wc.pos[0]
	c, err := dial(ctx, &wc.g)
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return fmt.Errorf("no workflow %s: %w", id, err)
		}
		return fmt.Errorf("describe %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	wf := info.GetType().GetName()
	if wf != workflows.WindowLoadName && wf != workflows.WindowBackfillName {
		return fmt.Errorf("%s is a %s workflow, not %s or %s", id, wf, workflows.WindowLoadName, workflows.WindowBackfillName)
	}
	runID := info.GetExecution().GetRunId()
	spec, err := startedSpec(ctx, c, id, runID)
	if err != nil {
		return err
	}
	return followAndReport(ctx, c, wc, id, runID, wf, spec, true)
}

// startedSpec reads the job spec a window workflow was started with, from
// its start event.
func startedSpec(ctx context.Context, c client.Client, id, runID string) (*window.Spec, error) {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, fmt.Errorf("%s: no history", id)
	}
	ev, err := it.Next()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil || len(attrs.GetInput().GetPayloads()) == 0 {
		return nil, fmt.Errorf("%s: its start event has no input", id)
	}
	var in struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := dataConverter.FromPayload(attrs.GetInput().GetPayloads()[0], &in); err != nil {
		return nil, fmt.Errorf("%s: decode its input: %w", id, err)
	}
	return window.ParseJSON(in.Spec)
}

// ---- formatting ----

// fmtTime formats t in loc: 2024-01-01 08:00 +08 (seconds when not zero).
func fmtTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	t = t.In(loc)
	if t.Second() != 0 || t.Nanosecond() != 0 {
		return t.Format("2006-01-02 15:04:05 MST")
	}
	return t.Format("2006-01-02 15:04 MST")
}

// fmtWindow formats [begin, end) in loc, the zone once when both ends
// share it: [2024-01-01 08:00, 2024-01-01 09:00) +08.
func fmtWindow(begin, end time.Time, loc *time.Location) string {
	b, e := begin.In(loc), end.In(loc)
	layout := "2006-01-02 15:04"
	if b.Second() != 0 || e.Second() != 0 || b.Nanosecond() != 0 || e.Nanosecond() != 0 {
		layout = "2006-01-02 15:04:05"
	}
	if b.Format("MST") == e.Format("MST") {
		return "[" + b.Format(layout) + ", " + e.Format(layout) + ") " + b.Format("MST")
	}
	return "[" + b.Format(layout+" MST") + ", " + e.Format(layout+" MST") + ")"
}

// shortDuration prints d without trailing zero units: 168h, 5m, 1h30m, 0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// roundDuration rounds d for a table.
func roundDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// writerIsTerminal reports whether w is a terminal.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
