package store

import (
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/messages"
)

func TestKeys(t *testing.T) {
	s := openStore(t, Options{})
	for _, k := range []string{"b", "a", "c/1", "c/2", "d"} {
		if _, err := s.PutReader(messages.Ref{Namespace: "oci/app/tags", Key: k}, messages.Meta{Attrs: map[string]string{"k": k}}, strings.NewReader("content "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutReader(messages.Ref{Namespace: "oci/app/tagsx", Key: "z"}, messages.Meta{}, strings.NewReader("other namespace")); err != nil {
		t.Fatal(err)
	}
	keys := func(prefix, after string, limit int) string {
		t.Helper()
		es, err := s.Keys("oci/app/tags", prefix, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			if e.Meta.Attrs["k"] != e.Key || e.Meta.Size != int64(len("content "+e.Key)) {
				t.Fatalf("entry %s has meta %+v", e.Key, e.Meta)
			}
			out = append(out, e.Key)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		prefix, after string
		limit         int
		want          string
	}{
		{"", "", 100, "a,b,c/1,c/2,d"},
		{"", "", 2, "a,b"},
		{"", "b", 2, "c/1,c/2"},
		{"", "d", 10, ""},
		{"c/", "", 10, "c/1,c/2"},
		{"c/", "c/1", 10, "c/2"},
		{"c/", "a", 10, "c/1,c/2"},
		{"", "", 0, ""},
	} {
		if got := keys(c.prefix, c.after, c.limit); got != c.want {
			t.Errorf("Keys(%q, %q, %d) = %q, want %q", c.prefix, c.after, c.limit, got, c.want)
		}
	}
	// A deleted key is not listed.
	if err := s.Delete(messages.Ref{Namespace: "oci/app/tags", Key: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := keys("", "", 100); got != "a,c/1,c/2,d" {
		t.Fatalf("after delete: %q", got)
	}
	if _, err := s.Keys("", "", "", 1); err == nil {
		t.Fatal("an empty namespace was listed")
	}
}
