"""Outside dev mode the admin token must be a real secret: not the default, not the placeholder, not short."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.serving.settings import ServingSettings


@pytest.mark.parametrize("token", ["dev-admin-token", "change-me", "short-token"])
def test_public_or_weak_tokens_are_refused_outside_dev_mode(tmp_path, token):
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_TOKEN must be set to a secret of at least 16"):
        ServingSettings(state_dir=tmp_path, dev_mode=False, admin_token=token)


def test_a_real_secret_is_accepted_and_dev_mode_allows_the_default(tmp_path):
    assert ServingSettings(state_dir=tmp_path, dev_mode=False, admin_token="x" * 24).admin_token == "x" * 24
    assert ServingSettings(state_dir=tmp_path, dev_mode=True).admin_token == "dev-admin-token"
