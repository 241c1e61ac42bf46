package odpsemu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The SQL subset the emulator executes in SQL task instances (odps/sql_task.go,
// Tables.Create/Delete and Table.AddPartitions/DeletePartitions all submit SQL):
//
//	CREATE TABLE [IF NOT EXISTS] [project.]name (col type [NOT NULL] [COMMENT '..'], ...)
//	    [COMMENT '..'] [PARTITIONED BY (col type [COMMENT '..'], ...)] [LIFECYCLE n]
//	ALTER TABLE [project.]name ADD [IF NOT EXISTS] PARTITION (k='v', ...) [PARTITION (...)]...
//	ALTER TABLE [project.]name DROP [IF EXISTS] PARTITION (k='v', ...) [, PARTITION (...)]...
//	DROP TABLE [IF EXISTS] [project.]name
//	SET key=value                       accepted and ignored
//
// Column types: STRING, BIGINT, DOUBLE, BOOLEAN, DATETIME, BINARY; partition columns: STRING,
// BIGINT. Several statements may be separated by ';'. Anything else fails the instance with an
// ODPS-style message, e.g. "ODPS-0130161:[1,1] Parse exception - ...".

// sqlError is a failed statement, rendered like the service's task results.
type sqlError struct {
	code, kind string
	line, col  int
	msg        string
}

func (e *sqlError) Error() string {
	return fmt.Sprintf("%s:[%d,%d] %s - %s", e.code, e.line, e.col, e.kind, e.msg)
}

func parseError(t token, format string, args ...any) *sqlError {
	return &sqlError{code: "ODPS-0130161", kind: "Parse exception", line: t.line, col: t.col, msg: fmt.Sprintf(format, args...)}
}

func semanticError(t token, format string, args ...any) *sqlError {
	return &sqlError{code: "ODPS-0130071", kind: "Semantic analysis exception", line: t.line, col: t.col, msg: fmt.Sprintf(format, args...)}
}

func tableNotFound(t token, project, table string) *sqlError {
	return &sqlError{code: "ODPS-0130131", kind: "Table not found", line: t.line, col: t.col,
		msg: fmt.Sprintf("table %s.%s cannot be resolved", project, table)}
}

type tokKind int

const (
	tokEOF    tokKind = iota
	tokWord           // identifier or keyword
	tokQuoted         // `identifier`
	tokString         // 'literal' or "literal"
	tokNumber         // integer literal
	tokPunct          // ( ) , . ; = < > and the like
)

type token struct {
	kind      tokKind
	text      string
	line, col int
}

func (t token) is(keyword string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, keyword)
}

// tokenize splits a SQL script into tokens, dropping comments.
func tokenize(sql string) ([]token, error) {
	var toks []token
	rs := []rune(sql)
	line, col := 1, 1
	i := 0
	advance := func(n int) {
		for ; n > 0 && i < len(rs); n-- {
			if rs[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
			i++
		}
	}
	for i < len(rs) {
		r := rs[i]
		start := token{line: line, col: col}
		switch {
		case unicode.IsSpace(r):
			advance(1)
		case r == '-' && i+1 < len(rs) && rs[i+1] == '-':
			for i < len(rs) && rs[i] != '\n' {
				advance(1)
			}
		case r == '/' && i+1 < len(rs) && rs[i+1] == '*':
			advance(2)
			for i < len(rs) && !(rs[i] == '*' && i+1 < len(rs) && rs[i+1] == '/') {
				advance(1)
			}
			advance(2)
		case r == '`':
			advance(1)
			var sb strings.Builder
			for i < len(rs) && rs[i] != '`' {
				sb.WriteRune(rs[i])
				advance(1)
			}
			if i >= len(rs) {
				return nil, parseError(start, "unterminated quoted identifier")
			}
			advance(1)
			start.kind, start.text = tokQuoted, sb.String()
			toks = append(toks, start)
		case r == '\'' || r == '"':
			quote := r
			advance(1)
			var sb strings.Builder
			for i < len(rs) && rs[i] != quote {
				if rs[i] == '\\' && i+1 < len(rs) {
					advance(1)
				}
				sb.WriteRune(rs[i])
				advance(1)
			}
			if i >= len(rs) {
				return nil, parseError(start, "unterminated string literal")
			}
			advance(1)
			start.kind, start.text = tokString, sb.String()
			toks = append(toks, start)
		case unicode.IsDigit(r) || (r == '-' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			var sb strings.Builder
			sb.WriteRune(r)
			advance(1)
			for i < len(rs) && unicode.IsDigit(rs[i]) {
				sb.WriteRune(rs[i])
				advance(1)
			}
			start.kind, start.text = tokNumber, sb.String()
			toks = append(toks, start)
		case unicode.IsLetter(r) || r == '_' || r == '$':
			var sb strings.Builder
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || rs[i] == '_' || rs[i] == '$') {
				sb.WriteRune(rs[i])
				advance(1)
			}
			start.kind, start.text = tokWord, sb.String()
			toks = append(toks, start)
		default:
			advance(1)
			start.kind, start.text = tokPunct, string(r)
			toks = append(toks, start)
		}
	}
	return append(toks, token{kind: tokEOF, line: line, col: col}), nil
}

type tableRef struct {
	project string // "" for the instance's project
	name    string
	at      token
}

type createTableStmt struct {
	ifNotExists bool
	table       tableRef
	columns     []Column
	partitions  []Column
	comment     string
	lifecycle   int
}

type partitionsStmt struct {
	drop     bool // ALTER TABLE ... DROP PARTITION, else ADD PARTITION
	ifClause bool // IF NOT EXISTS / IF EXISTS
	table    tableRef
	specs    []partSpec
	specAt   []token
}

type dropTableStmt struct {
	ifExists bool
	table    tableRef
}

type setStmt struct{}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) accept(keywords ...string) bool {
	for k, kw := range keywords {
		if !p.toks[min(p.i+k, len(p.toks)-1)].is(kw) {
			return false
		}
	}
	p.i += len(keywords)
	return true
}

