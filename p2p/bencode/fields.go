package bencode

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// field is one struct field that maps to a dict key.
type field struct {
	name      string // the dict key
	index     []int  // path for reflect.Value.FieldByIndex
	typ       reflect.Type
	omitEmpty bool
	omitZero  bool
}

// structFields lists the keys of a struct type, sorted as raw byte strings
// so that the encoder writes them in canonical order.
type structFields struct {
	list   []field
	byName map[string]int
}

var fieldCache sync.Map // reflect.Type -> *structFields

func cachedFields(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return f.(*structFields)
}

// parseTag splits a struct tag value into the key name and its options.
func parseTag(tag string) (name string, omitEmpty, omitZero bool) {
	name, opts, _ := strings.Cut(tag, ",")
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		switch o {
		case "omitempty":
			omitEmpty = true
		case "omitzero":
			omitZero = true
		}
	}
	return name, omitEmpty, omitZero
}

// typeFields computes the keys of struct type t. Exported fields map to
// the key in their tag, or to the field name. The fields of an embedded
// struct without a tag are promoted as if they were declared in t; when
// several fields claim one key, the least deeply embedded wins, then the
// tagged one, and if that still leaves more than one, the key is dropped.
func typeFields(t reflect.Type) *structFields {
	type candidate struct {
		field
		depth  int
		tagged bool
	}
	type pending struct {
		typ   reflect.Type
		index []int
	}
	var cands []candidate
	visited := map[reflect.Type]bool{}
	level := []pending{{typ: t}}
	for depth := 0; len(level) > 0; depth++ {
		var next []pending
		for _, p := range level {
			if visited[p.typ] {
				continue
			}
			visited[p.typ] = true
			for i := range p.typ.NumField() {
				sf := p.typ.Field(i)
				tag := sf.Tag.Get("bencode")
				if tag == "-" {
					continue
				}
				name, omitEmpty, omitZero := parseTag(tag)
				index := append(slices.Clip(p.index), i)
				if sf.Anonymous && name == "" {
					ft := sf.Type
					isPtr := ft.Kind() == reflect.Pointer
					if isPtr {
						ft = ft.Elem()
					}
					if ft.Kind() == reflect.Struct {
						// A nil embedded pointer to an unexported type
						// cannot be allocated when decoding; skip it.
						if isPtr && !sf.IsExported() {
							continue
						}
						next = append(next, pending{ft, index})
						continue
					}
				}
				if !sf.IsExported() {
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				cands = append(cands, candidate{
					field:  field{name: name, index: index, typ: sf.Type, omitEmpty: omitEmpty, omitZero: omitZero},
					depth:  depth,
					tagged: tagged,
				})
			}
		}
		level = next
	}

	// Sort by key, then shallowest first, then tagged first; the first
	// candidate of each key is then the only possible winner.
	slices.SortStableFunc(cands, func(a, b candidate) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		switch {
		case a.tagged && !b.tagged:
			return -1
		case !a.tagged && b.tagged:
			return 1
		}
		return 0
	})
	sf := &structFields{byName: map[string]int{}}
	for i := 0; i < len(cands); {
		j := i + 1
		for j < len(cands) && cands[j].name == cands[i].name {
			j++
		}
		first := cands[i]
		ambiguous := j > i+1 && cands[i+1].depth == first.depth && cands[i+1].tagged == first.tagged
		if !ambiguous {
			sf.byName[first.name] = len(sf.list)
			sf.list = append(sf.list, first.field)
		}
		i = j
	}
	return sf
}
