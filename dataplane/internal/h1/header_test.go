package h1

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNextLineSplitHeader(t *testing.T) {
	type field struct{ K, V string }
	for _, tc := range []struct {
		name string
		raw  string
		want []field
	}{
		{name: "crlf", raw: "Host: a\r\nX-A:  b c \r\n\r\n", want: []field{{"Host", "a"}, {"X-A", "b c"}}},
		{name: "bare lf, no final line end", raw: "Host: a\nX-B:b", want: []field{{"Host", "a"}, {"X-B", "b"}}},
		{name: "empty value", raw: "X-E:\r\n", want: []field{{"X-E", ""}}},
		{name: "folded continuation skipped", raw: "X-A: b\r\n c\r\n\tc\r\nX-D: e\r\n", want: []field{{"X-A", "b"}, {"X-D", "e"}}},
		{name: "no name", raw: ": v\r\nnocolon\r\nX: y\r\n", want: []field{{"X", "y"}}},
		{name: "colon in value", raw: "Host: a:8080\r\n", want: []field{{"Host", "a:8080"}}},
		{name: "nothing", raw: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []field
			for r := []byte(tc.raw); len(r) > 0; {
				var line []byte
				line, r = NextLine(r)
				if k, v, ok := SplitHeader(line); ok {
					got = append(got, field{string(k), string(v)})
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "Content-Length", true},
		{"content-length", "content-lengt", false},
		{"", "", true},
		{"a", "b", false},
		{"@", "`", false}, // one apart from 'A' and 'a' in ASCII, but not letters
		{"[", "{", false},
		{"\xc3\x84", "\xc3\xa4", false}, // Ä and ä: only ASCII folds
	} {
		if got := EqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}

// fieldKinds is KindOf's table, by lower-case name: the reference of TestKindOf and
// FuzzHeaderFields.
var fieldKinds = map[string]FieldKind{
	"te":                TE,
	"date":              Date,
	"expect":            Hop,
	"upgrade":           Hop,
	"keep-alive":        Hop,
	"proxy-connection":  Hop,
	"connection":        Connection,
	"x-forwarded-for":   XForwardedFor,
	"x-real-ip":         Forwarded,
	"x-forwarded-host":  Forwarded,
	"x-forwarded-proto": Forwarded,
}

// refKindOf is KindOf by the table.
func refKindOf(k []byte) FieldKind {
	var lower []byte
	for _, c := range k {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	return fieldKinds[string(lower)] // Other, the zero FieldKind, for the rest
}

func TestKindOf(t *testing.T) {
	for name, want := range fieldKinds {
		for _, k := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			if got := KindOf([]byte(k)); got != want {
				t.Errorf("KindOf(%q) = %d, want %d", k, got, want)
			}
		}
	}
	for _, k := range []string{"", "host", "content-length", "transfer-encoding", "trailer", "tee", "x-forwarded-port", "connectiom", "keep_alive"} {
		if got := KindOf([]byte(k)); got != Other {
			t.Errorf("KindOf(%q) = %d, want Other", k, got)
		}
	}
}

func TestTokens(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want []string
	}{
		{v: "close", want: []string{"close"}},
		{v: " keep-alive , Upgrade,X-A ", want: []string{"keep-alive", "Upgrade", "X-A"}},
		{v: ",, ,\t,", want: nil},
		{v: "", want: nil},
		{v: "a,b", want: []string{"a", "b"}},
	} {
		toks := AppendTokens([][]byte{[]byte("first")}, []byte(tc.v))
		var got []string
		for _, tok := range toks[1:] {
			got = append(got, string(tok))
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("AppendTokens(%q) (-want +got):\n%s", tc.v, diff)
		}
		for _, w := range tc.want {
			if !HasToken(toks, []byte(strings.ToUpper(w))) {
				t.Errorf("HasToken(%q, %q) = false", tc.v, strings.ToUpper(w))
			}
		}
	}
	if HasToken(AppendTokens(nil, []byte("close, keep-alive")), []byte("clos")) {
		t.Error(`HasToken matched "clos" in "close, keep-alive"`)
	}
}

// FuzzHeaderFields walks any input as a header block and holds each piece to a plain
// reference: NextLine and SplitHeader to strings.Cut, EqualFold to bytes.EqualFold on
// ASCII, KindOf to its table, AppendTokens and HasToken to strings.Split.
func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte("Host: a\r\nConnection: close, X-A\r\nX-A: b\r\nTE: trailers\r\n\r\n"), "x-a")
	f.Add([]byte("X-Forwarded-For: 198.18.0.1 , 198.18.0.2\nKeep-Alive: 5\n folded\n"), "KEEP-ALIVE")
	for name := range fieldKinds {
		f.Add([]byte(strings.ToUpper(name)+": ,v,\r\n"), name)
	}
	f.Fuzz(func(t *testing.T, raw []byte, name string) {
		for rest := raw; len(rest) > 0; {
			wantLine, wantRest, _ := bytes.Cut(rest, []byte("\n"))
			wantLine = bytes.TrimSuffix(wantLine, []byte("\r"))
			var line []byte
			line, rest = NextLine(rest)
			if !bytes.Equal(line, wantLine) || !bytes.Equal(rest, wantRest) {
				t.Fatalf("NextLine: %q, %q; want %q, %q", line, rest, wantLine, wantRest)
			}
			k, v, ok := SplitHeader(line)
			wk, wv, wok := strings.Cut(string(line), ":")
			wok = wok && wk != "" && wk[0] != ' ' && wk[0] != '\t'
			if ok != wok || ok && (string(k) != wk || string(v) != string(bytes.TrimSpace([]byte(wv)))) {
				t.Fatalf("SplitHeader(%q) = %q, %q, %v", line, k, v, ok)
			}
			if !ok {
				continue
			}
			if got, want := KindOf(k), refKindOf(k); got != want {
				t.Fatalf("KindOf(%q) = %d, want %d", k, got, want)
			}
			if got, want := EqualFold(k, name), asciiEqualFold(string(k), name); got != want {
				t.Fatalf("EqualFold(%q, %q) = %v, want %v", k, name, got, want)
			}
			toks := AppendTokens(nil, v)
			var want [][]byte
			for _, s := range strings.Split(string(v), ",") {
				if s = string(bytes.TrimSpace([]byte(s))); s != "" {
					want = append(want, []byte(s))
				}
			}
			if !cmp.Equal(toks, want, cmp.Comparer(bytes.Equal)) {
				t.Fatalf("AppendTokens(%q) = %q, want %q", v, toks, want)
			}
			has := false
			for _, w := range want {
				has = has || bytes.EqualFold(w, []byte(name))
			}
			if got := HasToken(toks, []byte(name)); got != has {
				t.Fatalf("HasToken(%q, %q) = %v, want %v", toks, name, got, has)
			}
		}
	})
}

// asciiEqualFold is strings.EqualFold with only ASCII letters folding.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if x >= 0x80 || y >= 0x80 {
			if x != y {
				return false
			}
			continue
		}
		if !strings.EqualFold(string(x), string(y)) {
			return false
		}
	}
	return true
}
