package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fastTiming is for tests on one machine: elections in tens of milliseconds.
func fastTiming() Timing {
	return Timing{
		GossipInterval:       10 * time.Millisecond,
		ProbeInterval:        40 * time.Millisecond,
		ProbeTimeout:         20 * time.Millisecond,
		SuspicionMult:        1,
		PushPullInterval:     500 * time.Millisecond,
		RaftHeartbeatTimeout: 60 * time.Millisecond,
		RaftElectionTimeout:  60 * time.Millisecond,
		RaftLeaderLease:      30 * time.Millisecond,
		RaftCommitTimeout:    5 * time.Millisecond,
		ApplyTimeout:         3 * time.Second,
	}
}

// singleRaft runs raft alone over the state machine and the stores in dir.
type singleRaft struct {
	fsm    *fsm
	stores *stores
	raft   *raft.Raft
}

func startSingleRaft(t *testing.T, dir string, addr raft.ServerAddress) *singleRaft {
	t.Helper()
	log, _ := newTestLog(t)
	cfg := Config{Name: "solo", StateDir: dir, Timing: fastTiming()}
	fs, err := newFileStore(filepath.Join(dir, filesDirName))
	if err != nil {
		t.Fatal(err)
	}
	s := &singleRaft{}
	if s.fsm, err = newFSM(log, fs); err != nil {
		t.Fatal(err)
	}
	if s.stores, err = openStores(dir, log, 1<<20); err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport(addr)
	if s.raft, err = raft.NewRaft(raftConfig(&cfg, log, nil), s.fsm, s.stores.wal, s.stores.wal, s.stores.snaps, trans); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *singleRaft) stop(t *testing.T) {
	t.Helper()
	if err := s.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.stores.wal.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoresRecoverFromDisk: what raft committed through raft-wal and the file
// snapshots comes back after a restart, both the part in a snapshot and the log after it.
func TestStoresRecoverFromDisk(t *testing.T) {
	dir := t.TempDir()
	s := startSingleRaft(t, dir, "solo")
	if err := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "solo", Address: "solo"}}}).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "leader", func() bool { return s.raft.State() == raft.Leader })
	apply := func(typ entryType, payload any) {
		t.Helper()
		data, err := encodeEntry(typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		f := s.raft.Apply(data, time.Second)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		if err, ok := f.Response().(error); ok {
			t.Fatal(err)
		}
	}
	apply(entryConfigPut, &configPutEntry{Document: []byte("v1"), Time: t0})
	apply(entryFilesPut, &filesPutEntry{Put: map[string][]byte{"tls.key": []byte("KEY")}})
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	apply(entryConfigPut, &configPutEntry{Document: []byte("v2"), Time: t0})
	want := s.fsm.History()
	s.stop(t)

	for _, d := range []string{filepath.Join(dir, raftDirName), filepath.Join(dir, raftDirName, walDirName), filepath.Join(dir, filesDirName)} {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", d, info.Mode(), err)
		}
	}
	snaps, err := s.stores.snaps.List()
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots on disk: %v, %v", snaps, err)
	}

	s = startSingleRaft(t, dir, "solo")
	defer s.stop(t)
	// The snapshot is restored at start; the log after it once raft leads again.
	if v, ok := s.fsm.current(); !ok || string(v.Document) != "v1" {
		t.Errorf("after restart, before leading: %q, %v; want v1 from the snapshot", v.Document, ok)
	}
	eventually(t, 5*time.Second, "log replayed", func() bool {
		v, ok := s.fsm.current()
		return ok && v.Version == 2
	})
	if got := s.fsm.History(); len(got) != 2 || string(got[1].Document) != string(want[1].Document) || got[1].Index != want[1].Index {
		t.Errorf("history after restart = %+v, want %+v", got, want)
	}
	if b, ok := s.fsm.file("tls.key"); !ok || string(b) != "KEY" {
		t.Errorf("file after restart = %q, %v", b, ok)
	}
	if b, err := os.ReadFile(filepath.Join(dir, filesDirName, "tls.key")); err != nil || string(b) != "KEY" {
		t.Errorf("file on disk after restart = %q, %v", b, err)
	}
}
