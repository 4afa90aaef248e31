package cluster

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

func TestFSMAdmission(t *testing.T) {
	f, logs := newTestFSM(t)
	ca, err := NewCA("test", t0)
	if err != nil {
		t.Fatal(err)
	}
	certOf := func(name string) AdmittedNode {
		tc, err := newTLSNodeKey(t, ca, name).Certificate()
		if err != nil {
			t.Fatal(err)
		}
		return admittedRecord(name, "127.0.0.1:7947", tc.Leaf, t0)
	}
	a, b := certOf("a"), certOf("b")
	for i, e := range []memberEntry{{memberAdmit, a}, {memberAdmit, b}, {memberRemove, AdmittedNode{Name: "b"}}} {
		if res := f.Apply(entry(t, uint64(i+1), entryMember, &e)); res != nil {
			t.Fatalf("entry %d: %v", i+1, res)
		}
	}
	// Refused, on every node alike: an operation this version does not know, a bad
	// name, an admission without a certificate.
	for i, e := range []memberEntry{{"promote", a}, {memberAdmit, AdmittedNode{Name: "../x", Fingerprint: "f"}}, {memberAdmit, AdmittedNode{Name: "c"}}} {
		if _, ok := f.Apply(entry(t, uint64(10+i), entryMember, &e)).(error); !ok {
			t.Errorf("member entry %+v applied", e)
		}
	}
	if !logs.contains("refusing raft entry", `"promote"`) {
		t.Error("the unknown member operation was not logged")
	}
	a.Index, b.Index, b.Removed = 1, 3, true
	want := []AdmittedNode{a, b}
	if diff := cmp.Diff(want, f.admittedList()); diff != "" {
		t.Errorf("admitted (-want +got):\n%s", diff)
	}

	// Snapshots carry the admitted nodes.
	dst, _ := newTestFSM(t)
	if err := dst.Restore(snapshotRoundTrip(t, f)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, dst.admittedList()); diff != "" {
		t.Errorf("restored admitted (-want +got):\n%s", diff)
	}
	// A snapshot of format 1 (before admission) still restores, with none admitted.
	body, _ := json.Marshal(snapshotState{History: []ConfigVersion{{Version: 1, Document: []byte("d")}}})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(append([]byte{1}, body...)))); err != nil {
		t.Fatalf("format 1 snapshot: %v", err)
	}
	if got := dst.admittedList(); len(got) != 0 {
		t.Errorf("admitted after a format 1 snapshot: %+v", got)
	}
}

