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
// by the server runs Expire; Shutdown stops it). Memory is bounded by
// MaxTorrents and MaxPeers; a Whitelist, when set, limits the swarms served.
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
//     asks for it; compact=0 gives the dictionary model, without the
//     "peer id" keys when no_peer_id=1. The BEP 21 event "paused" is taken
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
//   - A key, once given, protects a peer_id: an announce for that peer_id
//     from another address with a different key is refused.
//   - A swarm that is full (MaxPeers) still answers a new peer with peers but
//     does not store it; a new swarm beyond MaxTorrents is refused.
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
// *FailureError. Over UDP the client retransmits after 15·2^n seconds
// (BEP 15), with the 15 s base configurable. Tiers tries the trackers of a
// BEP 12 announce-list in order and backs off after a pass where every
// tracker failed, remembering the last error for a status line.
package tracker
