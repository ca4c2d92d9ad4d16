package script

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds whole scripts: #FABRIK annotations either parse or fail
// with an *Error naming a line of the script; an accepted script's outputs
// are clean relative paths inside its directory (they are deleted and
// restored), its inputs relative patterns, its env names plain names, and
// parsing is deterministic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"#!/usr/bin/env bash\n#FABRIK input \"src/**/*.go\" hash=mtime\n#FABRIK output dist/\n#FABRIK env CC\necho hi\n",
		"#FABRIK runtime node\n#FABRIK runtime-arg --no-warnings\n#FABRIK cache ttl=\"7d\"\n",
		"#FABRIK depends ../other.sh use-outputs=#true\n#FABRIK cache disable=#true\n",
		"#FABRIK output ../escape\n",
		"#FABRIK output /abs\n",
		"#FABRIK input \"unterminated\n",
		"#FABRIK key \"custom\"\n#FABRIK\n",
		"#FABRIKoutput x\n#FABRIK\toutput\t\"a b\"\n",
		"#FABRIK env A=B\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		s, err := Parse("s.sh", "/project/s.sh", content)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Line > strings.Count(string(content), "\n")+1 {
				t.Fatalf("Parse error %T %v does not name a line of the script", err, err)
			}
			return
		}
		for _, o := range s.Outputs {
			if o == "." || filepath.IsAbs(o) || filepath.Clean(o) != o || o == ".." || strings.HasPrefix(o, "../") {
				t.Fatalf("accepted output %q outside the script's directory", o)
			}
		}
		for _, in := range s.Inputs {
			if in.Pattern == "" || filepath.IsAbs(in.Pattern) {
				t.Fatalf("accepted input %q", in.Pattern)
			}
		}
		for _, e := range s.Env {
			if e == "" || strings.ContainsAny(e, "= \t") {
				t.Fatalf("accepted env name %q", e)
			}
		}
		again, err := Parse("s.sh", "/project/s.sh", content)
		if err != nil || len(again.Outputs) != len(s.Outputs) || len(again.Inputs) != len(s.Inputs) || again.CustomKey != s.CustomKey || again.TTL != s.TTL {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
	})
}
