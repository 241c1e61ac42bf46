package odpsemu

import (
	"errors"
	"net/http"
	"sort"
	"strconv"
)

// maxBlockID is the exclusive upper bound of block ids (the service allows 20000 blocks per
// session).
const maxBlockID = 20000

// uploadStatusJSON is the session document tunnel/upload_session.go (loadInformation) decodes.
type uploadStatusJSON struct {
	Initiated         string       `json:"Initiated"`
	IsOverwrite       bool         `json:"IsOverwrite"`
	MaxFieldSize      int          `json:"MaxFieldSize"`
	Owner             string       `json:"Owner"`
	Schema            tunnelSchema `json:"Schema"`
	Status            string       `json:"Status"`
	UploadID          string       `json:"UploadID"`
	QuotaName         string       `json:"QuotaName"`
	UploadedBlockList []blockJSON  `json:"UploadedBlockList"`
}

type blockJSON struct {
	BlockID     int    `json:"BlockID"`
	CreateTime  int64  `json:"CreateTime"`
	Date        string `json:"Date"`
	FileName    string `json:"FileName"`
	RecordCount int64  `json:"RecordCount"`
	Version     int64  `json:"Version"`
}

// uploadStatus is the session's status as the service names it: "normal" while open,
// "closed" once committed, "expired" after its lifetime.
func (s *Server) uploadStatus(u *uploadSession) string {
	switch {
	case u.Committed:
		return "closed"
	case !s.now().Before(u.Expires):
		return "expired"
	default:
		return "normal"
	}
}

func (s *Server) uploadJSON(u *uploadSession) uploadStatusJSON {
	out := uploadStatusJSON{
		Initiated:         gmt(u.Created),
		IsOverwrite:       u.Overwrite,
		MaxFieldSize:      maxFieldSize,
		Owner:             s.owner(),
		Schema:            newTunnelSchema(u.Columns, u.PartitionKeys),
		Status:            s.uploadStatus(u),
		UploadID:          u.ID,
		UploadedBlockList: []blockJSON{},
	}
	for _, b := range sortedBlocks(u) {
		out.UploadedBlockList = append(out.UploadedBlockList, blockJSON{
			BlockID:     b.ID,
			CreateTime:  b.Created.Unix(),
			Date:        gmt(b.Created),
			FileName:    b.File,
			RecordCount: b.Records,
			Version:     b.Version,
		})
	}
	return out
}

func sortedBlocks(u *uploadSession) []*blockMeta {
	blocks := make([]*blockMeta, 0, len(u.Blocks))
	for _, b := range u.Blocks {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].ID < blocks[j].ID })
	return blocks
}

func (s *Server) createUpload(c *call, project, table string) {
	q := c.r.URL.Query()
	now := s.now()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	t, aerr := s.tableForTunnelLocked(project, table)
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	spec, aerr := specForTunnel(t, q.Get("partition"))
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	if aerr := s.quotas.admit(project, t.Name, quotaUploadSessions); aerr != nil {
		s.fail(c, aerr)
		return
	}
	createPartition := q.Has("create_partition") && q.Get("create_partition") != "false"
	if t.partitioned() && t.Partitions[spec.name()] == nil {
		if !createPartition {
			s.fail(c, errNoSuchPartitionTunnel(spec.sql()))
			return
		}
		// The emulator creates the partition with the session: it exists, empty, even if the
		// session is never committed.
		t.Partitions[spec.name()] = &partitionMeta{Spec: spec, Created: now, LastModified: now}
	}
	u := &uploadSession{
		ID:              newSessionID(now),
		Project:         project,
		Table:           t.Name,
		TableID:         t.ID,
		Columns:         t.Columns,
		PartitionKeys:   t.PartitionKeys,
		Partition:       spec,
		Overwrite:       q.Get("overwrite") == "true",
		CreatePartition: createPartition,
		Created:         now,
		Expires:         now.Add(s.opts.SessionTTL),
		Blocks:          map[int]*blockMeta{},
	}
	st.st.Uploads[u.ID] = u
	st.pruneLocked(now)
	if err := st.saveLocked(); err != nil {
		s.fail(c, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, s.uploadJSON(u))
}

// lookupUploadLocked finds the session of a request and checks it names the same resource.
func (s *Server) lookupUploadLocked(c *call, project, table string) (*uploadSession, *apiError) {
	id := c.r.URL.Query().Get("uploadid")
	u := s.store.st.Uploads[id]
	if u == nil {
		return nil, newAPIError(http.StatusNotFound, codeNoSuchUpload, "The specified upload id does not exist: %s", id)
	}
	if aerr := checkSessionResource(project, table, c.r, u.Project, u.Table, u.Partition); aerr != nil {
		return nil, aerr
	}
	return u, nil
}

// writableLocked reports why u can no longer take blocks or a commit, if it cannot.
func (s *Server) writableLocked(u *uploadSession) *apiError {
	switch s.uploadStatus(u) {
	case "closed":
		return errSessionClosed()
	case "expired":
		return errSessionExpired("upload")
	}
	return nil
}

func (s *Server) getUpload(c *call, project, table string) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	u, aerr := s.lookupUploadLocked(c, project, table)
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	writeJSON(c.w, http.StatusOK, s.uploadJSON(u))
}

