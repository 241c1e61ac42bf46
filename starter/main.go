// Command starter is dumpflow's operator CLI. It talks to Temporal (and, for
// verify and table, to Kafka and the sink) and prints human-readable tables,
// or JSON with --json.
//
//	starter create -f spec.yaml        start connector-<name>
//	starter list                       connectors and their health
//	starter status NAME [--watch]      per-partition progress
//	starter pause NAME | resume NAME   signal the connector
//	starter delete NAME                stop the connector after its in-flight writes (data and offsets stay)
//	starter ack-data-loss NAME         acknowledge a data-lost partition; the gap is declared
//	starter offsets get|set|reset NAME partitions' offsets; move a paused connector's (Update set-offsets)
//	starter update NAME -f|--set       change batch limits, concurrency, tolerance, transforms live (Update update-spec)
//	starter verify NAME                offset-coverage ledger; exit 1 on gaps or overlaps
//	starter dlq list|redrive NAME      dead letters by stage and error; re-drive them (Redrive workflow)
//	starter table show|partitions|rows MaxCompute inspection through the SDK
//	starter transform test -f spec     run the transform chain on sample records
//	starter window validate|run|watch  window jobs (seed 003): check a job, load a window now
//	starter schedule create|list|...   window jobs' Temporal Schedules: create, describe, pause, backfill
//	starter replay WORKFLOW_ID | -f F  replay a history on this build's workflow code
//	starter demo                       the whole local stack plus demo connectors
//
// Everything here can also be done with the temporal CLI; see package
// workflows for the workflow, signal and query names.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
)

// globals are the flags every subcommand takes.
type globals struct {
	temporal  string
	namespace string
	json      bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.temporal, "temporal", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	fs.StringVar(&g.namespace, "namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of tables")
}

type command struct {
	name, args, help string
	run              func(ctx context.Context, args []string) error
}

var commands = []command{
	{"create", "-f spec.yaml", "validate a spec and start its connector workflow", cmdCreate},
	{"list", "", "list connectors with their health: lag (records, seconds), stopped partitions, dead letters", cmdList},
	{"status", "NAME", "show a connector's per-partition progress (--watch to refresh)", cmdStatus},
	{"pause", "NAME", "pause a connector after its current batches", cmdPause},
	{"resume", "NAME", "resume a paused or stopped connector", cmdResume},
	{"delete", "NAME", "stop a connector after its in-flight writes (sink data and group offsets stay)", cmdDelete},
	{"ack-data-loss", "NAME", "acknowledge records deleted before they were dumped; the partition goes on", cmdAckDataLoss},
	{"offsets", "get|set|reset NAME", "show or move a paused connector's partition offsets (KIP-875)", cmdOffsets},
	{"update", "NAME -f spec.yaml|--set k=v", "change a running connector's batch, concurrency, errors.tolerance or transforms", cmdUpdate},
	{"verify", "NAME", "check that the sink's ranges tile [start, committed) exactly", cmdVerify},
	{"dlq", "list|redrive NAME", "list a connector's dead letters by stage and error; re-drive them", cmdDLQ},
	{"table", "show|partitions|rows NAME", "inspect a MaxCompute connector's table", cmdTable},
	{"transform", "test -f spec.yaml", "run a spec's transform chain on sample records and show each step", cmdTransform},
	{"window", "validate|run|watch ...", "check a window job, load a window (or a span of them) now and follow it", cmdWindow},
	{"schedule", "create|list|describe|...", "manage window jobs' Temporal Schedules (pause, trigger, backfill, delete)", cmdSchedule},
	{"replay", "WORKFLOW_ID | -f FILE.json", "replay a workflow history on this build's code; report nondeterminism (exit 1)", cmdReplay},
	{"demo", "", "run the local stack, produce sample data and start the example connectors", cmdDemo},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: starter COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-13s %-28s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'starter COMMAND -h' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			var ee exitError
			switch {
			case errors.As(err, &ee):
				os.Exit(int(ee))
			case errors.Is(err, flag.ErrHelp):
				os.Exit(2)
			case err != nil:
				fmt.Fprintln(os.Stderr, "starter "+c.name+": "+sentence(err.Error()))
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "starter: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

// exitError exits with a code after the command printed its own output.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Go type names and SDK wrappers that Temporal puts into error texts: an
// application error made from a plain Go error has the Go type's name as its
// type ("wrapError"), and the SDK's wrappers repeat ids.
var (
	reGoType     = regexp.MustCompile(`\*?\b(?:fmt\.|errors\.)?(?:wrapErrors?|errorString|joinError)\b(?::\s*)?`)
	reAppType    = regexp.MustCompile(`\s*\(type: [^,()]*, retryable: (?:true|false)\)`)
	reActivity   = regexp.MustCompile(`activity error \(type: ([^,()]+)[^()]*\): `)
	reWorkflow   = regexp.MustCompile(`workflow execution error \(type: ([^,()]+)[^()]*\): `)
	reChild      = regexp.MustCompile(`child workflow execution error \(type: ([^,()]+)[^()]*\): `)
	reSpaceColon = regexp.MustCompile(`:\s*:`)
)

// sentence makes an error text read as a sentence for an operator: without
// Go type names ("discover: wrapError: …" is "discover: …") and without the
// SDK's wrappers' ids ("activity error (type: Discover, scheduledEventID:
// 5, …): …" is "activity Discover: …").
func sentence(msg string) string {
	msg = reChild.ReplaceAllString(msg, "child workflow $1: ")
	msg = reActivity.ReplaceAllString(msg, "activity $1: ")
	msg = reWorkflow.ReplaceAllString(msg, "workflow $1: ")
	msg = reAppType.ReplaceAllString(msg, "")
	msg = reGoType.ReplaceAllString(msg, "")
	msg = reSpaceColon.ReplaceAllString(msg, ":")
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), ":"))
}
