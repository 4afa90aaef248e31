package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells every other node about itself through gossip, besides its
// name, role and raft address (which the agent adds). The node fills it in with
// SetMeta whenever it changes; it must encode to at most memberlist's 512 bytes
// together with the agent's part, so names are best kept short.
type Meta struct {
	// Version is the node's lbd version.
	Version string
	// ConfigVersion is the version of the cluster-wide document the node runs.
	ConfigVersion uint64
	// DataplaneUp says whether the node's dataplane answers.
	DataplaneUp bool
	// VRRP is each VRRP instance's state on the node (MASTER, BACKUP, FAULT, ...).
	VRRP []VRRPState
	// Backends is each backend's health as the node sees it.
	Backends []BackendHealth
}

// VRRPState is one VRRP instance's state on a node.
type VRRPState struct {
	Instance string
	State    string
}

// BackendHealth counts a backend's servers that a node sees healthy.
type BackendHealth struct {
	Backend        string
	Healthy, Total int
}

// ErrMetaTooLarge: SetMeta was given more than fits in memberlist's node metadata.
var ErrMetaTooLarge = errors.New("node metadata too large")

// nodeMeta is the whole of a node's gossip metadata.
type nodeMeta struct {
	Role     Role
	RaftAddr string
	// Leaving is set by Leave before the node goes, so that the leader removes it
	// from raft and does not add it back while it is still alive.
	Leaving bool
	Meta
}

// The encoding is compact and versioned: a format byte, then fields in a fixed order
// (strings and counts as uvarint-prefixed), so that JSON's field names do not eat the
// 512 bytes. A decoder ignores bytes after the fields it knows, so that a newer lbd
// may append fields.
const metaFormat = 1

const (
	metaFlagLeaving     = 1 << 0
	metaFlagDataplaneUp = 1 << 1
)

func (m *nodeMeta) encode() ([]byte, error) {
	b := []byte{metaFormat}
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(string(m.Role))
	str(m.RaftAddr)
	var flags byte
	if m.Leaving {
		flags |= metaFlagLeaving
	}
	if m.DataplaneUp {
		flags |= metaFlagDataplaneUp
	}
	b = append(b, flags)
	str(m.Version)
	b = binary.AppendUvarint(b, m.ConfigVersion)
	b = binary.AppendUvarint(b, uint64(len(m.VRRP)))
	for _, v := range m.VRRP {
		str(v.Instance)
		str(v.State)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Backends)))
	for _, h := range m.Backends {
		if h.Healthy < 0 || h.Total < 0 {
			return nil, fmt.Errorf("backend %q: negative server count (%d of %d)", h.Backend, h.Healthy, h.Total)
		}
		str(h.Backend)
		b = binary.AppendUvarint(b, uint64(h.Healthy))
		b = binary.AppendUvarint(b, uint64(h.Total))
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, gossip carries at most %d (%d VRRP instances, %d backends)",
			ErrMetaTooLarge, len(b), memberlist.MetaMaxSize, len(m.VRRP), len(m.Backends))
	}
	return b, nil
}

// metaReader reads the encoding with bounds checks; the first error sticks.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int reads a server count, at most 1<<31-1.
func (r *metaReader) int() int {
	v := r.uvarint()
	if v > 1<<31-1 {
		r.err = fmt.Errorf("count %d out of range", v)
		return 0
	}
	return int(v)
}

func (r *metaReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errors.New("truncated flags")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *metaReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("string of %d bytes with %d left", n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list length and checks it against the bytes left (each element takes
// at least min bytes), so a corrupt length cannot allocate much.
func (r *metaReader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = fmt.Errorf("list of %d elements with %d bytes left", n, len(r.b))
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func decodeNodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, errors.New("no metadata")
	}
	if b[0] != metaFormat {
		return m, fmt.Errorf("metadata format %d is not known to this version", b[0])
	}
	r := &metaReader{b: b[1:]}
	m.Role = Role(r.str())
	m.RaftAddr = r.str()
	flags := r.byte()
	m.Leaving = flags&metaFlagLeaving != 0
	m.DataplaneUp = flags&metaFlagDataplaneUp != 0
	m.Version = r.str()
	m.ConfigVersion = r.uvarint()
	if n := r.count(2); n > 0 {
		m.VRRP = make([]VRRPState, n)
		for i := range m.VRRP {
			m.VRRP[i] = VRRPState{Instance: r.str(), State: r.str()}
		}
	}
	if n := r.count(3); n > 0 {
		m.Backends = make([]BackendHealth, n)
		for i := range m.Backends {
			m.Backends[i] = BackendHealth{Backend: r.str(), Healthy: r.int(), Total: r.int()}
		}
	}
	if r.err != nil {
		return nodeMeta{}, fmt.Errorf("decoding metadata: %w", r.err)
	}
	return m, nil
}
