package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

// starter schedule create|update|list|describe|pause|unpause|trigger|
// backfill|delete manages window jobs' Temporal Schedules (id
// window-<name>, built by workflows.ScheduleOptions). Each scheduled run
// loads [previous fire time, nominal time) and records the window's end as
// the job's position. NAME is the job's name or the schedule's id.
//
// A schedule keeps the job spec in its action (the WindowLoad input), so
// describe, trigger and backfill read the job from the schedule itself.

var scheduleSubcommands = []subcommand{
	{"create", "-f job.yaml", "validate a window job and create its Temporal Schedule window-NAME"},
	{"update", "-f job.yaml", "apply a changed job spec to its schedule (paused state and running runs stay)"},
	{"list", "", "list the window jobs' schedules"},
	{"describe", "NAME", "state, policies, last runs with their windows, next runs, windows loaded"},
	{"pause", "NAME [--note TEXT]", "start no more windows until unpaused (paused windows are not run later)"},
	{"unpause", "NAME [--note TEXT]", "start windows again"},
	{"trigger", "NAME", "run now: load the last complete window"},
	{"backfill", "NAME --from T --to T", "load every window that ends in (from, to]"},
	{"delete", "NAME", "delete the schedule (started runs finish; data and position stay)"},
}

func cmdSchedule(ctx context.Context, args []string) error {
	return runSchedule(ctx, args, os.Stdout, os.Stderr)
}

func scheduleUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: starter schedule COMMAND [NAME] [flags]\n\ncommands:\n")
	for _, c := range scheduleSubcommands {
		fmt.Fprintf(w, "  %-9s %-22s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nNAME is a window job's name (its schedule is window-NAME) or the schedule id.\n"+
		"T is an RFC 3339 time or yyyyMMddHHmmss in the job's time zone.\n"+
		"Run 'starter schedule COMMAND -h' for a command's flags.\n")
}

// scheduleCmd is one parsed schedule command.
type scheduleCmd struct {
	sub      string
	g        globals
	file     string
	name     string
	note     string
	from, to string
	out      io.Writer
	errw     io.Writer
}

// runSchedule runs a schedule command, writing its output to out and
// notes to errw.
func runSchedule(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		scheduleUsage(errw)
		return flag.ErrHelp
	}
	sc := scheduleCmd{sub: args[0], out: out, errw: errw}
	fs, _, err := subFlags("schedule", sc.sub, scheduleSubcommands, scheduleUsage, errw)
	if err != nil {
		return err
	}
	sc.g.register(fs)
	wantName := true
	switch sc.sub {
	case "create", "update":
		fs.StringVar(&sc.file, "f", "", "window job spec, YAML or JSON, with a schedule (required)")
		wantName = false
	case "list":
		wantName = false
	case "pause", "unpause":
		fs.StringVar(&sc.note, "note", "", "why, shown by describe (default: who and when)")
	case "backfill":
		fs.StringVar(&sc.from, "from", "", "load the windows that end after this time (required)")
		fs.StringVar(&sc.to, "to", "", "... and at or before this time (required)")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case wantName && len(pos) != 1:
		return fmt.Errorf("want NAME, got %d argument(s)", len(pos))
	case !wantName && len(pos) != 0:
		return fmt.Errorf("want no arguments, got %d", len(pos))
	case wantName:
		sc.name = pos[0]
	}
	if (sc.sub == "create" || sc.sub == "update") && sc.file == "" {
		return errors.New("-f job.yaml is required")
	}
	if sc.sub == "backfill" && (sc.from == "" || sc.to == "") {
		return errors.New("--from and --to are required: the windows that end in (from, to] are loaded")
	}

	var spec *window.Spec
	if sc.file != "" {
		// Check the spec before connecting anywhere.
		if spec, err = window.Load(sc.file); err != nil {
			return err
		}
		if spec.Schedule == nil {
			return fmt.Errorf("%s: window job %s has no schedule: add schedule.cron (and schedule.timeZone), or load windows by hand with 'starter window run -f %s --from T --to T'", sc.file, spec.Name, sc.file)
		}
	}
	c, err := dial(ctx, &sc.g)
	if err != nil {
		return err
	}
	defer c.Close()
	switch sc.sub {
	case "create":
		return scheduleCreate(ctx, c, &sc, spec)
	case "update":
		return scheduleUpdate(ctx, c, &sc, spec)
	case "list":
		return scheduleList(ctx, c, &sc)
	case "describe":
		return scheduleDescribe(ctx, c, &sc)
	case "pause", "unpause":
		return schedulePause(ctx, c, &sc)
	case "trigger":
		return scheduleTrigger(ctx, c, &sc)
	case "backfill":
		return scheduleBackfill(ctx, c, &sc)
	default:
		return scheduleDelete(ctx, c, &sc)
	}
}

