// Package api is the admin API of an lbd node as it travels on the wire: the JSON
// bodies of the /v1/ endpoints, the constants a client may check before it asks, and
// the Client that lbctl (and lbd reload) use. It imports the standard library only, so
// a client links none of the node: changing a dataplane struct cannot change the API;
// package node converts its parts' structs into these types where it answers.
//
// The endpoints, on the unix socket (everything) and the optional TCP listener (reads
// only; a change there is refused with 403; on loopback only; the sticky tables only,
// and with node.admin.token_file every request, with "Authorization: Bearer TOKEN",
// else 401; Client.WithToken sends it):
//
//	GET    /v1/status                                  StatusResponse
//	POST   /v1/reload                                  [ReloadRequest] → ReloadResponse (422 with its Errors)
//	PUT    /v1/backends/{backend}/servers/{server}     ServerChange → ServerStatus
//	GET    /v1/node/drain                              DrainStatus
//	POST   /v1/node/drain                              DrainRequest → DrainStatus
//	POST   /v1/node/undrain                            DrainStatus
//	GET    /v1/sticky/{backend}[?server=S]             StickyListResponse
//	DELETE /v1/sticky/{backend}?key=K | ?server=S      StickyDeleteResponse
//	GET    /v1/sticky/{backend}/export?since=N&max=M   StickyExport
//	POST   /v1/sticky/{backend}/import                 StickyImport → StickyImportResponse
//	GET    /v1/vips                                    []VIPStatus
//	POST   /v1/vips/{name}/move                        VIPStatus
//	GET    /healthz                                    "ok" (200) or "draining" (503), text
//	GET    /metrics                                    Prometheus text
//
// A refusal answers a 4xx or 5xx status with an ErrorResponse; the Client returns it as
// an *Error whose text is the API's message.
//
// Files:
//
//	status.go   StatusResponse and what it holds (frontends, backends, servers), ReloadResponse
//	control.go  server state and weight, node drain, ErrorResponse, their limits
//	sticky.go   sticky-table listing, deletion, export and import
//	vip.go      VIPStatus
//	client.go   Client, Error, UnreachableError
package api
