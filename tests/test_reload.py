"""Hot reload: the alias moves, the service swaps atomically, requests in flight never fail."""

from __future__ import annotations

import dataclasses
import threading
import time

import mlflow
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serving.app import create_app
from serving.reload import ModelHolder, load_champion
from tests.conftest import ADMIN_KEY, AUTH

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_reload_under_concurrent_requests(serve_settings, leads) -> None:
    settings = serve_settings.model_copy(update={"reload_seconds": 0})
    mlflow.set_tracking_uri(settings.tracking_uri)
    registry = MlflowClient()
    before = registry.get_model_version_by_alias(settings.model_name, "champion").version
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    with TestClient(create_app(settings)) as client:

        def hammer() -> None:
            for _ in range(400):  # bounded: stops by itself even if the test misbehaves
                if stop.is_set():
                    return
                response = client.post("/v1/leads/score", json=leads[:3], headers=AUTH)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["scores"][0]["model_version"])

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.3)
            new = mlflow.register_model(
                f"models:/{settings.model_name}/{before}", settings.model_name
            ).version
            registry.set_registered_model_alias(settings.model_name, "champion", new)
            reloaded = client.post("/v1/admin/reload", headers=ADMIN).json()
            time.sleep(0.3)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            registry.set_registered_model_alias(settings.model_name, "champion", before)
    assert reloaded == {"model_version": str(new), "changed": True, "error": None}
    assert statuses and set(statuses) == {200}, f"failed requests: {set(statuses)}"
    assert versions == {str(before), str(new)}


def test_failed_load_keeps_the_old_model(serve_settings) -> None:
    first = load_champion(serve_settings)
    calls = {"n": 0}

    def flaky(_settings):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("artifact store unreachable")
        return first

    holder = ModelHolder(serve_settings, loader=flaky, version_of=lambda _s: "999")
    with TestClient(create_app(serve_settings, holder)) as client:
        response = client.post("/v1/admin/reload", headers=ADMIN).json()
        assert response == {
            "model_version": first.version,
            "changed": False,
            "error": "artifact store unreachable",
        }
        assert client.get("/ready").status_code == 200
        assert client.post("/v1/leads/score", json={}, headers=AUTH).status_code == 200


def test_poller_picks_up_a_moved_alias(serve_settings) -> None:
    first = load_champion(serve_settings)
    target = {"version": first.version}

    def load(_settings):
        return dataclasses.replace(first, version=target["version"])

    settings = serve_settings.model_copy(update={"reload_seconds": 0.05})
    holder = ModelHolder(settings, loader=load, version_of=lambda _s: target["version"])
    with TestClient(create_app(settings, holder)) as client:
        target["version"] = "42"
        for _ in range(100):
            if client.get("/ready").json()["model_version"] == "42":
                break
            time.sleep(0.05)
        assert client.get("/ready").json()["model_version"] == "42"


def test_reload_needs_the_admin_role(client) -> None:
    assert client.post("/v1/admin/reload").status_code == 401
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 403
