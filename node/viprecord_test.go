//go:build linux

package node

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/vip"
)

// TestVIPRecord: the addresses a node adds are recorded in its state directory as they
// are added and removed; a crashed node's record is enough for release, with no config;
// a restart removes what a previous run left recorded.
func TestVIPRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := Parse("lbd.yaml", []byte(strings.ReplaceAll(vrrpYAML, "interface: eth0", "interface: lo")))
		if err != nil {
			t.Fatal(err)
		}
		n, addrs := vrrpTestNode(t, cfg)
		path := filepath.Join(cfg.Node.StateDir, VIPRecordFile)
		ctx := context.Background()
		if err := n.applyVRRP(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // both instances become master
		synctest.Wait()
		want := []recordedVIP{
			{Interface: "lo", Prefix: netip.MustParsePrefix("198.18.0.100/24")},
			{Interface: "lo", Prefix: netip.MustParsePrefix("198.18.0.101/24")},
		}
		got, err := readVIPRecord(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Fatalf("record while master (-want +got):\n%s\n(addresses: %s)", diff, addrs)
		}

		// A crash (the node is not stopped): release from the record alone, no config.
		crashed := &fakeAddrs{}
		var out bytes.Buffer
		if _, err := releaseVIPs(&out, vip.Config{}, cfg.Node.StateDir, crashed); err != nil {
			t.Fatalf("release from the record: %v\n%s", err, out.String())
		}
		slices.Sort(crashed.removed)
		if diff := cmp.Diff([]string{"lo 198.18.0.100/24", "lo 198.18.0.101/24"}, crashed.removed); diff != "" {
			t.Errorf("released from the record (-want +got):\n%s", diff)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the record is still there after release: %v", err)
		}

		// A link down releases the addresses: they leave the record.
		writeVIPRecord(path, want)
		n.manager().SetLink("lo", false)
		synctest.Wait()
		if got, _ := readVIPRecord(path); len(got) != 0 {
			t.Errorf("record after the addresses were removed: %v", got)
		}
		n.manager().SetLink("lo", true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := n.stopVRRP(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the record is still there after a graceful stop: %v", err)
		}
		n.dp.Close(ctx)

		// A new run removes what the previous one left recorded.
		left := recordedVIP{Interface: "lo", Prefix: netip.MustParsePrefix("198.18.0.200/24")}
		writeVIPRecord(path, []recordedVIP{left})
		n2, addrs2 := vrrpTestNode(t, cfg)
		cfg.Node.StateDir = filepath.Dir(path)
		addrs2.Add("lo", left.Prefix, "")
		addrs2.take()
		if err := n2.applyVRRP(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if got := addrs2.take(); !slices.Contains(got, "-lo 198.18.0.200/24") {
			t.Errorf("a new run did not remove the address left recorded: %v", got)
		}
		n2.stopVRRP(ctx)
		n2.dp.Close(ctx)
	})
}
