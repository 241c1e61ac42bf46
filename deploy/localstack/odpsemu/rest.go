package odpsemu

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// The REST API subset the SDK uses for metadata (paths below the odps endpoint
// http://host/api, built by odps/common/resource_builder.go):
//
//	GET  /projects/<p>                       Project.Load                       (project.go)
//	GET  /projects/<p>/tunnel?service        Project.GetTunnelEndpoint          (project.go)
//	GET  /projects/<p>/tables                Tables.List                        (tables.go)
//	GET  /projects/<p>/tables/<t>[?extended] Table.Load, Table.Exists           (table.go)
//	GET  /projects/<p>/tables/<t>?partitions Table.GetPartitions/GetPartitionValues
//	GET  /projects/<p>/tables/<t>?partition= Partition.Load[Extended]           (partition.go)
//	POST /projects/<p>/instances             Instances.CreateTask: SQL tasks    (instances.go)
//	GET  /projects/<p>/instances/<id>        Instance.Load, ?taskstatus, ?result (instance.go)
//	PUT  /projects/<p>/instances/<id>        Instance.Terminate (no-op: instances finish at once)
func (s *Server) serveREST(c *call, segs []string) {
	if len(segs) < 2 || segs[0] != "projects" || segs[1] == "" {
		s.fail(c, errRESTUnsupported(c.r))
		return
	}
	project := segs[1]
	if !s.projectExists(project) {
		s.fail(c, newAPIError(http.StatusNotFound, codeNoSuchObject, "ODPS-0420111: Project not found - '%s'.", project))
		return
	}
	method := c.r.Method
	_, table, isTable := tableRoute(segs)
	switch {
	case len(segs) == 2 && method == http.MethodGet:
		s.getProject(c, project)
	case len(segs) == 3 && segs[2] == "tunnel" && method == http.MethodGet:
		// The SDK prefixes the body with the scheme of its REST endpoint.
		c.w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(c.w, c.r.Host)
	case len(segs) == 3 && segs[2] == "tables" && method == http.MethodGet:
		s.listTables(c, project)
	case isTable && method == http.MethodGet:
		s.getTable(c, project, strings.ToLower(table))
	case len(segs) == 3 && segs[2] == "instances" && method == http.MethodPost:
		s.createInstance(c, project)
	case len(segs) == 4 && segs[2] == "instances" && method == http.MethodGet:
		s.getInstance(c, project, segs[3])
	case len(segs) == 4 && segs[2] == "instances" && method == http.MethodPut:
		if s.lookupInstance(project, segs[3]) == nil {
			s.fail(c, errNoSuchInstance(segs[3]))
			return
		}
		c.w.WriteHeader(http.StatusOK)
	default:
		s.fail(c, errRESTUnsupported(c.r))
	}
}

func errRESTUnsupported(r *http.Request) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchObject,
		"%s %s is not supported by the odpsemu emulator", r.Method, strings.TrimPrefix(r.URL.Path, "/api"))
}

func errNoSuchTableREST(project, table string) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchObject, "ODPS-0130131:Table not found - '%s.%s' table not found", project, table)
}

func errNoSuchInstance(id string) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchObject, "Instance not found - '%s'", id)
}

