package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

func dial(ctx context.Context, g *globals) (client.Client, error) {
	return runner.Dial(ctx, runner.Config{TemporalAddress: g.temporal, Namespace: g.namespace})
}

// parse parses flags, before or after the positional arguments (starter
// status NAME --json, as kubectl and the temporal CLI take them), and wants
// exactly n positional arguments.
func parse(fs *flag.FlagSet, args []string, n int, what string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, fmt.Errorf("want %s, got %d argument(s)", what, len(pos))
	}
	return pos, nil
}

func cmdCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	var g globals
	g.register(fs)
	file := fs.String("f", "", "connector spec, YAML or JSON (required)")
	if _, err := parse(fs, args, 0, "no arguments besides -f"); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("-f spec.yaml is required")
	}
	spec, err := connector.Load(*file)
	if err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	run, err := startConnector(ctx, c, spec)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(map[string]string{"workflowId": run.GetID(), "runId": run.GetRunID()})
	}
	fmt.Printf("connector %s started: workflow %s (run %s)\n", spec.Name, run.GetID(), run.GetRunID())
	fmt.Printf("  status:  starter status %s\n", spec.Name)
	return nil
}

// startConnector starts connector-<name>; an already running connector of
// that name is an error, a finished one may be started again.
//
// The workflow carries a summary and details naming the topic and the
// destination (the Web UI shows them), and the Dumpflow* search attributes
// (workflows.SearchAttributes). On a cluster that does not define those
// attributes it starts without them and says how to define them.
func startConnector(ctx context.Context, c client.Client, spec *connector.Spec) (client.WorkflowRun, error) {
	opts := client.StartWorkflowOptions{
		ID:                       spec.WorkflowID(),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK hands back the running run as if started.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            spec.Summary(),
		StaticDetails:                            spec.Details(),
		TypedSearchAttributes:                    workflows.SearchAttributes(spec),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.ConnectorName, workflows.NewInput(spec))
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) && strings.Contains(strings.ToLower(invalid.Message), "search attribute") {
		fmt.Fprintf(os.Stderr, "note: the Temporal namespace does not define dumpflow's search attributes (%s); connector %s starts without them. Define them to filter connectors in the Web UI:\n", invalid.Message, spec.Name)
		for _, name := range slices.Sorted(maps.Keys(workflows.SearchAttributeTypes)) {
			fmt.Fprintf(os.Stderr, "  temporal operator search-attribute create --name %s --type Keyword\n", name)
		}
		opts.TypedSearchAttributes = temporal.SearchAttributes{}
		run, err = c.ExecuteWorkflow(ctx, opts, workflows.ConnectorName, workflows.NewInput(spec))
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, fmt.Errorf("connector %s is already running (workflow %s); use 'starter delete %s' first to replace it", spec.Name, spec.WorkflowID(), spec.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("start connector %s: %w", spec.Name, err)
	}
	return run, nil
}

// ensureSearchAttributes defines dumpflow's search attributes
// (workflows.SearchAttributeTypes) in namespace ns where they are missing,
// as `temporal operator search-attribute create` does.
func ensureSearchAttributes(ctx context.Context, c client.Client, ns string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list the search attributes of namespace %s: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range workflows.SearchAttributeTypes {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("define dumpflow's search attributes in namespace %s: %w", ns, err)
	}
	return nil
}

func queryStatus(ctx context.Context, c client.Client, name string) (workflows.Status, error) {
	st, err := workflows.ConnectorStatus(ctx, c, name)
	if err != nil {
		return st, notFound(name, err)
	}
	return st, nil
}

func querySpec(ctx context.Context, c client.Client, name string) (*connector.Spec, error) {
	var spec connector.Spec
	v, err := c.QueryWorkflow(ctx, connector.WorkflowID(name), "", workflows.QuerySpec)
	if err != nil {
		return nil, notFound(name, err)
	}
	return &spec, v.Get(&spec)
}

func notFound(name string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no connector %s: there is no workflow %s in this namespace (see 'starter list')", name, connector.WorkflowID(name))
	}
	return fmt.Errorf("connector %s: %w", name, err)
}

func printStatus(w io.Writer, st workflows.Status) {
	printStatusAs(w, st, "")
}

// printStatusAs prints st; state, when set, replaces the connector's and
// every partition's state (a deleted connector's partitions run no more).
func printStatusAs(w io.Writer, st workflows.Status, state string) {
	if state == "" {
		state = "running"
		if st.Paused {
			state = "paused"
		}
	} else {
		for i := range st.Partitions {
			st.Partitions[i].State = state
		}
	}
	fmt.Fprintf(w, "connector %s  topic %s → %s  %s  run %d  history %d events\n", st.Name, st.Topic, st.Sink, state, st.Run, st.HistoryLength)
	if len(st.Shards) > 0 {
		fmt.Fprintf(w, "sharded: partitions run in %d shard workflows, partition p in shard p mod %d: %s\n", len(st.Shards), len(st.Shards), strings.Join(st.Shards, ", "))
	}
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", sentence(st.Error))
	}
	if st.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", sentence(st.Warning))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tSTATE\tNEXT\tHIGH WATERMARK\tLAG\tRECORDS\tBYTES\tOBJECTS\tDLQ\tERROR-TOPIC\t")
	var lag, recs, bytes, objs, dlq int64
	for _, p := range st.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t\n", p.Partition, p.State, p.Next, p.HighWatermark, p.Lag, p.Records, human(p.Bytes), p.Objects, p.DeadLetters, p.ErrorRecords)
		lag, recs, bytes, objs, dlq = lag+p.Lag, recs+p.Records, bytes+p.Bytes, objs+p.Objects, dlq+p.DeadLetters
	}
	fmt.Fprintf(tw, "total\t\t\t\t%d\t%d\t%s\t%d\t%d\t\t\n", lag, recs, human(bytes), objs, dlq)
	tw.Flush()
	if len(st.Transform) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "TRANSFORM STEP\tTYPE\tIN\tOUT\tDROPPED\tFAILED\t")
		for _, t := range st.Transform {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t\n", t.Step, t.Type, t.In, t.Out, t.Dropped, t.Failed)
		}
		tw.Flush()
	}
	for _, p := range st.Partitions {
		if p.Pending != nil {
			fmt.Fprintf(w, "partition %d: writing [%d,%d)\n", p.Partition, p.Pending.First, p.Pending.End)
		}
		for _, g := range p.Gaps {
			fmt.Fprintf(w, "partition %d: %s\n", p.Partition, gapLine(g))
		}
		if p.LastError != "" {
			fmt.Fprintf(w, "partition %d: %s\n", p.Partition, sentence(p.LastError))
		}
	}
}

