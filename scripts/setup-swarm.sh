#!/usr/bin/env bash
# Starts a private Docker engine in swarm mode for the `swarm` substrate's tests, beside Podman
# (which serves its own Docker-API socket at /run/podman/podman.sock for the container tests).
# Idempotent: every step checks first and says what it does. Runs as root.
#
#   socket:     unix:///run/ferry-swarm/docker.sock   (FERRY_SWARM_SOCKET to change the folder's socket)
#   data root:  /var/lib/ferry-swarm/docker
#   exec root:  /run/ferry-swarm
#   images:     localhost/ferry-test:1 (busybox-static, `docker import`ed: no registry is reachable)
#               localhost/ferry-swarm-helper:1 (the same plus Debian's docker CLI at /usr/bin/docker and
#               the libraries `ldd` names: Ferry's helper jobs talk to their node's engine with it)
#   image tar:  /var/lib/ferry-swarm/images.tar (`docker save` of both, for other engines to `docker load`,
#               e.g. the two-host swarm of test/support/swarm-hosts.ts)
#
# The engine runs without iptables (it must not touch the host's firewall or Podman's networks);
# swarm jobs only need the swarm's scheduler, not its overlay networking. `--no-new-privileges`:
# swarm services (API 1.41) cannot ask for it per job, so the engine applies it to every container.
set -euo pipefail

RUN_DIR=/run/ferry-swarm
DATA_ROOT=/var/lib/ferry-swarm/docker
SOCKET_PATH=${FERRY_SWARM_SOCKET:-$RUN_DIR/docker.sock}
SOCKET_URL="unix://${SOCKET_PATH}"
PIDFILE=$RUN_DIR/docker.pid
LOG=$RUN_DIR/dockerd.log
IMAGE=localhost/ferry-test:1
HELPER_IMAGE=localhost/ferry-swarm-helper:1
IMAGES_TAR=/var/lib/ferry-swarm/images.tar

say() { printf 'setup-swarm: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  say "must run as root (apt-get, dockerd)" >&2
  exit 1
fi

# 1. Packages. apt lists are refreshed only when an install is needed.
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "docker.io, busybox-static and curl already installed"
fi
# Debian's client; /usr/local/bin may hold another docker CLI.
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)
d() { "$DOCKER_CLI" -H "$SOCKET_URL" "$@"; }

# 2. The engine.
socket_answers() {
  curl -fsS --max-time 2 --unix-socket "$SOCKET_PATH" http://d/_ping >/dev/null 2>&1
}
if socket_answers; then
  say "dockerd already answering at $SOCKET_URL"
else
  mkdir -p "$RUN_DIR" "$DATA_ROOT"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "dockerd $(cat "$PIDFILE") runs but does not answer; waiting for it"
  else
    rm -f "$SOCKET_PATH" "$PIDFILE"
    say "starting dockerd (data root $DATA_ROOT, exec root $RUN_DIR, log $LOG)"
    # Its own containerd (managed by dockerd under the exec root), so nothing is shared with other engines.
    (cd "$RUN_DIR" && exec nohup /usr/sbin/dockerd \
      --iptables=false --ip-masq=false --bridge=none --no-new-privileges \
      --data-root "$DATA_ROOT" --exec-root "$RUN_DIR" \
      --host "$SOCKET_URL" --pidfile "$PIDFILE" \
      >"$LOG" 2>&1 </dev/null) &
  fi
  for _ in $(seq 1 150); do
    socket_answers && break
    sleep 0.2
  done
  if ! socket_answers; then
    say "dockerd did not answer at $SOCKET_URL within 30 s; see $LOG" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
  fi
  say "dockerd answering at $SOCKET_URL"
fi

# 3. Swarm mode: a single-node swarm whose manager is this engine.
state=$(d info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" = active ]; then
  say "swarm already active ($(d info --format '{{.Swarm.NodeID}}'))"
else
  say "initialising a swarm (state was '$state')"
  d swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
  say "swarm active ($(d info --format '{{.Swarm.NodeID}}'))"
fi

# 4. The images: busybox root filesystems, imported (no registry to pull from).
build_dirs=()
trap 'rm -rf "${build_dirs[@]}"' EXIT
# A fresh folder (removed on exit) holding a busybox root filesystem, every applet linked in /bin.
# Sets $root rather than printing it: `$(...)` would run in a subshell and the trap would miss it.
busybox_rootfs() {
  root=$(mktemp -d)
  build_dirs+=("$root")
  mkdir -p "$root"/bin "$root"/tmp "$root"/etc "$root"/proc "$root"/sys "$root"/dev
  chmod 1777 "$root"/tmp
  cp /bin/busybox "$root"/bin/busybox
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$root"/etc/passwd
  printf 'root:x:0:\n' >"$root"/etc/group
}
# Imports folder $1 as image $2 with PATH $3.
import_rootfs() {
  tar -C "$1" -cf - . | d import --change "ENV PATH=$3" --change 'CMD ["/bin/sh"]' - "$2" >/dev/null
}
built=0

if d image inspect "$IMAGE" >/dev/null 2>&1; then
  say "image $IMAGE already present"
else
  say "building $IMAGE from /bin/busybox"
  busybox_rootfs
  import_rootfs "$root" "$IMAGE" /bin
  built=1
  say "image $IMAGE built"
fi

if d image inspect "$HELPER_IMAGE" >/dev/null 2>&1; then
  say "image $HELPER_IMAGE already present"
else
  say "building $HELPER_IMAGE from /bin/busybox and $DOCKER_CLI"
  busybox_rootfs
  mkdir -p "$root"/usr/bin
  cp "$DOCKER_CLI" "$root"/usr/bin/docker
  # Every library ldd names, at the path it names (the loader too, at its absolute path); -L copies
  # the file a symlink points to (/lib64/ld-linux-x86-64.so.2 is one, /lib is one on usrmerge).
  for lib in $(ldd "$DOCKER_CLI" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  import_rootfs "$root" "$HELPER_IMAGE" /bin:/usr/bin
  built=1
  say "image $HELPER_IMAGE built"
fi

# The tar is current when its manifest names both images' ids (an image rebuilt elsewhere makes it stale).
tar_current() {
  local manifest id image
  manifest=$(tar -xOf "$IMAGES_TAR" manifest.json 2>/dev/null) || return 1
  for image in "$IMAGE" "$HELPER_IMAGE"; do
    id=$(d image inspect --format '{{.Id}}' "$image")
    grep -q "${id#sha256:}" <<<"$manifest" || return 1
  done
}
if [ "$built" = 1 ] || ! tar_current; then
  say "saving $IMAGE and $HELPER_IMAGE to $IMAGES_TAR"
  mkdir -p "$(dirname "$IMAGES_TAR")"
  d save -o "$IMAGES_TAR.tmp" "$IMAGE" "$HELPER_IMAGE"
  mv -f "$IMAGES_TAR.tmp" "$IMAGES_TAR"
else
  say "image tar $IMAGES_TAR already present"
fi
say "ready: DOCKER_HOST=$SOCKET_URL"
