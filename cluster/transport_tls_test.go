package cluster

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listFSM is a raft state machine that keeps the entries it applied.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *listFSM) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if e == s {
			return true
		}
	}
	return false
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (f *listFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnapshot) Release()                          {}

// tlsNode is a raft node on the mutual-TLS transport, with in-memory stores.
type tlsNode struct {
	name  string
	key   *NodeKey
	layer *TLSStreamLayer
	trans *raft.NetworkTransport
	raft  *raft.Raft
	fsm   *listFSM
}

func (n *tlsNode) addr() raft.ServerAddress { return n.trans.LocalAddr() }

// newTLSNodeKey makes a node key with a certificate from ca for 127.0.0.1.
func newTLSNodeKey(t *testing.T, ca *CA, name string) *NodeKey {
	t.Helper()
	k, err := NewNodeKey(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueLocal(k, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return k
}

// newTLSLayer starts a stream layer on 127.0.0.1:0, closed at the test's end.
func newTLSLayer(t *testing.T, opts TLSOptions) *TLSStreamLayer {
	t.Helper()
	return newTLSLayerOn(t, listenLoopback(t), opts)
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newTLSLayerOn starts a stream layer on ln, closed at the test's end.
func newTLSLayerOn(t *testing.T, ln net.Listener, opts TLSOptions) *TLSStreamLayer {
	t.Helper()
	log, _ := newTestLog(t)
	l, err := newTLSStreamLayer(ln, nil, opts, log)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// newTLSRaftNode starts raft for key on a TLS transport on ln (nil: a new one on
// loopback), shut down at the test's end.
func newTLSRaftNode(t *testing.T, ln net.Listener, key *NodeKey, opts TLSOptions) *tlsNode {
	t.Helper()
	log, _ := newTestLog(t)
	opts.Node = key
	if ln == nil {
		ln = listenLoopback(t)
	}
	layer := newTLSLayerOn(t, ln, opts)
	n := &tlsNode{name: key.Name, key: key, layer: layer, trans: NewTLSTransport(layer, log), fsm: &listFSM{}}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(key.Name)
	// Long enough that TLS handshakes under -race on a busy machine do not make the
	// leadership flap.
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.Logger = newHCLog(log, "raft")
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(rc, n.fsm, store, store, raft.NewInmemSnapshotStore(), n.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	t.Cleanup(func() {
		_ = r.Shutdown().Error()
		// Close does not close the pooled connections to the peers, whose handlers
		// would wait on them after the test: CloseStreams does.
		n.trans.CloseStreams()
		_ = n.trans.Close()
	})
	return n
}

// startTLSCluster bootstraps the nodes as one raft cluster and waits for a leader.
func startTLSCluster(t *testing.T, nodes ...*tlsNode) *tlsNode {
	t.Helper()
	var cfg raft.Configuration
	for _, n := range nodes {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(n.name), Address: n.addr(), Suffrage: raft.Voter})
	}
	if err := nodes[0].raft.BootstrapCluster(cfg).Error(); err != nil {
		t.Fatal(err)
	}
	return waitLeader(t, nodes...)
}

func waitLeader(t *testing.T, nodes ...*tlsNode) *tlsNode {
	t.Helper()
	var leader *tlsNode
	eventually(t, 10*time.Second, "a leader elected", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// applyEverywhere applies data (on whichever node leads, retrying across a change of
// leader) and waits until every node has applied it.
func applyEverywhere(t *testing.T, leader *tlsNode, data string, nodes ...*tlsNode) {
	t.Helper()
	eventually(t, 10*time.Second, "apply "+data, func() bool {
		if leader.raft.Apply([]byte(data), 5*time.Second).Error() == nil {
			return true
		}
		leader = waitLeader(t, nodes...)
		return false
	})
	eventually(t, 10*time.Second, data+" applied on every node", func() bool {
		for _, n := range nodes {
			if !n.fsm.has(data) {
				return false
			}
		}
		return true
	})
}

func TestTLSTransportCluster(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*tlsNode
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, newTLSRaftNode(t, nil, newTLSNodeKey(t, ca, name), TLSOptions{}))
	}
	leader := startTLSCluster(t, nodes...)
	applyEverywhere(t, leader, "one", nodes...)
	term := leader.raft.CurrentTerm()

	// An outsider whose certificate comes from another CA, with the same node name
	// as a member: its RPCs fail, and members cannot be made to talk to it.
	other, err := NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	outsider := newTLSRaftNode(t, nil, newTLSNodeKey(t, other, "n3"), TLSOptions{})
	var aeResp raft.AppendEntriesResponse
	err = outsider.trans.AppendEntries(raft.ServerID(leader.name), leader.addr(), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("n3"), Addr: []byte(outsider.addr())},
		Term:      term + 10,
		Entries:   []*raft.Log{{Index: 1000, Term: term + 10, Type: raft.LogCommand, Data: []byte("injected")}},
	}, &aeResp)
	if err == nil {
		t.Error("AppendEntries from another CA's node succeeded")
	}
	t.Logf("AppendEntries from another CA: %v", err)
	for _, n := range nodes {
		var rvResp raft.RequestVoteResponse
		err := outsider.trans.RequestVote(raft.ServerID(n.name), n.addr(), &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ID: []byte("n3"), Addr: []byte(outsider.addr())},
			Term:      term + 10, LastLogIndex: 1000, LastLogTerm: term + 10,
		}, &rvResp)
		if err == nil {
			t.Errorf("RequestVote to %s from another CA's node succeeded", n.name)
		}
	}
	if _, err := leader.layer.Dial(outsider.addr(), time.Second); err == nil {
		t.Error("a member dialled a node whose certificate is from another CA")
	}

	// A plain TCP client speaking raft's wire format is refused: the server closes
	// the connection without answering an RPC.
	c, err := net.Dial("tcp", string(leader.addr()))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte{0x00, 0x85, 0xa4, 'T', 'e', 'r', 'm', 0xcf, 0, 0, 0, 0, 0, 0, 0, 99})
	b, err := io.ReadAll(c)
	_ = c.Close()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("plain TCP connection was not closed")
	}
	t.Logf("plain TCP client got %d bytes (a TLS alert at most), err %v", len(b), err)

	// A TLS client that trusts the CA but has no certificate is refused for raft.
	tc, err := tls.Dial("tcp", string(leader.addr()), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{alpnRaft}})
	if err == nil {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = tc.Read(make([]byte, 1)) // TLS 1.3: the server's verdict comes after the client's Finished
		_ = tc.Close()
	}
	if err == nil {
		t.Error("a raft connection without a client certificate was accepted")
	}
	t.Logf("no client certificate: %v", err)

	// The cluster is unaffected: it still replicates, nobody took the outsider's
	// term (which would have deposed the leader), nobody applied its entry.
	applyEverywhere(t, waitLeader(t, nodes...), "two", nodes...)
	for _, n := range nodes {
		if got := n.raft.CurrentTerm(); got >= term+10 {
			t.Errorf("%s is in term %d: it took the outsider's term %d", n.name, got, term+10)
		}
		if n.fsm.has("injected") {
			t.Errorf("%s applied the injected entry", n.name)
		}
	}
}

