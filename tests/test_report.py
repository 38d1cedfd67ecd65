"""HTML reports (self-contained, escaped, well-formed) and the figures drawn for them."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from models.policy import threshold_curve
from pipeline import plots
from pipeline.monitor import PSI_ALARM, PSI_WARN
from pipeline.report import Report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}
HOSTILE = "<script>alert('x')</script>"


class _Outline(HTMLParser):
    """Collects headings, images and figures, and checks every end tag closes the open one."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.mismatched: list[str] = []
        self.headings: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.figures: list[str | None] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "figure":
            self.figures.append(dict(attrs).get("data-figure"))
        if tag == "h2":
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.mismatched.append(tag)
        if tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)


def _outline(text: str) -> _Outline:
    parser = _Outline()
    parser.feed(text)
    parser.close()
    return parser


def _line_figure() -> Figure:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    return fig


@pytest.fixture
def written(tmp_path: Path) -> str:
    psi = pd.Series({"industry": 0.05, "employees": 0.3})
    frame = pd.DataFrame({"feature": ["industry", HOSTILE], "psi": [0.0512345, np.nan]})
    report = (
        Report("Weekly <monitoring>", subtitle="model v3 & friends")
        .section("Summary", intro="What changed this week.")
        .callout(f"One alarm {HOSTILE}", level="alarm")
        .facts({"model version": 3, "threshold": np.float64(0.612345), HOSTILE: "value"})
        .section("Drift")
        .table(frame, caption="PSI by feature")
        .figure(plots.psi_figure(psi), "PSI by feature (last week)")
        .section("Scores")
        .figure(_line_figure(), "A <line>")
    )
    path = report.write(tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    return path.read_text(encoding="utf-8")


# -- the report ------------------------------------------------------------------------------------
def test_report_refers_to_nothing_outside_the_file(written: str) -> None:
    assert "http://" not in written
    assert "https://" not in written
    sources = re.findall(r'src="([^"]*)"', written)
    assert len(sources) == 2
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    for external in ("<script", "<link", "href=", "url("):
        assert external not in written


def test_report_embeds_one_png_per_figure(written: str) -> None:
    outline = _outline(written)
    assert len(outline.images) == 2
    for image in outline.images:
        payload = str(image["src"]).removeprefix("data:image/png;base64,")
        assert base64.b64decode(payload, validate=True).startswith(PNG_SIGNATURE)
    assert [image["alt"] for image in outline.images] == ["PSI by feature (last week)", "A <line>"]
    assert outline.figures == ["psi-by-feature-last-week", "a-line"]


def test_report_escapes_user_text(written: str) -> None:
    assert "<script>" not in written
    # Callout, facts key and table cell each carry the hostile text, escaped.
    assert written.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") == 3
    assert "Weekly &lt;monitoring&gt;" in written
    assert "model v3 &amp; friends" in written
    assert 'alt="A &lt;line&gt;"' in written


def test_report_is_well_formed_with_sections_in_order(written: str) -> None:
    outline = _outline(written)
    assert outline.mismatched == []
    assert outline.stack == []
    assert outline.headings == ["Summary", "Drift", "Scores"]
    assert written.count("<section>") == 3


def test_report_formats_values_and_states_when_and_where_from(written: str) -> None:
    assert '<td class="num">0.05123</td>' in written  # float_format {:.4g}
    assert '<td class="num">0.6123</td>' in written  # numpy scalar in facts
    assert '<td class="num"></td>' in written  # NaN shows empty, not "nan"
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", written)
    assert re.search(r"<footer>Lead acceptance predictor\b", written)
    assert '<div class="callout alarm"><strong>Alarm:</strong>' in written


def test_table_cuts_long_frames_and_keeps_a_named_index() -> None:
    frame = pd.DataFrame({"psi": np.arange(10) / 100}, index=pd.Index(list("abcdefghij"), name="f"))
    text = Report("t").table(frame, max_rows=3, float_format="{:.1%}").html()
    assert text.count("<tr>") == 4  # header + 3 rows
    assert '<th scope="col">f</th>' in text
    assert '<td>c</td><td class="num">2.0%</td>' in text
    assert "First 3 of 10 rows shown." in text


def test_callout_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError, match="level"):
        Report("t").callout("text", level="fine")  # type: ignore[arg-type]


