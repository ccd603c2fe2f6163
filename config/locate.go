package config

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex says where each key of a TOML text is written and what kind of
// value it holds. It is built with go-toml's own parser, so it reads the
// text exactly as the decoder does; what it adds is the array indexes
// ("relay[1].timeout"), which the decoder's errors do not carry.
type keyIndex struct {
	keys   []written
	lines  map[string]int // key with indexes, and each of its parents → first line
	exprs  []expr         // the top-level expressions, in order
	starts []int          // offset of the first byte of each line
}

// written is one key as written: a key-value, a table header, or an element
// of an array (then the key ends with its index: "target.mx[1]").
type written struct {
	path   []step
	key    string        // with array indexes: "relay[1].source_ips[0]"
	line   int           // where the key, or the element, starts
	keyOff int           // offset of the key; -1 for an array element
	valOff int           // offset of the value; -1 for headers and arrays
	kind   unstable.Kind // of the value; Table or ArrayTable for a header
	text   string        // the value as written, for scalars
	expr   int           // the top-level expression it belongs to
}

// step is one step of a key path: a name, or an index into an array.
type step struct {
	name  string
	index int // -1 for a name
}

// expr is one top-level expression: a key-value or a table header.
type expr struct {
	first, last int    // lines; a header's are its own line
	header      bool   // a header's body runs to the next header
	key         string // the expression's key with indexes
	cut         bool   // blanked from the text (see keyIndex.cut)
}

