package maxcompute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// TableInfo describes a table, like `desc t`.
type TableInfo struct {
	Project          string    `json:"project"`
	Name             string    `json:"name"`
	Comment          string    `json:"comment,omitempty"`
	Columns          []Column  `json:"columns"`
	PartitionColumns []Column  `json:"partitionColumns"`
	RecordCount      int64     `json:"recordCount"` // negative when the service does not know
	Size             int64     `json:"size"`        // bytes
	LastModified     time.Time `json:"lastModified"`
}

// Column is one column of a table.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"` // e.g. STRING, BIGINT, DECIMAL(10,2)
	Comment  string `json:"comment,omitempty"`
	Nullable bool   `json:"nullable"`
}

// ShowTable describes spec's table.
func ShowTable(ctx context.Context, spec *connector.Spec, creds connector.Credentials, opts ...Option) (TableInfo, error) {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return TableInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return TableInfo{}, err
	}
	t := c.odps.Table(c.mc.Table)
	if err := t.Load(); err != nil {
		if merr := c.missingTable(err); merr != nil {
			return TableInfo{}, merr
		}
		return TableInfo{}, sink.Permanent(ErrNoSuchTable, fmt.Errorf("table %s does not exist", c.name()))
	}
	s := t.Schema()
	return TableInfo{
		Project:          c.mc.Project,
		Name:             t.Name(),
		Comment:          s.Comment,
		Columns:          columns(s.Columns),
		PartitionColumns: columns(s.PartitionColumns),
		RecordCount:      int64(s.RecordNum),
		Size:             s.Size,
		LastModified:     t.LastModifiedTime(),
	}, nil
}

func columns(cols []tableschema.Column) []Column {
	out := make([]Column, len(cols))
	for i, c := range cols {
		out[i] = Column{Name: c.Name, Type: c.Type.Name(), Comment: c.Comment, Nullable: !c.NotNull}
	}
	return out
}

// ListPartitions lists the table's partitions like `show partitions t`, in
// the form PartitionOf returns ("pt=11-17-2020 14"), sorted.
func ListPartitions(ctx context.Context, spec *connector.Spec, creds connector.Credentials, opts ...Option) ([]string, error) {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return nil, err
	}
	return c.partitions(ctx)
}

func (c *client) partitions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ps, err := c.odps.Table(c.mc.Table).GetPartitions()
	if err != nil {
		if merr := c.missingTable(err); merr != nil {
			return nil, merr
		}
		return nil, sink.Permanent(ErrNoSuchTable, fmt.Errorf("table %s does not exist: %w", c.name(), err))
	}
	out := make([]string, len(ps))
	for i := range ps {
		out[i] = ps[i].Value()
	}
	slices.Sort(out)
	return out, nil
}

// ReadRows reads every row of one partition ("pt=11-17-2020 14"; "" for an
// unpartitioned table) through a tunnel download session, like
// `select * from t where pt="11-17-2020 14"`. Each row holds the table's
// columns in order, then the partition column values; values are nil
// (NULL), string (STRING, VARCHAR, CHAR, DECIMAL), []byte (BINARY), int64,
// int32, int16, int8, float64, float32, bool or time.Time. A STRING holds the
// bytes written, which need not be UTF-8.
func ReadRows(ctx context.Context, spec *connector.Spec, creds connector.Credentials, partition string, fn func(row []any) error, opts ...Option) error {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return err
	}
	var pvals []any
	if partition != "" {
		if partition, err = normalizeSpec(partition); err != nil {
			return sink.Permanent(ErrInvalidSpec, err)
		}
		for _, kv := range strings.Split(partition, "/") {
			_, v, _ := strings.Cut(kv, "=")
			pvals = append(pvals, v)
		}
	}
	return c.download(ctx, partition, nil, func(rec data.Record) error {
		row := make([]any, 0, len(rec)+len(pvals))
		for _, d := range rec {
			row = append(row, goValue(d))
		}
		return fn(append(row, pvals...))
	})
}

// downloadWindow is how many rows one download request reads.
const downloadWindow = 1 << 20

// download reads the given columns (nil: all) of one partition.
func (c *client) download(ctx context.Context, partition string, cols []string, fn func(data.Record) error) error {
	return c.downloadTable(ctx, c.mc.Table, partition, cols, 0, fn)
}

// downloadTable reads the given columns (nil: all) of one partition of
// table; last > 0 reads only the last rows of it.
func (c *client) downloadTable(ctx context.Context, table, partition string, cols []string, last int, fn func(data.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.resolveTunnel(); err != nil {
		return err
	}
	var opts []tunnel.Option
	if partition != "" {
		opts = append(opts, tunnel.SessionCfg.WithPartitionKey(partition))
	}
	where := c.mc.Project + "." + table
	if partition != "" {
		where += " " + partition
	}
	ds, err := c.tunnel.CreateDownloadSession(c.mc.Project, table, opts...)
	if err != nil {
		return classify("create download session on "+where, err)
	}
	total := ds.RecordCount()
	from := 0
	if last > 0 && total > last {
		from = total - last
	}
	for start := from; start < total; start += downloadWindow {
		if err := c.readWindow(ctx, ds, where, start, min(downloadWindow, total-start), cols, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) readWindow(ctx context.Context, ds *tunnel.DownloadSession, where string, start, n int, cols []string, fn func(data.Record) error) error {
	r, err := ds.OpenRecordReader(start, n, cols)
	if err != nil {
		return classify(fmt.Sprintf("download rows %d..%d of %s", start, start+n, where), err)
	}
	defer r.Close()
	for i := 0; ; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return classify(fmt.Sprintf("read row %d of %s", start+i, where), err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// goValue turns a tunnel value into a plain Go value.
func goValue(d data.Data) any {
	switch v := d.(type) {
	case nil, data.NullData:
		return nil
	case data.String:
		return string(v)
	case *data.String:
		return string(*v)
	case data.BigInt:
		return int64(v)
	case data.Int:
		return int32(v)
	case data.SmallInt:
		return int16(v)
	case data.TinyInt:
		return int8(v)
	case data.Double:
		return float64(v)
	case data.Float:
		return float32(v)
	case data.Bool:
		return bool(v)
	case data.Binary:
		return []byte(v)
	case data.DateTime:
		return v.Time()
	case data.Date:
		return v.Time()
	case data.Timestamp:
		return v.Time()
	case data.VarChar:
		return v.Data()
	case *data.VarChar:
		return v.Data()
	case data.Char:
		return v.Data()
	case *data.Char:
		return v.Data()
	case data.Decimal:
		return v.Value()
	case *data.Decimal:
		return v.Value()
	}
	return d.String()
}