# -- figures ---------------------------------------------------------------------------------------
def _curve() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=400)
    return threshold_curve(p, rng.uniform(size=400) < p)


def _periods() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ["2025-01-06/2025-01-12", "2025-01-13/2025-01-19", "2025-01-20/2025-01-26"],
            "volume": [120, 80, 150],
            "realised_rate": [0.92, np.nan, 0.85],
            "realised_upper": [0.97, np.nan, 0.91],
            "expected_rate": [0.90, 0.88, 0.89],
        }
    )


def _horizontal_at(fig: Figure, y: float) -> bool:
    return any(list(line.get_ydata()) == [y, y] for line in fig.axes[0].lines)


def test_threshold_figure_marks_choice_and_target() -> None:
    curve = _curve()
    fig = plots.threshold_figure(curve, chosen=0.6, target=0.8)
    ax = fig.axes[0]
    vertical = [line for line in ax.lines if list(line.get_xdata()) == [0.6, 0.6]]
    assert len(vertical) == 1
    assert _horizontal_at(fig, 0.8)
    by_label = {line.get_label(): line for line in ax.lines}
    rate = by_label["acceptance rate of routed leads"]
    np.testing.assert_allclose(rate.get_xdata(), curve["threshold"])
    np.testing.assert_allclose(rate.get_ydata(), curve["acceptance_rate"])
    assert by_label["lower bound"].get_linestyle() == "--"
    row = curve[curve["threshold"] >= 0.6].iloc[0]
    note = ax.texts[0].get_text()
    assert "0.600" in note
    assert f"{row['coverage']:.0%} of leads routed" in note


def test_threshold_figure_without_target_draws_no_target_line() -> None:
    fig = plots.threshold_figure(_curve(), chosen=0.6, target=None)
    assert not any("target" in str(line.get_label()) for line in fig.axes[0].lines)


def test_lift_figure_bars_show_lift_per_group() -> None:
    y = np.r_[np.ones(10), np.zeros(90)]
    perfect = np.linspace(1, 0, 100)  # the 10 accepted leads score highest
    fig = plots.lift_figure(y, {"perfect": perfect, "reversed": -perfect})
    ax = fig.axes[0]
    heights = [[bar.get_height() for bar in bars] for bars in ax.containers]
    np.testing.assert_allclose(heights[0], [10] + [0] * 9)
    np.testing.assert_allclose(heights[1], [0] * 9 + [10])
    assert _horizontal_at(fig, 1.0)


def test_lift_figure_needs_an_accepted_lead() -> None:
    with pytest.raises(ValueError, match="accepted"):
        plots.lift_figure(np.zeros(20), {"model": np.linspace(0, 1, 20)})


def test_psi_figure_colours_bars_by_band() -> None:
    psi = pd.Series({"major": 0.4, "stable": 0.05, "moderate": 0.2, "empty": np.nan})
    ax = plots.psi_figure(psi).axes[0]
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == ["stable", "moderate", "major"]  # sorted, NaN left out, largest on top
    colours = [to_hex(bar.get_facecolor()) for bar in ax.patches]
    assert colours == [
        to_hex(plots.PSI_COLOURS["stable"]),
        to_hex(plots.PSI_COLOURS["moderate"]),
        to_hex(plots.PSI_COLOURS["major"]),
    ]
    assert len(set(colours)) == 3
    assert sorted(line.get_xdata()[0] for line in ax.lines) == [PSI_WARN, PSI_ALARM]


