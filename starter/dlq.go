package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"sigs.k8s.io/yaml"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/starter/dlq"
	"github.com/dumpflow/dumpflow/workflows"
)

var dlqSubcommands = []subcommand{
	{"list", "NAME", "the connector's dead letters, grouped by stage and error"},
	{"redrive", "NAME", "send dead letters back through the transforms and the sink (Redrive workflow)"},
}

func dlqUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: starter dlq COMMAND NAME [flags]\n\ncommands:\n")
	for _, c := range dlqSubcommands {
		fmt.Fprintf(w, "  %-8s %-6s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nThe spec is asked of the running connector workflow, or read with -f spec.yaml.\n"+
		"redrive selects with --all, --partition N [--from A] [--to B] (origin offsets [A,B)),\n"+
		"or --dlq-offsets 3-5,9 (dead-letter offsets, inclusive); --overrides file.yaml\n"+
		"changes the spec for the re-drive: {transforms: [...], maxRecordBytes: 16MiB}.\n")
}

func cmdDLQ(ctx context.Context, args []string) error {
	return runDLQ(ctx, args, os.Stdout, os.Stderr)
}

func runDLQ(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		dlqUsage(errw)
		return flag.ErrHelp
	}
	sub := args[0]
	fs, _, err := subFlags("dlq", sub, dlqSubcommands, dlqUsage, errw)
	if err != nil {
		return err
	}
	var g globals
	g.register(fs)
	file := fs.String("f", "", "read the connector spec from this file instead of asking the running connector")
	var (
		all                     bool
		partition               = -1
		from, to                int64
		dlqOffsets, overrides   string
		dlqPartition, maxLetter int
		noWait                  bool
	)
	if sub == "redrive" {
		fs.BoolVar(&all, "all", false, "re-drive every dead letter of the connector")
		fs.IntVar(&partition, "partition", -1, "re-drive dead letters from this partition of the topic")
		fs.Int64Var(&from, "from", 0, "with --partition: first origin offset")
		fs.Int64Var(&to, "to", 0, "with --partition: origin offset to stop before (0: no end)")
		fs.StringVar(&dlqOffsets, "dlq-offsets", "", "re-drive these dead-letter offsets, e.g. 3-5,9 (inclusive)")
		fs.IntVar(&dlqPartition, "dlq-partition", 0, "with --dlq-offsets: the dead-letter topic's partition")
		fs.StringVar(&overrides, "overrides", "", "YAML or JSON file of spec changes for the re-drive: transforms, maxRecordBytes")
		fs.IntVar(&maxLetter, "batch", 0, "dead letters per batch (default 500)")
		fs.BoolVar(&noWait, "no-wait", false, "start the workflow and return")
	}
	a, err := parse(fs, args[1:], 1, "NAME")
	if err != nil {
		return err
	}
	name := a[0]
	var spec *connector.Spec
	if *file != "" {
		if spec, err = connector.Load(*file); err != nil {
			return err
		}
	}
	var c client.Client
	if spec == nil || sub == "redrive" {
		if c, err = dial(ctx, &g); err != nil {
			return err
		}
		defer c.Close()
		if spec == nil {
			if spec, err = querySpec(ctx, c, name); err != nil {
				return err
			}
		}
	}
	switch sub {
	case "list":
		l, err := dlq.List(ctx, spec)
		if err != nil {
			return err
		}
		if g.json {
			return writeJSON(out, l)
		}
		dlq.Print(out, l)
		return nil
	}
	in := workflows.RedriveInput{Connector: name, MaxLetters: maxLetter}
	if *file != "" {
		in.Spec = spec
	}
	switch {
	case all:
		in.Selection.All = true
	case partition >= 0:
		p := int32(partition)
		in.Selection.Partition, in.Selection.From, in.Selection.To = &p, from, to
	case dlqOffsets != "":
		rs, err := parseOffsetRanges(dlqOffsets)
		if err != nil {
			return err
		}
		in.Selection.DeadLetterPartition, in.Selection.DeadLetterOffsets = int32(dlqPartition), rs
	}
	if err := in.Selection.Validate(); err != nil {
		return fmt.Errorf("%w (--all, --partition or --dlq-offsets)", err)
	}
	if overrides != "" {
		doc, err := os.ReadFile(overrides)
		if err != nil {
			return err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", overrides, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(js)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in.Overrides); err != nil {
			return fmt.Errorf("%s: %w (want transforms and maxRecordBytes)", overrides, err)
		}
		if _, err := in.Overrides.Apply(spec); err != nil {
			return err
		}
	}
	id := workflows.RedriveWorkflowID(in)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.TaskQueue,
		// The same request while it runs attaches to it; after it ended it
		// runs again and finds everything done.
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.RedriveName, in)
	if err != nil {
		return fmt.Errorf("start re-drive %s: %w", id, err)
	}
	if noWait {
		if g.json {
			return writeJSON(out, map[string]string{"workflowId": run.GetID(), "runId": run.GetRunID()})
		}
		fmt.Fprintf(out, "re-drive started: workflow %s (run %s)\n", run.GetID(), run.GetRunID())
		return nil
	}
	var res workflows.RedriveResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("re-drive %s: %w", id, err)
	}
	if g.json {
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "re-drive %s of connector %s: %d dead letters selected, %d already re-driven\n", id, name, res.Selected, res.AlreadyDone)
	fmt.Fprintf(out, "  %d letters in %d batches: %d records written, %d failed again (back in %s with their attempt one higher)\n",
		res.Letters, res.Batches, res.Records, res.DeadLetters, res.DeadLetterTopic)
	for _, o := range res.Objects {
		fmt.Fprintf(out, "  %s\n", o)
	}
	return nil
}

// parseOffsetRanges parses "3-5,9" into [3,6) and [9,10).
func parseOffsetRanges(s string) ([]sink.Range, error) {
	var out []sink.Range
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 64)
		b := a
		if err == nil && isRange {
			b, err = strconv.ParseInt(hi, 10, 64)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("--dlq-offsets %q: want offsets and inclusive ranges like 3-5,9", s)
		}
		out = append(out, sink.Range{First: a, End: b + 1})
	}
	if len(out) == 0 {
		return nil, errors.New("--dlq-offsets: empty")
	}
	return out, nil
}
