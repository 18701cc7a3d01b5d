package bencode

import (
	"io"
	"reflect"
	"strconv"
)

// SyntaxError reports input that is not valid bencoding, or that is valid
// but not canonical where the decoder requires canonical input.
type SyntaxError struct {
	// Offset is the byte offset of the offending byte, counted from the
	// start of the data given to Unmarshal or read by the Decoder.
	Offset int64
	// Msg describes the problem.
	Msg string

	err error // wrapped cause, io.ErrUnexpectedEOF for truncated input
}

// Error returns the message with its offset.
func (e *SyntaxError) Error() string {
	return "bencode: syntax error at offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Msg
}

// Unwrap returns io.ErrUnexpectedEOF when the input ended inside a value,
// and nil otherwise.
func (e *SyntaxError) Unwrap() error { return e.err }

func errTruncated(off int64) *SyntaxError {
	return &SyntaxError{Offset: off, Msg: "unexpected end of input", err: io.ErrUnexpectedEOF}
}

// UnmarshalTypeError reports a bencoded value that cannot be stored in the
// Go value it was decoded into: a value of the wrong kind, an integer that
// overflows the target type, or a string of the wrong length for an array.
type UnmarshalTypeError struct {
	// Value describes the bencoded value: "integer", "integer 300",
	// "string", "string of length 3", "list" or "dict".
	Value string
	// Type is the Go type that could not hold it.
	Type reflect.Type
	// Offset is the byte offset at which the value starts.
	Offset int64
	// Field is the path from the top-level value to this value, written as
	// dict keys separated by dots and list indexes in brackets, such as
	// "info.files[2].length". It is empty for the top-level value.
	Field string
}

// Error describes the mismatch.
func (e *UnmarshalTypeError) Error() string {
	s := "bencode: cannot unmarshal " + e.Value + " into Go value of type " + e.Type.String()
	if e.Field != "" {
		s += " at " + e.Field
	}
	return s + " (offset " + strconv.FormatInt(e.Offset, 10) + ")"
}

// InvalidUnmarshalError reports an argument to Unmarshal or Decode that is
// not a non-nil pointer.
type InvalidUnmarshalError struct {
	Type reflect.Type
}

// Error describes the invalid argument.
func (e *InvalidUnmarshalError) Error() string {
	if e.Type == nil {
		return "bencode: Unmarshal(nil)"
	}
	if e.Type.Kind() != reflect.Pointer {
		return "bencode: Unmarshal(non-pointer " + e.Type.String() + ")"
	}
	return "bencode: Unmarshal(nil " + e.Type.String() + ")"
}

// UnsupportedTypeError reports a Go type that has no bencoding, such as a
// float, a channel, a function or a map whose keys are not strings.
type UnsupportedTypeError struct {
	Type reflect.Type
}

// Error names the type.
func (e *UnsupportedTypeError) Error() string {
	return "bencode: unsupported type: " + e.Type.String()
}

// UnsupportedValueError reports a Go value that cannot be bencoded although
// its type can: a nil pointer or interface outside a struct field
// (bencoding has no null), or a value nested too deeply, which is usually a
// cycle.
type UnsupportedValueError struct {
	Value reflect.Value
	Str   string
}

// Error describes the value.
func (e *UnsupportedValueError) Error() string {
	return "bencode: unsupported value: " + e.Str
}

// MarshalerError reports an error returned by a MarshalBencode or
// MarshalText method, or output from MarshalBencode that is not one
// well-formed value (such as an empty RawMessage).
type MarshalerError struct {
	Type reflect.Type
	Err  error
}

// Error names the type and the cause.
func (e *MarshalerError) Error() string {
	return "bencode: marshaling type " + e.Type.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *MarshalerError) Unwrap() error { return e.Err }
