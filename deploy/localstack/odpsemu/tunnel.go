package odpsemu

import (
	"encoding/json"
	"net/http"
	"strings"
)

// The tunnel API on a table resource (/projects/<p>/tables/<t> below the tunnel endpoint), as
// the SDK calls it from tunnel/upload_session.go and tunnel/download_session.go:
//
//	POST ?uploads[&partition=..][&create_partition=true][&overwrite=true]  create upload session
//	GET  ?uploadid=ID[&partition=..]                                       session status and blocks
//	PUT  ?uploadid=ID&blockid=N[&partition=..]  body: record stream       upload (or replace) a block
//	POST ?uploadid=ID[&partition=..]                                       commit
//	POST ?downloads[&partition=..]                                         create download session
//	GET  ?downloadid=ID[&partition=..]                                     download session status
//	GET  ?downloadid=ID&data&rowrange=(start,count)[&columns=a,b]          read records
func (s *Server) serveTunnel(c *call, project, table string) {
	q := c.r.URL.Query()
	table = strings.ToLower(table)
	if q.Has("arrow") {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidArgument,
			"the Arrow record format is not supported by the odpsemu emulator; use the record (protobuf) reader and writer"))
		return
	}
	m := c.r.Method
	switch {
	case m == http.MethodPost && q.Has("uploads"):
		s.createUpload(c, project, table)
	case m == http.MethodPut && q.Has("uploadid"):
		s.uploadBlock(c, project, table)
	case m == http.MethodGet && q.Has("uploadid"):
		s.getUpload(c, project, table)
	case m == http.MethodPost && q.Has("uploadid"):
		s.commitUpload(c, project, table)
	case m == http.MethodPost && q.Has("downloads"):
		s.createDownload(c, project, table)
	case m == http.MethodGet && q.Has("downloadid") && q.Has("data"):
		s.readDownload(c, project, table)
	case m == http.MethodGet && q.Has("downloadid"):
		s.getDownload(c, project, table)
	default:
		s.fail(c, newAPIError(http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"%s is not allowed with these parameters on a table resource", m))
	}
}

// tunnelColumn and tunnelSchema are the session schema JSON of tunnel/common.go
// (schemaResModel).
type tunnelColumn struct {
	ColumnID     string `json:"column_id"`
	Comment      string `json:"comment"`
	DefaultValue string `json:"default_value"`
	Name         string `json:"name"`
	Nullable     bool   `json:"nullable"`
	Type         string `json:"type"`
}

type tunnelSchema struct {
	IsVirtualView bool           `json:"IsVirtualView"`
	Columns       []tunnelColumn `json:"columns"`
	PartitionKeys []tunnelColumn `json:"partitionKeys"`
}

func newTunnelSchema(cols, partKeys []Column) tunnelSchema {
	conv := func(in []Column) []tunnelColumn {
		out := make([]tunnelColumn, len(in))
		for i, c := range in {
			out[i] = tunnelColumn{Name: c.Name, Type: strings.ToLower(c.Type), Comment: c.Comment, Nullable: !c.NotNull}
		}
		return out
	}
	return tunnelSchema{Columns: conv(cols), PartitionKeys: conv(partKeys)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// tableForTunnelLocked resolves the project and table of a tunnel request.
func (s *Server) tableForTunnelLocked(project, table string) (*tableMeta, *apiError) {
	p := s.store.st.Projects[project]
	if p == nil {
		return nil, errNoSuchProjectTunnel(project)
	}
	t := p.Tables[table]
	if t == nil {
		return nil, errNoSuchTableTunnel(project, table)
	}
	return t, nil
}

// specForTunnel parses and checks the partition parameter of a session request against t.
func specForTunnel(t *tableMeta, raw string) (partSpec, *apiError) {
	spec, err := parsePartitionSpec(raw)
	switch {
	case err != nil:
		return nil, newAPIError(http.StatusBadRequest, codeInvalidPartitionSpec, "The specified partitionspec is not valid: %v", err)
	case t.partitioned() && len(spec) == 0:
		return nil, newAPIError(http.StatusBadRequest, codeMissingPartitionSpec,
			"You need to specify a partitionspec along with the specified table")
	case !t.partitioned() && len(spec) > 0:
		return nil, newAPIError(http.StatusBadRequest, codeInvalidPartitionSpec,
			"The specified partitionspec is not valid: table %s is not partitioned", t.Name)
	case !t.partitioned():
		return nil, nil
	}
	spec, err = t.resolveSpec(spec)
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, codeInvalidPartitionSpec, "The specified partitionspec is not valid: %v", err)
	}
	return spec, nil
}

// checkSessionResource verifies that a request for an existing session names the session's
// project, table and, when the request gives one, partition.
func checkSessionResource(project, table string, r *http.Request, sessProject, sessTable string, sessPart partSpec) *apiError {
	if project != sessProject || table != sessTable {
		return newAPIError(http.StatusBadRequest, codeInvalidResourceSpec,
			"The session belongs to %s.%s, not %s.%s", sessProject, sessTable, project, table)
	}
	raw := r.URL.Query().Get("partition")
	spec, err := parsePartitionSpec(raw)
	if err != nil || (len(spec) > 0 && !samePartition(spec, sessPart)) {
		return newAPIError(http.StatusBadRequest, codeInvalidResourceSpec,
			"The specified partition %q does not match the session's partition %q", raw, sessPart.name())
	}
	return nil
}

func samePartition(a, b partSpec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
