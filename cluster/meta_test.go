package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

var metaCases = []struct {
	name string
	meta nodeMeta
}{
	{"agent only", nodeMeta{Role: RoleWitness, RaftAddr: "198.18.0.3:7947"}},
	{"leaving", nodeMeta{Role: RoleVoter, RaftAddr: "[2001:2::1]:7947", Leaving: true}},
	{"full", nodeMeta{Role: RoleVoter, RaftAddr: "198.18.0.1:7947", Meta: Meta{
		Version: "v1.4.0-3-gabc1234", ConfigVersion: 1 << 40, DataplaneUp: true,
		VRRP:     []VRRPState{{"vi_web", "MASTER"}, {"vi_db", "BACKUP"}},
		Backends: []BackendHealth{{"web", 3, 4}, {"db", 0, 2}},
	}}},
}

func TestMetaRoundTrip(t *testing.T) {
	for _, tc := range metaCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.meta.encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeNodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.meta, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// A newer version may append fields; this one ignores them.
			got, err = decodeNodeMeta(append(b, 0xff, 1, 2))
			if err != nil || !cmp.Equal(tc.meta, got) {
				t.Errorf("with trailing bytes: %v, %v", got, err)
			}
			// Every truncation fails cleanly (or decodes, where it cuts only zero
			// trailing lists).
			for n := range len(b) {
				_, _ = decodeNodeMeta(b[:n])
			}
		})
	}
}

func TestMetaSizeChecked(t *testing.T) {
	m := nodeMeta{Role: RoleVoter, RaftAddr: "198.18.0.1:7947"}
	for i := range 40 {
		m.Backends = append(m.Backends, BackendHealth{Backend: fmt.Sprintf("backend-number-%02d", i), Healthy: 1, Total: 2})
	}
	_, err := m.encode()
	if !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("at most %d", memberlist.MetaMaxSize)) {
		t.Errorf("40 backends: %v, want ErrMetaTooLarge", err)
	}
	m.Backends = m.Backends[:10]
	if b, err := m.encode(); err != nil || len(b) > memberlist.MetaMaxSize {
		t.Errorf("10 backends: %d bytes, %v", len(b), err)
	}
}

func TestMetaDecodeRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":       nil,
		"format":      {2, 0},
		"long string": {metaFormat, 200, 'a'},
		"long list":   {metaFormat, 0, 0, 0, 0, 0, 100},
		"count":       append([]byte{metaFormat, 0, 0, 0, 0, 0, 0, 1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0),
	} {
		if m, err := decodeNodeMeta(b); err == nil {
			t.Errorf("%s: decoded %+v", name, m)
		}
	}
}

func FuzzDecodeNodeMeta(f *testing.F) {
	for _, tc := range metaCases {
		b, err := tc.meta.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeNodeMeta(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes to the same.
		enc, err := m.encode()
		if err != nil {
			if errors.Is(err, ErrMetaTooLarge) {
				return
			}
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		again, err := decodeNodeMeta(enc)
		if err != nil || !cmp.Equal(m, again) {
			t.Fatalf("re-decoded %+v, %v; want %+v", again, err, m)
		}
	})
}
