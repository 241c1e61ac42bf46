package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/workflows"
)

const (
	tblProject = "connector_test"
	tblTopic   = "maxcompute-test-input"
)

// tableFixture is a MaxCompute emulator holding the seed's test_kafka table
// with a few rows, and a spec file for connector kafka-maxcompute-sink.
type tableFixture struct {
	spec     *connector.Spec
	specFile string
	emuURL   string
}

func newTableFixture(t *testing.T) *tableFixture {
	t.Helper()
	t.Setenv(connector.CredentialsEnvPrefix("local")+"ACCESS_KEY_ID", "test-ak")
	t.Setenv(connector.CredentialsEnvPrefix("local")+"ACCESS_KEY_SECRET", "test-sk")
	emu, err := odpsemu.New(odpsemu.Options{Dir: t.TempDir(), Projects: []string{tblProject}, AccessKeyID: "test-ak", AccessKeySecret: "test-sk"})
	require.NoError(t, err)
	srv := httptest.NewServer(emu)
	t.Cleanup(func() { srv.Close(); _ = emu.Close() })

	yaml := `name: kafka-maxcompute-sink
kafka:
  brokers: ["127.0.0.1:9092"]
  topic: ` + tblTopic + `
sink:
  type: maxcompute
  maxcompute:
    endpoint: ` + srv.URL + `/api
    tunnelEndpoint: ` + srv.URL + `
    project: ` + tblProject + `
    table: test_kafka
    createTable: true
    credentials: local
    format: BINARY
`
	file := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o644))
	spec, err := connector.Load(file)
	require.NoError(t, err)

	// Write rows as the connector would: two in 14:00, one with a NULL key,
	// Chinese text and raw bytes, and one in 15:00 (GMT+08:00).
	creds, err := connector.ResolveCredentials("local")
	require.NoError(t, err)
	s, err := maxcompute.New(spec, creds)
	require.NoError(t, err)
	gmt8 := time.FixedZone("GMT+08:00", 8*3600)
	at14, at15 := time.Date(2020, 11, 17, 14, 5, 0, 0, gmt8), time.Date(2020, 11, 17, 15, 0, 0, 0, gmt8)
	recs := []*transform.Record{
		{Topic: tblTopic, Offset: 0, Timestamp: at14, Key: []byte("1"), Value: []byte("1")},
		{Topic: tblTopic, Offset: 1, Timestamp: at14, Value: []byte("你好")},
		{Topic: tblTopic, Offset: 2, Timestamp: at14, Key: []byte("k2"), Value: []byte{0xff, '\n'}},
		{Topic: tblTopic, Offset: 3, Timestamp: at15, Key: []byte("k3"), Value: []byte("v3")},
	}
	ctx := context.Background()
	id := sink.BatchID{Connector: spec.Name, Topic: tblTopic, First: 0, End: 4}
	prep, err := s.Prepare(ctx, id, []string{"pt=11-17-2020 14", "pt=11-17-2020 15"}, nil)
	require.NoError(t, err)
	b, err := s.Begin(ctx, id, prep)
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, b.Add(ctx, r))
	}
	_, err = b.Commit(ctx)
	require.NoError(t, err)
	return &tableFixture{spec: spec, specFile: file, emuURL: srv.URL}
}

// run runs a table command and returns its output, notes and error.
func runTableCmd(args ...string) (string, string, error) {
	var out, errw bytes.Buffer
	err := runTable(context.Background(), args, &out, &errw)
	return out.String(), errw.String(), err
}