// uploadBlock decodes and verifies a block (outside the lock), stores its rows in a file and
// then registers it with the session, replacing an earlier upload of the same block id.
func (s *Server) uploadBlock(c *call, project, table string) {
	blockID, err := strconv.Atoi(c.r.URL.Query().Get("blockid"))
	if err != nil || blockID < 0 || blockID >= maxBlockID {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidBlockID,
			"The specified block id is not valid: %q (must be 0..%d)", c.r.URL.Query().Get("blockid"), maxBlockID-1))
		return
	}

	s.store.mu.Lock()
	u, aerr := s.lookupUploadLocked(c, project, table)
	if aerr == nil {
		aerr = s.writableLocked(u)
	}
	if aerr == nil {
		aerr = s.quotas.admit(u.Project, u.Table, quotaBlocks)
	}
	var (
		uploadID string
		cols     []Column
	)
	if aerr == nil {
		uploadID, cols = u.ID, u.Columns
	}
	s.store.mu.Unlock()
	if aerr != nil {
		s.fail(c, aerr)
		return
	}

	body, err := decodingReader(c.r.Header.Get("Content-Encoding"), c.r.Body)
	if err != nil {
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidArgument, "%v", err))
		return
	}
	defer body.Close()
	w, err := s.store.newRowFile(uploadID)
	if err != nil {
		s.fail(c, err)
		return
	}
	records, err := decodeBlock(body, cols, w.write)
	if err != nil {
		w.abort()
		s.fail(c, blockError(err))
		return
	}

	now := s.now()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	u, aerr = s.lookupUploadLocked(c, project, table)
	if aerr == nil {
		aerr = s.writableLocked(u) // it may have been committed or expired meanwhile
	}
	if aerr != nil {
		w.abort()
		s.fail(c, aerr)
		return
	}
	old := u.Blocks[blockID]
	b := &blockMeta{ID: blockID, Version: 1, Created: now}
	if old != nil {
		b.Version = old.Version + 1
	}
	b.File = blockFile(u.ID, blockID, b.Version)
	b.Records = records
	if b.Bytes, err = w.commit(st.dir, b.File); err != nil {
		s.fail(c, err)
		return
	}
	u.Blocks[blockID] = b
	if err := st.saveLocked(); err != nil {
		u.Blocks[blockID] = old
		s.fail(c, err)
		return
	}
	if old != nil {
		st.gcLocked(false)
	}
	c.w.WriteHeader(http.StatusOK)
}

// blockError maps a failed block decode to the service's error.
func blockError(err error) error {
	var se *streamError
	var src *sourceError
	switch {
	case errors.As(err, &se) && se.corrupt:
		return newAPIError(http.StatusBadRequest, codeCorruptedDataStream, "The data stream was corrupted: %s", se.msg)
	case errors.As(err, &se):
		return newAPIError(http.StatusBadRequest, codeMalformedDataStream,
			"The data stream you provided was not well-formed or did not validate against schema: %s", se.msg)
	case errors.As(err, &src):
		return newAPIError(http.StatusBadRequest, codeCorruptedDataStream, "The data stream could not be read: %v", src.err)
	default:
		return err
	}
}

// commitUpload publishes the session's blocks to its partition in one state write: appended,
// or replacing the partition's rows when the session was created with overwrite.
func (s *Server) commitUpload(c *call, project, table string) {
	now := s.now()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	u, aerr := s.lookupUploadLocked(c, project, table)
	if aerr == nil {
		aerr = s.writableLocked(u)
	}
	if aerr == nil {
		aerr = s.quotas.admit(u.Project, u.Table, quotaCommits)
	}
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	t, aerr := s.tableForTunnelLocked(u.Project, u.Table)
	if aerr == nil && t.ID != u.TableID {
		aerr = errNoSuchTableTunnel(u.Project, u.Table) // dropped and created again since
	}
	if aerr != nil {
		s.fail(c, aerr)
		return
	}
	key := u.Partition.name()
	part := t.Partitions[key]
	created := false
	if part == nil {
		if !u.CreatePartition {
			s.fail(c, errNoSuchPartitionTunnel(u.Partition.sql()))
			return
		}
		part = &partitionMeta{Spec: u.Partition, Created: now}
		t.Partitions[key] = part
		created = true
	}

	prevSegments, prevModified, prevTableModified := part.Segments, part.LastModified, t.LastModified
	var segs []segment
	for _, b := range sortedBlocks(u) {
		segs = append(segs, b.segment)
	}
	if u.Overwrite {
		part.Segments = segs
	} else {
		part.Segments = append(append([]segment{}, part.Segments...), segs...)
	}
	part.LastModified, t.LastModified = now, now
	u.Committed = true
	if err := st.saveLocked(); err != nil {
		part.Segments, part.LastModified, t.LastModified = prevSegments, prevModified, prevTableModified
		u.Committed = false
		if created {
			delete(t.Partitions, key)
		}
		s.fail(c, err)
		return
	}
	if u.Overwrite {
		st.gcLocked(false)
	}
	s.log.Debug("odpsemu commit", "upload_id", u.ID, "table", u.Project+"."+u.Table, "partition", key,
		"blocks", len(segs), "overwrite", u.Overwrite)
	writeJSON(c.w, http.StatusOK, s.uploadJSON(u))
}
