package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGocacheprogOptions(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("from-file\n"), 0o600)
	for _, tc := range []struct {
		name            string
		args            []string
		env             map[string]string
		url, dir, token string
		maxSize         int64
	}{
		{"defaults", nil, map[string]string{"HOME": "/home/u"},
			"http://127.0.0.1:5071", "/home/u/.cache/fabrik-gocacheprog", "", 5_000_000_000},
		{"environment", nil, map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "FABRIK_HTTP_URL": "http://edge:1",
			"FABRIK_TOKEN": "tok", "FABRIK_GOCACHE_MAX_SIZE": "1GB"},
			"http://edge:1", "/xdg/fabrik-gocacheprog", "tok", 1_000_000_000},
		{"flags beat environment", []string{"--url", "http://flag:2", "--dir", "/d", "--max-size", "2GB", "--token-file", tokenFile},
			map[string]string{"FABRIK_HTTP_URL": "http://edge:1", "FABRIK_GOCACHE_DIR": "/env", "FABRIK_TOKEN": "tok"},
			"http://flag:2", "/d", "from-file", 2_000_000_000},
		{"dir from environment", nil, map[string]string{"FABRIK_GOCACHE_DIR": "/env"},
			"http://127.0.0.1:5071", "/env", "", 5_000_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := gocacheprogOptions(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if o.Edge.URL != tc.url || o.Dir != tc.dir || o.Edge.Token != tc.token || o.MaxSize != tc.maxSize {
				t.Fatalf("url %q dir %q token %q max %d; want %q %q %q %d", o.Edge.URL, o.Dir, o.Edge.Token, o.MaxSize, tc.url, tc.dir, tc.token, tc.maxSize)
			}
		})
	}
	for _, args := range [][]string{{"--max-size", "lots"}, {"extra"}, {"--nope"}, {"--token-file", "/does/not/exist"}} {
		if _, err := gocacheprogOptions(args, env(nil)); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
