package config

import (
	"fmt"
	"reflect"
	"strings"
)

// flag is one --config-* (or --log-level) argument as written.
type flag struct {
	name, value string
	hasValue    bool
}

// SplitArgs separates the configuration flags (--config-*, --config PATH,
// --log-level) with their values from the rest of a command line, so a CLI
// can hand the first part to Load and parse the rest with its own flag set.
// Everything from "--" on stays in rest.
func SplitArgs(args []string) (configArgs, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return configArgs, append(rest, args[i:]...)
		}
		name, _, hasValue := strings.Cut(a, "=")
		if !isConfigFlag(name) {
			rest = append(rest, a)
			continue
		}
		configArgs = append(configArgs, a)
		if !hasValue && takesNext(name, args, i) {
			configArgs = append(configArgs, args[i+1])
			i++
		}
	}
	return configArgs, rest
}

func isConfigFlag(name string) bool {
	return name == "--config" || name == "--log-level" || strings.HasPrefix(name, "--config-")
}

// takesNext reports whether the flag at args[i], written without "=",
// consumes args[i+1] as its value.
func takesNext(name string, args []string, i int) bool {
	return i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") && !isBoolFlag(name, args[i+1])
}

// parseArgs picks the configuration flags out of a command line: --config-*
// overrides, --log-level and --config PATH. Values come as "--flag=value"
// or "--flag value"; a boolean flag may stand alone ("--config-cache-fsync").
func (ld *loader) parseArgs(args []string) (flags []flag, path string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if !isConfigFlag(name) {
			continue
		}
		if !hasValue && takesNext(name, args, i) {
			value, hasValue = args[i+1], true
			i++
		}
		if name == "--config" {
			path = value
			continue
		}
		flags = append(flags, flag{name: name, value: value, hasValue: hasValue})
	}
	return flags, path
}

// isBoolFlag reports whether name is a boolean flag that should not swallow
// next as its value ("--config-cache-fsync build" keeps "build").
func isBoolFlag(name, next string) bool {
	rest, ok := strings.CutPrefix(name, "--config-")
	if !ok {
		return false
	}
	key, ok := resolveName(flagToEnv(rest))
	if !ok {
		return false
	}
	var probe Config
	v, _, err := fieldAt(&probe, key)
	if err != nil || (v.Kind() != reflect.Bool && v.Type() != boolPtrType) {
		return false
	}
	_, err = parseBool(next)
	return err != nil
}

func flagToEnv(rest string) string {
	return strings.ToUpper(strings.ReplaceAll(rest, "-", "_"))
}

// applyFlags applies --config-* flags, then --log-level above them all.
func (ld *loader) applyFlags(flags []flag) {
	var logLevel *flag
	for i, f := range flags {
		if f.name == "--log-level" {
			logLevel = &flags[i]
			continue
		}
		origin := "flag " + f.name
		rest := strings.TrimPrefix(f.name, "--config-")
		key, ok := resolveName(flagToEnv(rest))
		if !ok {
			msg := fmt.Sprintf("%s matches no config key", f.name)
			if s := suggestOverride(flagToEnv(rest), FlagName); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			ld.problems = append(ld.problems, Problem{Message: msg, Origin: origin})
			continue
		}
		value := f.value
		if !f.hasValue {
			value = "true" // a lone flag: only booleans accept it
		}
		if err := ld.set(key, overrideText(value), origin, ld.opts.Cwd); err != nil {
			ld.problems = append(ld.problems, valueProblem(key, err, origin))
		}
	}
	if logLevel != nil {
		if !logLevel.hasValue {
			ld.problems = append(ld.problems, Problem{Key: "observability.log_level",
				Message: "--log-level needs a value: debug, info, warn or error", Origin: "flag --log-level"})
			return
		}
		_ = ld.set("observability.log_level", overrideText(logLevel.value), "flag --log-level", ld.opts.Cwd)
	}
}

// applyFallbacks fills values still empty after every source from the
// standard variables other tools use, so a CI job's AWS credentials and
// token work without repeating them under FABRIK_CONFIG_* names.
func (ld *loader) applyFallbacks() {
	fallback := func(key string, empty bool, names ...string) {
		if !empty {
			return
		}
		for _, n := range names {
			if v := ld.env[n]; v != "" {
				_ = ld.set(key, overrideText(v), "env "+n, ld.opts.Cwd)
				return
			}
		}
	}
	for i, u := range ld.cfg.Upstream {
		if !strings.HasPrefix(u.URL, "s3://") {
			continue
		}
		k := fmt.Sprintf("upstream.%d.", i)
		fallback(k+"region", u.Region == "", "AWS_REGION", "AWS_DEFAULT_REGION")
		fallback(k+"access_key", u.AccessKey == "", "AWS_ACCESS_KEY_ID")
		fallback(k+"secret_key", u.SecretKey == "", "AWS_SECRET_ACCESS_KEY")
	}
	fallback("auth.token", ld.cfg.Auth.Token == "", "FABRIK_TOKEN")
}
