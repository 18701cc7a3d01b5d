// Package chord is the Chord distributed hash table of Stoica, Morris,
// Karger, Kaashoek and Balakrishnan, "Chord: A Scalable Peer-to-peer
// Lookup Service for Internet Applications", SIGCOMM 2001.
//
// Identifiers live on a circle of 2^m points (Space; m = 160 with SHA-1 by
// default, small m for teaching). A node's ID is SHA-1("IP:port") mod 2^m
// (NodeIDFor), which other nodes check, unless Config.TrustIDs lets
// teaching rings place nodes at the course's IDs; a key belongs to its
// successor. A Node keeps a predecessor, a successor list of r entries,
// a predecessor list (for replica ranges) and m fingers, finger[i] =
// successor(n + 2^(i-1)), and runs stabilize/notify, fix_fingers (one
// finger per call), check_predecessor and replication periodically.
// Lookups are iterative (find_next) or recursive (find_successor) and
// record their path. Values are stored directly or as indirect
// references, may expire, are signed by their writers (Ed25519; Sign,
// Verify) and are replicated on the owner's successors.
//
// A node believes only what a peer proves (see ARCHITECTURE.md for what
// this stops and what it does not): notify and leave are called back at
// the claimed address, which must be the request's source IP; successor
// lists come only from the verified successor; store is accepted only
// from verified neighbours for keys in range; a key written by a
// replacing put is its writer's alone, a shared key (announces) holds each
// writer's values apart; stores are bounded in bytes per node and per
// writer; the Server caps connections per source address and cuts slow
// frames in seconds.
//
// The node is written against Transport and Clock, so the same code runs
// over TCP (Peer, TCPTransport, Server) and in appnet/p2p/chord/sim on a
// virtual clock.
//
// # Wire format
//
// Over TCP, each request and each reply is one frame: a 4-byte big-endian
// length, then a bencoded dict (BEP 3 bencoding) of at most
// DefaultMaxMessage bytes. Several requests may follow one another on a
// connection, each answered before the next is read. Keys:
//
//	t        int     transaction number; the reply echoes it
//	op       string  request: ping find_successor find_next stabilize notify get put store leave info
//	re       string  reply: the op answered
//	m        int     bits of the sender's ring; a node answers another m with an error (code 3)
//	from     node    the sending node
//	key      20 bytes the target identifier (big-endian, < 2^m)
//	name     string  the key's name, when it has one
//	ttl      int     hops left (find_successor)
//	budget   int     ms the sender waits (find_successor)
//	exclude  [node]  nodes found dead, to route around
//	node     node    reply: successor, next hop, or the answering node (ping, stabilize, info)
//	done     0/1     find_next: node is the owner
//	pred     node    stabilize reply, leave
//	preds    [node]  notify: the sender's predecessor list
//	succs    [node]  successor list (stabilize, info, leave)
//	fingers  [node]  info
//	path     [node]  find_successor: nodes visited
//	values   [value] put, get reply;   value = {data: bytes, ref: 0/1, ttl: ms left,
//	                                            pk: 32 bytes, seq: int, sig: 64 bytes}
//	items    [item]  store;            item = {key, name, values, excl: 0/1}
//	leaving  0/1     ping reply: the node is leaving (confirms its leave)
//	add      0/1     put: add to the set instead of replacing
//	found    0/1     get reply
//	err,code         a failure reply (codes: 2 malformed, 3 wrong ring, 4 not responsible, 5 lookup failed,
//	                 6 full (node or writer bound), 7 forbidden (identity, range, writer), 8 stale (older seq))
//
// where node = {id: 20 bytes, addr: "IP:port"}. A frame over the limit, a
// list over MaxListLen, a value over MaxValueLen, an ID not below 2^m or
// any bencoding error is answered with a code-2 error and the connection
// closed; the node goes on.
package chord
