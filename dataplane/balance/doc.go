// Package balance chooses a server for each new request or connection: the balancing
// algorithms of a backend, over a small view of its servers that the package declares
// (Server) and the dataplane's servers implement.
//
// A backend builds one Balancer with New from its algorithm's name, its servers and
// Options, and calls Pick for every new request or connection. The server list never
// changes after New; what may change (availability, weight, load, response time) is read
// from each Server at pick time, so a balancer needs no updates when a server goes down,
// drains, ramps up or fills. Pick is safe for concurrent use and allocates nothing.
//
// The balancers are generic over the server type, so a Pick hands back the caller's own
// server (a *dataplane.Server) without boxing it in an interface.
//
//	file           what it holds
//	balance.go     Server, Balancer, Pick, Options, New, and the algorithms' names
//	roundrobin.go  roundrobin, and the smooth weighted round robin (wrr) the others break ties with
//	leastconn.go   leastconn, and the least-load-per-weight pick that least_time shares
//	leasttime.go   least_time
//	random.go      random: the power of two choices
//	source.go      source: rendezvous hashing of the client address
//	consistent.go  consistent: rendezvous or maglev hashing of a key, with a bounded load
//
// Arrows point down only: this package imports nothing of lbd.
package balance
