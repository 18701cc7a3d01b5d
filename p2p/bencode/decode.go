package bencode

import (
	"bytes"
	"encoding"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Unmarshaler is implemented by types that decode their own bencoding.
// UnmarshalBencode receives exactly the bytes of one well-formed value; it
// must copy them if it keeps them after returning.
type Unmarshaler interface {
	UnmarshalBencode(data []byte) error
}

// DecodeOptions configures decoding. The zero value is strict: dict keys
// must be sorted and unique, and nesting is limited to DefaultMaxDepth.
type DecodeOptions struct {
	// AllowUnsortedKeys accepts dicts whose keys are not in sorted order,
	// as some real .torrent files have them. Duplicate keys are still an
	// error. Input accepted this way does not re-encode to the same bytes,
	// so keep such a value as a RawMessage where its bytes matter (the
	// info dict of a torrent, whose hash names the torrent).
	AllowUnsortedKeys bool
	// MaxDepth limits the nesting of lists and dicts; 0 means
	// DefaultMaxDepth.
	MaxDepth int
}

func (o DecodeOptions) maxDepth() int {
	if o.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return o.MaxDepth
}

// Unmarshal decodes the bencoded value in data into v, which must be a
// non-nil pointer. It is strict, as DecodeOptions{} describes, and data
// must hold exactly one value.
//
// Integers decode into any integer kind, failing with an
// *UnmarshalTypeError if they overflow it, and into bool if they are 0 or
// 1. Strings decode into string, []byte, and [N]byte when they have
// exactly N bytes. Lists decode into slices and arrays (not of bytes),
// and an array must have exactly the list's length. Dicts decode into
// structs, with keys matched exactly to the name in the field's tag, or
// else to the field name; unknown keys are skipped. Dicts also decode
// into maps whose keys are of string kind. Into an empty interface,
// values decode as int64, string, []any and map[string]any. Pointers are allocated as needed. Types implementing
// Unmarshaler get the raw bytes of their value; types implementing
// encoding.TextUnmarshaler get the contents of a string.
//
// Decoding stops at the first error; v may then be partly filled.
func Unmarshal(data []byte, v any) error {
	return DecodeOptions{}.Unmarshal(data, v)
}

// Unmarshal is like the package function Unmarshal, with options o.
func (o DecodeOptions) Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{reflect.TypeOf(v)}
	}
	if err := checkValid(data, o.AllowUnsortedKeys, o.maxDepth()); err != nil {
		return err
	}
	d := decodeState{data: data}
	return d.value(rv)
}

// A Decoder reads bencoded values from a stream, one value per call to
// Decode. It reads ahead into an internal buffer, so it may consume more
// input than the values it returns; see Buffered and InputOffset.
//
// A Decoder buffers each value whole before decoding it, and grows its
// buffer only as data arrives, never by a length the input merely
// declares. To bound the size of one value, wrap the reader in an
// io.LimitedReader.
type Decoder struct {
	s   scanner
	err error // sticky: after a syntax or read error the stream is lost
}

// NewDecoder returns a strict Decoder that reads from r.
func NewDecoder(r io.Reader) *Decoder {
	return DecodeOptions{}.NewDecoder(r)
}

// NewDecoder returns a Decoder that reads from r with options o.
func (o DecodeOptions) NewDecoder(r io.Reader) *Decoder {
	return &Decoder{s: scanner{r: r, lenient: o.AllowUnsortedKeys, maxDepth: o.maxDepth()}}
}

// Decode reads the next value from the stream and stores it in v, as
// Unmarshal does. At the end of the stream, before any byte of a value, it
// returns io.EOF; a stream that ends inside a value gives a *SyntaxError
// that wraps io.ErrUnexpectedEOF. After a syntax or read error the
// Decoder returns that error from every later call; an
// *UnmarshalTypeError leaves it ready for the next value.
func (dec *Decoder) Decode(v any) error {
	if dec.err != nil {
		return dec.err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{reflect.TypeOf(v)}
	}
	s := &dec.s
	// Drop the bytes of earlier values.
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:])
		s.buf = s.buf[:n]
		s.base += int64(s.pos)
		s.pos = 0
	}
	if len(s.buf) == 0 {
		if err := s.need(1); err != nil {
			if s.rerr == io.EOF && len(s.buf) == 0 {
				return io.EOF
			}
			dec.err = err
			return err
		}
	}
	if err := s.scanValue(0); err != nil {
		dec.err = err
		return err
	}
	d := decodeState{data: s.buf[:s.pos], base: s.base}
	return d.value(rv)
}

