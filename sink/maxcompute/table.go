package maxcompute

import (
	"context"
	"fmt"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"

	"github.com/dumpflow/dumpflow/sink"
)

// loadTable loads the table's schema.
func (c *client) loadTable() (tableschema.TableSchema, error) {
	t := c.odps.Table(c.mc.Table)
	if err := t.Load(); err != nil {
		return tableschema.TableSchema{}, err
	}
	return t.Schema(), nil
}

// loadOrCreateTable loads the table's schema, creating the table with
// DefaultDDL first when it is missing and the spec allows it.
func (c *client) loadOrCreateTable(ctx context.Context) (tableschema.TableSchema, error) {
	schema, err := c.loadTable()
	if err == nil {
		return schema, nil
	}
	if err := c.missingTable(err); err != nil {
		return schema, err
	}
	if !c.mc.CreateTable {
		return schema, sink.Permanent(ErrNoSuchTable, fmt.Errorf("table %s does not exist: create it (%s) or set sink.maxcompute.createTable",
			c.name(), fmt.Sprintf(DefaultDDL, c.mc.Table)))
	}
	if err := ctx.Err(); err != nil {
		return schema, err
	}
	if err := c.createTable(); err != nil {
		return schema, err
	}
	schema, err = c.loadTable()
	if err != nil {
		return schema, classify(fmt.Sprintf("load table %s after creating it", c.name()), err)
	}
	return schema, nil
}

// missingTable returns nil when loadErr says the table does not exist, and
// the classified error otherwise (including a missing project).
func (c *client) missingTable(loadErr error) error {
	code := errorCode(loadErr)
	switch {
	case code == "NoSuchProject":
		return sink.Permanent(ErrNoSuchProject, fmt.Errorf("project %s does not exist (table %s): %w", c.mc.Project, c.mc.Table, loadErr))
	case !isNotFound(loadErr) && code != "NoSuchTable" && code != "NoSuchObject":
		return classify(fmt.Sprintf("load table %s", c.name()), loadErr)
	}
	// A 404 on the table may mean the project is missing.
	err := c.odps.Project(c.mc.Project).Load()
	switch {
	case err == nil:
		return nil
	case isNotFound(err):
		return sink.Permanent(ErrNoSuchProject, fmt.Errorf("project %s does not exist (table %s)", c.mc.Project, c.mc.Table))
	case permanentType(err) == ErrAccessDenied:
		return classify(fmt.Sprintf("load project %s", c.mc.Project), err)
	}
	return nil
}

// createTable runs DefaultDDL as a SQL task and waits for it.
func (c *client) createTable() error {
	ddl := fmt.Sprintf(DefaultDDL, c.mc.Table) + ";"
	ins, err := c.odps.ExecSQl(ddl, map[string]string{"odps.namespace.schema": "false"})
	if err != nil {
		return classify(fmt.Sprintf("create table %s", c.name()), err)
	}
	if err := ins.WaitForSuccess(); err != nil {
		if _, ok := asServiceError(err); ok {
			return classify(fmt.Sprintf("create table %s", c.name()), err)
		}
		// The task ran and refused the statement.
		return sink.Permanent(ErrCreateTable, fmt.Errorf("create table %s: %w", c.name(), err))
	}
	return nil
}
