package bencode

import (
	"encoding"
	"io"
	"reflect"
	"slices"
	"strconv"
)

// Marshaler is implemented by types that encode themselves. MarshalBencode
// must return exactly one well-formed bencoded value; Marshal checks that
// it does and writes it unchanged.
type Marshaler interface {
	MarshalBencode() ([]byte, error)
}

// maxEncodeDepth bounds the nesting Marshal follows, which stops cycles.
const maxEncodeDepth = 1000

// Marshal returns the canonical bencoding of v (BEP 3 §bencoding): dict
// keys sorted as raw byte strings, integers without leading zeros.
//
// Booleans encode as the integers 0 and 1; integers of every kind as
// integers; strings, []byte and [N]byte as byte strings; other slices and
// arrays as lists; maps with keys of string kind, and structs, as dicts.
// A struct field's key is the name in its `bencode:"name"` tag, or else
// the field name; the tag "-" leaves the field out, and the options
// "omitempty" (leave out false, 0, nil and empty strings, slices and maps)
// and "omitzero" (leave out the zero value, or a value whose IsZero method
// reports true) work as in encoding/json. Exported fields of embedded
// structs are promoted. Bencoding has no null, so struct fields that hold
// a nil pointer or interface are left out; anywhere else a nil pointer or
// interface is an *UnsupportedValueError. Floats, complex numbers,
// channels and functions are an *UnsupportedTypeError.
//
// Types implementing Marshaler encode themselves; types implementing
// encoding.TextMarshaler encode as a string of their text. The output of
// MarshalBencode (and so a RawMessage) is written as is: it must be one
// well-formed value, but its dict keys need not be sorted, so that a
// value read with DecodeOptions.AllowUnsortedKeys can be written back
// byte for byte.
func Marshal(v any) ([]byte, error) {
	return AppendMarshal(nil, v)
}

// AppendMarshal appends the bencoding of v to b, as Marshal does. On error
// it returns b unchanged and the error.
func AppendMarshal(b []byte, v any) ([]byte, error) {
	e := encodeState{buf: b}
	if err := e.encode(reflect.ValueOf(v)); err != nil {
		return b, err
	}
	return e.buf, nil
}

// An Encoder writes bencoded values to a stream.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder that writes to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w}
}

// Encode writes the bencoding of v, as Marshal returns it, to the stream
// in one Write call. Nothing is written if v cannot be encoded.
func (enc *Encoder) Encode(v any) error {
	b, err := AppendMarshal(enc.buf[:0], v)
	if err != nil {
		return err
	}
	enc.buf = b
	if _, err := enc.w.Write(b); err != nil {
		return err
	}
	return nil
}

