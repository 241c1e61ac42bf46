package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
)

// starter table show|partitions|rows inspects a MaxCompute connector's
// table through the SDK (package sink/maxcompute), so the same commands work
// against MaxCompute and the local emulator:
//
//	starter table show NAME                  like `desc t`
//	starter table partitions NAME            like `show partitions t`
//	starter table rows NAME --partition P    like `select * from t where pt="..."`
//
// NAME is a connector: its spec comes from the running workflow (the spec
// query), or from -f spec.yaml without Temporal. Credentials are resolved
// like a worker resolves them (connector.ResolveCredentials).

// tableQueryTimeout bounds the spec query: a connector whose worker is down
// never answers.
const tableQueryTimeout = 30 * time.Second

// tableSubcommands are the table commands, for usage.
var tableSubcommands = []subcommand{
	{"show", "NAME", "describe the table: columns, types, partition columns, record count (like desc t)"},
	{"partitions", "NAME", "list the table's partitions, one pt=... per line (like show partitions t)"},
	{"rows", "NAME --partition 'pt=11-17-2020 14'", "print a partition's rows (like select * from t where pt=...)"},
}

func cmdTable(ctx context.Context, args []string) error {
	return runTable(ctx, args, os.Stdout, os.Stderr)
}

func tableUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: starter table COMMAND NAME [flags]\n\ncommands:\n")
	for _, c := range tableSubcommands {
		fmt.Fprintf(w, "  %-11s %-38s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nNAME is a connector whose sink is MaxCompute; its spec is asked of the running\n"+
		"connector workflow, or read with -f spec.yaml (then NAME may be left out).\n"+
		"Run 'starter table COMMAND -h' for a command's flags.\n")
}

// tableCmd is one parsed table command.
type tableCmd struct {
	sub       string
	g         globals
	file      string
	name      string
	partition string // rows
	limit     int    // rows
}

// runTable runs a table command, writing its output to out and notes to
// errw.
func runTable(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		tableUsage(errw)
		return flag.ErrHelp
	}
	tc := tableCmd{sub: args[0]}
	fs, usageArgs, err := subFlags("table", tc.sub, tableSubcommands, tableUsage, errw)
	if err != nil {
		return err
	}
	tc.g.register(fs)
	fs.StringVar(&tc.file, "f", "", "read the connector spec from this file instead of asking the running connector")
	if tc.sub == "rows" {
		fs.StringVar(&tc.partition, "partition", "", "the partition to read, e.g. 'pt=11-17-2020 14' (required; see 'starter table partitions NAME')")
		fs.IntVar(&tc.limit, "limit", 100, "print at most this many rows (0: all)")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1:
		tc.name = pos[0]
	case len(pos) == 0 && tc.file != "":
	default:
		return fmt.Errorf("want %s, got %d argument(s)", usageArgs, len(pos))
	}
	if tc.sub == "rows" {
		if tc.partition == "" {
			return errors.New("--partition is required, e.g. --partition 'pt=11-17-2020 14' (see 'starter table partitions NAME')")
		}
		if tc.limit < 0 {
			return fmt.Errorf("--limit %d: must be 0 (all) or more", tc.limit)
		}
		if !strings.Contains(tc.partition, "=") {
			tc.partition = maxcompute.PartitionSpec(tc.partition) // a bare value: "11-17-2020 14"
		}
	}

	spec, err := tableSpec(ctx, &tc.g, tc.name, tc.file)
	if err != nil {
		return err
	}
	mc := spec.Sink.MaxCompute
	creds, err := connector.ResolveCredentials(mc.Credentials)
	if err != nil {
		return fmt.Errorf("connector %s, table %s.%s: sink.maxcompute.credentials: %w", spec.Name, mc.Project, mc.Table, err)
	}
	where := func(err error) error {
		return fmt.Errorf("connector %s, table %s.%s: %w", spec.Name, mc.Project, mc.Table, err)
	}
	info, err := maxcompute.ShowTable(ctx, spec, creds)
	if err != nil {
		return where(err)
	}
	switch tc.sub {
	case "show":
		return printTableInfo(out, spec, info, tc.g.json)
	case "partitions":
		parts, err := maxcompute.ListPartitions(ctx, spec, creds)
		if err != nil {
			return where(err)
		}
		if tc.g.json {
			return writeJSON(out, partitionsJSON{Connector: spec.Name, Project: mc.Project, Table: mc.Table, Partitions: nonNil(parts)})
		}
		for _, p := range parts {
			fmt.Fprintln(out, p)
		}
		if len(parts) == 0 {
			fmt.Fprintf(errw, "table %s.%s has no partitions yet\n", mc.Project, mc.Table)
		}
		return nil
	default:
		return tableRows(ctx, out, errw, &tc, spec, creds, info)
	}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (starter table rows NAME --partition P), which
