package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// joinHarness is a one-node TLS raft cluster whose node answers joins.
type joinHarness struct {
	ca     *CA
	tokens *Tokens
	first  *tlsNode
	server *JoinServer

	mu  sync.Mutex
	now time.Time
}

func (h *joinHarness) setNow(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = t
}

func (h *joinHarness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

const testGossipKey = "MDEyMzQ1Njc4OWFiY2RlZg==" // base64 of 16 bytes

func newJoinHarness(t *testing.T) *joinHarness {
	t.Helper()
	h := &joinHarness{tokens: NewTokens(), now: time.Now()}
	var err error
	if h.ca, err = NewCA("test", h.now); err != nil {
		t.Fatal(err)
	}
	log, _ := newTestLog(t)
	var first *tlsNode
	h.server = &JoinServer{
		CA:         h.ca,
		Tokens:     h.tokens,
		GossipKeys: func() []string { return []string{testGossipKey} },
		CheckName: func(name string) error {
			f := first.raft.GetConfiguration()
			if err := f.Error(); err != nil {
				return err
			}
			for _, s := range f.Configuration().Servers {
				if string(s.ID) == name {
					return errors.New("a member has it")
				}
			}
			return nil
		},
		Admit: func(ctx context.Context, req JoinRequest) error {
			f := first.raft.AddVoter(raft.ServerID(req.Name), raft.ServerAddress(req.RaftAddr), 0, 0)
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		Now: h.clock,
		Log: log,
	}
	first = newTLSRaftNode(t, nil, newTLSNodeKey(t, h.ca, "n1"), TLSOptions{Join: h.server.Serve})
	h.first = first
	startTLSCluster(t, first)
	return h
}

func (h *joinHarness) token(t *testing.T, o TokenOptions) string {
	t.Helper()
	tok, err := h.tokens.Create(h.ca.Fingerprint(), h.clock(), o)
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

// join runs the joiner's side for name with its raft listener on ln.
func (h *joinHarness) join(ln net.Listener, name, token string) (*JoinResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return RequestJoin(ctx, string(h.first.addr()), token, JoinRequest{Name: name, Role: RoleVoter, RaftAddr: ln.Addr().String()})
}

func TestJoinWithToken(t *testing.T) {
	h := newJoinHarness(t)
	token := h.token(t, TokenOptions{})
	nodes := []*tlsNode{h.first}
	for _, name := range []string{"n2", "n3"} { // one reusable token for both
		ln := listenLoopback(t)
		res, err := h.join(ln, name, token)
		if err != nil {
			_ = ln.Close()
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(res.GossipKeys, []string{testGossipKey}) {
			t.Errorf("%s got gossip keys %v", name, res.GossipKeys)
		}
		tc, err := res.Node.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		if tc.Leaf.DNSNames[0] != name || !tc.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("%s's certificate: DNS %v IP %v", name, tc.Leaf.DNSNames, tc.Leaf.IPAddresses)
		}
		n := newTLSRaftNode(t, ln, res.Node, TLSOptions{})
		nodes = append(nodes, n)
		eventually(t, 15*time.Second, name+" a voter", func() bool {
			f := h.first.raft.GetConfiguration()
			if f.Error() != nil {
				return false
			}
			for _, s := range f.Configuration().Servers {
				if string(s.ID) == name && s.Suffrage == raft.Voter {
					return true
				}
			}
			return false
		})
	}
	applyEverywhere(t, h.first, "after join", nodes...)
	if l := h.tokens.List(); len(l) != 1 || l[0].Used != 2 {
		t.Errorf("tokens: %+v", l)
	}
}

func TestJoinRefused(t *testing.T) {
	h := newJoinHarness(t)
	ln := listenLoopback(t)
	defer ln.Close()

	good := h.token(t, TokenOptions{TTL: time.Hour})
	wrongSecret, _ := ParseToken(good)
	wrongSecret.Secret = strings.Repeat("0", 32)
	unknown, _ := ParseToken(good)
	unknown.ID = "000000000000"
	other, err := NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A token from another cluster: valid there, unknown here. The joiner must
	// refuse this cluster before it sends the token (the server would answer
	// "unknown").
	otherTokens := NewTokens()
	forOther, err := otherTokens.Create(other.Fingerprint(), time.Now(), TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	once := h.token(t, TokenOptions{SingleUse: true})
	if _, err := h.join(ln, "n2", once); err != nil {
		t.Fatalf("single-use token, first use: %v", err)
	}

	for _, c := range []struct {
		name, node, token string
		want              error
	}{
		{"malformed", "n3", "lbd1.nothex.x.y", ErrTokenMalformed},
		{"wrong secret", "n3", wrongSecret.String(), ErrTokenSecret},
		{"unknown", "n3", unknown.String(), ErrTokenUnknown},
		{"another cluster's CA", "n3", forOther.String(), ErrTokenCA},
		{"single use, again", "n3", once, ErrTokenUsed},
		{"a member's name", "n1", good, ErrJoinRefused},
		{"bad name", "-x", good, ErrJoinRefused},
	} {
		_, err := h.join(ln, c.node, c.token)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
			continue
		}
		t.Logf("%s: %v", c.name, err)
	}

	h.setNow(time.Now().Add(2 * time.Hour))
	if _, err := h.join(ln, "n3", good); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: err %v, want ErrTokenExpired", err)
	}
	if l := h.tokens.List(); len(l) != 2 || l[0].Used+l[1].Used != 1 {
		t.Errorf("refused joins used tokens: %+v", l)
	}
}

// TestJoinServerRefusesOnTheWire sends what RequestJoin would refuse to send, to check
// that the server refuses it by itself.
func TestJoinServerRefusesOnTheWire(t *testing.T) {
	h := newJoinHarness(t)
	good := h.token(t, TokenOptions{})
	n, err := NewNodeKey("n2")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := n.CSR(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherFP, _ := ParseToken(good)
	otherFP.CAFingerprint = strings.Repeat("ab", 32)
	for _, c := range []struct {
		name string
		req  joinWireRequest
		code string
	}{
		{"malformed token", joinWireRequest{Token: "garbage", CSR: csr, JoinRequest: JoinRequest{Name: "n2", Role: RoleVoter, RaftAddr: "127.0.0.1:1"}}, "token-malformed"},
		{"token for another CA", joinWireRequest{Token: otherFP.String(), CSR: csr, JoinRequest: JoinRequest{Name: "n2", Role: RoleVoter, RaftAddr: "127.0.0.1:1"}}, "token-ca"},
		{"CSR for another name", joinWireRequest{Token: good, CSR: csr, JoinRequest: JoinRequest{Name: "n3", Role: RoleVoter, RaftAddr: "127.0.0.1:1"}}, "refused"},
		{"no raft address", joinWireRequest{Token: good, CSR: csr, JoinRequest: JoinRequest{Name: "n2", Role: RoleVoter}}, "refused"},
		{"bad role", joinWireRequest{Token: good, CSR: csr, JoinRequest: JoinRequest{Name: "n2", Role: "boss", RaftAddr: "127.0.0.1:1"}}, "refused"},
	} {
		resp, err := rawJoin(h, c.req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if resp.Code != c.code || resp.Cert != nil {
			t.Errorf("%s: code %q (%s), cert %v; want code %q and no cert", c.name, resp.Code, resp.Error, resp.Cert != nil, c.code)
		}
	}
}

func rawJoin(h *joinHarness, req joinWireRequest) (joinWireResponse, error) {
	var resp joinWireResponse
	c, err := tls.Dial("tcp", string(h.first.addr()), &tls.Config{RootCAs: h.ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{alpnJoin}})
	if err != nil {
		return resp, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return resp, err
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return resp, fmt.Errorf("reading answer: %w", err)
	}
	return resp, nil
}
