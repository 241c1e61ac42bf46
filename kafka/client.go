// Package kafka owns dumpflow's Kafka I/O through franz-go: clients built
// from a connector Spec, exact offset-range reads (ReadRange), partition
// bounds (Bounds: log start, high watermark, last stable offset; SharedBounds:
// the same, one look-up per topic shared by a worker's pollers), offset
// resolution (earliest, latest, committed), group offset commits that mirror
// a connector's progress, and the dead-letter producer (ProduceDeadLetters,
// EnsureDeadLetterTopic).
//
// The main type is Client: one per worker process per broker set, safe for
// concurrent use.
//
// Guarantees of ReadRange, the basis of the exactly-once rule:
//   - It passes exactly the committed and non-transactional records of the
//     range, in offset order, each once (read_committed; aborted records and
//     transaction markers are never passed).
//   - It succeeds only after seeing the range's last offset, or a later one
//     (a record or a marker), or when its callback stops it. An offset is
//     skipped only when the broker returned a later offset in its place
//     (aborted records, compaction, markers); elapsed time never proves a
//     gap.
//   - Offsets deleted before they were read (retention, DeleteRecords) end
//     the read with a *DataLostError naming them: a declared gap, never a
//     silent restart at the log start.
//   - A read that sees no new offset for ReadOptions.StallTimeout fails with
//     a retryable *StallError; fetch errors franz-go retries (leader moves,
//     unavailable brokers) do not end it before that, authentication
//     failures end it promptly.
//
// Errors meant for workflow history quote record data only through
// transform.ShortPrefix.
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/dumpflow/dumpflow/connector"
)

// Client is a shared Kafka client for one cluster: admin requests, group
// commits and dead-letter produces. Range reads use direct consumers with the
// same connection options, kept in a small pool between reads.
type Client struct {
	opts   []kgo.Opt
	cl     *kgo.Client
	admin  *kadm.Client
	reads  readerPool   // idle ReadRange consumers
	shared sharedBounds // SharedBounds rounds by topic

	dlqMu        sync.Mutex
	dlqClosed    bool
	dlqProducers map[int64]*kgo.Client // dead-letter producers by batch limit
}

// Options returns the franz-go options for spec's cluster: brokers, SASL
// (credentials resolved here, on the worker) and TLS.
func Options(spec *connector.Spec) ([]kgo.Opt, error) {
	k := spec.Kafka
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID("dumpflow")}
	if k.SASL != nil {
		c, err := connector.ResolveCredentials(k.SASL.Credentials)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		switch k.SASL.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: c.AccessKeyID, Pass: c.AccessKeySecret}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.AccessKeyID, Pass: c.AccessKeySecret}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.AccessKeyID, Pass: c.AccessKeySecret}.AsSha512Mechanism()))
		}
	}
	if t := k.TLS; t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in by the spec
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.caFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.caFile: %s holds no PEM certificate", t.CAFile)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	return opts, nil
}

// NewClient builds a Client from connection options (see Options).
func NewClient(opts ...kgo.Opt) (*Client, error) {
	all := append([]kgo.Opt{
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Admin requests to an unreachable cluster fail within seconds, so
		// the error reaches the connector's status instead of hanging.
		kgo.RetryTimeout(10 * time.Second),
		kgo.DialTimeout(5 * time.Second),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &Client{opts: opts, cl: cl, admin: kadm.NewClient(cl)}, nil
}

// Close closes the client, its idle range readers and its dead-letter
// producers.
func (c *Client) Close() {
	c.reads.close()
	c.dlqMu.Lock()
	c.dlqClosed = true
	ps := c.dlqProducers
	c.dlqProducers = nil
	c.dlqMu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	c.cl.Close()
}

// Kgo returns the underlying franz-go client.
func (c *Client) Kgo() *kgo.Client { return c.cl }

// Admin returns the kadm admin client.
func (c *Client) Admin() *kadm.Client { return c.admin }

// Pool caches one Client per distinct connection configuration, so that a
// worker serving many connectors keeps one client per cluster.
type Pool struct {
	mu      sync.Mutex
	clients map[string]*Client
	extra   []kgo.Opt
}

// NewPool returns an empty pool; extra options are added to every client.
func NewPool(extra ...kgo.Opt) *Pool { return &Pool{clients: map[string]*Client{}, extra: extra} }

// For returns the client for spec's cluster, building it on first use.
func (p *Pool) For(spec *connector.Spec) (*Client, error) {
	key := poolKey(spec)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	opts, err := Options(spec)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(append(opts, p.extra...)...)
	if err != nil {
		return nil, err
	}
	p.clients[key] = c
	return c, nil
}

// Close closes every client in the pool.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		c.Close()
		delete(p.clients, k)
	}
}

func poolKey(spec *connector.Spec) string {
	b := append([]string(nil), spec.Kafka.Brokers...)
	sort.Strings(b)
	key := strings.Join(b, ",")
	if s := spec.Kafka.SASL; s != nil {
		key += "|sasl:" + s.Mechanism + ":" + s.Credentials
	}
	if t := spec.Kafka.TLS; t != nil {
		key += fmt.Sprintf("|tls:%s:%v", t.CAFile, t.InsecureSkipVerify)
	}
	return key
}
