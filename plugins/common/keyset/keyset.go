// Package keyset builds the sets of names (tag keys, field keys) that
// plugins look keys up in.
package keyset

// Of is the set of keys.
func Of(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}