func TestTableWithSpecFile(t *testing.T) {
	f := newTableFixture(t)
	name := f.spec.Name

	t.Run("partitions", func(t *testing.T) {
		out, _, err := runTableCmd("partitions", name, "-f", f.specFile)
		require.NoError(t, err)
		require.Equal(t, "pt=11-17-2020 14\npt=11-17-2020 15\n", out)

		out, _, err = runTableCmd("partitions", "--json", "-f", f.specFile) // NAME may be left out with -f
		require.NoError(t, err)
		var js partitionsJSON
		require.NoError(t, json.Unmarshal([]byte(out), &js))
		require.Equal(t, partitionsJSON{Connector: name, Project: tblProject, Table: "test_kafka",
			Partitions: []string{"pt=11-17-2020 14", "pt=11-17-2020 15"}}, js)
	})

	t.Run("rows", func(t *testing.T) {
		want := `+-----------------------+-----------+--------+------+----------+---------------+
| topic                 | partition | offset | key  | value    | pt            |
+-----------------------+-----------+--------+------+----------+---------------+
| maxcompute-test-input | 0         | 0      | 1    | 1        | 11-17-2020 14 |
| maxcompute-test-input | 0         | 1      | NULL | 你好     | 11-17-2020 14 |
| maxcompute-test-input | 0         | 2      | k2   | "\xff\n" | 11-17-2020 14 |
+-----------------------+-----------+--------+------+----------+---------------+
`
		// Flags after NAME, and every accepted form of the partition.
		for _, part := range []string{"pt=11-17-2020 14", "pt='11-17-2020 14'", `pt="11-17-2020 14"`, "11-17-2020 14"} {
			out, notes, err := runTableCmd("rows", name, "--partition", part, "-f", f.specFile)
			require.NoError(t, err, part)
			require.Equal(t, want, out, part)
			require.Empty(t, notes)
		}

		out, notes, err := runTableCmd("rows", "-f", f.specFile, name, "--partition", "pt=11-17-2020 14", "--limit", "1")
		require.NoError(t, err)
		require.Equal(t, 5, strings.Count(out, "\n"), "rule, header, rule, one row, rule:\n%s", out)
		require.Contains(t, out, "| maxcompute-test-input | 0         | 0      | 1   | 1     | 11-17-2020 14 |")
		require.Contains(t, notes, "first 1 rows of pt=11-17-2020 14 shown; --limit 0 prints all")

		out, _, err = runTableCmd("rows", name, "-f", f.specFile, "--partition", "pt=11-17-2020 14", "--json", "--limit", "0")
		require.NoError(t, err)
		var js rowsJSON
		require.NoError(t, json.Unmarshal([]byte(out), &js))
		require.Equal(t, []string{"topic", "partition", "offset", "key", "value", "pt"}, js.Columns)
		require.False(t, js.Truncated)
		require.Equal(t, "pt=11-17-2020 14", js.Partition)
		require.Equal(t, [][]any{
			{tblTopic, 0.0, 0.0, "1", "1", "11-17-2020 14"},
			{tblTopic, 0.0, 1.0, nil, "你好", "11-17-2020 14"},
			{tblTopic, 0.0, 2.0, "k2", "/wo=", "11-17-2020 14"}, // not UTF-8: base64
		}, js.Rows)
	})

	t.Run("show", func(t *testing.T) {
		out, _, err := runTableCmd("show", name, "-f", f.specFile)
		require.NoError(t, err)
		for _, want := range []string{
			"Table:             connector_test.test_kafka\n",
			"Connector:         kafka-maxcompute-sink (mode DEFAULT, format BINARY, partition HOUR, time zone GMT+08:00)\n",
			"\nNative Columns:\n+-----------+--------+----------+---------+\n| Field     | Type   | Nullable | Comment |\n",
			"| topic     | string | YES      |         |\n| partition | bigint | YES      |         |\n| offset    | bigint | YES      |         |\n",
			"\nPartition Columns:\n+-------+--------+----------+---------+\n| Field | Type   | Nullable | Comment |\n+-------+--------+----------+---------+\n| pt    | string | YES      |         |\n",
		} {
			require.Contains(t, out, want)
		}
		require.Regexp(t, `RecordCount:\s+4\n`, out) // the emulator knows; real MaxCompute may say unknown

		out, _, err = runTableCmd("show", name, "-f", f.specFile, "--json")
		require.NoError(t, err)
		var js tableInfoJSON
		require.NoError(t, json.Unmarshal([]byte(out), &js))
		require.Equal(t, name, js.Connector)
		require.Equal(t, "test_kafka", js.Name)
		require.Len(t, js.Columns, 5)
		require.Equal(t, maxcompute.Column{Name: "pt", Type: "STRING", Nullable: true}, js.PartitionColumns[0])
	})
}

