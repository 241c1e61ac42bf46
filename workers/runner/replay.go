package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

// ReadHistory reads a workflow history as JSON, in the form
// `temporal workflow show --output json` writes.
func ReadHistory(r io.Reader) (*historypb.History, error) {
	h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("read history JSON: %w", err)
	}
	if len(h.GetEvents()) == 0 {
		return nil, errors.New("read history JSON: no events")
	}
	return h, nil
}

// Replay replays a Connector (or Redrive) history against this build's workflow code,
// with the interceptors the workers use, and returns the first
// nondeterminism or panic it meets. workflowID is the execution's id; when
// it is empty it is derived from the spec in the history's first event
// (connector-<name>), because the workflow checks the id it runs under.
func Replay(h *historypb.History, workflowID string, logger tlog.Logger) error {
	if workflowID == "" {
		id, err := historyWorkflowID(h)
		if err != nil {
			return err
		}
		workflowID = id
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{Interceptors: Interceptors()})
	if err != nil {
		return err
	}
	RegisterWorkflows(r)
	return r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: workflowID, RunID: "replay"},
	})
}

// historyWorkflowID is connector-<name> of the spec the history's first
// event started the workflow with.
func historyWorkflowID(h *historypb.History) (string, error) {
	attrs := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return "", errors.New("the history does not start with WorkflowExecutionStarted")
	}
	if t := attrs.GetWorkflowType().GetName(); t != workflows.ConnectorName {
		// Only the Connector workflow checks the id it runs under.
		return "replay-" + t, nil
	}
	var in struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in); err != nil {
		return "", fmt.Errorf("decode the workflow input: %w", err)
	}
	var spec connector.Spec
	if err := json.Unmarshal(in.Spec, &spec); err != nil || spec.Name == "" {
		return "", fmt.Errorf("the workflow input holds no connector spec name (%v); give the workflow id", err)
	}
	return connector.WorkflowID(spec.Name), nil
}
