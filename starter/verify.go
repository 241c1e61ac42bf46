package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/starter/verify"
)

func cmdVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var g globals
	g.register(fs)
	file := fs.String("f", "", "read the spec from this file instead of asking the running connector")
	a, err := parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	name := a[0]
	var spec *connector.Spec
	cursors := map[int32]verify.Cursor{}
	fromWorkflow := false
	if *file != "" {
		if spec, err = connector.Load(*file); err != nil {
			return err
		}
	}
	if c, err := dial(ctx, &g); err == nil {
		if spec == nil {
			if spec, err = querySpec(ctx, c, name); err != nil {
				c.Close()
				return err
			}
		}
		if st, err := queryStatus(ctx, c, name); err == nil {
			for _, p := range st.Partitions {
				cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
			}
			fromWorkflow = true
		}
		c.Close()
	} else if spec == nil {
		return fmt.Errorf("%w (or pass -f spec.yaml to verify without Temporal)", err)
	}
	if !fromWorkflow {
		if cursors, err = groupCursors(ctx, spec); err != nil {
			return err
		}
	}
	rep, err := verify.Run(ctx, spec, cursors)
	if err != nil {
		return err
	}
	if g.json {
		if err := printJSON(rep); err != nil {
			return err
		}
	} else {
		src := "consumer group " + spec.Group()
		if fromWorkflow {
			src = "workflow " + spec.WorkflowID()
		}
		printReport(rep, src)
	}
	if !rep.OK {
		return exitError(1)
	}
	return nil
}

// groupCursors reads committed offsets (and the start in their metadata)
// from the connect-<name> group.
func groupCursors(ctx context.Context, spec *connector.Spec) (map[int32]verify.Cursor, error) {
	opts, err := kafka.Options(spec)
	if err != nil {
		return nil, err
	}
	kc, err := kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	cm, err := kc.CommittedOffsets(ctx, spec.Group(), spec.Kafka.Topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]verify.Cursor{}
	for p, c := range cm {
		start := c.Start
		if start < 0 {
			start = 0
		}
		out[p] = verify.Cursor{Start: start, Committed: c.Offset}
	}
	return out, nil
}

func printReport(rep verify.Report, source string) {
	fmt.Printf("verify %s (%s sink), committed offsets from %s\n", rep.Connector, rep.Sink, source)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tSTART\tCOMMITTED\tRANGES\tRECORDS\tGAPS\tOVERLAPS\tDUPLICATES\tAHEAD\tRESULT\t")
	for _, p := range rep.Partitions {
		res := "exact"
		if !p.OK() || p.Duplicates > 0 {
			res = "BROKEN"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Partition, p.Start, p.Committed, p.Ranges, p.Records, len(p.Gaps), len(p.Overlaps), p.Duplicates, len(p.Ahead), res)
	}
	tw.Flush()
	for _, p := range rep.Partitions {
		for _, r := range p.Gaps {
			fmt.Printf("partition %d: GAP [%d,%d) — %d offsets missing from the sink\n", p.Partition, r.First, r.End, r.End-r.First)
		}
		for _, r := range p.Overlaps {
			fmt.Printf("partition %d: OVERLAP [%d,%d) written twice (%s)\n", p.Partition, r.First, r.End, r.Object)
		}
		for _, r := range p.Ahead {
			fmt.Printf("partition %d: ahead [%d,%d) written, offset commit pending (%s)\n", p.Partition, r.First, r.End, r.Object)
		}
	}
	if rep.OK {
		fmt.Println("OK: every partition's ranges tile [start, committed) exactly")
	} else {
		fmt.Println("FAILED: gaps or overlaps found")
	}
}
