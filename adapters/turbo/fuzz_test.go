package turbo

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNamespace feeds raw query strings (the teamId and slug parameters a
// client controls) and hashes: an accepted team yields exactly one namespace
// segment below Namespace, printable and valid UTF-8; the same query always
// gives the same answer; a hash is accepted only from the safe alphabet.
func FuzzNamespace(f *testing.F) {
	for _, s := range [][2]string{
		{"", "abcdef0123456789"},
		{"teamId=team_abc", "ff"},
		{"slug=acme.corp", "a-b_c"},
		{"teamId=team_x&slug=other", "x"},
		{"slug=my%20team", "x"},
		{"slug=a%2Fb", "x"},
		{"teamId=%00", "x"},
		{"slug=%ff%fe", "x"},
		{"teamId=&slug=", "../x"},
		{"%zz=1;slug=x", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rawQuery, hash string) {
		r := &http.Request{URL: &url.URL{Path: "/v8/artifacts/x", RawQuery: rawQuery}}
		ns, ok := namespace(r)
		ns2, ok2 := namespace(r)
		if ns != ns2 || ok != ok2 {
			t.Fatalf("namespace(%q) is not deterministic", rawQuery)
		}
		if ok {
			if ns != Namespace {
				team, found := strings.CutPrefix(ns, Namespace+"/")
				if !found || !validTeam(team) || strings.Contains(team, "/") || !utf8.ValidString(team) {
					t.Fatalf("namespace(%q) = %q: not one valid team segment", rawQuery, ns)
				}
			}
		} else {
			q := r.URL.Query()
			team := q.Get("teamId")
			if team == "" {
				team = q.Get("slug")
			}
			if team == "" || validTeam(team) {
				t.Fatalf("namespace(%q) refused the acceptable team %q", rawQuery, team)
			}
		}
		want := hash != "" && len(hash) <= maxKeyLen && strings.Trim(hash, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") == ""
		if got := validName(hash); got != want {
			t.Fatalf("validName(%q) = %v, want %v", hash, got, want)
		}
	})
}
