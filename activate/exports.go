// Package activate is shell activation: the hook each shell runs on
// directory change, the environment a project's daemon gives its build tools,
// and the bookkeeping that lets the hook unset only what it set.
package activate

import (
	"slices"
	"strings"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/daemon"
)

// Var is one exported environment variable.
type Var struct{ Name, Value string }

// DaemonVar names the activated daemon's state directory: `fabrik-node
// health` and `fabrik-node bazel` use the daemon it names.
const DaemonVar = "FABRIK_DAEMON"

// Turborepo needs a token and a team before it uses a remote cache at all;
// without [auth] the daemon accepts any token.
const (
	turboTeam         = "fabrik"
	placeholderToken  = "fabrik"
	sccacheBucket     = "sccache"
	sccacheS3Region   = "us-east-1"
	gradleCachePath   = "/cache/"
	webdavPath        = "/webdav/"
	ccachePath        = "/ccache"
	gocacheprogSubcmd = "gocacheprog"
)

// Exports is the environment a daemon gives the build tools of its project:
// one variable set per enabled tool whose listener the daemon bound. token is
// the config's token ("" without one); exe is the fabrik-node binary (for
// GOCACHEPROG).
func Exports(cfg config.Config, s *daemon.State, token, exe string) []Var {
	enabled := func(tool string) bool { return slices.Contains(cfg.BuildTools.Enabled, tool) }
	// A tool on a port of its own ([build_tools.<tool>] port) has a
	// listener named after it; the others share "http".
	httpOf := func(tool string) string {
		if u := s.URL("http", tool); u != "" {
			return u
		}
		return s.URL("http", "http")
	}
	vars := []Var{{DaemonVar, s.Dir}}
	add := func(name, value string) { vars = append(vars, Var{name, value}) }
	if u := s.URL("http", "http"); u != "" {
		add("FABRIK_HTTP_URL", u)
	}
	if u := s.URL("grpc", "grpc"); u != "" {
		add("FABRIK_GRPC_URL", u)
	}
	if u := httpOf("gradle"); enabled("gradle") && u != "" {
		add("GRADLE_BUILD_CACHE_URL", u+gradleCachePath)
		if token != "" {
			// Read by the init script (GradleInitScript) as the Basic
			// auth password.
			add("GRADLE_BUILD_CACHE_PASSWORD", token)
		}
	}
	if u := httpOf("nx"); enabled("nx") && u != "" {
		add("NX_SELF_HOSTED_REMOTE_CACHE_SERVER", u)
		if token != "" {
			add("NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN", token)
		}
	}
	if u := httpOf("turborepo"); enabled("turborepo") && u != "" {
		add("TURBO_API", u)
		add("TURBO_TOKEN", orPlaceholder(token))
		add("TURBO_TEAM", turboTeam)
	}
	if enabled("sccache") {
		// WebDAV first: it needs no credentials. sccache's S3 backend signs
		// every request, so it would need AWS_ACCESS_KEY_ID and
		// AWS_SECRET_ACCESS_KEY, which activation must never set (they would
		// reach the user's real AWS tools). S3 is exported only for a daemon
		// without an HTTP listener.
		if u := httpOf("sccache"); u != "" {
			add("SCCACHE_WEBDAV_ENDPOINT", u+webdavPath)
			if token != "" {
				add("SCCACHE_WEBDAV_TOKEN", token)
			}
		} else if u := s.URL("http", "s3"); u != "" {
			add("SCCACHE_BUCKET", sccacheBucket)
			add("SCCACHE_ENDPOINT", u)
			add("SCCACHE_S3_USE_SSL", "false")
			add("SCCACHE_REGION", sccacheS3Region)
		}
	}
	if u := httpOf("ccache"); enabled("ccache") && u != "" {
		v := u + ccachePath + "|layout=subdirs"
		if token != "" {
			v += "|bearer-token=" + token
		}
		add("CCACHE_REMOTE_STORAGE", v)
	}
	if u := httpOf("gocache"); enabled("gocache") && u != "" && exe != "" {
		add("GOCACHEPROG", quoteArg(exe)+" "+gocacheprogSubcmd+" --url "+u)
	}
	return vars
}

func orPlaceholder(token string) string {
	if token == "" {
		return placeholderToken
	}
	return token
}

// quoteArg quotes a path with spaces the way cmd/go splits GOCACHEPROG.
func quoteArg(s string) string {
	if !strings.ContainsAny(s, " \t'\"") {
		return s
	}
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + s + `"`
}