// InputOffset returns the stream offset just after the last value that
// Decode returned. When a stream holds a bencoded value followed by raw
// bytes (BEP 9 metadata messages do), the raw bytes start here.
func (dec *Decoder) InputOffset() int64 {
	return dec.s.base + int64(dec.s.pos)
}

// Buffered returns the data the Decoder has read from its reader but not
// yet decoded. It is valid until the next call to Decode.
func (dec *Decoder) Buffered() io.Reader {
	return bytes.NewReader(dec.s.buf[dec.s.pos:])
}

// pathElem is one step of the path to the value being decoded: a dict key
// (a span of data) or a list index.
type pathElem struct {
	key   span
	index int // -1 for a dict key
}

// decodeState decodes one value that the scanner has already checked, so
// it can index data without bounds surprises.
type decodeState struct {
	data []byte
	off  int
	base int64
	path []pathElem
}

func (d *decodeState) typeError(what string, t reflect.Type, off int) error {
	var b strings.Builder
	for i, p := range d.path {
		if p.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.Write(d.data[p.key.start:p.key.end])
	}
	return &UnmarshalTypeError{Value: what, Type: t, Offset: d.base + int64(off), Field: b.String()}
}

// skip moves past one value.
func (d *decodeState) skip() {
	depth := 0
	for {
		switch c := d.data[d.off]; {
		case c == 'i':
			d.off += bytes.IndexByte(d.data[d.off:], 'e') + 1
		case c == 'l' || c == 'd':
			depth++
			d.off++
			continue
		case c == 'e':
			depth--
			d.off++
		default:
			d.readString()
		}
		if depth == 0 {
			return
		}
	}
}

// readString moves past a string and returns its contents.
func (d *decodeState) readString() []byte {
	n := 0
	for d.data[d.off] != ':' {
		n = n*10 + int(d.data[d.off]-'0')
		d.off++
	}
	d.off++
	s := d.data[d.off : d.off+n]
	d.off += n
	return s
}

// readInt moves past an integer and returns its digits, without the sign.
func (d *decodeState) readInt() (neg bool, digits []byte) {
	d.off++ // 'i'
	if d.data[d.off] == '-' {
		neg = true
		d.off++
	}
	end := d.off + bytes.IndexByte(d.data[d.off:], 'e')
	digits = d.data[d.off:end]
	d.off = end + 1
	return neg, digits
}

