package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// The cluster CA and the join token list travel to every node as replicated files
// (the same raft entries as the config's certificates; every node keeps them mode 0600
// under files/), so that whichever voter leads can answer joins:
//
//	lbd-cluster-ca.crt    the CA certificate
//	lbd-cluster-ca.key    the CA key (PKCS #8 PEM)
//	lbd-join-tokens.json  the token list (Tokens.Marshal: hashes, expiries, uses)
//
// A token is created and spent on the leader, through raft (CreateToken, and the
// TokenStore ReplicatedTokens returns), one at a time on that node, so a single-use
// token is good for exactly one join even when joins race; a join sent to a follower
// is refused with the leader's name and address (ErrNotLeader).
const (
	replicatedCACert = "lbd-cluster-ca.crt"
	replicatedCAKey  = "lbd-cluster-ca.key"
	replicatedTokens = "lbd-join-tokens.json"
)

// ErrNoCA: the cluster has no CA yet (PutCA was never committed).
var ErrNoCA = errors.New("the cluster has no CA")

// PutCA replicates the cluster CA, with its key, to every node (at cluster init, on
// the leader).
func (c *Cluster) PutCA(ctx context.Context, ca *CA) error {
	key, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	return c.PutFiles(ctx, FilesChange{Put: map[string][]byte{replicatedCACert: ca.CertPEM, replicatedCAKey: key}})
}

// ClusterCA returns the replicated cluster CA, with its key; ErrNoCA before PutCA.
func (c *Cluster) ClusterCA() (*CA, error) {
	cert, ok := c.fsm.file(replicatedCACert)
	if !ok {
		return nil, ErrNoCA
	}
	key, ok := c.fsm.file(replicatedCAKey)
	if !ok {
		return nil, fmt.Errorf("%w key", ErrNoCA)
	}
	return ParseCA(cert, key)
}

// TokenStore checks and spends join tokens; *Tokens is one in memory, and
// ReplicatedTokens one in raft.
type TokenStore interface {
	// Check tells whether the token would be accepted at now, without using it.
	Check(t JoinToken, now time.Time) error
	// Redeem accepts the token and counts a use.
	Redeem(t JoinToken, now time.Time) error
}

// tokens reads the replicated token list (empty if there is none).
func (c *Cluster) tokens() (*Tokens, error) {
	b, ok := c.fsm.file(replicatedTokens)
	if !ok {
		return NewTokens(), nil
	}
	return UnmarshalTokens(b)
}

// updateTokens changes the replicated token list on the leader: it reads the list,
// drops the expired tokens, applies change, and commits the result. The
// read and the commit happen under tokenMu, so two changes on this node never
// undo each other.
func (c *Cluster) updateTokens(ctx context.Context, change func(*Tokens, time.Time) error) error {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if err := c.leaderOnly(); err != nil {
		return err
	}
	ts, err := c.tokens()
	if err != nil {
		return err
	}
	now := c.clock.Now()
	ts.Prune(now)
	if err := change(ts, now); err != nil {
		return err
	}
	b, err := ts.Marshal()
	if err != nil {
		return err
	}
	return c.PutFiles(ctx, FilesChange{Put: map[string][]byte{replicatedTokens: b}})
}

// leaderOnly answers a *NotLeaderError naming the leader unless this node leads.
func (c *Cluster) leaderOnly() error {
	r := c.r()
	if r.State() == raft.Leader {
		return nil
	}
	addr, id := r.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// CreateToken makes a join token for the replicated CA and commits it to the
// replicated list (on the leader). The token's secret is in what it returns only.
func (c *Cluster) CreateToken(ctx context.Context, o TokenOptions) (JoinToken, error) {
	ca, err := c.ClusterCA()
	if err != nil {
		return JoinToken{}, err
	}
	var tok JoinToken
	err = c.updateTokens(ctx, func(ts *Tokens, now time.Time) error {
		tok, err = ts.Create(ca.Fingerprint(), now, o)
		return err
	})
	return tok, err
}

// RevokeToken deletes a token from the replicated list (on the leader); it is no
// error if there was none.
func (c *Cluster) RevokeToken(ctx context.Context, id string) error {
	return c.updateTokens(ctx, func(ts *Tokens, _ time.Time) error {
		ts.Revoke(id)
		return nil
	})
}

// JoinTokens lists the replicated tokens, without secrets.
func (c *Cluster) JoinTokens() ([]TokenInfo, error) {
	ts, err := c.tokens()
	if err != nil {
		return nil, err
	}
	return ts.List(), nil
}

// ReplicatedTokens is the TokenStore of the replicated list, for ServeJoins: Check
// reads this node's copy, Redeem commits the use through raft (leader only; the
// join's deadline bounds it).
func (c *Cluster) ReplicatedTokens() TokenStore { return replicatedTokenStore{c} }

type replicatedTokenStore struct{ c *Cluster }

func (s replicatedTokenStore) Check(t JoinToken, now time.Time) error {
	if err := s.c.leaderOnly(); err != nil {
		return fmt.Errorf("%w: %v", ErrJoinRefused, err)
	}
	ts, err := s.c.tokens()
	if err != nil {
		return err
	}
	return ts.Check(t, now)
}

func (s replicatedTokenStore) Redeem(t JoinToken, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout/2)
	defer cancel()
	return s.c.updateTokens(ctx, func(ts *Tokens, _ time.Time) error { return ts.Redeem(t, now) })
}