func human(b int64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatInt(b, 10) + "B"
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func cmdSignal(name, signal string) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		var g globals
		g.register(fs)
		a, err := parse(fs, args, 1, "NAME")
		if err != nil {
			return err
		}
		c, err := dial(ctx, &g)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SignalWorkflow(ctx, connector.WorkflowID(a[0]), "", signal, nil); err != nil {
			return notFound(a[0], err)
		}
		if g.json {
			return printJSON(map[string]string{"connector": a[0], "signal": signal})
		}
		fmt.Printf("connector %s: %s signalled\n", a[0], signal)
		return nil
	}
}

var (
	cmdPause  = cmdSignal("pause", workflows.SignalPause)
	cmdResume = cmdSignal("resume", workflows.SignalResume)
)

func cmdDelete(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	var g globals
	g.register(fs)
	force := fs.Bool("force", false, "terminate at once instead of letting in-flight writes finish (their data is kept and counted when the connector is created again)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for in-flight writes to finish")
	a, err := parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	id := connector.WorkflowID(a[0])
	if *force {
		if err := c.TerminateWorkflow(ctx, id, "", "deleted by starter delete --force"); err != nil {
			return notFound(a[0], err)
		}
		// A terminated workflow leaves its shards running (they are
		// started with parent-close policy abandon): terminate them too.
		if err := terminateShards(ctx, c, a[0]); err != nil {
			return err
		}
	} else {
		// Cancel: the connector stops planning, lets the writes it has in
		// flight finish, commits its cursors to the group, then ends.
		if err := c.CancelWorkflow(ctx, id, ""); err != nil {
			return notFound(a[0], err)
		}
		if !g.json {
			fmt.Printf("connector %s: cancel requested; waiting for in-flight writes to finish ...\n", a[0])
		}
		wctx, cancel := context.WithTimeout(ctx, *wait)
		defer cancel()
		err := c.GetWorkflow(wctx, id, "").Get(wctx, nil)
		var canceled *temporal.CanceledError
		switch {
		case err == nil, errors.As(err, &canceled):
		case wctx.Err() != nil:
			return fmt.Errorf("connector %s did not finish within %s (it is still finishing its writes); check with 'starter status %s', or use --force", a[0], *wait, a[0])
		default:
			return fmt.Errorf("connector %s ended with: %w", a[0], err)
		}
	}
	if g.json {
		return printJSON(map[string]string{"connector": a[0], "deleted": "true"})
	}
	fmt.Printf("connector %s deleted; its sink data and group offsets (connect-%s) are kept, so 'starter create' resumes where it stopped\n", a[0], a[0])
	return nil
}

// terminateShards terminates the running shard workflows of connector
// name (connector-<name>/shard-<k>; a name holds no '/', so no other
// connector's workflow matches).
func terminateShards(ctx context.Context, c client.Client, name string) error {
	prefix := connector.ShardWorkflowID(name, 0)
	prefix = prefix[:len(prefix)-1]
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("WorkflowId STARTS_WITH %q AND ExecutionStatus = 'Running'", prefix),
			NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("list the shard workflows of connector %s: %w", name, err)
		}
		for _, e := range resp.GetExecutions() {
			if err := c.TerminateWorkflow(ctx, e.GetExecution().GetWorkflowId(), "", "deleted by starter delete --force"); err != nil {
				return fmt.Errorf("terminate shard workflow %s: %w", e.GetExecution().GetWorkflowId(), err)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// cmdAckDataLoss acknowledges a data-lost partition.
func cmdAckDataLoss(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ack-data-loss", flag.ContinueOnError)
	var g globals
	g.register(fs)
	partition := fs.Int("partition", -1, "the partition to acknowledge (default: every data-lost partition)")
	by := fs.String("by", envOr("USER", "operator"), "who acknowledges, recorded in the sink's ledger with the gap")
	a, err := parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	ack := workflows.AckDataLoss{By: *by + " (starter ack-data-loss)"}
	if *partition >= 0 {
		p := int32(*partition)
		ack.Partition = &p
	}
	if err := c.SignalWorkflow(ctx, connector.WorkflowID(a[0]), "", workflows.SignalAckDataLoss, ack); err != nil {
		return notFound(a[0], err)
	}
	if g.json {
		return printJSON(map[string]any{"connector": a[0], "signal": workflows.SignalAckDataLoss, "payload": ack})
	}
	fmt.Printf("connector %s: data loss acknowledged; the gap is recorded in the sink's ledger and 'starter verify %s' lists it as declared\n", a[0], a[0])
	return nil
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func printJSON(v any) error { return printJSONTo(os.Stdout, v) }

func printJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
