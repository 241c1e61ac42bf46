package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
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

// HistoryType is the workflow type a history's first event started.
func HistoryType(h *historypb.History) string {
	if len(h.GetEvents()) == 0 {
		return ""
	}
	return h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
}

// ReplayError is a history that this build's workflow code does not
// replay: nondeterminism (the code issues other commands than the history
// recorded) or a panic in the workflow code.
type ReplayError struct {
	// EventID and EventType name the history event that does not match
	// the code (0 and "" when the code issues a command the history does
	// not have at all).
	EventID   int64
	EventType string
	// Event describes the event briefly (activity, timer, child or marker
	// name); Command describes what the code issued instead.
	Event, Command string
	// Nondeterministic is set for a mismatch between history and code,
	// unset for other failures of the workflow task (a panic).
	Nondeterministic bool
	// Cause is the SDK's error.
	Cause error
}

func (e *ReplayError) Error() string {
	if e.Cause == nil {
		return e.Summary()
	}
	return e.Summary() + " (" + e.Cause.Error() + ")"
}

// Summary is Error without the SDK's message: the event and the command.
func (e *ReplayError) Summary() string {
	var b strings.Builder
	switch {
	case e.Nondeterministic && e.EventID > 0 && e.Command != "":
		fmt.Fprintf(&b, "nondeterminism at event %d (%s): this build's workflow code issues %s there", e.EventID, e.describeEvent(), e.Command)
	case e.Nondeterministic && e.EventID > 0:
		fmt.Fprintf(&b, "nondeterminism at event %d (%s): this build's workflow code does not issue it", e.EventID, e.describeEvent())
	case e.Nondeterministic && e.Command != "":
		fmt.Fprintf(&b, "nondeterminism: this build's workflow code issues %s, which the history does not have", e.Command)
	case e.Nondeterministic:
		b.WriteString("nondeterminism")
	default:
		fmt.Fprintf(&b, "the workflow code failed during replay: %v", e.Cause)
	}
	return b.String()
}

func (e *ReplayError) describeEvent() string {
	if e.Event == "" {
		return e.EventType
	}
	return e.EventType + " " + e.Event
}

func (e *ReplayError) Unwrap() error { return e.Cause }

// Replay replays a history of any dumpflow workflow type against this
// build's workflow code, with the interceptors the workers use, and returns
// the first nondeterminism or panic it meets as a *ReplayError naming the
// event. workflowID is the execution's id; when it is empty it is derived
// from the history (see HistoryWorkflowID), because the workflows check the
// id they run under.
func Replay(h *historypb.History, workflowID string, logger tlog.Logger) error {
	if len(h.GetEvents()) == 0 {
		return errors.New("the history has no events")
	}
	typ := HistoryType(h)
	switch typ {
	case workflows.ConnectorName, workflows.WindowLoadName, workflows.WindowBackfillName, workflows.RedriveName:
	case "":
		return errors.New("the history does not start with WorkflowExecutionStarted")
	default:
		return fmt.Errorf("this build has no workflow type %q (it has %s, %s, %s and %s)", typ, workflows.ConnectorName, workflows.WindowLoadName, workflows.WindowBackfillName, workflows.RedriveName)
	}
	if workflowID == "" {
		id, err := HistoryWorkflowID(h)
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
	err = r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: workflowID, RunID: "replay"},
	})
	if err == nil {
		return nil
	}
	return explainReplayError(h, err)
}

// The SDK's nondeterminism messages ([TMPRL1100]) name the event by its
// type and attributes, not by its id; explainReplayError finds the event.
var (
	reMismatch = regexp.MustCompile(`nondeterministic workflow: history event is (\w+): (.*), replay command is (\w+): (.*)$`)
	reMissing  = regexp.MustCompile(`nondeterministic workflow: missing replay command for (\w+): (.*)$`)
	reExtra    = regexp.MustCompile(`nondeterministic workflow: extra replay command for (\w+): (.*)$`)
	reExpected = regexp.MustCompile(`a matching (\w+) command was expected in history event position (\S+?)\. `)
	reLookup   = regexp.MustCompile(`(?:lookup failed for scheduledEventID to activityID: scheduleEventID|unable to find activityID for the scheduledEventID): (\d+)`)
	reNoActID  = regexp.MustCompile(`unable to find activityID for the event: (\w+): (.*)$`)
	reField    = regexp.MustCompile(`\b(ActivityId|TimerId|WorkflowId|MarkerName|Name|WorkflowTaskCompletedEventId):([^,()]+)`)
)

