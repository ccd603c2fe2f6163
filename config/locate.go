package config

import (
	"strconv"
	"strings"
)

// keyPos is one key of the TOML text as written, with where it is.
type keyPos struct {
	segs    []string // the key without array indexes: relay, sorce_ips
	indexed string   // the key with array indexes: relay[1].sorce_ips
	line    int      // 1-based
}

// locator maps keys to the lines they were written on. BurntSushi/toml
// v1.6.0 keeps key positions private (and keeps only the last one for keys
// inside arrays of tables), so locate re-reads the text, which the TOML
// parser has already accepted, and records every key with its array indexes.
type locator struct {
	keys  []keyPos
	lines map[string]int // indexed key → line of its first appearance
}

// line returns the line of an indexed key ("relay[2].url"), falling back to
// its closest written parent ("relay[2]"), or 0 when nothing is known.
func (l *locator) line(key string) int {
	if l == nil {
		return 0
	}
	for key != "" {
		if n, ok := l.lines[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i <= 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// locate scans TOML text. It never fails: on text it does not understand it
// stops and returns what it found so far.
func locate(text string) (l *locator) {
	defer func() {
		if recover() != nil { // a scanner bug must not break Load
			l = &locator{lines: map[string]int{}}
		}
	}()
	return scan(text)
}

// scan is locate without the safety net, for the fuzz test.
func scan(text string) *locator {
	s := &scanner{src: text, line: 1, arrays: map[string]int{}}
	s.l = &locator{lines: map[string]int{}}
	s.document()
	return s.l
}

// scanner is a small TOML reader that knows only enough of the grammar to
// find keys: headers, keys, strings, arrays, inline tables and comments.
type scanner struct {
	src  string
	pos  int
	line int
	l    *locator

	// table is the current table as indexed segments ("relay[1]", "x").
	table []pathSeg
	// arrays counts the elements of each array of tables by indexed path.
	arrays map[string]int
}

// pathSeg is one segment of a key path with its array index, if any.
type pathSeg struct {
	name  string
	index int // -1: not an array element
}

func joinPath(p []pathSeg) string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func (s *scanner) record(p []pathSeg, line int) {
	segs := make([]string, len(p))
	for i, ps := range p {
		segs[i] = ps.name
	}
	idx := joinPath(p)
	s.l.keys = append(s.l.keys, keyPos{segs: segs, indexed: idx, line: line})
	if _, ok := s.l.lines[idx]; !ok {
		s.l.lines[idx] = line
	}
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) advance() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

// blanks skips spaces and tabs.
func (s *scanner) blanks() {
	for !s.eof() && (s.peek() == ' ' || s.peek() == '\t') {
		s.advance()
	}
}

// space skips whitespace, newlines and comments.
func (s *scanner) space() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.advance()
		case '#':
			s.comment()
		default:
			return
		}
	}
}

func (s *scanner) comment() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *scanner) document() {
	for {
		s.space()
		if s.eof() {
			return
		}
		start := s.line
		switch {
		case strings.HasPrefix(s.src[s.pos:], "[["):
			s.pos += 2
			key := s.key()
			s.blanks()
			if !strings.HasPrefix(s.src[s.pos:], "]]") {
				return
			}
			s.pos += 2
			if len(key) == 0 {
				return
			}
			t := append(s.resolveTable(key[:len(key)-1]), pathSeg{name: key[len(key)-1], index: -1})
			p := joinPath(t)
			t[len(t)-1].index = s.arrays[p]
			s.arrays[p]++
			s.table = t
			s.record(s.table, start)
		case s.peek() == '[':
			s.pos++
			key := s.key()
			s.blanks()
			if s.peek() != ']' {
				return
			}
			s.pos++
			s.table = s.resolveTable(key)
			s.record(s.table, start)
		default:
			if !s.keyValue(s.table) {
				return
			}
		}
	}
}

// resolveTable turns a header's key into an indexed path: a prefix that
// names an array of tables refers to its last element.
func (s *scanner) resolveTable(key []string) []pathSeg {
	var p []pathSeg
	for _, k := range key {
		p = append(p, pathSeg{name: k, index: -1})
		if n, ok := s.arrays[joinPath(p)]; ok && n > 0 {
			p[len(p)-1].index = n - 1
		}
	}
	return p
}

