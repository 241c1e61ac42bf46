package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	tlog "go.temporal.io/sdk/log"

	"github.com/dumpflow/dumpflow/workers/runner"
)

func cmdReplay(ctx context.Context, args []string) error {
	return runReplay(ctx, args, os.Stdout, os.Stderr)
}

// replayResult is what --json prints.
type replayResult struct {
	OK           bool   `json:"ok"`
	Source       string `json:"source"`
	WorkflowID   string `json:"workflowId,omitempty"`
	RunID        string `json:"runId,omitempty"`
	WorkflowType string `json:"workflowType"`
	Events       int    `json:"events"`
	Error        string `json:"error,omitempty"`
	EventID      int64  `json:"eventId,omitempty"`
	EventType    string `json:"eventType,omitempty"`
}

// runReplay replays a workflow's history — fetched from Temporal by
// workflow id, or read from a file `temporal workflow show --output json`
// wrote — against this build's workflow code. It prints OK with the
// workflow type and the number of events, or the nondeterminism naming the
// event that broke, and then exits 1.
func runReplay(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(errw)
	var g globals
	g.register(fs)
	file := fs.String("f", "", "history JSON file, as `temporal workflow show --output json` writes it (instead of WORKFLOW_ID)")
	runID := fs.String("run-id", "", "the run to replay (default: the latest run of WORKFLOW_ID)")
	wid := fs.String("workflow-id", "", "with -f: the workflow id the history ran under (default: derived from its input)")
	verbose := fs.Bool("v", false, "print the SDK's full message and the replayer's log")
	fs.Usage = func() {
		fmt.Fprintf(errw, "usage: starter replay WORKFLOW_ID [--run-id R] | starter replay -f FILE.json\n\n"+
			"Replays a workflow history against this build's workflow code and reports nondeterminism\n"+
			"with the event that broke (exit 1).\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var h *historypb.History
	res := replayResult{}
	switch {
	case *file != "" && len(pos) > 0:
		return errors.New("give either a workflow id or -f FILE, not both")
	case *file != "":
		data, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("cannot read the history file: %w", err)
		}
		if h, err = runner.ReadHistory(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("%s is not a workflow history in the JSON that 'temporal workflow show --output json' writes: %w", *file, err)
		}
		res.Source, res.WorkflowID = *file, *wid
	case len(pos) == 1:
		if *wid != "" && *wid != pos[0] {
			return errors.New("--workflow-id is for -f; the argument already names the workflow")
		}
		c, err := dial(ctx, &g)
		if err != nil {
			return err
		}
		defer c.Close()
		res.Source, res.WorkflowID, res.RunID = "temporal", pos[0], *runID
		h = &historypb.History{}
		iter := c.GetWorkflowHistory(ctx, pos[0], *runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			e, err := iter.Next()
			if err != nil {
				return fmt.Errorf("cannot fetch the history of workflow %s: %w", pos[0], err)
			}
			h.Events = append(h.Events, e)
		}
		if len(h.Events) == 0 {
			return fmt.Errorf("workflow %s has no history", pos[0])
		}
	default:
		fs.Usage()
		return fmt.Errorf("want a WORKFLOW_ID or -f FILE.json, got %d argument(s)", len(pos))
	}
	res.WorkflowType, res.Events = runner.HistoryType(h), len(h.Events)

	logw := io.Discard
	if *verbose {
		logw = errw
	}
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})))
	rerr := runner.Replay(h, res.WorkflowID, logger)
	res.OK = rerr == nil
	var re *runner.ReplayError
	if errors.As(rerr, &re) {
		res.Error, res.EventID, res.EventType = re.Summary(), re.EventID, re.EventType
	} else if rerr != nil {
		res.Error = rerr.Error()
	}
	what := fmt.Sprintf("%s history", res.WorkflowType)
	if res.Source == "temporal" {
		what += " of " + res.WorkflowID
		if res.RunID != "" {
			what += " (run " + res.RunID + ")"
		}
	} else {
		what += " in " + res.Source
	}
	if g.json {
		if err := printJSONTo(out, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(out, "OK: the %s, %d events, replays on this build's workflow code\n", what, res.Events)
	} else {
		fmt.Fprintf(out, "FAILED: the %s, %d events, does not replay on this build's workflow code:\n  %s\n", what, res.Events, res.Error)
		if re != nil && *verbose {
			fmt.Fprintf(out, "  SDK: %v\n", re.Cause)
		}
	}
	if !res.OK {
		return exitError(1)
	}
	return nil
}
