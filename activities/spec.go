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

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
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
// that misses asks the workflow (its "spec" query) and keeps the answer,
// so a worker restart or an activity on another worker costs one query.
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
		return nil, temporal.NewNonRetryableApplicationError("spec "+ref+" is not in this worker's cache and the worker has no Temporal client to ask the workflow for it", "SpecUnavailable", nil)
	}
	info := activity.GetInfo(ctx)
	v, err := a.temporal.QueryWorkflow(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, SpecQuery)
	if err != nil {
		return nil, fmt.Errorf("ask workflow %s for its spec %s: %w", info.WorkflowExecution.ID, ref, err)
	}
	var s connector.Spec
	if err := v.Get(&s); err != nil {
		return nil, fmt.Errorf("decode the spec of workflow %s: %w", info.WorkflowExecution.ID, err)
	}
	s.Default()
	if got := SpecRef(&s); got != ref {
		// The workflow holds another spec now (a live change): this input
		// is stale and can never be served.
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("workflow %s holds spec %s, not %s", info.WorkflowExecution.ID, got, ref), "SpecUnavailable", errors.New("stale spec reference"))
	}
	Remember(&s)
	return &s, nil
}

// temporalClient is the part of client.Client the activities use.
type temporalClient interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (interface{ Get(any) error }, error)
}

// queryClient adapts a client.Client.
type queryClient struct{ c client.Client }

func (q queryClient) QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (interface{ Get(any) error }, error) {
	return q.c.QueryWorkflow(ctx, workflowID, runID, queryType, args...)
}
