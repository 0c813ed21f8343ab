package bounce

import "sort"

// matcher finds every message string of every reason in a text in one
// pass (Aho-Corasick): a reply is tried against about a thousand strings,
// and trying them one by one cost ~30 µs a reply.
type matcher struct {
	pats  []string // lower-case
	nodes []acNode // nodes[0] is the root
	ids   map[string]int32
}

type acNode struct {
	next []acEdge // sorted by byte
	fail int32
	out  []int32 // patterns ending here, those of the fail chain included
}

type acEdge struct {
	b    byte
	node int32
}

func (n *acNode) child(b byte) (int32, bool) {
	i := sort.Search(len(n.next), func(i int) bool { return n.next[i].b >= b })
	if i < len(n.next) && n.next[i].b == b {
		return n.next[i].node, true
	}
	return 0, false
}

func newMatcher(pats []string) *matcher {
	m := &matcher{nodes: []acNode{{}}, ids: map[string]int32{}}
	for _, p := range pats {
		if _, ok := m.ids[p]; ok || p == "" {
			continue
		}
		id := int32(len(m.pats))
		m.ids[p] = id
		m.pats = append(m.pats, p)
		cur := int32(0)
		for i := 0; i < len(p); i++ {
			nx, ok := m.nodes[cur].child(p[i])
			if !ok {
				nx = int32(len(m.nodes))
				m.nodes = append(m.nodes, acNode{})
				n := &m.nodes[cur]
				j := sort.Search(len(n.next), func(j int) bool { return n.next[j].b >= p[i] })
				n.next = append(n.next, acEdge{})
				copy(n.next[j+1:], n.next[j:])
				n.next[j] = acEdge{p[i], nx}
			}
			cur = nx
		}
		m.nodes[cur].out = append(m.nodes[cur].out, id)
	}
	// Fail links, breadth first.
	queue := []int32{}
	for _, e := range m.nodes[0].next {
		queue = append(queue, e.node)
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, e := range m.nodes[u].next {
			v := e.node
			f := m.nodes[u].fail
			for {
				if x, ok := m.nodes[f].child(e.b); ok && x != v {
					m.nodes[v].fail = x
					break
				}
				if f == 0 {
					m.nodes[v].fail = 0
					break
				}
				f = m.nodes[f].fail
			}
			m.nodes[v].out = append(m.nodes[v].out, m.nodes[m.nodes[v].fail].out...)
			queue = append(queue, v)
		}
	}
	return m
}

// found is what one text holds: for each pattern found, the ends of its
// occurrences (exclusive), ascending.
type found map[int32][]int

func (m *matcher) find(text string) found {
	f := found{}
	cur := int32(0)
	for i := 0; i < len(text); i++ {
		b := text[i]
		for {
			if x, ok := m.nodes[cur].child(b); ok {
				cur = x
				break
			}
			if cur == 0 {
				break
			}
			cur = m.nodes[cur].fail
		}
		for _, id := range m.nodes[cur].out {
			f[id] = append(f[id], i+1)
		}
	}
	return f
}

// aligned reports whether the text holds the patterns p in order, each
// after the end of the one before.
func (m *matcher) aligned(f found, p []int32) bool {
	pos := 0
	for _, id := range p {
		next := -1
		for _, end := range f[id] {
			if end-len(m.pats[id]) >= pos {
				next = end
				break
			}
		}
		if next < 0 {
			return false
		}
		pos = next
	}
	return true
}
