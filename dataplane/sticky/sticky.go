// Package sticky is the sticky table of table persistence: a bounded map of request keys
// (a client address, a header or cookie value) to the name of the server each key sticks
// to, with expiry, and a change feed for replicating it between nodes.
//
// The request path looks keys up (a hit refreshes the entry's expiry) and records new
// ones; both are a map lookup and a few pointer moves under one mutex. Entries sit on an
// intrusive list in order of expiry, so that expired entries are swept from its head when
// an entry is added (and when the table is read for the admin API or metrics), and the
// size bound evicts from the same end: the entry that would expire soonest, which for
// entries written on this node is the least recently used. Nothing runs in the
// background.
//
// Replication (the cluster, later) reads the entries written on this node with Changes,
// which hands out each change once in order of a local sequence number, and applies
// other nodes' entries with Import, which does not count them as local changes, so that
// they are never shipped back. Expiry travels as an absolute time, and each node expires
// entries by its own clock. A deletion is shipped as an entry with no server (a
// tombstone), which is kept, invisible to lookups, until it expires.
//
// Memory is bounded by bytes, not only by count: a key longer than MaxKeyBytes is never
// recorded (Set and Import skip it, Lookup misses it), so a table of size entries holds
// at most size × MaxKeyBytes bytes of keys whatever clients send. An imported entry
// lives at most ttl from the import, whatever expiry the other node gave it.
//
// The package imports nothing of lbd; the dataplane owns one Table per backend with
// table persistence.
package sticky

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Clock is the table's source of time; an internal/clock Clock is one.
type Clock interface {
	Now() time.Time
}

// MaxKeyBytes is the longest key a table records. Longer keys (a header, cookie or URI
// a client made long) are not sticky: their requests are balanced. HAProxy's string
// stick tables cut keys at 32 bytes (type string len 32) instead, which makes long
// keys with one prefix share an entry.
const MaxKeyBytes = 512

// Entry is one entry of a table, as Entries lists it and as Changes and Import move it
// between nodes.
type Entry struct {
	// Key is the request key, such as "192.0.2.7" or a header's value.
	Key string
	// Server is the name of the server the key sticks to. In Changes and Import, ""
	// means the key was deleted.
	Server string
	// Expires is when the entry lapses, in nanoseconds since the Unix epoch.
	Expires int64
}

// Table is a bounded map of request keys to server names with expiry. It is safe for
// concurrent use.
type Table struct {
	clock Clock

	// mu guards everything below.
	mu   sync.Mutex
	ttl  time.Duration
	size int
	// step is how far a hit must push an entry's expiry before it is refreshed, so that
	// a busy key is not a change on every request: ttl/64.
	step    int64
	entries map[string]*entry
	// exp is the sentinel of the ring of entries in order of expiry: exp.enext expires
	// first.
	exp entry
	// chg is the sentinel of the ring of entries changed on this node, in order of seq.
	chg entry
	// seq is the last change sequence number handed out.
	seq uint64
	// live counts the entries that are not tombstones.
	live int
	// evictions counts live entries removed by the size bound.
	evictions uint64
}

type entry struct {
	key     string
	server  string // "" for a tombstone
	expires int64  // UnixNano
	// seq is the entry's last local change; 0 when it is not on the change ring.
	seq          uint64
	eprev, enext *entry
	cprev, cnext *entry
}

// New returns an empty table whose entries live ttl after their last use, holding at
// most size entries, on clock c.
func New(c Clock, ttl time.Duration, size int) *Table {
	t := &Table{clock: c, entries: map[string]*entry{}}
	t.exp.enext, t.exp.eprev = &t.exp, &t.exp
	t.chg.cnext, t.chg.cprev = &t.chg, &t.chg
	t.SetLimits(ttl, size)
	return t
}

// SetLimits changes the ttl and the size bound; entries over the new size are evicted.
// Entries keep their expiry.
func (t *Table) SetLimits(ttl time.Duration, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ttl, t.size = ttl, max(size, 1)
	t.step = int64(ttl / 64)
	for len(t.entries) > t.size {
		t.evictLocked()
	}
}

func (t *Table) now() int64 { return t.clock.Now().UnixNano() }

