package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/workflows"
)

var offsetsSubs = []subcommand{
	{"get", "NAME", "each partition's next offset, log start, high watermark and the operator's moves"},
	{"set", "NAME --to earliest|latest|timestamp|offset", "move partitions of a paused connector (forward: declared skip; back: rewind)"},
	{"reset", "NAME", "move partitions to the spec's initial position (earliest unless set)"},
}

func offsetsUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: starter offsets get|set|reset NAME [flags]\n\n")
	for _, c := range offsetsSubs {
		fmt.Fprintf(w, "  %-6s %-45s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nset and reset need a paused connector (or partitions parked as data-lost or stopped); they are the %q Update.\n", workflows.UpdateSetOffsets)
}

// cmdOffsets is starter offsets get|set|reset: KIP-875's offset management
// through the set-offsets Update and the status query.
func cmdOffsets(ctx context.Context, args []string) error {
	if len(args) == 0 {
		offsetsUsage(os.Stderr)
		return errors.New("want get, set or reset")
	}
	fs, what, err := subFlags("offsets", args[0], offsetsSubs, offsetsUsage, os.Stderr)
	if err != nil {
		return err
	}
	var g globals
	g.register(fs)
	var parts partitionList
	var to, ts, by string
	var offset int64 = -1
	switch args[0] {
	case "set":
		fs.StringVar(&to, "to", "", "earliest, latest, timestamp or offset (required)")
		fs.Int64Var(&offset, "offset", -1, "the exact offset, with --to offset")
		fs.StringVar(&ts, "timestamp", "", "RFC 3339 time, with --to timestamp: each partition's first record at or after it")
		fallthrough
	case "reset":
		fs.Var(&parts, "partition", "partition to move; repeat or comma-separate for several (default: every partition)")
		fs.StringVar(&by, "by", envOr("USER", "operator"), "who sets the offsets, recorded in the sink's ledger")
	}
	if args[0] == "reset" {
		to = workflows.OffsetsReset
	}
	a, err := parse(fs, args[1:], 1, what)
	if err != nil {
		return err
	}
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	name := a[0]
	if args[0] == "get" {
		st, err := queryStatus(ctx, c, name)
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(st.Partitions)
		}
		printOffsets(os.Stdout, st)
		return nil
	}
	req := workflows.SetOffsets{To: to, Partitions: parts, Timestamp: ts, By: by + " (starter offsets " + args[0] + ")"}
	if to == "" {
		return errors.New("--to is required: earliest, latest, timestamp or offset")
	}
	if to == workflows.OffsetsOffset || offset >= 0 {
		req.Offset = &offset
	}
	res, err := setOffsets(ctx, c, name, req)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(res)
	}
	for _, m := range res.Moves {
		fmt.Println(moveLine(m.Partition, m.Kind, m.From, m.To))
	}
	fmt.Printf("connector %s: offsets set; 'starter resume %s' goes on from them, 'starter verify %s' lists the moves as declared\n", name, name, name)
	return nil
}

// setOffsets sends the set-offsets Update and waits for its result.
func setOffsets(ctx context.Context, c client.Client, name string, req workflows.SetOffsets) (workflows.SetOffsetsResult, error) {
	var res workflows.SetOffsetsResult
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   connector.WorkflowID(name),
		UpdateName:   workflows.UpdateSetOffsets,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return res, notFound(name, err)
	}
	if err := h.Get(ctx, &res); err != nil {
		return res, fmt.Errorf("connector %s: %w", name, err)
	}
	return res, nil
}

func moveLine(p int32, kind string, from, to int64) string {
	switch kind {
	case sink.MarkSkipped:
		return fmt.Sprintf("partition %d: %d → %d, [%d,%d) skipped (declared in the sink)", p, from, to, from, to)
	case sink.MarkRewind:
		return fmt.Sprintf("partition %d: %d → %d, [%d,%d) rewound: written again (declared overlap)", p, from, to, to, from)
	case sink.MarkGap:
		return fmt.Sprintf("partition %d: %d → %d, [%d,%d) deleted by retention before it was dumped (declared gap)", p, from, to, from, to)
	}
	return fmt.Sprintf("partition %d: stays at %d", p, to)
}

func printOffsets(w io.Writer, st workflows.Status) {
	state := "running"
	if st.Paused {
		state = "paused"
	}
	fmt.Fprintf(w, "connector %s  topic %s  %s\n", st.Name, st.Topic, state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tSTATE\tNEXT\tLOG START\tHIGH WATERMARK\tLAG\tSTART\tEPOCH\t")
	for _, p := range st.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Partition, p.State, p.Next, p.LogStart, p.HighWatermark, p.Lag, p.Start, p.Epoch)
	}
	tw.Flush()
	for _, p := range st.Partitions {
		for _, g := range p.Gaps {
			fmt.Fprintf(w, "partition %d: %s\n", p.Partition, gapLine(g))
		}
	}
}

// gapLine describes a declared gap, skip or rewind.
func gapLine(g workflows.DeclaredGap) string {
	at := g.At.Format(time.RFC3339)
	switch g.Kind {
	case sink.MarkSkipped:
		return fmt.Sprintf("declared skip [%d,%d): offsets set forward by %s at %s", g.First, g.End, g.By, at)
	case sink.MarkRewind:
		return fmt.Sprintf("declared rewind [%d,%d) written again: offsets set back by %s at %s", g.First, g.End, g.By, at)
	}
	return fmt.Sprintf("declared gap [%d,%d), acknowledged by %s at %s", g.First, g.End, g.By, at)
}

// partitionList is a repeatable, comma-separated --partition flag.
type partitionList []int32

func (l *partitionList) String() string {
	var s []string
	for _, p := range *l {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}

func (l *partitionList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a partition number", f)
		}
		*l = append(*l, int32(n))
	}
	return nil
}
