package activities

import (
	"fmt"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
)

// StageTransform is the dead-letter stage of a record that failed a
// transform step; the step's name is in the HeaderExecuting header.
const StageTransform = "transform"

// chain returns the compiled transform chain of spec, compiling it (and
// loading its function modules) once per spec.
func (a *Activities) chain(spec *connector.Spec) (*transform.Chain, error) {
	if len(spec.Transforms) == 0 {
		return nil, nil
	}
	ref := SpecRef(spec)
	a.mu.Lock()
	c, ok := a.chains[ref]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := transform.Compile(spec.Transforms, transform.Options{Functions: wasm.Load})
	if err != nil {
		return nil, nonRetryable("InvalidSpec", fmt.Errorf("transforms: %w", err))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.chains[ref]; ok {
		return cur, nil
	}
	if a.chains == nil || len(a.chains) > 1024 {
		a.chains = map[string]*transform.Chain{}
	}
	a.chains[ref] = c
	return c, nil
}
