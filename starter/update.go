package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

// setList is a repeatable --set path=value flag.
type setList []string

func (l *setList) String() string     { return strings.Join(*l, " ") }
func (l *setList) Set(v string) error { *l = append(*l, v); return nil }

// cmdUpdate changes a running connector's spec with the update-spec
// Update: from a spec file (-f) or by setting fields of the running spec
// (--set batch.maxRecords=500). Only batch, concurrency, errors.tolerance
// and transforms may change; the workflow rejects anything else, and an
// invalid spec, naming the field.
func cmdUpdate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	var g globals
	g.register(fs)
	file := fs.String("f", "", "the new spec, YAML or JSON (its name must be NAME)")
	var sets setList
	fs.Var(&sets, "set", "path=value: change one field of the running spec, e.g. batch.maxRecords=500 (repeatable; value is JSON or a string)")
	by := fs.String("by", envOr("USER", "operator"), "who changes the spec")
	a, err := parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	if (*file == "") == (len(sets) == 0) {
		return errors.New("give either -f spec.yaml or --set path=value")
	}
	name := a[0]
	c, err := dial(ctx, &g)
	if err != nil {
		return err
	}
	defer c.Close()
	var raw []byte
	if *file != "" {
		data, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		spec, err := connector.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		raw, _ = json.Marshal(spec)
	} else {
		cur, err := querySpec(ctx, c, name)
		if err != nil {
			return err
		}
		if raw, err = setFields(cur, sets); err != nil {
			return err
		}
	}
	var res workflows.UpdateSpecResult
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   connector.WorkflowID(name),
		UpdateName:   workflows.UpdateSpec,
		Args:         []any{workflows.UpdateSpecRequest{Spec: raw, By: *by + " (starter update)"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return notFound(name, err)
	}
	if err := h.Get(ctx, &res); err != nil {
		return fmt.Errorf("connector %s: %w", name, err)
	}
	if g.json {
		return printJSON(res)
	}
	if len(res.Changed) == 0 {
		fmt.Printf("connector %s: the spec is unchanged\n", name)
		return nil
	}
	fmt.Printf("connector %s: changed %s; in effect from the next batch\n", name, strings.Join(res.Changed, ", "))
	return nil
}

// setFields applies path=value settings to spec's JSON.
func setFields(spec *connector.Spec, sets []string) ([]byte, error) {
	b, _ := json.Marshal(spec)
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	for _, kv := range sets {
		path, val, ok := strings.Cut(kv, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("--set %q: want path=value, e.g. batch.maxRecords=500", kv)
		}
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			v = val // a bare string, e.g. errors.tolerance=stop
		}
		keys := strings.Split(path, ".")
		m := tree
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}
	return json.Marshal(tree)
}
