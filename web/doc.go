// Package web is the course's Web: an HTTP/1.1 origin server (web/origin),
// a caching proxy (web/proxy), a CDN's edges and DNS request routing
// (web/cdn), and a page fetcher that shows the response-time difference
// between non-persistent, persistent and pipelined HTTP (web/client).
//
// The protocol is HTTP/1.1 (RFC 9110 semantics, RFC 9112 message syntax),
// served by the standard library's net/http; caching (RFC 9111), Basic
// authorization (RFC 7617), cookies (RFC 6265) and CDN routing with EDNS
// Client Subnet (RFC 7871) are this module's own code.
package web