var (
	marshalerType     = reflect.TypeFor[Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

type encodeState struct {
	buf   []byte
	depth int
}

func (e *encodeState) appendString(s string) {
	e.buf = strconv.AppendInt(e.buf, int64(len(s)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, s...)
}

func (e *encodeState) appendBytes(s []byte) {
	e.buf = strconv.AppendInt(e.buf, int64(len(s)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, s...)
}

func (e *encodeState) encode(v reflect.Value) error {
	if !v.IsValid() {
		return &UnsupportedValueError{Value: v, Str: "nil"}
	}
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxEncodeDepth {
		return &UnsupportedValueError{Value: v, Str: "value nested more than " + strconv.Itoa(maxEncodeDepth) + " levels deep (a cycle?)"}
	}

	t := v.Type()
	// Methods: use the pointer's methods for addressable values.
	if t.Kind() != reflect.Pointer && v.CanAddr() {
		pt := reflect.PointerTo(t)
		if pt.Implements(marshalerType) || (!t.Implements(marshalerType) && pt.Implements(textMarshalerType)) {
			v = v.Addr()
			t = pt
		}
	}
	if t.Implements(marshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return &UnsupportedValueError{Value: v, Str: "nil " + t.String()}
		}
		return e.marshaler(v)
	}
	if t.Implements(textMarshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return &UnsupportedValueError{Value: v, Str: "nil " + t.String()}
		}
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return &MarshalerError{Type: t, Err: err}
		}
		e.appendBytes(text)
		return nil
	}

	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.buf = append(e.buf, "i1e"...)
		} else {
			e.buf = append(e.buf, "i0e"...)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = append(e.buf, 'i')
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
		e.buf = append(e.buf, 'e')
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = append(e.buf, 'i')
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
		e.buf = append(e.buf, 'e')
	case reflect.String:
		e.appendString(v.String())
	case reflect.Slice:
		if isByteElem(t.Elem()) {
			e.appendBytes(v.Bytes())
			return nil
		}
		return e.list(v)
	case reflect.Array:
		if isByteElem(t.Elem()) {
			e.buf = strconv.AppendInt(e.buf, int64(v.Len()), 10)
			e.buf = append(e.buf, ':')
			for i := range v.Len() {
				e.buf = append(e.buf, byte(v.Index(i).Uint()))
			}
			return nil
		}
		return e.list(v)
	case reflect.Map:
		return e.dictFromMap(v)
	case reflect.Struct:
		return e.dictFromStruct(v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &UnsupportedValueError{Value: v, Str: "nil " + t.String()}
		}
		return e.encode(v.Elem())
	default:
		return &UnsupportedTypeError{Type: t}
	}
	return nil
}

// isByteElem reports whether a slice or array with elements of type t
// encodes as a byte string: its elements are bytes that do not encode
// themselves.
func isByteElem(t reflect.Type) bool {
	if t.Kind() != reflect.Uint8 {
		return false
	}
	pt := reflect.PointerTo(t)
	return !pt.Implements(marshalerType) && !pt.Implements(textMarshalerType)
}

func (e *encodeState) marshaler(v reflect.Value) error {
	b, err := v.Interface().(Marshaler).MarshalBencode()
	if err != nil {
		return &MarshalerError{Type: v.Type(), Err: err}
	}
	if err := checkValid(b, true, maxEncodeDepth); err != nil {
		return &MarshalerError{Type: v.Type(), Err: err}
	}
	e.buf = append(e.buf, b...)
	return nil
}

func (e *encodeState) list(v reflect.Value) error {
	e.buf = append(e.buf, 'l')
	for i := range v.Len() {
		if err := e.encode(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

func (e *encodeState) dictFromMap(v reflect.Value) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		return &UnsupportedTypeError{Type: t}
	}
	keys := make([]reflect.Value, 0, v.Len())
	for k := range v.Seq() {
		keys = append(keys, k)
	}
	// Go compares strings bytewise, which is BEP 3's order.
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		switch as, bs := a.String(), b.String(); {
		case as < bs:
			return -1
		case as > bs:
			return 1
		}
		return 0
	})
	e.buf = append(e.buf, 'd')
	for _, k := range keys {
		e.appendString(k.String())
		if err := e.encode(v.MapIndex(k)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

func (e *encodeState) dictFromStruct(v reflect.Value) error {
	fields := cachedFields(v.Type())
	e.buf = append(e.buf, 'd')
	for i := range fields.list {
		f := &fields.list[i]
		fv, ok := fieldByIndex(v, f.index)
		if !ok {
			continue // inside a nil embedded pointer
		}
		if f.omitEmpty && isEmptyValue(fv) || f.omitZero && isZeroValue(fv) {
			continue
		}
		if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Interface) && fv.IsNil() {
			continue // bencoding has no null
		}
		e.appendString(f.name)
		if err := e.encode(fv); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

// fieldByIndex is v.FieldByIndex, reporting false instead of panicking at
// a nil embedded pointer.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

type isZeroer interface{ IsZero() bool }

func isZeroValue(v reflect.Value) bool {
	if z, ok := v.Interface().(isZeroer); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}
