package odpsemu

import (
	"bufio"
	"crypto/rand"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// On-disk layout under Options.Dir:
//
//	state.json                          all metadata: projects, tables, schemas, partitions and
//	                                    their data segments, upload/download sessions, instances
//	blocks/<uploadID>/<blockID>.<v>.rows one uploaded block (gob-encoded rows)
//
// A committed partition refers to the block files of the sessions committed into it, so a
// commit only rewrites state.json (write to a temporary file, then rename): it is atomic. Files
// that nothing refers to any more are deleted by gcLocked.
const (
	stateFile    = "state.json"
	blocksDir    = "blocks"
	stateVersion = 1

	// maxInstances bounds how many SQL instances are remembered.
	maxInstances = 1000
	// sessionRetention is how long an expired or committed session is remembered after its
	// expiry before it is forgotten (then it is NoSuchUpload / NoSuchDownload).
	sessionRetention = 24 * time.Hour
)

type state struct {
	Version   int                         `json:"version"`
	Projects  map[string]*projectMeta     `json:"projects"`
	Uploads   map[string]*uploadSession   `json:"uploads"`
	Downloads map[string]*downloadSession `json:"downloads"`
	Instances map[string]*instance        `json:"instances"`
}

type projectMeta struct {
	Name    string                `json:"name"`
	Created time.Time             `json:"created"`
	Tables  map[string]*tableMeta `json:"tables"`
}

type tableMeta struct {
	Name          string    `json:"name"`
	ID            string    `json:"id"`
	Comment       string    `json:"comment,omitempty"`
	Lifecycle     int       `json:"lifecycle,omitempty"`
	Columns       []Column  `json:"columns"`
	PartitionKeys []Column  `json:"partitionKeys,omitempty"`
	Created       time.Time `json:"created"`
	LastDDL       time.Time `json:"lastDDL"`
	LastModified  time.Time `json:"lastModified"`
	// Partitions by partSpec.name(); a non-partitioned table has the single key "".
	Partitions map[string]*partitionMeta `json:"partitions"`
}

type partitionMeta struct {
	Spec         partSpec  `json:"spec"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
	Segments     []segment `json:"segments"`
}

// segment is one immutable file of rows.
type segment struct {
	File    string `json:"file"` // relative to Options.Dir
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

type uploadSession struct {
	ID              string             `json:"id"`
	Project         string             `json:"project"`
	Table           string             `json:"table"`
	TableID         string             `json:"tableId"`
	Columns         []Column           `json:"columns"`
	PartitionKeys   []Column           `json:"partitionKeys,omitempty"`
	Partition       partSpec           `json:"partition,omitempty"`
	Overwrite       bool               `json:"overwrite,omitempty"`
	CreatePartition bool               `json:"createPartition,omitempty"`
	Committed       bool               `json:"committed,omitempty"`
	Created         time.Time          `json:"created"`
	Expires         time.Time          `json:"expires"`
	Blocks          map[int]*blockMeta `json:"blocks"`
}

type blockMeta struct {
	ID      int       `json:"id"`
	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	segment
}

type downloadSession struct {
	ID            string    `json:"id"`
	Project       string    `json:"project"`
	Table         string    `json:"table"`
	TableID       string    `json:"tableId"`
	Columns       []Column  `json:"columns"`
	PartitionKeys []Column  `json:"partitionKeys,omitempty"`
	Partition     partSpec  `json:"partition,omitempty"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires"`
	Records       int64     `json:"records"`
	Segments      []segment `json:"segments"`
}

type instance struct {
	ID       string    `json:"id"`
	Project  string    `json:"project"`
	TaskName string    `json:"taskName"`
	TaskType string    `json:"taskType"`
	Success  bool      `json:"success"`
	Result   string    `json:"result"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
}

// store owns the emulator's state and its files. Handlers take mu for any access to st.
type store struct {
	dir string
	mu  sync.Mutex
	st  *state
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, blocksDir), 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	s := &store{dir: dir, st: &state{Version: stateVersion}}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read state: %w", err)
	default:
		if err := json.Unmarshal(b, s.st); err != nil {
			return nil, fmt.Errorf("decode %s: %w", stateFile, err)
		}
		if s.st.Version != stateVersion {
			return nil, fmt.Errorf("%s has version %d, want %d", stateFile, s.st.Version, stateVersion)
		}
	}
	if s.st.Projects == nil {
		s.st.Projects = map[string]*projectMeta{}
	}
	if s.st.Uploads == nil {
		s.st.Uploads = map[string]*uploadSession{}
	}
	if s.st.Downloads == nil {
		s.st.Downloads = map[string]*downloadSession{}
	}
	if s.st.Instances == nil {
		s.st.Instances = map[string]*instance{}
	}
	return s, nil
}

// saveLocked writes state.json atomically.
func (s *store) saveLocked() error {
	b, err := json.MarshalIndent(s.st, "", " ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	_, werr := tmp.Write(b)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(s.dir, stateFile))
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save state: %w", werr)
	}
	return nil
}

// pruneLocked forgets sessions past their retention and the oldest instances, and deletes
// the row files only forgotten sessions referred to.
func (s *store) pruneLocked(now time.Time) {
	pruned := false
	for id, u := range s.st.Uploads {
		if now.After(u.Expires.Add(sessionRetention)) {
			delete(s.st.Uploads, id)
			pruned = true
		}
	}
	for id, d := range s.st.Downloads {
		if now.After(d.Expires.Add(sessionRetention)) {
			delete(s.st.Downloads, id)
			pruned = true
		}
	}
	if len(s.st.Instances) > maxInstances {
		all := make([]*instance, 0, len(s.st.Instances))
		for _, in := range s.st.Instances {
			all = append(all, in)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].Start.Before(all[j].Start) })
		for _, in := range all[:len(all)-maxInstances] {
			delete(s.st.Instances, in.ID)
		}
	}
	if pruned {
		s.gcLocked(false)
	}
}

// gcLocked deletes row files that no partition, upload session or download session refers to.
// With startup set it also removes temporary files left by an interrupted upload.
func (s *store) gcLocked(startup bool) {
	live := map[string]bool{}
	for _, p := range s.st.Projects {
		for _, t := range p.Tables {
			for _, part := range t.Partitions {
				for _, seg := range part.Segments {
					live[seg.File] = true
				}
			}
		}
	}
	for _, u := range s.st.Uploads {
		for _, b := range u.Blocks {
			live[b.File] = true
		}
	}
	for _, d := range s.st.Downloads {
		for _, seg := range d.Segments {
			live[seg.File] = true
		}
	}
	root := filepath.Join(s.dir, blocksDir)
	_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(rel, ".rows") && !live[rel]:
			_ = os.Remove(path)
		case strings.HasSuffix(rel, ".tmp") && startup:
			_ = os.Remove(path)
		}
		return nil
	})
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() {
			_ = os.Remove(filepath.Join(root, e.Name())) // only succeeds when empty
		}
	}
}

// blockFile is the path, relative to the state directory, of a block's rows.
func blockFile(uploadID string, blockID int, version int64) string {
	return fmt.Sprintf("%s/%s/%d.%d.rows", blocksDir, uploadID, blockID, version)
}

// rowFileWriter streams rows into a temporary file that commit moves to its final name.
type rowFileWriter struct {
	f   *os.File
	bw  *bufio.Writer
	enc *gob.Encoder
	n   int64
}

func (s *store) newRowFile(uploadID string) (*rowFileWriter, error) {
	dir := filepath.Join(s.dir, blocksDir, uploadID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create block directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "block-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create block file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	return &rowFileWriter{f: f, bw: bw, enc: gob.NewEncoder(bw)}, nil
}

func (w *rowFileWriter) write(r row) error {
	w.n++
	return w.enc.Encode(r)
}

// commit flushes the file and renames it to rel; it returns the file size.
func (w *rowFileWriter) commit(dir, rel string) (int64, error) {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		return 0, fmt.Errorf("write block file: %w", err)
	}
	fi, err := os.Stat(w.f.Name())
	if err != nil {
		return 0, fmt.Errorf("stat block file: %w", err)
	}
	if err := os.Rename(w.f.Name(), filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
		_ = os.Remove(w.f.Name())
		return 0, fmt.Errorf("publish block file: %w", err)
	}
	return fi.Size(), nil
}

func (w *rowFileWriter) abort() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// readSegment calls fn for each row of seg, skipping the first skip rows, until fn returns
// false or the file ends.
func (s *store) readSegment(seg segment, skip int64, fn func(row) bool) error {
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(seg.File)))
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	for i := int64(0); ; i++ {
		var r row
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read segment %s: %w", seg.File, err)
		}
		if i < skip {
			continue
		}
		if !fn(r) {
			return nil
		}
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newSessionID returns an id shaped like the service's: a timestamp and random hex.
func newSessionID(now time.Time) string {
	return now.UTC().Format("20060102150405") + newID()
}

func (t *tableMeta) partitioned() bool { return len(t.PartitionKeys) > 0 }

// resolveSpec checks that spec names exactly the table's partition columns, in order, and
// returns it normalized.
func (t *tableMeta) resolveSpec(spec partSpec) (partSpec, error) {
	if len(spec) != len(t.PartitionKeys) {
		return nil, fmt.Errorf("partition spec %q does not name all partition columns of %s (%s)",
			spec.name(), t.Name, columnNames(t.PartitionKeys))
	}
	out := make(partSpec, len(spec))
	for i, kv := range spec {
		col := t.PartitionKeys[i]
		if kv.Key != col.Name {
			return nil, fmt.Errorf("partition spec %q: expected partition column %s at level %d, got %s",
				spec.name(), col.Name, i+1, kv.Key)
		}
		if err := validatePartitionValue(col, kv.Value); err != nil {
			return nil, err
		}
		out[i] = kv
	}
	return out, nil
}

func (t *tableMeta) recordCount() (n int64, size int64) {
	for _, p := range t.Partitions {
		for _, seg := range p.Segments {
			n += seg.Records
			size += seg.Bytes
		}
	}
	return n, size
}

func (p *partitionMeta) recordCount() (n int64, size int64) {
	for _, seg := range p.Segments {
		n += seg.Records
		size += seg.Bytes
	}
	return n, size
}

func columnNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}