func explainReplayError(h *historypb.History, err error) error {
	msg := err.Error()
	re := &ReplayError{Cause: err, Nondeterministic: strings.Contains(msg, "TMPRL1100") || strings.Contains(msg, "nondeterministic")}
	var eventType, eventAttrs string
	if m := reMismatch.FindStringSubmatch(msg); m != nil {
		eventType, eventAttrs = m[1], m[2]
		re.Command = commandSummary(m[3], m[4])
	} else if m := reMissing.FindStringSubmatch(msg); m != nil {
		eventType, eventAttrs = m[1], m[2]
	} else if m := reExtra.FindStringSubmatch(msg); m != nil {
		re.Command = commandSummary(m[1], m[2])
	} else if m := reNoActID.FindStringSubmatch(msg); m != nil {
		eventType, eventAttrs = m[1], m[2]
	} else if m := reExpected.FindStringSubmatch(msg); m != nil {
		// A command of the history the code did not issue, by its id.
		key := map[string]string{"Activity": "ActivityId", "ChildWorkflow": "WorkflowId", "Timer": "TimerId"}[m[1]]
		eventType = map[string]string{"Activity": "ActivityTaskScheduled", "ChildWorkflow": "StartChildWorkflowExecutionInitiated", "Timer": "TimerStarted"}[m[1]]
		eventAttrs = key + ":" + m[2]
	} else if m := reLookup.FindStringSubmatch(msg); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		for _, e := range h.GetEvents() {
			if e.GetEventId() == id {
				re.EventID, re.EventType, re.Event = id, e.GetEventType().String(), eventSummary(e)
			}
		}
	}
	if eventType != "" {
		if e := findEvent(h, eventType, eventAttrs); e != nil {
			re.EventID, re.EventType, re.Event = e.GetEventId(), e.GetEventType().String(), eventSummary(e)
		} else {
			re.EventType = eventType
		}
	}
	return re
}

// findEvent is the first event of type typ whose identifying attributes
// (activity id, timer id, child workflow id, marker name, the workflow task
// that issued it) all appear in the SDK's rendering attrs.
func findEvent(h *historypb.History, typ, attrs string) *historypb.HistoryEvent {
	want := map[string]string{}
	for _, m := range reField.FindAllStringSubmatch(attrs, -1) {
		if _, ok := want[m[1]]; !ok {
			want[m[1]] = strings.TrimSpace(m[2])
		}
	}
	for _, e := range h.GetEvents() {
		if e.GetEventType().String() != typ {
			continue
		}
		if matches(e, want) {
			return e
		}
	}
	return nil
}

func matches(e *historypb.HistoryEvent, want map[string]string) bool {
	check := func(key, got string) bool {
		w, ok := want[key]
		return !ok || w == got
	}
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := e.GetActivityTaskScheduledEventAttributes()
		return check("ActivityId", a.GetActivityId()) && check("WorkflowTaskCompletedEventId", strconv.FormatInt(a.GetWorkflowTaskCompletedEventId(), 10))
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		a := e.GetTimerStartedEventAttributes()
		return check("TimerId", a.GetTimerId()) && check("WorkflowTaskCompletedEventId", strconv.FormatInt(a.GetWorkflowTaskCompletedEventId(), 10))
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
		return check("WorkflowId", a.GetWorkflowId()) && check("WorkflowTaskCompletedEventId", strconv.FormatInt(a.GetWorkflowTaskCompletedEventId(), 10))
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		a := e.GetMarkerRecordedEventAttributes()
		return check("MarkerName", a.GetMarkerName()) && check("WorkflowTaskCompletedEventId", strconv.FormatInt(a.GetWorkflowTaskCompletedEventId(), 10))
	}
	// Other command events: the workflow task that issued them.
	if w, ok := want["WorkflowTaskCompletedEventId"]; ok {
		return strings.Contains(e.String(), "workflow_task_completed_event_id:"+w)
	}
	return true
}

