package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
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

	// Raft's port speaks mutual TLS under the CA, to admitted nodes: a peer with a
	// certificate the join exchange issued gets through; one with another CA's does
	// not, and neither does one with the CA's for a node never admitted.
	other, err := NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		key  *NodeKey
		want bool
	}{
		{"joined b", h.node("b").tlsNode, true},
		{"the CA's, never admitted", newTLSNodeKey(t, ca, "probe"), false},
		{"another CA's", newTLSNodeKey(t, other, "probe"), false},
	} {
		if refused := raftRefused(t, c.key, first.RaftAddr()); refused == c.want {
			t.Errorf("raft connection with %s certificate: refused %v", c.what, refused)
		}
	}

	// A member's name is not given out again.
	req.Name = "b"
	if _, err := RequestJoin(ctx, first.RaftAddr(), tok.String(), req); !errors.Is(err, ErrJoinRefused) {
		t.Errorf("join as a member: %v, want ErrJoinRefused", err)
	}
}

// TestClusterReplicatedCAAndTokens: the CA and the token list live in raft, so that
// whichever voter leads answers joins, and a single-use token serves one join.
func TestClusterReplicatedCAAndTokens(t *testing.T) {
	h := newHarness(t, true)
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	withTLS := func(n *NodeKey, gossipKey string) func(*Config, *[]Option) {
		return func(cfg *Config, opts *[]Option) {
			cfg.GossipKey = gossipKey
			*opts = append(*opts, WithTLS(TLSOptions{Node: n}))
		}
	}
	ctx := context.Background()
	first := h.start("a", withTLS(newTLSNodeKey(t, ca, "a"), testKey))
	if err := first.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.CreateToken(ctx, TokenOptions{}); !errors.Is(err, ErrNoCA) {
		t.Fatalf("token before the CA is replicated: %v, want ErrNoCA", err)
	}
	if err := first.PutCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	reusable, err := first.CreateToken(ctx, TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	once, err := first.CreateToken(ctx, TokenOptions{SingleUse: true})
	if err != nil {
		t.Fatal(err)
	}
	served := map[*Cluster]bool{}
	serve := func(c *Cluster) {
		t.Helper()
		if served[c] {
			return
		}
		served[c] = true
		var ca *CA
		eventually(t, 10*time.Second, "the CA applied", func() bool { // a new leader may apply it a moment later
			var err error
			ca, err = c.ClusterCA()
			return err == nil
		})
		c.ServeJoins(ca, c.ReplicatedTokens())
	}
	serve(first)
	join := func(via *Cluster, name string, tok JoinToken) (*JoinResult, error) {
		return RequestJoin(ctx, via.RaftAddr(), tok.String(), JoinRequest{Name: name, Role: RoleVoter, RaftAddr: "127.0.0.1:7947"})
	}
	for name, tok := range map[string]JoinToken{"b": reusable, "c": once} {
		// Through whichever node leads: under load the first can lose its lease while
		// b catches up, and a follower refuses joins.
		via := h.leader()
		serve(via)
		res, err := join(via, name, tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := h.start(name, withTLS(res.Node, res.GossipKeys[0]))
		if err := c.Join(ctx, first.GossipAddr()); err != nil {
			t.Fatalf("%s joining: %v", name, err)
		}
	}
	h.waitVoters("a", "b", "c")
	if _, err := join(h.leader(), "d", once); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("single-use token again: %v, want ErrTokenUsed", err)
	}

	// Every node has the CA and the list, with the uses counted.
	eventually(t, 10*time.Second, "token uses replicated", func() bool {
		for _, name := range []string{"a", "b", "c"} {
			l, err := h.node(name).JoinTokens()
			if err != nil || len(l) != 2 || l[0].Used != 1 || l[1].Used != 1 {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"b", "c"} {
		got, err := h.node(name).ClusterCA()
		if err != nil || got.Fingerprint() != ca.Fingerprint() || !got.CanSign() {
			t.Errorf("%s's replicated CA: %v", name, err)
		}
		p, err := h.node(name).FilePath(replicatedCAKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readPrivateFile(p); err != nil {
			t.Errorf("%s's copy of the CA key: %v", name, err)
		}
	}

	// A follower refuses joins, naming the leader.
	follower := h.followers()[0]
	serve(follower)
	if _, err := join(follower, "d", reusable); !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "leader") {
		t.Errorf("join through a follower: %v, want ErrJoinRefused naming the leader", err)
	}

	// The first node goes; whichever node leads next answers joins with the same CA
	// and tokens.
	h.stop("a")
	var leader *Cluster
	eventually(t, 15*time.Second, "a new leader", func() bool {
		for _, name := range []string{"b", "c"} {
			if c := h.node(name); c.Status().State == "leader" {
				leader = c
				return true
			}
		}
		return false
	})
	serve(leader)
	res, err := join(leader, "d", reusable)
	if err != nil {
		t.Fatalf("join through the new leader: %v", err)
	}
	if tc, err := res.Node.Certificate(); err != nil || tc.Leaf.CheckSignatureFrom(ca.Cert) != nil {
		t.Errorf("d's certificate from the new leader is not the CA's: %v", err)
	}
}