// flag.FlagSet.Parse alone stops at. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// tableSpec finds connector name's spec: from file, else by asking its
// workflow. The sink must be MaxCompute.
func tableSpec(ctx context.Context, g *globals, name, file string) (*connector.Spec, error) {
	var spec *connector.Spec
	if file != "" {
		s, err := connector.Load(file)
		if err != nil {
			return nil, err
		}
		if name != "" && s.Name != name {
			return nil, fmt.Errorf("%s describes connector %s, not %s", file, s.Name, name)
		}
		spec = s
	} else {
		c, err := dial(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("%w (or pass -f spec.yaml to inspect the table without Temporal)", err)
		}
		defer c.Close()
		qctx, cancel := context.WithTimeout(ctx, tableQueryTimeout)
		defer cancel()
		s, err := querySpec(qctx, c, name)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: no answer to the spec query within %s; is a worker running? (or pass -f spec.yaml)", err, tableQueryTimeout)
			}
			return nil, err
		}
		spec = s
	}
	spec.Default()
	switch {
	case spec.Sink.Type == connector.SinkOSS && spec.Sink.OSS != nil:
		return nil, fmt.Errorf("connector %s writes to OSS (bucket %s), not MaxCompute: 'starter table' inspects MaxCompute tables; use 'starter verify %s' for an OSS connector",
			spec.Name, spec.Sink.OSS.Bucket, spec.Name)
	case spec.Sink.Type != connector.SinkMaxCompute || spec.Sink.MaxCompute == nil:
		return nil, fmt.Errorf("connector %s has sink type %q, not maxcompute: 'starter table' inspects MaxCompute tables", spec.Name, spec.Sink.Type)
	}
	return spec, nil
}

type tableInfoJSON struct {
	Connector string `json:"connector"`
	maxcompute.TableInfo
}

type partitionsJSON struct {
	Connector  string   `json:"connector"`
	Project    string   `json:"project"`
	Table      string   `json:"table"`
	Partitions []string `json:"partitions"`
}

