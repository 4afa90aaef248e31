package node

// The record of the VIPs this node added: state_dir/vips.json lists every virtual
// address lbd added and has not removed, rewritten atomically (a temporary file renamed
// over it) at each change. `lbd release` (the unit's ExecStopPost) removes what it lists
// even when the config file cannot be read (a bad edit, a removed file), so that a
// crashed node does not keep answering ARP for VIPs another node now owns.
//
// An address is recorded before it is added and forgotten after it is removed: a crash
// between the two leaves an address recorded that is not on the interface, which release
// skips (removing an absent address is a success).

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"lbd/vip"
)

// VIPRecordFile is the record's name in the state directory.
const VIPRecordFile = "vips.json"

// recordedVIP is one address lbd added.
type recordedVIP struct {
	Interface string       `json:"interface"`
	Prefix    netip.Prefix `json:"prefix"`
}

// vipRecordDoc is the file's content.
type vipRecordDoc struct {
	Note      string        `json:"note"`
	Addresses []recordedVIP `json:"addresses"`
}

const vipRecordNote = "virtual addresses lbd added and has not removed; `lbd release` removes them"

// readVIPRecord returns the addresses recorded at path; none when there is no file.
func readVIPRecord(path string) ([]recordedVIP, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc vipRecordDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Addresses, nil
}

// writeVIPRecord replaces the record at path with addrs atomically; no addresses
// removes the file.
func writeVIPRecord(path string, addrs []recordedVIP) error {
	if len(addrs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	slices.SortFunc(addrs, func(a, b recordedVIP) int {
		return cmp.Or(cmp.Compare(a.Interface, b.Interface), a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	data, err := json.MarshalIndent(vipRecordDoc{Note: vipRecordNote, Addresses: addrs}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, VIPRecordFile+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// vipRecord keeps the record file of a running node.
type vipRecord struct {
	path string
	log  *slog.Logger
	// mu guards have and serializes the writes.
	mu   sync.Mutex
	have map[recordedVIP]bool
}

// openVIPRecord reads the record at path: what it lists was left by a previous run
// (a crash) and is still counted as added, until removed.
func openVIPRecord(path string, log *slog.Logger) (*vipRecord, []recordedVIP) {
	r := &vipRecord{path: path, log: log, have: map[recordedVIP]bool{}}
	left, err := readVIPRecord(path)
	if err != nil {
		log.Warn("reading the record of added VIPs; starting a new one", "err", err)
	}
	for _, e := range left {
		r.have[e] = true
	}
	return r, left
}

// set records (held) or forgets e, rewriting the file when that changes it. A failed
// write is logged: the address still moves, and release falls back to the config.
func (r *vipRecord) set(e recordedVIP, held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.have[e] == held {
		return
	}
	if held {
		r.have[e] = true
	} else {
		delete(r.have, e)
	}
	var all []recordedVIP
	for k := range r.have {
		all = append(all, k)
	}
	if err := writeVIPRecord(r.path, all); err != nil {
		r.log.Warn("writing the record of added VIPs (lbd release falls back to the config)", "path", r.path, "err", err)
	}
}

// recordingAddresses is a vip.Addresses that keeps the record of what it added.
type recordingAddresses struct {
	vip.Addresses
	rec *vipRecord
}

func recorded(ifname string, p netip.Prefix) recordedVIP {
	return recordedVIP{Interface: ifname, Prefix: netip.PrefixFrom(p.Addr().Unmap(), p.Bits())}
}

func (a recordingAddresses) Add(ifname string, p netip.Prefix, label string) error {
	e := recorded(ifname, p)
	a.rec.set(e, true) // first: see the file's comment
	if err := a.Addresses.Add(ifname, p, label); err != nil {
		a.rec.set(e, false)
		return err
	}
	return nil
}

func (a recordingAddresses) Remove(ifname string, p netip.Prefix) error {
	if err := a.Addresses.Remove(ifname, p); err != nil {
		return err
	}
	a.rec.set(recorded(ifname, p), false)
	return nil
}
