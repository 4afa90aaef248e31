package balance

// sourceHash sends each client address to one server, by weighted rendezvous hashing of
// Pick.ClientIP over the eligible servers (see hrw): the mapping is the same on every
// node and after a restart, and a server going away or coming back moves only the
// clients that belong on it. Pick.Key is ignored.
type sourceHash[S Server] struct {
	hrw[S]
}

func newSource[S Server](servers []S) Balancer[S] {
	return &sourceHash[S]{hrw: newHRW(servers)}
}

func (s *sourceHash[S]) Pick(p *Pick[S]) S {
	return s.pick(p, addrHash(p), &loadBound[S]{})
}
