package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
)

// SpecRef is the reference V2 activity inputs carry instead of the whole
// spec: "sha256:" and the first 16 bytes, hex, of the SHA-256 of the
// defaulted spec's JSON. It is a pure function of the spec, so workflow code
// may compute it.
func SpecRef(spec *connector.Spec) string {
	b, _ := json.Marshal(spec)
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:16])
}

// specCache holds the specs a worker has seen, by reference. Workflow code
// fills it on the worker that runs the workflow (Remember), and an activity
// that misses reads the spec from its run's input in the workflow's history
// and keeps it, so a worker restart or an activity on another worker costs
// one history read, and needs no worker that holds the workflow.
type specCache struct {
	mu    sync.Mutex
	specs map[string]*connector.Spec
}

var processSpecs = &specCache{specs: map[string]*connector.Spec{}}

// Remember puts spec into this process's cache under SpecRef(spec). Workflow
// code calls it with the spec it holds; doing so again is harmless, and
// replays do the same, so it is safe in a workflow.
func Remember(spec *connector.Spec) string {
	ref := SpecRef(spec)
	processSpecs.mu.Lock()
	defer processSpecs.mu.Unlock()
	if _, ok := processSpecs.specs[ref]; !ok {
		if len(processSpecs.specs) > 4096 {
			clear(processSpecs.specs) // a worker serves far fewer specs; never grow without bound
		}
		cp := *spec
		processSpecs.specs[ref] = &cp
	}
	return ref
}

func (c *specCache) get(ref string) (*connector.Spec, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.specs[ref]
	if !ok {
		return nil, false
	}
	cp := *s
	return &cp, true
}

// SpecUpdateName is the Update that changes a running connector's spec
// (workflows.UpdateSpec): a run's activities may carry the reference of a
// spec that came with one, and find it among the run's accepted updates.
const SpecUpdateName = "update-spec"

// SpecQuery is the workflow query that answers a connector's spec; the
// workflows package registers it under this name.
const SpecQuery = "spec"

