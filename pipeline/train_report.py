"""The training report: one HTML file a data scientist or a marketing lead can read end to end.

What was trained on what, how it ranks and how well its probabilities hold against the rule
criteria and a logistic baseline on the same later leads, which routing policy was chosen and
whether its promise held on leads it never saw, and the model card's known limits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.decision import TIERS
from pipeline import plots
from pipeline.report import Report
from pipeline.routing import COMPARISON_COLUMNS, comparison
from pipeline.tracking import RunRecord


def training_report(record: RunRecord, version: str | None = None) -> Report:
    """The report of one training run (`version`: the registered version, once known)."""
    model, card = record.model, record.model.metadata["card"]
    y = record.test.accepted.to_numpy(dtype=float)
    title = f"{record.spec.name}: model training report"
    report = Report(
        title, f"{'version ' + version if version else 'unregistered'} - {card['spec']}"
    )
    _data(report, record)
    _ranking(report, record, y)
    _routing(report, record)
    report.section("Top features", "Share of the P(accept) model's total split gain.")
    report.figure(
        plots.importance_figure(model.accept.importance(model.feature_names)),
        "Feature importance",
    )
    report.section("Known limits")
    for limit in card["limits"]:
        report.paragraph(limit)
    return report


def model_card(record: RunRecord, version: str | None = None) -> Report:
    """One page: what the model is for, its data window, metrics, policy, top features, limits."""
    card = record.model.metadata["card"]
    policy = record.routing.policy
    name = f"{record.spec.name} {'v' + version if version else '(unregistered)'}"
    report = Report(f"Model card: {name}", "MQL acceptance: P(accept) and P(SQL) per lead")
    report.section("Intended use")
    report.paragraph(
        "Scores each new marketing-qualified lead with the probability that sales accepts it "
        "(and qualifies it, where SQL outcomes were recorded), next to the rule criteria, and "
        "routes it to sales or nurture by the policy below. Decision support for marketing and "
        "sales; a rep can always override it."
    )
    report.section("Data window")
    report.facts(_split_facts(card["split"]))
    report.section("Metrics on the most recent slice")
    report.table(pd.DataFrame(card["metrics"]).T, "P(accept)")
    if card["sql_metrics"]:
        report.table(pd.DataFrame(card["sql_metrics"]).T, "P(SQL)")
    report.section("Routing policy")
    report.callout(policy.note, "ok" if policy.met else "warn")
    later = record.routing.later
    report.facts(
        {
            "threshold": f"{policy.threshold:.4f}",
            "later slice: share routed": _pct(later["coverage"]),
            "later slice: acceptance of routed": _pct(later["acceptance_rate"]),
            "later slice: recall": _pct(later["recall"]),
        }
    )
    report.section("Top features")
    report.table(
        pd.DataFrame(
            {
                "feature": list(card["top_features"]),
                "share of gain": list(card["top_features"].values()),
            }
        ),
        float_format="{:.1%}",
    )
    report.section("Known limits")
    for limit in card["limits"]:
        report.paragraph(limit)
    return report


def _split_facts(split: dict) -> dict[str, str]:
    """How the leads were held out (a `Split.describe()`), as report facts."""
    return {
        "split": split["method"],
        **{f"{name} rows": f"{rows:,}" for name, rows in split["rows"].items()},
        **{f"{name} window": f"{a} to {b}" for name, (a, b) in split["windows"].items()},
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _data(report: Report, record: RunRecord) -> None:
    split = record.split.describe()
    load = record.leads.report
    report.section("Data", "Leads as loaded and validated, and how they were held out.")
    facts = {
        "file sha256": load.sha256[:16],
        "rows read / rejected": f"{load.rows_read:,} / {load.rows_rejected:,}",
        "labelled / undecided (kept out)": (
            f"{int(record.accepted.notna().sum()):,} / {int(record.accepted.isna().sum()):,}"
        ),
        **_split_facts(split),
        "criteria version": record.criteria.version_id,
        "left out by the leakage audit": ", ".join(record.audit.excluded) or "none",
    }
    report.facts(facts)


def _ranking(report: Report, record: RunRecord, y: np.ndarray) -> None:
    report.section(
        "Model vs rule criteria vs logistic regression",
        f"All three on the same {len(y):,} test leads, the most recent slice. The rule criteria's "
        "score is mapped to a probability on the validation slice so calibration compares like "
        "with like.",
    )
    report.table(record.evaluation.overall, "P(accept) on the test slice")
    if record.sql_evaluation is not None:
        report.table(
            record.sql_evaluation.overall, "P(SQL) on the test slice (leads with an SQL outcome)"
        )
    scores = record.scores
    report.figure(plots.roc_figure(y, scores), "ROC curve, rule criteria on the same axes")
    report.figure(plots.pr_figure(y, scores), "Precision-recall")
    report.figure(plots.reliability_figure(y, scores), "Reliability (calibration)")
    report.figure(plots.gains_figure(y, scores), "Cumulative gains")
    report.figure(plots.lift_figure(y, scores), "Lift by score decile")
    segments = record.evaluation.segments
    if not segments.empty:
        shown = segments[segments["scorer"].isin(["model", "rules"])]
        report.table(
            shown.pivot_table(
                index=["segment", "value", "rows"], columns="scorer", values="roc_auc"
            ).reset_index(),
            "ROC AUC by segment (segments with 50 or more test leads)",
        )


def _routing(report: Report, record: RunRecord) -> None:
    routing = record.routing
    policy = routing.policy
    report.section(
        "Routing policy",
        "Leads at or above the threshold go to sales, the rest to nurture. The threshold is "
        "chosen on the validation slice with a lower confidence bound, then applied unchanged "
        "to the later test slice it never saw.",
    )
    report.callout(policy.note, "ok" if policy.met else "warn")
    table = pd.DataFrame(comparison(routing.to_dict()), columns=["who routes", *COMPARISON_COLUMNS])
    report.table(table, "Share of MQLs routed, their acceptance rate, and recall", "{:.1%}")
    report.figure(
        plots.threshold_figure(routing.curve, policy.threshold, policy.target),
        "Threshold vs acceptance rate and coverage (validation slice), chosen point marked",
    )
    report.facts(
        {
            "mode": policy.mode.replace("_", " "),
            "threshold": f"{policy.threshold:.4f}",
            "target": "-" if policy.target is None else f"{policy.target:.0%}",
            "bound": f"{policy.bound} at {policy.confidence:.0%}",
            "tiers": ", ".join(
                f"{name}: P(accept) >= {low:g}" if low else f"{name}: below" for name, low in TIERS
            ),
        }
    )
