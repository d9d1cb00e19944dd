"""``mlops rollout``: drive rollouts through the service's admin API, or replay them in the simulator."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.options import JsonOpt

rollout_app = typer.Typer(
    help="Progressive delivery of model versions (canary, blue-green, shadow, A/B) through the admin API.",
    no_args_is_help=True,
)

UrlOpt = Annotated[str, typer.Option("--url", envvar="MLOPS_SERVING_URL", help="Base URL of the service.")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="MLOPS_ADMIN_TOKEN", help="Admin token.", show_default=False)]
# Reading needs only the read-only token; the admin token does too (the first of the two that is set).
ReadTokenOpt = Annotated[
    str,
    typer.Option(
        "--token",
        envvar=["MLOPS_ADMIN_TOKEN", "MLOPS_READ_TOKEN"],
        help="Admin or read-only token.",
        show_default=False,
    ),
]
IdArg = Annotated[str | None, typer.Argument(help="Rollout id [default: the current rollout].")]
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TOKEN = "dev-admin-token"


def _call(method: str, url: str, token: str, path: str, **kwargs: Any) -> Any:
    import httpx

    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/admin{path}",
            timeout=60,
            headers={"X-Admin-Token": token, "X-Actor": "cli"},
            **kwargs,
        )
    except httpx.HTTPError as err:
        typer.secho(f"error: the service at {url} cannot be reached ({err})", fg=typer.colors.RED, err=True)
        raise typer.Exit(3) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        typer.secho(f"error: {response.status_code} {detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return response.text if "text/plain" in response.headers.get("content-type", "") else response.json()


def _current_id(url: str, token: str, rollout_id: str | None) -> str:
    return rollout_id or _call("GET", url, token, "/rollouts/current")["id"]


def _echo(payload: Any) -> None:
    typer.echo(payload if isinstance(payload, str) else json.dumps(payload, indent=2))


def _parse_steps(steps: str) -> list[dict[str, float]]:
    try:
        return [{"weight": float(w), "bake_seconds": float(b)} for w, b in (p.split(":") for p in steps.split(","))]
    except ValueError:
        raise typer.BadParameter("steps look like 0.1:60,0.5:60,1:0 (weight:bake seconds)") from None


@rollout_app.command()
def start(
    version: Annotated[str, typer.Argument(help="Registry version of the candidate.")],
    strategy: Annotated[str, typer.Option(help="canary | blue-green | shadow | ab")] = "canary",
    steps: Annotated[str | None, typer.Option(help="Canary steps as weight:bake_seconds,...")] = None,
    config: Annotated[str | None, typer.Option(help="JSON file with the full rollout configuration.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = DEFAULT_TOKEN,
) -> None:
    """Start moving traffic from the serving version to VERSION with a strategy and its analysis."""
    from pathlib import Path

    body: dict[str, Any] = json.loads(Path(config).read_text()) if config else {}
    body.update(strategy=strategy, candidate_version=version)
    if steps:
        body["steps"] = _parse_steps(steps)
    _echo(_call("POST", url, token, "/rollouts", json=body))


@rollout_app.command()
def status(url: UrlOpt = DEFAULT_URL, token: ReadTokenOpt = DEFAULT_TOKEN, as_json: JsonOpt = False) -> None:
    """What the service serves now: stable version, candidate, weight, phase, last analysis."""
    answer = _call("GET", url, token, "/status")
    if as_json:
        _echo(answer)
        return
    for key, value in answer.items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}")


def _action(action: str, rollout_id: str | None, url: str, token: str, **params: Any) -> None:
    _echo(_call("POST", url, token, f"/rollouts/{_current_id(url, token, rollout_id)}/{action}", params=params))


@rollout_app.command()
def pause(rollout_id: IdArg = None, url: UrlOpt = DEFAULT_URL, token: TokenOpt = DEFAULT_TOKEN) -> None:
    """Freeze the traffic split and the analysis clock."""
    _action("pause", rollout_id, url, token)


@rollout_app.command()
def resume(rollout_id: IdArg = None, url: UrlOpt = DEFAULT_URL, token: TokenOpt = DEFAULT_TOKEN) -> None:
    """Continue a paused rollout; the current step's bake time restarts."""
    _action("resume", rollout_id, url, token)