type rowsJSON struct {
	Connector string   `json:"connector"`
	Project   string   `json:"project"`
	Table     string   `json:"table"`
	Partition string   `json:"partition"`
	Columns   []string `json:"columns"`
	// Rows hold the values in column order, the partition column last.
	// NULL is null, BINARY and strings that are not valid UTF-8 are base64,
	// DATETIME and TIMESTAMP are RFC 3339.
	Rows [][]any `json:"rows"`
	// Truncated is set when --limit stopped before the partition's end.
	Truncated bool `json:"truncated"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTableInfo prints info like `desc t`: a header, then the native and
// the partition columns as tables.
func printTableInfo(w io.Writer, spec *connector.Spec, info maxcompute.TableInfo, asJSON bool) error {
	if asJSON {
		info.Columns, info.PartitionColumns = nonNil(info.Columns), nonNil(info.PartitionColumns)
		return writeJSON(w, tableInfoJSON{Connector: spec.Name, TableInfo: info})
	}
	mc := spec.Sink.MaxCompute
	loc := specLocation(spec)
	records := "unknown"
	if info.RecordCount >= 0 {
		records = strconv.FormatInt(info.RecordCount, 10)
	}
	modified := "-"
	if !info.LastModified.IsZero() {
		modified = info.LastModified.In(loc).Format("2006-01-02 15:04:05 -07:00")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Table:\t%s.%s\n", info.Project, info.Name)
	fmt.Fprintf(tw, "Connector:\t%s (mode %s, format %s, partition %s, time zone %s)\n", spec.Name, mc.Mode, mc.Format, mc.Partition, mc.TimeZone)
	fmt.Fprintf(tw, "TableComment:\t%s\n", info.Comment)
	fmt.Fprintf(tw, "RecordCount:\t%s\n", records)
	fmt.Fprintf(tw, "Size:\t%s (%d bytes)\n", human(info.Size), info.Size)
	fmt.Fprintf(tw, "LastModifiedTime:\t%s\n", modified)
	if err := tw.Flush(); err != nil {
		return err
	}
	colRows := func(cols []maxcompute.Column) [][]string {
		rows := make([][]string, len(cols))
		for i, c := range cols {
			null := "YES"
			if !c.Nullable {
				null = "NO"
			}
			rows[i] = []string{c.Name, strings.ToLower(c.Type), null, c.Comment}
		}
		return rows
	}
	hdr := []string{"Field", "Type", "Nullable", "Comment"}
	fmt.Fprintln(w, "\nNative Columns:")
	if err := writeGrid(w, hdr, colRows(info.Columns)); err != nil {
		return err
	}
	if len(info.PartitionColumns) > 0 {
		fmt.Fprintln(w, "\nPartition Columns:")
		return writeGrid(w, hdr, colRows(info.PartitionColumns))
	}
	return nil
}

// errEnough stops ReadRows once --limit rows are in.
var errEnough = errors.New("enough rows")

// tableRows prints up to tc.limit rows of tc.partition.
func tableRows(ctx context.Context, out, errw io.Writer, tc *tableCmd, spec *connector.Spec, creds connector.Credentials, info maxcompute.TableInfo) error {
	mc := spec.Sink.MaxCompute
	cols := make([]string, 0, len(info.Columns)+len(info.PartitionColumns))
	for _, c := range info.Columns {
		cols = append(cols, c.Name)
	}
	for _, c := range info.PartitionColumns {
		cols = append(cols, c.Name)
	}
	var rows [][]any
	truncated := false
	err := maxcompute.ReadRows(ctx, spec, creds, tc.partition, func(row []any) error {
		if tc.limit > 0 && len(rows) == tc.limit {
			truncated = true
			return errEnough
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		err = fmt.Errorf("connector %s, table %s.%s, partition %s: %w", spec.Name, mc.Project, mc.Table, tc.partition, err)
		var pe *sink.PermanentError
		if errors.As(err, &pe) && pe.Type == maxcompute.ErrNoSuchPartition {
			err = fmt.Errorf("%w (list them with 'starter table partitions %s')", err, spec.Name)
		}
		return err
	}
	if tc.g.json {
		js := rowsJSON{Connector: spec.Name, Project: mc.Project, Table: mc.Table, Partition: tc.partition, Columns: cols, Rows: make([][]any, len(rows)), Truncated: truncated}
		for i, row := range rows {
			js.Rows[i] = make([]any, len(row))
			for j, v := range row {
				js.Rows[i][j] = jsonValue(v)
			}
		}
		return writeJSON(out, js)
	}
	loc := specLocation(spec)
	cells := make([][]string, len(rows))
	for i, row := range rows {
		cells[i] = make([]string, len(row))
		for j, v := range row {
			cells[i][j] = cellText(v, loc)
		}
	}
	if err := writeGrid(out, cols, cells); err != nil {
		return err
	}
	if truncated {
		fmt.Fprintf(errw, "first %d rows of %s shown; --limit 0 prints all\n", tc.limit, tc.partition)
	}
	return nil
}

// specLocation is the spec's time zone, for DATETIME values and times.
func specLocation(spec *connector.Spec) *time.Location {
	if loc, err := connector.ParseTimeZone(spec.Sink.MaxCompute.TimeZone); err == nil {
		return loc
	}
	return time.UTC
}

// jsonValue makes a value JSON-safe without losing bytes: strings that are
// not valid UTF-8 become []byte, which encoding/json writes as base64.
func jsonValue(v any) any {
	if s, ok := v.(string); ok && !utf8.ValidString(s) {
		return []byte(s)
	}
	return v
}

// cellText renders one value as odpscmd would: NULL for NULL, text as is,
// and text that is not printable UTF-8 (binary, control characters) as a Go
// quoted string so the grid stays one line per row.
func cellText(v any, loc *time.Location) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return printable(x)
	case []byte:
		return printable(string(x))
	case time.Time:
		return x.In(loc).Format("2006-01-02 15:04:05.999999999")
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func formatFloat(f float64, bits int) string {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// writeGrid writes an ASCII table in the MaxCompute client's style:
//
//	+-------+-----+
//	| topic | pt  |
//	+-------+-----+
//	| t     | x   |
//	+-------+-----+
func writeGrid(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = textWidth(h)
	}
	for _, row := range rows {
		for i, c := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], textWidth(c))
			}
		}
	}
	var b strings.Builder
	rule := func() {
		b.WriteByte('+')
		for _, n := range widths {
			b.WriteString(strings.Repeat("-", n+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(cells []string) {
		b.WriteByte('|')
		for i, n := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", n-textWidth(c)) + " |")
		}
		b.WriteByte('\n')
	}
	rule()
	line(header)
	rule()
	for _, row := range rows {
		line(row)
	}
	if len(rows) > 0 {
		rule()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// textWidth is how many terminal columns s takes: East Asian wide and
// full-width characters (Chinese, Japanese, Korean) take two.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF && r != 0x303F,
			r >= 0xAC00 && r <= 0xD7A3, r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F,
			r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6, r >= 0x20000 && r <= 0x3FFFD:
			n += 2
		case unicode.Is(unicode.Mn, r):
		default:
			n++
		}
	}
	return n
}