// ---- create, update ----

func scheduleCreate(ctx context.Context, c client.Client, sc *scheduleCmd, spec *window.Spec) error {
	opts, err := workflows.ScheduleOptions(spec)
	if err != nil {
		return err
	}
	sum, err := summarize(spec, now(), 5)
	if err != nil {
		return err
	}
	_, err = c.ScheduleClient().Create(ctx, opts)
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("schedule %s of window job %s already exists: change it with 'starter schedule update -f %s' (or delete it first with 'starter schedule delete %s')", opts.ID, spec.Name, sc.file, spec.Name)
	}
	if err != nil {
		return fmt.Errorf("create schedule %s: %w", opts.ID, err)
	}
	if sc.g.json {
		return writeJSON(sc.out, map[string]any{"scheduleId": opts.ID, "created": true, "job": sum})
	}
	fmt.Fprintf(sc.out, "schedule %s created for window job %s\n", opts.ID, spec.Name)
	printSummary(sc.out, spec, sum)
	fmt.Fprintf(sc.out, "\nwatch it with: starter schedule describe %s\n", spec.Name)
	return nil
}

func scheduleUpdate(ctx context.Context, c client.Client, sc *scheduleCmd, spec *window.Spec) error {
	id := spec.ScheduleID()
	sum, err := summarize(spec, now(), 5)
	if err != nil {
		return err
	}
	h := c.ScheduleClient().GetHandle(ctx, id)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: workflows.ScheduleUpdate(spec)})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no schedule %s for window job %s: create it with 'starter schedule create -f %s'", id, spec.Name, sc.file)
	}
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", id, err)
	}
	if sc.g.json {
		return writeJSON(sc.out, map[string]any{"scheduleId": id, "updated": true, "job": sum})
	}
	fmt.Fprintf(sc.out, "schedule %s updated (its paused state and note are kept; runs already started keep the spec they started with)\n", id)
	printSummary(sc.out, spec, sum)
	return nil
}

// ---- finding a schedule ----

// jobSchedule is a window job's schedule as described.
type jobSchedule struct {
	id     string
	handle client.ScheduleHandle
	desc   *client.ScheduleDescription
	spec   *window.Spec // from the action
	sched  *window.Schedule
	loc    *time.Location
}

// findSchedule finds the schedule of job name (window-NAME), or the
// schedule whose id is name.
func findSchedule(ctx context.Context, c client.Client, name string) (*jobSchedule, error) {
	ids := []string{"window-" + name}
	if strings.HasPrefix(name, "window-") {
		ids = append(ids, name)
	}
	for _, id := range ids {
		h := c.ScheduleClient().GetHandle(ctx, id)
		d, err := h.Describe(ctx)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("describe schedule %s: %w", id, err)
		}
		js := &jobSchedule{id: id, handle: h, desc: d}
		if err := js.readSpec(); err != nil {
			return nil, err
		}
		return js, nil
	}
	return nil, fmt.Errorf("no schedule %s (create it with 'starter schedule create -f job.yaml'; 'starter schedule list' lists them)", ids[0])
}

// readSpec reads the job spec from the schedule's action.
func (js *jobSchedule) readSpec() error {
	a, ok := js.desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != workflows.WindowLoadName || len(a.Args) == 0 {
		return fmt.Errorf("schedule %s does not start %s: not a window job's schedule", js.id, workflows.WindowLoadName)
	}
	var in workflows.WindowInput
	switch p := a.Args[0].(type) {
	case *commonpb.Payload:
		if err := dataConverter.FromPayload(p, &in); err != nil {
			return fmt.Errorf("schedule %s: decode its action's input: %w", js.id, err)
		}
	case workflows.WindowInput:
		in = p
	default:
		return fmt.Errorf("schedule %s: its action's input is a %T", js.id, a.Args[0])
	}
	spec, err := window.ParseJSON(in.Spec)
	if err != nil {
		return fmt.Errorf("schedule %s: its job spec: %w", js.id, err)
	}
	if spec.Schedule == nil {
		return fmt.Errorf("schedule %s: its job spec has no schedule", js.id)
	}
	js.spec = spec
	if js.sched, err = window.NewSchedule(spec.Schedule.Cron, spec.Schedule.TimeZone); err != nil {
		return err
	}
	js.loc = js.sched.Location()
	return nil
}

