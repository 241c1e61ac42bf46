package tests

import (
	"context"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dumpflow/dumpflow/activities"
)

// historyActivity is one activity of a run's history.
type historyActivity struct {
	Name      string
	Scheduled int64 // the id of its ActivityTaskScheduled event
	Completed int64 // the id of its ActivityTaskCompleted event; 0 until it completes
	Attempt   int32 // the attempt its ActivityTaskStarted event records; 0 until one is recorded
	Input     *commonpb.Payloads
	Result    *commonpb.Payloads // nil until it completes
}

// historyActivities reads the history of workflow wid's run runID (the
// latest run when runID is empty) and returns its activities in the order
// scheduled.
func (s *stack) historyActivities(wid, runID string) []*historyActivity {
	s.t.Helper()
	it := s.client.GetWorkflowHistory(context.Background(), wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	byID := map[int64]*historyActivity{}
	var out []*historyActivity
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(s.t, err)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			c := &historyActivity{Name: a.GetActivityType().GetName(), Scheduled: ev.GetEventId(), Input: a.GetInput()}
			byID[ev.GetEventId()] = c
			out = append(out, c)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			if c := byID[a.GetScheduledEventId()]; c != nil {
				c.Attempt = a.GetAttempt()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			if c := byID[a.GetScheduledEventId()]; c != nil {
				c.Completed, c.Result = ev.GetEventId(), a.GetResult()
			}
		}
	}
	return out
}

// historyWrite is one WritePartition of a run's history, decoded.
type historyWrite struct {
	Event   int64 // the id of its ActivityTaskScheduled event
	In      activities.WriteInput
	Attempt int32                   // the attempt its ActivityTaskStarted event records; 0 until one is recorded
	Res     *activities.WriteResult // nil until it completes
}

// historyWrites reads the history of workflow wid's run runID (the latest
// run when runID is empty) and returns its WritePartition activities in the
// order scheduled.
func (s *stack) historyWrites(wid, runID string) []*historyWrite {
	s.t.Helper()
	return s.writesOf(s.historyActivities(wid, runID))
}

// writesOf decodes the WritePartition activities of acts, in their order.
func (s *stack) writesOf(acts []*historyActivity) []*historyWrite {
	s.t.Helper()
	dc := converter.GetDefaultDataConverter()
	var out []*historyWrite
	for _, a := range acts {
		if a.Name != activities.WritePartitionName {
			continue
		}
		w := &historyWrite{Event: a.Scheduled, Attempt: a.Attempt}
		require.NoError(s.t, dc.FromPayloads(a.Input, &w.In))
		if a.Completed != 0 {
			w.Res = &activities.WriteResult{}
			require.NoError(s.t, dc.FromPayloads(a.Result, w.Res))
		}
		out = append(out, w)
	}
	return out
}