// eventSummary names what an event is about: its activity, timer, child
// workflow, marker or signal.
func eventSummary(e *historypb.HistoryEvent) string {
	switch {
	case e.GetActivityTaskScheduledEventAttributes() != nil:
		return "activity " + e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
	case e.GetTimerStartedEventAttributes() != nil:
		a := e.GetTimerStartedEventAttributes()
		return fmt.Sprintf("timer %s of %s", a.GetTimerId(), a.GetStartToFireTimeout().AsDuration())
	case e.GetStartChildWorkflowExecutionInitiatedEventAttributes() != nil:
		a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
		return fmt.Sprintf("child workflow %s %s", a.GetWorkflowType().GetName(), a.GetWorkflowId())
	case e.GetMarkerRecordedEventAttributes() != nil:
		return "marker " + e.GetMarkerRecordedEventAttributes().GetMarkerName()
	case e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes() != nil:
		return "signal " + e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName()
	}
	return ""
}

var reCommandName = regexp.MustCompile(`\b(?:ActivityType|WorkflowType):\(Name:([^,()]+)\)|\bTimerId:([^,()]+)|\bMarkerName:([^,()]+)`)

// commandSummary renders a command of the SDK's message briefly:
// "ScheduleActivityTask (activity FetchRanges)".
func commandSummary(typ, attrs string) string {
	m := reCommandName.FindStringSubmatch(attrs)
	switch {
	case m == nil:
		return typ
	case m[1] != "" && strings.Contains(typ, "Activity"):
		return typ + " (activity " + m[1] + ")"
	case m[1] != "":
		return typ + " (workflow " + m[1] + ")"
	case m[2] != "":
		return typ + " (timer " + m[2] + ")"
	default:
		return typ + " (marker " + m[3] + ")"
	}
}

// HistoryWorkflowID derives the workflow id a history ran under, which a
// history file (as `temporal workflow show --output json` writes it) does
// may not hold (newer servers record it in the first event), from what the
// workflow checks:
//
//   - Connector: connector-<name> of the spec in its input.
//   - WindowLoad: the window's run id (workflows.WindowRunID) of the
//     input's window, or of the schedule's nominal time; a run that
//     started its window as a child ran under another id, so it gets one.
//   - WindowBackfill: any id.
func HistoryWorkflowID(h *historypb.History) (string, error) {
	attrs := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return "", errors.New("the history does not start with WorkflowExecutionStarted")
	}
	if id := attrs.GetWorkflowId(); id != "" { // recorded by newer servers
		return id, nil
	}
	switch attrs.GetWorkflowType().GetName() {
	case workflows.ConnectorName:
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
	case workflows.WindowLoadName:
		for _, e := range h.GetEvents() {
			if a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetWorkflowType().GetName() == workflows.WindowLoadName {
				return a.GetWorkflowId() + "-started-by-hand", nil
			}
		}
		var in workflows.WindowInput
		if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in); err != nil {
			return "", fmt.Errorf("decode the workflow input: %w", err)
		}
		var spec struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(in.Spec, &spec); err != nil || spec.Name == "" {
			return "", fmt.Errorf("the workflow input holds no window job name (%v); give the workflow id", err)
		}
		end := in.End
		if end.IsZero() {
			end = scheduledStart(attrs.GetSearchAttributes())
		}
		if end.IsZero() {
			return "", errors.New("the WindowLoad input has no window end and no schedule time; give the workflow id")
		}
		return workflows.WindowRunID(spec.Name, end), nil
	default:
		// The other types do not check the id they run under.
		return "replay-" + attrs.GetWorkflowType().GetName(), nil
	}
}

// scheduledStart is the TemporalScheduledStartTime search attribute, the
// nominal time of a schedule's run (a scheduled run's window ends there).
func scheduledStart(sa *commonpb.SearchAttributes) time.Time {
	p, ok := sa.GetIndexedFields()["TemporalScheduledStartTime"]
	if !ok {
		return time.Time{}
	}
	var t time.Time
	if err := converter.GetDefaultDataConverter().FromPayload(p, &t); err != nil {
		return time.Time{}
	}
	return t
}
