package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/messages"
)

func TestKeysListsOneNamespaceInOrder(t *testing.T) {
	s := openStore(t, Options{})
	ref := func(ns, k string) messages.Ref { return messages.Ref{Namespace: ns, Key: k} }
	for i, k := range []string{"b/2", "a/1", "b/1", "c", "b/10"} {
		put(t, s, ref("s3/x", k), content(i, 100+i))
	}
	// Neighbouring namespaces must not leak in: "s3/x" vs "s3/xy", "s3".
	put(t, s, ref("s3/xy", "a/1"), content(9, 10))
	put(t, s, ref("s3", "x"), content(10, 10))
	list := func(prefix, after string, max int) []string {
		var got []string
		err := s.Keys("s3/x", prefix, after, func(k string, m messages.Meta) bool {
			if m.Size < 100 || m.Hash == "" {
				t.Fatalf("key %s: meta %+v", k, m)
			}
			got = append(got, k)
			return len(got) < max
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		prefix, after string
		max           int
		want          []string
	}{
		{"", "", 100, []string{"a/1", "b/1", "b/10", "b/2", "c"}},
		{"b/", "", 100, []string{"b/1", "b/10", "b/2"}},
		{"b/", "b/1", 100, []string{"b/10", "b/2"}},
		{"", "b/2", 100, []string{"c"}},
		{"a", "b", 100, nil},
		{"", "", 2, []string{"a/1", "b/1"}},
	} {
		if got := list(tc.prefix, tc.after, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("Keys(prefix %q, after %q): %v, want %v", tc.prefix, tc.after, got, tc.want)
		}
	}
	if err := s.Keys("", "", "", func(string, messages.Meta) bool { return true }); err == nil {
		t.Fatal("listing the empty namespace succeeded")
	}
}

// Paging as OCI tags/list does it: prefix, after, a limit; deleted keys are
// not listed.
func TestKeysPaged(t *testing.T) {
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
		var out []string
		err := s.Keys("oci/app/tags", prefix, after, func(key string, m messages.Meta) bool {
			if len(out) == limit {
				return false
			}
			if m.Attrs["k"] != key || m.Size != int64(len("content "+key)) {
				t.Fatalf("entry %s has meta %+v", key, m)
			}
			out = append(out, key)
			return len(out) < limit
		})
		if err != nil {
			t.Fatal(err)
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
	if err := s.Keys("", "", "", func(string, messages.Meta) bool { return true }); err == nil {
		t.Fatal("an empty namespace was listed")
	}
}
