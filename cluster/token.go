package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// A join token lets one new node into the cluster, once or until it expires:
//
//	lbd1.<id>.<secret>.<ca-sha256>
//
// id (12 hex digits) names the token; secret (32 hex digits, 128 random bits)
// authenticates the joiner; ca-sha256 (64 hex digits) is the SHA-256 of the cluster
// CA's certificate, which the joiner checks the cluster's TLS certificate chain
// against before it sends anything (join.go), so it trusts that CA and no other
// without trusting the first answer it gets.
//
// The cluster keeps, per id, only the SHA-256 of id and secret, the expiry and whether
// the token is single-use (Tokens): a copy of a voter's state directory, or of the
// replicated token list, gives no secret to join with, and the joiner stores nothing of
// its token. Secrets are 128 random bits, so a plain hash is enough (no password
// stretching), and the check is constant-time.
//
// Tokens are reusable until they expire (default 24 h, TokenOptions.TTL), so that one
// token printed by cluster init serves a pair and its witness; TokenOptions.SingleUse
// makes a token good for one successful redeem. Single use is enforced by the Tokens
// that redeems it: with the list replicated to every voter, two joins racing through
// two different voters can both use it; joins go through the leader to avoid that.

const (
	tokenVersion = "lbd1"
	// DefaultTokenTTL is how long a join token is valid when TokenOptions.TTL is 0.
	DefaultTokenTTL = 24 * time.Hour
	// MaxTokenTTL bounds TokenOptions.TTL.
	MaxTokenTTL = 30 * 24 * time.Hour
)

// Errors a join token is refused with; match them with errors.Is.
var (
	// ErrTokenMalformed: the text is not a join token (lbd1.<id>.<secret>.<ca-sha256>).
	ErrTokenMalformed = errors.New("malformed join token")
	// ErrTokenUnknown: no token with this id (never created, revoked, or expired and
	// pruned).
	ErrTokenUnknown = errors.New("unknown join token")
	// ErrTokenExpired: the token's time is up.
	ErrTokenExpired = errors.New("join token expired")
	// ErrTokenSecret: the id is known but the secret is wrong.
	ErrTokenSecret = errors.New("join token secret does not match")
	// ErrTokenUsed: a single-use token that has been used already.
	ErrTokenUsed = errors.New("join token already used")
	// ErrTokenCA: the token names another cluster CA than the one it was checked
	// against (the joiner's check of the cluster, or the cluster's of the token).
	ErrTokenCA = errors.New("join token is for another cluster CA")
)

// JoinToken is a parsed join token.
type JoinToken struct {
	ID            string
	Secret        string
	CAFingerprint string
}

// String is the token as the operator passes it to lbctl cluster join. It contains
// the secret: print it only to the operator who asked for it.
func (t JoinToken) String() string {
	return tokenVersion + "." + t.ID + "." + t.Secret + "." + t.CAFingerprint
}

var (
	tokenIDRE     = regexp.MustCompile(`^[0-9a-f]{12}$`)
	tokenSecretRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	tokenCARE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseToken parses a join token; anything but lbd1.<12 hex>.<32 hex>.<64 hex> is
// refused with ErrTokenMalformed (saying which part is wrong, never echoing it).
func ParseToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 {
		return JoinToken{}, fmt.Errorf("%w: want 4 parts separated by '.', got %d", ErrTokenMalformed, len(parts))
	}
	if parts[0] != tokenVersion {
		return JoinToken{}, fmt.Errorf("%w: it does not start with %q", ErrTokenMalformed, tokenVersion+".")
	}
	t := JoinToken{ID: parts[1], Secret: parts[2], CAFingerprint: parts[3]}
	switch {
	case !tokenIDRE.MatchString(t.ID):
		return JoinToken{}, fmt.Errorf("%w: the id must be 12 lowercase hex digits", ErrTokenMalformed)
	case !tokenSecretRE.MatchString(t.Secret):
		return JoinToken{}, fmt.Errorf("%w: the secret must be 32 lowercase hex digits", ErrTokenMalformed)
	case !tokenCARE.MatchString(t.CAFingerprint):
		return JoinToken{}, fmt.Errorf("%w: the CA fingerprint must be 64 lowercase hex digits", ErrTokenMalformed)
	}
	return t, nil
}

// TokenOptions say how a new token may be used.
type TokenOptions struct {
	// TTL is how long the token is valid, up to MaxTokenTTL. Default (0):
	// DefaultTokenTTL.
	TTL time.Duration
	// SingleUse makes the token good for one join. Default: reusable until it
	// expires.
	SingleUse bool
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID        string    `json:"id"`
	Expires   time.Time `json:"expires"`
	SingleUse bool      `json:"single_use,omitempty"`
	Used      int       `json:"used,omitempty"`
}

type tokenRecord struct {
	TokenInfo
	// Hash is hex SHA-256 of "id.secret".
	Hash string `json:"hash"`
	// CA is the fingerprint of the CA the token was made for.
	CA string `json:"ca"`
}

