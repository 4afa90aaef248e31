package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestClusterJoinsOverTLS forms a cluster of three agents the way lbctl will: the
// first makes the CA and a token, the others redeem it on its raft port for their
// certificates and the gossip key, start with raft over mutual TLS, and join.
func TestClusterJoinsOverTLS(t *testing.T) {
	h := newHarness(t, true)
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	withTLS := func(n *NodeKey, gossipKey string) func(*Config, *[]Option) {
		return func(cfg *Config, opts *[]Option) {
			if gossipKey != "" {
				cfg.GossipKey = gossipKey
			}
			*opts = append(*opts, WithTLS(TLSOptions{Node: n}))
		}
	}
	first := h.start("a", withTLS(newTLSNodeKey(t, ca, "a"), ""))
	ctx := context.Background()
	if err := first.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens()
	tok, err := tokens.Create(ca.Fingerprint(), time.Now(), TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Before ServeJoins the raft port refuses joins.
	h.key = ""                                                      // the joiners have no gossip key but the one they are given
	req := JoinRequest{Role: RoleVoter, RaftAddr: "127.0.0.1:7947"} // the certificate holds IPs, not ports
	req.Name = "b"
	if _, err := RequestJoin(ctx, first.RaftAddr(), tok.String(), req); err == nil {
		t.Fatal("joined before the first node served joins")
	}
	first.ServeJoins(ca, tokens)
	for _, name := range []string{"b", "c"} {
		req.Name = name
		res, err := RequestJoin(ctx, first.RaftAddr(), tok.String(), req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := h.start(name, withTLS(res.Node, res.GossipKeys[0]))
		if err := c.Join(ctx, first.GossipAddr()); err != nil {
			t.Fatalf("%s joining: %v", name, err)
		}
	}
	h.waitVoters("a", "b", "c")
	h.apply(1, "v1")
	h.waitVersion(1, "v1")

	// Raft's port speaks mutual TLS under the CA: a peer with the CA's certificate
	// gets through, one with another CA's does not.
	other, err := NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ca   *CA
		want bool
	}{{ca, true}, {other, false}} {
		l := newTLSLayer(t, TLSOptions{Node: newTLSNodeKey(t, c.ca, "probe")})
		conn, err := l.Dial(raft.ServerAddress(first.RaftAddr()), 5*time.Second)
		if (err == nil) != c.want {
			t.Errorf("dial with a certificate from the cluster's CA %v: err %v", c.want, err)
		}
		if err == nil {
			_ = conn.Close()
		}
	}

	// A member's name is not given out again.
	req.Name = "b"
	if _, err := RequestJoin(ctx, first.RaftAddr(), tok.String(), req); !errors.Is(err, ErrJoinRefused) {
		t.Errorf("join as a member: %v, want ErrJoinRefused", err)
	}
}
