// Command demo-backend is the backend server of `make demo` and of the VRRP end-to-end
// tests: an HTTP server that answers every request with its name, and says in the
// X-Via header which address the request came from (the lbd node that proxied it).
//
//	demo-backend -name b1 -listen 198.18.0.11:8080
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"
)

func main() {
	name := flag.String("name", "backend", "the name this server answers with")
	listen := flag.String("listen", ":8080", "the address to listen on")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.Header().Set("X-Via", host)
		fmt.Fprintln(w, *name)
	})
	s := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(s.ListenAndServe())
}
