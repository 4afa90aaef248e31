package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lbd/dataplane"
	"lbd/dataplane/sticky"
	"lbd/internal/clock"
	"lbd/node/api"
)

// FuzzAdminJSON feeds one body to the decoding of every admin API request body
// (decodeBody, as the handlers call it, and the sticky import's own decoder), without a
// node. A body that decodes must encode and decode back to the same request (what the
// lbctl client sends is what the node reads), a server state that ParseServerState
// accepts must print back as given, and a decoded sticky import must apply to a table
// without counting more entries than it holds.
func FuzzAdminJSON(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"state":"drain"}`, `{"state":"enabled","weight":50}`, `{"weight":-1}`,
		`{"grace":"30s"}`, `{"grace":"-1s"}`, `{"allow_empty":true}`, `{"node":"n2"}`,
		`{"address":"198.18.0.2:7946","token":"t","seeds":["198.18.0.3:7946"]}`,
		`{"force":true}`, `{"document":"frontends: []\n","comment":"c","author":"a"}`,
		`{"version":3}`, `{"version":-3}`, `{"entries":[{"key":"k","server":"s1","expires":9e18}]}`,
		`{"entries":[{"key":"k","server":""}]}`, `{"unknown":1}`, `{"state":7}`, `[1,2]`, `null`,
		`{"state":"drain"} trailing`, "{\"state\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{
			&api.ServerChange{}, &api.DrainRequest{}, &api.ReloadRequest{},
			&api.ClusterJoinRequest{}, &api.ClusterRemoveRequest{}, &api.ClusterRecoverRequest{},
			&api.ConfigApplyRequest{}, &api.ConfigRollbackRequest{}, &api.ConfigDiffRequest{},
			&api.StickyImport{},
		} {
			if err := decodeBody(httptest.NewRequest("POST", "/", bytes.NewReader(body)), v); err != nil {
				if err.Error() == "" {
					t.Fatalf("%T: an empty error", v)
				}
				continue
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", v, body, err)
			}
			back := newLike(v)
			if err := decodeBody(httptest.NewRequest("POST", "/", bytes.NewReader(enc)), back); err != nil {
				t.Fatalf("%T: %q re-encoded as %q does not decode: %v", v, body, enc, err)
			}
			if diff := cmp.Diff(v, back, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%T: %q re-encoded as %q (-first +second):\n%s", v, body, enc, diff)
			}
			if ch, ok := v.(*api.ServerChange); ok && ch.State != nil {
				if st, err := dataplane.ParseServerState(*ch.State); err == nil && st.String() != *ch.State {
					t.Fatalf("state %q parses as %v", *ch.State, st)
				}
			}
		}

		// The sticky import reads its body with its own decoder, as handleStickyImport.
		var in api.StickyImport
		dec := json.NewDecoder(io.LimitReader(bytes.NewReader(body), maxStickyImport))
		dec.DisallowUnknownFields()
		if dec.Decode(&in) != nil {
			return
		}
		tb := sticky.New(clock.NewFake(), time.Minute, 16)
		if n := tb.Import(stickyEntries(in.Entries)); n > len(in.Entries) || tb.Len() > 16 {
			t.Fatalf("import of %d entries applied %d, table holds %d", len(in.Entries), n, tb.Len())
		}
	})
}

// newLike returns a new zero value of the type v points to.
func newLike(v any) any {
	switch v.(type) {
	case *api.ServerChange:
		return &api.ServerChange{}
	case *api.DrainRequest:
		return &api.DrainRequest{}
	case *api.ReloadRequest:
		return &api.ReloadRequest{}
	case *api.ClusterJoinRequest:
		return &api.ClusterJoinRequest{}
	case *api.ClusterRemoveRequest:
		return &api.ClusterRemoveRequest{}
	case *api.ClusterRecoverRequest:
		return &api.ClusterRecoverRequest{}
	case *api.ConfigApplyRequest:
		return &api.ConfigApplyRequest{}
	case *api.ConfigRollbackRequest:
		return &api.ConfigRollbackRequest{}
	case *api.ConfigDiffRequest:
		return &api.ConfigDiffRequest{}
	case *api.StickyImport:
		return &api.StickyImport{}
	}
	panic("newLike: unknown type")
}
