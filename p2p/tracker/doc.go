// Package tracker is a BitTorrent tracker and a client for it: the HTTP
// tracker protocol of BEP 3 with compact peer lists (BEP 23, and BEP 7's
// peers6 for IPv6), the scrape convention of BEP 48, and the UDP tracker
// protocol of BEP 15.
//
// # Server
//
// A Server keeps one in-memory store of swarms (info hash -> peers) and
// serves it over HTTP (Serve, on a net.Listener: GET /announce and GET
// /scrape) and over UDP (ServeUDP, on a net.PacketConn), both at once if
// asked. A peer is known by its peer_id within a swarm; it is forgotten when
// it announces "stopped" or after PeerTTL without an announce (a ticker owned
// by the server runs Expire; Shutdown stops it). A Whitelist, when set,
// limits the swarms served.
//
// # Hostile peers
//
// The server faces the public Internet, where one host may announce
// thousands of fake peers, flood announces, or pose as another peer. A
// source is an IPv4 address or an IPv6 /64 (internal/connlimit).
//
//   - One source may hold MaxPeersPerAddr peers of a swarm (16): the next
//     is refused, so 20,000 fakes from one address take 16 places and
//     newcomers from elsewhere are still stored and handed out. The
//     address counted is the request's source, not an address the peer
//     asked for (below), which a loopback host may set to any loopback
//     address. A swarm full to
//     MaxPeers (20,000) still takes a newcomer in place of a peer of a
//     crowded source: of 8 peers drawn at random, one whose source has
//     the most peers, if that is at least two more than the newcomer's
//     source has, so that a few sources (an IPv6 /48 is 65,536 /64s) can
//     fill a swarm only until others come, and no source pushes out
//     smaller ones.
//   - One source may announce AnnounceBurst times at once (100) and
//     AnnounceRate times a second after that (10): a token bucket per
//     source, in a table of at most RateSources buckets (65,536) where the
//     least recently used goes first and an idle one (full again) at once.
//   - All swarms together cost at most MaxBytes (256 MiB), counted as
//     PeerBytes a peer and a few hundred bytes a swarm (estimates checked
//     against the Go heap by TestMemoryBound). A new peer beyond the bound
//     makes the store forget the least recently seen peers of any swarm:
//     every peer sits on one list in order of its last announce, so
//     eviction and expiry take the list's old end without a scan. MaxPeers
//     (20,000) and MaxTorrents (100,000) bound single swarms and their
//     number as before.
//   - The HTTP server holds at most MaxConns connections (2048),
//     MaxConnsPerAddr (32) from one source, and closes the others as they
//     come; a connection has ReadHeaderTimeout (5 s) to send a request's
//     headers, and an idle keep-alive connection is closed after 30 s.
//
// An announce over a limit is refused: over HTTP with a bencoded "failure
// reason", over UDP with an error action, never with silence.
//
// Every request gets an answer, never a crash: a malformed HTTP announce or
// scrape is answered with status 200 and a bencoded "failure reason" that
// names the parameter at fault ("info_hash: 19 bytes, want 20"), as clients
// expect; a malformed UDP request is answered with an error action when it
// carries a valid connection ID and a transaction ID, and dropped otherwise.
//
// Rules where the BEPs leave a choice:
//
//   - Required announce parameters are info_hash, peer_id, port and left;
//     uploaded and downloaded default to 0, numwant to DefaultNumwant
//     (50; a negative value also means the default) and is capped at
//     MaxNumwant. compact defaults to 1 (BEP 23), since every current client
//     asks for it; compact=0 gives the dictionary model, without
//     "peer id" keys (see below). The BEP 21 event "paused" is taken
//     as a regular announce.
//   - The peer's address is the request's source address. The ip parameter
//     (or the UDP IP field) is honoured only when it is the source address
//     itself or when both the source and the given address are loopback
//     addresses: that lets lab hosts on 127.0.0.x announce their own lab
//     address, and stops a remote client from pointing the swarm at a third
//     party. An ip that is not an IP address (BEP 3 allows DNS names) is
//     ignored.
//   - A peer never gets itself back. A seeder (left=0) gets only leechers,
//     unless the swarm has no leecher besides it, in which case it gets
//     seeders. Peers are chosen at random.
//   - A peer is its peer_id within a swarm, held by its key (BEP 7's key
//     parameter, BEP 15's key field; 0 means none): a peer that announced
//     with a key is moved (address, port) or stopped only by an announce
//     with the same key, from any address, so a client that moves keeps
//     its place; without the key, an announce from its very source,
//     address and port only refreshes it (counts, a completed event), as
//     aria2 draws a new key for every UDP announce (its stop is then
//     refused, and the peer expires after PeerTTL). A peer that announced
//     without a key is held by the source IP address of its announces, as
//     opentracker and its kind tell peers apart by address: an announce or
//     a stop for its peer_id from another source is refused, with or
//     without a key; from its own source it may change port, and its
//     first key taken from there holds it from then on. The HTTP key is
//     any string of up to 64 bytes; 1 to 8 hex digits are read as the UDP
//     key's number, so one client's two transports agree.
//   - Peer IDs are not given out: a dictionary-model answer (compact=0)
//     has "ip" and "port" only, as if every peer asked no_peer_id=1
//     (BEP 23). A peer_id names a client and its version, and knowing one
//     is the first step to posing as its peer; clients have taken peers
//     without "peer id" since BEP 23. ShowPeerIDs gives them, except to a
//     peer that asks no_peer_id=1.
//   - A swarm that is full (MaxPeers), and has no crowded source to make
//     room (above), still answers a new peer with peers but does not store
//     it; a new swarm beyond MaxTorrents is refused.
//   - HTTP scrape requires at least one info_hash (no full scrape) and takes
//     at most MaxScrape of them.
//   - UDP connection IDs are not stored: a connection ID is the first 8
//     bytes of an HMAC-SHA256 of the client's IP address and the current
//     minute under a secret key, and is accepted in its minute and the next
//     one, so it lives between one and two minutes and cannot be forged
//     without the key.
//
// # Client
//
// Client.Announce and Client.Scrape speak to http://, https:// and udp://
// trackers; AnnounceHTTP and AnnounceUDP do the same with a default Client.
// A tracker's "failure reason" (HTTP) or error action (UDP) is a
// *FailureError. Every announce carries a key (Client.Key, or a random one
// drawn once per Client), so that trackers let only this client move or
// stop its peers. Over UDP the client retransmits after 15·2^n seconds
// (BEP 15), with the 15 s base configurable. Tiers tries the trackers of a
// BEP 12 announce-list in order and backs off after a pass where every
// tracker failed, remembering the last error for a status line.
package tracker
