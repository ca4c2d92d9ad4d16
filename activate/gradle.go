package activate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// GradleInitScript is installed into Gradle's init.d. Gradle reads no
// environment variable for its build cache, so this script turns
// GRADLE_BUILD_CACHE_URL (exported by activation) into a remote HTTP build
// cache with push on, and turns the build cache on. Without the variable it
// does nothing, so builds outside an activated project are untouched. It uses
// only API that Gradle 4.4 already has (settingsEvaluated, buildCache,
// HttpBuildCache).
const GradleInitScript = `// Installed by fabrik-node activation; safe to delete (activation reinstalls
// it while [build_tools.gradle] auto_configure is true). It does nothing
// unless GRADLE_BUILD_CACHE_URL is set, which activation exports inside a
// project with a fabrik.toml.
def fabrikCacheUrl = System.getenv('GRADLE_BUILD_CACHE_URL')
if (fabrikCacheUrl) {
    gradle.startParameter.buildCacheEnabled = true
    gradle.settingsEvaluated { settings ->
        settings.buildCache {
            remote(org.gradle.caching.http.HttpBuildCache) {
                url = fabrikCacheUrl
                push = true
                def fabrikToken = System.getenv('GRADLE_BUILD_CACHE_PASSWORD')
                if (fabrikToken) {
                    credentials {
                        username = 'fabrik'
                        password = fabrikToken
                    }
                }
            }
        }
    }
}
`

// GradleInitName is the init script's file name under init.d.
const GradleInitName = "fabrik-build-cache.gradle"

// GradleUserHome is where Gradle reads init.d from: GRADLE_USER_HOME, else
// ~/.gradle.
func GradleUserHome(getenv func(string) string, home string) string {
	if d := getenv("GRADLE_USER_HOME"); d != "" {
		return d
	}
	return filepath.Join(home, ".gradle")
}

// InstallGradleInit writes the init script under gradleHome/init.d unless it
// is already there with this content: idempotent, and a no-op on every
// activation but the first. It reports whether it wrote the file.
func InstallGradleInit(gradleHome string) (bool, error) {
	dir := filepath.Join(gradleHome, "init.d")
	path := filepath.Join(dir, GradleInitName)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, []byte(GradleInitScript)) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(GradleInitScript), 0o644); err != nil {
		return false, fmt.Errorf("write Gradle init script: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("install Gradle init script: %w", err)
	}
	return true, nil
}