// Tokens is the cluster's list of join tokens: their hashes, never their secrets. Safe
// for concurrent use. Marshal and UnmarshalTokens carry it to the other voters.
type Tokens struct {
	// mu guards recs.
	mu   sync.Mutex
	recs map[string]*tokenRecord
}

// NewTokens returns an empty token list.
func NewTokens() *Tokens { return &Tokens{recs: map[string]*tokenRecord{}} }

func tokenHash(id, secret string) string {
	sum := sha256.Sum256([]byte(id + "." + secret))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating join token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Create makes a token for the CA with fingerprint caFingerprint, valid from now.
func (ts *Tokens) Create(caFingerprint string, now time.Time, o TokenOptions) (JoinToken, error) {
	if !tokenCARE.MatchString(caFingerprint) {
		return JoinToken{}, fmt.Errorf("creating join token: CA fingerprint %q is not 64 lowercase hex digits", caFingerprint)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return JoinToken{}, fmt.Errorf("creating join token: ttl (%v) must be between 0 and %v", ttl, MaxTokenTTL)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var t JoinToken
	for {
		id, err := randomHex(6)
		if err != nil {
			return JoinToken{}, err
		}
		if _, dup := ts.recs[id]; !dup {
			t.ID = id
			break
		}
	}
	secret, err := randomHex(16)
	if err != nil {
		return JoinToken{}, err
	}
	t.Secret, t.CAFingerprint = secret, caFingerprint
	ts.recs[t.ID] = &tokenRecord{
		TokenInfo: TokenInfo{ID: t.ID, Expires: now.Add(ttl), SingleUse: o.SingleUse},
		Hash:      tokenHash(t.ID, t.Secret),
		CA:        caFingerprint,
	}
	return t, nil
}

// Check tells whether the token would be accepted now, without using it.
func (ts *Tokens) Check(t JoinToken, now time.Time) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, err := ts.check(t, now)
	return err
}

// Redeem accepts the token and counts a use; a single-use token is then spent. The
// errors: ErrTokenUnknown, ErrTokenSecret, ErrTokenExpired, ErrTokenUsed, ErrTokenCA.
func (ts *Tokens) Redeem(t JoinToken, now time.Time) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	r, err := ts.check(t, now)
	if err != nil {
		return err
	}
	r.Used++
	return nil
}

func (ts *Tokens) check(t JoinToken, now time.Time) (*tokenRecord, error) {
	r, ok := ts.recs[t.ID]
	if !ok {
		return nil, fmt.Errorf("%w (id %s)", ErrTokenUnknown, t.ID)
	}
	if subtle.ConstantTimeCompare([]byte(r.Hash), []byte(tokenHash(t.ID, t.Secret))) != 1 {
		return nil, fmt.Errorf("%w (id %s)", ErrTokenSecret, t.ID)
	}
	if !now.Before(r.Expires) {
		return nil, fmt.Errorf("%w (id %s expired at %s)", ErrTokenExpired, t.ID, r.Expires.UTC().Format(time.RFC3339))
	}
	if r.SingleUse && r.Used > 0 {
		return nil, fmt.Errorf("%w (id %s is single-use)", ErrTokenUsed, t.ID)
	}
	if t.CAFingerprint != r.CA {
		return nil, fmt.Errorf("%w (id %s)", ErrTokenCA, t.ID)
	}
	return r, nil
}

// Revoke deletes a token; it reports whether there was one with that id.
func (ts *Tokens) Revoke(id string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, ok := ts.recs[id]
	delete(ts.recs, id)
	return ok
}

// Prune deletes the tokens that have expired at now. A spent single-use token stays
// until then, so that it is refused as used (ErrTokenUsed), not as unknown.
func (ts *Tokens) Prune(now time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for id, r := range ts.recs {
		if !now.Before(r.Expires) {
			delete(ts.recs, id)
		}
	}
}

// List describes the tokens, by id, without their secrets.
func (ts *Tokens) List() []TokenInfo {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]TokenInfo, 0, len(ts.recs))
	for _, r := range ts.recs {
		out = append(out, r.TokenInfo)
	}
	slices.SortFunc(out, func(a, b TokenInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Marshal encodes the list (hashes, expiries, uses; no secrets) as JSON, to replicate
// it to the other voters or keep it on disk (mode 0600 all the same).
func (ts *Tokens) Marshal() ([]byte, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return json.Marshal(ts.recs)
}

// UnmarshalTokens decodes what Marshal encoded.
func UnmarshalTokens(b []byte) (*Tokens, error) {
	ts := NewTokens()
	if err := json.Unmarshal(b, &ts.recs); err != nil {
		return nil, fmt.Errorf("decoding join tokens: %w", err)
	}
	for id, r := range ts.recs {
		if r == nil || r.ID != id || !tokenIDRE.MatchString(id) {
			return nil, fmt.Errorf("decoding join tokens: bad entry %q", id)
		}
	}
	return ts, nil
}
