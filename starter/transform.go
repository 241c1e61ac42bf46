package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
)

// cmdTransform is `starter transform test`: it runs a spec's transform
// chain on sample records and prints what each step did, so a chain can be
// developed without a running connector.
func cmdTransform(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(os.Stderr, "usage: starter transform test -f spec.yaml [--input FILE | --topic TOPIC] [--limit N] [--envelope]")
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("transform test", flag.ContinueOnError)
	file := fs.String("f", "", "connector spec holding the transforms, YAML or JSON (required)")
	input := fs.String("input", "", "sample records, one per line (- for standard input): each line is a record's value, or with --envelope a JSON object {\"key\", \"value\", \"headers\", \"timestamp\"} (headers: an object, or an array of [key, value] pairs; kept in order)")
	envelope := fs.Bool("envelope", false, "the input's lines are JSON envelopes, not values")
	topic := fs.String("topic", "", "read the sample records from this Kafka topic instead (the spec's brokers; default: the spec's topic when --input is not given)")
	limit := fs.Int("limit", 10, "records to run through the chain")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("-f spec.yaml is required")
	}
	spec, err := connector.Load(*file)
	if err != nil {
		return err
	}
	if len(spec.Transforms) == 0 {
		return fmt.Errorf("%s has no transforms", *file)
	}
	var recs []*transform.Record
	switch {
	case *input != "":
		recs, err = readSamples(*input, *envelope, *limit, spec.Kafka.Topic)
	default:
		t := *topic
		if t == "" {
			t = spec.Kafka.Topic
		}
		recs, err = sampleTopic(ctx, spec, t, *limit)
	}
	if err != nil {
		return err
	}
	// One chain per prefix of the steps: the output after step i is the
	// output of the first i steps.
	prefixes := make([]*transform.Chain, len(spec.Transforms))
	for i := range spec.Transforms {
		if prefixes[i], err = transform.Compile(spec.Transforms[:i+1], transform.Options{Functions: wasm.Load}); err != nil {
			return err
		}
		defer func(c *transform.Chain) { _ = c.Close(ctx) }(prefixes[i])
	}
	names := prefixes[len(prefixes)-1].StepNames()
	var results []recordTrace
	for _, r := range recs {
		tr := recordTrace{Offset: r.Offset, Input: string(r.Value)}
		for i, c := range prefixes {
			st := stepTrace{Step: names[i], Type: spec.Transforms[i].Type}
			outs, err := runOnce(ctx, c, r)
			switch {
			case err != nil:
				st.Result = "failed: " + err.Error()
			case len(outs) == 0:
				st.Result = "dropped"
			default:
				for _, o := range outs {
					st.Outputs = append(st.Outputs, describe(o))
				}
			}
			tr.Steps = append(tr.Steps, st)
			if st.Result != "" {
				break
			}
		}
		results = append(results, tr)
	}
	if *asJSON {
		return printJSON(results)
	}
	for i, tr := range results {
		fmt.Printf("record %d (offset %d): %s\n", i+1, tr.Offset, transform.ShortPrefix([]byte(tr.Input), 200))
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		for _, st := range tr.Steps {
			res := st.Result
			if res == "" {
				res = strings.Join(st.Outputs, "\n\t\t")
			}
			fmt.Fprintf(tw, "  %s\t(%s)\t%s\n", st.Step, st.Type, res)
		}
		tw.Flush()
	}
	return nil
}

type recordTrace struct {
	Offset int64       `json:"offset"`
	Input  string      `json:"input"`
	Steps  []stepTrace `json:"steps"`
}

type stepTrace struct {
	Step    string   `json:"step"`
	Type    string   `json:"type"`
	Outputs []string `json:"outputs,omitempty"`
	Result  string   `json:"result,omitempty"` // dropped, or failed: ...
}

// runOnce runs c on one record in a fresh run.
func runOnce(ctx context.Context, c *transform.Chain, r *transform.Record) ([]*transform.Record, error) {
	run, err := c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = run.Close(ctx) }()
	outs, err := run.Apply(ctx, r)
	if err != nil {
		return nil, err
	}
	return append([]*transform.Record(nil), outs...), nil
}

