package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

func cmdStatus(ctx context.Context, args []string) error {
	return runStatus(ctx, args, os.Stdout)
}

// isTerminalWriter tells whether w is a terminal (status --watch redraws
// in place there); tests replace it.
var isTerminalWriter = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// statusView is what status prints: the status query's answer and the
// workflow's own state (a deleted connector's workflow is closed).
type statusView struct {
	workflows.Status
	// State is running or paused, or, once the workflow is closed, deleted
	// (cancelled or terminated), failed, completed or timed-out.
	State string `json:"state"`
	// Closed is when a closed connector's workflow ended.
	Closed *time.Time `json:"closed,omitempty"`
	// Note explains a closed connector.
	Note string `json:"note,omitempty"`
}

func runStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var g globals
	g.register(fs)
	watch := fs.Bool("watch", false, "refresh until interrupted (in place on a terminal, repeated otherwise); -w")
	fs.BoolVar(watch, "w", false, "short for --watch")
	interval := fs.Duration("interval", 2*time.Second, "with --watch: time between refreshes")
	a, err := parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	name := a[0]
	if !*watch {
		v, err := connectorStatus(ctx, c, name)
		if err != nil {
			return err
		}
		return printStatusView(out, v, g.json)
	}
	tty := isTerminalWriter(out) && !g.json
	for first := true; ; first = false {
		v, err := connectorStatus(ctx, c, name)
		if ctx.Err() != nil {
			return nil // interrupted
		}
		if err != nil && first {
			return err // no such connector, Temporal unreachable: nothing to watch
		}
		var buf bytes.Buffer
		if err != nil {
			fmt.Fprintf(&buf, "%s  %s\n", time.Now().Format("15:04:05"), sentence(err.Error()))
		} else {
			if !g.json {
				fmt.Fprintf(&buf, "%s  every %s, Ctrl-C to stop\n", time.Now().Format("15:04:05"), *interval)
			}
			if err := printStatusView(&buf, v, g.json); err != nil {
				return err
			}
		}
		if tty {
			// Home, draw, clear what the last frame left below.
			fmt.Fprint(out, "\033[H\033[2J")
			fmt.Fprint(out, strings.ReplaceAll(buf.String(), "\n", "\033[K\n"))
		} else {
			if !g.json {
				fmt.Fprintln(out)
			}
			_, _ = out.Write(buf.Bytes())
		}
		if err == nil && v.Closed != nil {
			return nil // a closed connector does not change
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

func printStatusView(w io.Writer, v statusView, asJSON bool) error {
	if asJSON {
		return printJSONTo(w, v)
	}
	if v.Closed != nil {
		fmt.Fprintf(w, "%s\n", v.Note)
		if v.Name == "" {
			return nil
		}
		printStatusAs(w, v.Status, v.State)
		return nil
	}
	printStatusAs(w, v.Status, "")
	return nil
}

// connectorStatus describes connector-<name>: a running one answers the
// status query; a closed one (deleted, failed) says so, with its last
// status when the workflow still answers the query.
func connectorStatus(ctx context.Context, c client.Client, name string) (statusView, error) {
	id := connector.WorkflowID(name)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return statusView{}, notFound(name, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		st, err := queryStatus(ctx, c, name)
		if err != nil {
			return statusView{}, err
		}
		v := statusView{Status: st, State: "running"}
		if st.Paused {
			v.State = "paused"
		}
		return v, nil
	}
	closed := info.GetCloseTime().AsTime()
	v := statusView{State: closedState(info.GetStatus()), Closed: &closed}
	at := closed.Local().Format("2006-01-02 15:04:05 MST")
	switch v.State {
	case "deleted":
		v.Note = fmt.Sprintf("connector %s was deleted at %s (workflow %s %s); its sink data and group offsets (connect-%s) are kept: 'starter create -f SPEC' resumes where it stopped",
			name, at, id, strings.ToLower(info.GetStatus().String()), name)
	default:
		v.Note = fmt.Sprintf("connector %s is not running: its workflow %s %s at %s; 'starter create -f SPEC' starts it again where it stopped",
			name, id, v.State, at)
	}
	// The last status, from the closed run (the query replays it on a
	// worker); a short wait, it is only a bonus.
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := queryStatus(qctx, c, name); err == nil {
		v.Status = st
	}
	return v, nil
}

func closedState(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "deleted"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed-out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued-as-new"
	}
	return strings.ToLower(s.String())
}
