package odpsemu

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// downloadStatusJSON is the session document tunnel/download_session.go (loadInformation)
// decodes.
type downloadStatusJSON struct {
	DownloadID  string       `json:"DownloadID"`
	Initiated   string       `json:"Initiated"`
	Owner       string       `json:"Owner"`
	RecordCount int64        `json:"RecordCount"`
	Schema      tunnelSchema `json:"Schema"`
	Status      string       `json:"Status"`
}

func (s *Server) downloadJSON(d *downloadSession) downloadStatusJSON {
	status := "normal"
	if !s.now().Before(d.Expires) {
		status = "expired"
	}
	return downloadStatusJSON{
		DownloadID:  d.ID,
		Initiated:   gmt(d.Created),
		Owner:       s.owner(),
		RecordCount: d.Records,
		Schema:      newTunnelSchema(d.Columns, d.PartitionKeys),
		Status:      status,
	}
}

// createDownload snapshots the partition's committed rows: later commits do not change what
// the session reads.
func (s *Server) createDownload(c *call, project, table string) {
	now := s.now()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	t, aerr := s.tableForTunnelLocked(project, table)
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	spec, aerr := specForTunnel(t, c.r.URL.Query().Get("partition"))
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	part := t.Partitions[spec.name()]
	if part == nil {
		s.fail(c, errNoSuchPartitionTunnel(spec.sql()))
		return
	}
	if aerr := s.quotas.admit(project, t.Name, quotaDownloadSessions); aerr != nil {
		s.fail(c, aerr)
		return
	}
	records, _ := part.recordCount()
	d := &downloadSession{
		ID:            newSessionID(now),
		Project:       project,
		Table:         t.Name,
		TableID:       t.ID,
		Columns:       t.Columns,
		PartitionKeys: t.PartitionKeys,
		Partition:     spec,
		Created:       now,
		Expires:       now.Add(s.opts.SessionTTL),
		Records:       records,
		Segments:      append([]segment{}, part.Segments...),
	}
	st.st.Downloads[d.ID] = d
	st.pruneLocked(now)
	if err := st.saveLocked(); err != nil {
		s.fail(c, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, s.downloadJSON(d))
}

func (s *Server) lookupDownloadLocked(c *call, project, table string) (*downloadSession, *apiError) {
	id := c.r.URL.Query().Get("downloadid")
	d := s.store.st.Downloads[id]
	if d == nil {
		return nil, newAPIError(http.StatusNotFound, codeNoSuchDownload, "The specified download id does not exist: %s", id)
	}
	if aerr := checkSessionResource(project, table, c.r, d.Project, d.Table, d.Partition); aerr != nil {
		return nil, aerr
	}
	return d, nil
}

func (s *Server) getDownload(c *call, project, table string) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	d, aerr := s.lookupDownloadLocked(c, project, table)
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	writeJSON(c.w, http.StatusOK, s.downloadJSON(d))
}

var rowRangeRE = regexp.MustCompile(`^\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

// readDownload streams rows [start, start+count) of the session's snapshot, projected onto
// the requested columns, in the tunnel record format and the requested Accept-Encoding.
func (s *Server) readDownload(c *call, project, table string) {
	q := c.r.URL.Query()
	s.store.mu.Lock()
	d, aerr := s.lookupDownloadLocked(c, project, table)
	var snapshot downloadSession
	if aerr == nil {
		if !s.now().Before(d.Expires) {
			aerr = errSessionExpired("download")
		} else {
			snapshot = *d
		}
	}
	s.store.mu.Unlock()
	if aerr != nil {
		s.fail(c, aerr)
		return
	}

	m := rowRangeRE.FindStringSubmatch(q.Get("rowrange"))
	var start, count int64
	if m != nil {
		start, _ = strconv.ParseInt(m[1], 10, 64)
		count, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if m == nil || count <= 0 || start+count > snapshot.Records {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidRowRange,
			"The specified row range is not valid: %q, the session has %d records", q.Get("rowrange"), snapshot.Records))
		return
	}
	idx, cols, aerr := projectColumns(snapshot.Columns, q.Get("columns"))
	if aerr != nil {
		s.fail(c, aerr)
		return
	}

	c.w.Header().Set("Content-Type", "application/octet-stream")
	name, zw := encodingWriter(c.r.Header.Get("Accept-Encoding"), c.w)
	if name != "" {
		c.w.Header().Set("Content-Encoding", name)
	}
	c.w.WriteHeader(http.StatusOK)
	enc := newRowEncoder(zw, cols)
	if err := s.streamRows(snapshot.Segments, start, count, idx, enc); err != nil {
		// The status is sent; cut the connection so the client sees a failure, not a short stream.
		s.log.Error("odpsemu download failed", "download_id", snapshot.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err := zw.Close(); err != nil {
		s.log.Debug("odpsemu download: close stream", "download_id", snapshot.ID, "err", err)
	}
}

func (s *Server) streamRows(segs []segment, start, count int64, idx []int, enc *rowEncoder) error {
	projected := make(row, len(idx))
	var werr error
	for _, seg := range segs {
		if count == 0 {
			break
		}
		if start >= seg.Records {
			start -= seg.Records
			continue
		}
		err := s.store.readSegment(seg, start, func(r row) bool {
			for i, j := range idx {
				projected[i] = r[j]
			}
			if werr = enc.write(projected); werr != nil {
				return false
			}
			count--
			return count > 0
		})
		if err != nil {
			return err
		}
		if werr != nil {
			return fmt.Errorf("write rows: %w", werr)
		}
		start = 0
	}
	if count != 0 {
		return fmt.Errorf("snapshot is missing %d rows", count)
	}
	if err := enc.finish(); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	return nil
}

// projectColumns resolves the "columns" parameter (comma-separated names, all columns when
// empty) to indexes into cols.
func projectColumns(cols []Column, param string) ([]int, []Column, *apiError) {
	if strings.TrimSpace(param) == "" {
		idx := make([]int, len(cols))
		for i := range cols {
			idx[i] = i
		}
		return idx, cols, nil
	}
	var (
		idx []int
		out []Column
	)
	for _, name := range strings.Split(param, ",") {
		found := -1
		for i, c := range cols {
			if strings.EqualFold(c.Name, strings.TrimSpace(name)) {
				found = i
				break
			}
		}
		if found < 0 {
			return nil, nil, newAPIError(http.StatusBadRequest, codeInvalidColumnSpec,
				"The specified columns is not valid: no column %q (columns: %s)", name, columnNames(cols))
		}
		idx = append(idx, found)
		out = append(out, cols[found])
	}
	return idx, out, nil
}
