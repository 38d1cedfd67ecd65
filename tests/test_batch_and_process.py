"""Batch scoring and training from the log through the CLI, and the service as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from models import store
from pipeline.cli import app
from pipeline.settings import get_settings
from tests.conftest import ADMIN_KEY, AUTH, ROOT


@pytest.fixture
def cli_env(serve_settings, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SAL_TRACKING_URI", serve_settings.tracking_uri)
    monkeypatch.setenv("SAL_CACHE_DIR", str(tmp_path / "model-cache"))
    get_settings.cache_clear()
    yield serve_settings
    get_settings.cache_clear()


def test_batch_scores_match_the_api(cli_env, client, builtin_csv, tmp_path) -> None:
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["score", str(builtin_csv), "-o", str(out), "--reasons"])
    assert result.exit_code == 0, result.output
    assert "scored 11,997 leads" in result.stdout and "3 rows rejected" in result.stdout
    scored = pd.read_csv(out, keep_default_na=False).set_index("lead_id")
    assert (tmp_path / "scored.rejects.csv").exists()
    leads = pd.read_csv(builtin_csv, dtype=str, keep_default_na=False).tail(5)
    body = [
        {k: (v or None) for k, v in row.items() if k in _lead_fields()}
        for row in leads.to_dict("records")
    ]
    api = client.post("/v1/leads/score", json=body, headers=AUTH).json()["scores"]
    for result in api:
        row = scored.loc[result["lead_id"]]
        assert row["p_accept"] == pytest.approx(result["p_accept"], abs=1e-6)
        assert (row["tier"], row["route"]) == (result["tier"], result["route"])
        assert row["rule_score"] == pytest.approx(result["rules"]["total"], abs=0.01)
    assert scored["reasons"].str.contains(": [+-]", regex=True).all()


def test_train_from_the_scoring_log(cli_env, client, leads, tmp_path, monkeypatch) -> None:
    batch = [{**lead, "lead_id": f"LOGTRAIN-{i}"} for i, lead in enumerate(leads * 20)]
    decided = [{"lead_id": f"LOGTRAIN-{i}", "accepted": i % 3 != 0} for i in range(700)]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for start in range(0, len(batch), 50):  # the fixture's max_batch
        client.post("/v1/leads/score", json=batch[start : start + 50], headers=AUTH)
        if start < len(decided):
            outcomes = decided[start : start + 50]
            assert client.post("/v1/outcomes", json=outcomes, headers=admin).status_code == 200
    monkeypatch.setenv("SAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAL_MODEL_NAME", "from-log")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "train.yaml").write_text((ROOT / "data/config/train.yaml").read_text())
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--from-log",
            cli_env.database_url,
            "--spec",
            "data/specs/builtin.yaml",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    engine = store.connect(cli_env.database_url)
    with engine.connect() as connection:  # other tests share this database: count them all
        decided = connection.execute(select(func.count()).select_from(store.outcomes)).scalar()
    engine.dispose()
    assert decided >= 700 and summary["data"]["labelled"] == decided
    kept = summary["data"]["rows_read"] - summary["data"]["rows_rejected"]
    assert summary["data"]["undecided"] == kept - decided
    assert summary["model_name"] == "from-log"
    assert list((tmp_path / "from-log").glob("scoring-log-*.csv"))


def _lead_fields() -> set[str]:
    from models.spec import load_spec

    return set(load_spec(ROOT / "data/specs/builtin.yaml").lead_columns)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_process(serve_settings, tmp_path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "SAL_TRACKING_URI": serve_settings.tracking_uri,
        "SAL_MODEL_NAME": serve_settings.model_name,
        "SAL_SCORE_KEYS": "proc-key",
        "SAL_DATABASE_URL": f"sqlite:///{tmp_path / 'proc.db'}",
        "SAL_RELOAD_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        request = urllib.request.Request(
            f"{base}/v1/leads/score",
            method="POST",
            data=json.dumps({"lead_id": "P1"}).encode(),
            headers={"Authorization": "Bearer proc-key", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            (result,) = json.load(response)["scores"]
        assert result["lead_id"] == "P1" and 0 < result["p_accept"] < 1
        _check_raw_http(port)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _check_raw_http(port: int) -> None:
    """What a client sees on the wire from `sal serve` (urllib's `Connection: close` request
    above covers a close right after the answer): answers on a kept-alive connection, from the
    express lane, a HEAD answer, an interim 100 Continue and a big routed answer."""
    body = json.dumps({"lead_id": "P2"}).encode()
    score = (
        f"POST /v1/leads/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer proc-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        reader = connection.makefile("rb")
        for _ in range(3):  # one connection, several requests
            connection.sendall(score + b"\r\n" + body)
            status, headers, content = _response(reader)
            assert status == 200 and headers["content-type"] == "application/json"
            assert json.loads(content)["scores"][0]["lead_id"] == "P2"
        connection.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = _response(reader, head=True)
        assert status in (200, 405)  # answered at once, whatever the route allows
        connection.sendall(score + b"Expect: 100-continue\r\n\r\n")
        assert reader.readline().startswith(b"HTTP/1.1 100 ")  # before the body is sent
        assert reader.readline() == b"\r\n"
        connection.sendall(body)
        status, _, content = _response(reader)
        assert status == 200 and json.loads(content)["scores"][0]["lead_id"] == "P2"
        connection.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, content = _response(reader)
        assert status == 200 and "/v1/leads/score" in json.loads(content)["paths"]


def _response(reader, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, headers, body) read off a socket file."""
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) != b"\r\n":
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", 0))
    return status, headers, reader.read(length)


def _wait_ready(base: str, process: subprocess.Popen) -> None:
    for _ in range(120):  # up to 60 s: start-up imports MLflow and loads the model
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode())
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise AssertionError("service did not become ready in 60 s")
