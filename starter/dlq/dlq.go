// Package dlq reads a connector's dead-letter topic for the operator:
// List groups the dead letters by stage and error, and says how many of
// them a re-drive has already taken. starter dlq list prints it; the
// Redrive workflow (package workflows) re-drives them.
package dlq

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink/oss"
)

// Group is the dead letters of one stage and error.
type Group struct {
	Stage string `json:"stage"`
	// Step is the transform step (stage transform).
	Step string `json:"step,omitempty"`
	// Error is the error message with numbers replaced by N, so letters
	// failing for one reason group together; Example is one message as is.
	Error   string `json:"error"`
	Example string `json:"example"`
	// Letters in the dead-letter topic; Records the distinct records
	// (origin partition and offset) they hold.
	Letters int64 `json:"letters"`
	Records int64 `json:"records"`
	// MaxAttempt is the highest attempt header among them.
	MaxAttempt int `json:"maxAttempt"`
	// Redriven counts the letters a re-drive took (whatever became of
	// them: written, or failed again into a new letter).
	Redriven int64 `json:"redriven"`
	// Partitions are the origin partitions; First and Last the letters'
	// offsets in the dead-letter topic; FirstOrigin and LastOrigin the
	// origin offsets.
	Partitions  []int32 `json:"partitions"`
	First       int64   `json:"first"`
	Last        int64   `json:"last"`
	FirstOrigin int64   `json:"firstOrigin"`
	LastOrigin  int64   `json:"lastOrigin"`
}

// Listing is a connector's dead letters.
type Listing struct {
	Connector       string  `json:"connector"`
	DeadLetterTopic string  `json:"deadLetterTopic"`
	Letters         int64   `json:"letters"`
	Groups          []Group `json:"groups"`
}

var digits = regexp.MustCompile(`[0-9]+`)

// errorKey is msg with numbers replaced and cut to 120 bytes.
func errorKey(msg string) string {
	k := digits.ReplaceAllString(msg, "N")
	if len(k) > 120 {
		k = k[:120] + "…"
	}
	return k
}

// List reads spec's dead-letter topic and groups the connector's letters
// by stage, step and error. For an OSS connector it also counts the
// letters re-drives took.
func List(ctx context.Context, spec *connector.Spec) (Listing, error) {
	opts, err := kafka.Options(spec)
	if err != nil {
		return Listing{}, err
	}
	kc, err := kafka.NewClient(opts...)
	if err != nil {
		return Listing{}, err
	}
	defer kc.Close()
	type span struct {
		p          int32
		first, end int64
	}
	var done []span
	if spec.Sink.Type == connector.SinkOSS {
		creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
		if err != nil {
			return Listing{}, err
		}
		s, err := oss.New(spec, creds)
		if err != nil {
			return Listing{}, err
		}
		objs, err := s.RedrivenObjects(ctx, spec.Kafka.Topic)
		if err != nil {
			return Listing{}, err
		}
		for _, o := range objs {
			if o.Connector == spec.Name && o.DeadLetterTopic == spec.Errors.DeadLetterTopic {
				done = append(done, span{p: o.DeadLetterPartition, first: o.First, end: o.End})
			}
		}
	}
	out := Listing{Connector: spec.Name, DeadLetterTopic: spec.Errors.DeadLetterTopic}
	groups := map[string]*Group{}
	records := map[string]map[[2]int64]bool{}
	err = kc.ReadLetters(ctx, spec.Errors.DeadLetterTopic, func(_ *kgo.Record, l kafka.Letter, ok bool) error {
		if !ok || l.Connector != spec.Name || l.Topic != spec.Kafka.Topic {
			return nil
		}
		out.Letters++
		key := l.Stage + "\x00" + l.Step + "\x00" + errorKey(l.Error)
		g := groups[key]
		if g == nil {
			g = &Group{Stage: l.Stage, Step: l.Step, Error: errorKey(l.Error), Example: l.Error, First: l.Offset, FirstOrigin: l.OriginOffset, LastOrigin: l.OriginOffset}
			groups[key] = g
			records[key] = map[[2]int64]bool{}
		}
		g.Letters++
		g.Last = l.Offset
		g.MaxAttempt = max(g.MaxAttempt, l.Attempt)
		g.FirstOrigin = min(g.FirstOrigin, l.OriginOffset)
		g.LastOrigin = max(g.LastOrigin, l.OriginOffset)
		rk := [2]int64{int64(l.OriginPartition), l.OriginOffset}
		if !records[key][rk] {
			records[key][rk] = true
			g.Records++
		}
		if !containsP(g.Partitions, l.OriginPartition) {
			g.Partitions = append(g.Partitions, l.OriginPartition)
		}
		for _, d := range done {
			if d.p == l.Partition && l.Offset >= d.first && l.Offset < d.end {
				g.Redriven++
				break
			}
		}
		return nil
	})
	if err != nil {
		return Listing{}, err
	}
	for _, g := range groups {
		sort.Slice(g.Partitions, func(i, j int) bool { return g.Partitions[i] < g.Partitions[j] })
		out.Groups = append(out.Groups, *g)
	}
	sort.Slice(out.Groups, func(i, j int) bool {
		a, b := out.Groups[i], out.Groups[j]
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Error < b.Error
	})
	return out, nil
}

func containsP(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// Print writes the listing as a table.
func Print(w io.Writer, l Listing) {
	fmt.Fprintf(w, "dead letters of connector %s in topic %s: %d\n", l.Connector, l.DeadLetterTopic, l.Letters)
	if len(l.Groups) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTEP\tLETTERS\tRECORDS\tATTEMPTS\tREDRIVEN\tPARTITIONS\tORIGIN OFFSETS\tDLQ OFFSETS\tERROR")
	for _, g := range l.Groups {
		step := g.Step
		if step == "" {
			step = "-"
		}
		ps := make([]string, len(g.Partitions))
		for i, p := range g.Partitions {
			ps[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t≤%d\t%d\t%s\t%d..%d\t%d..%d\t%s\n", g.Stage, step, g.Letters, g.Records, g.MaxAttempt, g.Redriven,
			strings.Join(ps, ","), g.FirstOrigin, g.LastOrigin, g.First, g.Last, g.Error)
	}
	tw.Flush()
}