// keyValue reads "key = value" inside table and records the key.
func (s *scanner) keyValue(table []pathSeg) bool {
	start := s.line
	key := s.key()
	if len(key) == 0 {
		return false
	}
	s.blanks()
	if s.peek() != '=' {
		return false
	}
	s.pos++
	p := append([]pathSeg(nil), table...)
	for _, k := range key {
		p = append(p, pathSeg{name: k, index: -1})
	}
	s.record(p, start)
	s.blanks()
	return s.value(p)
}

// key reads a possibly dotted, possibly quoted key.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.blanks()
		var part string
		switch s.peek() {
		case '"':
			part = s.basicString()
		case '\'':
			part = s.literalString()
		default:
			begin := s.pos
			for !s.eof() && isBare(s.peek()) {
				s.pos++
			}
			if begin == s.pos {
				return parts
			}
			part = s.src[begin:s.pos]
		}
		parts = append(parts, part)
		s.blanks()
		if s.peek() != '.' {
			return parts
		}
		s.pos++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 0x80
}

// value skips one value; keys of inline tables are recorded under path,
// elements of arrays as path[i].
func (s *scanner) value(path []pathSeg) bool {
	switch {
	case strings.HasPrefix(s.src[s.pos:], `"""`):
		s.multiline(`"""`, true)
	case strings.HasPrefix(s.src[s.pos:], `'''`):
		s.multiline(`'''`, false)
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.literalString()
	case s.peek() == '[':
		s.pos++
		for i := 0; ; i++ {
			s.space()
			if s.eof() {
				return false
			}
			if s.peek() == ']' {
				s.pos++
				return true
			}
			elem := append([]pathSeg(nil), path...)
			elem[len(elem)-1].index = i
			if k := joinPath(elem); s.l.lines[k] == 0 {
				s.l.lines[k] = s.line
			}
			if !s.value(elem) {
				return false
			}
			s.space()
			if s.peek() == ',' {
				s.pos++
			}
		}
	case s.peek() == '{':
		s.pos++
		for {
			s.space()
			if s.eof() {
				return false
			}
			if s.peek() == '}' {
				s.pos++
				return true
			}
			if !s.keyValue(path) {
				return false
			}
			s.space()
			if s.peek() == ',' {
				s.pos++
			}
		}
	default:
		begin := s.pos
		for !s.eof() {
			c := s.peek()
			if c == ',' || c == ']' || c == '}' || c == '#' || c == '\n' || c == '\r' {
				break
			}
			s.pos++
		}
		return s.pos > begin
	}
	return true
}

// basicString reads "..." and returns its raw contents (escapes are kept:
// good enough to name a key).
func (s *scanner) basicString() string {
	s.pos++ // opening quote
	begin := s.pos
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.pos++
		}
		if !s.eof() {
			s.pos++
		}
	}
	str := s.src[begin:min(s.pos, len(s.src))]
	if !s.eof() && s.peek() == '"' {
		s.pos++
	}
	return unescapeKey(str)
}

func (s *scanner) literalString() string {
	s.pos++
	begin := s.pos
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.pos++
	}
	str := s.src[begin:s.pos]
	if !s.eof() && s.peek() == '\'' {
		s.pos++
	}
	return str
}

// multiline skips a multi-line string opened by delim.
func (s *scanner) multiline(delim string, escapes bool) {
	s.pos += 3
	for !s.eof() {
		if escapes && s.peek() == '\\' {
			s.advance()
			if !s.eof() {
				s.advance()
			}
			continue
		}
		if strings.HasPrefix(s.src[s.pos:], delim) {
			s.pos += 3
			// Up to two more quotes may close the string: """a"""".
			for i := 0; i < 2 && !s.eof() && s.peek() == delim[0]; i++ {
				s.pos++
			}
			return
		}
		s.advance()
	}
}

// unescapeKey undoes the common escapes of a quoted key.
func unescapeKey(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}
