package workflows

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
)

// UpdateSpec is the Update that changes a running connector's spec without
// a restart: payload UpdateSpecRequest, result UpdateSpecResult. Only the
// changeable fields (ChangeableFields) may differ from the running spec;
// its validator rejects anything else, and a spec that fails the spec's own
// validation, naming the field, the value and the rule. The change takes
// effect at the next batch boundary: batches in flight finish with the
// spec they started with. It survives continue-as-new (the next run starts
// with it) and activities on any worker read it (activities.SpecUpdateName).
const UpdateSpec = activities.SpecUpdateName

// versionUpdateSpec gates the update-spec handler.
const versionUpdateSpec = "update-spec"

// ChangeableFields are the spec's fields an update-spec may change.
var ChangeableFields = []string{"batch", "concurrency", "errors.tolerance", "transforms"}

// UpdateSpecRequest is update-spec's payload: the whole new spec, as
// starter create takes it (JSON), with defaults filled in or not.
type UpdateSpecRequest struct {
	Spec json.RawMessage `json:"spec"`
	// By names who changes the spec. Optional.
	By string `json:"by,omitempty"`
}

// UpdateSpecResult names the fields that changed.
type UpdateSpecResult struct {
	Changed []string `json:"changed"`
	SpecRef string   `json:"specRef"`
}

// specDiff lists the JSON paths (e.g. "batch.maxRecords") at which a and b
// differ, sorted.
func specDiff(a, b *connector.Spec) []string {
	var ta, tb any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &ta)
	_ = json.Unmarshal(jb, &tb)
	var out []string
	var walk func(path string, x, y any)
	walk = func(path string, x, y any) {
		mx, okx := x.(map[string]any)
		my, oky := y.(map[string]any)
		if okx && oky && !changeableAt(path) {
			keys := map[string]bool{}
			for k := range mx {
				keys[k] = true
			}
			for k := range my {
				keys[k] = true
			}
			names := make([]string, 0, len(keys))
			for k := range keys {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, mx[k], my[k])
			}
			return
		}
		if !reflect.DeepEqual(x, y) {
			out = append(out, path)
		}
	}
	walk("", ta, tb)
	return out
}

// changeableAt reports whether path is a changeable field as a whole
// (transforms), so its differences are reported as one.
func changeableAt(path string) bool { return path == "transforms" }

// changeable reports whether a difference at path may be updated.
func changeable(path string) bool {
	for _, f := range ChangeableFields {
		if path == f || strings.HasPrefix(path, f+".") {
			return true
		}
	}
	return false
}

// parseUpdate decodes and checks an update-spec request against the
// running spec: the new spec's own validation, then that only changeable
// fields differ.
func (c *conn) parseUpdate(req UpdateSpecRequest) (*connector.Spec, []string, error) {
	if len(req.Spec) == 0 {
		return nil, nil, fmt.Errorf("update-spec rejected: spec: is required (the whole new spec, as JSON)")
	}
	spec, err := connector.ParseJSON(req.Spec)
	if err != nil {
		return nil, nil, fmt.Errorf("update-spec rejected: %v", err)
	}
	changed := specDiff(&c.spec, spec)
	var fixed []string
	for _, f := range changed {
		if !changeable(f) {
			fixed = append(fixed, f)
		}
	}
	if len(fixed) > 0 {
		return nil, nil, fmt.Errorf("update-spec rejected: %s cannot change on a running connector (only %s can); delete and create the connector to change them", strings.Join(fixed, ", "), strings.Join(ChangeableFields, ", "))
	}
	return spec, changed, nil
}

func (c *conn) validateUpdateSpec(req UpdateSpecRequest) error {
	_, _, err := c.parseUpdate(req)
	if err == nil && c.holding {
		err = fmt.Errorf("update-spec rejected: connector %s is applying another change; retry when it is done", c.spec.Name)
	}
	return err
}

// updateSpec applies a validated spec change at the next batch boundary:
// it holds the loops at the top of their next iteration, swaps the spec
// (and its reference, which activities resolve), starts or retires loops
// for a new concurrency, and lets them go on.
func (c *conn) updateSpec(ctx workflow.Context, req UpdateSpecRequest) (UpdateSpecResult, error) {
	if workflow.GetVersion(ctx, versionUpdateSpec, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return UpdateSpecResult{}, temporal.NewNonRetryableApplicationError("update-spec is not supported by this run", "Unsupported", nil)
	}
	if c.st.Shards > 0 {
		return c.rootUpdateSpec(ctx, req)
	}
	spec, changed, err := c.parseUpdate(req)
	if err != nil {
		return UpdateSpecResult{}, err
	}
	if len(changed) == 0 {
		return UpdateSpecResult{SpecRef: c.specRef}, nil
	}
	c.holding = true
	defer func() { c.holding = false }()
	// The batch boundary: every loop waits at the top of its iteration.
	if err := workflow.Await(ctx, func() bool { return c.idle == c.loops || c.draining }); err != nil {
		return UpdateSpecResult{}, err
	}
	old := c.concurrency()
	raw, _ := json.Marshal(spec)
	c.spec, c.specJSON, c.warning = *spec, raw, ""
	c.specRef = activities.Remember(spec)
	if !c.draining {
		for i := old; i < c.concurrency(); i++ {
			c.startLoop(ctx, i)
		}
	}
	workflow.GetLogger(ctx).Info("spec updated", "changed", changed, "by", req.By)
	return UpdateSpecResult{Changed: changed, SpecRef: c.specRef}, nil
}
