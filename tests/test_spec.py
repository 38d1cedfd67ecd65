"""The dataset spec: valid specs load, invalid ones fail with the file and key named."""

from __future__ import annotations

import pytest

from models.spec import FieldType, SpecError, load_spec
from tests.conftest import ROOT, TINY_SPEC


def test_shipped_specs_load() -> None:
    builtin = load_spec(ROOT / "data/specs/builtin.yaml")
    bank = load_spec(ROOT / "data/specs/bank-marketing.yaml")
    assert builtin.id == "lead_id" and builtin.timestamp == "mql_at"
    assert builtin.fields["email"].is_personal and not builtin.fields["industry"].is_personal
    assert set(builtin.personal_fields) == {"email", "phone", "first_name", "last_name"}
    assert builtin.labels.sql is not None
    assert bank.id is None and bank.split.method == "stratified"
    assert bank.missing_markers("pdays") >= {"999", "unknown"}


def test_yes_and_no_stay_text(write_file) -> None:
    spec = load_spec(write_file("s.yaml", TINY_SPEC.replace("[software, retail]", "[yes, no, on]")))
    assert spec.fields["industry"].values == ("yes", "no", "on")


def test_digest_tracks_content(write_file) -> None:
    a = load_spec(write_file("a.yaml", TINY_SPEC))
    b = load_spec(write_file("b.yaml", TINY_SPEC))
    c = load_spec(write_file("c.yaml", TINY_SPEC.replace("min: 0", "min: 1")))
    assert a.digest() == b.digest() != c.digest()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("type: numeric, min: 0", "type: number, min: 0"), "fields.employees.type"),
        (("values: [software, retail]}", "values: [software], min: 3}"), "'min'/'max' apply"),
        (("column: status", "column: lead_id"), "is both id and accepted label"),
        (("positive: [accepted]", "positive: [rejected]"), "is both positive and negative"),
        (("timestamp: mql_at\n", ""), "split.method 'time' needs a 'timestamp'"),
        (
            ("  email: {type: email}", "  email: {type: email, monotone: increasing}"),
            "'monotone' applies to numeric and boolean",
        ),
        (("name: tiny", "name: tiny\ncolour: blue"), "colour"),
        (("max_bad_row_fraction: 0.5", "max_bad_row_fraction: 1.5"), "max_bad_row_fraction"),
        (("name: tiny", "name: tiny\nread: {delimiter: '||'}"), "one ASCII character"),
        (("name: tiny", "name: tiny\nread: {delimiter: '§'}"), "got '§'"),
    ],
)
def test_invalid_specs_name_the_problem(write_file, change, message) -> None:
    path = write_file("bad.yaml", TINY_SPEC.replace(*change))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_segments_must_be_fields(write_file) -> None:
    with pytest.raises(SpecError, match=r"'region' .* is not a declared field"):
        load_spec(write_file("s.yaml", TINY_SPEC + "segments: [region]\n"))


def test_missing_file_and_bad_yaml(write_file, tmp_path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write_file("broken.yaml", "name: [unclosed"))
    with pytest.raises(SpecError, match="a spec is a YAML mapping"):
        load_spec(write_file("list.yaml", "- a\n- b\n"))


def test_views_derived_from_fields(tiny_spec) -> None:
    assert tiny_spec.required_columns == [
        "lead_id",
        "mql_at",
        "industry",
        "employees",
        "demo_requested",
        "email",
        "status",
    ]
    assert tiny_spec.group("firm") == ["industry", "employees"]
    assert tiny_spec.fields_of(FieldType.boolean) == ["demo_requested"]
