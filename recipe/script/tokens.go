package script

import (
	"fmt"
	"slices"
	"strings"
)

// token is one word of an annotation, in the KDL-like syntax the seed uses:
// a bare word, a "quoted string" (with \" and \\ escapes), or key=value
// where the value is either.
type token struct {
	key    string
	val    string
	quoted bool
}

func (t token) text() string {
	if t.key != "" {
		return t.key + "=" + t.val
	}
	return t.val
}

func tokenize(s string) ([]token, error) {
	var out []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		var t token
		// A bare key followed by '='.
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '=' && s[j] != '"' {
			j++
		}
		if j < len(s) && s[j] == '=' {
			t.key = s[i:j]
			if t.key == "" {
				return nil, fmt.Errorf("property without a name at column %d", i+1)
			}
			i = j + 1
		}
		if i < len(s) && s[i] == '"' {
			v, n, err := quoted(s[i:])
			if err != nil {
				return nil, err
			}
			t.val, t.quoted = v, true
			i += n
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, fmt.Errorf("unexpected %q after a quoted string", s[i:])
			}
		} else {
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				if s[j] == '"' {
					return nil, fmt.Errorf("stray quote in %q", s[i:])
				}
				j++
			}
			t.val = s[i:j]
			if t.key != "" && t.val == "" {
				return nil, fmt.Errorf("property %s= has no value", t.key)
			}
			i = j
		}
		out = append(out, t)
	}
}

// quoted reads a "..." string at the start of s; it returns the value and
// how many bytes it spanned.
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string %s", s)
			}
			i++
			switch s[i] {
			case '"', '\\':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c in %s", s[i], s)
			}
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string %s", s)
}

// split checks an annotation's arguments: between minPos and maxPos
// positional values, and properties only from allowed (each at most once).
func split(args []token, minPos, maxPos int, allowed ...string) ([]string, map[string]string, error) {
	var pos []string
	props := map[string]string{}
	for _, a := range args {
		if a.key == "" {
			pos = append(pos, a.val)
			continue
		}
		if !slices.Contains(allowed, a.key) {
			if len(allowed) == 0 {
				return nil, nil, fmt.Errorf("unknown property %q (this annotation takes none)", a.key)
			}
			return nil, nil, fmt.Errorf("unknown property %q (allowed: %s)", a.key, strings.Join(allowed, ", "))
		}
		if _, dup := props[a.key]; dup {
			return nil, nil, fmt.Errorf("property %q given twice", a.key)
		}
		props[a.key] = a.val
	}
	switch {
	case len(pos) < minPos && minPos == 1:
		return nil, nil, fmt.Errorf("missing argument")
	case len(pos) < minPos:
		return nil, nil, fmt.Errorf("want %d arguments, got %d", minPos, len(pos))
	case len(pos) > maxPos:
		return nil, nil, fmt.Errorf("too many arguments: %q", pos[maxPos:])
	}
	return pos, props, nil
}
