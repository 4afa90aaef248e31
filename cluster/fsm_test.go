package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

func newTestFSM(t *testing.T) (*fsm, *logState) {
	t.Helper()
	log, logs := newTestLog(t)
	store, err := newFileStore(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFSM(log, store)
	if err != nil {
		t.Fatal(err)
	}
	return f, logs
}

// entry encodes a raft log entry at index.
func entry(t *testing.T, index uint64, typ entryType, payload any) *raft.Log {
	t.Helper()
	data, err := encodeEntry(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

var t0 = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)

// putDoc applies a config put, based on the version base if one is given.
func putDoc(t *testing.T, f *fsm, index uint64, doc string, base ...uint64) any {
	t.Helper()
	e := &configPutEntry{Document: []byte(doc), Author: "ops", Time: t0.Add(time.Duration(index) * time.Second), Comment: "c" + doc}
	if len(base) > 0 {
		e.BaseVersion = &base[0]
	}
	return f.Apply(entry(t, index, entryConfigPut, e))
}

// dirFiles lists a directory's files with their content and mode.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = info.Mode().String() + " " + string(b)
	}
	return out
}

func TestFSMConfigPut(t *testing.T) {
	f, _ := newTestFSM(t)
	if _, ok := f.current(); ok {
		t.Fatal("a new state machine has a current version")
	}
	if got := putDoc(t, f, 3, "one", 0); got != uint64(1) {
		t.Fatalf("first put based on none = %v, want version 1", got)
	}
	if got := putDoc(t, f, 4, "two", 1); got != uint64(2) {
		t.Fatalf("put based on 1 = %v, want version 2", got)
	}
	for _, base := range []uint64{0, 1, 3} {
		got := putDoc(t, f, 5, "stale", base)
		if err, ok := got.(error); !ok || !errors.Is(err, ErrVersionConflict) {
			t.Fatalf("put based on version %d = %v, want ErrVersionConflict", base, got)
		}
	}
	want := ConfigVersion{Version: 2, Document: []byte("two"), Author: "ops", Time: t0.Add(4 * time.Second), Comment: "ctwo", Index: 4}
	cur, ok := f.current()
	if diff := cmp.Diff(want, cur); !ok || diff != "" {
		t.Errorf("current (-want +got):\n%s", diff)
	}
	if n := len(f.History()); n != 2 {
		t.Errorf("history has %d versions, want 2", n)
	}
}

func TestFSMHistoryBounded(t *testing.T) {
	f, _ := newTestFSM(t)
	old := f.History()
	for i := uint64(1); i <= historyLimit+10; i++ {
		putDoc(t, f, i, "doc")
		if i == 5 {
			old = f.History()
		}
	}
	h := f.History()
	if len(h) != historyLimit {
		t.Fatalf("history has %d versions, want %d", len(h), historyLimit)
	}
	if h[0].Version != 11 || h[len(h)-1].Version != historyLimit+10 {
		t.Errorf("history holds versions %d-%d, want 11-%d", h[0].Version, h[len(h)-1].Version, historyLimit+10)
	}
	if len(old) != 5 || old[4].Version != 5 {
		t.Errorf("a copy taken earlier changed: %d versions", len(old))
	}
}

func TestFSMFilesPut(t *testing.T) {
	f, _ := newTestFSM(t)
	dir := f.store.dir
	if r := f.Apply(entry(t, 1, entryFilesPut, &filesPutEntry{Put: map[string][]byte{"web.crt": []byte("CERT"), "web.key": []byte("KEY")}})); r != nil {
		t.Fatalf("files put = %v", r)
	}
	if r := f.Apply(entry(t, 2, entryFilesPut, &filesPutEntry{Put: map[string][]byte{"web.key": []byte("KEY2")}, Delete: []string{"web.crt", "absent"}})); r != nil {
		t.Fatalf("files put = %v", r)
	}
	want := map[string]string{"web.key": "-rw------- KEY2"}
	if diff := cmp.Diff(want, dirFiles(t, dir)); diff != "" {
		t.Errorf("files on disk (-want +got):\n%s", diff)
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("files directory mode = %v, %v; want 0700", info.Mode(), err)
	}
	infos := f.fileInfos()
	if len(infos) != 1 || infos[0].Name != "web.key" || infos[0].Size != 4 || infos[0].Index != 2 {
		t.Errorf("file infos = %+v", infos)
	}

	for _, bad := range []string{"../etc/passwd", ".hidden", "a/b", ""} {
		r := f.Apply(entry(t, 3, entryFilesPut, &filesPutEntry{Put: map[string][]byte{bad: []byte("x")}}))
		if _, ok := r.(error); !ok {
			t.Errorf("file name %q accepted", bad)
		}
	}
	if diff := cmp.Diff(want, dirFiles(t, dir)); diff != "" {
		t.Errorf("refused entries changed the files (-want +got):\n%s", diff)
	}
}

