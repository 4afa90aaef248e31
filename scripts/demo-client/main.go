// Command demo-client measures what a client sees while a VIP moves: it sends one
// HTTP request every -interval on a new connection, for -duration or until SIGINT or
// SIGTERM, and prints a summary. Used by `make demo` and the VRRP end-to-end tests.
//
// Output, one line each (with -v also one line per request, in the order answered):
//
//	ok <sent unix ms> <body> <X-Via>          (-v)
//	fail <sent unix ms> <error>               (-v)
//	summary sent=N ok=N failed=N outage_ms=N outage_from=MS outage_to=MS tail_failed=N
//	backends b1=N b2=N ...
//	via 198.18.0.1=N 198.18.0.2=N
//
// outage_ms is the longest gap between the send times of two successive successful
// requests, less one interval (0 when every request succeeded): the time the service
// was unreachable, to the resolution of -interval. tail_failed counts the failures sent
// after the last success (not 0: the service had not come back when the client stopped).
// Requests time out after -timeout,
// which is kept below TCP's first SYN retransmission (1 s) so that a request sent into
// the outage fails instead of succeeding late.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type result struct {
	sent time.Time
	ok   bool
	body string
	via  string
	err  string
}

func main() {
	url := flag.String("url", "http://198.18.0.100/", "the URL to request")
	interval := flag.Duration("interval", 10*time.Millisecond, "time between requests")
	duration := flag.Duration("duration", time.Minute, "stop after this long")
	count := flag.Int("count", 0, "stop after this many requests (0: no limit)")
	timeout := flag.Duration("timeout", 900*time.Millisecond, "per-request timeout")
	verbose := flag.Bool("v", false, "print one line per request")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			DisableKeepAlives: true, // a new connection per request, as a browser after failover
			DialContext:       (&net.Dialer{Timeout: *timeout}).DialContext,
		},
	}
	var (
		mu      sync.Mutex // guards results and serializes the -v lines
		results []result
		wg      sync.WaitGroup
	)
	do := func(sent time.Time) {
		defer wg.Done()
		r := result{sent: sent}
		resp, err := client.Get(*url)
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("status %d", resp.StatusCode)
			default:
				r.ok, r.body, r.via = true, strings.TrimSpace(string(b)), resp.Header.Get("X-Via")
			}
		}
		if err != nil {
			r.err = strings.ReplaceAll(err.Error(), "\n", " ")
		}
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		if *verbose {
			if r.ok {
				fmt.Printf("ok %d %s %s\n", sent.UnixMilli(), r.body, r.via)
			} else {
				fmt.Printf("fail %d %s\n", sent.UnixMilli(), r.err)
			}
		}
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	n := 0
loop:
	for *count == 0 || n < *count {
		n++
		wg.Add(1)
		go do(time.Now())
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
	}
	wg.Wait()
	summarize(results, *interval)
}

func summarize(results []result, interval time.Duration) {
	sort.Slice(results, func(i, j int) bool { return results[i].sent.Before(results[j].sent) })
	var ok, failed, tail int
	backends, via := map[string]int{}, map[string]int{}
	var last, from, to time.Time
	var gap time.Duration
	for _, r := range results {
		if !r.ok {
			failed++
			tail++
			continue
		}
		ok, tail = ok+1, 0
		backends[r.body]++
		via[r.via]++
		if !last.IsZero() {
			if d := r.sent.Sub(last) - interval; d > gap {
				gap, from, to = d, last, r.sent
			}
		}
		last = r.sent
	}
	if ok == 0 {
		gap = 0
	}
	fmt.Printf("summary sent=%d ok=%d failed=%d outage_ms=%d outage_from=%d outage_to=%d tail_failed=%d\n",
		len(results), ok, failed, gap.Milliseconds(), unixMilli(from), unixMilli(to), tail)
	fmt.Printf("backends %s\n", counts(backends))
	fmt.Printf("via %s\n", counts(via))
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
