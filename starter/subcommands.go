package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// subcommand is one verb of a command group (starter table, window,
// schedule).
type subcommand struct{ name, args, help string }

// subFlags returns the flag set of verb sub of group, whose usage line
// shows the verb's arguments, and the verb's arguments, or, for a verb the group does not have, the
// group's usage on errw and an error naming the verbs.
func subFlags(group, sub string, subs []subcommand, usage func(io.Writer), errw io.Writer) (*flag.FlagSet, string, error) {
	var names []string
	for _, c := range subs {
		names = append(names, c.name)
		if c.name != sub {
			continue
		}
		fs := flag.NewFlagSet(group+" "+sub, flag.ContinueOnError)
		fs.SetOutput(errw)
		fs.Usage = func() {
			fmt.Fprintf(errw, "usage: starter %s %s %s [flags]\n\nflags:\n", group, sub, c.args)
			fs.PrintDefaults()
		}
		return fs, c.args, nil
	}
	usage(errw)
	want := strings.Join(names, ", ")
	if i := strings.LastIndex(want, ", "); i >= 0 {
		want = want[:i] + " or " + want[i+2:]
	}
	return nil, "", fmt.Errorf("unknown %s command %q: want %s", group, sub, want)
}
