#!/usr/bin/env bash
# Local stand-ins for the official images the stack uses, for machines where no container registry
# answers (an offline CI runner, an air-gapped lab). Anywhere else, Compose pulls the real images and
# this script is never needed.
#
#   tests/docker/standins/build.sh IMAGE...     e.g. postgres:16-alpine nginx:1.30
#
# Each stand-in is built from Debian packages on a base made with debootstrap (a folder turned into
# an image with `docker import`), and tagged with the official name so that docker-compose.yml runs
# unchanged. They behave like the originals where the stack relies on it (entrypoint, ports, data
# paths, the user, the tools the healthchecks call); they are not copies. Needs root, debootstrap and
# a Debian mirror (the one in this machine's apt sources by default; MIRROR=... overrides it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
docker="${DOCKER:-docker}"
label="org.opencontainers.image.description=local stand-in built by tests/docker/standins/build.sh"

die() { echo "standins: $*" >&2; exit 1; }

mirror() {
  if [[ -n "${MIRROR:-}" ]]; then echo "$MIRROR"; return; fi
  local uri
  uri="$(grep -rhoE '^(URIs: *|deb +)(\[[^]]*\] +)?https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | grep -v security | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# A Debian root file system as an image: minbase plus the given packages, without what an image never
# needs (package lists, apt's cache, documentation, man pages, translations), as the official slim images.
base() {
  local tag="$1" suite="$2" packages="$3" dir
  "$docker" image inspect "$tag" >/dev/null 2>&1 && return
  [[ "$(id -u)" == 0 ]] || die "building $tag needs root (debootstrap)"
  if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || die "debootstrap is missing, and there is no apt-get to install it"
    echo "standins: installing debootstrap"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
      || die "could not install debootstrap"
  fi
  dir="$(mktemp -d)"
  echo "standins: debootstrap $suite ($packages) from $(mirror)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$dir" "$(mirror)" /usr/share/debootstrap/scripts/sid \
    > "$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; die "debootstrap $suite failed (log: $dir.log)"; }
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
         "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
  tar -C "$dir" -c . | "$docker" import --change "ENV LANG=C.UTF-8" - "$tag" >/dev/null
  rm -rf "$dir" "$dir.log"
}

build() {  # build TAG FOLDER
  echo "standins: building $1"
  DOCKER_BUILDKIT=0 "$docker" build --quiet --label "$label" -t "$1" "$here/$2" >/dev/null
}

for image in "$@"; do
  case "$image" in
    python:3.11*-slim-bookworm)
      base mlops-standin/bookworm:base bookworm python3,python3-venv,ca-certificates
      build "$image" python ;;
    postgres:*)
      base mlops-standin/bookworm:base bookworm python3,python3-venv,ca-certificates
      build "$image" postgres ;;
    prom/prometheus:*)
      base mlops-standin/bookworm:base bookworm python3,python3-venv,ca-certificates
      build "$image" prometheus ;;
    prom/pushgateway:*)
      base mlops-standin/bookworm:base bookworm python3,python3-venv,ca-certificates
      build "$image" pushgateway ;;
    redis:*)
      base mlops-standin/bookworm:base bookworm python3,python3-venv,ca-certificates
      build "$image" redis ;;
    nginx:*)
      # nginx >= 1.27.3 re-resolves upstream names (`server ... resolve`); Debian has it from forky on.
      base mlops-standin/forky-nginx:base forky nginx-light,curl
      build "$image" nginx ;;
    *) die "no stand-in for $image" ;;
  esac
done
