package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenParse(t *testing.T) {
	good := "lbd1.0123456789ab.0123456789abcdef0123456789abcdef." + strings.Repeat("a", 64)
	tok, err := ParseToken(good)
	if err != nil {
		t.Fatal(err)
	}
	if tok.String() != good {
		t.Errorf("round trip: %q", tok.String())
	}
	for name, s := range map[string]string{
		"empty":        "",
		"three parts":  "lbd1.0123456789ab.0123456789abcdef0123456789abcdef",
		"version":      "lbd2" + good[4:],
		"short id":     "lbd1.0123456789a.0123456789abcdef0123456789abcdef." + strings.Repeat("a", 64),
		"upper secret": "lbd1.0123456789ab.0123456789ABCDEF0123456789abcdef." + strings.Repeat("a", 64),
		"short ca":     "lbd1.0123456789ab.0123456789abcdef0123456789abcdef." + strings.Repeat("a", 63),
		"five parts":   good + ".x",
		"non-hex ca":   "lbd1.0123456789ab.0123456789abcdef0123456789abcdef." + strings.Repeat("g", 64),
	} {
		if _, err := ParseToken(s); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("%s: err %v, want ErrTokenMalformed", name, err)
		}
	}
}

func TestTokensRedeem(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	ts := NewTokens()
	reusable, err := ts.Create(fp, testNow, TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	once, err := ts.Create(fp, testNow, TokenOptions{TTL: time.Hour, SingleUse: true})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseToken(reusable.String())
	if err != nil || parsed != reusable {
		t.Fatalf("parse of a created token: %+v %v", parsed, err)
	}
	for i := range 2 {
		if err := ts.Redeem(reusable, testNow.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatalf("reusable token, use %d: %v", i+1, err)
		}
	}
	if err := ts.Redeem(once, testNow); err != nil {
		t.Fatal(err)
	}
	wrong := reusable
	wrong.Secret = strings.Repeat("0", 32)
	unknown := reusable
	unknown.ID = "000000000000"
	otherCA := reusable
	otherCA.CAFingerprint = strings.Repeat("cd", 32)
	for _, c := range []struct {
		name string
		tok  JoinToken
		at   time.Time
		want error
	}{
		{"single use, again", once, testNow, ErrTokenUsed},
		{"expired", reusable, testNow.Add(DefaultTokenTTL), ErrTokenExpired},
		{"wrong secret", wrong, testNow, ErrTokenSecret},
		{"unknown", unknown, testNow, ErrTokenUnknown},
		{"another CA", otherCA, testNow, ErrTokenCA},
	} {
		if err := ts.Redeem(c.tok, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		} else if strings.Contains(err.Error(), c.tok.Secret) {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}

	// The list carries no secret, and survives a round trip.
	b, err := ts.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), reusable.Secret) || strings.Contains(string(b), once.Secret) {
		t.Fatalf("marshalled tokens carry a secret: %s", b)
	}
	ts2, err := UnmarshalTokens(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts2.Check(reusable, testNow); err != nil {
		t.Errorf("after round trip: %v", err)
	}
	if err := ts2.Check(once, testNow); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("single use after round trip: %v", err)
	}
	ts2.Prune(testNow.Add(2 * time.Hour))
	if l := ts2.List(); len(l) != 1 || l[0].ID != reusable.ID || l[0].Used != 2 {
		t.Errorf("after prune: %+v", l)
	}
	if !ts2.Revoke(reusable.ID) || ts2.Check(reusable, testNow) == nil {
		t.Error("revoked token still accepted")
	}
	if _, err := ts.Create(fp, testNow, TokenOptions{TTL: MaxTokenTTL + 1}); err == nil {
		t.Error("created a token beyond MaxTokenTTL")
	}
}
