package dataplane

// The client connection of the event-loop http path as a steppable state machine
// (docs/design-http-loop.md, "A request on the loop"): stepClient is pure, with no I/O
// and no clock; the loop performs the action it returns and feeds back what happened
// as the next event. Every transition to closed carries a named reason, so each rule is
// one row of a table test. Nothing drives it yet.

// clientState is where a client connection is between two events.
type clientState uint8

const (
	csIdle       clientState = iota // keep-alive, no byte of a next request (client_idle)
	csHead                          // reading a request head (client_header)
	csPicking                       // head accepted: rate limit, routing, balancing
	csConnecting                    // waiting for a server connection (connect)
	csSending                       // sending the request, and its body as it arrives
	csAwaiting                      // request sent, no response byte yet (response)
	csResponding                    // an answer is going to the client, the server's or lbd's
	csHandedOver                    // given to the fasthttp path: the loop is done with it
	csClosed
	numClientStates
)

var clientStateNames = [numClientStates]string{
	"idle", "head", "picking", "connecting", "sending", "awaiting", "responding", "handed-over", "closed",
}

func (s clientState) String() string {
	if s < numClientStates {
		return clientStateNames[s]
	}
	return "invalid"
}

// clientEvent is what happened to a client connection.
type clientEvent uint8

const (
	evBytes       clientEvent = iota // request bytes arrived
	evHead                           // a complete head the loop serves
	evHandOver                       // a complete head the loop does not serve, or a reason found while picking
	evBadHead                        // a malformed or too large head: answered (400, 431), then closed
	evAnswer                         // lbd answers itself: rate limited (429), no server (503)
	evPicked                         // a server was picked and a connection to it is being made or taken
	evConnected                      // the server connection is ready to take the request
	evSent                           // the request is sent whole
	evRespHead                       // the server's final response head arrived
	evRespDone                       // the answer is written whole to the client
	evServerFail                     // the attempt failed: connect, reset, empty, timeout, invalid
	evClientEOF                      // the client closed its side
	evClientError                    // reading or writing the client failed
	evTimeout                        // the timer of the current state fired
	evDrain                          // the frontend is shutting down or its settings changed
	numClientEvents
)

var clientEventNames = [numClientEvents]string{
	"bytes", "head", "hand-over", "bad-head", "answer", "picked", "connected", "sent",
	"response-head", "response-done", "server-fail", "client-eof", "client-error", "timeout", "drain",
}

func (e clientEvent) String() string {
	if e < numClientEvents {
		return clientEventNames[e]
	}
	return "invalid"
}

// clientAction is what the loop does after a step.
type clientAction uint8

const (
	actNone        clientAction = iota
	actPick                     // rate limit, route, balance: yields evAnswer, evPicked or evHandOver
	actConnect                  // take a pooled server connection or connect (yields evConnected)
	actSend                     // write the rewritten request, then forward the body
	actForward                  // rewrite the response head, forward head and body to the client
	actRetry                    // release the server, count the retry, exclude it: then actPick
	actAnswer                   // write lbd's own answer (status) to the client
	actAnswerClose              // write lbd's own answer, then close
	actNextHead                 // scan the client's buffered bytes for the next head
	actHandOver                 // give the connection to the fasthttp path with the bytes read
	actClose                    // close the client (and the server connection if it is not reusable)
)

// clientFacts are what the loop knows when an event happens that a rule depends on.
type clientFacts struct {
	// retry: after evServerFail, another server may be tried (classify's failure.retry,
	// and attempts left).
	retry bool
	// status of lbd's answer after evAnswer, evBadHead, or an evServerFail with no retry.
	status int
	// started: after evServerFail or evTimeout, bytes of the answer went to the client.
	started bool
	// keepAlive: after evRespDone, both the request and the answer allow another request.
	keepAlive bool
	// buffered: the client has sent bytes beyond the request just answered.
	buffered bool
	// draining: the frontend is shutting down (evDrain was seen).
	draining bool
}

