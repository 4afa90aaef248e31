package sticky

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/clock"
)

// fuzzEntries decodes a batch of entries from fuzz bytes: per entry a key length
// (uint16, up to 600, so over MaxKeyBytes too), a server byte (0: a deletion, else one
// of four names) and an expiry as int16 seconds from now (past ones too), then the key.
func fuzzEntries(data []byte, now time.Time) []Entry {
	var out []Entry
	for len(data) >= 5 {
		n := int(binary.BigEndian.Uint16(data)) % 601
		server := ""
		if data[2] != 0 {
			server = fmt.Sprintf("s%d", data[2]%4)
		}
		exp := now.Add(time.Duration(int16(binary.BigEndian.Uint16(data[3:]))) * time.Second).UnixNano()
		data = data[5:]
		n = min(n, len(data))
		key := string(data[:n])
		if n == 0 && len(data) > 0 {
			key = strings.Repeat("k", int(data[0])%4) // short keys repeat, to exercise updates
			data = data[1:]
		}
		data = data[n:]
		out = append(out, Entry{Key: key, Server: server, Expires: exp})
	}
	return out
}

// FuzzImport applies a batch of entries, as another node would ship them, to an empty
// table and compares the result with a model (a map applied in order: the last word on
// a key wins, a deletion removes it, empty or over-long keys and past expiries are
// skipped, expiries are cut to now + ttl). Imports are no local changes. The same
// batch then goes to a small table that already holds local entries, whose invariants
// (map, expiry ring, change ring, size bound) must hold after it and after time passes.
func FuzzImport(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 60, 'a', 0, 1, 2, 0, 30, 'b'})
	f.Add([]byte{0, 1, 1, 0, 60, 'a', 0, 1, 0, 0, 60, 'a'})               // set, then delete
	f.Add([]byte{0, 1, 1, 0xff, 0xff, 'a'})                               // already expired
	f.Add([]byte{0, 1, 1, 0x7f, 0xff, 'a'})                               // beyond the ttl
	f.Add(append([]byte{2, 1, 1, 0, 60}, make([]byte, 513)...))           // over MaxKeyBytes
	f.Add([]byte{0, 0, 1, 0, 60, 0, 0, 0, 1, 0, 60, 3, 0, 0, 2, 0, 9, 2}) // empty and repeated keys
	f.Fuzz(func(t *testing.T, data []byte) {
		const ttl = 10 * time.Minute
		clk := clock.NewFake()
		now := clk.Now().UnixNano()
		in := fuzzEntries(data, clk.Now())

		tb := New(clk, ttl, 1<<20)
		n := tb.Import(in)
		stCheck(t, tb)
		model := map[string]Entry{}
		applied := 0
		for _, e := range in {
			if e.Key == "" || len(e.Key) > MaxKeyBytes || e.Expires <= now {
				continue
			}
			e.Expires = min(e.Expires, now+int64(ttl))
			if e.Server == "" {
				if _, ok := model[e.Key]; ok {
					delete(model, e.Key)
					applied++
				}
				continue
			}
			model[e.Key] = e
			applied++
		}
		want := make([]Entry, 0, len(model))
		for _, e := range model {
			want = append(want, e)
		}
		slices.SortFunc(want, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
		if diff := cmp.Diff(want, tb.Entries()); diff != "" {
			t.Fatalf("entries after Import (-model +table):\n%s", diff)
		}
		if n < len(model) || n > len(in) {
			t.Fatalf("Import applied %d of %d entries; the table holds %d", n, len(in), len(model))
		}
		if ch, _ := tb.Changes(0, 0); len(ch) != 0 {
			t.Fatalf("imported entries are local changes: %v", ch)
		}

		small := New(clk, ttl, 4)
		small.Set([]byte("a"), "local")
		small.Set([]byte("k"), "local")
		small.Import(in)
		stCheck(t, small)
		if small.Len() > 4 {
			t.Fatalf("a table of size 4 holds %d entries", small.Len())
		}
		for _, e := range small.Entries() {
			if e.Expires > now+int64(ttl) {
				t.Fatalf("%q expires %v after now, beyond the ttl", e.Key, time.Duration(e.Expires-now))
			}
		}
		clk.Advance(ttl)
		if got := small.Len(); got != 0 {
			t.Fatalf("%d entries outlive the ttl", got)
		}
		stCheck(t, small)
	})
}
