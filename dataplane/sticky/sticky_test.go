package sticky

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/clock"
)

// stAt returns the time d from clk's now, as Entry.Expires holds it.
func stAt(clk *clock.Fake, d time.Duration) int64 { return clk.Now().Add(d).UnixNano() }

func stLookup(t *Table, key string) string {
	s, _ := t.Lookup([]byte(key))
	return s
}

// stCheck verifies the table's invariants: map, expiry ring and change ring agree.
func stCheck(tb testing.TB, t *Table) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	n, live := 0, 0
	var last int64
	for e := t.exp.enext; e != &t.exp; e = e.enext {
		if e.enext.eprev != e {
			tb.Fatalf("expiry ring broken at %q", e.key)
		}
		if e.expires < last {
			tb.Fatalf("expiry ring out of order at %q", e.key)
		}
		last = e.expires
		if t.entries[e.key] != e {
			tb.Fatalf("%q on the expiry ring but not in the map", e.key)
		}
		if e.server != "" {
			live++
		}
		n++
	}
	if n != len(t.entries) || live != t.live {
		tb.Fatalf("ring holds %d (%d live), map %d, live count %d", n, live, len(t.entries), t.live)
	}
	var seq uint64
	for e := t.chg.cnext; e != &t.chg; e = e.cnext {
		if e.seq <= seq || t.entries[e.key] != e {
			tb.Fatalf("change ring broken at %q (seq %d after %d)", e.key, e.seq, seq)
		}
		seq = e.seq
	}
}

func TestStickyExpiry(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, 10*time.Minute, 100)
	tb.Set([]byte("a"), "s1")
	clk.Advance(5 * time.Minute)
	tb.Set([]byte("b"), "s2")
	if got := tb.Len(); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
	clk.Advance(5 * time.Minute) // a is due now, b in 5m
	if got := stLookup(tb, "a"); got != "" {
		t.Errorf("a after its ttl: %q, want expired", got)
	}
	if got := tb.Len(); got != 1 {
		t.Errorf("Len = %d, want 1", got)
	}
	clk.Advance(5*time.Minute - time.Nanosecond)
	if diff := cmp.Diff([]Entry{{Key: "b", Server: "s2", Expires: stAt(clk, time.Nanosecond)}}, tb.Entries()); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	clk.Advance(time.Nanosecond)
	if got := tb.Entries(); len(got) != 0 {
		t.Errorf("Entries after every ttl: %v", got)
	}
	stCheck(t, tb)
}

func TestStickyRefreshOnUse(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, 10*time.Minute, 100)
	tb.Set([]byte("a"), "s1")
	// Used every 6 minutes, it outlives its 10 minutes many times over.
	for i := range 10 {
		clk.Advance(6 * time.Minute)
		if got := stLookup(tb, "a"); got != "s1" {
			t.Fatalf("use %d: %q, want s1", i, got)
		}
	}
	if diff := cmp.Diff([]Entry{{Key: "a", Server: "s1", Expires: stAt(clk, 10*time.Minute)}}, tb.Entries()); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	// A use within ttl/64 of the last refresh does not move the expiry (nor count as a
	// change).
	seq := tb.Seq()
	clk.Advance(time.Second)
	stLookup(tb, "a")
	if tb.Seq() != seq || tb.Entries()[0].Expires != stAt(clk, 10*time.Minute-time.Second) {
		t.Errorf("a use 1s after a refresh refreshed again")
	}
	clk.Advance(10*time.Minute - time.Second)
	if got := stLookup(tb, "a"); got != "" {
		t.Errorf("unused for ttl: %q, want expired", got)
	}
	stCheck(t, tb)
}

func TestStickyEvictsOldest(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, time.Hour, 3)
	for _, k := range []string{"a", "b", "c"} {
		tb.Set([]byte(k), "s-"+k)
		clk.Advance(time.Minute)
	}
	stLookup(tb, "a") // a is now the most recently used
	tb.Set([]byte("d"), "s-d")
	tb.Set([]byte("e"), "s-e")
	var keys []string
	for _, e := range tb.Entries() {
		keys = append(keys, e.Key)
	}
	if diff := cmp.Diff([]string{"a", "d", "e"}, keys); diff != "" {
		t.Errorf("after two inserts over the bound (-want +got):\n%s", diff)
	}
	if got := tb.Evictions(); got != 2 {
		t.Errorf("Evictions = %d, want 2", got)
	}
	// Expired entries make room before anything is evicted.
	clk.Advance(2 * time.Hour)
	tb.Set([]byte("f"), "s-f")
	if got := tb.Evictions(); got != 2 {
		t.Errorf("Evictions = %d after expired entries made room, want 2", got)
	}
	// Shrinking the bound evicts at once.
	tb.Set([]byte("g"), "s-g")
	tb.Set([]byte("h"), "s-h")
	tb.SetLimits(time.Hour, 1)
	if e := tb.Entries(); len(e) != 1 || e[0].Key != "h" {
		t.Errorf("after shrinking to 1: %v, want h only", e)
	}
	stCheck(t, tb)
}

