package cluster

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// historyLimit is how many config versions the state machine keeps, the current one
// included. It is a constant, not a setting: every node must drop the same versions.
const historyLimit = 50

// ConfigVersion is one committed version of the cluster-wide config document.
type ConfigVersion struct {
	// Version counts the committed documents: 1, 2, 3, ... in commit order.
	Version uint64 `json:"version"`
	// Document is the document as applied, byte for byte.
	Document []byte `json:"document"`
	// Author, Time and Comment say who changed it, when (by the proposer's clock), and
	// why.
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time"`
	Comment string    `json:"comment,omitempty"`
	// Index is the raft log index that committed it.
	Index uint64 `json:"index"`
}

// FileInfo describes a replicated file without its content.
type FileInfo struct {
	Name string
	Size int
	// SHA256 is the hex digest of the content.
	SHA256 string
	// Index is the raft log index that last wrote it.
	Index uint64
}

// storedFile is a replicated file in the state machine.
type storedFile struct {
	Data  []byte `json:"data"`
	Index uint64 `json:"index"`
}

// fsm is the replicated state machine: the config document with its bounded history,
// the replicated files, and the admitted nodes (admission.go). raft calls Apply with committed entries in log order, and
// Snapshot and Restore; readers take copies under mu.
type fsm struct {
	log   *slog.Logger
	store *fileStore

	// mu guards history, files and admitted. Values are never modified once stored
	// (the maps are replaced, not changed), so copies may share them.
	mu       sync.RWMutex
	history  []ConfigVersion // oldest first; the last is current
	files    map[string]storedFile
	admitted map[string]AdmittedNode // by node name

	refused atomic.Uint64 // entries of unknown type refused since start
}

var _ raft.FSM = (*fsm)(nil)

// newFSM returns an empty state machine. It empties the files directory to match: raft
// restores the latest snapshot and replays the log into it next.
func newFSM(log *slog.Logger, store *fileStore) (*fsm, error) {
	f := &fsm{log: log, store: store, files: map[string]storedFile{}}
	if err := store.reconcile(f.files); err != nil {
		return nil, err
	}
	return f, nil
}

// Apply applies one committed entry. It returns the new version (uint64) for a config
// put, nil for a files put or a member entry, and an error for an entry it refuses; a refused entry
// changes nothing, on every node alike.
func (f *fsm) Apply(l *raft.Log) any {
	if len(l.Data) == 0 {
		return f.refuse(l, 0)
	}
	t := entryType(l.Data[0])
	switch t {
	case entryConfigPut:
		var e configPutEntry
		if err := json.Unmarshal(l.Data[1:], &e); err != nil {
			return f.malformed(l, t, err)
		}
		return f.applyConfigPut(l.Index, &e)
	case entryFilesPut:
		var e filesPutEntry
		if err := json.Unmarshal(l.Data[1:], &e); err != nil {
			return f.malformed(l, t, err)
		}
		return f.applyFilesPut(l.Index, &e)
	case entryMember:
		var e memberEntry
		if err := json.Unmarshal(l.Data[1:], &e); err != nil {
			return f.malformed(l, t, err)
		}
		return f.applyMember(l.Index, &e)
	default:
		return f.refuse(l, byte(t))
	}
}

// refuse answers an entry this version does not know. Skipping it silently would let
// a mixed-version cluster disagree without anyone noticing; so it is logged as an
// error on every node, counted in Status, and answered with an error.
func (f *fsm) refuse(l *raft.Log, t byte) error {
	f.refused.Add(1)
	err := &UnknownEntryError{Type: t, Index: l.Index}
	f.log.Error("refusing raft entry of unknown type; upgrade this node to the version the other nodes run",
		"index", l.Index, "type", t, "size", len(l.Data))
	return err
}

// malformed answers an entry of a known type whose payload does not decode: refused on
// every node alike, and logged like an unknown type.
func (f *fsm) malformed(l *raft.Log, t entryType, err error) error {
	err = fmt.Errorf("raft entry %d (%v) refused: payload does not decode: %w", l.Index, t, err)
	f.log.Error("refusing malformed raft entry", "index", l.Index, "type", t.String(), "err", err)
	return err
}

