package workflows

import (
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// Temporal delivers a workflow's signals in the order they were sent, but
// the Go SDK puts each signal name in a channel of its own: a workflow
// reading several channels cannot tell whether "pause" came before
// "resume" when both arrive in one workflow task, or are both waiting when
// the run continues as new. SignalOrder closes that gap: it records, in
// history order, the name of every signal the workflow receives, so the
// Connector applies pause, resume and acknowledgements in the order sent.

// SignalOrder is the worker interceptor that records signal order. Workers
// and replayers of dumpflow's workflows register it (runner.Register does);
// without it the Connector falls back to a fixed order per workflow task.
func SignalOrder() interceptor.WorkerInterceptor { return &signalOrder{} }

type signalOrder struct {
	interceptor.WorkerInterceptorBase
}

func (*signalOrder) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &orderInbound{log: &signalLog{}}
	i.Next = next
	return i
}

type orderInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	log *signalLog
}

func (i *orderInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return i.Next.ExecuteWorkflow(workflow.WithValue(ctx, signalLogKey{}, i.log), in)
}

func (i *orderInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	// HandleSignal runs once per signal event, in history order, during
	// replay as well: the log is deterministic.
	i.log.names = append(i.log.names, in.SignalName)
	return i.Next.HandleSignal(ctx, in)
}

type signalLogKey struct{}

// signalLog is the names of the signals received, in order.
type signalLog struct{ names []string }

func signalLogOf(ctx workflow.Context) *signalLog {
	l, _ := ctx.Value(signalLogKey{}).(*signalLog)
	return l
}
