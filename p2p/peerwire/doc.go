// Package peerwire encodes and decodes the BitTorrent peer wire protocol:
// the handshake and the messages of BEP 3 §peer protocol (keep-alive,
// choke, unchoke, interested, not interested, have, bitfield, request,
// piece, cancel), the port message of BEP 5, the Fast extension of BEP 6
// (suggest, have all, have none, reject, allowed fast), and the extended
// message of BEP 10, whose payload it carries opaquely.
//
// ReadHandshake and WriteHandshake exchange handshakes; Reserved has
// helpers for the extension bits. A Message holds any message, with the
// fields of its type set. A Reader reads one message at a time and checks
// its length against its type before reading the payload: a have that is
// not exactly 5 bytes, a request or cancel that is not 13, a piece whose
// block exceeds MaxBlockSize, a bitfield of the wrong size for the
// torrent, or any message beyond MaxMessageLength is a *ProtocolError,
// after which the caller closes that one connection. Messages of unknown
// type are not errors: they come back with their raw payload, to be
// ignored. The Reader reuses one buffer and can read a piece's block
// straight into memory the caller supplies, so reading allocates nothing
// in the steady state.
//
// Message.AppendBinary encodes any message; AppendPieceHeader and
// Writer.WritePiece send a block without copying it. Message.String and
// Handshake.String give one-line summaries for protocol traces, such as
// "request piece 17 offset 32768 length 16384". Bitfield is the set of
// pieces a peer has.
//
// The package does no I/O of its own beyond the io.Reader and io.Writer it
// is given.
package peerwire
