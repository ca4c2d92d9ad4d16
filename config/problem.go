package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration, said for an operator.
type Problem struct {
	// File and Line locate the problem when it comes from a config file
	// (Line is 0 when the whole file is at fault, e.g. unreadable).
	File string
	Line int
	// Key is the dotted key at fault ("cache.max_size"), "" for the file.
	Key string
	// Message is a sentence: what is wrong and, where possible, the fix.
	Message string
	// Origin names the override that set the value when it was not the
	// file: "env FABRIK_CONFIG_CACHE_DIR" or "flag --config-cache-dir".
	Origin string
}

// String is the form `config validate` prints: "PATH:LINE: message".
func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	case p.File != "":
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	case p.Origin != "":
		return fmt.Sprintf("%s: %s", p.Origin, p.Message)
	}
	return p.Message
}

// ProblemsError is what Load returns when the configuration is not usable:
// every problem found, so an operator fixes them in one pass.
type ProblemsError struct {
	Problems []Problem
}

func (e *ProblemsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid configuration:\n" + strings.Join(lines, "\n")
}

// renamed maps names people write (often from older docs) to the key we use.
var renamed = map[string]string{
	"build_systems":     "build_tools",
	"max_cache_size":    "max_size",
	"metrics_port":      "api_bind",
	"health_port":       "health_bind",
	"cache_dir":         "dir",
	"jwt_public_key":    "public_key_file",
	"public_key":        "public_key_file",
	"upstreams":         "upstream",
	"eviction":          "eviction_policy",
	"ttl":               "default_ttl",
	"max_artifact":      "max_artifact_size",
	"s3_region":         "region",
	"aws_region":        "region",
	"access_key_id":     "access_key",
	"secret_access_key": "secret_key",
}

// suggest picks the candidate closest to name, "" when none is close enough
// to be a likely typo.
func suggest(name string, candidates []string) string {
	if r, ok := renamed[name]; ok {
		for _, c := range candidates {
			if c == r {
				return c
			}
		}
	}
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(name) >= 9 {
		limit = 3
	}
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// once: "szie" is one step from "size").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
