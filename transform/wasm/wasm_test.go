package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// The seed's source record (seed 002), its target, and a success record
// that convertAndFilter drops.
const (
	seedSource  = `{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","seqId":"@kibana-highlighted-field@u3Becr8iz@/kibana-highlighted-field@*"}`
	seedTarget  = `{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}`
	seedSuccess = `{"version":1,"componentName":"trade","timestamp":1595944296,"eventId":9128500,"returnValue":0,"returnCode":0,"returnMessage":"ok","seqId":"x"}`
)

func seedRecord(offset int64, value string) *transform.Record {
	return &transform.Record{
		Topic:     "trade-log",
		Partition: 3,
		Offset:    offset,
		Timestamp: time.UnixMilli(1595944295123),
		Key:       []byte("trade"),
		Value:     []byte(value),
		Headers:   []transform.Header{{Key: "source", Value: []byte("ckafka")}},
		Route:     "trade/2020",
	}
}

// TestConvertAndFilter runs seed 002's convertAndFilter, written in Go and
// in AssemblyScript, on the seed's records.
func TestConvertAndFilter(t *testing.T) {
	for _, lang := range []struct {
		name   string
		module func(testing.TB) string
	}{
		{"go", func(t testing.TB) string { return goModule(t, goExample, "c-shared") }},
		{"assemblyscript", asModule},
	} {
		t.Run(lang.name, func(t *testing.T) {
			in := instance(t, load(t, transform.FunctionSpec{Module: lang.module(t)}))
			ctx := context.Background()

			src := seedRecord(41, seedSource)
			outs, err := in.Call(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 {
				t.Fatalf("got %d records, want 1", len(outs))
			}
			want := *src
			want.Value = []byte(seedTarget)
			if got := outs[0]; !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %v\nwant %v", show(got), show(&want))
			}

			outs, err = in.Call(ctx, seedRecord(42, seedSuccess))
			if err != nil || len(outs) != 0 {
				t.Errorf("returnCode 0: got %d records, %v; want it dropped", len(outs), err)
			}

			for _, c := range []struct{ value, want string }{
				{`{"returnCode":1,"timestamp":1,"returnMessage":"no brackets"}`, `returnMessage "no brackets": want "error[message][seqId:id]" (no "][")`},
				{`{"timestamp":1,"returnMessage":"x"}`, "returnCode: missing"},
				{`not json`, "value is not a trade log record: "},
			} {
				_, err := in.Call(ctx, seedRecord(43, c.value))
				if !errors.Is(err, ErrFunction) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: got %v, want an ErrFunction with %q", c.value, err, c.want)
				}
			}

			// The instance survives a reported error.
			if outs, err := in.Call(ctx, src); err != nil || len(outs) != 1 || string(outs[0].Value) != seedTarget {
				t.Errorf("after errors: got %v, %v", outs, err)
			}
		})
	}
}

func TestOutputs(t *testing.T) {
	in := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t)}))
	ctx := context.Background()
	r := seedRecord(7, "v")

	for _, n := range []int{0, 1, 3} {
		r.Key = []byte("many:" + string(rune('0'+n)))
		outs, err := in.Call(ctx, r)
		if err != nil {
			t.Fatalf("many:%d: %v", n, err)
		}
		if len(outs) != n {
			t.Fatalf("many:%d: got %d records", n, len(outs))
		}
		for i, o := range outs {
			v := string(rune('0' + i))
			want := transform.Record{
				Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Route: r.Route, // the input's
				Key: []byte("k" + v), Value: []byte(v), Headers: []transform.Header{{Key: "i", Value: []byte(v)}},
			}
			if !reflect.DeepEqual(*o, want) {
				t.Errorf("many:%d output %d:\ngot  %v\nwant %v", n, i, show(o), show(&want))
			}
		}
	}

	r.Key = []byte("many:1025")
	if _, err := in.Call(ctx, r); !errors.Is(err, ErrFunction) || !strings.Contains(err.Error(), "more than 1024 outputs") {
		t.Errorf("many:1025: got %v", err)
	}
	r.Key = []byte("drop")
	if outs, err := in.Call(ctx, r); err != nil || outs != nil {
		t.Errorf("drop: got %v, %v", outs, err)
	}
}

