package dataplane

// sourceHash sends each client address to one server, by weighted rendezvous hashing of
// Pick.ClientIP over the eligible servers (see hrw): the mapping is the same on every
// node and after a restart, and a server going away or coming back moves only the
// clients that belong on it. Pick.Key is ignored.
type sourceHash struct {
	hrw
}

func newSource(servers []*Server) Balancer {
	return &sourceHash{hrw: newHRW(servers)}
}

func (s *sourceHash) Pick(p *Pick) *Server {
	return s.pick(p, addrHash(p), &loadBound{})
}