func (f *fsm) applyConfigPut(index uint64, e *configPutEntry) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cur uint64
	if n := len(f.history); n > 0 {
		cur = f.history[n-1].Version
	}
	if e.BaseVersion != nil && *e.BaseVersion != cur {
		return fmt.Errorf("%w: the change is based on version %d, but version %d is current", ErrVersionConflict, *e.BaseVersion, cur)
	}
	v := ConfigVersion{
		Version:  cur + 1,
		Document: e.Document,
		Author:   e.Author,
		Time:     e.Time,
		Comment:  e.Comment,
		Index:    index,
	}
	// A new slice, so that copies handed out by History stay as they were.
	h := make([]ConfigVersion, 0, historyLimit)
	h = append(h, f.history[max(0, len(f.history)-historyLimit+1):]...)
	f.history = append(h, v)
	return v.Version
}

func (f *fsm) applyFilesPut(index uint64, e *filesPutEntry) any {
	for name := range e.Put {
		if err := checkFileName(name); err != nil {
			return fmt.Errorf("raft entry %d refused: %w", index, err)
		}
	}
	for _, name := range e.Delete {
		if err := checkFileName(name); err != nil {
			return fmt.Errorf("raft entry %d refused: %w", index, err)
		}
	}
	f.mu.Lock()
	files := maps.Clone(f.files)
	for _, name := range e.Delete {
		delete(files, name)
	}
	for name, data := range e.Put {
		files[name] = storedFile{Data: data, Index: index}
	}
	f.files = files
	f.mu.Unlock()

	// The on-disk copies follow. A failure here is this machine's (a full disk), not
	// the cluster's: the entry is committed everywhere, so it is logged, and the next
	// write or restore rewrites the directory.
	var errs []error
	for _, name := range e.Delete {
		errs = append(errs, f.store.remove(name))
	}
	for _, name := range slices.Sorted(maps.Keys(e.Put)) {
		errs = append(errs, f.store.write(name, e.Put[name]))
	}
	if err := errors.Join(errs...); err != nil {
		f.log.Error("replicated files committed but not written to disk here", "index", index, "err", err)
	}
	return nil
}

// current returns the current config version; ok is false before the first one.
func (f *fsm) current() (ConfigVersion, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.history) == 0 {
		return ConfigVersion{}, false
	}
	return f.history[len(f.history)-1], true
}

// History returns the kept versions, oldest first.
func (f *fsm) History() []ConfigVersion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.history)
}

func (f *fsm) fileInfos() []FileInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]FileInfo, 0, len(f.files))
	for name, sf := range f.files {
		sum := sha256.Sum256(sf.Data)
		out = append(out, FileInfo{Name: name, Size: len(sf.Data), SHA256: hex.EncodeToString(sum[:]), Index: sf.Index})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fsm) file(name string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	sf, ok := f.files[name]
	return slices.Clone(sf.Data), ok
}

// snapshotFormat is the first byte of a snapshot; a version that cannot read a format
// refuses the snapshot instead of guessing. Format 2 added the admitted nodes (an
// older version would drop them silently); this version reads 1 and 2.
const snapshotFormat = 2

// snapshotState is what a snapshot holds, after its format byte, as JSON.
type snapshotState struct {
	History  []ConfigVersion         `json:"history"`
	Files    map[string]storedFile   `json:"files"`
	Admitted map[string]AdmittedNode `json:"admitted,omitempty"`
}

// Snapshot captures the state; raft persists it in the background while Apply goes on,
// which is safe because stored values are never modified.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{st: snapshotState{History: slices.Clone(f.history), Files: maps.Clone(f.files), Admitted: maps.Clone(f.admitted)}}, nil
}

// Restore replaces the state with a snapshot's and rewrites the files directory.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReader(rc)
	format, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("reading snapshot: %w", err)
	}
	if format != 1 && format != snapshotFormat {
		return fmt.Errorf("snapshot format %d is not known to this version (it reads 1 to %d)", format, snapshotFormat)
	}
	var st snapshotState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("decoding snapshot: %w", err)
	}
	if st.Files == nil {
		st.Files = map[string]storedFile{}
	}
	for name := range st.Files {
		if err := checkFileName(name); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	for name := range st.Admitted {
		if !nameRE.MatchString(name) {
			return fmt.Errorf("snapshot: admitted node name %q is not valid", name)
		}
	}
	f.mu.Lock()
	f.history, f.files, f.admitted = st.History, st.Files, st.Admitted
	f.mu.Unlock()
	if err := f.store.reconcile(st.Files); err != nil {
		f.log.Error("snapshot restored but replicated files not written to disk here", "err", err)
	}
	return nil
}

type fsmSnapshot struct {
	st snapshotState
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	err := w.WriteByte(snapshotFormat)
	if err == nil {
		err = json.NewEncoder(w).Encode(&s.st)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