// TestRoundTrip sends records through the guest SDK's decoder and encoder:
// null and empty keys, values and header values, no timestamp, a long
// value, non-ASCII everywhere.
func TestRoundTrip(t *testing.T) {
	in := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t)}))
	for i, r := range []transform.Record{
		{Key: []byte("echo"), Value: nil},
		{Key: []byte("echo"), Value: []byte{}, Timestamp: time.UnixMilli(1)},
		{Key: []byte("echo:null header"), Value: []byte("v"), Headers: []transform.Header{{Key: "a", Value: nil}, {Key: "", Value: []byte{}}, {Key: "ключ", Value: []byte("値")}}},
		{Key: []byte("echo"), Value: []byte(strings.Repeat("x", 1<<20)), Timestamp: time.UnixMilli(1595944295123)},
	} {
		r.Topic, r.Partition, r.Offset = "主题", 2, int64(i)
		outs, err := in.Call(context.Background(), &r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if len(outs) != 1 || !reflect.DeepEqual(*outs[0], r) {
			t.Errorf("record %d:\ngot  %v\nwant %v", i, show(outs...), show(&r))
		}
	}
}

func TestErrors(t *testing.T) {
	in := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t)}))
	ctx := context.Background()
	call := func(key string) error {
		_, err := in.Call(ctx, &transform.Record{Key: []byte(key), Value: []byte("v")})
		return err
	}
	for _, c := range []struct {
		key  string
		kind error
		want string
	}{
		{"error:bad record: field x is missing", ErrFunction, "function returned an error: bad record: field x is missing"},
		{"error:", ErrFunction, "function returned an error: error with no message"},
		{"error:" + strings.Repeat("é", 400), ErrFunction, "…(800 bytes)"},
		{"panic:boom", ErrFunction, "function returned an error: panic: boom"},
		{"nosuchverb", ErrFunction, `unknown verb "nosuchverb"`},
		{"exit:3", ErrExit, "function exited: exit code 3"},
	} {
		err := call(c.key)
		var ce *CallError
		if !errors.As(err, &ce) || !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %v with %q", c.key, err, c.kind, c.want)
		}
		// Every failure leaves the instance usable (after an exit, a new
		// module: its calls count restarts).
		if err := call("calls"); err != nil {
			t.Errorf("%s: the next call failed: %v", c.key, err)
		}
	}
}

func TestTimeLimit(t *testing.T) {
	in := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t), Timeout: transform.Duration(300 * time.Millisecond)}))
	ctx := context.Background()
	start := time.Now()
	_, err := in.Call(ctx, &transform.Record{Key: []byte("loop")})
	if !errors.Is(err, ErrTimeLimit) || err.Error() != "function exceeded its time limit: limit 300ms" {
		t.Fatalf("loop: got %v, want the time limit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("loop stopped after %v", d)
	}
	// The next record gets a new module.
	outs, err := in.Call(ctx, &transform.Record{Key: []byte("calls")})
	if err != nil || string(outs[0].Value) != "1" {
		t.Errorf("after the time limit: got %v, %v; want a fresh module", outs, err)
	}

	// The caller's own cancellation is not the record's fault.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = in.Call(cctx, &transform.Record{Key: []byte("loop")})
	var ce *CallError
	if !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("cancelled: got %v, want context.Canceled and no CallError", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	in := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t), MemoryLimit: 32 << 20}))
	ctx := context.Background()
	if _, err := in.Call(ctx, &transform.Record{Key: []byte("alloc:4")}); err != nil {
		t.Fatalf("alloc:4 under a 32MiB limit: %v", err)
	}
	_, err := in.Call(ctx, &transform.Record{Key: []byte("alloc:64")})
	if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), "function exceeded its memory limit: limit 32MiB, the guest asked for") {
		t.Fatalf("alloc:64: got %v, want the memory limit", err)
	}
	if !strings.Contains(err.Error(), "out of memory") {
		t.Errorf("alloc:64: %v: want the Go runtime's stderr", err)
	}
	if _, err := in.Call(ctx, &transform.Record{Key: []byte("alloc:4")}); err != nil {
		t.Errorf("alloc:4 after the failure: %v", err)
	}
}

