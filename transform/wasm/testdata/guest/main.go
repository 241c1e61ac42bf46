// Command guest is the test suite's function: the record's key picks what
// it does, so that one module covers every behaviour the host must handle.
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	dumpflow "github.com/dumpflow/dumpflow/transform/wasm/sdk/go"
)

func init() { dumpflow.Handle(handle) }

func main() {}

var (
	calls int      // records seen by this instance
	hoard [][]byte // what "alloc" keeps
)

func handle(r dumpflow.Record) ([]dumpflow.Record, error) {
	calls++
	verb, arg, _ := strings.Cut(string(r.Key), ":")
	reply := func(s string) ([]dumpflow.Record, error) {
		r.Value = []byte(s)
		return []dumpflow.Record{r}, nil
	}
	switch verb {
	case "echo": // the input as the SDK decoded it, re-encoded
		return []dumpflow.Record{r}, nil
	case "drop":
		return nil, nil
	case "many": // n outputs, value "i", header "i"
		n, _ := strconv.Atoi(arg)
		out := make([]dumpflow.Record, n)
		for i := range out {
			v := strconv.Itoa(i)
			out[i] = dumpflow.Record{Key: []byte("k" + v), Value: []byte(v), Headers: []dumpflow.Header{{Key: "i", Value: []byte(v)}}}
		}
		return out, nil
	case "error":
		return nil, errors.New(arg)
	case "panic":
		panic(arg)
	case "exit":
		code, _ := strconv.Atoi(arg)
		os.Exit(code)
	case "loop":
		for {
			calls++
		}
	case "alloc": // keep allocating arg MiB
		n, _ := strconv.Atoi(arg)
		for range n {
			hoard = append(hoard, make([]byte, 1<<20))
		}
		return reply("allocated")
	case "calls":
		return reply(strconv.Itoa(calls))
	case "read":
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return reply(string(b))
	case "write":
		if err := os.WriteFile(arg, []byte("x"), 0o644); err != nil {
			return nil, err
		}
		return reply("written")
	case "time":
		return reply(fmt.Sprint(time.Now().UnixMilli()))
	case "rand":
		b := make([]byte, 8)
		rand.Read(b)
		return reply(fmt.Sprintf("%x %d", b, mrand.Int64()))
	case "env":
		return reply(os.Getenv(arg))
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}