func TestFSMRefusesUnknownEntry(t *testing.T) {
	f, logs := newTestFSM(t)
	putDoc(t, f, 1, "one")
	before := f.History()
	for _, data := range [][]byte{{0x7f, '{', '}'}, {0}, nil} {
		r := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
		err, ok := r.(error)
		if !ok || !errors.Is(err, ErrUnknownEntry) {
			t.Errorf("entry %q = %v, want ErrUnknownEntry", data, r)
		}
	}
	if !logs.contains("ERROR", "unknown type", "type=127") {
		t.Error("the refusal was not logged as an error")
	}
	if n := f.refused.Load(); n != 3 {
		t.Errorf("refused = %d, want 3", n)
	}
	if diff := cmp.Diff(before, f.History()); diff != "" {
		t.Errorf("a refused entry changed the state (-want +got):\n%s", diff)
	}
	// A known type with a payload that does not decode is refused too, loudly.
	r := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{byte(entryConfigPut), 'x'}})
	if _, ok := r.(error); !ok || !logs.contains("ERROR", "malformed") {
		t.Errorf("malformed entry = %v, or not logged", r)
	}
}

// snapshotRoundTrip persists f's snapshot into an in-memory store and returns a reader.
func snapshotRoundTrip(t *testing.T, f *fsm) io.ReadCloser {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestFSMSnapshotRestore(t *testing.T) {
	src, _ := newTestFSM(t)
	for i := uint64(1); i <= historyLimit+3; i++ {
		putDoc(t, src, i, "doc")
	}
	src.Apply(entry(t, 100, entryFilesPut, &filesPutEntry{Put: map[string][]byte{"a.pem": []byte("A"), "b.key": []byte("B")}}))
	rc := snapshotRoundTrip(t, src)
	atSnapshot := src.History()
	// Entries applied after the snapshot was taken are not in it.
	putDoc(t, src, 101, "later")

	dst, _ := newTestFSM(t)
	putDoc(t, dst, 1, "to be replaced")
	if err := os.WriteFile(filepath.Join(dst.store.dir, "stale.pem"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if len(atSnapshot) != historyLimit {
		t.Fatalf("source history has %d versions, want %d", len(atSnapshot), historyLimit)
	}
	if diff := cmp.Diff(atSnapshot, dst.History()); diff != "" {
		t.Errorf("restored history (-want +got):\n%s", diff)
	}
	wantFiles := map[string]string{"a.pem": "-rw------- A", "b.key": "-rw------- B"}
	if diff := cmp.Diff(wantFiles, dirFiles(t, dst.store.dir)); diff != "" {
		t.Errorf("restored files on disk (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(src.fileInfos(), dst.fileInfos()); diff != "" {
		t.Errorf("restored file infos (-want +got):\n%s", diff)
	}
}

func TestFSMRestoreRefusesUnknownFormat(t *testing.T) {
	f, _ := newTestFSM(t)
	putDoc(t, f, 1, "keep")
	body, _ := json.Marshal(snapshotState{})
	for _, data := range [][]byte{append([]byte{9}, body...), {}, {snapshotFormat, '{'}} {
		if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err == nil {
			t.Errorf("snapshot %q restored", data)
		}
	}
	if v, ok := f.current(); !ok || string(v.Document) != "keep" {
		t.Errorf("a refused snapshot changed the state: %+v", v)
	}
}

func TestFileStoreReconcile(t *testing.T) {
	s, err := newFileStore(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keep", "drop", ".tmp-keep-123"} {
		if err := os.WriteFile(s.path(name), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.reconcile(map[string]storedFile{"keep": {Data: []byte("new")}, "add": {Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	got := dirFiles(t, s.dir)
	want := map[string]string{"keep": "-rw------- new", "add": "-rw------- x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files after reconcile (-want +got):\n%s", diff)
	}
}
