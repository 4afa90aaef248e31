package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// The join exchange: how a new node gets the credentials to take part in the cluster.
// It runs on the raft port, over TLS with ALPN lbd-join/1 (transport_tls.go), one
// request and one answer per connection:
//
//  1. The joiner parses its token (lbd1.<id>.<secret>.<ca-sha256>), makes its own key
//     and dials the address it was given. It accepts the server's certificate only if
//     the chain holds a CA certificate whose SHA-256 is the token's and the server's
//     certificate is signed by it for the address dialled: it trusts the cluster the
//     token is for and no other, and sends its secret to no one else (no trust on
//     first use).
//  2. It sends the token, its name, role, raft and gossip addresses, and a CSR for
//     its key (the key never leaves it).
//  3. The server (a voter: it has the CA key and the token list; with the agent's
//     join server, the leader) checks the token (Tokens.Check), the request and that
//     the name is free, then spends the token (Redeem), issues the node's certificate
//     (the node name and the IPs of its raft and gossip addresses), records the
//     admission (Record: the agent's commits it to raft, admission.go) and answers
//     with the certificate, the CA certificate and the gossip keys, primary first. Every refusal has a code the joiner turns back into the same sentinel
//     error (ErrTokenExpired, ...), or ErrJoinRefused.
//  4. After answering, the server admits the node to raft (JoinServer.Admit, e.g. raft
//     AddVoter on the leader) in the background: raft's change cannot commit before
//     the new node runs raft with its new certificate, which it can do only once it
//     has the answer. Where gossip drives raft's membership (the leader adds the
//     admitted members gossip sees, membership.go), Admit can be left out.
const (
	joinTimeout     = 10 * time.Second
	admitTimeout    = 30 * time.Second
	maxJoinExchange = 64 << 10
)

// ErrJoinRefused: the cluster refused a join for a reason other than its token (a
// name already in use, a bad address, ...); the error says which.
var ErrJoinRefused = errors.New("join refused")

