package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/ops"
)

// defaultHealthURL is the health port of an edge started with no config.
const defaultHealthURL = "http://127.0.0.1:8888/health"

// healthCommand reports a node's health with its figures: the node --url
// names, else the activated daemon (FABRIK_DAEMON, or the running daemon of
// the current project), else the default edge. Exit 0 only when the node
// answers "healthy": unreachable, unavailable (503) and degraded (an
// upstream's breaker open) all exit 1.
func healthCommand(args []string, cwd string) int {
	target := ""
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--url" && i+1 < len(args):
			target = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--url="):
			target = strings.TrimPrefix(args[i], "--url=")
		default:
			return fail("health: unknown argument %q", args[i])
		}
	}
	label := ""
	switch {
	case target != "":
		target = healthURL(target)
	default:
		if s, _ := activatedDaemon(cwd); s != nil && s.URL("http", "health") != "" {
			target, label = s.URL("http", "health")+"/health", " (daemon "+s.ID+" for "+s.ConfigPath+")"
		} else {
			target = defaultHealthURL
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] health: %s unreachable: %v\n", target, err)
		return 1
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body ops.HealthBody
	if err := json.Unmarshal(raw, &body); err != nil || body.Status == "" {
		fmt.Printf("[fabrik] %s %s: %s\n", target, resp.Status, strings.TrimSpace(string(raw)))
		return 1
	}
	fmt.Print(formatHealth(target+label, resp.StatusCode, body))
	if resp.StatusCode != http.StatusOK || body.Status != "healthy" {
		return 1
	}
	return 0
}

// healthURL accepts a node's base URL or its /health URL.
func healthURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/health"
	}
	return u.String()
}

func formatHealth(target string, code int, b ops.HealthBody) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "[fabrik] %s: %s\n", target, b.Status)
	row := func(k, format string, a ...any) { fmt.Fprintf(&sb, "  %-11s "+format+"\n", append([]any{k}, a...)...) }
	if code != http.StatusOK {
		row("http", "%d", code)
	}
	row("version", "%s", b.Version)
	row("uptime", "%s", (time.Duration(b.UptimeSeconds) * time.Second).String())
	if f := b.HealthFigures; f != nil {
		row("objects", "%d", f.Objects)
		used := ""
		if f.MaxSizeBytes > 0 {
			used = fmt.Sprintf(" (%.1f%%)", 100*float64(f.SizeBytes)/float64(f.MaxSizeBytes))
		}
		row("size", "%s of %s%s", humanBytes(f.SizeBytes), humanBytes(f.MaxSizeBytes), used)
		row("hit ratio", "%.1f%% (%d hits, %d misses)", 100*f.HitRatio, f.Hits, f.Misses)
		if len(f.Upstreams) == 0 {
			row("upstreams", "none")
		}
		for _, u := range f.Upstreams {
			state := "breaker " + u.Breaker
			if u.OpenUntil != nil {
				state += fmt.Sprintf(" for %s", time.Until(*u.OpenUntil).Truncate(100*time.Millisecond))
			}
			row(u.Name, "%s  %s", state, u.URL)
		}
	}
	return sb.String()
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