func TestFilesystem(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	if err := os.Mkdir(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(allowed, "geo.txt")
	secret := filepath.Join(dir, "secret.txt")
	for _, p := range []string{file, secret} {
		if err := os.WriteFile(p, []byte("contents of "+filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(secret, filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(in *Instance, key string) (string, error) {
		outs, err := in.Call(ctx, &transform.Record{Key: []byte(key)})
		if err != nil {
			return "", err
		}
		return string(outs[0].Value), nil
	}

	closed := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t)}))
	if _, err := call(closed, "read:"+file); !errors.Is(err, ErrFunction) {
		t.Errorf("no allowFS: reading %s gave %v, want an error", file, err)
	}

	open := instance(t, load(t, transform.FunctionSpec{Module: guestModule(t), AllowFS: []string{allowed}}))
	if got, err := call(open, "read:"+file); err != nil || got != "contents of geo.txt" {
		t.Errorf("allowFS: reading %s gave %q, %v", file, got, err)
	}
	for _, key := range []string{
		"read:" + secret,                             // outside the mount
		"read:" + allowed + "/../secret.txt",         // escape by ..
		"read:" + filepath.Join(allowed, "link"),     // escape by a symbolic link
		"write:" + filepath.Join(allowed, "new.txt"), // read-only
		"write:" + filepath.Join(allowed, "geo.txt"), // read-only
	} {
		if got, err := call(open, key); !errors.Is(err, ErrFunction) {
			t.Errorf("allowFS: %s gave %q, %v; want an error", key, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(allowed, "new.txt")); err == nil {
		t.Error("the guest created a file in a read-only directory")
	}
}

// TestFreshInstancePerBatch: state a function keeps in globals lasts for
// one batch (one instance), never into the next.
func TestFreshInstancePerBatch(t *testing.T) {
	f := load(t, transform.FunctionSpec{Module: guestModule(t)})
	ctx := context.Background()
	for batch := range 2 {
		in := instance(t, f)
		for i := 1; i <= 3; i++ {
			outs, err := in.Call(ctx, &transform.Record{Key: []byte("calls")})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(outs[0].Value), string(rune('0'+i)); got != want {
				t.Errorf("batch %d record %d: the instance had seen %s records, want %s", batch, i, got, want)
			}
		}
		in.Close(ctx)
		if _, err := in.Call(ctx, &transform.Record{Key: []byte("calls")}); err == nil {
			t.Error("a closed instance took a call")
		}
	}
}

// TestDeterministicSandbox: the clock reads the record's timestamp, random
// sources give the same bytes in every instance, env comes from the spec.
func TestDeterministicSandbox(t *testing.T) {
	f := load(t, transform.FunctionSpec{Module: guestModule(t), Env: map[string]string{"REGION": "cn-hangzhou"}})
	ctx := context.Background()
	call := func(in *Instance, r transform.Record) string {
		t.Helper()
		outs, err := in.Call(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		return string(outs[0].Value)
	}
	a, b := instance(t, f), instance(t, f)
	ts := time.UnixMilli(1595944295123)
	if got := call(a, transform.Record{Key: []byte("time"), Timestamp: ts}); got != "1595944295123" {
		t.Errorf("time.Now in the guest: %s, want the record's timestamp", got)
	}
	if got := call(a, transform.Record{Key: []byte("time")}); got != "0" {
		t.Errorf("time.Now in the guest, record without timestamp: %s, want 0", got)
	}
	ra, rb := call(a, transform.Record{Key: []byte("rand")}), call(b, transform.Record{Key: []byte("rand")})
	if ra != rb {
		t.Errorf("random in two instances: %q and %q, want the same", ra, rb)
	}
	if got := call(b, transform.Record{Key: []byte("env:REGION")}); got != "cn-hangzhou" {
		t.Errorf("env REGION: %q", got)
	}
	if got := call(b, transform.Record{Key: []byte("env:HOME")}); got != "" {
		t.Errorf("env HOME: %q, want the host's environment hidden", got)
	}
}

func TestLoad(t *testing.T) {
	h, err := testHost()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	guest := guestModule(t)

	a, err := h.Load(transform.FunctionSpec{Module: guest})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Load(transform.FunctionSpec{Module: guest, MemoryLimit: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := a.(*Function), b.(*Function)
	if fa.compiled != fb.compiled {
		t.Error("the same module was compiled twice")
	}
	if !strings.HasPrefix(fa.Hash(), "sha256:") || fa.Hash() != fb.Hash() || len(fa.Hash()) != 71 {
		t.Errorf("hashes %q and %q", fa.Hash(), fb.Hash())
	}

	for _, c := range []struct {
		name string
		spec transform.FunctionSpec
		want string
	}{
		{"no module", transform.FunctionSpec{}, "module: required"},
		{"missing file", transform.FunctionSpec{Module: filepath.Join(dir, "none.wasm")}, "no such file"},
		{"not wasm", transform.FunctionSpec{Module: write("text.wasm", []byte("hello"))}, "not a valid WebAssembly module"},
		{"empty module", transform.FunctionSpec{Module: write("empty.wasm", []byte("\x00asm\x01\x00\x00\x00"))}, "exports no dumpflow_abi_version_1"},
		{"memory too small", transform.FunctionSpec{Module: guest, MemoryLimit: 64 << 10}, "is more than memoryLimit 64KiB"},
		{"memory not a page", transform.FunctionSpec{Module: guest, MemoryLimit: 1000}, "memoryLimit 1000: must be between 64KiB (one wasm page) and 4GiB"},
		{"negative timeout", transform.FunctionSpec{Module: guest, Timeout: -1}, "timeout -1ns: must be positive"},
		{"relative dir", transform.FunctionSpec{Module: guest, AllowFS: []string{"data"}}, `allowFS "data": must be an absolute path`},
		{"file as dir", transform.FunctionSpec{Module: guest, AllowFS: []string{guest}}, "not a directory"},
		{"bad env", transform.FunctionSpec{Module: guest, Env: map[string]string{"A=B": "c"}}, `env "A=B": a name must be non-empty without '='`},
	} {
		_, err := h.Load(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}

	// The process-wide loader shares the compiled module.
	if f, err := Load(transform.FunctionSpec{Module: guest}); err != nil || f.(*Function).compiled != fa.compiled {
		t.Errorf("Load: %v, %v", f, err)
	}
}

// show renders records for a failure message, values cut short.
func show(rs ...*transform.Record) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "{%s/%d@%d ts=%v key=%q value=%s headers=[", r.Topic, r.Partition, r.Offset, r.Timestamp, r.Key, transform.ShortPrefix(r.Value, 80))
		if r.Value == nil {
			b.WriteString("(null)")
		}
		for _, h := range r.Headers {
			fmt.Fprintf(&b, "%q=%q ", h.Key, h.Value)
		}
		fmt.Fprintf(&b, "] route=%q fields=%v}", r.Route, r.Fields != nil)
	}
	return b.String()
}

// TestConcurrentInstances: one Function serves batches on several
// goroutines at once, each with its own instance.
func TestConcurrentInstances(t *testing.T) {
	f := load(t, transform.FunctionSpec{Module: guestModule(t)})
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			errs <- func() error {
				in, err := f.NewInstance(ctx)
				if err != nil {
					return err
				}
				defer in.Close(ctx)
				for i := 1; i <= 20; i++ {
					outs, err := in.Call(ctx, &transform.Record{Key: []byte("calls")})
					if err != nil {
						return err
					}
					if got := string(outs[0].Value); got != fmt.Sprint(i) {
						return fmt.Errorf("record %d: the instance had seen %s", i, got)
					}
				}
				return nil
			}()
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
