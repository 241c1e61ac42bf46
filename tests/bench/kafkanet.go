package main

import (
	"net"
	"sync/atomic"
)

// kafkaTraffic counts what kfake sends to its clients and how many
// connections it accepts, to show how much each phase reads from Kafka.
type kafkaTraffic struct {
	sent  atomic.Int64
	conns atomic.Int64
}

func (k *kafkaTraffic) snapshot() (sent, conns int64) { return k.sent.Load(), k.conns.Load() }

// listen is a kfake.ListenFn that counts traffic.
func (k *kafkaTraffic) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return countingListener{ln, k}, nil
}

type countingListener struct {
	net.Listener
	k *kafkaTraffic
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.k.conns.Add(1)
	return countingConn{c, l.k}, nil
}

type countingConn struct {
	net.Conn
	k *kafkaTraffic
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.k.sent.Add(int64(n))
	return n, err
}
