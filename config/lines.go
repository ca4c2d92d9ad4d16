package config

import (
	"strconv"
	"strings"
)

// lineIndex maps dotted keys ("cache.max_size", "upstream.1.url",
// "build_tools.gradle") to the line that sets them. BurntSushi/toml reports
// lines for syntax errors but not for keys, so the text is scanned: table
// headers, array-of-table headers (counted to give indexes), and `key =`
// lines, skipping multi-line strings and arrays.
type lineIndex map[string]int

func indexLines(text string) lineIndex {
	idx := lineIndex{}
	arrays := map[string]int{} // plain array path -> current element index
	prefix := ""
	depth := 0    // open brackets/braces of a multi-line value
	inMulti := "" // the delimiter of an open multi-line string
	for n, line := range strings.Split(text, "\n") {
		lineNo := n + 1
		if inMulti != "" {
			if strings.Contains(line, inMulti) {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(line)
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if strings.HasPrefix(t, "[[") {
			end := strings.Index(t, "]]")
			if end < 0 {
				continue
			}
			plain := splitKey(t[2:end])
			full := withIndexes(plain, arrays)
			plainKey := strings.Join(plain, ".")
			if i, ok := arrays[plainKey]; ok {
				arrays[plainKey] = i + 1
			} else {
				arrays[plainKey] = 0
			}
			prefix = join(full, strconv.Itoa(arrays[plainKey]))
			idx.set(prefix, lineNo)
			continue
		}
		if t[0] == '[' {
			end := strings.Index(t, "]")
			if end < 0 {
				continue
			}
			prefix = withIndexes(splitKey(t[1:end]), arrays)
			idx.set(prefix, lineNo)
			continue
		}
		eq := keyEnd(t)
		if eq < 0 {
			continue
		}
		key := join(prefix, strings.Join(splitKey(t[:eq]), "."))
		idx.set(key, lineNo)
		value := strings.TrimSpace(t[eq+1:])
		for _, delim := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, delim) && !strings.Contains(value[3:], delim) {
				inMulti = delim
			}
		}
		if inMulti == "" {
			depth = bracketDelta(value)
			if depth < 0 {
				depth = 0
			}
		}
	}
	return idx
}

// set records the first line of key and of each of its parents, so that a
// table only ever written as [a.b] still has a line for "a".
func (idx lineIndex) set(key string, line int) {
	for {
		if _, ok := idx[key]; !ok {
			idx[key] = line
		}
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return
		}
		key = key[:i]
	}
}

// line finds key's line, or failing that the line of its nearest parent
// (a key inside an inline table is on its table's line).
func (idx lineIndex) line(key string) int {
	for key != "" {
		if l, ok := idx[key]; ok {
			return l
		}
		i := strings.LastIndex(key, ".")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// withIndexes inserts the current element index after each segment that
// names an array of tables: [upstream.extra] after [[upstream]] is
// "upstream.0.extra".
func withIndexes(plain []string, arrays map[string]int) string {
	var full []string
	for i, seg := range plain {
		full = append(full, seg)
		if i == len(plain)-1 {
			break
		}
		if n, ok := arrays[strings.Join(plain[:i+1], ".")]; ok {
			full = append(full, strconv.Itoa(n))
		}
	}
	return strings.Join(full, ".")
}

// splitKey splits a dotted TOML key, honouring quoted parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// keyEnd is the index of the '=' that ends a key, outside quotes.
func keyEnd(t string) int {
	quote := byte(0)
	for i := 0; i < len(t); i++ {
		switch ch := t[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '=':
			return i
		case ch == '#':
			return -1
		}
	}
	return -1
}

// bracketDelta counts opening minus closing brackets and braces outside
// strings and comments, to skip the lines of a multi-line array.
func bracketDelta(s string) int {
	d := 0
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == '\\' && quote == '"' {
				i++
			} else if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '#':
			return d
		case ch == '[' || ch == '{':
			d++
		case ch == ']' || ch == '}':
			d--
		}
	}
	return d
}