@rollout_app.command()
def promote(
    rollout_id: IdArg = None,
    force: Annotated[bool, typer.Option(help="Promote despite failed analysis (logged).")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = DEFAULT_TOKEN,
) -> None:
    """Send all traffic to the candidate now; it becomes champion in the registry."""
    _action("promote", rollout_id, url, token, force=str(force).lower())


@rollout_app.command()
def abort(rollout_id: IdArg = None, url: UrlOpt = DEFAULT_URL, token: TokenOpt = DEFAULT_TOKEN) -> None:
    """Send 100% of traffic back to the stable version at once."""
    _action("abort", rollout_id, url, token)


@rollout_app.command()
def rollback(url: UrlOpt = DEFAULT_URL, token: TokenOpt = DEFAULT_TOKEN) -> None:
    """Undo the last promotion: serve the previous version again (registry aliases follow). Refused (exit 1,
    with the reason) after an aborted rollout or a rollback already done."""
    _echo(_call("POST", url, token, "/rollback"))


@rollout_app.command()
def history(
    limit: Annotated[int, typer.Option(help="How many rollouts.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: ReadTokenOpt = DEFAULT_TOKEN,
    as_json: JsonOpt = False,
) -> None:
    """Past rollouts, newest first: strategy, versions, outcome and why."""
    rollouts = _call("GET", url, token, "/rollouts", params={"limit": limit})
    if as_json:
        _echo(rollouts)
        return
    for r in rollouts:
        typer.echo(
            f"{r['id']}  {r['strategy']:<10} v{r['stable_version']} -> v{r['candidate_version']}  "
            f"{r['phase']:<12} {r['reason']}"
        )


@rollout_app.command()
def why(
    rollout_id: IdArg = None, url: UrlOpt = DEFAULT_URL, token: ReadTokenOpt = DEFAULT_TOKEN, as_json: JsonOpt = False
) -> None:
    """A plain-language account of why a rollout was promoted or rolled back, from its decision log
    (--json: the account, the rollout and its decision log as one object)."""
    rid = rollout_id or _call("GET", url, token, "/rollouts", params={"limit": 1})[0]["id"]
    account = _call("GET", url, token, f"/rollouts/{rid}/why")
    if as_json:
        rollout = _call("GET", url, token, f"/rollouts/{rid}")
        _echo({"why": account, "rollout": rollout, "events": _call("GET", url, token, f"/rollouts/{rid}/events")})
        return
    _echo(account)


@rollout_app.command()
def simulate(
    scenario: Annotated[str | None, typer.Argument(help="good | errors | slow | shifted | better-after-labels")] = None,
    strategy: Annotated[str, typer.Option(help="canary | blue-green | shadow | ab")] = "canary",
    all_: Annotated[bool, typer.Option("--all", help="Every strategy against every scenario, as a table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic traffic.")] = 7,
) -> None:
    """Replay a rollout in virtual time with a simulated candidate: outcome, blast radius (user-facing
    requests the candidate answered), time to detect and time to roll back. No service needed.
    """
    from services.serving.rollouts.simulator import SCENARIOS, format_table, simulate_all
    from services.serving.rollouts.simulator import simulate as run

    if all_:
        results = simulate_all(seed=seed)
        _echo([r.to_json() for r in results] if as_json else format_table(results))
        return
    if scenario is None:
        raise typer.BadParameter(f"name a scenario ({', '.join(SCENARIOS)}) or use --all")
    try:
        result = run(scenario, strategy, seed=seed)  # type: ignore[arg-type]
    except ValueError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if as_json:
        _echo(
            {
                k: result.to_json()[k]
                for k in ("outcome", "requests_to_candidate", "time_to_detect_s", "time_to_rollback_s")
            }
        )
    else:
        _echo(format_table([result]) + f"\n\n{result.reason}")
