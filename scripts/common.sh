# Helpers shared by the scripts in this folder. Source it from bash after
# setting root to the repository's top folder; it is not meant to be run.
# shellcheck shell=bash disable=SC2034,SC2154

# Engine API sockets; the environment may point the scripts elsewhere.
RBX_DOCKER_SOCK=${RBX_DOCKER_SOCK:-/var/run/docker.sock}
RBX_PODMAN_SOCK=${RBX_PODMAN_SOCK:-/run/podman/podman.sock}

say()
{
  printf '%s: %s\n' "${0##*/}" "$*"
}

die()
{
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# Succeeds when GET /_ping to the Engine API on Unix socket $1 returns 2xx.
engine_responds()
{
  [ -S "$1" ] &&
    curl -sf --max-time 5 --unix-socket "$1" http://localhost/_ping \
      >/dev/null 2>&1
}

# Prints the project version from the project() call in meson.build.
project_version()
{
  local version

  version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" \
    "$root/meson.build" | head -n 1)
  [ -n "$version" ] || die "no version : '...' line found in $root/meson.build"
  printf '%s\n' "$version"
}
