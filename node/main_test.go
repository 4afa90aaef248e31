package node

import (
	"os"
	"testing"

	"lbd/internal/testutil"
)

// bins builds the commands that tests run (lbd, for TestVRRPNamespace), each once, into
// a directory that TestMain removes.
var bins testutil.Bins

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}
