package dumpflow

import (
	"errors"
	"fmt"
)

// Func transforms one record into zero or more records, or fails it with
// an error (the record then goes to the dead-letter topic with the error's
// message).
type Func func(Record) ([]Record, error)

var handler Func

// Handle registers fn as the module's function. Call it once, from an init
// function: a reactor's main never runs.
func Handle(fn Func) {
	if fn == nil {
		panic("dumpflow.Handle: nil function")
	}
	if handler != nil {
		panic("dumpflow.Handle: called twice")
	}
	handler = fn
}

var (
	inbuf   []byte
	outbuf  []byte
	headers []Header
)

// onRecord is the body of the dumpflow_on_record export: it reads the
// input record, runs the handler and writes its outputs. A non-nil error
// fails the call with its message.
func onRecord(size int32, read func([]byte) int32, write func([]byte) int32) (err error) {
	if handler == nil {
		return errors.New("no function: call dumpflow.Handle from an init function (a reactor's main never runs)")
	}
	if cap(inbuf) < int(size) {
		inbuf = make([]byte, size)
	}
	inbuf = inbuf[:size]
	if n := read(inbuf); n != size {
		return fmt.Errorf("read_input returned %d for a %d-byte record", n, size)
	}
	r, err := decodeRecord(inbuf, headers)
	if err != nil {
		return err
	}
	headers = r.Headers[:0]
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	outs, err := handler(r)
	if err != nil {
		return err
	}
	for i := range outs {
		outbuf = appendRecord(outbuf[:0], &outs[i])
		if rc := write(outbuf); rc != 0 {
			return fmt.Errorf("write_output of output %d returned %d", i+1, rc)
		}
	}
	return nil
}