func TestTLSTransportPeerAllowed(t *testing.T) {
	ca, _ := NewCA("test", time.Now())
	refuse := func(name string) error {
		if name == "banned" {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	server := newTLSLayer(t, TLSOptions{Node: newTLSNodeKey(t, ca, "server"), PeerAllowed: refuse})
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ok := newTLSLayer(t, TLSOptions{Node: newTLSNodeKey(t, ca, "friend")})
	c, err := ok.Dial(raft.ServerAddress(server.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("friend: %v", err)
	}
	defer c.Close()
	select {
	case a := <-accepted:
		_ = a.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("friend's connection not accepted")
	}
	banned := newTLSLayer(t, TLSOptions{Node: newTLSNodeKey(t, ca, "banned")})
	c2, err := banned.Dial(raft.ServerAddress(server.Addr().String()), time.Second)
	if err == nil {
		_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c2.Read(make([]byte, 1))
		_ = c2.Close()
	}
	if err == nil {
		t.Error("banned peer's connection was accepted")
	}
	select {
	case <-accepted:
		t.Error("banned peer's connection reached Accept")
	default:
	}
	if err := server.Close(); err != nil {
		t.Error(err)
	}
	if _, err := server.Accept(); err != ErrLayerClosed {
		t.Errorf("Accept after Close: %v", err)
	}
}
