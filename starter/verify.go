package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/starter/verify"
)

func cmdVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var g globals
	g.register(fs)
	file := fs.String("f", "", "read the spec from this file instead of asking the running connector")
	deep := fs.Bool("deep", false, "also read the data itself (object bodies, table rows) and compare each range's count and checksum with Kafka's records")
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
	opts := verify.Options{Deep: *deep}
	if *deep && !g.json {
		opts.Progress = progressLine(os.Stderr)
	}
	rep, err := verify.Run(ctx, spec, cursors, opts)
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
	mode := "metadata"
	if rep.Deep {
		mode = "deep: data compared with Kafka"
	}
	fmt.Printf("verify %s (%s sink, %s), committed offsets from %s\n", rep.Connector, rep.Sink, mode, source)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tSTART\tCOMMITTED\tRANGES\tRECORDS\tGAPS\tOVERLAPS\tDECLARED\tROUTED\tCHECKED\tMISMATCHES\tAHEAD\tRESULT\t")
	for _, p := range rep.Partitions {
		res := "exact"
		if !p.OK() {
			res = "BROKEN"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Partition, p.Start, p.Committed, p.Ranges, p.Records,
			len(p.Gaps), len(p.Overlaps), len(p.Declared), len(p.Routed), p.Checked, len(p.Mismatches), len(p.Ahead), res)
	}
	tw.Flush()
	for _, p := range rep.Partitions {
		for _, r := range p.Gaps {
			fmt.Printf("partition %d: GAP [%d,%d) — %d offsets missing from the sink\n", p.Partition, r.First, r.End, r.End-r.First)
		}
		for _, r := range p.Overlaps {
			fmt.Printf("partition %d: OVERLAP [%d,%d) written twice (%s)\n", p.Partition, r.First, r.End, r.Object)
		}
		for _, m := range p.Mismatches {
			fmt.Printf("partition %d: MISMATCH [%d,%d) %s: %s\n", p.Partition, m.First, m.End, m.Object, m.Problem)
		}
		for _, r := range p.Declared {
			what := "declared gap"
			if r.Kind == sink.MarkSkipped {
				what = "declared skip (offsets set forward)"
			}
			fmt.Printf("partition %d: %s [%d,%d): %s\n", p.Partition, what, r.First, r.End, r.Note)
		}
		for _, r := range p.Rewinds {
			fmt.Printf("partition %d: declared rewind (offsets set back) [%d,%d) written again: %s\n", p.Partition, r.First, r.End, r.Note)
		}
		for _, r := range p.DeclaredOverlaps {
			fmt.Printf("partition %d: declared overlap [%d,%d) written twice by a rewind (%s)\n", p.Partition, r.First, r.End, r.Object)
		}
		for _, r := range p.Gone {
			fmt.Printf("partition %d: [%d,%d) not compared: Kafka no longer holds its records (retention)\n", p.Partition, r.First, r.End)
		}
		for _, r := range p.Routed {
			fmt.Printf("partition %d: routed [%d,%d) to the error-data topic (%d records): %s\n", p.Partition, r.First, r.End, r.Records, r.Note)
		}
		if p.Redriven > 0 {
			fmt.Printf("partition %d: %d records re-driven from the dead-letter topic\n", p.Partition, p.Redriven)
		}
		for _, r := range p.Ahead {
			fmt.Printf("partition %d: ahead [%d,%d) written, offset commit pending (%s)\n", p.Partition, r.First, r.End, r.Object)
		}
	}
	for _, r := range rep.Redriven {
		fmt.Printf("re-driven: dead letters [%d,%d) of partition %d of the dead-letter topic (from partition %d): %d records (%s)\n",
			r.First, r.End, r.DeadLetterPartition, r.Partition, r.Records, r.Object)
	}
	for _, f := range rep.Foreign {
		fmt.Printf("FOREIGN OBJECT %s: %s\n", f.Key, f.Reason)
	}
	if n := len(rep.Other); n > 0 {
		fmt.Printf("%d other keys in the folder are not dumpflow objects (e.g. %s)\n", n, rep.Other[0])
	}
	for _, n := range rep.Notes {
		fmt.Println("note: " + n)
	}
	if rep.OK {
		fmt.Println("OK: every partition's ranges tile [start, committed) exactly")
	} else {
		fmt.Println("FAILED: gaps, overlaps, mismatches or foreign objects found")
	}
}

// progressLine prints progress on one line of a terminal, or a line every
// few seconds elsewhere.
func progressLine(w *os.File) func(string, ...any) {
	tty := isTerminal(w)
	var last time.Time
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", msg)
			return
		}
		if time.Since(last) >= 5*time.Second {
			fmt.Fprintln(w, msg)
			last = time.Now()
		}
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