func TestTableErrors(t *testing.T) {
	f := newTableFixture(t)
	name := f.spec.Name
	writeSpec := func(t *testing.T, edit func(string) string) string {
		b, err := os.ReadFile(f.specFile)
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "spec.yaml")
		require.NoError(t, os.WriteFile(file, []byte(edit(string(b))), 0o644))
		return file
	}
	ossSpec := filepath.Join(t.TempDir(), "oss.yaml")
	require.NoError(t, os.WriteFile(ossSpec, []byte(`name: logs-oss
kafka: {brokers: ["127.0.0.1:9092"], topic: logs}
sink: {type: oss, oss: {endpoint: "http://127.0.0.1:1", bucket: dumpflow, credentials: local}}
`), 0o644))

	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"missing partition", []string{"rows", name, "-f", f.specFile, "--partition", "pt=01-01-2021 00"},
			[]string{"connector kafka-maxcompute-sink", "table connector_test.test_kafka", "partition pt=01-01-2021 00", "NoSuchPartition", "starter table partitions kafka-maxcompute-sink"}},
		{"no --partition", []string{"rows", name, "-f", f.specFile}, []string{"--partition is required"}},
		{"negative limit", []string{"rows", name, "-f", f.specFile, "--partition", "x", "--limit", "-1"}, []string{"--limit -1"}},
		{"missing table", []string{"show", name, "-f", writeSpec(t, func(s string) string {
			return strings.Replace(strings.Replace(s, "test_kafka", "nope", 1), "createTable: true", "createTable: false", 1)
		})}, []string{"connector kafka-maxcompute-sink", "connector_test.nope", "does not exist"}},
		{"missing credentials", []string{"partitions", name, "-f", writeSpec(t, func(s string) string {
			return strings.Replace(s, "credentials: local", "credentials: prod", 1)
		})}, []string{"connector kafka-maxcompute-sink", "connector_test.test_kafka", `credentials "prod" not found`, "DUMPFLOW_CRED_PROD_ACCESS_KEY_ID"}},
		{"oss connector", []string{"show", "logs-oss", "-f", ossSpec}, []string{"connector logs-oss writes to OSS (bucket dumpflow), not MaxCompute"}},
		{"name mismatch", []string{"show", "other", "-f", f.specFile}, []string{"describes connector kafka-maxcompute-sink, not other"}},
		{"unknown command", []string{"drop", name}, []string{`unknown table command "drop"`}},
		{"two names", []string{"show", "a", "b"}, []string{"want NAME, got 2 argument(s)"}},
		{"no temporal", []string{"show", name, "--temporal", "127.0.0.1:1"}, []string{"127.0.0.1:1", "pass -f spec.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.name == "no temporal" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
			}
			var out, errw bytes.Buffer
			err := runTable(ctx, tc.args, &out, &errw)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Empty(t, out.String())
		})
	}

	_, notes, err := runTableCmd()
	require.True(t, errors.Is(err, flag.ErrHelp))
	require.Contains(t, notes, "usage: starter table COMMAND NAME")
}

// TestTableAsksTheWorkflow gets the spec from the running connector
// workflow's spec query, as the CLI does without -f. A stand-in workflow
// registered under the connector's name answers the query.
func TestTableAsksTheWorkflow(t *testing.T) {
	f := newTableFixture(t)
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	spec := *f.spec
	ts.NewWorker(workflows.TaskQueue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.ConnectorInput) error {
			spec, err := connector.ParseJSON(in.Spec)
			if err != nil {
				return err
			}
			if err := workflow.SetQueryHandler(ctx, workflows.QuerySpec, func() (connector.Spec, error) { return *spec, nil }); err != nil {
				return err
			}
			return workflow.Await(ctx, func() bool { return false })
		}, workflow.RegisterOptions{Name: workflows.ConnectorName})
	})
	_, err := ts.GetDefaultClient().ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue,
	}, workflows.ConnectorName, workflows.NewInput(&spec))
	require.NoError(t, err)

	tflags := []string{"--temporal", ts.GetFrontendHostPort(), "--namespace", ts.GetDefaultNamespace()}
	out, _, err := runTableCmd(append([]string{"partitions", spec.Name}, tflags...)...)
	require.NoError(t, err)
	require.Equal(t, "pt=11-17-2020 14\npt=11-17-2020 15\n", out)

	out, _, err = runTableCmd(append([]string{"rows", spec.Name, "--partition", "pt=11-17-2020 15"}, tflags...)...)
	require.NoError(t, err)
	require.Contains(t, out, "| maxcompute-test-input | 0         | 3      | k3  | v3    | 11-17-2020 15 |\n")

	_, _, err = runTableCmd(append([]string{"show", "no-such-connector"}, tflags...)...)
	require.ErrorContains(t, err, "no connector no-such-connector: there is no workflow connector-no-such-connector in this namespace")
}