func (s *Server) projectExists(name string) bool {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return s.store.st.Projects[name] != nil
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

type projectXML struct {
	XMLName xml.Name `xml:"Project"`
	Name    string   `xml:"Name"`
	Type    string   `xml:"Type"`
	Comment string   `xml:"Comment"`
	State   string   `xml:"State"`
	Owner   string   `xml:"Owner"`
}

func (s *Server) getProject(c *call, name string) {
	s.store.mu.Lock()
	created := s.store.st.Projects[name].Created
	s.store.mu.Unlock()
	h := c.w.Header()
	h.Set("x-odps-owner", s.owner())
	h.Set("x-odps-creation-time", gmt(created))
	h.Set("Last-Modified", gmt(created))
	writeXML(c.w, http.StatusOK, projectXML{Name: name, Type: "managed", State: "AVAILABLE", Owner: s.owner()})
}

type tableListXML struct {
	XMLName  xml.Name        `xml:"Tables"`
	Tables   []tableEntryXML `xml:"Table"`
	Marker   string          `xml:"Marker"`
	MaxItems int             `xml:"MaxItems"`
}

type tableEntryXML struct {
	Name  string `xml:"Name"`
	Owner string `xml:"Owner"`
}

func (s *Server) listTables(c *call, project string) {
	prefix := strings.ToLower(c.r.URL.Query().Get("name"))
	s.store.mu.Lock()
	var out tableListXML
	for name := range s.store.st.Projects[project].Tables {
		if strings.HasPrefix(name, prefix) {
			out.Tables = append(out.Tables, tableEntryXML{Name: name, Owner: s.owner()})
		}
	}
	s.store.mu.Unlock()
	sort.Slice(out.Tables, func(i, j int) bool { return out.Tables[i].Name < out.Tables[j].Name })
	out.MaxItems = len(out.Tables)
	writeXML(c.w, http.StatusOK, out)
}

// restColumn and restTableSchema are the table schema JSON the REST API embeds in a
// table's XML; tableschema.TableSchema.UnmarshalJSON decodes it (case-insensitively).
type restColumn struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Comment    string `json:"comment"`
	Label      string `json:"label"`
	IsNullable bool   `json:"isNullable"`
}

type restTableSchema struct {
	TableName        string       `json:"tableName"`
	Owner            string       `json:"owner"`
	Comment          string       `json:"comment"`
	CreateTime       int64        `json:"createTime"`
	LastDDLTime      int64        `json:"lastDDLTime"`
	LastModifiedTime int64        `json:"lastModifiedTime"`
	Lifecycle        int          `json:"lifecycle"`
	IsVirtualView    bool         `json:"isVirtualView"`
	IsExternal       bool         `json:"isExternal"`
	Size             int64        `json:"size"`
	RecordNum        int64        `json:"recordNum"`
	Columns          []restColumn `json:"columns"`
	PartitionKeys    []restColumn `json:"partitionKeys"`
}

type tableXML struct {
	XMLName xml.Name `xml:"Table"`
	Name    string   `xml:"Name"`
	TableID string   `xml:"TableId"`
	Schema  cdata    `xml:"Schema"`
	Comment string   `xml:"Comment"`
	Owner   string   `xml:"Owner"`
	Project string   `xml:"Project"`
	Type    string   `xml:"Type"`
}

type partitionsXML struct {
	XMLName    xml.Name       `xml:"Partitions"`
	Marker     string         `xml:"Marker"`
	MaxItems   int            `xml:"MaxItems"`
	Partitions []partitionXML `xml:"Partition"`
}

type partitionXML struct {
	Name                 string           `xml:"Name"`
	Columns              []partColumnAttr `xml:"Column"`
	CreationTime         int64            `xml:"CreationTime"`
	LastDDLTime          int64            `xml:"LastDDLTime"`
	LastModifiedTime     int64            `xml:"LastModifiedTime"`
	PartitionSize        int64            `xml:"PartitionSize"`
	PartitionRecordCount int64            `xml:"PartitionRecordCount"`
}

type partColumnAttr struct {
	Name  string `xml:"Name,attr"`
	Value string `xml:"Value,attr"`
}

type partitionDetailXML struct {
	XMLName xml.Name `xml:"Partition"`
	Schema  cdata    `xml:"Schema"`
}

func restColumns(cols []Column) []restColumn {
	out := make([]restColumn, len(cols))
	for i, c := range cols {
		out[i] = restColumn{Name: c.Name, Type: strings.ToLower(c.Type), Comment: c.Comment, IsNullable: !c.NotNull}
	}
	return out
}