func (p *parser) expect(keyword string) error {
	if t := p.next(); !t.is(keyword) {
		return parseError(t, "expected %s but found %s", strings.ToUpper(keyword), describe(t))
	}
	return nil
}

func (p *parser) acceptPunct(s string) bool {
	if t := p.peek(); t.kind == tokPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if t := p.next(); t.kind != tokPunct || t.text != s {
		return parseError(t, "expected '%s' but found %s", s, describe(t))
	}
	return nil
}

func (p *parser) ident() (token, error) {
	t := p.next()
	if t.kind != tokWord && t.kind != tokQuoted {
		return t, parseError(t, "expected an identifier but found %s", describe(t))
	}
	return t, nil
}

func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of statement"
	case tokString:
		return fmt.Sprintf("string '%s'", t.text)
	default:
		return fmt.Sprintf("'%s'", t.text)
	}
}

// parseScript parses ';'-separated statements.
func parseScript(sql string) ([]any, error) {
	toks, err := tokenize(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var stmts []any
	for {
		for p.acceptPunct(";") {
		}
		if p.peek().kind == tokEOF {
			break
		}
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
		if t := p.peek(); t.kind != tokEOF && !(t.kind == tokPunct && t.text == ";") {
			return nil, parseError(t, "unexpected %s", describe(t))
		}
	}
	if len(stmts) == 0 {
		return nil, parseError(p.peek(), "empty query")
	}
	return stmts, nil
}

const supportedStatements = "CREATE TABLE, ALTER TABLE ... ADD/DROP PARTITION, DROP TABLE, SET"

func (p *parser) statement() (any, error) {
	t := p.peek()
	switch {
	case p.accept("create", "table"):
		return p.createTable()
	case p.accept("alter", "table"):
		return p.alterTable()
	case p.accept("drop", "table"):
		st := &dropTableStmt{ifExists: p.accept("if", "exists")}
		var err error
		st.table, err = p.tableName()
		return st, err
	case p.accept("set"):
		for t := p.peek(); t.kind != tokEOF && !(t.kind == tokPunct && t.text == ";"); t = p.peek() {
			p.next()
		}
		return &setStmt{}, nil
	default:
		return nil, parseError(t, "statement starting with %s is not supported by the odpsemu emulator (supported: %s)",
			describe(t), supportedStatements)
	}
}

func (p *parser) tableName() (tableRef, error) {
	first, err := p.ident()
	if err != nil {
		return tableRef{}, err
	}
	parts := []string{first.text}
	for len(parts) < 3 && p.acceptPunct(".") {
		t, err := p.ident()
		if err != nil {
			return tableRef{}, err
		}
		parts = append(parts, t.text)
	}
	ref := tableRef{name: strings.ToLower(parts[len(parts)-1]), at: first}
	if len(parts) > 1 {
		ref.project = parts[0] // a middle part is a schema name; the emulator has only the default schema
	}
	return ref, nil
}

func (p *parser) createTable() (*createTableStmt, error) {
	st := &createTableStmt{ifNotExists: p.accept("if", "not", "exists")}
	var err error
	if st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if t := p.peek(); t.is("as") || t.is("like") {
		return nil, parseError(t, "CREATE TABLE ... %s is not supported by the odpsemu emulator", strings.ToUpper(t.text))
	}
	if st.columns, err = p.columnList(supportedColumnTypes); err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tokEOF || (t.kind == tokPunct && t.text == ";"):
			return st, nil
		case p.accept("comment"):
			c := p.next()
			if c.kind != tokString {
				return nil, parseError(c, "expected a string after COMMENT but found %s", describe(c))
			}
			st.comment = c.text
		case p.accept("partitioned", "by"):
			if st.partitions, err = p.columnList(supportedPartitionTypes); err != nil {
				return nil, err
			}
		case p.accept("lifecycle"):
			n := p.next()
			days, convErr := strconv.Atoi(n.text)
			if n.kind != tokNumber || convErr != nil || days <= 0 {
				return nil, parseError(n, "expected a positive number of days after LIFECYCLE but found %s", describe(n))
			}
			st.lifecycle = days
		default:
			return nil, parseError(t, "table clause starting with %s is not supported by the odpsemu emulator (supported: COMMENT, PARTITIONED BY, LIFECYCLE)", describe(t))
		}
	}
}

