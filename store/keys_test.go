package store

import (
	"slices"
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