// clientStep is the outcome of one step.
type clientStep struct {
	next   clientState
	act    clientAction
	status int    // for actAnswer and actAnswerClose
	reason string // why the connection closed, for the debug log; "" when it ended cleanly
}

// stepClient returns what follows event ev in state s.
func stepClient(s clientState, ev clientEvent, f clientFacts) clientStep {
	// Events that mean the same in every live state.
	switch ev {
	case evClientError:
		return clientStep{next: csClosed, act: actClose, reason: "client connection failed"}
	case evClientEOF:
		if s == csIdle {
			return clientStep{next: csClosed, act: actClose}
		}
		if s == csResponding {
			return clientStep{next: csClosed, act: actClose, reason: "client closed during the answer"}
		}
		return clientStep{next: csClosed, act: actClose, reason: "client closed before its answer"}
	}
	switch s {
	case csIdle:
		switch ev {
		case evBytes:
			return clientStep{next: csHead, act: actNextHead}
		case evTimeout:
			return clientStep{next: csClosed, act: actClose}
		case evDrain:
			return clientStep{next: csClosed, act: actClose}
		}
	case csHead:
		switch ev {
		case evBytes:
			return clientStep{next: csHead, act: actNextHead}
		case evHead:
			return clientStep{next: csPicking, act: actPick}
		case evHandOver:
			return clientStep{next: csHandedOver, act: actHandOver}
		case evBadHead:
			return clientStep{next: csClosed, act: actAnswerClose, status: orStatus(f.status, 400), reason: "bad request head"}
		case evTimeout:
			return clientStep{next: csClosed, act: actAnswerClose, status: 408, reason: "request head not received in time"}
		case evDrain:
			return clientStep{next: csHead}
		}
	case csPicking:
		switch ev {
		case evAnswer:
			return clientStep{next: csResponding, act: actAnswer, status: orStatus(f.status, 503)}
		case evPicked:
			return clientStep{next: csConnecting, act: actConnect}
		case evHandOver:
			return clientStep{next: csHandedOver, act: actHandOver}
		case evDrain:
			return clientStep{next: csPicking}
		}
	case csConnecting, csSending, csAwaiting:
		switch {
		case ev == evConnected && s == csConnecting:
			return clientStep{next: csSending, act: actSend}
		case ev == evSent && s == csSending:
			return clientStep{next: csAwaiting}
		case ev == evRespHead && s != csConnecting:
			// A server may answer before it has the whole body (a 413, a redirect).
			return clientStep{next: csResponding, act: actForward}
		case ev == evServerFail, ev == evTimeout:
			if f.retry {
				return clientStep{next: csPicking, act: actRetry}
			}
			return clientStep{next: csResponding, act: actAnswer, status: failStatus(s, ev, f)}
		case ev == evDrain:
			return clientStep{next: s}
		}
	case csResponding:
		switch ev {
		case evRespDone:
			switch {
			case !f.keepAlive || f.draining:
				return clientStep{next: csClosed, act: actClose}
			case f.buffered:
				return clientStep{next: csHead, act: actNextHead}
			}
			return clientStep{next: csIdle}
		case evServerFail, evTimeout:
			if f.started {
				return clientStep{next: csClosed, act: actClose, reason: "answer cut after it started"}
			}
			return clientStep{next: csResponding, act: actAnswer, status: failStatus(s, ev, f)}
		case evDrain:
			return clientStep{next: csResponding}
		}
	case csHandedOver, csClosed:
		return clientStep{next: s, reason: "event after the loop let go of the connection"}
	}
	return clientStep{next: csClosed, act: actClose, reason: "event " + ev.String() + " unexpected in state " + s.String()}
}

// orStatus is status, or def when the loop did not say.
func orStatus(status, def int) int {
	if status != 0 {
		return status
	}
	return def
}

// failStatus is the status of lbd's answer to a failed last attempt, when the loop did
// not say: as classify would, 504 for a response timeout, else 502.
func failStatus(s clientState, ev clientEvent, f clientFacts) int {
	if ev == evTimeout && s != csConnecting {
		return orStatus(f.status, 504)
	}
	return orStatus(f.status, 502)
}