def test_acceptance_over_time_figure_skips_missing_rates() -> None:
    fig = plots.acceptance_over_time_figure(_periods(), target=0.9)
    ax, volume = fig.axes
    assert _horizontal_at(fig, 0.9)
    by_label = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(by_label["realised rate"].get_xdata(), [0, 2])
    np.testing.assert_allclose(by_label["realised rate"].get_ydata(), [0.92, 0.85])
    np.testing.assert_allclose(by_label["95% upper bound"].get_ydata(), [0.97, 0.91])
    np.testing.assert_allclose(by_label["expected (model)"].get_ydata(), [0.90, 0.88, 0.89])
    assert [bar.get_height() for bar in volume.patches] == [120, 80, 150]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "2025-01-06",
        "2025-01-13",
        "2025-01-20",
    ]


def test_acceptance_over_time_figure_without_optional_columns() -> None:
    periods = _periods().drop(columns=["realised_upper", "expected_rate"])
    labels = {
        line.get_label() for line in plots.acceptance_over_time_figure(periods, 0.9).axes[0].lines
    }
    assert labels == {"realised rate", "target 90%"}


def test_score_distribution_figure_shows_shares_per_tenth() -> None:
    reference = np.array([0.05, 0.15, 0.15, 1.0])
    fig = plots.score_distribution_figure(reference, {"this week": np.array([0.55, 0.95])})
    steps = fig.axes[0].patches
    expected = np.zeros(10)
    expected[[0, 1, 9]] = [0.25, 0.5, 0.25]  # 1.0 falls in the last bin
    np.testing.assert_allclose(steps[0].get_data().values, expected)
    current = np.zeros(10)
    current[[5, 9]] = 0.5
    np.testing.assert_allclose(steps[1].get_data().values, current)
    assert [s.get_label() for s in steps] == ["reference", "this week"]


def test_bootstrap_figure_draws_each_interval() -> None:
    intervals = pd.DataFrame(
        {
            "name": ["champion", "challenger", "rules"],
            "estimate": [0.81, 0.79, 0.66],
            "low": [0.78, 0.75, 0.62],
            "high": [0.84, 0.82, 0.70],
        }
    )
    ax = plots.bootstrap_figure(intervals).axes[0]
    points, _, (whiskers,) = ax.containers[0]
    np.testing.assert_allclose(points.get_xdata(), intervals["estimate"])
    spans = [(seg[0][0], seg[1][0]) for seg in whiskers.get_segments()]
    np.testing.assert_allclose(spans, list(zip(intervals["low"], intervals["high"], strict=True)))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["champion", "challenger", "rules"]
    assert ax.yaxis_inverted()  # first row on top


def test_bootstrap_figure_rejects_intervals_missing_their_estimate() -> None:
    bad = pd.DataFrame({"name": ["x"], "estimate": [0.9], "low": [0.7], "high": [0.8]})
    with pytest.raises(ValueError, match="contain"):
        plots.bootstrap_figure(bad)


@pytest.mark.parametrize(
    "build",
    [
        lambda: plots.threshold_figure(_curve(), 0.6, 0.8),
        lambda: plots.lift_figure(np.r_[np.ones(5), np.zeros(15)], {"m": np.linspace(1, 0, 20)}),
        lambda: plots.psi_figure(pd.Series({"a": 0.01, "b": 0.5})),
        lambda: plots.acceptance_over_time_figure(_periods(), 0.9),
        lambda: plots.score_distribution_figure(np.array([0.2, 0.4]), {"now": np.array([0.6])}),
        lambda: plots.bootstrap_figure(
            pd.DataFrame({"name": ["a"], "estimate": [0.5], "low": [0.4], "high": [0.6]})
        ),
    ],
)
def test_every_new_figure_renders_into_a_report(build) -> None:
    # Drawing (tight layout, annotations, legends) happens only at savefig time.
    outline = _outline(Report("t").figure(build(), "figure").html())
    payload = str(outline.images[0]["src"]).removeprefix("data:image/png;base64,")
    assert base64.b64decode(payload).startswith(PNG_SIGNATURE)
