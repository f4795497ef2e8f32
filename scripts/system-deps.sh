#!/usr/bin/env bash
# Installs the Debian packages named as arguments when they are missing (checked with dpkg -s,
# or as a command on PATH when dpkg is absent, so packages without a command such as the
# festival voices work too).
# Never fails the build: without root or apt, it says what is missing and which tests will skip.
set -u
installed() {
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
  else
    command -v "$1" >/dev/null 2>&1
  fi
}
missing=()
for pkg in "$@"; do
  installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "NOTE: cannot install ${missing[*]} (needs root and apt-get); tests that use them will skip." >&2
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "NOTE: apt-get could not install ${missing[*]}; tests that use them will skip." >&2
fi
exit 0