func TestStickyChanges(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, time.Hour, 100)
	if e, next := tb.Changes(0, 10); len(e) != 0 || next != 0 {
		t.Fatalf("empty table: %v, %d", e, next)
	}
	for i := range 5 {
		tb.Set(fmt.Appendf(nil, "k%d", i), "s1")
	}
	// Batches of 2 walk through all five, in order.
	var got []string
	var mark uint64
	for range 10 {
		e, next := tb.Changes(mark, 2)
		if len(e) == 0 {
			break
		}
		for _, x := range e {
			got = append(got, x.Key)
		}
		mark = next
	}
	if diff := cmp.Diff([]string{"k0", "k1", "k2", "k3", "k4"}, got); diff != "" {
		t.Fatalf("batches (-want +got):\n%s", diff)
	}
	if mark != tb.Seq() {
		t.Errorf("mark after the last batch = %d, want Seq() = %d", mark, tb.Seq())
	}
	// A key changed again comes once more, in its new state, and nothing else.
	clk.Advance(time.Minute)
	tb.Set([]byte("k1"), "s2")
	e, next := tb.Changes(mark, 0)
	if diff := cmp.Diff([]Entry{{Key: "k1", Server: "s2", Expires: stAt(clk, time.Hour)}}, e); diff != "" {
		t.Errorf("changes since the mark (-want +got):\n%s", diff)
	}
	// From the start, every key once, k1 last.
	e, _ = tb.Changes(0, 0)
	if len(e) != 5 || e[4].Key != "k1" {
		t.Errorf("changes from 0: %v", e)
	}
	// A refresh is a change: replicas must learn the new expiry.
	clk.Advance(10 * time.Minute)
	stLookup(tb, "k3")
	if e, _ := tb.Changes(next, 0); len(e) != 1 || e[0].Key != "k3" || e[0].Expires != stAt(clk, time.Hour) {
		t.Errorf("changes after a refresh: %v", e)
	}
	// A mark from a previous life of the table reads from the start.
	if e, _ := tb.Changes(tb.Seq()+100, 0); len(e) != 5 {
		t.Errorf("changes since a mark beyond Seq: %d entries, want 5", len(e))
	}
	stCheck(t, tb)
}

func TestStickyImportDoesNotEcho(t *testing.T) {
	clk := clock.NewFake()
	a := New(clk, time.Hour, 100)
	b := New(clk, time.Hour, 100)
	a.Set([]byte("10.0.0.1"), "s1")
	a.Set([]byte("10.0.0.2"), "s2")
	changes, _ := a.Changes(0, 0)
	if n := b.Import(changes); n != 2 {
		t.Fatalf("Import applied %d, want 2", n)
	}
	if diff := cmp.Diff(a.Entries(), b.Entries()); diff != "" {
		t.Errorf("b after importing a's changes (-a +b):\n%s", diff)
	}
	if e, next := b.Changes(0, 0); len(e) != 0 || next != 0 {
		t.Errorf("b echoes imported entries: %v (next %d)", e, next)
	}
	// Imported entries serve lookups, keep their absolute expiry, and a local use
	// refreshes them as a local change.
	if got := stLookup(b, "10.0.0.1"); got != "s1" {
		t.Errorf("lookup of an imported key: %q", got)
	}
	clk.Advance(30 * time.Minute)
	stLookup(b, "10.0.0.2")
	if e, _ := b.Changes(0, 0); len(e) != 1 || e[0].Key != "10.0.0.2" {
		t.Errorf("b's changes after a local refresh: %v, want 10.0.0.2 only", e)
	}
	// Importing over a local change replaces it and withdraws it from Changes.
	b.Set([]byte("10.0.0.3"), "s1")
	b.Import([]Entry{{Key: "10.0.0.3", Server: "s2", Expires: stAt(clk, time.Minute)}})
	if e, _ := b.Changes(0, 0); len(e) != 1 {
		t.Errorf("b's changes after an import over a local entry: %v", e)
	}
	if got := stLookup(b, "10.0.0.3"); got != "s2" {
		t.Errorf("imported value lost: %q", got)
	}
	// Expiry is by absolute time: 10.0.0.1 was not used on b and expires when a said.
	clk.Advance(30 * time.Minute)
	if got := stLookup(b, "10.0.0.1"); got != "" {
		t.Errorf("imported entry outlived its expiry: %q", got)
	}
	// Already-expired entries are not imported.
	if n := b.Import([]Entry{{Key: "old", Server: "s1", Expires: stAt(clk, -time.Second)}}); n != 0 {
		t.Errorf("imported an expired entry")
	}
	stCheck(t, a)
	stCheck(t, b)
}