// spec returns the activity's spec: inline (V1) or by reference (V2),
// defaulted and validated.
func (a *Activities) spec(ctx context.Context, in SpecInput) (*connector.Spec, error) {
	var spec *connector.Spec
	switch {
	case in.Spec != nil:
		cp := *in.Spec
		spec = &cp
	case in.SpecRef != "":
		s, err := a.resolveSpec(ctx, in.SpecRef)
		if err != nil {
			return nil, err
		}
		spec = s
	default:
		return nil, temporal.NewNonRetryableApplicationError("activity input has neither spec nor specRef", "InvalidSpec", nil)
	}
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	if err := a.checkCredentials(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// credentialCheckTTL is how long a spec's credential check is trusted
// before credentials files are read again.
const credentialCheckTTL = time.Minute

// checkCredentials resolves every credentials name the spec uses and checks
// that each may be used where the spec uses it (connector.CredentialScope):
// a credential file that lists allowed endpoints, buckets, projects or
// brokers is refused for anything else, before any I/O. The refusal names
// the credentials, the field, the value and the allowed list.
func (a *Activities) checkCredentials(spec *connector.Spec) error {
	ref := SpecRef(spec)
	a.mu.Lock()
	at, ok := a.credsChecked[ref]
	a.mu.Unlock()
	if ok && time.Since(at) < credentialCheckTTL {
		return nil
	}
	err := connector.CheckCredentialUse(spec, nil)
	var use *connector.CredentialUseError
	switch {
	case err == nil:
	case errors.As(err, &use):
		return temporal.NewNonRetryableApplicationError(err.Error(), "CredentialNotAllowed", err)
	default:
		return temporal.NewNonRetryableApplicationError(err.Error(), "MissingCredentials", err)
	}
	a.mu.Lock()
	if a.credsChecked == nil || len(a.credsChecked) > 4096 {
		a.credsChecked = map[string]time.Time{}
	}
	a.credsChecked[ref] = time.Now()
	a.mu.Unlock()
	return nil
}

func (a *Activities) resolveSpec(ctx context.Context, ref string) (*connector.Spec, error) {
	if s, ok := processSpecs.get(ref); ok {
		return s, nil
	}
	if a.temporal == nil {
		return nil, temporal.NewNonRetryableApplicationError("spec "+ref+" is not in this worker's cache and the worker has no Temporal client to read it from the workflow's history", "SpecUnavailable", nil)
	}
	// The spec is the input of the run that scheduled the activity: read
	// it from the run's first history event, which needs no worker holding
	// the workflow (a query would, and that worker may be stopped).
	info := activity.GetInfo(ctx)
	raw, err := a.temporal.StartInput(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID)
	if err != nil {
		return nil, fmt.Errorf("read the spec %s from the history of workflow %s: %w", ref, info.WorkflowExecution.ID, err)
	}
	s, got, err := specOf(raw)
	if err != nil {
		return nil, fmt.Errorf("decode the input of workflow %s: %w", info.WorkflowExecution.ID, err)
	}
	if got == ref {
		Remember(s)
		return s, nil
	}
	// A spec changed by an update-spec: it is the input of an accepted
	// update of the run.
	updates, err := a.temporal.UpdateInputs(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, SpecUpdateName)
	if err != nil {
		return nil, fmt.Errorf("read the spec %s from the updates of workflow %s: %w", ref, info.WorkflowExecution.ID, err)
	}
	for _, u := range updates {
		if us, uref, err := specOf(u); err == nil && uref == ref {
			Remember(us)
			return us, nil
		}
	}
	return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("workflow %s was started with spec %s and no update of it carries %s", info.WorkflowExecution.ID, got, ref), "SpecUnavailable", errors.New("stale spec reference"))
}

// specOf decodes the spec of a workflow input or update-spec payload (both
// {"spec": ...}) and its reference.
func specOf(raw []byte) (*connector.Spec, string, error) {
	var in struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, "", err
	}
	s, err := connector.DecodeLenient(in.Spec)
	if err != nil {
		return nil, "", err
	}
	s.Default()
	return s, SpecRef(s), nil
}

// temporalClient is what the activities ask of Temporal.
type temporalClient interface {
	// StartInput is the JSON input of a workflow run (its first event).
	StartInput(ctx context.Context, workflowID, runID string) ([]byte, error)
	// UpdateInputs are the JSON inputs of a run's accepted updates of the
	// given name, in history order.
	UpdateInputs(ctx context.Context, workflowID, runID, name string) ([][]byte, error)
	// Update sends Update name with arg to the running workflowID under
	// updateID (Temporal runs one update id once) and returns its result.
	Update(ctx context.Context, workflowID, updateID, name string, arg any) (json.RawMessage, error)
	// Running says whether workflowID has a running execution.
	Running(ctx context.Context, workflowID string) (bool, error)
}

// historyClient reads start inputs through a client.Client.
type historyClient struct{ c client.Client }

func (h historyClient) StartInput(ctx context.Context, workflowID, runID string) ([]byte, error) {
	it := h.c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, errors.New("the history has no events")
	}
	ev, err := it.Next()
	if err != nil {
		return nil, err
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil || len(attrs.GetInput().GetPayloads()) == 0 {
		return nil, errors.New("the history does not start with the workflow's input")
	}
	var raw json.RawMessage
	if err := converter.GetDefaultDataConverter().FromPayload(attrs.GetInput().GetPayloads()[0], &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func (h historyClient) UpdateInputs(ctx context.Context, workflowID, runID, name string) ([][]byte, error) {
	it := h.c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out [][]byte
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		attrs := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes()
		in := attrs.GetAcceptedRequest().GetInput()
		if attrs == nil || in.GetName() != name || len(in.GetArgs().GetPayloads()) == 0 {
			continue
		}
		var raw json.RawMessage
		if err := converter.GetDefaultDataConverter().FromPayload(in.GetArgs().GetPayloads()[0], &raw); err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}
