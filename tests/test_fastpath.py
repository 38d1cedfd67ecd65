"""The single-lead hot path gives exactly what the frame path (training, pyfunc, batch) gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.decision import route_of, tier_of
from models.fastpath import LeadScorer
from models.features import normalize, redact_personal
from models.spec import load_spec
from pipeline.load import load_leads
from tests.conftest import ROOT

ODD_VALUES = {
    "industry": ["SOFTWARE", " retail ", "Select", "space_mining", None, "", "İnsurance"],
    "email": [
        *("Dana@ACME.io", "x@gmail.com", "s@uni.edu", "john@", "n/a", None, "a@b@c.com"),
        # Unicode and ASCII control whitespace in the user name; a non-ASCII user and domain
        *("a\u00a0b@acme.com", "a\x1cb@acme.com", "Ünal@acme.com", "x@İnfo.com"),
    ],
    "phone": [
        *("+1 (415) 555-0100", "000", "1111111", "", None, "12345678901234567"),
        # Arabic-Indic and full-width digits
        *("١٢٣٤٥٦٧٨", "+1 \uff12\uff10\uff12 \uff15\uff15\uff15 \uff10\uff11\uff10\uff10"),
    ],
    "web_visits": ["1,200", "7", 3.0, -1, "lots", None, "inf", "unknown", "1_000", "١٢"],
    "demo_requested": [True, False, "Yes", "n", "maybe", None, "1", "İ"],
    "job_title": [
        *("VP, Engineering", "Geschäftsführer", "  head of IT ", None, "--"),
        *("İK Müdürü", "ΔΙΕΥΘΥΝΤΗΣ ΠΩΛΗΣΕΩΝ", "Directeur\u00a0Général"),  # Arrow lowercases these
    ],
    "first_name": ["Ann", "", None],
    "mql_at": [
        *("2026-01-31 23:59:00", "2026-02-01T00:30:00+02:00", "garbage", None),
        # past Python's datetime once in UTC; nanoseconds in a column with year 3000
        *("9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01", "3000-01-01"),
        "2262-04-11T23:47:16.854775807",
        *(1700000000, 0, True),  # not dates: seconds or milliseconds? nothing says
    ],
}


@pytest.fixture(scope="module")
def loaded(trained):
    """The session's registered champion, as the service and `sal score` load it."""
    from models.registry import load_by_alias

    summary, settings, _ = trained
    return load_by_alias(settings.tracking_uri, summary.model_name, "champion", 0.5)


@pytest.fixture(scope="module")
def model(loaded):
    return loaded.model


@pytest.fixture(scope="module")
def leads(builtin_csv) -> pd.DataFrame:
    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    frame = load_leads(builtin_csv, spec).frame.sample(1500, random_state=0)
    rng = np.random.default_rng(0)
    odd = frame.astype(object).copy()
    for column, values in ODD_VALUES.items():  # messy values the API or a file could send
        rows = rng.random(len(odd)) < 0.3
        odd.loc[rows, column] = rng.choice(np.array(values, dtype=object), rows.sum())
    return odd.reset_index(drop=True)


def test_fast_path_equals_frame_path(model, leads) -> None:
    scorer = LeadScorer(model)
    expected = model.predict(leads)
    clean = normalize(leads, model.spec)
    matrix = model.encoder.transform(clean)
    for i, lead in enumerate(leads.to_dict("records")):
        fast = scorer.score(lead)
        np.testing.assert_array_equal(fast.row[0], matrix[i], err_msg=f"lead {i}: {lead}")
        assert fast.p_accept == pytest.approx(expected.loc[i, "p_accept"], abs=1e-12)
        assert fast.p_sql == pytest.approx(expected.loc[i, "p_sql"], abs=1e-12)
        assert fast.rule_total == pytest.approx(expected.loc[i, "rule_score"], abs=1e-9)
        assert fast.rule_pass == expected.loc[i, "rule_pass"]
        for name, score in fast.breakdown.items():
            assert score == pytest.approx(expected.loc[i, f"criterion_{name}"], abs=1e-9)


