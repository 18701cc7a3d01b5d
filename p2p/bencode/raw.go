package bencode

import "errors"

// RawMessage is a bencoded value kept as its exact bytes. Decoding into a
// RawMessage copies the value's bytes as they appear in the input,
// unsorted dict keys included; encoding one writes them unchanged. It lets
// a caller hash a value as it was received, as the info hash of a torrent
// requires (BEP 3 §metainfo files), or decode a value later.
type RawMessage []byte

// MarshalBencode returns m. An empty RawMessage is not a bencoded value;
// leave it out of a struct with the omitempty option.
func (m RawMessage) MarshalBencode() ([]byte, error) {
	if len(m) == 0 {
		return nil, errors.New("bencode: RawMessage is empty")
	}
	return m, nil
}

// UnmarshalBencode sets *m to a copy of data.
func (m *RawMessage) UnmarshalBencode(data []byte) error {
	if m == nil {
		return errors.New("bencode: UnmarshalBencode on nil *RawMessage")
	}
	*m = append((*m)[:0], data...)
	return nil
}

var (
	_ Marshaler   = RawMessage(nil)
	_ Unmarshaler = (*RawMessage)(nil)
)
