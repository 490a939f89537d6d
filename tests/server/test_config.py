"""The endpoint refuses to start without a way to authorise requests or without its folders."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crashsight.errors import ConfigurationError
from crashsight.server import JobList, crashsight_app

from .conftest import TOKEN, TOKEN_ENV, serving


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({}, "needs a bearer token", id="nothing"),
        pytest.param({"token_env": "CRASHSIGHT_UNSET_VARIABLE"}, "is not set", id="unset-env"),
        pytest.param({"token_env": "SHORT_TOKEN_ENV"}, "fewer than 16", id="short-env"),
        pytest.param(
            {"token_env": TOKEN_ENV, "token": lambda: TOKEN}, "not both", id="both-sources"
        ),
        pytest.param(
            {"token_env": TOKEN_ENV, "unauthenticated": True}, "contradicts", id="contradiction"
        ),
    ],
)
def test_no_token_means_no_app(
    folders: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, object],
    message: str,
) -> None:
    """Missing, short or contradictory auth options are a ConfigurationError at construction."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("SHORT_TOKEN_ENV", "abc123")
    monkeypatch.delenv("CRASHSIGHT_UNSET_VARIABLE", raising=False)
    with pytest.raises(ConfigurationError, match=message):
        crashsight_app(*folders, **options)  # type: ignore[arg-type]


def test_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    """A typo in a folder fails when the app is built, not on the first request."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        crashsight_app(tmp_path / "nope", unauthenticated=True)


def test_token_callable_is_asked_on_every_request(folders: tuple[Path, Path]) -> None:
    """A host app's callable can rotate the token; a short one locks everyone out."""
    current = [TOKEN]
    app = crashsight_app(*folders, token=lambda: current[0])
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).is_success
        current[0] = "rotated-" + TOKEN
        assert client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert client.get("/jobs", headers={"Authorization": f"Bearer {current[0]}"}).is_success
        current[0] = "short"
        assert client.get("/jobs", headers={"Authorization": "Bearer short"}).status_code == 401


def test_unauthenticated_serves_without_a_token(folders: tuple[Path, Path]) -> None:
    """With ``unauthenticated=True`` the host app's own auth is trusted: no header needed."""
    reports, logs = folders
    (reports / "r1.running").write_text("")
    app = crashsight_app(reports, logs, unauthenticated=True)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = client.get("/jobs")
    assert response.status_code == 200
    assert [job.job_id for job in JobList.model_validate_json(response.content).jobs] == ["r1"]
