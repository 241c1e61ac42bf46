package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/kafka"
)

// tradeTopic is the topic of seed 002's examples
// (deploy/examples/oss-convert-and-filter*.yaml).
const tradeTopic = "trade-log"

// tradeSamples is seed 002's sample trade log, under the examples.
var tradeSamples = filepath.Join("functions", "convert-and-filter", "sample.jsonl")

// produceTradeLog creates the trade-log topic of the transform examples
// and, while it is empty, produces seed 002's sample trade-log records into
// it (one the examples convert, one they filter out). A second demo run
// adds nothing.
func produceTradeLog(ctx context.Context, kc *kafka.Client, examples string) error {
	if err := kc.EnsureTopic(ctx, tradeTopic, 1); err != nil {
		return err
	}
	bounds, err := kc.Bounds(ctx, tradeTopic)
	if err != nil {
		return err
	}
	for _, b := range bounds {
		if b.End > 0 {
			return nil
		}
	}
	f, err := os.Open(filepath.Join(examples, tradeSamples))
	if err != nil {
		return fmt.Errorf("the trade-log samples of the transform examples: %w", err)
	}
	defer f.Close()
	var recs []*kgo.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			recs = append(recs, &kgo.Record{Topic: tradeTopic, Value: []byte(line), Timestamp: time.Now()})
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	say("producing %d seed 002 trade-log records to topic %q ...", len(recs), tradeTopic)
	return kc.Kgo().ProduceSync(ctx, recs...).FirstErr()
}

// demoFunctions builds the WebAssembly module of every example function
// step whose module is not on this machine — functions/<name>/go for
// module <name>.wasm, with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared —
// into <dataDir>/functions, and points the step at it. A connector whose
// module cannot be built is left out of the demo, saying why.
func demoFunctions(ctx context.Context, specs []*connector.Spec, examples, dataDir string) []*connector.Spec {
	var out []*connector.Spec
	for _, s := range specs {
		ok := true
		for i := range s.Transforms {
			fn := s.Transforms[i].Function
			if fn == nil {
				continue
			}
			if _, err := os.Stat(fn.Module); err == nil {
				continue
			}
			name := strings.TrimSuffix(filepath.Base(fn.Module), ".wasm")
			built := filepath.Join(dataDir, "functions", name+".wasm")
			if err := buildFunction(ctx, filepath.Join(examples, "functions", name, "go"), built); err != nil {
				say("leaving connector %s out: its function %s is not on this machine and could not be built: %v", s.Name, fn.Module, err)
				ok = false
				break
			}
			fn.Module = built
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// buildFunction builds the Go function in dir into out, unless out exists.
func buildFunction(ctx context.Context, dir, out string) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no Go source for it in %s", dir)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	say("building the example function %s (GOOS=wasip1 GOARCH=wasm) ...", abs)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildmode=c-shared", "-o", abs+".tmp", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, strings.TrimSpace(string(msg)))
	}
	return os.Rename(abs+".tmp", abs)
}

// createWindowTables runs <examples>/window/tables.sql (the tables of the
// MaxCompute window examples, CREATE TABLE IF NOT EXISTS) against the
// stack's MaxCompute, so that `starter window run` and `starter schedule`
// work on the examples at once.
func createWindowTables(endpoint, project, examples string) error {
	sqlFile := filepath.Join(examples, "window", "tables.sql")
	b, err := os.ReadFile(sqlFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	o := odps.NewOdps(account.NewAliyunAccount(localstack.LocalAccessKeyID, localstack.LocalAccessKeySecret), endpoint)
	o.SetDefaultProjectName(project)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";") {
		if stmt = strings.TrimSpace(stmt); stmt == "" {
			continue
		}
		ins, err := o.ExecSQl(stmt)
		if err == nil {
			err = ins.WaitForSuccess()
		}
		if err != nil {
			return fmt.Errorf("%s: %q: %w", sqlFile, stmt, err)
		}
	}
	return nil
}