// indexKeys indexes text. It fails only where the decoder fails too.
func indexKeys(text []byte) (*keyIndex, error) {
	ix := &keyIndex{lines: map[string]int{}, starts: []int{0}}
	for i, c := range text {
		if c == '\n' {
			ix.starts = append(ix.starts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(text)
	arrays := map[string]int{} // items so far of each array of tables
	var table []step
	for p.NextExpression() {
		e := p.Expression()
		n := len(ix.exprs)
		if e.Kind == unstable.KeyValue {
			end := int(e.Raw.Offset+e.Raw.Length) - 1
			ix.exprs = append(ix.exprs, expr{first: ix.line(int(e.Raw.Offset)), last: ix.line(max(end, 0))})
			ix.exprs[n].key = ix.keyValue(table, e, n)
			continue
		}
		// A header: a name that is an array of tables so far stands for
		// its last item ([relay.sub] after [[relay]]).
		table = nil
		it := e.Key()
		off := -1
		for it.Next() {
			if off < 0 {
				off = int(it.Node().Raw.Offset)
			}
			if e.Kind == unstable.ArrayTable && it.IsLast() {
				table = append(table, step{name: string(it.Node().Data), index: -1})
				k := render(table)
				table = append(table, step{index: arrays[k]})
				arrays[k]++
				break
			}
			table = append(table, step{name: string(it.Node().Data), index: -1})
			if c := arrays[render(table)]; c > 0 {
				table = append(table, step{index: c - 1})
			}
		}
		table = slices.Clip(table)
		line := ix.line(off)
		ix.exprs = append(ix.exprs, expr{first: line, last: line, header: true, key: render(table)})
		ix.add(written{path: table, line: line, keyOff: off, valOff: -1, kind: e.Kind, expr: n})
	}
	return ix, p.Error()
}

// keyValue indexes a key-value under table and returns its key.
func (ix *keyIndex) keyValue(table []step, kv *unstable.Node, e int) string {
	path := slices.Clone(table)
	off := -1
	for it := kv.Key(); it.Next(); {
		if off < 0 {
			off = int(it.Node().Raw.Offset)
		}
		path = append(path, step{name: string(it.Node().Data), index: -1})
	}
	ix.value(slices.Clip(path), off, kv.Value(), e, ix.line(off))
	return render(path)
}

// value indexes the value v written at path, and what it holds.
func (ix *keyIndex) value(path []step, keyOff int, v *unstable.Node, e, line int) {
	w := written{path: path, line: line, keyOff: keyOff, valOff: -1, kind: v.Kind, expr: e}
	if v.Kind != unstable.Array { // arrays alone carry no position
		w.valOff = int(v.Raw.Offset)
		w.text = string(v.Data)
		if keyOff < 0 {
			w.line = ix.line(w.valOff)
		}
	}
	ix.add(w)
	i := 0
	for it := v.Children(); it.Next(); {
		switch c := it.Node(); {
		case v.Kind == unstable.Array:
			ix.value(append(slices.Clone(path), step{index: i}), -1, c, e, w.line)
			i++
		case v.Kind == unstable.InlineTable && c.Kind == unstable.KeyValue:
			ix.keyValue(path, c, e)
		}
	}
}

func (ix *keyIndex) add(w written) {
	w.key = render(w.path)
	ix.keys = append(ix.keys, w)
	for i := len(w.path); i > 0; i-- {
		if k := render(w.path[:i]); ix.lines[k] == 0 {
			ix.lines[k] = w.line
		}
	}
}

// render writes a path as a key: "relay[1].source_ips[0]".
func render(path []step) string {
	var b strings.Builder
	for i, s := range path {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
	}
	return b.String()
}

// plain is the path without array indexes, as TOML writes it:
// "relay.source_ips", `target."a b"`.
func plain(path []step) string {
	var names []string
	for _, s := range path {
		switch {
		case s.index >= 0:
		case s.name == "" || strings.ContainsFunc(s.name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}):
			names = append(names, strconv.Quote(s.name))
		default:
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ".")
}

// line returns the 1-based line of a byte offset.
func (ix *keyIndex) line(off int) int { return sort.SearchInts(ix.starts, off+1) }

// lineOf returns the line of a key with indexes ("relay[2].url"), falling
// back to its closest written parent ("relay[2]"), or 0 when nothing is
// known or the key is under an item the file does not have.
func (ix *keyIndex) lineOf(key string) int {
	for ix != nil && key != "" {
		if n, ok := ix.lines[key]; ok {
			return n
		}
		if strings.HasSuffix(key, "]") {
			return 0
		}
		i := strings.LastIndexAny(key, ".[")
		if i <= 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// at returns the key whose value, or else whose key, starts at a position
// the decoder reported (1-based line and byte column), or nil.
func (ix *keyIndex) at(row, col int) *written {
	if row < 1 || row > len(ix.starts) {
		return nil
	}
	off := ix.starts[row-1] + col - 1
	var byKey *written
	for i := range ix.keys {
		w := &ix.keys[i]
		if w.valOff == off {
			return w
		}
		if w.keyOff == off && byKey == nil {
			byKey = w
		}
	}
	return byKey
}

// exprAt returns the top-level expression on a line, or -1. A key-value
// is preferred to the header whose body holds it.
func (ix *keyIndex) exprAt(row int) int {
	for i, e := range ix.exprs {
		if !e.header && e.first <= row && row <= e.last {
			return i
		}
	}
	for i := len(ix.exprs) - 1; i >= 0; i-- {
		if e := ix.exprs[i]; e.header && e.first <= row {
			return i
		}
	}
	return -1
}

// cut blanks expression e from text (a header with its body), keeping
// every newline so that the other lines keep their numbers, and marks
// what it removed.
func (ix *keyIndex) cut(text []byte, e int) {
	last := e
	if ix.exprs[e].header {
		for last+1 < len(ix.exprs) && !ix.exprs[last+1].header {
			last++
		}
	}
	for i := e; i <= last; i++ {
		ix.exprs[i].cut = true
		from, to := ix.starts[ix.exprs[i].first-1], len(text)
		if ix.exprs[i].last < len(ix.starts) {
			to = ix.starts[ix.exprs[i].last]
		}
		for j := from; j < to; j++ {
			if text[j] != '\n' {
				text[j] = ' '
			}
		}
	}
}
