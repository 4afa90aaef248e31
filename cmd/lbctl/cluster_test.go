package main

import (
	"testing"
	"time"

	"lbd/node/api"
)

var (
	memberA = api.ClusterMember{
		Name: "lb-a", State: "alive", Role: "voter", Voter: true, Leader: true,
		GossipAddr: "10.0.0.5:7946", RaftAddr: "10.0.0.5:7947", Version: "1.4.0", ConfigVersion: 7, DataplaneUp: true,
		VRRP:     []api.MemberVRRP{{Instance: "web", State: "MASTER"}},
		Backends: []api.MemberBackend{{Backend: "app", Healthy: 2, Total: 3}, {Backend: "api", Healthy: 1, Total: 1}},
	}
	memberB = api.ClusterMember{
		Name: "lb-b", State: "alive", Role: "voter", Voter: true,
		GossipAddr: "10.0.0.6:7946", RaftAddr: "10.0.0.6:7947", Version: "1.4.0", ConfigVersion: 6, DataplaneUp: true,
		VRRP:     []api.MemberVRRP{{Instance: "web", State: "BACKUP"}},
		Backends: []api.MemberBackend{{Backend: "app", Healthy: 3, Total: 3}},
	}
	witness = api.ClusterMember{
		Name: "wit", State: "dead", Role: "witness", Voter: true, GossipAddr: "10.0.0.7:7946",
		RaftAddr: "10.0.0.7:7947", VRRP: []api.MemberVRRP{}, Backends: []api.MemberBackend{},
	}
	clusterStatus = api.ClusterStatus{
		Node: "lb-b", Role: "voter", State: "follower", Leader: "lb-a", LeaderAddr: "10.0.0.5:7947", Term: 4, CommitIndex: 31,
		AppliedIndex: 31, ConfigVersion: 7, AppliedVersion: 6,
		ApplyError: "cluster config version 7:4: frontends[0].bind: listen tcp 10.0.0.9:80: cannot assign requested address",
		Members:    []api.ClusterMember{memberA, memberB, witness},
	}
	noQuorum = apiError(503, "no quorum: 1 of 2 voters reachable; add a witness or run lbctl cluster recover --force")
)

func TestClusterGolden(t *testing.T) {
	notInCluster := apiError(409, "this node is in no cluster: run lbctl cluster init, or lbctl cluster join")
	golden(t, "cluster", []invocation{
		{"cluster status", map[string]reply{"GET /v1/cluster/status": {200, clusterStatus}}},
		{"-o json cluster status", map[string]reply{"GET /v1/cluster/status": {200, clusterStatus}}},
		{"cluster status", map[string]reply{"GET /v1/cluster/status": notInCluster}},
		{"cluster members", map[string]reply{"GET /v1/cluster/members": {200, []api.ClusterMember{memberA, witness}}}},
		{"cluster init", map[string]reply{"POST /v1/cluster/init": {200, api.ClusterInitResponse{
			ConfigVersion: 1, GossipAddr: "10.0.0.5:7946", RaftAddr: "10.0.0.5:7947", Token: "lbd1.id.secret.ca",
			TokenExpires: now.Add(24 * time.Hour), JoinCommand: "lbctl cluster join 10.0.0.5:7947 --token lbd1.id.secret.ca"}}}},
		{"cluster join 10.0.0.5:7947 --token lbd1.id.secret.ca", map[string]reply{"POST /v1/cluster/join": {200, clusterStatus}}},
		{"cluster join 10.0.0.5:7947 --token lbd1.id.secret.ca --seed 10.0.0.5:7000", map[string]reply{"POST /v1/cluster/join": apiError(403, "joining 10.0.0.5:7947: join token expired")}},
		{"cluster join 10.0.0.5:7947", map[string]reply{}},
		{"cluster join", map[string]reply{}},
		{"cluster leave", map[string]reply{"POST /v1/cluster/leave": {200, struct{}{}}}},
		{"cluster remove lb-b", map[string]reply{"POST /v1/cluster/remove": apiError(421, "this node is not the raft leader; run this on the leader, lb-a (raft 10.0.0.5:7947)")}},
		{"cluster recover", map[string]reply{}},
		{"cluster recover --force", map[string]reply{"POST /v1/cluster/recover": {200, api.ClusterRecoverResponse{Survivors: []string{"lb-a"}}}}},
		{"cluster key rotate", map[string]reply{"POST /v1/cluster/key/rotate": {200, api.ClusterKeyRotateResponse{Fingerprint: "9f86d081884c7d65", Keys: []string{"9f86d081884c7d65"}}}}},
		{"cluster key rotate", map[string]reply{"POST /v1/cluster/key/rotate": noQuorum}},
		{"-o yaml cluster members", map[string]reply{}},
	})
}

func TestConfigGolden(t *testing.T) {
	const file = "testdata/cluster-doc.yaml"
	hist := []api.ConfigVersion{
		{Version: 1, Author: "lb-a", Time: now.Add(-48 * time.Hour), Comment: "seeded from lb-a's config file by lbctl cluster init"},
		{Version: 2, Author: "lb-a", Time: now.Add(-time.Hour), Comment: "add api"},
	}
	golden(t, "config", []invocation{
		{"config apply -f " + file + " -m add-api", map[string]reply{"POST /v1/config/apply": {200, api.ConfigApplyResponse{Version: 3}}}},
		{"config apply -f " + file, map[string]reply{"POST /v1/config/apply": noQuorum}},
		{"config apply -f " + file, map[string]reply{"POST /v1/config/apply": {422, api.ReloadResponse{Errors: []string{
			`document:4: frontends[0].backend: no backend named "nope"`}}}}},
		{"config apply", map[string]reply{}},
		{"config get", map[string]reply{"GET /v1/config": {200, api.ConfigVersion{Version: 2, Document: "backends: []\n", Time: now}}}},
		{"config get --version 1", map[string]reply{"GET /v1/config?version=1": {200, api.ConfigVersion{Version: 1, Document: "frontends: []\n", Time: now}}}},
		{"config diff", map[string]reply{"POST /v1/config/diff": {200, api.ConfigDiffResponse{Version: 2}}}},
		{"config diff -f " + file, map[string]reply{"POST /v1/config/diff": {200, api.ConfigDiffResponse{Version: 2,
			Diff: "--- committed (version 2)\n+++ document\n@@ -1,1 +1,1 @@\n-backends: []\n+backends: [app]\n"}}}},
		{"config history", map[string]reply{"GET /v1/config/history": {200, hist}}},
		{"--json config history", map[string]reply{"GET /v1/config/history": {200, hist}}},
		{"config rollback 1 -m broken", map[string]reply{"POST /v1/config/rollback": {200, api.ConfigApplyResponse{Version: 3}}}},
		{"config rollback one", map[string]reply{}},
	})
}