// parseUint returns the value of decimal digits, and false if it
// overflows a uint64.
func parseUint(digits []byte) (uint64, bool) {
	var n uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// toInt64 converts a sign and magnitude, and reports whether it fits.
func toInt64(neg bool, u uint64) (int64, bool) {
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true // -(1<<63) wraps to math.MinInt64, as wanted
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

var int64Type = reflect.TypeFor[int64]()

// indirect walks down v through pointers and non-nil interfaces holding
// pointers, allocating nil pointers, until it reaches a value that is not
// a pointer or one that implements Unmarshaler or TextUnmarshaler.
func indirect(v reflect.Value) (Unmarshaler, encoding.TextUnmarshaler, reflect.Value) {
	// Start from the address of a named addressable value, so that its
	// pointer methods are found.
	v0 := v
	haveAddr := false
	if v.Kind() != reflect.Pointer && v.Type().Name() != "" && v.CanAddr() {
		haveAddr = true
		v = v.Addr()
	}
	for {
		if v.Kind() == reflect.Interface && !v.IsNil() {
			e := v.Elem()
			if e.Kind() == reflect.Pointer && !e.IsNil() {
				haveAddr = false
				v = e
				continue
			}
		}
		if v.Kind() != reflect.Pointer {
			break
		}
		// A pointer to an interface that holds the pointer itself would
		// loop forever.
		if v.Elem().Kind() == reflect.Interface && v.Elem().Elem().Equal(v) {
			v = v.Elem()
			break
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if v.Type().NumMethod() > 0 && v.CanInterface() {
			if u, ok := v.Interface().(Unmarshaler); ok {
				return u, nil, reflect.Value{}
			}
			if tu, ok := v.Interface().(encoding.TextUnmarshaler); ok {
				return nil, tu, reflect.Value{}
			}
		}
		if haveAddr {
			v = v0
			haveAddr = false
		} else {
			v = v.Elem()
		}
	}
	return nil, nil, v
}

// value decodes the value at d.off into v. An invalid v means the value is
// skipped.
func (d *decodeState) value(v reflect.Value) error {
	if !v.IsValid() {
		d.skip()
		return nil
	}
	start := d.off
	u, tu, v := indirect(v)
	if u != nil {
		d.skip()
		return u.UnmarshalBencode(d.data[start:d.off])
	}
	c := d.data[d.off]
	if tu != nil {
		if c < '0' || c > '9' {
			return d.typeError(kindName(c), reflect.TypeOf(tu), start)
		}
		return tu.UnmarshalText(d.readString())
	}
	switch {
	case c == 'i':
		return d.intValue(v)
	case c == 'l':
		return d.listValue(v)
	case c == 'd':
		return d.dictValue(v)
	default:
		return d.stringValue(v)
	}
}

func kindName(c byte) string {
	switch c {
	case 'i':
		return "integer"
	case 'l':
		return "list"
	case 'd':
		return "dict"
	}
	return "string"
}

func (d *decodeState) intValue(v reflect.Value) error {
	start := d.off
	neg, digits := d.readInt()
	u, ok := parseUint(digits)
	describe := func() string {
		if neg {
			return "integer -" + string(digits)
		}
		return "integer " + string(digits)
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, fits := toInt64(neg, u)
		if !ok || !fits || v.OverflowInt(n) {
			return d.typeError(describe(), v.Type(), start)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if !ok || neg || v.OverflowUint(u) {
			return d.typeError(describe(), v.Type(), start)
		}
		v.SetUint(u)
	case reflect.Bool:
		if neg || !ok || u > 1 {
			return d.typeError(describe(), v.Type(), start)
		}
		v.SetBool(u == 1)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.typeError("integer", v.Type(), start)
		}
		n, fits := toInt64(neg, u)
		if !ok || !fits {
			return d.typeError(describe(), int64Type, start)
		}
		v.Set(reflect.ValueOf(n))
	default:
		return d.typeError("integer", v.Type(), start)
	}
	return nil
}

func (d *decodeState) stringValue(v reflect.Value) error {
	start := d.off
	s := d.readString()
	switch v.Kind() {
	case reflect.String:
		v.SetString(string(s))
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			return d.typeError("string", v.Type(), start)
		}
		v.SetBytes(bytes.Clone(s))
		if v.IsNil() { // bytes.Clone of an empty string
			v.SetBytes([]byte{})
		}
	case reflect.Array:
		if v.Type().Elem().Kind() != reflect.Uint8 || v.Len() != len(s) {
			return d.typeError("string of length "+strconv.Itoa(len(s)), v.Type(), start)
		}
		for i, b := range s {
			v.Index(i).SetUint(uint64(b))
		}
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.typeError("string", v.Type(), start)
		}
		v.Set(reflect.ValueOf(string(s)))
	default:
		return d.typeError("string", v.Type(), start)
	}
	return nil
}

func (d *decodeState) listValue(v reflect.Value) error {
	start := d.off
	switch v.Kind() {
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.typeError("list", v.Type(), start)
		}
		l, err := d.anyList()
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(l))
		return nil
	case reflect.Slice, reflect.Array:
		// Byte slices and arrays are strings, both ways.
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return d.typeError("list", v.Type(), start)
		}
	default:
		return d.typeError("list", v.Type(), start)
	}
	isSlice := v.Kind() == reflect.Slice
	if isSlice {
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		v.SetLen(0)
	}
	d.off++ // 'l'
	d.path = append(d.path, pathElem{})
	i := 0
	for d.data[d.off] != 'e' {
		d.path[len(d.path)-1] = pathElem{index: i}
		var elem reflect.Value
		if isSlice {
			if v.Len() == v.Cap() {
				v.Grow(1)
			}
			v.SetLen(i + 1)
			elem = v.Index(i)
			elem.SetZero()
		} else {
			if i >= v.Len() {
				d.path = d.path[:len(d.path)-1]
				return d.typeError("list of more than "+strconv.Itoa(v.Len())+" elements", v.Type(), start)
			}
			elem = v.Index(i)
		}
		if err := d.value(elem); err != nil {
			return err
		}
		i++
	}
	d.off++ // 'e'
	d.path = d.path[:len(d.path)-1]
	if !isSlice && i != v.Len() {
		return d.typeError("list of length "+strconv.Itoa(i), v.Type(), start)
	}
	return nil
}

