package node

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/cluster"
)

// defaultClusterNode is node.cluster with every default.
func defaultClusterNode() ClusterNode {
	d := cluster.DefaultConfig()
	return ClusterNode{Role: d.Role, GossipBind: "0.0.0.0:7946", RaftBind: "0.0.0.0:7947", Timing: d.Timing}
}

func TestParseCluster(t *testing.T) {
	fakeHostname(t)
	c, err := Parse("lbd.yaml", []byte(file(
		"node:",
		"  name: lb-a",
		"  state_dir: /srv/lbd",
		"  cluster:",
		"    role: witness",
		"    gossip_bind: 198.18.0.1:7000",
		"    raft_advertise: 198.18.0.1:7001",
		"    seeds: [198.18.0.2:7946]",
		"    timing:",
		"      probe_interval: 2s",
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := defaultClusterNode()
	want.Role = cluster.RoleWitness
	want.GossipBind = "198.18.0.1:7000"
	want.RaftAdvertise = "198.18.0.1:7001"
	want.Seeds = []string{"198.18.0.2:7946"}
	want.Timing.ProbeInterval = 2 * time.Second
	if diff := cmp.Diff(want, c.Node.Cluster); diff != "" {
		t.Errorf("node.cluster (-want +got):\n%s", diff)
	}
	cc := c.ClusterConfig("a2V5")
	if cc.Name != "lb-a" || cc.StateDir != "/srv/lbd" || cc.GossipKey != "a2V5" || cc.Role != cluster.RoleWitness {
		t.Errorf("ClusterConfig = %+v, want the node's name, state_dir, the key and the role", cc)
	}
	// node.cluster is the node's own: it does not change the document's version.
	plain, err := Parse("lbd.yaml", []byte("node:\n  name: lb-a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash() != plain.Hash() {
		t.Errorf("Hash changed with node.cluster: %s vs %s", c.Hash(), plain.Hash())
	}
}

func TestParseClusterErrors(t *testing.T) {
	fakeHostname(t)
	tests := []struct{ name, in, want string }{
		{
			name: "unknown key",
			in:   file("node:", "  cluster:", "    seed: [a:1]"),
			want: `lbd.yaml:3: node.cluster.seed: unknown field "seed" (did you mean "seeds"?)`,
		},
		{
			name: "gossip key is not in the file",
			in:   file("node:", "  cluster:", "    gossip_key: abc"),
			want: `lbd.yaml:3: node.cluster.gossip_key: unknown field "gossip_key"`,
		},
		{
			name: "role",
			in:   file("node:", "  cluster:", "    role: boss"),
			want: `lbd.yaml:3: node.cluster.role: ("boss") must be voter or witness`,
		},
		{
			name: "bind",
			in:   file("node:", "  cluster:", "    raft_bind: nowhere"),
			want: `lbd.yaml:3: node.cluster.raft_bind: ("nowhere") must be IP:port`,
		},
		{
			name: "seed",
			in:   file("node:", "  cluster:", "    seeds:", "      - 198.18.0.2"),
			want: `lbd.yaml:4: node.cluster.seeds[0]: ("198.18.0.2") must be host:port`,
		},
		{
			name: "timing",
			in:   file("node:", "  cluster:", "    timing:", "      probe_timeout: 5s"),
			want: `lbd.yaml:4: node.cluster.timing.probe_timeout: (5s) must be shorter than probe_interval (1s)`,
		},
		{
			name: "timing type",
			in:   file("node:", "  cluster:", "    timing:", "      probe_interval: 5"),
			want: `lbd.yaml:4: node.cluster.timing.probe_interval: cannot use "5" as a duration: it needs a unit, such as "5s"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("lbd.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			if got := err.Error(); got != strings.TrimSpace(tt.want) {
				t.Errorf("Parse error:\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}
