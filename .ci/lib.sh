# shellcheck shell=bash
# Helpers shared by the .ci install scripts. Source it: . "$(dirname "$0")/lib.sh"
# Sourcing it sets globals and an EXIT trap (removing new_scratch's
# directories): a script that sources it must not set its own EXIT trap.
#
#   log MSG...              MSG on stderr, prefixed with the script's name
#   need_pkgs CHECK:PKG...  install the Debian packages whose CHECK is missing
#   need_go WHAT            make go findable, or fail naming WHAT needs it
#   new_scratch             set scratch to a temporary directory removed on exit

log() {
	local me=${0##*/}
	echo "${me%.sh}: $*" >&2
}

# need_pkgs CHECK:PKG...: CHECK is a command looked up in PATH, or an
# absolute path that must be executable; PKG is the Debian package that
# provides it. Only the packages of missing CHECKs are installed (each once,
# without recommends), so a run with everything present changes nothing.
# apt-get update runs at most once per run: SHOAL_APT_UPDATED, exported,
# carries that to the scripts this one calls. Every CHECK must pass after
# the install, or need_pkgs fails naming it.
need_pkgs() {
	local spec check pkg missing=() present=() absent=()
	for spec in "$@"; do
		check=${spec%%:*} pkg=${spec#*:}
		if _have "$check"; then
			present+=("${check##*/}")
			continue
		fi
		case " ${missing[*]:-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
	done
	if ((${#missing[@]} == 0)); then
		log "${present[*]}: present"
		return 0
	fi
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${SHOAL_APT_UPDATED:-} ]]; then
		apt-get update -q
		export SHOAL_APT_UPDATED=1
	fi
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	for spec in "$@"; do
		_have "${spec%%:*}" || absent+=("${spec%%:*}")
	done
	if ((${#absent[@]})); then
		log "still missing after installing ${missing[*]}: ${absent[*]}"
		return 1
	fi
}

# _have CHECK: whether CHECK (a command, or an absolute path) is present.
_have() {
	if [[ $1 == /* ]]; then
		[[ -x $1 ]]
	else
		command -v "$1" >/dev/null 2>&1
	fi
}

# need_go WHAT: puts the Go toolchain's usual place in PATH when go is not
# found; fails naming WHAT when it is still missing.
need_go() {
	_have go || PATH=$PATH:/usr/local/go/bin
	_have go || {
		log "go is required to build $1"
		return 1
	}
}

# new_scratch: sets scratch to a new temporary directory, removed when the
# script exits.
_scratch_dirs=()
trap 'rm -rf "${_scratch_dirs[@]:-}"' EXIT
new_scratch() {
	scratch=$(mktemp -d)
	_scratch_dirs+=("$scratch")
}
