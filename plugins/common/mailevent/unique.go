package mailevent

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/valyala/fastjson"
)

// With RefuseDuplicateKeys, a document in which one object names a key
// twice is refused: parsers disagree on which of the two counts
// (encoding/json takes the last, fastjson's Get the first, a walk sees
// both), so a signature checked by one and events read by another could
// be about different values.

// duplicates returns an error naming a key that one object under v names
// twice, when the mapping refuses them.
func (d *Decoder) duplicates(sc *Scratch, v *fastjson.Value) error {
	if !d.uniqueKeys {
		return nil
	}
	if k := duplicateKey(v, &sc.keys); k != nil {
		return fmt.Errorf("key %q named twice in one object", k)
	}
	return nil
}

// flatDuplicates is duplicates for an event read by the flat reader.
func (d *Decoder) flatDuplicates(sc *Scratch, kvs []flatKV, raw []byte) error {
	if !d.uniqueKeys {
		return nil
	}
	sc.keys = sc.keys[:0]
	for i := range kvs {
		sc.keys = append(sc.keys, kvs[i].key(raw))
	}
	if k := repeated(sc.keys); k != nil {
		return fmt.Errorf("key %q named twice in one object", k)
	}
	return nil
}

// duplicateKey returns a key that one object under v names twice (keys
// compared unescaped), or nil. keys is scratch space.
func duplicateKey(v *fastjson.Value, keys *[][]byte) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		obj, _ := v.Object()
		*keys = (*keys)[:0]
		obj.Visit(func(k []byte, _ *fastjson.Value) { *keys = append(*keys, k) })
		if k := repeated(*keys); k != nil {
			return k
		}
		var dup []byte
		obj.Visit(func(_ []byte, inner *fastjson.Value) {
			if dup == nil {
				dup = duplicateKey(inner, keys)
			}
		})
		return dup
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, inner := range arr {
			if k := duplicateKey(inner, keys); k != nil {
				return k
			}
		}
	}
	return nil
}

// repeated sorts keys and returns one that is in it twice, or nil: n log n
// however many keys an object has.
func repeated(keys [][]byte) []byte {
	slices.SortFunc(keys, bytes.Compare)
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(keys[i-1], keys[i]) {
			return keys[i]
		}
	}
	return nil
}
