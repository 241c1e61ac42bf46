package maxcompute

import (
	"fmt"
	"time"
)

// Tunnel limits of the real service (see the package doc).
const (
	// MaxBlocks is how many blocks one upload session takes; block ids are
	// 0..MaxBlocks-1.
	MaxBlocks = 20000
	// MaxBlockSize is the most one block may hold.
	MaxBlockSize = 100 << 30
	// DefaultBlockSize is the row bytes after which a block is closed and
	// the next one opened.
	DefaultBlockSize = 16 << 20
)

// Option configures New and the inspection helpers.
type Option func(*options)

type options struct {
	blockSize     int64
	httpTimeout   time.Duration
	tunnelTimeout time.Duration
	ledgerTable   string
}

func defaultOptions() options {
	return options{
		blockSize:     DefaultBlockSize,
		tunnelTimeout: 30 * time.Minute,
		ledgerTable:   DefaultLedgerTable,
	}
}

func (o options) validate() error {
	if o.blockSize < 1 || o.blockSize > MaxBlockSize {
		return fmt.Errorf("maxcompute: block size %d must be 1..%d bytes", o.blockSize, int64(MaxBlockSize))
	}
	return nil
}

// WithBlockSize sets the row bytes after which a tunnel block is closed and
// the next one opened. A row never spans blocks, so a block ends with the
// row that crosses n. 1..100GiB. Optional. Default: 16MiB.
func WithBlockSize(n int64) Option { return func(o *options) { o.blockSize = n } }

// WithHTTPTimeout bounds each REST API request (table metadata, DDL).
// Optional. Default: the SDK's 60s.
func WithHTTPTimeout(d time.Duration) Option { return func(o *options) { o.httpTimeout = d } }

// WithTunnelTimeout bounds each tunnel request, including the upload of one
// block, which stays open while its rows are added, and a whole download.
// Optional. Default: 30m.
func WithTunnelTimeout(d time.Duration) Option { return func(o *options) { o.tunnelTimeout = d } }

// WithLedgerTable names the ledger table (see DefaultLedgerTable).
// Optional. Default: dumpflow_ledger.
func WithLedgerTable(name string) Option { return func(o *options) { o.ledgerTable = name } }
