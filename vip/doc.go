// Package vip decides which node owns each virtual IP address (VIP) and puts the
// address there: the part of lbd that replaces keepalived's VRRP.
//
// Each VRRP instance elects a master by VRRP advertisements on the wire: version 3
// (RFC 5798) over IPv4 or IPv6, or version 2 (RFC 3768, IPv4) for peers that run
// keepalived with vrrp_version 2. Ownership is decided there, not by the cluster's
// raft, so a pair that loses a node still moves its VIPs in well under a second.
//
// The parts, one concept per file:
//
//   - packet.go: the advertisement codec (Packet, Marshal, Parse, with both checksum
//     variants of version 3 over IPv4) and the receive checks (Expect.Check), which
//     name a DropReason for every packet they drop (the unicast source check among
//     them: keepalived's check_unicast_src).
//   - auth.go: lbd's authenticated VRRP (Instance.AuthKey): an HMAC and a sequence
//     number in a trailer after each advertisement, checked by the instance before
//     Expect.Check.
//   - fsm.go: the state machine of RFC 5798 section 6 as a pure step function driven
//     by an injected clock.
//   - config.go: the instances, sync groups, tracking and notify settings, with
//     defaults and validation that names each field.
//   - manager.go and instance.go: the Manager runs one goroutine per instance that
//     drives the state machine from received adverts, its timers, tracking and operator
//     commands (Move), and carries out its actions: advertisements, addresses,
//     announcement bursts, notify scripts (notify.go). track.go turns tracked
//     interfaces, scripts and checks reported by the node into priority changes.
//     An instance follows its interface's index (Manager.SetLinkIndex, from
//     WatchLinks): in FAULT while the interface is absent, it reopens its transport
//     when the interface comes back under a new index.
//   - script.go: who runs track and notify scripts (script_user) and which scripts
//     may run (script_security); ExecRunner (notify.go) runs each in a process group
//     of its own, killed whole at its timeout.
//   - kernel.go: the small interfaces to the kernel (Transport, Addresses, Announcer),
//     implemented for Linux in the *_linux.go files (raw IP sockets for protocol 112,
//     netlink addresses, gratuitous ARP and unsolicited neighbour advertisements) and
//     faked in tests.
//
// Every timer (the VRRP timers, announcement bursts, track script intervals, notify
// timeouts, link polling) runs on Deps.Clock, an lbd/internal/clock.Clock: the system
// clock in lbd, a clock.Fake in the tests, which step it instead of sleeping.
//
// Package vip imports neither lbd/dataplane nor lbd/cluster: lbd/node connects them,
// for instance by turning the dataplane's health into priority adjustments.
package vip
