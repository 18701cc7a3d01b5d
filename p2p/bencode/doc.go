// Package bencode encodes and decodes bencoding, the serialization of
// BitTorrent metainfo files, tracker responses and extension messages
// (BEP 3 §bencoding).
//
// Bencoding has four kinds of values: integers ("i42e"), byte strings
// ("4:spam"), lists ("l4:spami42ee") and dicts ("d3:bar4:spam3:fooi42ee").
// The API follows encoding/json: Marshal and Unmarshal, an Encoder and a
// Decoder for streams, struct tags of the form `bencode:"name,omitempty"`,
// the Marshaler and Unmarshaler interfaces, and RawMessage for a value kept
// as its exact bytes.
//
// Marshal always writes the canonical form: dict keys sorted as raw byte
// strings, integers without leading zeros. The decoder is strict, since it
// reads data from the network: it rejects leading zeros, negative zero,
// string lengths that exceed the input, unsorted or duplicate dict keys,
// data after the top-level value, nesting deeper than DefaultMaxDepth, and
// integers that overflow their Go type. DecodeOptions relaxes the key order
// for real .torrent files that break it. Every error is typed: a
// *SyntaxError carries the offset of the bad byte, an *UnmarshalTypeError
// the path of the field ("info.files[2].length").
//
// A string's declared length is checked against the input before anything
// is allocated for it, so a forged length costs nothing; a Decoder grows its
// buffer only as data arrives.
package bencode
