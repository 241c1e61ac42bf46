package wasm

import (
	"errors"
	"strings"
)

// Kinds of call failure; a [*CallError] wraps one of them, so
// errors.Is(err, ErrTimeLimit) tells a time-limit failure from the others.
var (
	// ErrFunction: the function reported an error (set_error, or a non-zero
	// return, or a malformed output): the record is bad for this function.
	ErrFunction = errors.New("function returned an error")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access, a Go
	// panic that reached the runtime, a failed initialisation).
	ErrTrap = errors.New("function trapped")
	// ErrExit: the guest called proc_exit.
	ErrExit = errors.New("function exited")
	// ErrTimeLimit: the call ran past the step's time limit and was stopped.
	ErrTimeLimit = errors.New("function exceeded its time limit")
	// ErrMemoryLimit: the guest stopped after its memory could not grow
	// past the step's memory limit.
	ErrMemoryLimit = errors.New("function exceeded its memory limit")
)

// MaxErrorMessage is how many bytes of a guest's error message, and of the
// tail of its stderr, a [*CallError] keeps (cut by transform.ShortPrefix).
const MaxErrorMessage = 256

// MaxOutputs is the most records one call may write.
const MaxOutputs = 1024

// CallError is a failed call: the record fails the step.
type CallError struct {
	// Kind is one of ErrFunction, ErrTrap, ErrExit, ErrTimeLimit, ErrMemoryLimit.
	Kind error
	// Detail is the guest's message, or what the host saw (first line of a
	// trap, the limit that was hit).
	Detail string
	// Stderr is the tail of what the guest wrote to stderr during the call
	// (for traps and exits; empty otherwise).
	Stderr string
}

func (e *CallError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Stderr != "" {
		b.WriteString(" (stderr: ")
		b.WriteString(e.Stderr)
		b.WriteString(")")
	}
	return b.String()
}

func (e *CallError) Unwrap() error { return e.Kind }

// Transient reports a failure that depends on the machine, not the record:
// the time limit. The chain then fails the batch (it is retried) instead
// of sending the record to the dead-letter topic, so a retried batch gives
// the same output (see transform.Transient).
func (e *CallError) Transient() bool { return errors.Is(e.Kind, ErrTimeLimit) }
