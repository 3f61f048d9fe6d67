#!/usr/bin/env bash
# Installs and starts everything Ferry's tests need on a fresh machine (run as root):
# the npm packages (and the process supervisor, built by npm's postinstall), Podman with its
# Docker-API socket and the local test image, a running PostgreSQL on 127.0.0.1:5432, and Debian's
# Chromium for the console's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup-tests: %s\n' "$*"; }

say "npm ci"
npm ci --no-audit --no-fund

bash .ci/setup-podman.sh

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "PostgreSQL answering on 127.0.0.1:5432"
else
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    say "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
  pg_isready -h 127.0.0.1 -p 5432 || { say "PostgreSQL did not start" >&2; exit 1; }
fi
if [ -x /usr/bin/chromium ]; then
  say "Chromium at /usr/bin/chromium (console browser tests)"
else
  say "installing Chromium (console browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  [ -x /usr/bin/chromium ] || { say "Chromium did not install at /usr/bin/chromium" >&2; exit 1; }
fi
say "ready"
