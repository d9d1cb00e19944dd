"""``mlops doctor``: a configuration, and a running deployment, audited for what attackers look for first.

Each check is a plain function of what it reads (the environment, files, answers over HTTP) and
returns findings, each with its fix; the command gathers them. Reading only: nothing is changed,
and the deployment probes are GETs (an admin GET with the public default token, say).
"""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from core.settings import read_secret_file
from services.serving.settings import MIN_TOKEN_LENGTH, PUBLIC_TOKENS

DATABASE_VARIABLES = ("MLOPS_PREDICTION_LOG_URL", "MLOPS_STATE_DB_URL", "MLOPS_TRACKING_URI")
TLS_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# What a repository must not hold: environment files and private keys.
SECRET_FILES = (".env", "*.key", "*.pem", "*.p12", "id_rsa", "id_ed25519")


@dataclass(frozen=True)
class Finding:
    check: str
    problem: str
    fix: str


def read_environment(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings as the processes would see them: ``.env`` under the variables, ``*_FILE`` secrets read."""
    merged: dict[str, str] = {}
    dotenv = root / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text(errors="replace").splitlines():
            key, eq, value = line.partition("=")
            if eq and not key.strip().startswith("#"):
                merged[key.strip()] = value.strip().strip("'\"")
    merged.update(environ)
    for key, path in list(merged.items()):
        if key.startswith("MLOPS_") and key.endswith("_FILE") and key.removesuffix("_FILE") not in merged:
            try:
                merged[key.removesuffix("_FILE")] = read_secret_file(path)
            except OSError:
                pass  # the service refuses to start on it, naming the file
    return merged


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def check_tokens(env: Mapping[str, str]) -> list[Finding]:
    admin, read = env.get("MLOPS_ADMIN_TOKEN", "dev-admin-token"), env.get("MLOPS_READ_TOKEN")
    out = []
    for variable, token in (("MLOPS_ADMIN_TOKEN", admin), ("MLOPS_READ_TOKEN", read)):
        if token is None:
            continue
        if token in PUBLIC_TOKENS:
            out.append(Finding("default-token", f"{variable} is a public default ('{token}')", _new_secret(variable)))
        elif len(token) < MIN_TOKEN_LENGTH:
            out.append(
                Finding(
                    "short-token",
                    f"{variable} has {len(token)} characters (< {MIN_TOKEN_LENGTH})",
                    _new_secret(variable),
                )
            )
    if read is not None and read == admin:
        out.append(
            Finding(
                "shared-token",
                "MLOPS_READ_TOKEN equals MLOPS_ADMIN_TOKEN: whoever reads may also change",
                _new_secret("MLOPS_READ_TOKEN"),
            )
        )
    return out


def _new_secret(variable: str) -> str:
    return (
        f"set {variable} to a new secret: python -c 'import secrets; print(secrets.token_urlsafe(24))' "
        f"(or give it as a file: {variable}_FILE=/run/secrets/...)"
    )


def check_dev_mode(env: Mapping[str, str]) -> list[Finding]:
    if _truthy(env.get("MLOPS_DEV_MODE")):
        return [
            Finding("dev-mode", "MLOPS_DEV_MODE is on: weak and default tokens are accepted", "unset MLOPS_DEV_MODE")
        ]
    return []


def _private(host: str | None) -> bool:
    """A loopback or private address, or a name only a private network resolves (a compose service)."""
    if not host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith((".local", ".internal", ".localhost")) or host == "localhost"
    return address.is_private or address.is_loopback


def check_database_tls(env: Mapping[str, str]) -> list[Finding]:
    out = []
    for variable in DATABASE_VARIABLES:
        url = env.get(variable)
        if not url:
            continue
        parsed = urlparse(url)
        if parsed.scheme.startswith(("postgresql", "mysql", "mariadb")) and not _private(parsed.hostname):
            modes = {
                m.lower()
                for m in parse_qs(parsed.query).get("sslmode", []) + parse_qs(parsed.query).get("ssl_mode", [])
            }
            if not modes & TLS_SSLMODES:
                out.append(
                    Finding(
                        "database-without-tls",
                        f"{variable} reaches {parsed.hostname}, outside a private network, without TLS",
                        f"add ?sslmode=verify-full to {variable} (the server's certificate checked)",
                    )
                )
        if parsed.scheme == "http" and not _private(parsed.hostname):
            out.append(
                Finding(
                    "tracking-without-tls",
                    f"{variable} reaches MLflow at {parsed.hostname} over plain HTTP",
                    "serve MLflow behind TLS and use an https:// URI",
                )
            )
    return out


def check_mlflow_auth(env: Mapping[str, str]) -> list[Finding]:
    uri = env.get("MLOPS_TRACKING_URI") or ""
    parsed = urlparse(uri)
    has_credentials = bool(parsed.username) or any(
        env.get(v) for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")
    )
    if parsed.scheme in ("http", "https") and not has_credentials:
        return [
            Finding(
                "mlflow-without-auth",
                f"MLflow at {parsed.hostname} is used without credentials: whoever reaches it can move the champion",
                "run `mlflow server --app-name basic-auth` and set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD for every process",
            )
        ]
    return []


def check_published_ports(compose_file: Path, env: Mapping[str, str]) -> list[Finding]:
    import yaml

    out = []
    if compose_file.is_file():
        services = (yaml.safe_load(compose_file.read_text()) or {}).get("services") or {}
        for name, service in services.items():
            for port in (service or {}).get("ports") or []:
                port = _interpolate(port, env) if isinstance(port, str) else port
                host_ip = _host_ip(port)
                if host_ip not in LOOPBACK:
                    out.append(
                        Finding(
                            "published-port",
                            f"{compose_file.name}: service '{name}' publishes {port!r} on "
                            f"{host_ip or 'every interface'}",
                            f"publish it on 127.0.0.1 only ('127.0.0.1:{_host_port(port)}') and reach it through "
                            "the TLS gateway",
                        )
                    )
    host = env.get("MLOPS_HOST")
    if host and host not in LOOPBACK:
        out.append(
            Finding(
                "published-port",
                f"MLOPS_HOST={host}: `mlops serve` listens beyond this machine, without TLS",
                "keep MLOPS_HOST=127.0.0.1 and put the TLS gateway (deploy/nginx) in front",
            )
        )
    return out


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``, from ``env``."""
    import re

    def value(match: re.Match[str]) -> str:
        name, colon, default = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        return default if current is None or (colon and current == "") else current

    return re.sub(r"\$\{(\w+)(?:(:?)-([^}]*))?\}", value, text)


def _host_ip(port: Any) -> str | None:
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split(":")
    # ip:host:container, host:container or container; an IPv6 address comes in brackets
    if str(port).startswith("["):
        return str(port)[1 : str(port).index("]")]
    return parts[0] if len(parts) == 3 else None


def _host_port(port: Any) -> str:
    text = str(port.get("published", "")) + ":" + str(port.get("target", "")) if isinstance(port, dict) else str(port)
    return ":".join(text.split(":")[-2:])


def check_file_modes(paths: list[Path]) -> list[Finding]:
    out = []
    for path in paths:
        if path.exists() and path.stat().st_mode & stat.S_IROTH:
            kind = "folder" if path.is_dir() else "file"
            out.append(
                Finding(
                    "world-readable",
                    f"{path} is readable by every user of this machine",
                    f"chmod {'700' if path.is_dir() else '600'} {path} ({kind} of secrets and data)",
                )
            )
    return out


def check_committed_secrets(root: Path) -> list[Finding]:
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--", *SECRET_FILES, *(f"**/{p}" for p in SECRET_FILES)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    tracked = sorted(set(listed.stdout.split())) if listed.returncode == 0 else []
    return [
        Finding(
            "committed-secret",
            f"{path} is in the repository",
            f"git rm --cached {path}, add it to .gitignore, and change the secrets it held (they are in the history)",
        )
        for path in tracked
    ]


def check_gateway_tls(root: Path) -> list[Finding]:
    tls = root / "deploy" / "nginx" / "tls"
    if not ((tls / "listen.conf").is_file() and (tls / "cert.pem").is_file() and (tls / "key.pem").is_file()):
        return [
            Finding(
                "no-tls",
                "the gateway serves plain HTTP only: tokens and data cross the network readable",
                "make certs (a self-signed certificate), or make certs CERT=... KEY=... with your own",
            )
        ]
    return []


def audit_configuration(root: Path, env: Mapping[str, str], *, state_dir: Path) -> list[Finding]:
    return [
        *check_tokens(env),
        *check_dev_mode(env),
        *check_database_tls(env),
        *check_mlflow_auth(env),
        *check_published_ports(root / "docker-compose.yml", env),
        *check_file_modes([state_dir, root / ".env", root / "deploy" / "nginx" / "tls" / "key.pem"]),
        *check_committed_secrets(root),
        *check_gateway_tls(root),
    ]


Get = Callable[..., Any]  # httpx.get's shape: (url, *, headers=..., verify=...) -> response


def audit_deployment(url: str, env: Mapping[str, str], *, get: Get) -> list[Finding]:
    """A running service (its gateway's URL): probed with GETs only."""
    out = []
    parsed = urlparse(url)
    if parsed.scheme != "https" and parsed.hostname not in LOOPBACK:
        out.append(
            Finding(
                "no-tls",
                f"{url} is plain HTTP beyond this machine",
                "serve it through the gateway's TLS port (make certs; https://...:8443)",
            )
        )
    for token in sorted(PUBLIC_TOKENS):
        answer = get(f"{url.rstrip('/')}/admin/status", headers={"X-Admin-Token": token})
        if answer.status_code == 200:
            out.append(
                Finding(
                    "default-token",
                    f"{url} accepts the public token '{token}' on its admin API",
                    "set MLOPS_ADMIN_TOKEN to a secret, unset MLOPS_DEV_MODE, and restart the service",
                )
            )
    tracking = env.get("MLOPS_TRACKING_URI") or ""
    if tracking.startswith(("http://", "https://")):
        answer = get(f"{tracking.rstrip('/')}/api/2.0/mlflow/registered-models/search?max_results=1")
        if answer.status_code == 200:
            out.append(
                Finding(
                    "mlflow-without-auth",
                    f"MLflow at {tracking} answers without credentials",
                    "run `mlflow server --app-name basic-auth` (and keep its port on 127.0.0.1)",
                )
            )
    return out