def test_fast_clean_view_equals_frame_clean_view(model, leads) -> None:
    """Feature by feature, not only once encoded: a value outside the vocabulary encodes as
    "other" either way, and would hide a difference that matters once the value is in it."""
    scorer = LeadScorer(model)
    clean = normalize(leads, model.spec).astype(object)
    for i, lead in enumerate(leads.to_dict("records")):
        fast = scorer.clean(lead)
        expected = {k: None if pd.isna(v) else v for k, v in clean.loc[i].items()}
        assert {k: None if pd.isna(v) else v for k, v in fast.items()} == expected, lead


def test_leads_without_a_timestamp_column_score_like_single_leads_without_one(model, leads):
    without = leads.drop(columns=[model.spec.timestamp]).head(50)
    scores = model.predict(without)  # the frame path: time features missing, as for one lead
    scorer = LeadScorer(model)
    for i, lead in enumerate(without.to_dict("records")):
        assert scorer.score(lead).p_accept == pytest.approx(scores.loc[i, "p_accept"], abs=1e-12)


def test_fast_contributions_equal_lightgbm_contributions(model, leads) -> None:
    """The reasons' single-row TreeSHAP is LightGBM's own `pred_contrib` (bias dropped)."""
    scorer = LeadScorer(model)
    matrix = model.encoder.transform(normalize(leads.head(300), model.spec))
    expected = model.accept.booster.predict(matrix, pred_contrib=True)[:, :-1]
    assert np.abs(expected).sum(axis=1).min() > 0  # every lead has something to explain
    for i in range(len(matrix)):
        contributions = scorer.contributions(matrix[i : i + 1])
        np.testing.assert_array_equal(contributions, expected[i], err_msg=f"lead {i}")


def test_fast_redaction_equals_frame_redaction(model, leads) -> None:
    scorer = LeadScorer(model)
    frame = redact_personal(leads, model.spec)
    for i, lead in enumerate(leads.head(300).to_dict("records")):
        fast = scorer.redacted(lead)
        for name in model.spec.personal_fields:
            expected = frame.loc[i, name]
            assert fast[name] == (None if pd.isna(expected) else expected), (name, lead[name])


def test_batch_file_equals_the_api_paths(loaded, builtin_csv, tmp_path, monkeypatch) -> None:
    """`sal score`'s file (validated by the loader, scored in chunks, written by Arrow) says
    what the API's frame path says for every lead, and the hot path for a sample."""
    import pipeline.score as batch
    from models.scoring import score_frame

    monkeypatch.setattr(batch, "CHUNK_ROWS", 2_500)  # several chunks, two in flight
    report = batch.score_file(builtin_csv, loaded, tmp_path / "scored.csv")
    written = pd.read_csv(tmp_path / "scored.csv", keep_default_na=False, na_values=[""])
    raw = load_leads(builtin_csv, loaded.model.spec, labelled=False).frame
    api = score_frame(loaded, raw, 24).table
    assert report.rows_scored == len(written) == len(api) > 2 * batch.CHUNK_ROWS
    columns = ["p_accept", "p_sql", "rule_score", *api.filter(like="criterion_").columns]
    pd.testing.assert_frame_equal(written[columns].astype(float), api[columns], check_exact=True)
    for name in ("lead_id", "tier", "route", "rule_pass", "disagreement"):
        assert written[name].tolist() == api[name].tolist(), name
    scorer = LeadScorer(loaded.model)
    for i in np.random.default_rng(1).choice(len(raw), 200, replace=False):
        fast, row = scorer.score(raw.iloc[i].to_dict()), written.iloc[i]
        assert row["p_accept"] == pytest.approx(fast.p_accept, abs=5e-7)
        assert row["p_sql"] == pytest.approx(fast.p_sql, abs=5e-7)
        assert row["rule_score"] == pytest.approx(fast.rule_total, abs=5e-3)
        assert row["rule_pass"] == fast.rule_pass
        # The file's labels are categoricals built from codes: each must still be the lead's own.
        assert row["tier"] == tier_of(fast.p_accept)
        assert row["route"] == route_of(fast.p_accept, loaded.routing_threshold)


