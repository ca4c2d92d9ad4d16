// Package ci is the one rule for when a test may skip for a missing tool,
// binary or privilege: never under CI or FABRIK_E2E_REQUIRE=1. A CI run that
// silently skipped its MinIO, NATS or client tests would prove nothing.
package ci

import (
	"os"
	"strconv"
)

// Strict reports whether a missing tool must fail a test rather than skip
// it: FABRIK_E2E_REQUIRE when set (any value strconv.ParseBool does not
// read counts as true), else a CI variable other than "", "0" or "false".
func Strict() bool {
	if v := os.Getenv("FABRIK_E2E_REQUIRE"); v != "" {
		b, err := strconv.ParseBool(v)
		return err != nil || b
	}
	switch os.Getenv("CI") {
	case "", "0", "false", "FALSE", "False":
		return false
	}
	return true
}