func (s *Server) getTable(c *call, project, name string) {
	q := c.r.URL.Query()
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	t := s.store.st.Projects[project].Tables[name]
	if t == nil {
		s.fail(c, errNoSuchTableREST(project, name))
		return
	}
	switch {
	case q.Has("partitions"):
		s.listPartitionsLocked(c, t, q.Get("partition"))
	case q.Has("partition"):
		s.getPartitionLocked(c, project, t, q.Get("partition"), q.Has("extended"))
	default:
		records, size := t.recordCount()
		lifecycle := t.Lifecycle
		if lifecycle == 0 {
			lifecycle = -1
		}
		schema, _ := json.Marshal(restTableSchema{
			TableName:        t.Name,
			Owner:            s.owner(),
			Comment:          t.Comment,
			CreateTime:       t.Created.Unix(),
			LastDDLTime:      t.LastDDL.Unix(),
			LastModifiedTime: t.LastModified.Unix(),
			Lifecycle:        lifecycle,
			Size:             size,
			RecordNum:        records,
			Columns:          restColumns(t.Columns),
			PartitionKeys:    restColumns(t.PartitionKeys),
		})
		writeXML(c.w, http.StatusOK, tableXML{
			Name: t.Name, TableID: t.ID, Schema: cdata{string(schema)}, Comment: t.Comment,
			Owner: s.owner(), Project: project, Type: "MANAGED_TABLE",
		})
	}
}

// listPartitionsLocked answers both partition listings of table.go: GetPartitions reads the
// Column elements and GetPartitionValues (which sends name=) reads Name.
func (s *Server) listPartitionsLocked(c *call, t *tableMeta, filter string) {
	want, err := parsePartitionSpec(filter)
	if err != nil {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidParameter, "ODPS-0130071:Semantic analysis exception - %v", err))
		return
	}
	out := partitionsXML{}
	if t.partitioned() {
		for _, p := range t.Partitions {
			if !specMatches(p.Spec, want) {
				continue
			}
			records, size := p.recordCount()
			px := partitionXML{
				Name:                 p.Spec.name(),
				CreationTime:         p.Created.Unix(),
				LastDDLTime:          p.Created.Unix(),
				LastModifiedTime:     p.LastModified.Unix(),
				PartitionSize:        size,
				PartitionRecordCount: records,
			}
			for _, kv := range p.Spec {
				px.Columns = append(px.Columns, partColumnAttr{Name: kv.Key, Value: kv.Value})
			}
			out.Partitions = append(out.Partitions, px)
		}
	}
	sort.Slice(out.Partitions, func(i, j int) bool { return out.Partitions[i].Name < out.Partitions[j].Name })
	out.MaxItems = len(out.Partitions)
	writeXML(c.w, http.StatusOK, out)
}

// specMatches reports whether every key of want has the same value in spec.
func specMatches(spec, want partSpec) bool {
	for _, w := range want {
		found := false
		for _, kv := range spec {
			if kv.Key == w.Key && kv.Value == w.Value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (s *Server) getPartitionLocked(c *call, project string, t *tableMeta, raw string, extended bool) {
	spec, err := parsePartitionSpec(raw)
	if err == nil {
		spec, err = t.resolveSpec(spec)
	}
	var p *partitionMeta
	if err == nil && t.partitioned() {
		p = t.Partitions[spec.name()]
	}
	if p == nil {
		s.fail(c, newAPIError(http.StatusNotFound, codeNoSuchObject,
			"ODPS-0130131:Partition not found - partition %s of table %s.%s not found", raw, project, t.Name))
		return
	}
	records, size := p.recordCount()
	var body any = map[string]any{
		"createTime":         p.Created.Unix(),
		"lastDDLTime":        p.Created.Unix(),
		"lastModifiedTime":   p.LastModified.Unix(),
		"partitionRecordNum": records,
		"partitionSize":      size,
	}
	if extended {
		body = map[string]any{
			"FileNum": len(p.Segments), "IsArchived": false, "IsExstore": false,
			"LifeCycle": -1, "PhysicalSize": size, "Reserved": "",
		}
	}
	b, _ := json.Marshal(body)
	writeXML(c.w, http.StatusOK, partitionDetailXML{Schema: cdata{string(b)}})
}

// instanceRequest is the body of Instances.CreateTask. The task element is named after its
// type (<SQL>, <SQLCost>, ...).
type instanceRequest struct {
	XMLName xml.Name `xml:"Instance"`
	Job     struct {
		Tasks struct {
			Items []taskRequest `xml:",any"`
		} `xml:"Tasks"`
	} `xml:"Job"`
}

type taskRequest struct {
	XMLName xml.Name
	Name    string `xml:"Name"`
	Query   string `xml:"Query"`
}

// createInstance runs the submitted task synchronously and answers 201 with the instance's
// Location, so Instance.WaitForSuccess finds it terminated on its first poll.
func (s *Server) createInstance(c *call, project string) {
	var req instanceRequest
	if err := xml.NewDecoder(c.r.Body).Decode(&req); err != nil {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidParameter, "invalid instance document: %v", err))
		return
	}
	if len(req.Job.Tasks.Items) != 1 {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidParameter,
			"the odpsemu emulator runs instances of exactly one task, got %d", len(req.Job.Tasks.Items)))
		return
	}
	task := req.Job.Tasks.Items[0]
	in := &instance{
		ID:       newSessionID(s.now()),
		Project:  project,
		TaskName: task.Name,
		TaskType: task.XMLName.Local,
		Start:    s.now(),
	}
	var err error
	if in.TaskType == "SQL" {
		in.Result, err = s.execSQL(project, task.Query)
	} else {
		err = fmt.Errorf("ODPS-0130161:[1,1] Parse exception - task type %s is not supported by the odpsemu emulator (only SQL)", in.TaskType)
	}
	in.Success = err == nil
	if err != nil {
		in.Result = err.Error()
	}
	in.End = s.now()

	s.store.mu.Lock()
	s.store.st.Instances[in.ID] = in
	s.store.pruneLocked(in.End)
	serr := s.store.saveLocked()
	s.store.mu.Unlock()
	if serr != nil {
		s.fail(c, serr)
		return
	}
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	c.w.Header().Set("Location", fmt.Sprintf("%s://%s/api/projects/%s/instances/%s", scheme, c.r.Host, project, in.ID))
	c.w.WriteHeader(http.StatusCreated)
}