// Lookup returns the server key sticks to, refreshing the entry's expiry.
func (t *Table) Lookup(key []byte) (server string, ok bool) {
	if len(key) > MaxKeyBytes {
		return "", false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[string(key)]
	if e == nil || e.server == "" {
		return "", false
	}
	if e.expires <= now {
		t.removeLocked(e)
		return "", false
	}
	if exp := now + int64(t.ttl); exp-e.expires >= t.step {
		e.expires = exp
		t.placeLocked(e)
		t.changedLocked(e)
	}
	return e.server, true
}

// Set makes key stick to server from now, for ttl. A key over MaxKeyBytes is not
// recorded.
func (t *Table) Set(key []byte, server string) {
	if len(key) > MaxKeyBytes {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[string(key)]
	if e == nil {
		e = t.addLocked(string(key), now)
	}
	if e.server == "" {
		t.live++
	}
	e.server = server
	e.expires = now + int64(t.ttl)
	t.placeLocked(e)
	t.changedLocked(e)
}

// addLocked makes room for and inserts a tombstone entry for key; the caller fills it in
// and places it.
func (t *Table) addLocked(key string, now int64) *entry {
	t.sweepLocked(now)
	for len(t.entries) >= t.size {
		t.evictLocked()
	}
	e := &entry{key: key}
	t.entries[key] = e
	return e
}

// placeLocked puts e, whose expiry is set, at its place on the expiry ring. Entries
// written here go to the end, or near it: the walk back is short.
func (t *Table) placeLocked(e *entry) {
	if e.enext != nil {
		e.eprev.enext, e.enext.eprev = e.enext, e.eprev
	}
	p := t.exp.eprev
	for p != &t.exp && p.expires > e.expires {
		p = p.eprev
	}
	e.eprev, e.enext = p, p.enext
	p.enext.eprev = e
	p.enext = e
}

// changedLocked gives e the next sequence number and moves it to the end of the change
// ring.
func (t *Table) changedLocked(e *entry) {
	if e.seq != 0 {
		e.cprev.cnext, e.cnext.cprev = e.cnext, e.cprev
	}
	t.seq++
	e.seq = t.seq
	e.cprev, e.cnext = t.chg.cprev, &t.chg
	t.chg.cprev.cnext = e
	t.chg.cprev = e
}

// unchangedLocked takes e off the change ring: what it holds now is not a local change.
func (t *Table) unchangedLocked(e *entry) {
	if e.seq != 0 {
		e.cprev.cnext, e.cnext.cprev = e.cnext, e.cprev
		e.cprev, e.cnext, e.seq = nil, nil, 0
	}
}

func (t *Table) removeLocked(e *entry) {
	e.eprev.enext, e.enext.eprev = e.enext, e.eprev
	e.eprev, e.enext = nil, nil
	t.unchangedLocked(e)
	delete(t.entries, e.key)
	if e.server != "" {
		t.live--
	}
}

// evictLocked removes the entry that would expire first.
func (t *Table) evictLocked() {
	e := t.exp.enext
	if e == &t.exp {
		return
	}
	if e.server != "" {
		t.evictions++
	}
	t.removeLocked(e)
}

// sweepLocked removes the entries expired at now.
func (t *Table) sweepLocked(now int64) {
	for e := t.exp.enext; e != &t.exp && e.expires <= now; e = t.exp.enext {
		t.removeLocked(e)
	}
}

// tombstoneLocked deletes e as a local change, which Changes ships.
func (t *Table) tombstoneLocked(e *entry, now int64) {
	if e.server == "" {
		return
	}
	e.server = ""
	t.live--
	e.expires = now + int64(t.ttl)
	t.placeLocked(e)
	t.changedLocked(e)
}

// Delete removes key. It reports whether the key had an entry.
func (t *Table) Delete(key string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	e := t.entries[key]
	if e == nil || e.server == "" {
		return false
	}
	t.tombstoneLocked(e, now)
	return true
}

// DeleteServer removes every key that sticks to server, and returns how many it removed.
func (t *Table) DeleteServer(server string) int {
	if server == "" {
		return 0
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	var victims []*entry
	for _, e := range t.entries {
		if e.server == server {
			victims = append(victims, e)
		}
	}
	for _, e := range victims {
		t.tombstoneLocked(e, now)
	}
	return len(victims)
}

// Entries returns the live entries, sorted by key.
func (t *Table) Entries() []Entry {
	now := t.now()
	t.mu.Lock()
	t.sweepLocked(now)
	out := make([]Entry, 0, t.live)
	for e := t.exp.enext; e != &t.exp; e = e.enext {
		if e.server != "" {
			out = append(out, Entry{Key: e.key, Server: e.server, Expires: e.expires})
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Len returns the number of live entries.
func (t *Table) Len() int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	return t.live
}

// Evictions returns how many live entries the size bound has removed since the table was
// created.
func (t *Table) Evictions() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evictions
}

// Seq returns the sequence number of the last local change; Changes(Seq(), n) returns
// nothing until the next one.
func (t *Table) Seq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Changes returns up to max entries created, refreshed or deleted on this node after the
// change numbered since, oldest change first, each in its current state (a deleted key
// has Server ""), and the mark to pass as since next time. An entry changed several
// times comes once; one that has expired or been evicted since does not come. Entries
// applied by Import are not changes. Sequence numbers start at 1 when the table is
// created; a since beyond the last one (a mark from before a restart) reads from the
// start. max <= 0 means no bound.
func (t *Table) Changes(since uint64, max int) (entries []Entry, next uint64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	if since > t.seq {
		since = 0
	}
	first := t.chg.cprev
	for first != &t.chg && first.seq > since {
		first = first.cprev
	}
	next = t.seq
	for e := first.cnext; e != &t.chg; e = e.cnext {
		if max > 0 && len(entries) == max {
			next = e.cprev.seq
			break
		}
		entries = append(entries, Entry{Key: e.key, Server: e.server, Expires: e.expires})
	}
	return entries, next
}

// Import applies entries from another node as they are: the key sticks to the server
// until Expires, or is deleted when Server is "". Imported entries are not local changes
// (Changes does not return them), and one already expired is skipped, as is one whose
// key is over MaxKeyBytes. An expiry beyond now + ttl is cut to it: a node cannot make
// an entry outlive this one's ttl. It returns how many entries it applied.
func (t *Table) Import(entries []Entry) int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	n := 0
	for _, in := range entries {
		if in.Key == "" || len(in.Key) > MaxKeyBytes || in.Expires <= now {
			continue
		}
		in.Expires = min(in.Expires, now+int64(t.ttl))
		e := t.entries[in.Key]
		if in.Server == "" {
			if e != nil {
				t.removeLocked(e)
				n++
			}
			continue
		}
		if e == nil {
			e = t.addLocked(in.Key, now)
		}
		if e.server == "" {
			t.live++
		}
		e.server, e.expires = in.Server, in.Expires
		t.placeLocked(e)
		t.unchangedLocked(e)
		n++
	}
	return n
}