// raftRefused dials addr's raft port with key's certificate and reports whether the
// server refused it. In TLS 1.3 the client's handshake ends before the server has
// checked the client's certificate, so the refusal shows on the first read; an
// accepted connection just waits for a raft RPC, and the read times out.
func raftRefused(t *testing.T, key *NodeKey, addr string) bool {
	t.Helper()
	l := newTLSLayer(t, TLSOptions{Node: key})
	conn, err := l.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		return true
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// isServer reports whether c's raft configuration has name.
func isServer(c *Cluster, name string) bool {
	servers, err := c.servers()
	_, ok := servers[name]
	return err == nil && ok
}

// TestAdmission: with TLS, only nodes that got their certificate from the join
// exchange (or bootstrapped) become voters; a gossip-key holder without one is never
// added and does not stall writes; a removed node's certificate is refused and the
// node is not added back when gossip sees it again; the admitted set survives a
// restart.
func TestAdmission(t *testing.T) {
	h := newHarness(t, true)
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	withTLS := func(n *NodeKey) func(*Config, *[]Option) {
		return func(_ *Config, opts *[]Option) { *opts = append(*opts, WithTLS(TLSOptions{Node: n})) }
	}
	ctx := context.Background()
	aKey := newTLSNodeKey(t, ca, "a")
	a := h.start("a", withTLS(aKey))
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens()
	tok, err := tokens.Create(ca.Fingerprint(), time.Now(), TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.ServeJoins(ca, tokens)
	res, err := RequestJoin(ctx, a.RaftAddr(), tok.String(), JoinRequest{Name: "b", Role: RoleVoter, RaftAddr: "127.0.0.1:7947"})
	if err != nil {
		t.Fatal(err)
	}
	b := h.start("b", withTLS(res.Node))
	if err := b.Join(ctx, a.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	h.waitVoters("a", "b")

	// Both nodes agree on who was admitted, with which certificate.
	fp := func(k *NodeKey) string {
		tc, err := k.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		return CertFingerprint(tc.Leaf)
	}
	eventually(t, 10*time.Second, "a and b admitted on both nodes", func() bool {
		for _, c := range []*Cluster{a, b} {
			l := c.Admitted()
			if len(l) != 2 || l[0].Fingerprint != fp(aKey) || l[1].Fingerprint != fp(res.Node) || l[0].Removed || l[1].Removed {
				return false
			}
		}
		return true
	})

	// An outsider with the gossip key but no certificate (plain TCP raft) gossips
	// with the cluster; the leader does not make it a voter, and writes go on.
	outside := newHarness(t, true)
	x := outside.start("x")
	if _, err := x.gossip.ml.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leader sees x and refuses it", func() bool {
		return h.logs["a"].contains("gossip member not added to raft", "member=x", "not admitted")
	})
	if st, ok := a.gossip.state("x"); !ok || st != MemberAlive {
		t.Fatalf("x is not a live gossip member of a: %v", st)
	}
	a.reconcile()
	if isServer(a, "x") {
		t.Fatal("x was added to raft")
	}
	h.apply(1, "v1")
	h.waitVersion(1, "v1")
	outside.stop("x")

	// b is removed: its certificate is refused, and it is not added back, neither
	// while it runs nor after a restart that gossip sees.
	if !raftRefused(t, newTLSNodeKey(t, ca, "probe"), a.RaftAddr()) {
		t.Error("a certificate of the CA for a node never admitted was accepted")
	}
	if raftRefused(t, res.Node, a.RaftAddr()) {
		t.Fatal("b's certificate was refused before b was removed")
	}
	if err := a.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if isServer(a, "b") {
		t.Fatal("b is still in raft")
	}
	if err := a.peerAdmitted("b", mustLeaf(t, res.Node)); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("PeerAllowed for removed b: %v", err)
	}
	if !raftRefused(t, res.Node, a.RaftAddr()) {
		t.Error("removed b's certificate was accepted")
	}
	h.stop("b")
	// Gossip must find b gone, so that its restart is a join: the leader forgets
	// then, in memory, that it removed b, and only the admitted set keeps b out.
	eventually(t, 10*time.Second, "a sees b gone", func() bool {
		st, ok := a.gossip.state("b")
		return ok && st != MemberAlive
	})
	b = h.start("b", withTLS(res.Node))
	if _, err := b.gossip.ml.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a sees b again", func() bool {
		st, ok := a.gossip.state("b")
		return ok && st == MemberAlive && !a.gossip.isRemoved("b")
	})
	a.reconcile()
	if isServer(a, "b") {
		t.Fatal("removed b was added back when it reappeared in gossip")
	}
	if v, err := a.Apply(ctx, []byte("v2"), Change{}); err != nil || v != 2 {
		t.Fatalf("write after b's removal: %d, %v", v, err)
	}
	h.stop("b")

	// The admitted set survives a restart from the state directory.
	before := a.Admitted()
	if len(before) != 2 || !before[1].Removed {
		t.Fatalf("admitted before the restart: %+v", before)
	}
	h.stop("a")
	a = h.start("a", withTLS(aKey))
	h.leader()
	if diff := cmp.Diff(before, a.Admitted()); diff != "" {
		t.Errorf("admitted after a restart (-want +got):\n%s", diff)
	}
	if !raftRefused(t, res.Node, a.RaftAddr()) {
		t.Error("removed b's certificate was accepted after a's restart")
	}
}

func mustLeaf(t *testing.T, k *NodeKey) *x509.Certificate {
	t.Helper()
	tc, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return tc.Leaf
}
