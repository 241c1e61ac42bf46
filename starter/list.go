package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/workflows"
)

func cmdList(ctx context.Context, args []string) error {
	return runList(ctx, args, os.Stdout)
}

// connectorRow is one connector's health in starter list.
type connectorRow struct {
	Name    string    `json:"name"`
	State   string    `json:"state"` // running, paused, deleted, failed, ...
	Started time.Time `json:"started"`
	// Partitions counts the connector's partitions; Lag is their records
	// not yet dumped.
	Partitions int   `json:"partitions"`
	Lag        int64 `json:"lag"`
	// LagSeconds is the age of the oldest record not yet dumped (0 when
	// caught up); absent when Kafka could not tell.
	LagSeconds *int64 `json:"lagSeconds,omitempty"`
	// Stopped counts partitions parked until an operator acts (stopped on
	// a record, data-lost) or failing to read (error).
	Stopped     int    `json:"stopped"`
	DeadLetters int64  `json:"deadLetters"`
	Error       string `json:"error,omitempty"`
}

func runList(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	var g globals
	g.register(fs)
	noKafka := fs.Bool("no-lag-seconds", false, "do not ask Kafka for the age of the oldest record not yet dumped")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	// The latest run of each connector workflow.
	latest := map[string]connectorRow{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("WorkflowType = '%s'", workflows.ConnectorName),
			NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("cannot list the connectors: %w", err)
		}
		for _, e := range resp.Executions {
			if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
				continue
			}
			if e.GetParentExecution().GetWorkflowId() != "" {
				continue // a sharded connector's shard: its connector's row covers it
			}
			name := trimPrefix(e.GetExecution().GetWorkflowId(), "connector-")
			started := e.GetStartTime().AsTime()
			if r, ok := latest[name]; ok && r.Started.After(started) {
				continue
			}
			state := "running"
			if e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				state = closedState(e.GetStatus())
			}
			latest[name] = connectorRow{Name: name, State: state, Started: started}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	rows := make([]connectorRow, 0, len(latest))
	for _, r := range latest {
		if r.State == "running" {
			health(ctx, c, &r, !*noKafka)
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if g.json {
		return printJSONTo(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPARTITIONS\tLAG\tLAG SECONDS\tSTOPPED\tDEAD LETTERS\tSTARTED\tERROR")
	for _, r := range rows {
		if r.State != "running" && r.State != "paused" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\t%s\n", r.Name, r.State, r.Started.Format(time.RFC3339), r.Error)
			continue
		}
		secs := "?"
		if r.LagSeconds != nil {
			secs = strconv.FormatInt(*r.LagSeconds, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", r.Name, r.State, r.Partitions, r.Lag, secs, r.Stopped, r.DeadLetters, r.Started.Format(time.RFC3339), r.Error)
	}
	return tw.Flush()
}

// health fills r from the connector's status query and, with lagSeconds,
// the timestamp of each lagging partition's oldest record not yet dumped.
func health(ctx context.Context, c client.Client, r *connectorRow, lagSeconds bool) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := queryStatus(qctx, c, r.Name)
	if err != nil {
		r.Error = sentence(err.Error())
		return
	}
	if st.Paused {
		r.State = "paused"
	}
	r.Partitions = len(st.Partitions)
	lagging := map[int32]int64{}
	for _, p := range st.Partitions {
		r.Lag += p.Lag
		r.DeadLetters += p.DeadLetters
		switch p.State {
		case workflows.StateStopped, workflows.StateDataLost, workflows.StateError:
			r.Stopped++
		}
		if p.Lag > 0 {
			lagging[p.Partition] = p.Next
		}
	}
	if st.Error != "" {
		r.Error = sentence(st.Error)
	}
	if !lagSeconds {
		return
	}
	if len(lagging) == 0 {
		zero := int64(0)
		r.LagSeconds = &zero
		return
	}
	spec, err := querySpec(qctx, c, r.Name)
	if err != nil {
		return
	}
	if oldest, ok := oldestUndumped(qctx, spec, lagging); ok {
		secs := int64(max(0, time.Since(oldest).Seconds()))
		r.LagSeconds = &secs
	}
}

// oldestUndumped is the earliest timestamp of the records at the cursors
// next (partition → offset): the oldest record the connector has not
// dumped yet.
func oldestUndumped(ctx context.Context, spec *connector.Spec, next map[int32]int64) (time.Time, bool) {
	opts, err := kafka.Options(spec)
	if err != nil {
		return time.Time{}, false
	}
	kc, err := kafka.NewClient(opts...)
	if err != nil {
		return time.Time{}, false
	}
	defer kc.Close()
	var oldest time.Time
	for p, off := range next {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_ = kc.ReadRange(rctx, spec.Kafka.Topic, p, off, off+1, kafka.ReadOptions{StallTimeout: 3 * time.Second}, func(rec *kgo.Record) (bool, error) {
			if oldest.IsZero() || rec.Timestamp.Before(oldest) {
				oldest = rec.Timestamp
			}
			return false, nil
		})
		cancel()
	}
	return oldest, !oldest.IsZero()
}