func (s *Server) lookupInstance(project, id string) *instance {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	in := s.store.st.Instances[id]
	if in == nil || in.Project != project {
		return nil
	}
	copied := *in
	return &copied
}

type instanceStatusXML struct {
	XMLName xml.Name `xml:"Instance"`
	Status  string   `xml:"Status"`
}

type instanceTasksXML struct {
	XMLName xml.Name      `xml:"Instance"`
	Tasks   []taskInfoXML `xml:"Tasks>Task"`
}

type taskInfoXML struct {
	Type      string         `xml:"Type,attr"`
	Name      string         `xml:"Name"`
	StartTime string         `xml:"StartTime,omitempty"`
	EndTime   string         `xml:"EndTime,omitempty"`
	Status    string         `xml:"Status"`
	Result    *taskResultXML `xml:"Result,omitempty"`
}

type taskResultXML struct {
	Transform string `xml:"Transform,attr"`
	Format    string `xml:"Format,attr"`
	Content   string `xml:",cdata"`
}

func (s *Server) getInstance(c *call, project, id string) {
	in := s.lookupInstance(project, id)
	if in == nil {
		s.fail(c, errNoSuchInstance(id))
		return
	}
	q := c.r.URL.Query()
	status := "Success"
	if !in.Success {
		status = "Failed"
	}
	task := taskInfoXML{Type: in.TaskType, Name: in.TaskName, Status: status}
	switch {
	case q.Has("taskstatus"):
		task.StartTime, task.EndTime = gmt(in.Start), gmt(in.End)
		writeXML(c.w, http.StatusOK, instanceTasksXML{Tasks: []taskInfoXML{task}})
	case q.Has("result"):
		task.Result = &taskResultXML{Format: "text", Content: in.Result}
		writeXML(c.w, http.StatusOK, instanceTasksXML{Tasks: []taskInfoXML{task}})
	case q.Has("instanceprogress"):
		writeXML(c.w, http.StatusOK, struct {
			XMLName xml.Name `xml:"Progress"`
		}{})
	case q.Has("instancesummary") || q.Has("instancedetail") || q.Has("instancequota") || q.Has("cached"):
		s.fail(c, errRESTUnsupported(c.r))
	default:
		h := c.w.Header()
		h.Set("x-odps-owner", s.owner())
		h.Set("x-odps-start-time", gmt(in.Start))
		h.Set("x-odps-end-time", gmt(in.End))
		writeXML(c.w, http.StatusOK, instanceStatusXML{Status: "Terminated"})
	}
}
