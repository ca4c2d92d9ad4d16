package main

import (
	"slices"
	"testing"
)

func TestInjectAfterVerb(t *testing.T) {
	flags := []string{"--remote_cache=grpc://127.0.0.1:1"}
	cases := []struct{ in, want []string }{
		{[]string{"build", "//..."}, []string{"build", "--remote_cache=grpc://127.0.0.1:1", "//..."}},
		{[]string{"--output_user_root=/x", "--batch", "test", "//a:b", "--config=ci"},
			[]string{"--output_user_root=/x", "--batch", "test", "--remote_cache=grpc://127.0.0.1:1", "//a:b", "--config=ci"}},
		{[]string{"--version"}, []string{"--version"}},
	}
	for _, c := range cases {
		if got := injectAfterVerb(c.in, flags); !slices.Equal(got, c.want) {
			t.Errorf("injectAfterVerb(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
