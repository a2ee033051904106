#!/usr/bin/env bash
# Install the named Debian packages that are missing. Runs apt-get as root (or through sudo).
set -euo pipefail
missing=()
for pkg in "$@"; do
  if [ "$pkg" = python3-venv ]; then
    # Only needed when the Python in use lacks venv/ensurepip (Debian's own python3 does).
    python3 -c 'import venv, ensurepip' 2>/dev/null && continue
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: missing Debian packages ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