func (d *decodeState) dictValue(v reflect.Value) error {
	start := d.off
	var fields *structFields
	switch v.Kind() {
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.typeError("dict", v.Type(), start)
		}
		m, err := d.anyDict()
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return d.typeError("dict", v.Type(), start)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	case reflect.Struct:
		fields = cachedFields(v.Type())
	default:
		return d.typeError("dict", v.Type(), start)
	}
	d.off++ // 'd'
	d.path = append(d.path, pathElem{index: -1})
	var mapElem reflect.Value
	for d.data[d.off] != 'e' {
		key := d.readString()
		d.path[len(d.path)-1] = pathElem{key: span{d.off - len(key), d.off}, index: -1}
		if fields == nil { // map
			if !mapElem.IsValid() {
				mapElem = reflect.New(v.Type().Elem()).Elem()
			} else {
				mapElem.SetZero()
			}
			if err := d.value(mapElem); err != nil {
				return err
			}
			k := reflect.ValueOf(string(key)).Convert(v.Type().Key())
			v.SetMapIndex(k, mapElem)
			continue
		}
		i, ok := fields.byName[string(key)]
		if !ok {
			d.skip()
			continue
		}
		if err := d.value(fieldByIndexAlloc(v, fields.list[i].index)); err != nil {
			return err
		}
	}
	d.off++ // 'e'
	d.path = d.path[:len(d.path)-1]
	return nil
}

// fieldByIndexAlloc is v.FieldByIndex, allocating nil embedded pointers on
// the way.
func fieldByIndexAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

func (d *decodeState) anyValue() (any, error) {
	switch c := d.data[d.off]; {
	case c == 'i':
		start := d.off
		neg, digits := d.readInt()
		u, ok := parseUint(digits)
		n, fits := toInt64(neg, u)
		if !ok || !fits {
			what := "integer " + string(digits)
			if neg {
				what = "integer -" + string(digits)
			}
			return nil, d.typeError(what, int64Type, start)
		}
		return n, nil
	case c == 'l':
		return d.anyList()
	case c == 'd':
		return d.anyDict()
	default:
		return string(d.readString()), nil
	}
}

func (d *decodeState) anyList() ([]any, error) {
	d.off++ // 'l'
	l := []any{}
	d.path = append(d.path, pathElem{})
	for d.data[d.off] != 'e' {
		d.path[len(d.path)-1] = pathElem{index: len(l)}
		x, err := d.anyValue()
		if err != nil {
			return nil, err
		}
		l = append(l, x)
	}
	d.off++
	d.path = d.path[:len(d.path)-1]
	return l, nil
}

func (d *decodeState) anyDict() (map[string]any, error) {
	d.off++ // 'd'
	m := map[string]any{}
	d.path = append(d.path, pathElem{index: -1})
	for d.data[d.off] != 'e' {
		key := d.readString()
		d.path[len(d.path)-1] = pathElem{key: span{d.off - len(key), d.off}, index: -1}
		x, err := d.anyValue()
		if err != nil {
			return nil, err
		}
		m[string(key)] = x
	}
	d.off++
	d.path = d.path[:len(d.path)-1]
	return m, nil
}
