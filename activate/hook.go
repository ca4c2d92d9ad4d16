package activate

import (
	"fmt"
	"strings"
)

// Hook returns the script `eval "$(fabrik-node activate <shell>)"` runs. On
// every prompt (and, in zsh and fish, on every cd) it walks up from $PWD to
// the nearest fabrik.toml with shell builtins only. Only when that file, its
// mtime or the daemon's pid differs from what it cached does it run
// `fabrik-node activate --status`, which starts the daemon when needed and
// prints the exports; an unchanged prompt costs no process at all.
func Hook(shell, exe string) (string, error) {
	var body string
	switch shell {
	case "bash":
		body = bashHook
	case "zsh":
		body = zshHook
	case "fish":
		body = fishHook
	default:
		return "", fmt.Errorf("unknown shell %q (want %s)", shell, strings.Join(Shells, ", "))
	}
	q := shQuote(exe)
	if shell == "fish" {
		q = fishQuote(exe)
	}
	return strings.ReplaceAll(body, "@EXE@", q), nil
}

// The bash and zsh hooks share their body; only the registration differs.
const posixHookBody = `__FABRIK_EXE=@EXE@
__FABRIK_OFF=
__FABRIK_CONFIG=
__fabrik_hook() {
  [ -n "$__FABRIK_OFF" ] && return 0
  local d="$PWD" found=
  while :; do
    if [ -f "$d/fabrik.toml" ]; then found="$d/fabrik.toml"; break; fi
    if [ -z "$d" ] || [ "$d" = / ]; then break; fi
    d="${d%/*}"
  done
  if [ "$found" = "$__FABRIK_CONFIG" ]; then
    [ -z "$found" ] && return 0
    if [[ -e "$__FABRIK_STAMP" && ! "$found" -nt "$__FABRIK_STAMP" ]]; then
      if [ -z "$__FABRIK_PID" ] || kill -0 "$__FABRIK_PID" 2>/dev/null; then return 0; fi
    fi
  fi
  eval "$("$__FABRIK_EXE" activate --status --shell @SHELL@ --config "$found")"
}
fabrik-node() {
  if [ "$1" = deactivate ]; then
    shift
    eval "$("$__FABRIK_EXE" deactivate --shell @SHELL@ "$@")"
  else
    "$__FABRIK_EXE" "$@"
  fi
}
`

var bashHook = "# fabrik-node shell activation for bash: eval \"$(fabrik-node activate bash)\" in ~/.bashrc\n" +
	strings.ReplaceAll(posixHookBody, "@SHELL@", "bash") +
	`case ";${PROMPT_COMMAND:-};" in
  *";__fabrik_hook;"*) ;;
  *) PROMPT_COMMAND="__fabrik_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
esac
`

var zshHook = "# fabrik-node shell activation for zsh: eval \"$(fabrik-node activate zsh)\" in ~/.zshrc\n" +
	strings.ReplaceAll(posixHookBody, "@SHELL@", "zsh") +
	`autoload -Uz add-zsh-hook
add-zsh-hook chpwd __fabrik_hook
add-zsh-hook precmd __fabrik_hook
`

const fishHook = `# fabrik-node shell activation for fish: fabrik-node activate fish | source   in ~/.config/fish/config.fish
set -g __FABRIK_EXE @EXE@
set -g __FABRIK_OFF ''
set -g __FABRIK_CONFIG ''
function __fabrik_hook --on-variable PWD --on-event fish_prompt
  test -n "$__FABRIK_OFF"; and return 0
  set -l d $PWD
  set -l found ''
  while true
    if test -f "$d/fabrik.toml"
      set found "$d/fabrik.toml"
      break
    end
    if test -z "$d"; or test "$d" = /
      break
    end
    set d (string replace -r '/[^/]*$' '' -- $d)
  end
  if test "$found" = "$__FABRIK_CONFIG"
    test -z "$found"; and return 0
    if test -e "$__FABRIK_STAMP"; and not test "$found" -nt "$__FABRIK_STAMP"
      if test -z "$__FABRIK_PID"; or not test -d /proc/self; or test -d /proc/$__FABRIK_PID
        return 0
      end
    end
  end
  $__FABRIK_EXE activate --status --shell fish --config "$found" | source
end
function fabrik-node
  if test "$argv[1]" = deactivate
    $__FABRIK_EXE deactivate --shell fish $argv[2..-1] | source
  else
    $__FABRIK_EXE $argv
  end
end
`