// overlapName names a Temporal overlap policy as a spec writes it.
func overlapName(p enumspb.ScheduleOverlapPolicy) string {
	if p == enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED {
		return window.OverlapSkip + " (Temporal's default)"
	}
	for name, v := range window.OverlapPolicies {
		if v == p {
			return name
		}
	}
	return p.String()
}

// ---- describe ----

// scheduleRun is a run a schedule started.
type scheduleRun struct {
	WorkflowID  string    `json:"workflowId"`
	RunID       string    `json:"runId"`
	Nominal     time.Time `json:"nominal"`   // the fire (or trigger) time
	StartedAt   time.Time `json:"startedAt"` // when the schedule started it
	Begin       time.Time `json:"begin"`
	End         time.Time `json:"end"`
	Status      string    `json:"status"`
	Records     *int64    `json:"records,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// nextRun is a run the schedule will start.
type nextRun struct {
	At          time.Time `json:"at"`
	Begin       time.Time `json:"begin"`
	End         time.Time `json:"end"`
	Destination string    `json:"destination"`
}

// describeJSON is `schedule describe`'s --json output.
type describeJSON struct {
	ID             string         `json:"id"`
	Job            string         `json:"job"`
	Paused         bool           `json:"paused"`
	Note           string         `json:"note"`
	Cron           string         `json:"cron"`
	TimeZone       string         `json:"timeZone"`
	Overlap        string         `json:"overlap"`
	CatchupWindow  time.Duration  `json:"catchupWindow"`
	PauseOnFailure bool           `json:"pauseOnFailure"`
	Jitter         time.Duration  `json:"jitter"`
	Delay          time.Duration  `json:"delay"`
	Topic          string         `json:"topic"`
	Destination    string         `json:"destination"`
	Mode           string         `json:"mode"`
	Actions        int            `json:"actions"`
	Missed         int            `json:"missedCatchupWindow"`
	Skipped        int            `json:"skippedOverlap"`
	Running        []string       `json:"running"`
	LastRuns       []scheduleRun  `json:"lastRuns"`
	NextRuns       []nextRun      `json:"nextRuns"`
	WindowsLoaded  [][2]time.Time `json:"windowsLoaded"`
	CreatedAt      time.Time      `json:"createdAt"`
	UpdatedAt      time.Time      `json:"updatedAt,omitzero"`
}

func scheduleDescribe(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	js, err := findSchedule(ctx, c, sc.name)
	if err != nil {
		return err
	}
	d := js.describe(ctx, c)
	if sc.g.json {
		return writeJSON(sc.out, d)
	}
	printDescribe(sc.out, js, d)
	return nil
}

// describe gathers what `schedule describe` shows.
func (js *jobSchedule) describe(ctx context.Context, c client.Client) describeJSON {
	s, info := js.desc.Schedule, js.desc.Info
	spec := js.spec
	d := describeJSON{
		ID: js.id, Job: spec.Name, Cron: js.sched.Cron(), TimeZone: js.sched.Zone(),
		Delay: spec.Schedule.Delay.D(), Topic: spec.Reader.Topic, Destination: destinationTemplate(spec), Mode: loadMode(spec),
		Actions: info.NumActions, Missed: info.NumActionsMissedCatchupWindow, Skipped: info.NumActionsSkippedOverlap,
		Running: []string{}, LastRuns: []scheduleRun{}, NextRuns: []nextRun{}, WindowsLoaded: [][2]time.Time{},
		CreatedAt: info.CreatedAt, UpdatedAt: info.LastUpdateAt,
	}
	if s.State != nil {
		d.Paused, d.Note = s.State.Paused, s.State.Note
	}
	if s.Policy != nil {
		d.Overlap, d.CatchupWindow, d.PauseOnFailure = overlapName(s.Policy.Overlap), s.Policy.CatchupWindow, s.Policy.PauseOnFailure
	}
	if s.Spec != nil {
		d.Jitter = s.Spec.Jitter
		if s.Spec.TimeZoneName != "" {
			d.TimeZone = s.Spec.TimeZoneName
		}
	}
	for _, r := range info.RunningWorkflows {
		d.Running = append(d.Running, r.WorkflowID)
	}
	for _, a := range info.RecentActions {
		if a.StartWorkflowResult == nil {
			continue
		}
		d.LastRuns = append(d.LastRuns, js.run(ctx, c, a))
	}
	for i, t := range info.NextActionTimes {
		if i == 5 {
			break
		}
		begin, end, err := js.sched.Window(t)
		if err != nil {
			continue
		}
		dest, _ := windowDestination(spec, begin, end)
		d.NextRuns = append(d.NextRuns, nextRun{At: t.In(js.loc), Begin: begin, End: end, Destination: dest})
	}
	for _, r := range d.LastRuns {
		if r.Status == "completed" && !r.End.IsZero() {
			d.WindowsLoaded = append(d.WindowsLoaded, [2]time.Time{r.Begin, r.End})
		}
	}
	sort.Slice(d.WindowsLoaded, func(i, j int) bool { return d.WindowsLoaded[i][0].Before(d.WindowsLoaded[j][0]) })
	return d
}

// run describes one run a schedule started: its window (from its result,
// or from its nominal time, which its workflow id ends with), status and,
// once completed, records and destination.
func (js *jobSchedule) run(ctx context.Context, c client.Client, a client.ScheduleActionResult) scheduleRun {
	wid := a.StartWorkflowResult.WorkflowID
	r := scheduleRun{WorkflowID: wid, RunID: a.StartWorkflowResult.FirstExecutionRunID, Nominal: a.ScheduleTime.In(js.loc), StartedAt: a.ActualTime}
	if t, err := time.Parse(time.RFC3339, strings.TrimPrefix(wid, js.desc.Schedule.Action.(*client.ScheduleWorkflowAction).ID+"-")); err == nil {
		r.Nominal = t.In(js.loc)
	}
	if b, e, err := js.sched.Window(r.Nominal); err == nil {
		r.Begin, r.End = b, e
	}
	w := windowRun1(ctx, c, wid, r.RunID, r.Begin, r.End)
	r.Status, r.Error = w.Status, w.Error
	if w.Result != nil {
		recs := w.Result.Records
		r.Records, r.Destination = &recs, w.Result.Destination
		r.Begin, r.End = w.Result.Begin.In(js.loc), w.Result.End.In(js.loc)
	} else if dest, err := windowDestination(js.spec, r.Begin, r.End); err == nil {
		r.Destination = dest
	}
	return r
}

func printDescribe(w io.Writer, js *jobSchedule, d describeJSON) {
	loc := js.loc
	state := "active"
	if d.Paused {
		state = "paused"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "schedule:\t%s (window job %s)\n", d.ID, d.Job)
	fmt.Fprintf(tw, "state:\t%s\n", state)
	fmt.Fprintf(tw, "note:\t%s\n", d.Note)
	fmt.Fprintf(tw, "cron:\t%s in %s\n", d.Cron, d.TimeZone)
	fmt.Fprintf(tw, "policies:\toverlap %s, catch-up window %s, pause on failure %t, jitter %s, delay %s\n",
		d.Overlap, shortDuration(d.CatchupWindow), d.PauseOnFailure, shortDuration(d.Jitter), shortDuration(d.Delay))
	fmt.Fprintf(tw, "job:\ttopic %s → %s (%s)\n", d.Topic, d.Destination, d.Mode)
	fmt.Fprintf(tw, "actions:\t%d taken, %d missed (catch-up window), %d skipped (overlap)\n", d.Actions, d.Missed, d.Skipped)
	if len(d.Running) > 0 {
		fmt.Fprintf(tw, "running:\t%s\n", strings.Join(d.Running, ", "))
	}
	fmt.Fprintf(tw, "created:\t%s\n", fmtTime(d.CreatedAt, loc))
	tw.Flush()

	fmt.Fprintf(w, "\nlast runs (times in %s):\n", loc)
	if len(d.LastRuns) == 0 {
		fmt.Fprintln(w, "  none yet")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  WORKFLOW ID\tWINDOW\tSTATUS\tRECORDS\tDESTINATION")
		for _, r := range d.LastRuns {
			recs := "-"
			if r.Records != nil {
				recs = fmt.Sprint(*r.Records)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.WorkflowID, fmtWindow(r.Begin, r.End, loc), r.Status, recs, r.Destination)
		}
		tw.Flush()
		// Errors go under the table, whole, rather than widening it.
		for _, r := range d.LastRuns {
			if r.Error != "" {
				fmt.Fprintf(w, "  %s %s: %s\n", r.WorkflowID, r.Status, r.Error)
			}
		}
	}

	fmt.Fprintln(w, "\nnext runs:")
	switch {
	case d.Paused:
		fmt.Fprintln(w, "  none while paused")
	case len(d.NextRuns) == 0:
		fmt.Fprintln(w, "  none")
	default:
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  AT\tWINDOW\tDESTINATION")
		for _, n := range d.NextRuns {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", fmtTime(n.At, loc), fmtWindow(n.Begin, n.End, loc), n.Destination)
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nwindows loaded (completed recent runs):")
	if len(d.WindowsLoaded) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, span := range mergeWindows(d.WindowsLoaded) {
		n := "1 window"
		if span.n > 1 {
			n = fmt.Sprintf("%d windows", span.n)
		}
		fmt.Fprintf(w, "  %s  %s\n", fmtWindow(span.begin, span.end, loc), n)
	}
	if d.Paused {
		fmt.Fprintf(w, "\nwhile paused no window is started, nor counted as missed: after 'starter schedule unpause %s', load the paused span with 'starter schedule backfill %s --from T --to T'\n", d.Job, d.Job)
	}
}

type windowSpan struct {
	begin, end time.Time
	n          int
}

// mergeWindows joins sorted windows that touch into spans (a window
// loaded twice counts once).
func mergeWindows(ws [][2]time.Time) []windowSpan {
	var out []windowSpan
	for i, w := range ws {
		if i > 0 && w[0].Equal(ws[i-1][0]) && w[1].Equal(ws[i-1][1]) {
			continue
		}
		if n := len(out); n > 0 && !w[0].After(out[n-1].end) {
			if w[1].After(out[n-1].end) {
				out[n-1].end = w[1]
			}
			out[n-1].n++
			continue
		}
		out = append(out, windowSpan{w[0], w[1], 1})
	}
	return out
}

// ---- list ----

// listRow is one schedule in `schedule list`.
type listRow struct {
	Job      string     `json:"job"`
	ID       string     `json:"id"`
	Cron     string     `json:"cron"`
	TimeZone string     `json:"timeZone"`
	Paused   bool       `json:"paused"`
	NextFire *time.Time `json:"nextFire,omitempty"`
	LastRun  string     `json:"lastRun,omitempty"`    // its workflow id
	Last     string     `json:"lastStatus,omitempty"` // its status
}

func scheduleList(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	rows := []listRow{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return fmt.Errorf("list schedules: %w", err)
		}
		if !strings.HasPrefix(e.ID, "window-") || (e.WorkflowType.Name != "" && e.WorkflowType.Name != workflows.WindowLoadName) {
			continue
		}
		h := c.ScheduleClient().GetHandle(ctx, e.ID)
		d, err := h.Describe(ctx)
		if err != nil {
			continue // deleted since it was listed
		}
		js := &jobSchedule{id: e.ID, handle: h, desc: d}
		if js.readSpec() != nil {
			continue
		}
		row := listRow{Job: js.spec.Name, ID: e.ID, Cron: js.sched.Cron(), TimeZone: js.sched.Zone()}
		if d.Schedule.State != nil {
			row.Paused = d.Schedule.State.Paused
		}
		if len(d.Info.NextActionTimes) > 0 && !row.Paused {
			t := d.Info.NextActionTimes[0].In(js.loc)
			row.NextFire = &t
		}
		if n := len(d.Info.RecentActions); n > 0 && d.Info.RecentActions[n-1].StartWorkflowResult != nil {
			a := d.Info.RecentActions[n-1].StartWorkflowResult
			row.LastRun = a.WorkflowID
			row.Last = "unknown"
			if wd, err := c.DescribeWorkflowExecution(ctx, a.WorkflowID, a.FirstExecutionRunID); err == nil {
				row.Last = statusName(wd.GetWorkflowExecutionInfo().GetStatus())
			}
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	if sc.g.json {
		return writeJSON(sc.out, rows)
	}
	tw := tabwriter.NewWriter(sc.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSCHEDULE ID\tCRON\tTIME ZONE\tPAUSED\tNEXT FIRE\tLAST RUN")
	for _, r := range rows {
		paused, next, last := "no", "-", "-"
		if r.Paused {
			paused = "yes"
		}
		if r.NextFire != nil {
			next = fmtTime(*r.NextFire, r.NextFire.Location())
		}
		if r.LastRun != "" {
			last = r.Last + " (" + r.LastRun + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Job, r.ID, r.Cron, r.TimeZone, paused, next, last)
	}
	return tw.Flush()
}

// ---- pause, unpause, trigger, delete ----

func schedulePause(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	js, err := findSchedule(ctx, c, sc.name)
	if err != nil {
		return err
	}
	note := sc.note
	if note == "" {
		note = fmt.Sprintf("%sd by %s with starter at %s", sc.sub, envOr("USER", "operator"), now().UTC().Format(time.RFC3339))
	}
	if sc.sub == "pause" {
		err = js.handle.Pause(ctx, client.SchedulePauseOptions{Note: note})
	} else {
		err = js.handle.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
	}
	if err != nil {
		return fmt.Errorf("%s schedule %s: %w", sc.sub, js.id, err)
	}
	if sc.g.json {
		return writeJSON(sc.out, map[string]any{"scheduleId": js.id, "paused": sc.sub == "pause", "note": note})
	}
	if sc.sub == "pause" {
		fmt.Fprintf(sc.out, "schedule %s paused (note: %s): no window starts until 'starter schedule unpause %s'; runs already started go on\n", js.id, note, js.spec.Name)
		return nil
	}
	fmt.Fprintf(sc.out, "schedule %s unpaused (note: %s)\n", js.id, note)
	fmt.Fprintf(sc.out, "windows that fell due while it was paused were not run: load them with 'starter schedule backfill %s --from T --to T'\n", js.spec.Name)
	return nil
}

// triggerWait is how long trigger waits to name the run it started.
const triggerWait = 5 * time.Second

func scheduleTrigger(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	js, err := findSchedule(ctx, c, sc.name)
	if err != nil {
		return err
	}
	overlap := enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED
	if p := js.desc.Schedule.Policy; p != nil {
		overlap = p.Overlap
	}
	known := map[string]bool{}
	for _, a := range js.desc.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			known[a.StartWorkflowResult.WorkflowID+"/"+a.StartWorkflowResult.FirstExecutionRunID] = true
		}
	}
	at := now()
	begin, end, err := js.sched.Window(at)
	if err != nil {
		return err
	}
	if err := js.handle.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: overlap}); err != nil {
		return fmt.Errorf("trigger schedule %s: %w", js.id, err)
	}
	// Name the run when it starts soon (with overlap bufferAll it waits
	// for a running one).
	var started *client.ScheduleWorkflowExecution
	for deadline := time.Now().Add(triggerWait); started == nil && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		d, err := js.handle.Describe(ctx)
		if err != nil {
			break
		}
		for _, a := range d.Info.RecentActions {
			if r := a.StartWorkflowResult; r != nil && !known[r.WorkflowID+"/"+r.FirstExecutionRunID] {
				started = r
			}
		}
	}
	if sc.g.json {
		out := map[string]any{"scheduleId": js.id, "triggered": true, "overlap": overlapName(overlap), "begin": begin, "end": end}
		if started != nil {
			out["workflowId"], out["runId"] = started.WorkflowID, started.FirstExecutionRunID
		}
		return writeJSON(sc.out, out)
	}
	fmt.Fprintf(sc.out, "schedule %s triggered (overlap %s): the run loads the last complete window %s\n", js.id, overlapName(overlap), fmtWindow(begin, end, js.loc))
	if started != nil {
		fmt.Fprintf(sc.out, "run %s started; follow it with: starter window watch %s\n", started.WorkflowID, started.WorkflowID)
	} else {
		fmt.Fprintf(sc.out, "the run has not started yet (a run of this schedule may be running); see 'starter schedule describe %s'\n", js.spec.Name)
	}
	return nil
}

func scheduleDelete(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	js, err := findSchedule(ctx, c, sc.name)
	if err != nil {
		return err
	}
	if err := js.handle.Delete(ctx); err != nil {
		return fmt.Errorf("delete schedule %s: %w", js.id, err)
	}
	if sc.g.json {
		return writeJSON(sc.out, map[string]any{"scheduleId": js.id, "deleted": true})
	}
	fmt.Fprintf(sc.out, "schedule %s deleted: no more windows start; runs already started finish, and the loaded windows and the job's position (group %s) stay\n", js.id, js.spec.Group())
	return nil
}

// ---- backfill ----

func scheduleBackfill(ctx context.Context, c client.Client, sc *scheduleCmd) error {
	js, err := findSchedule(ctx, c, sc.name)
	if err != nil {
		return err
	}
	loc, err := js.spec.Location()
	if err != nil {
		return err
	}
	from, err := parseWindowTime("from", sc.from, loc)
	if err != nil {
		return err
	}
	to, err := parseWindowTime("to", sc.to, loc)
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return fmt.Errorf("--from %s is not before --to %s", fmtTime(from, loc), fmtTime(to, loc))
	}
	n := countWindows(js.sched, from, to, window.TemporalBufferSize)
	if n == 0 {
		return fmt.Errorf("no window of schedule %s (%s in %s) ends in (%s, %s]", js.id, js.sched.Cron(), js.sched.Zone(), fmtTime(from, loc), fmtTime(to, loc))
	}
	wins, count, err := scheduleWindows(js.sched, from, to, 1)
	if err != nil {
		return err
	}
	first := wins[0]
	last := to
	if prev, err := js.sched.Previous(to.Add(time.Second)); err == nil {
		last = prev
	}
	span := fmtWindow(first[0], last, loc)

	out := map[string]any{"scheduleId": js.id, "windows": count, "begin": first[0], "end": last}
	if n <= window.TemporalBufferSize {
		// The schedule's own backfill: its runs are the schedule's action
		// (the spec it was created or last updated with), with the ids of
		// scheduled runs, in order (bufferAll).
		err := js.handle.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{
			Start: from.Add(time.Second), End: to, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
		}}})
		if err != nil {
			return fmt.Errorf("backfill schedule %s: %w", js.id, err)
		}
		if sc.g.json {
			out["method"] = "schedule"
			return writeJSON(sc.out, out)
		}
		fmt.Fprintf(sc.out, "backfill of %d windows %s requested from schedule %s (Temporal's schedule backfill, overlap bufferAll: one after another)\n", count, span, js.id)
		fmt.Fprintf(sc.out, "the runs are the schedule's action: its job spec as last created or updated; like scheduled runs they record the job's position, which only moves forward\n")
		fmt.Fprintf(sc.out, "runs are %s-<window end, UTC>; watch them with: starter schedule describe %s\n", js.id, js.spec.Name)
		return nil
	}
	// More windows than a schedule buffers: our backfill workflow.
	raw, err := json.Marshal(js.spec)
	if err != nil {
		return err
	}
	id := backfillID(js.spec.Name, from, to)
	run, attached, err := startOrAttach(ctx, c, id, workflows.WindowBackfillName, workflows.BackfillInput{Spec: raw, From: from, To: to})
	if err != nil {
		return err
	}
	if sc.g.json {
		out["method"], out["workflowId"], out["runId"], out["attached"] = "workflow", id, run.GetRunID(), attached
		return writeJSON(sc.out, out)
	}
	what := "started"
	if attached {
		what = "is already running; not started again:"
	}
	fmt.Fprintf(sc.out, "backfill of %d windows %s: more than the %d a Temporal schedule buffers, so %s %s %s (loads them one after another, never moving the job's position)\n",
		count, span, window.TemporalBufferSize, workflows.WindowBackfillName, what, id)
	fmt.Fprintf(sc.out, "watch it with: starter window watch %s\n", id)
	return nil
}