func TestStickyDelete(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, time.Hour, 100)
	for i := range 6 {
		tb.Set(fmt.Appendf(nil, "k%d", i), fmt.Sprintf("s%d", i%2))
	}
	_, mark := tb.Changes(0, 0)
	if !tb.Delete("k0") {
		t.Errorf("Delete(k0) = false")
	}
	if tb.Delete("k0") || tb.Delete("nope") {
		t.Errorf("Delete of a missing key = true")
	}
	if n := tb.DeleteServer("s1"); n != 3 {
		t.Errorf("DeleteServer(s1) = %d, want 3", n)
	}
	var keys []string
	for _, e := range tb.Entries() {
		keys = append(keys, e.Key)
	}
	if diff := cmp.Diff([]string{"k2", "k4"}, keys); diff != "" {
		t.Errorf("after deleting k0 and s1's keys (-want +got):\n%s", diff)
	}
	if got := stLookup(tb, "k1"); got != "" {
		t.Errorf("deleted key still looked up: %q", got)
	}
	// Deletions are changes, with no server, which another table applies.
	changes, _ := tb.Changes(mark, 0)
	if len(changes) != 4 {
		t.Fatalf("changes after 4 deletions: %v", changes)
	}
	for _, c := range changes {
		if c.Server != "" {
			t.Errorf("deletion change %v has a server", c)
		}
	}
	other := New(clk, time.Hour, 100)
	all, _ := tb.Changes(0, 0)
	other.Import(all) // six keys: two live, four tombstones
	other.Import([]Entry{{Key: "k2", Server: "", Expires: stAt(clk, time.Hour)}})
	if e := other.Entries(); len(e) != 1 || e[0].Key != "k4" {
		t.Errorf("other after importing deletions: %v, want k4 only", e)
	}
	// A deleted key can stick again.
	tb.Set([]byte("k1"), "s0")
	if got := stLookup(tb, "k1"); got != "s0" || tb.Len() != 3 {
		t.Errorf("k1 set again: %q, Len %d", got, tb.Len())
	}
	stCheck(t, tb)
	stCheck(t, other)
}

func TestStickyConcurrent(t *testing.T) {
	tb := New(clock.NewFake(), time.Hour, 50)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Appendf(nil, "k%d", (i*7+g)%80)
				if _, ok := tb.Lookup(k); !ok {
					tb.Set(k, "s")
				}
				if i%97 == 0 {
					tb.Changes(uint64(i), 10)
					tb.Delete(string(k))
				}
			}
		}()
	}
	wg.Wait()
	stCheck(t, tb)
	if tb.Len() > 50 {
		t.Errorf("Len = %d over the bound of 50", tb.Len())
	}
}

// TestHostileKeys: keys a client made long are not recorded, so the table's bytes are
// bounded by size × MaxKeyBytes; an imported expiry is cut to now + ttl.
func TestHostileKeys(t *testing.T) {
	clk := clock.NewFake()
	tb := New(clk, time.Minute, 10)
	long := make([]byte, MaxKeyBytes+1)
	for i := range long {
		long[i] = 'k'
	}
	tb.Set(long, "s1")
	tb.Set(long[:MaxKeyBytes], "s2")
	if n := tb.Len(); n != 1 {
		t.Errorf("after a key of %d bytes and one of %d: %d entries, want 1", len(long), MaxKeyBytes, n)
	}
	if s, ok := tb.Lookup(long); ok {
		t.Errorf("a key over MaxKeyBytes found: %q", s)
	}
	if n := tb.Import([]Entry{{Key: string(long), Server: "s1", Expires: stAt(clk, time.Second)}}); n != 0 {
		t.Errorf("imported a key over MaxKeyBytes")
	}

	tb.Import([]Entry{{Key: "far", Server: "s1", Expires: stAt(clk, 24*time.Hour)}})
	want := stAt(clk, time.Minute)
	for _, e := range tb.Entries() {
		if e.Key == "far" && e.Expires != want {
			t.Errorf("imported expiry %v from now, want the ttl (1m)", time.Duration(e.Expires-clk.Now().UnixNano()))
		}
	}
	clk.Advance(time.Minute + time.Second)
	if s, ok := tb.Lookup([]byte("far")); ok {
		t.Errorf("an imported entry outlived the ttl: %q", s)
	}
	stCheck(t, tb)
}