def test_refused_batch_file_leaves_the_output_as_it_was(
    loaded, builtin_csv, tmp_path, monkeypatch
) -> None:
    """Scored chunks go to a side file that replaces the output only once the whole file has
    passed: a file refused after its first chunks were scored writes nothing."""
    import pipeline.score as batch
    from pipeline.load import LoadError

    raw = pd.read_csv(builtin_csv, dtype=str, keep_default_na=False)
    raw.loc[len(raw) // 2 :, "web_visits"] = "lots"  # the second half: too many bad rows
    bad = tmp_path / "half-bad.csv"
    raw.to_csv(bad, index=False)
    output = tmp_path / "scored.csv"
    output.write_text("yesterday's scores\n")
    scored_chunks, score_clean = [], batch.score_clean

    def counting(*args, **kwargs):
        scored_chunks.append(len(args[1]))
        return score_clean(*args, **kwargs)

    monkeypatch.setattr(batch, "CHUNK_ROWS", 2_500)
    monkeypatch.setattr(batch, "score_clean", counting)
    with pytest.raises(LoadError, match="refused"):
        batch.score_file(bad, loaded, output, workers=0)  # in this process, to count the chunks
    assert len(scored_chunks) >= 2 and sum(scored_chunks[:2]) > 4_900  # the good half scored...
    assert output.read_text() == "yesterday's scores\n"  # ...and never took the output's place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half-bad.csv", "scored.csv"]
    with pytest.raises(LoadError, match="refused"):  # the same with worker processes
        batch.score_file(bad, loaded, output, workers=2)
    assert output.read_text() == "yesterday's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half-bad.csv", "scored.csv"]


def test_batch_file_scored_in_worker_processes_is_the_file_scored_here(
    loaded, builtin_csv, tmp_path, monkeypatch
) -> None:
    """Worker processes (the default on a multi-core Linux machine) write the same file, byte
    for byte, and the same rejects and report as one process scoring chunk by chunk, with ids
    repeated across chunks and bad rows in several of them."""
    import pipeline.score as batch

    raw = pd.read_csv(builtin_csv, dtype=str, keep_default_na=False)
    raw.loc[[5, 2_600, 7_001], "web_visits"] = "lots"
    raw.loc[[4_000, 9_000], "lead_id"] = raw.loc[[10, 3_000], "lead_id"].to_numpy()
    mixed = tmp_path / "mixed.csv"
    raw.to_csv(mixed, index=False)
    monkeypatch.setattr(batch, "CHUNK_ROWS", 2_500)
    reports = {
        workers: batch.score_file(
            mixed,
            loaded,
            tmp_path / f"w{workers}.csv",
            rejects=tmp_path / f"w{workers}.rej.csv",
            workers=workers,
        )
        for workers in (0, 2)
    }
    assert (tmp_path / "w2.csv").read_bytes() == (tmp_path / "w0.csv").read_bytes()
    assert (tmp_path / "w2.rej.csv").read_bytes() == (tmp_path / "w0.rej.csv").read_bytes()
    rows_kept = len(raw) - reports[0].load.rows_rejected
    assert reports[2].rows_scored == reports[0].rows_scored == rows_kept
    assert reports[2].routed_to_sales == reports[0].routed_to_sales > 0
    assert reports[2].load.summary() | {"rejects_path": None} == reports[0].load.summary() | {
        "rejects_path": None
    }
    rejected = pd.read_csv(tmp_path / "w2.rej.csv")
    assert {6, 2_601, 7_002, 4_001, 9_001} <= set(rejected["row"])
    problems = rejected.set_index("row")["problem"]
    assert problems[4_001] == "duplicate lead id (first seen at row 11)"  # across chunks
    assert problems[9_001] == "duplicate lead id (first seen at row 3001)"


def test_a_long_batch_file_says_how_far_it_has_got(
    loaded, builtin_csv, tmp_path, monkeypatch, caplog
) -> None:
    """Every PROGRESS_SECONDS (0 here: every chunk) the leads scored so far, out of the
    file's estimated rows, on the log (stderr from `sal score`)."""
    import re

    import pipeline.score as batch

    monkeypatch.setattr(batch, "CHUNK_ROWS", 2_500)
    monkeypatch.setattr(batch, "PROGRESS_SECONDS", 0.0)
    with caplog.at_level("INFO", logger="pipeline.score"):
        report = batch.score_file(builtin_csv, loaded, tmp_path / "scored.csv", workers=2)
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.score"]
    pattern = re.compile(r"leads\.csv: ([\d,]+) of about ([\d,]+) leads scored \([\d,]+ a second\)")
    counts = [pattern.search(m) for m in said]
    assert len(said) >= 4 and all(counts)  # 12,000 rows in parts of about 2,500
    scored = [int(c[1].replace(",", "")) for c in counts]
    assert scored == sorted(scored) and scored[-1] == report.rows_scored
    assert abs(int(counts[0][2].replace(",", "")) - 12_000) < 120  # the size's estimate, within 1 %