// JoinRequest is what a new node asks for.
type JoinRequest struct {
	// Name is the new node's name (Config.Name), Role its role.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// RaftAddr and GossipAddr are the IP:port the others reach it at; their IPs go
	// into its certificate. GossipAddr may be empty.
	RaftAddr   string `json:"raft_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
}

type joinWireRequest struct {
	JoinRequest
	Token string `json:"token"`
	CSR   []byte `json:"csr"`
}

type joinWireResponse struct {
	Code       string   `json:"code,omitempty"`
	Error      string   `json:"error,omitempty"`
	Cert       []byte   `json:"cert,omitempty"`
	CACert     []byte   `json:"ca_cert,omitempty"`
	GossipKeys []string `json:"gossip_keys,omitempty"`
}

// joinCodes maps the refusals that travel to their codes on the wire.
var joinCodes = []struct {
	code string
	err  error
}{
	{"token-malformed", ErrTokenMalformed},
	{"token-unknown", ErrTokenUnknown},
	{"token-secret", ErrTokenSecret},
	{"token-expired", ErrTokenExpired},
	{"token-used", ErrTokenUsed},
	{"token-ca", ErrTokenCA},
	{"refused", ErrJoinRefused},
}

func joinCode(err error) string {
	for _, c := range joinCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

func joinCodeErr(code string) error {
	for _, c := range joinCodes {
		if c.code == code {
			return c.err
		}
	}
	return ErrJoinRefused
}

// JoinServer answers the join exchange on a voter. Its Serve is TLSOptions.Join.
type JoinServer struct {
	// CA signs the new node's certificate; it must have its key. Required.
	CA *CA
	// Tokens checks and spends the tokens: a *Tokens, or the replicated list
	// (Cluster.ReplicatedTokens). Required.
	Tokens TokenStore
	// GossipKeys returns the gossip keys (base64), the primary first. Required.
	GossipKeys func() []string
	// CheckName, if not nil, refuses a name already in use (by a raft member or a
	// live gossip member): otherwise a token holder could get a certificate in a
	// member's name and pass for it.
	CheckName func(name string) error
	// Record, if not nil, is called with the issued certificate before it is handed
	// out; an error refuses the join (the token is spent). The agent's join server
	// records the admission in the replicated state here (admission.go), so that the
	// node may become a voter.
	Record func(ctx context.Context, req JoinRequest, cert *x509.Certificate) error
	// Admit, if not nil, is called after the answer is sent, to add the node to raft
	// (e.g. AddVoter on the leader); its error is logged. ctx ends after 30s or when
	// the raft listener closes.
	Admit func(ctx context.Context, req JoinRequest) error
	// Now is the clock for token expiry and certificate validity. Default: time.Now.
	Now func() time.Time
	// Log gets one line per join, accepted or refused. Default: slog.Default().
	Log *slog.Logger
}

// ServeJoins makes this node (started WithTLS) answer joins on its raft port with
// JoinServer(ca, tokens); ca must hold the CA key (a voter). ServeJoins(nil, nil)
// stops answering them.
func (c *Cluster) ServeJoins(ca *CA, tokens TokenStore) {
	if ca == nil {
		c.joins.Store(nil)
		return
	}
	c.joins.Store(c.JoinServer(ca, tokens))
}

// JoinServer returns a join server for this node. It hands out this node's
// gossip keys, primary first; refuses a name that raft has as a server or gossip sees
// alive; and leaves adding the node to raft to the leader's reconcile of gossip. With
// TLS it answers only on the leader, and records the node's admission with its
// certificate in the replicated state before handing the certificate out: the
// reconcile adds admitted nodes only (admission.go). Without TLS the gossip keys are
// the admission.
func (c *Cluster) JoinServer(ca *CA, tokens TokenStore) *JoinServer {
	return &JoinServer{
		CA:     ca,
		Tokens: tokens,
		GossipKeys: func() []string {
			primary := c.gossip.keyring.GetPrimaryKey()
			keys := []string{base64.StdEncoding.EncodeToString(primary)}
			for _, k := range c.gossip.keyring.GetKeys() {
				if string(k) != string(primary) {
					keys = append(keys, base64.StdEncoding.EncodeToString(k))
				}
			}
			return keys
		},
		CheckName: func(name string) error {
			if name == c.cfg.Name {
				return errors.New("it is this node's")
			}
			if c.admission {
				if err := c.leaderOnly(); err != nil {
					return err // the admission is a raft write
				}
			}
			servers, err := c.servers()
			if err != nil {
				return err
			}
			if _, ok := servers[name]; ok {
				return errors.New("raft has a server by that name (remove it first)")
			}
			if st, ok := c.gossip.state(name); ok && st == MemberAlive {
				return errors.New("a live member has it")
			}
			return nil
		},
		Record: func(ctx context.Context, req JoinRequest, cert *x509.Certificate) error {
			if !c.admission {
				return nil
			}
			return c.admit(ctx, req.Name, req.RaftAddr, cert)
		},
		Now: c.clock.Now,
		Log: c.log.With("component", "join"),
	}
}

// Serve answers one join connection and closes it; ctx ends the admission in the
// background when the listener closes.
func (s *JoinServer) Serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	remote := c.RemoteAddr().String()
	_ = c.SetDeadline(s.now().Add(joinTimeout))
	var req joinWireRequest
	if err := json.NewDecoder(io.LimitReader(c, maxJoinExchange)).Decode(&req); err != nil {
		log.Warn("join refused: unreadable request", "remote", remote, "err", err)
		return
	}
	resp, err := s.answer(ctx, &req)
	if err != nil {
		resp = joinWireResponse{Code: joinCode(err), Error: err.Error()}
		log.Warn("join refused", "remote", remote, "member", req.Name, "err", err)
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		log.Warn("join: sending the answer failed", "remote", remote, "member", req.Name, "err", err)
		return
	}
	if resp.Code != "" {
		return
	}
	log.Info("join: certificate issued", "remote", remote, "member", req.Name, "role", req.Role, "raft", req.RaftAddr)
	_ = c.Close()
	if s.Admit != nil {
		ctx, cancel := context.WithTimeout(ctx, admitTimeout)
		defer cancel()
		if err := s.Admit(ctx, req.JoinRequest); err != nil {
			log.Warn("join: admitting the node to raft failed", "member", req.Name, "err", err)
		}
	}
}

func (s *JoinServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *JoinServer) answer(ctx context.Context, req *joinWireRequest) (joinWireResponse, error) {
	tok, err := ParseToken(req.Token)
	if err != nil {
		return joinWireResponse{}, err
	}
	now := s.now()
	if err := s.Tokens.Check(tok, now); err != nil {
		return joinWireResponse{}, err
	}
	if tok.CAFingerprint != s.CA.Fingerprint() {
		return joinWireResponse{}, fmt.Errorf("%w: this cluster's CA is %s", ErrTokenCA, s.CA.Fingerprint())
	}
	ips, err := req.check()
	if err != nil {
		return joinWireResponse{}, err
	}
	if s.CheckName != nil {
		if err := s.CheckName(req.Name); err != nil {
			return joinWireResponse{}, fmt.Errorf("%w: name %s: %v", ErrJoinRefused, req.Name, err)
		}
	}
	if err := s.Tokens.Redeem(tok, now); err != nil {
		return joinWireResponse{}, err
	}
	cert, err := s.CA.Issue(req.CSR, req.Name, ips, now)
	if err != nil {
		return joinWireResponse{}, fmt.Errorf("%w: %v", ErrJoinRefused, err)
	}
	if s.Record != nil {
		leaf, err := parseCertPEM(cert)
		if err != nil {
			return joinWireResponse{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		if err := s.Record(ctx, req.JoinRequest, leaf); err != nil {
			return joinWireResponse{}, fmt.Errorf("%w: recording the admission: %v", ErrJoinRefused, err)
		}
	}
	keys := s.GossipKeys()
	if len(keys) == 0 {
		return joinWireResponse{}, errors.New("no gossip key to hand out")
	}
	return joinWireResponse{Cert: cert, CACert: s.CA.CertPEM, GossipKeys: keys}, nil
}

// check validates the request's fields and returns the IPs for the certificate.
func (r *JoinRequest) check() ([]net.IP, error) {
	if !nameRE.MatchString(r.Name) {
		return nil, fmt.Errorf("%w: name %q is not a valid node name", ErrJoinRefused, r.Name)
	}
	if r.Role != RoleVoter && r.Role != RoleWitness {
		return nil, fmt.Errorf("%w: role %q must be voter or witness", ErrJoinRefused, r.Role)
	}
	raftAP, err := parseAdvertise(r.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: raft address %v", ErrJoinRefused, err)
	}
	ips := []net.IP{raftAP.Addr().AsSlice()}
	if r.GossipAddr != "" {
		g, err := parseAdvertise(r.GossipAddr)
		if err != nil {
			return nil, fmt.Errorf("%w: gossip address %v", ErrJoinRefused, err)
		}
		if g.Addr() != raftAP.Addr() {
			ips = append(ips, g.Addr().AsSlice())
		}
	}
	return ips, nil
}

// refusedError is the cluster's refusal of a join: its message, matching its
// sentinel error with errors.Is.
type refusedError struct {
	addr, msg string
	err       error
}

func (e *refusedError) Error() string { return "join " + e.addr + " refused: " + e.msg }
func (e *refusedError) Unwrap() error { return e.err }

// JoinResult is what a node gets from the cluster it joined.
type JoinResult struct {
	// Node is the node's key with its certificate and the CA's: save it (Save) and
	// give it to the TLS stream layer.
	Node *NodeKey
	// GossipKeys are the cluster's gossip keys (base64), the primary first.
	GossipKeys []string
}

// RequestJoin runs the joiner's side of the join exchange with the voter at addr
// (its raft address): see the top of join.go. Token errors come back as the same
// sentinel errors as on the server (ErrTokenExpired, ...); a server that is not in the
// token's cluster is refused with ErrTokenCA before anything is sent.
func RequestJoin(ctx context.Context, addr, token string, req JoinRequest) (*JoinResult, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	ips, err := req.check()
	if err != nil {
		return nil, err
	}
	node, err := NewNodeKey(req.Name)
	if err != nil {
		return nil, err
	}
	csr, err := node.CSR(ips)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("join: address %q: %w", addr, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, joinTimeout)
		defer cancel()
	}
	d := &tls.Dialer{Config: &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpnJoin},
		// The chain is checked against the token's CA in VerifyConnection instead of
		// the system's roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyByFingerprint(cs, tok.CAFingerprint, host)
		},
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(joinWireRequest{JoinRequest: req, Token: token, CSR: csr}); err != nil {
		return nil, fmt.Errorf("join %s: sending request: %w", addr, err)
	}
	var resp joinWireResponse
	if err := json.NewDecoder(io.LimitReader(c, maxJoinExchange)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("join %s: reading answer: %w", addr, err)
	}
	if resp.Code != "" {
		return nil, &refusedError{addr: addr, msg: resp.Error, err: joinCodeErr(resp.Code)}
	}
	ca, err := ParseCA(resp.CACert, nil)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", addr, err)
	}
	if ca.Fingerprint() != tok.CAFingerprint {
		return nil, fmt.Errorf("join %s: the CA certificate in the answer is not the token's: %w", addr, ErrTokenCA)
	}
	if err := node.SetCert(resp.Cert, resp.CACert); err != nil {
		return nil, fmt.Errorf("join %s: %w", addr, err)
	}
	if len(resp.GossipKeys) == 0 {
		return nil, fmt.Errorf("join %s: the answer has no gossip key", addr)
	}
	for _, k := range resp.GossipKeys {
		if _, err := decodeKey(k); err != nil {
			return nil, fmt.Errorf("join %s: gossip key %v", addr, err)
		}
	}
	return &JoinResult{Node: node, GossipKeys: resp.GossipKeys}, nil
}

// verifyByFingerprint accepts a server whose chain holds the CA with the given
// fingerprint and whose certificate that CA signed, for host.
func verifyByFingerprint(cs tls.ConnectionState, caFingerprint, host string) error {
	if cs.NegotiatedProtocol != alpnJoin {
		return fmt.Errorf("server did not agree to %s", alpnJoin)
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates[1:] {
		if CertFingerprint(c) == caFingerprint {
			ca = c
		}
	}
	if ca == nil {
		return fmt.Errorf("%w: the server's certificate chain does not hold the CA %s…", ErrTokenCA, caFingerprint[:16])
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSName: host}
	if ip, err := netip.ParseAddr(host); err == nil {
		opts.DNSName = ip.String()
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("the server's certificate is not the cluster's for %s: %w", host, err)
	}
	return nil
}
