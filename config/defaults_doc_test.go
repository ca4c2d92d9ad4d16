package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Field docs that state a default ("Default 5GB.", "Default 127.0.0.1:9091
// on an edge, 0.0.0.0:9091 on a regional node.") must agree with Default:
// the doc is where an operator reads it, Default is what the code uses,
// and this test keeps the two from drifting apart.
func TestDocumentedDefaultsMatchDefault(t *testing.T) {
	docs := fieldDocs(t, "config.go")
	plain := regexp.MustCompile(`Default:? ([^\s:]\S*?)\.(?:\s|$)`)
	byRole := regexp.MustCompile(`(\S+?) on (an edge|a regional node)`)
	checked := 0
	for _, role := range []Role{RoleEdge, RoleRegional} {
		// XDG_CACHE_HOME spelled as itself, so cache.dir's default reads
		// the way its doc writes it.
		c := defaults(role, func(k string) string { return "$" + k }, "/home/u")
		walkDocFields(reflect.ValueOf(c), "", "", func(key, owner, name string, v reflect.Value) {
			doc := strings.Join(strings.Fields(docs[owner+"."+name]), " ")
			var want string
			if m := byRole.FindAllStringSubmatch(doc, -1); strings.Contains(doc, "Default") && len(m) > 0 {
				for _, g := range m {
					if (g[2] == "an edge") == (role == RoleEdge) {
						want = strings.TrimPrefix(g[1], "Default")
					}
				}
			} else if m := plain.FindStringSubmatch(doc); m != nil {
				want = m[1]
			}
			if want == "" {
				return
			}
			w := reflect.New(v.Type()).Elem()
			if err := setString(w, want); err != nil {
				return // prose, not a value ("Default: on when any key source...")
			}
			checked++
			if display(w) != display(v) {
				t.Errorf("%s (%s): documented default %q, Default(%s) has %s", key, owner+"."+name, want, role, display(v))
			}
		})
	}
	t.Logf("%d documented defaults checked", checked)
	if checked < 10 {
		t.Fatalf("only %d documented defaults found: the doc parsing broke", checked)
	}
}

// walkDocFields calls fn for each leaf under v (slices skipped: upstream
// defaults are constants with their own methods) with its dotted key, the
// Go type that declares it and its Go field name.
func walkDocFields(v reflect.Value, prefix, owner string, fn func(key, owner, name string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := tomlName(f)
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && !isLeaf(f.Type):
			walkDocFields(fv, join(prefix, name), f.Type.Name(), fn)
		case f.Type.Kind() == reflect.Slice && !isLeaf(f.Type):
		default:
			fn(join(prefix, name), t.Name(), f.Name, fv)
		}
	}
}

// fieldDocs maps "Type.Field" to the field's doc comment in file.
func fieldDocs(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fl := range st.Fields.List {
			for _, id := range fl.Names {
				if fl.Doc != nil {
					out[ts.Name.Name+"."+id.Name] = fl.Doc.Text()
				}
			}
		}
		return false
	})
	return out
}