// describe renders an output record: its value, and its key, route and
// headers when it has them.
func describe(r *transform.Record) string {
	s := string(r.Value)
	if r.Value == nil {
		s = "null"
	}
	var extra []string
	if r.Key != nil {
		extra = append(extra, "key="+string(r.Key))
	}
	if r.Route != "" {
		extra = append(extra, "route="+r.Route)
	}
	for _, h := range r.Headers {
		extra = append(extra, "header "+h.Key+"="+string(h.Value))
	}
	if len(extra) > 0 {
		s += "  [" + strings.Join(extra, ", ") + "]"
	}
	return transform.ShortPrefix([]byte(s), 400)
}

// readSamples reads up to limit records from a file of lines.
func readSamples(path string, envelope bool, limit int, topic string) ([]*transform.Record, error) {
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []*transform.Record
	for line := 0; sc.Scan() && len(out) < limit; line++ {
		r := &transform.Record{Topic: topic, Offset: int64(line), Timestamp: time.Unix(0, 0).UTC()}
		if !envelope {
			r.Value = append([]byte(nil), sc.Bytes()...)
			out = append(out, r)
			continue
		}
		var env struct {
			Key       *string         `json:"key"`
			Value     json.RawMessage `json:"value"`
			Headers   json.RawMessage `json:"headers"`
			Timestamp *time.Time      `json:"timestamp"`
		}
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			return nil, fmt.Errorf("%s line %d: not a JSON envelope: %w", path, line+1, err)
		}
		if env.Key != nil {
			r.Key = []byte(*env.Key)
		}
		var s string
		switch {
		case len(env.Value) == 0 || string(env.Value) == "null":
			// A missing or null value is a null value (a tombstone).
		case json.Unmarshal(env.Value, &s) == nil:
			r.Value = []byte(s) // a JSON string is the value's text
		default:
			r.Value = env.Value
		}
		hs, err := envelopeHeaders(env.Headers)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: headers: %w", path, line+1, err)
		}
		r.Headers = hs
		if env.Timestamp != nil {
			r.Timestamp = *env.Timestamp
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// envelopeHeaders reads an envelope's headers, in their order: an object
// {"key": "value", ...}, or an array of [key, value] pairs, which may
// repeat a key; a value is a string, or null for a null header value.
func envelopeHeaders(raw json.RawMessage) ([]transform.Header, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	header := func(k string, v *string) transform.Header {
		h := transform.Header{Key: k}
		if v != nil {
			h.Value = []byte(*v)
		}
		return h
	}
	var out []transform.Header
	if raw[0] == '[' {
		var pairs [][2]*string
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, fmt.Errorf("want an object or an array of [key, value] pairs of strings: %w", err)
		}
		for i, p := range pairs {
			if p[0] == nil {
				return nil, fmt.Errorf("pair %d has a null key", i)
			}
			out = append(out, header(*p[0], p[1]))
		}
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("want an object or an array of [key, value] pairs of strings")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v *string
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("header %q: want a string or null: %w", tok, err)
		}
		out = append(out, header(tok.(string), v))
	}
	return out, nil
}

// sampleTopic reads up to limit records from the start of topic's
// partitions, through the spec's brokers.
func sampleTopic(ctx context.Context, spec *connector.Spec, topic string, limit int) ([]*transform.Record, error) {
	opts, err := kafka.Options(spec)
	if err != nil {
		return nil, err
	}
	kc, err := kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	bounds, err := kc.Bounds(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []*transform.Record
	for p := int32(0); int(p) < len(bounds) && len(out) < limit; p++ {
		b := bounds[p]
		if b.Err != nil || b.End <= b.Start {
			continue
		}
		end := min(b.End, b.Start+int64(limit-len(out)))
		err := kc.ReadRange(ctx, topic, p, b.Start, end, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
			tr := &transform.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				tr.Headers = append(tr.Headers, transform.Header{Key: h.Key, Value: h.Value})
			}
			out = append(out, tr)
			return len(out) < limit, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
