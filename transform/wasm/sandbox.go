package wasm

import (
	"io"
	"math/rand/v2"

	"github.com/tetratelabs/wazero/experimental"
)

// limitedMemory backs one instance's linear memory and refuses to grow it
// past limit bytes: memory.grow then returns -1 to the guest, and the
// instance remembers the size it asked for, so that the failure that
// follows is reported as a memory-limit failure.
type limitedMemory struct {
	limit   uint64
	buf     []byte
	refused uint64 // the largest size refused; 0 if none
}

var _ experimental.LinearMemory = (*limitedMemory)(nil)

// Reallocate implements experimental.LinearMemory. Wasm memory only grows,
// so bytes past the old length are still zero.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = max(m.refused, size)
		return nil
	}
	if size > uint64(cap(m.buf)) {
		// Grow geometrically, as append would, but never past the limit.
		c := min(max(size, 2*uint64(cap(m.buf))), m.limit)
		nb := make([]byte, size, c)
		copy(nb, m.buf)
		m.buf = nb
	} else {
		m.buf = m.buf[:size]
	}
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *limitedMemory) Free() { m.buf = nil }

// head keeps the first n bytes written to it: a guest's stderr during a
// call, quoted in errors (a Go panic or fatal error starts with its reason).
type head struct {
	n   int
	buf []byte
}

func (h *head) Write(p []byte) (int, error) {
	if room := h.n - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (h *head) Reset() { h.buf = h.buf[:0] }

// randSeed seeds every instance's random source: random_get is a fixed
// stream, so a retried batch sees the same "random" bytes.
var randSeed = [32]byte([]byte("dumpflow function sandbox, v1..."))

// newRand is an instance's random source.
func newRand() io.Reader { return rand.NewChaCha8(randSeed) }

// millisecond is the clocks' resolution and the monotonic clock's step.
const millisecond = 1_000_000
