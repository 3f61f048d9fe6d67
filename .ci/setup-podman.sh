#!/usr/bin/env bash
# Makes a Podman engine answer the Docker Engine API at unix:///run/podman/podman.sock, for the
# `container` substrate's tests. Idempotent: every step checks first and says what it does.
# Runs as root (CI and the developers' machines are root). No registry is reachable, so the test
# image localhost/ferry-test:1 is built from Debian's busybox-static and `podman import`ed.
set -euo pipefail

SOCKET_PATH=/run/podman/podman.sock
SOCKET_URL="unix://${SOCKET_PATH}"
IMAGE=localhost/ferry-test:1
LOG=/run/podman/service.log

say() { printf 'setup-podman: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  say "must run as root (apt-get, /etc/containers, /run/podman)" >&2
  exit 1
fi

# 1. Packages. apt lists are refreshed only when an install is needed.
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# The image needs the static build: a dynamic /bin/busybox (package busybox) has no libc to run on.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
command -v curl >/dev/null 2>&1 || missing+=(curl) # probes the API socket
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "podman, runc, busybox-static and curl already installed"
fi

# 2. Engine configuration: crun and Podman's default ulimits fail on this machine.
mkdir -p /etc/containers
CONF=/etc/containers/containers.conf
want_conf='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]

[engine]
runtime = "runc"'
if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$want_conf" ]; then
  say "$CONF already configured"
else
  say "writing $CONF (runtime runc, default ulimits nofile/nproc 20000)"
  printf '%s\n' "$want_conf" >"$CONF"
fi

# 3. The API service.
socket_answers() {
  curl -fsS --max-time 2 --unix-socket "$SOCKET_PATH" http://d/_ping >/dev/null 2>&1
}
if socket_answers; then
  say "podman API already answering at $SOCKET_URL"
else
  mkdir -p /run/podman
  rm -f "$SOCKET_PATH"
  say "starting 'podman system service --time=0 $SOCKET_URL' (log: $LOG)"
  # From /run/podman, not the caller's folder: conmon writes files (e.g. `oom`) into the
  # working directory it inherits from the service, which would litter a checkout.
  (cd /run/podman && exec nohup podman system service --time=0 "$SOCKET_URL" >"$LOG" 2>&1 </dev/null) &
  for _ in $(seq 1 100); do
    socket_answers && break
    sleep 0.2
  done
  if ! socket_answers; then
    say "podman API did not answer at $SOCKET_URL within 20 s; see $LOG" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
  say "podman API answering at $SOCKET_URL"
fi

# 4. The test image: a busybox root filesystem, imported (no registry to pull from).
if podman image exists "$IMAGE"; then
  say "image $IMAGE already present"
else
  say "building $IMAGE from /bin/busybox"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/bin "$root"/tmp "$root"/etc "$root"/proc "$root"/sys "$root"/dev
  chmod 1777 "$root"/tmp
  cp /bin/busybox "$root"/bin/busybox
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$root"/etc/passwd
  printf 'root:x:0:\n' >"$root"/etc/group
  tar -C "$root" -cf - . | podman import \
    --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
  say "image $IMAGE built"
fi
say "ready"