// columnList parses "(name type [NOT NULL] [COMMENT '..'], ...)".
func (p *parser) columnList(types []string) ([]Column, error) {
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	var cols []Column
	for {
		if t := p.peek(); t.is("primary") || t.is("constraint") {
			return nil, parseError(t, "table constraints are not supported by the odpsemu emulator")
		}
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		typ := p.next()
		if typ.kind != tokWord {
			return nil, parseError(typ, "expected a type for column %s but found %s", name.text, describe(typ))
		}
		tname := strings.ToUpper(typ.text)
		if next := p.peek(); next.kind == tokPunct && (next.text == "(" || next.text == "<") {
			tname += next.text + "..."
		}
		if !isSupportedType(types, tname) {
			return nil, semanticError(typ, "type %s of column %s is not supported by the odpsemu emulator (supported: %s)",
				tname, name.text, strings.Join(types, ", "))
		}
		col := Column{Name: strings.ToLower(name.text), Type: tname}
		if p.accept("not", "null") {
			col.NotNull = true
		}
		if p.accept("comment") {
			c := p.next()
			if c.kind != tokString {
				return nil, parseError(c, "expected a string after COMMENT but found %s", describe(c))
			}
			col.Comment = c.text
		}
		cols = append(cols, col)
		if p.acceptPunct(")") {
			return cols, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

func (p *parser) alterTable() (*partitionsStmt, error) {
	ref, err := p.tableName()
	if err != nil {
		return nil, err
	}
	st := &partitionsStmt{table: ref}
	switch t := p.next(); {
	case t.is("add"):
		st.ifClause = p.accept("if", "not", "exists")
	case t.is("drop"):
		st.drop = true
		st.ifClause = p.accept("if", "exists")
	default:
		return nil, parseError(t, "ALTER TABLE %s is not supported by the odpsemu emulator (supported: ADD PARTITION, DROP PARTITION)", describe(t))
	}
	for {
		at := p.peek()
		if err := p.expect("partition"); err != nil {
			return nil, err
		}
		spec, err := p.partitionSpec()
		if err != nil {
			return nil, err
		}
		st.specs = append(st.specs, spec)
		st.specAt = append(st.specAt, at)
		p.acceptPunct(",")
		if !p.peek().is("partition") {
			return st, nil
		}
	}
}

// partitionSpec parses "(k='v', k2=123)".
func (p *parser) partitionSpec() (partSpec, error) {
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	var spec partSpec
	for {
		k, err := p.ident()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct("="); err != nil {
			return nil, err
		}
		v := p.next()
		if v.kind != tokString && v.kind != tokNumber {
			return nil, parseError(v, "expected a partition value for %s but found %s", k.text, describe(v))
		}
		spec = append(spec, partKV{Key: strings.ToLower(k.text), Value: v.text})
		if p.acceptPunct(")") {
			return spec, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

// execSQL runs a SQL script in project and returns the task result text.
func (s *Server) execSQL(project, query string) (string, error) {
	stmts, err := parseScript(query)
	if err != nil {
		return "", err
	}
	now := s.now()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	changed := false
	defer func() {
		if changed {
			st.gcLocked(false)
			if err := st.saveLocked(); err != nil {
				s.log.Error("odpsemu: save state after SQL", "err", err)
			}
		}
	}()
	for _, stmt := range stmts {
		var err error
		switch stmt := stmt.(type) {
		case *createTableStmt:
			err = s.createTableLocked(project, stmt, now)
		case *dropTableStmt:
			err = s.dropTableLocked(project, stmt)
		case *partitionsStmt:
			err = s.alterPartitionsLocked(project, stmt, now)
		case *setStmt:
			continue
		}
		if err != nil {
			return "", err
		}
		changed = true
	}
	return "OK", nil
}

func (s *Server) projectForSQL(defaultProject string, ref tableRef) (*projectMeta, string, *sqlError) {
	name := ref.project
	if name == "" {
		name = defaultProject
	}
	p := s.store.st.Projects[name]
	if p == nil {
		return nil, name, semanticError(ref.at, "project %s does not exist", name)
	}
	return p, name, nil
}

func (s *Server) createTableLocked(project string, stmt *createTableStmt, now time.Time) error {
	p, pname, serr := s.projectForSQL(project, stmt.table)
	if serr != nil {
		return serr
	}
	if _, ok := p.Tables[stmt.table.name]; ok {
		if stmt.ifNotExists {
			return nil
		}
		return semanticError(stmt.table.at, "Table or view already exists - %s.%s", pname, stmt.table.name)
	}
	seen := map[string]bool{}
	for _, c := range append(append([]Column{}, stmt.columns...), stmt.partitions...) {
		if seen[c.Name] {
			return semanticError(stmt.table.at, "column %s is defined more than once", c.Name)
		}
		seen[c.Name] = true
	}
	t := &tableMeta{
		Name:          stmt.table.name,
		ID:            newID(),
		Comment:       stmt.comment,
		Lifecycle:     stmt.lifecycle,
		Columns:       stmt.columns,
		PartitionKeys: stmt.partitions,
		Created:       now,
		LastDDL:       now,
		LastModified:  now,
		Partitions:    map[string]*partitionMeta{},
	}
	if !t.partitioned() {
		t.Partitions[""] = &partitionMeta{Created: now, LastModified: now}
	}
	p.Tables[t.Name] = t
	return nil
}

func (s *Server) dropTableLocked(project string, stmt *dropTableStmt) error {
	p, pname, serr := s.projectForSQL(project, stmt.table)
	if serr != nil {
		return serr
	}
	if _, ok := p.Tables[stmt.table.name]; !ok {
		if stmt.ifExists {
			return nil
		}
		return tableNotFound(stmt.table.at, pname, stmt.table.name)
	}
	delete(p.Tables, stmt.table.name)
	return nil
}

func (s *Server) alterPartitionsLocked(project string, stmt *partitionsStmt, now time.Time) error {
	p, pname, serr := s.projectForSQL(project, stmt.table)
	if serr != nil {
		return serr
	}
	t := p.Tables[stmt.table.name]
	if t == nil {
		return tableNotFound(stmt.table.at, pname, stmt.table.name)
	}
	if !t.partitioned() {
		return semanticError(stmt.table.at, "table %s.%s is not partitioned", pname, t.Name)
	}
	for i, raw := range stmt.specs {
		spec, err := t.resolveSpec(raw)
		if err != nil {
			return semanticError(stmt.specAt[i], "invalid partition spec: %v", err)
		}
		key := spec.name()
		_, exists := t.Partitions[key]
		switch {
		case stmt.drop && exists:
			delete(t.Partitions, key)
		case stmt.drop && !stmt.ifClause:
			return semanticError(stmt.specAt[i], "partition not found - %s", spec.sql())
		case !stmt.drop && !exists:
			t.Partitions[key] = &partitionMeta{Spec: spec, Created: now, LastModified: now}
		case !stmt.drop && !stmt.ifClause:
			return semanticError(stmt.specAt[i], "Partition already exists - %s", spec.sql())
		}
	}
	t.LastDDL = now
	return nil
}
