"""Great Expectations validation: a suite built from the use case, row-level verdicts, Data Docs.

``build_suite`` is pure (use case -> suite definition) and unit-tested; the
``GxValidator`` runs it on a typed batch and reports, per row, which
expectations it failed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.usecase import UseCase
from pipelines.batches import ROW_NUMBER

log = logging.getLogger(__name__)


def build_suite(use_case: UseCase) -> dict[str, Any]:
    """The expectation suite, in Great Expectations' own JSON form."""
    expectations: list[dict[str, Any]] = []
    for name, spec in use_case.schema_.columns.items():
        if not spec.nullable:
            expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": name}})
        if spec.min is not None or spec.max is not None:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": name, "min_value": spec.min, "max_value": spec.max},
                }
            )
        if spec.categories:
            expectations.append(
                {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": name, "value_set": spec.categories}}
            )
    expectations.extend(e.model_dump() for e in use_case.validation.expectations)
    return {"name": use_case.validation.suite_name, "expectations": expectations}


def describe_expectation(kind: str, kwargs: dict[str, Any]) -> str:
    """A short reason such as ``expect_column_values_to_be_between(temp, min=0, max=1)``."""
    cols = kwargs.get("column") or ",".join(str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs)
    extra = []
    if "min_value" in kwargs or "max_value" in kwargs:
        extra.append(f"min={kwargs.get('min_value')}, max={kwargs.get('max_value')}")
    if "value_set" in kwargs:
        extra.append(f"in {kwargs['value_set']}")
    inner = ", ".join([str(cols), *extra]) if cols else ", ".join(extra)
    return f"{kind}({inner})"


@dataclass
class ValidationOutcome:
    failures: dict[int, list[str]]  # row number -> failed expectations
    success: bool
    statistics: dict[str, Any]
    docs_index: Path | None


class GxValidator:
    """A file-backed GX context under the state directory, so Data Docs keep each batch's history."""

    _RESULT_FORMAT = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [ROW_NUMBER],
        "return_unexpected_index_query": False,
    }

    def __init__(self, *, context_root: Path, docs_dir: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        context_root.mkdir(parents=True, exist_ok=True)
        self._ctx = gx.get_context(mode="file", project_root_dir=str(context_root))
        self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._docs_dir = docs_dir.resolve()
        self._checkpoints: dict[str, dict[bool, Any]] = {}
        if "local" not in self._ctx.get_site_names():
            self._ctx.add_data_docs_site(
                site_name="local",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(self._docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )

    def _checkpoint(self, use_case: UseCase, *, docs: bool) -> Any:
        """The use case's checkpoint, set up once per suite (a batch read in chunks runs it per chunk);
        a changed YAML gets its suite rebuilt, in a long-lived worker too."""
        key = json.dumps(build_suite(use_case), sort_keys=True, default=str)
        if key not in self._checkpoints:
            self._checkpoints[key] = self._new_checkpoints(use_case)
        return self._checkpoints[key][docs]

    def _new_checkpoints(self, use_case: UseCase) -> dict[bool, Any]:
        """Two checkpoints of one suite: with the Data Docs action, and without (the later chunks)."""
        gx = self._gx
        ctx = self._ctx
        source_name = f"{use_case.name}_batches"
        try:
            source = ctx.data_sources.get(source_name)
        except (KeyError, ValueError):
            source = ctx.data_sources.add_pandas(source_name)
        try:
            asset = source.get_asset("batch")
        except LookupError:
            asset = source.add_dataframe_asset("batch")
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, ValueError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")

        # The suite is rebuilt from the YAML each run, so the YAML stays the one source of truth.
        suite_def = build_suite(use_case)
        try:
            ctx.suites.delete(suite_def["name"])
        except Exception:  # noqa: BLE001 - GX raises several types for "absent"
            pass
        suite = ctx.suites.add(gx.ExpectationSuite(**suite_def))

        vd_name = f"{use_case.name}_vd"
        try:
            ctx.validation_definitions.delete(vd_name)
        except Exception:  # noqa: BLE001
            pass
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=vd_name, data=batch_def, suite=suite))
        checkpoints = {}
        for docs in (True, False):
            cp_name = f"{use_case.name}_checkpoint" + ("" if docs else "_quiet")
            try:
                ctx.checkpoints.delete(cp_name)
            except Exception:  # noqa: BLE001
                pass
            actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local"])] if docs else []
            checkpoints[docs] = ctx.checkpoints.add(
                gx.Checkpoint(
                    name=cp_name, validation_definitions=[vd], result_format=self._RESULT_FORMAT, actions=actions
                )
            )
        return checkpoints

    def validate(self, frame: pd.DataFrame, use_case: UseCase, *, docs: bool = True) -> ValidationOutcome:
        """Run the use case's suite on ``frame``; with ``docs``, the Data Docs get the run too."""
        checkpoint = self._checkpoint(use_case, docs=docs)
        result = checkpoint.run(batch_parameters={"dataframe": frame.reset_index(drop=True)})
        failures: dict[int, list[str]] = {}
        statistics: dict[str, Any] = {}
        for vr in result.run_results.values():
            statistics = dict(vr.statistics)
            for r in vr.results:
                if r.success:
                    continue
                cfg = r.expectation_config
                reason = describe_expectation(cfg.type, dict(cfg.kwargs))
                rows = r.result.get("unexpected_index_list") or []
                if not rows and r.exception_info and r.exception_info.get("raised_exception"):
                    raise RuntimeError(
                        f"expectation {reason} could not run: {r.exception_info.get('exception_message')}"
                    )
                for entry in rows:
                    failures.setdefault(int(entry[ROW_NUMBER]), []).append(reason)
        index = self._docs_dir / "index.html"
        return ValidationOutcome(failures, bool(result.success), statistics, index if index.exists() else None)
