"""The control plane of one replica: which versions serve, rollouts, and the loops that keep replicas in step.

Every replica runs the same two loops against the shared store:
- *sync* (every ``sync_interval``) reads the serving state and the active rollout, loads the
  versions they name, then swaps the routing snapshot in one assignment;
- *controller* (every ``control_interval``) advances the active rollout with compare-and-set,
  so whichever replica writes first decides and the others follow on their next sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.predlog import PredictionLog
from core.usecase import UseCase
from models.promotion import record_promotion
from models.records import encode_labels
from services.serving.model_store import LoadedModel, ModelCache, ModelUnavailable, ServingRegistry
from services.serving.rollouts import engine
from services.serving.rollouts.analysis import VersionSample
from services.serving.rollouts.clock import Clock
from services.serving.rollouts.config import RolloutConfig
from services.serving.rollouts.engine import RolloutError
from services.serving.rollouts.state import Event, Rollout
from services.serving.rollouts.store import ConflictError, RolloutStore

log = logging.getLogger(__name__)


class PredictionLogMetrics:
    """Per-version samples read from the shared prediction log, so every replica sees all traffic.

    A sample is at most the ``max_rows`` most recent requests of the window: plenty for error
    rates, p99 latency and quality, and a bounded cost per analysis at any request rate.
    """

    max_rows = 5000

    def __init__(self, log_store: PredictionLog, use_case: UseCase) -> None:
        self._log = log_store
        self._use_case = use_case
        self._loss = engine.loss_function(use_case.task)

    def sample(self, *, version: str, since: float, until: float, user_facing_only: bool = False) -> VersionSample:
        rows = self._log.version_rows(
            use_case=self._use_case.name,
            version=version,
            since=since,
            until=until,
            user_facing_only=user_facing_only,
            max_rows=self.max_rows,
        )
        ok = [i for i, p in enumerate(rows.predictions) if p is not None]
        preds = np.array([rows.predictions[i] for i in ok], dtype=float)
        labelled = [i for i in ok if rows.labels[i] is not None]
        losses = np.empty(0)
        if labelled:
            y = encode_labels([rows.labels[i] for i in labelled], self._use_case)
            scored = ~np.isnan(y)  # a label stored before labels were checked, that fits no class: left out
            losses = self._loss(np.array([rows.predictions[i] for i in labelled], dtype=float)[scored], y[scored])
        return VersionSample(
            version=version,
            requests=len(rows.predictions),
            errors=len(rows.predictions) - len(ok),
            latencies_ms=np.array(rows.latencies_ms, dtype=float),
            predictions=preds,
            losses=losses,
        )


@dataclass(frozen=True)
class Snapshot:
    """What a request sees: replaced as a whole, never mutated."""

    stable: LoadedModel
    candidate: LoadedModel | None
    rollout: Rollout | None
    revision: tuple[int, int]  # (serving revision, rollout revision)


class Control:
    def __init__(
        self,
        *,
        use_case: UseCase,
        store: RolloutStore,
        source: ServingRegistry,
        predictions: PredictionLog,
        clock: Clock,
        sync_interval: float = 0.5,
        control_interval: float = 1.0,
        registry_check_interval: float = 5.0,
        compile_models: bool = True,
        native_tree_walk: bool = False,
        predict_jobs: int | None = None,
        on_load: Callable[[str], None] | None = None,
    ) -> None:
        self.use_case = use_case
        self.model_name = use_case.model_name
        self.store = store
        self.source = source
        self.cache = ModelCache(
            source,
            name=self.model_name,
            compile_for=use_case if compile_models else None,
            native_tree_walk=native_tree_walk,
            predict_jobs=predict_jobs,
            on_load=on_load,
        )
        self.metrics = PredictionLogMetrics(predictions, use_case)
        self.clock = clock
        self.sync_interval = sync_interval
        self.control_interval = control_interval
        self.registry_check_interval = registry_check_interval
        self.snapshot: Snapshot | None = None
        self.last_error: str | None = "not loaded yet"
        # Why the registry could not be read at the last look; None while it answers. Loaded versions
        # keep serving without it: only a new version (a rollout, a promotion elsewhere) needs it.
        self.registry_error: str | None = None
        self._release: tuple[float, set[str]] | None = None  # (when, versions to keep after it)
        self._registry_lag_reported: int | None = None  # the serving revision whose lag was last reported
        self._tasks: list[asyncio.Task[None]] = []

    # -- loops -------------------------------------------------------------------------------------
    async def start(self) -> None:
        # A promotion or rollback recorded before a crash is completed first: the registry then agrees,
        # and adopting its champion cannot undo the change.
        await asyncio.to_thread(self.converge_registry, after_restart=True)
        await asyncio.to_thread(self._adopt_registry_champion)
        await self.sync()
        self._tasks = [
            asyncio.create_task(self._loop(self.sync, self.sync_interval), name="rollout-sync"),
            asyncio.create_task(self._loop(self.control, self.control_interval), name="rollout-control"),
            asyncio.create_task(self._loop(self.check_registry, self.registry_check_interval), name="registry-check"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, step: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except Exception:  # a bad iteration must not stop the loop
                log.exception("%s failed", step.__name__)

    async def check_registry(self) -> None:
        """Look the champion up, only to learn whether the registry answers (reported by /ready)."""
        try:
            await asyncio.to_thread(self.source.alias_version, self.model_name, "champion")
        except Exception as err:  # noqa: BLE001 - any failure means the same to a reader of /ready
            if self.registry_error is None:
                log.warning("the model registry does not answer; serving the loaded versions: %s", err)
            self.registry_error = f"{type(err).__name__}: {err}"[:500]
        else:
            if self.registry_error is not None:
                log.info("the model registry answers again")
            self.registry_error = None

    async def sync(self) -> None:
        """Read the shared state, load what it names, swap the snapshot."""
        stable_version, _, serving_rev = await asyncio.to_thread(self.store.serving_state, self.model_name)
        if stable_version is None:  # a first start, or a champion that appeared since
            await asyncio.to_thread(self._adopt_registry_champion)
            stable_version, _, serving_rev = await asyncio.to_thread(self.store.serving_state, self.model_name)
            if stable_version is None:
                self.last_error = f"registry has no 'champion' for model '{self.model_name}' yet: train one"
                return
        rollout = await asyncio.to_thread(self.store.active, self.model_name)
        revision = (serving_rev, rollout.revision if rollout else 0)
        if self.snapshot is not None and self.snapshot.revision == revision:
            self._adopt_completed_models(self.snapshot)
            if self._release is not None and self._release[0] <= self.clock.now():
                self.cache.retain(self._release[1])  # the blue-green rollback window is over
                self._release = None
            return
        # Nothing served yet: serve the compiled models at once, complete them in the background.
        complete = self.snapshot is not None
        try:
            stable = await self.cache.ensure(stable_version, complete=complete)
        except ModelUnavailable as err:
            self.last_error = str(err)
            return
        candidate = None
        if rollout is not None:
            try:
                candidate = await self.cache.ensure(rollout.candidate_version, complete=complete)
            except ModelUnavailable as err:
                await asyncio.to_thread(self._abort_unloadable, rollout, str(err))
                rollout = None
        self.snapshot = Snapshot(stable, candidate, rollout, revision)
        self.last_error = None
        keep = {stable_version} | ({rollout.candidate_version} if rollout else set())
        latest = await asyncio.to_thread(self.store.latest, self.model_name)
        if latest is not None and latest.release_at is not None and latest.release_at > self.clock.now():
            # Blue-green: the old slot stays warm for the rollback window, then is released.
            self._release = (latest.release_at, set(keep))
            keep.add(latest.stable_version)
        self.cache.retain(keep)

    def _adopt_completed_models(self, snap: Snapshot) -> None:
        """The snapshot's versions as the cache now holds them: completed in the background, say
        (a tree model's pipeline, for large batches; see ModelCache)."""
        stable = self.cache.get(snap.stable.version) or snap.stable
        candidate = snap.candidate and (self.cache.get(snap.candidate.version) or snap.candidate)
        if stable is not snap.stable or candidate is not snap.candidate:
            self.snapshot = replace(snap, stable=stable, candidate=candidate)

    def _adopt_registry_champion(self) -> None:
        """At start-up the registry's champion wins over a stale serving state (it may have been promoted
        directly while no service ran), unless a rollout is in progress (then the rollout decides) or
        the serving state holds a change the registry has yet to follow (a promotion the registry
        could not be told of yet: it is completed, never reverted)."""
        if self.store.registry_intent(self.model_name) is not None:
            return
        champion = self.source.alias_version(self.model_name, "champion")
        stable, _, _ = self.store.serving_state(self.model_name)
        if champion is not None and champion != stable and self.store.active(self.model_name) is None:
            try:
                self.store.set_stable(self.model_name, champion, now=self.clock.now(), from_registry=True)
            except ConflictError:
                pass  # a rollout started meanwhile

    def _abort_unloadable(self, rollout: Rollout, reason: str) -> None:
        try:
            new, events = engine.abort(
                rollout,
                now=self.clock.now(),
                actor="controller",
                reason=f"candidate v{rollout.candidate_version} failed to load ({reason})",
            )
            self.store.update(new, events, expected_revision=rollout.revision)
        except (ConflictError, RolloutError):
            pass

    async def control(self) -> None:
        """Advance the active rollout; the replica whose write lands first decides. Then complete any
        change the registry has yet to follow (it may have been down when the change was made)."""
        await asyncio.to_thread(self.converge_registry)
        rollout = await asyncio.to_thread(self.store.active, self.model_name)
        if rollout is None:
            return
        new, events = await asyncio.to_thread(engine.tick, rollout, self.metrics, now=self.clock.now())
        if new is rollout:
            return
        try:
            stored = await asyncio.to_thread(self.store.update, new, events, expected_revision=rollout.revision)
        except ConflictError:
            return
        if stored.phase == "promoted":
            await asyncio.to_thread(self.converge_registry)
        await self.sync()

    def converge_registry(self, *, after_restart: bool = False) -> None:
        """Move the registry's aliases to what the serving state says, when they lag behind it.

        A promotion or a rollback is stored first (with its decision-log event, in one transaction)
        and is then an intent that this completes: on the same call, on the next control tick when
        the registry was down, or at the next start-up when the process died in between. Moving an
        alias to where it points already changes nothing, so any replica may do it, any number of times.
        """
        intent = self.store.registry_intent(self.model_name)
        if intent is None:
            return
        stable, previous, revision = intent
        latest = self.store.latest(self.model_name)
        if latest is not None and latest.phase == "promoted" and latest.candidate_version == stable:
            reason = f"rollout {latest.id} ({latest.strategy}) promoted it: {latest.reason}"
        else:
            reason = f"rolled back from v{previous}" if previous else "the serving state's stable version"
        try:
            record_promotion(self.source, self.model_name, new=stable, old=previous, actor="controller", reason=reason)
        except Exception as err:  # noqa: BLE001 - the serving state stands; the next tick tries again
            if self._registry_lag_reported != revision:  # once per change, not once per tick
                self._registry_lag_reported = revision
                log.warning("the registry's aliases do not follow v%s yet: %s", stable, err)
                self._log_to(latest, "registry_error", f"could not move the registry aliases (retrying): {err}")
            return
        if self.store.mark_registry_synced(self.model_name, revision):
            when = " (completed after a restart)" if after_restart else ""
            moved = f"champion -> v{stable}" + (f", previous -> v{previous}" if previous else "")
            self._log_to(latest, "registry", f"registry: {moved}{when}", {"revision": revision})

    def _log_to(self, rollout: Rollout | None, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """A controller's line in a rollout's decision log (none when no rollout was ever made)."""
        if rollout is not None:
            self.store.append([Event(rollout.id, self.clock.now(), kind, "controller", message, data or {})])

    # -- operator actions -------------------------------------------------------------------------------
    async def start_rollout(self, config: RolloutConfig, *, actor: str) -> Rollout:
        if self.snapshot is None:
            raise RolloutError(f"nothing is serving yet: {self.last_error}")
        stable = config.stable_version or self.snapshot.stable.version
        if stable != self.snapshot.stable.version:
            raise RolloutError(f"stable_version {stable} is not the serving version {self.snapshot.stable.version}")
        # Load the candidate first: a version that cannot load never starts a rollout.
        try:
            await self.cache.ensure(config.candidate_version, retry_failed=True)
        except ModelUnavailable as err:
            raise RolloutError(f"candidate v{config.candidate_version} cannot be served: {err}") from None
        rollout, events = engine.start(
            config, model_name=self.model_name, stable_version=stable, now=self.clock.now(), actor=actor
        )
        try:
            stored = await asyncio.to_thread(self.store.create, rollout, events)
        except ConflictError as err:
            raise RolloutError(str(err)) from None
        await self.sync()
        return stored

    async def act(self, rollout_id: str, action: str, *, actor: str, force: bool = False) -> Rollout:
        rollout = await asyncio.to_thread(self.store.get, rollout_id)
        if rollout is None:
            raise LookupError(f"no rollout {rollout_id}")
        now = self.clock.now()
        if action == "pause":
            new, events = engine.pause(rollout, now=now, actor=actor)
        elif action == "resume":
            new, events = engine.resume(rollout, now=now, actor=actor)
        elif action == "promote":
            new, events = engine.promote(rollout, now=now, actor=actor, force=force)
        elif action == "abort":
            new, events = engine.abort(rollout, now=now, actor=actor)
        else:
            raise RolloutError(f"unknown action '{action}'")
        try:
            stored = await asyncio.to_thread(self.store.update, new, events, expected_revision=rollout.revision)
        except ConflictError as err:
            raise RolloutError(f"{err}; try again") from None
        if stored.phase == "promoted":
            await asyncio.to_thread(self.converge_registry)
        await self.sync()
        return stored

    async def rollback(self, *, actor: str) -> dict[str, Any]:
        """Undo the last promotion: make the previous version stable again (one command)."""
        row = await asyncio.to_thread(self.store.serving_row, self.model_name)
        latest = await asyncio.to_thread(self.store.latest, self.model_name)
        history = await asyncio.to_thread(self.store.events, latest.id) if latest else []
        stable, previous = (row.stable, row.previous) if row else (None, None)
        refusal = engine.rollback_refusal(
            latest,
            rolled_back_at=max((e.ts for e in history if e.kind == "rollback"), default=None),
            stable=stable,
            previous=previous,
            changed_at=row.updated_at if row else 0.0,
        )
        if refusal is not None:
            raise RolloutError(refusal)
        assert stable is not None and previous is not None  # else refused above
        current = stable
        try:
            await self.cache.ensure(previous, retry_failed=True)
        except ModelUnavailable as err:
            raise RolloutError(f"previous v{previous} cannot be served: {err}") from None
        now = self.clock.now()
        # The change and its decision-log line in one transaction; the registry follows (an intent).
        logged = [Event(latest.id, now, "rollback", actor, f"rolled back: v{current} -> v{previous}")] if latest else []
        try:
            await asyncio.to_thread(
                self.store.set_stable, self.model_name, previous, now=now, from_registry=False, events=logged
            )
        except ConflictError as err:
            raise RolloutError(str(err)) from None
        await asyncio.to_thread(self.converge_registry)
        await self.sync()
        return {"stable_version": previous, "previous_version": current}

    async def reload(self) -> dict[str, Any]:
        """Serve the registry's current champion (outside rollouts: the retraining flow's path)."""
        champion = await asyncio.to_thread(self.source.alias_version, self.model_name, "champion")
        if champion is None:
            raise ModelUnavailable(f"registry has no 'champion' for model '{self.model_name}' yet: train one")
        await self.cache.ensure(champion, retry_failed=True)
        previous = self.snapshot.stable.version if self.snapshot else None
        try:
            await asyncio.to_thread(
                self.store.set_stable, self.model_name, champion, now=self.clock.now(), from_registry=True
            )
        except ConflictError as err:
            raise RolloutError(str(err)) from None
        await self.sync()
        return {"model_name": self.model_name, "model_version": champion, "previous_version": previous}
