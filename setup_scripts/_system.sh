# Sourced by test.sh: installs the Debian packages the tests use, when they are missing.
# Needs root (or sudo); without it the tests that need a package are skipped with a reason.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "setup: cannot install ${missing[*]} (not root); tests needing them will be skipped" >&2
      return 0
    fi
  fi
  echo "setup: installing ${missing[*]}" >&2
  local log
  if ! log=$($sudo apt-get update -qq 2>&1 && DEBIAN_FRONTEND=noninteractive \
      $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" 2>&1); then
    echo "$log" >&2
    echo "setup: could not install ${missing[*]}; tests needing them will be skipped" >&2
  fi
}
