from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import USECASES


@pytest.fixture
def bike_yaml() -> dict[str, Any]:
    return yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
