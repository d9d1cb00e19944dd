"""Tokens and secrets: real secrets outside dev mode, dev mode off by default, secrets from files, two roles."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import SecretFileError
from services.serving.security import refusal
from services.serving.settings import ServingSettings

SECRET, READER = "a" * 24, "r" * 24


@pytest.mark.parametrize("token", ["dev-admin-token", "change-me", "short-token"])
def test_public_or_weak_tokens_are_refused_outside_dev_mode(tmp_path, token):
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_TOKEN must be set to a secret of at least 16"):
        ServingSettings(state_dir=tmp_path, dev_mode=False, admin_token=token)
    with pytest.raises(ValidationError, match="MLOPS_READ_TOKEN must be set to a secret"):
        ServingSettings(state_dir=tmp_path, dev_mode=False, admin_token=SECRET, read_token=token)


def test_a_real_secret_is_accepted_and_dev_mode_allows_the_default(tmp_path):
    assert ServingSettings(state_dir=tmp_path, dev_mode=False, admin_token=SECRET).admin_token == SECRET
    assert ServingSettings(state_dir=tmp_path, dev_mode=True).admin_token == "dev-admin-token"


def test_dev_mode_is_off_unless_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_DEV_MODE", raising=False)  # the test suite turns it on for its services
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_TOKEN must be set"):
        ServingSettings(state_dir=tmp_path)


def test_one_token_for_both_roles_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="must differ from MLOPS_ADMIN_TOKEN"):
        ServingSettings(state_dir=tmp_path, dev_mode=True, admin_token=SECRET, read_token=SECRET)


def test_secrets_are_read_from_files_as_docker_secrets_hand_them_over(tmp_path, monkeypatch):
    secret = tmp_path / "admin_token"
    secret.write_text(SECRET + "\n")  # `echo` and editors end the file with a newline
    monkeypatch.delenv("MLOPS_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN_FILE", str(secret))
    assert ServingSettings(state_dir=tmp_path, dev_mode=False).admin_token == SECRET
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", SECRET)
    with pytest.raises(SecretFileError, match="both MLOPS_ADMIN_TOKEN and MLOPS_ADMIN_TOKEN_FILE are set"):
        ServingSettings(state_dir=tmp_path)
    monkeypatch.delenv("MLOPS_ADMIN_TOKEN")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretFileError, match=r"MLOPS_ADMIN_TOKEN_FILE=.*missing cannot be read"):
        ServingSettings(state_dir=tmp_path)


@pytest.mark.parametrize(
    ("presented", "method", "code"),
    [
        (None, "GET", 401),
        ("wrong", "GET", 403),
        (SECRET[:-1], "POST", 403),  # a prefix of the secret is as wrong as anything else
        (SECRET, "POST", None),
        (READER, "GET", None),
        (READER, "POST", 403),
    ],
)
def test_who_may_call_what(presented, method, code):
    problem = refusal(presented, admin=SECRET, read=READER, method=method)
    assert (problem and problem.status_code) == code