def test_unreadable_bytes_in_a_workers_part_refuse_the_file_by_name(
    loaded, builtin_csv, tmp_path, monkeypatch
) -> None:
    """Bytes that are not UTF-8 deep in a file a worker reads itself end the run with the
    loader's message naming the file, as when the main process reads it, and no output."""
    import pipeline.score as batch
    from pipeline.load import LoadError

    data = builtin_csv.read_bytes()
    cut = data.index(b"\n", len(data) * 3 // 4)  # in the last quarter: a later part
    bad = tmp_path / "latin.csv"
    bad.write_bytes(data[:cut] + b"\n" + data[cut + 1 :].replace(b"a", b"\xe9", 1))
    monkeypatch.setattr(batch, "CHUNK_ROWS", 2_500)
    output = tmp_path / "scored.csv"
    for workers in (2, 0):
        with pytest.raises(LoadError, match=r"latin\.csv: cannot be read as utf-8 text"):
            batch.score_file(bad, loaded, output, workers=workers)
        assert not output.exists()


def test_big_chunks_score_text_columns_as_categories_with_the_same_result(loaded, tmp_path):
    """Chunks of 16,384 rows or more parse text columns per distinct value and hand them on as
    pandas categoricals, as they do e-mail and phone kinds; the file's scores are byte for byte
    those of the object columns that training and the API use (the whole-file loader's clean
    view, scored as one table)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    import pipeline.score as batch
    from models.scoring import score_clean
    from pipeline.generate import generate_leads, write_leads
    from pipeline.load import LeadStream

    frame = generate_leads(20_000, seed=11).astype(object)
    rng = np.random.default_rng(1)
    for column in ("industry", "job_title", "country", "email", "phone"):  # odd values, blanks
        rows = rng.random(len(frame)) < 0.2
        frame.loc[rows, column] = rng.choice(
            np.array(ODD_VALUES.get(column, ["", "N/A"])), rows.sum()
        )
    path = write_leads(frame, tmp_path / "leads.csv")
    spec = loaded.model.spec
    (chunk,) = LeadStream(path, spec, labelled=False, chunk_rows=None, categorical=True)
    for column in ("industry", "email", "phone"):  # the path is taken (e-mail and phone kinds)
        assert isinstance(chunk.clean[column].dtype, pd.CategoricalDtype), column

    batch.score_file(path, loaded, tmp_path / "scored.csv", workers=0)
    leads = load_leads(path, spec, labelled=False)
    assert not any(isinstance(d, pd.CategoricalDtype) for d in leads.clean.dtypes)
    table = score_clean(loaded, leads.clean, leads.frame[spec.id].to_numpy(), 24).table
    expected = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), expected)
    assert (tmp_path / "scored.csv").read_bytes() == expected.getvalue().to_pybytes()


def test_how_many_worker_processes_a_batch_file_gets(loaded, monkeypatch) -> None:
    import pipeline.score as batch

    big, small = 10 * batch.CHUNK_ROWS, batch.CHUNK_ROWS
    monkeypatch.setattr(batch.os, "cpu_count", lambda: 64)
    assert batch._processes(loaded, with_reasons=False, requested=None, rows=big) == 6  # capped
    assert batch._processes(loaded, with_reasons=False, requested=None, rows=None) == 6
    assert batch._processes(loaded, with_reasons=False, requested=None, rows=small) == 0
    assert batch._processes(loaded, with_reasons=False, requested=3, rows=small) == 3  # as asked
    assert batch._processes(loaded, with_reasons=True, requested=3, rows=big) == 0  # LightGBM
    monkeypatch.setattr(batch.os, "cpu_count", lambda: 1)
    assert batch._processes(loaded, with_reasons=False, requested=None, rows=big) == 0
    assert loaded.model.accept.forest() is not None  # built before any fork
