package node

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"lbd/internal/testutil"
)

// bins builds the commands that tests run (lbd, for TestVRRPNamespace), each once, into
// a directory that TestMain removes.
var bins testutil.Bins

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	if code == 0 {
		// The node's goroutines (VRRP instances, the liveness server, health watchers,
		// the admin API) must all stop with the tests that started them.
		// fasthttp's worker pool cleaner (dataplane's HTTP servers) sleeps up to
		// MaxIdleWorkerDuration, 10s, between rounds and sees its server's Stop only
		// when it wakes: it ends on its own, after the tests.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
