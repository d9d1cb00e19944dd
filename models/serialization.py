"""Loading a scikit-learn model saved with skops: which types to trust, and a cheap import of skops.

skops rebuilds a model from a description of its objects and refuses any type
it is not told to trust, so a model file cannot run code of its choosing the
way a pickle can. Which types to trust is decided here, by the project, not by
the file: MLflow trusts whatever the model's own MLmodel lists.
"""

from __future__ import annotations

import sys
from typing import Any

# The project's transformers, scikit-learn and NumPy. skops's own defaults (built-in
# containers, NumPy arrays and dtypes, SciPy ufuncs) stay trusted besides these.
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "models.")


class UntrustedModelError(ValueError):
    """The model file holds a type outside the trusted prefixes."""


def trusted_types(listed: list[str], *, prefixes: tuple[str, ...] = TRUSTED_TYPE_PREFIXES) -> list[str]:
    """``listed`` if every type in it is within ``prefixes``; refuses the model otherwise."""
    refused = [t for t in listed if not t.startswith(prefixes)]
    if refused:
        raise UntrustedModelError(f"the model holds types outside {list(prefixes)}: {refused}")
    return listed


def load_skops(data: bytes) -> Any:
    """The model in a skops file, if every type it holds that skops does not trust by default is ours to trust."""
    import_skops()
    import skops.io

    return skops.io.loads(data, trusted=trusted_types(skops.io.get_untrusted_types(data=data)))


def import_skops() -> None:
    """Import skops without the half-second its import spends on lists this project does not use.

    On import skops builds its default trust lists: it imports every scikit-learn module to list
    all estimators (~0.5 s), then names each of SciPy's ~400 ufuncs by searching every loaded
    module for it, in import order. ``load_skops`` decides trust from the prefixes above, so the
    estimator list may be empty: skops is imported while scikit-learn lists none (the function
    is put back at once). ``load_skops`` imports skops this way; a process that imported skops
    already keeps it as it is.
    """
    if "skops.io" in sys.modules:
        return
    import sklearn.utils

    all_estimators = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    try:
        import skops.io  # noqa: F401
    finally:
        sklearn.utils.all_estimators = all_estimators


def _no_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    return []
