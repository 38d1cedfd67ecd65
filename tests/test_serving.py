"""The scoring API through the ASGI app: contract, errors, auth, readiness and no skew."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.reload import ModelHolder, load_champion
from serving.schemas import ScoreResponse
from serving.scoring import FAST_PATH_MAX
from tests.conftest import ADMIN_KEY, AUTH


def test_health_and_ready(client, trained) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model_version"] == trained[0].model_version


def test_score_one_lead(client, leads) -> None:
    response = client.post("/v1/leads/score", json=leads[0], headers=AUTH)
    assert response.status_code == 200, response.text
    (result,) = response.json()["scores"]
    assert result["lead_id"] == leads[0]["lead_id"] and 0 < result["p_accept"] < 1
    assert 0 < result["p_sql"] < 1 and result["tier"] in "ABCD"
    assert result["route"] in ("sales", "nurture")
    assert (result["sla_hours"] == 24) == (result["route"] == "sales")
    weights = {c["name"]: c["weight"] for c in result["rules"]["criteria"]}
    assert weights == {"completeness": 20, "icp_fit": 30, "lead_score": 25, "readiness": 25}
    assert result["rules"]["total"] == pytest.approx(
        sum(c["score"] for c in result["rules"]["criteria"]), abs=0.05
    )
    assert result["reasons"] is None and result["criteria_version"].startswith("1.0.0+")


def test_batch_scores_equal_the_pyfunc(client, leads, serve_settings) -> None:
    response = client.post("/v1/leads/score", json=leads, headers=AUTH)
    api = [s["p_accept"] for s in response.json()["scores"]]
    mlflow.set_tracking_uri(serve_settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{serve_settings.model_name}@champion")
    frame = pd.DataFrame(leads)
    for name in ("demo_requested", "pricing_requested", "contact_me"):
        frame[name] = frame[name].map({True: "true", False: "false", None: None})
    expected = pyfunc.predict(frame)["p_accept"].round(6).tolist()
    assert api == pytest.approx(expected, abs=1e-6)


def test_reasons_name_the_leads_own_fields(client, leads, builtin_spec) -> None:
    response = client.post("/v1/leads/score?reasons=true", json=leads[:5], headers=AUTH)
    known = set(builtin_spec.fields) | {"mql_weekday", "mql_days_to_month_end"}
    for result in response.json()["scores"]:
        assert result["reasons"], "every lead gets reasons"
        for reason in result["reasons"]:
            assert reason["field"] in known and reason["direction"] in "+-"
            assert reason["text"].startswith(reason["field"].replace("_", " "))
        ups = [r for r in result["reasons"] if r["direction"] == "+"]
        assert all(r["weight"] > 0 for r in ups)


def test_unknown_category_and_missing_fields_are_scored(client) -> None:
    response = client.post("/v1/leads/score", json={"industry": "space_mining"}, headers=AUTH)
    assert response.status_code == 200
    (result,) = response.json()["scores"]
    completeness = result["rules"]["criteria"][0]
    # one of five firmographic fields given: 1/5 of that rule's 3 points, out of 11, x 20
    assert completeness["name"] == "completeness"
    assert completeness["score"] == pytest.approx(20 * (3 / 5) / 11, abs=0.01)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"web_visits": "many"}, "web_visits"),
        ({"lead_score": 250}, "lead_score"),
        ({"web_visits": -1}, "web_visits"),
        ({"demo_requested": "perhaps"}, "demo_requested"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"mql_at": "last tuesday"}, "mql_at"),
        ({"lead_id": "L1\u0000x"}, "lead_id"),  # would be logged as "L1"
        ({"job_title": "VP\u0000"}, "job_title"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, body, field) -> None:
    response = client.post("/v1/leads/score", json=body, headers=AUTH)
    assert response.status_code == 422
    assert any(field in map(str, error["loc"]) for error in response.json()["detail"])


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"web_visits": 1e309}', "web_visits"),  # valid JSON, read as infinity
        (b'{"lead_score": -1e309}', "lead_score"),
        (b'{"web_visits": Infinity}', "web_visits"),
        (b'{"web_visits": NaN}', "web_visits"),
        (b'{"demo_requested": NaN}', "demo_requested"),
        (b'[{"lead_score": 12}, {"lead_score": -Infinity}]', "lead_score"),
    ],
)
def test_numbers_must_be_finite_and_the_error_says_so(client, content, field) -> None:
    """Not a 500: an error that quotes an infinite input must still be valid JSON."""
    response = client.post(
        "/v1/leads/score", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert any(field in map(str, error["loc"]) for error in response.json()["detail"])


@pytest.mark.parametrize("content", [b'{"industry": ', b'{"industry": "\xff"}', b"not json \xff"])
def test_malformed_json_is_a_422(client, content) -> None:
    response = client.post(
        "/v1/leads/score", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_oversize_batch_is_a_413(client, leads) -> None:
    response = client.post("/v1/leads/score", json=[leads[0]] * 51, headers=AUTH)
    assert response.status_code == 413 and "maximum is 50" in response.json()["detail"]


def test_oversize_body_is_a_413(client) -> None:
    response = client.post(
        "/v1/leads/score",
        content=b"[" + b"{}," * 1_000_000 + b"{}]",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(("headers", "code"), [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_scoring_needs_a_key(client, headers, code) -> None:
    assert client.post("/v1/leads/score", json={}, headers=headers).status_code == code


def test_admin_key_may_score(client) -> None:
    response = client.post(
        "/v1/leads/score", json={}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 200


def test_no_model_means_503_not_500(serve_settings) -> None:
    def broken(_settings):
        raise RuntimeError("registry unreachable")

    holder = ModelHolder(serve_settings, loader=broken, version_of=broken)
    with TestClient(create_app(serve_settings, holder)) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and "registry unreachable" in ready.json()["detail"]
        assert client.post("/v1/leads/score", json={}, headers=AUTH).status_code == 503


def test_openapi_request_model_comes_from_the_spec(client, builtin_spec) -> None:
    schema = client.get("/openapi.json").json()
    (lead,) = [s for name, s in schema["components"]["schemas"].items() if name.startswith("Lead_")]
    assert set(lead["properties"]) == {"lead_id", "mql_at", *builtin_spec.fields}
    assert "software" in lead["properties"]["industry"]["description"]
    assert lead["properties"]["lead_score"]["anyOf"][0]["maximum"] == 100


def test_champion_loader_reads_the_registry(serve_settings, trained) -> None:
    loaded = load_champion(serve_settings)
    assert loaded.version == trained[0].model_version
    # the routing threshold is the policy chosen at training time, stored on the version
    assert loaded.routing_threshold == trained[0].routing["policy"]["threshold"] != 0.5


def test_champion_from_another_spec_is_refused(serve_settings, tmp_path) -> None:
    spec = tmp_path / "narrow.yaml"
    spec.write_text(
        "name: narrow\nid: lead_id\nfields: {industry: {type: categorical}}\n"
        "labels: {accepted: {column: s, positive: [a], negative: [r]}}\n"
        "split: {method: stratified}\n"
    )
    settings = serve_settings.model_copy(update={"spec_path": spec})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503 and "does not have" in ready.json()["detail"]


def test_scoring_flag_and_key_are_checked_like_declared_parameters(client, leads) -> None:
    bad_flag = client.post("/v1/leads/score?reasons=perhaps", json=leads[0], headers=AUTH)
    assert bad_flag.status_code == 422
    assert bad_flag.json()["detail"][0]["loc"] == ["query", "reasons"]
    token = AUTH["Authorization"].split(" ", 1)[1]
    lower = client.post(
        "/v1/leads/score", json=leads[0], headers={"authorization": f"bearer {token}"}
    )
    assert lower.status_code == 200
    basic = client.post(
        "/v1/leads/score", json=leads[0], headers={"Authorization": f"Basic {token}"}
    )
    assert basic.status_code == 401


def test_answers_match_the_documented_response_schema(client, leads) -> None:
    for reasons in ("false", "true"):
        response = client.post(f"/v1/leads/score?reasons={reasons}", json=leads[:3], headers=AUTH)
        parsed = ScoreResponse.model_validate_json(response.content)  # strict round trip
        assert parsed.model_dump(mode="json") == response.json()
        assert (parsed.scores[0].reasons is not None) == (reasons == "true")


def test_one_lead_at_a_time_answers_like_a_big_batch(client, leads) -> None:
    """Small requests (the hot path, answers built as plain data) and big batches (the frame
    path, answers built as validated objects) give every lead the very same answer."""
    assert len(leads) > FAST_PATH_MAX
    for reasons in ("false", "true"):
        path = f"/v1/leads/score?reasons={reasons}"
        batch = client.post(path, json=leads, headers=AUTH).json()["scores"]
        one_by_one = [
            client.post(path, json=lead, headers=AUTH).json()["scores"][0] for lead in leads
        ]
        assert one_by_one == batch


def test_openapi_documents_the_scoring_operation(client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/leads/score"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    lead_ref = body[0]["$ref"].rsplit("/", 1)[-1]
    assert lead_ref.startswith("Lead_") and lead_ref in schema["components"]["schemas"]
    assert body[1]["items"]["$ref"] == body[0]["$ref"]
    assert [p["name"] for p in operation["parameters"]] == ["reasons"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["$ref"].endswith("/ScoreResponse")


def test_the_champions_card_and_report_are_served(client, trained) -> None:
    info = client.get("/v1/model", headers=AUTH)
    assert info.status_code == 200
    body = info.json()
    policy = trained[0].routing["policy"]
    assert body["model_version"] == trained[0].model_version
    assert body["routing_threshold"] == policy["threshold"] == body["routing_policy"]["threshold"]
    assert body["card"]["top_features"] and body["card"]["limits"]
    pages = {url: client.get(url, headers=AUTH) for url in (body["report_url"], body["card_url"])}
    for page in pages.values():
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    report, card = pages.values()
    assert "Routing policy" in report.text and 'data-figure="roc-curve' in report.text
    assert "Known limits" in card.text and policy["note"] in card.text
    assert client.get("/v1/model/card").status_code == 401


def test_the_express_lane_answers_valid_leads_like_the_route(serve_settings, leads) -> None:
    """Valid small requests are answered before routing, with the route's very bytes; anything
    else (bad key, bad body, bad flag, big batch) reaches the declared route."""
    express = create_app(serve_settings)
    routed = create_app(serve_settings.model_copy(update={"express_lane": False}))
    reached_router: list[str] = []
    lane = express._lane
    inner = lane.app

    async def counting(scope, receive, send):
        if scope["type"] == "http":
            reached_router.append(scope["path"])
        await inner(scope, receive, send)

    lane.app = counting
    one = leads[0]
    cases = [
        ("/v1/leads/score", one, AUTH, True),
        ("/v1/leads/score?reasons=true", one, AUTH, True),
        ("/v1/leads/score", leads[:3], AUTH, True),
        ("/v1/leads/score", one, {"Authorization": "Bearer wrong"}, False),
        ("/v1/leads/score", one, {}, False),
        ("/v1/leads/score?reasons=maybe", one, AUTH, False),
        ("/v1/leads/score", {**one, "company_size": 7}, AUTH, False),
        ("/v1/leads/score", leads[:25], AUTH, False),  # over the hot path's batch size
    ]
    with TestClient(express) as fast, TestClient(routed) as slow:
        for path, body, headers, in_lane in cases:
            before = len(reached_router)
            a, b = (
                fast.post(path, json=body, headers=headers),
                slow.post(path, json=body, headers=headers),
            )
            assert a.status_code == b.status_code, (path, a.text, b.text)
            assert a.headers["content-type"] == b.headers["content-type"]
            assert a.content == b.content, path
            assert (len(reached_router) == before) is in_lane, (path, body)
