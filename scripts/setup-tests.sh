#!/usr/bin/env bash
# Installs and starts everything Ferry's tests need on a fresh machine (run as root):
# the npm packages (and the process supervisor, built by npm's postinstall), Podman with its
# Docker-API socket and the local test image, a private Docker engine in swarm mode with its local
# images (scripts/setup-swarm.sh), a running PostgreSQL on 127.0.0.1:5432, Debian's
# Chromium for the console's browser tests, and for the cluster's partition test iproute2 (`ip netns`)
# and PostgreSQL's server programs (initdb, pg_ctl under /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup-tests: %s\n' "$*"; }

say "npm ci"
npm ci --no-audit --no-fund

bash .ci/setup-podman.sh
# The swarm substrate's tests: Debian's docker.io in swarm mode on its own socket, and its local images.
bash scripts/setup-swarm.sh

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
# The partition test (test/cluster/) makes a network namespace and starts a private PostgreSQL.
if command -v ip >/dev/null 2>&1; then
  say "ip (iproute2) found (cluster partition test)"
else
  say "installing iproute2 (cluster partition test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2 >/dev/null
  command -v ip >/dev/null 2>&1 || { say "iproute2 did not install ip" >&2; exit 1; }
fi
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
  say "initdb and pg_ctl found under /usr/lib/postgresql (cluster partition test)"
else
  say "installing PostgreSQL's server programs (cluster partition test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { say "initdb did not install under /usr/lib/postgresql" >&2; exit 1; }
fi
id -u postgres >/dev/null 2>&1 || { say "no postgres user: the private PostgreSQL of the partition test runs as it" >&2; exit 1; }
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
