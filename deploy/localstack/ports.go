package localstack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// host is where every local component listens.
const host = "127.0.0.1"

func hostPort(port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// freePort returns a port no other bind(:0) will be given for a while.
//
// The listener accepts a connection from itself and closes it server side,
// which leaves the port in TIME_WAIT: Linux will not hand it out to another
// bind(:0) until that expires, yet an explicit bind to it (SO_REUSEADDR, as
// Go sets) succeeds. This keeps two stacks in one process from picking the
// same port between choosing it and binding it. The same trick as the
// Temporal CLI's dev server.
func freePort() (int, error) {
	l, err := net.Listen("tcp", hostPort(0))
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	s.Close() // server side first: TIME_WAIT stays on the listening port
	return l.Addr().(*net.TCPAddr).Port, nil
}

// component names a part of the stack for error messages.
type component struct {
	name      string // as in errors: "kafka"
	portFlag  string // the dumpflow CLI flag choosing its port
	portField string // the Options field choosing its port
	otherwise string // how to do without it
}

var (
	temporalComponent   = component{"temporal", "temporal-port", "TemporalPort", "or use an external Temporal (Options.TemporalAddress)"}
	uiComponent         = component{"temporal ui", "ui-port", "UIPort", "or -1 to run without the UI"}
	kafkaComponent      = component{"kafka", "kafka-port", "KafkaPort", "or use an external Kafka (Options.KafkaBrokers)"}
	ossComponent        = component{"oss", "oss-port", "OSSPort", "or use an external OSS (Options.OSSEndpoint)"}
	maxComputeComponent = component{"maxcompute", "maxcompute-port", "MaxComputePort", "or use an external MaxCompute (Options.MaxComputeEndpoint)"}
)

// checkFree fails with listenError if port cannot be bound now. It is for
// components that bind their ports themselves, so a race remains, but it
// turns the common case (another stack already running) into a clear error
// before anything starts.
func checkFree(c component, port int) error {
	l, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return listenError(c, port, err)
	}
	return l.Close()
}

// listenError explains a failed listen on a component's port.
func listenError(c component, port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: listen %s: %w — is another local stack running? "+
			"set --%s (Options.%s) to another port, 0 for a free one, %s",
			c.name, hostPort(port), syscall.EADDRINUSE, c.portFlag, c.portField, c.otherwise)
	}
	return fmt.Errorf("%s: listen %s: %w", c.name, hostPort(port), err)
}
