"""Generate the built-in synthetic MQL dataset described by `data/specs/builtin.yaml`.

The rows tell one consistent story: a B2B SaaS vendor's marketing hands leads (MQLs) to sales, a
rep accepts or rejects each one (SAL) and some accepted leads become sales-qualified (SQL).
Acceptance depends non-linearly on ICP fit, data quality, engagement and readiness, and on things
a points rule cannot see (interactions, month-end rep capacity, a product launch that shifts which
industries sales wants), plus real noise. `data/README.md` tells the story for a data scientist and
lists the rates that `tests/test_generate.py` asserts; keep the three in step.

Everything is vectorised over rows and driven by one `numpy.random.Generator`, so a seed gives the
same frame (and, through `write_leads`, the same CSV bytes) on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Fixed calendar, independent of today, so the dataset never changes under the tests.
WINDOW_START = pd.Timestamp("2025-01-01")
WINDOW_END = pd.Timestamp("2026-07-01")  # exclusive: the last MQLs arrive on 2026-06-30
EXPORT_AT = pd.Timestamp("2026-07-01 00:00:00")  # when the CRM export was taken
LAUNCH_AT = pd.Timestamp("2025-11-01")  # new product line: concept drift from this date on

COLUMNS = (
    "lead_id", "mql_at",
    "industry", "company_size", "annual_revenue", "country", "region",
    "job_function", "seniority", "job_title", "email", "phone", "first_name", "last_name",
    "lead_source",
    "web_visits", "pages_viewed", "time_on_site_min", "content_downloads", "webinars_attended",
    "email_clicks", "lead_score", "days_since_last_activity",
    "demo_requested", "pricing_requested", "contact_me",
    "bant_budget", "bant_authority", "bant_need", "bant_timeline",
    "sal_status", "sal_decided_at", "rejection_reason", "sql_status", "sql_at", "owner",
)  # fmt: skip

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME_COLUMNS = ("mql_at", "sal_decided_at", "sql_at")
_BOOLEAN_COLUMNS = ("demo_requested", "pricing_requested", "contact_me")
_TEXT = np.dtypes.StringDType()  # numpy's variable-width strings: fast vectorised text building

# --- firmographics ------------------------------------------------------------------------------
_INDUSTRIES = (
    "software", "financial_services", "healthcare", "manufacturing", "retail", "education",
    "government", "professional_services", "media", "logistics", "energy", "non_profit",
)  # fmt: skip
_INDUSTRY_P = (0.20, 0.11, 0.10, 0.10, 0.09, 0.07, 0.05, 0.09, 0.06, 0.05, 0.04, 0.04)
_INDUSTRY_FIT = (0.4, 0.3, 0.0, 0.0, 0.2, -0.5, -0.2, 0.2, -0.1, 0.1, 0.1, -0.5)
# Product launch on LAUNCH_AT: healthcare and manufacturing become targets, retail is deprioritised.
_INDUSTRY_DRIFT = (0.0, 0.0, 0.9, 0.8, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+")
_SIZE_P = (0.14, 0.22, 0.24, 0.20, 0.11, 0.09)
# Mid-market is the sweet spot; the largest accounts belong to a separate enterprise team.
_SIZE_FIT = (-0.5, -0.1, 0.2, 0.3, 0.2, 0.0)
_REVENUES = ("<1M", "1M-10M", "10M-50M", "50M-250M", "250M-1B", ">1B")

_COUNTRIES = (
    "United States", "Canada", "United Kingdom", "Germany", "France", "Netherlands", "Spain",
    "Sweden", "Australia", "Japan", "Singapore", "India", "Brazil", "Mexico",
)  # fmt: skip
_COUNTRY_P = (0.39, 0.06, 0.10, 0.08, 0.05, 0.03, 0.03, 0.02, 0.05, 0.03, 0.02, 0.06, 0.05, 0.03)
_COUNTRY_REGION = (0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3)
# How CRMs misspell each country (about 1 % of rows): three variants per country.
_COUNTRY_VARIANTS = (
    ("USA", "U.S.", "united states"), ("canada", "CA", "Canada "), ("UK", "U.K.", "Great Britain"),
    ("Deutschland", "germany", "DE"), ("france", "FR", "France "), ("Holland", "NL", "netherlands"),
    ("España", "spain", "ES"), ("Sverige", "sweden", "SE"), ("AU", "australia", "Aus"),
    ("japan", "JP", "Japan "), ("SG", "singapore", "Singapore "), ("india", "IN", "Bharat"),
    ("Brasil", "brazil", "BR"), ("México", "mexico", "MX"),
)  # fmt: skip
_CALLING_CODES = (
    "+1", "+1", "+44", "+49", "+33", "+31", "+34", "+46", "+61", "+81", "+65", "+91", "+55", "+52",
)  # fmt: skip
_COUNTRY_TLDS = (
    ".com", ".ca", ".co.uk", ".de", ".fr", ".nl", ".es", ".se", ".com.au", ".co.jp", ".sg", ".in",
    ".com.br", ".com.mx",
)  # fmt: skip
_REGIONS = ("NA", "EMEA", "APAC", "LATAM")
_REGION_FIT = (0.2, 0.1, -0.2, -0.5)

# --- person -------------------------------------------------------------------------------------
_FUNCTIONS = (
    "it", "engineering", "marketing", "sales", "finance", "operations", "hr", "executive",
    "student", "other",
)  # fmt: skip
_FUNCTION_P = (0.16, 0.17, 0.15, 0.09, 0.07, 0.09, 0.05, 0.08, 0.03, 0.11)
_FUNCTION_FIT = (0.35, 0.3, -0.1, -0.2, 0.0, 0.15, -0.4, 0.2, -2.0, -0.4)
_STUDENT = _FUNCTIONS.index("student")
_EXECUTIVE = _FUNCTIONS.index("executive")

_SENIORITIES = ("c_level", "vp", "director", "manager", "individual_contributor", "intern")
_SENIORITY_P = (0.07, 0.10, 0.18, 0.27, 0.34, 0.04)
_SENIORITY_FIT = (0.2, 0.4, 0.4, 0.2, -0.2, -1.5)
# log-odds shifts of the seniority mix by company size (rows) : small firms are all chiefs.
_SENIORITY_BY_SIZE = (
    (1.5, 0.0, -0.5, -0.3, 0.0, 0.0),
    (0.7, 0.3, 0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (-0.4, 0.0, 0.1, 0.0, 0.0, 0.0),
    (-0.8, -0.2, 0.1, 0.0, 0.1, 0.0),
    (-1.2, -0.3, 0.1, 0.0, 0.2, 0.0),
)
# Who can buy depends on company size (seniority rows x size columns): a founder of a 10-person
# company signs, a CEO of a 5000+ company never answers, an engineer at an enterprise is a champion.
_SENIORITY_X_SIZE = (
    (1.3, 0.8, -0.4, -1.3, -2.0, -2.5),
    (0.7, 0.5, -0.1, -0.4, -0.4, -0.4),
    (-0.3, 0.1, 0.1, 0.0, 0.0, 0.0),
    (-0.5, -0.3, 0.1, 0.3, 0.2, 0.2),
    (-1.3, -0.7, 0.1, 0.5, 0.8, 0.8),
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
)
# Industry x company size: regulated buyers need scale (compliance, procurement); software
# startups buy fast while large software firms build in-house. Other industries: no interaction.
_REGULATED = ("financial_services", "healthcare", "government", "energy")
_REGULATED_X_SIZE = (-1.0, -0.7, 0.1, 0.6, 0.8, 0.8)
_SOFTWARE_X_SIZE = (0.8, 0.6, 0.0, -0.4, -0.8, -0.9)
# How much a seniority speaks for itself on the BANT "authority" question.
_AUTHORITY = (1.5, 1.2, 0.8, 0.0, -0.8, -2.0)
# How titles spell each function (in _FUNCTIONS order): proper, casual, chief, chief spelt out.
_FUNCTION_WORDS = (
    ("IT", "it", "CIO", "Chief Information Officer"),
    ("Engineering", "engineering", "CTO", "Chief Technology Officer"),
    ("Marketing", "marketing", "CMO", "Chief Marketing Officer"),
    ("Sales", "sales", "CRO", "Chief Revenue Officer"),
    ("Finance", "finance", "CFO", "Chief Financial Officer"),
    ("Operations", "ops", "COO", "Chief Operating Officer"),
    ("HR", "people", "CHRO", "Chief People Officer"),
    ("Strategy", "strategy", "CEO", "Chief Executive Officer"),
    ("Research", "research", "Founder", "Founder"),
    ("Business", "business", "Founder", "Owner"),
)
# Four title spellings per seniority, messy on purpose: {F} proper function, {f} casual,
# {C} chief title, {c} chief in lower case, {L} chief spelt out. Contributors get role names.
_TITLE_TEMPLATES = (
    ("{C}", "{L}", "{c}", "Co-Founder & {C}"),
    ("VP {F}", "vp, {f}", "Vice President of {F}", "VP of {F}"),
    ("Director of {F}", "{F} Director", "Head of {F}", "director, {f}"),
    ("{F} Manager", "Manager, {F}", "Sr. {F} Manager", "{f} mgr"),
    None,  # individual contributors: role names from _CONTRIBUTOR_TITLES
    ("{F} Intern", "Intern", "intern, {f}", "Summer Intern"),
)
_CONTRIBUTOR_TITLES = (
    ("Systems Administrator", "IT Specialist", "sysadmin", "IT Analyst"),
    ("Software Engineer", "Senior Software Engineer", "developer", "DevOps Engineer"),
    ("Marketing Specialist", "Growth Marketer", "marketing coordinator", "Content Marketer"),
    ("Account Executive", "SDR", "sales rep", "Account Manager"),
    ("Financial Analyst", "Accountant", "FP&A Analyst", "analyst"),
    ("Operations Analyst", "Ops Specialist", "operations", "Project Manager"),
    ("HR Generalist", "Recruiter", "People Partner", "hr"),
    ("Chief of Staff", "Executive Assistant", "Strategy Analyst", "Business Analyst"),
    ("Student", "student", "PhD Student", "MBA Candidate"),
    ("Consultant", "Specialist", "Analyst", "Associate"),
)
_STUDENT_TITLES = ("Student", "student", "PhD Student", "MBA Candidate")

_FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Thomas", "Jessica", "Daniel", "Sarah",
    "Matthew", "Karen", "Anna", "Lukas", "Sophie", "Jonas", "Emma", "Pierre", "Camille", "Lars",
    "Ingrid", "Priya", "Rahul", "Aiko", "Kenji", "Wei", "Mei", "Lucas", "Gabriela", "Diego",
    "Sofia", "Olivia",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Martinez",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson",
    "White", "Harris", "Clark", "Lewis", "Walker", "Young", "King", "Wright", "Mueller", "Schmidt",
    "Dubois", "Laurent", "Jansen", "De Vries", "Andersson", "Nilsson", "Sharma", "Patel", "Tanaka",
    "Sato", "Silva", "Hernandez",
)  # fmt: skip
_DOMAIN_STEMS = (
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "soylent",
    "cyberdyne", "tyrell", "wonka", "northwind", "contoso", "fabrikam", "adventureworks",
    "bluesky", "brightpath", "summit", "ironclad", "redwood", "silverline", "greenfield", "nimbus",
    "quantum", "vertex", "pinnacle", "horizon", "keystone", "lighthouse",
)  # fmt: skip
_DOMAIN_SUFFIXES = (
    "", "labs", "systems", "group", "tech", "health", "logistics", "energy", "media", "bank",
    "works", "co",
)  # fmt: skip
_FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
_FREE_MAIL_P = (0.5, 0.15, 0.15, 0.2)
_UNIVERSITIES = (
    "stanford.edu", "mit.edu", "berkeley.edu", "umich.edu", "nyu.edu", "utexas.edu", "gatech.edu",
    "wisc.edu",
)  # fmt: skip
_FREE_MAIL_BY_SIZE = (0.45, 0.25, 0.15, 0.08, 0.06, 0.05)

_SOURCES = (
    "organic", "paid_search", "paid_social", "events", "referral", "partner", "outbound",
    "email_campaign",
)  # fmt: skip
_SOURCE_P = (0.20, 0.16, 0.09, 0.09, 0.06, 0.07, 0.12, 0.21)
_SOURCE_FIT = (0.0, -0.1, -0.4, 0.1, 0.5, 0.3, 0.2, -0.2)
_SOURCE_INTENT = (0.2, 0.1, -0.2, 0.0, 0.1, 0.0, -0.6, 0.0)  # outbound leads barely browse
# Only some forms (and SDR calls) ask the BANT questions.
_SOURCE_BANT_ASKED = (0.25, 0.30, 0.20, 0.45, 0.45, 0.55, 0.60, 0.25)
_EMAIL_CAMPAIGN = _SOURCES.index("email_campaign")

_TIMELINES = ("<3m", "3-6m", "6-12m", ">12m")
_TIMELINE_FIT = (0.6, 0.3, -0.1, -0.6)

_REPS = (
    "Alex Morgan", "Jordan Lee", "Taylor Brooks", "Casey Nguyen", "Riley Carter",  # NA
    "Hannah Becker", "Louis Martin", "Sanne de Jong", "Oliver Hughes",  # EMEA
    "Yuki Tanaka", "Arjun Mehta",  # APAC
    "Camila Rocha",  # LATAM
)  # fmt: skip
_REPS_BY_REGION = ((0, 5), (5, 4), (9, 2), (11, 1))  # (first rep, how many) per region

_REASONS = ("not_icp", "bad_data", "not_ready", "duplicate", "competitor_student")

# Calibrated so that about 60 % of decided leads are accepted (see data/README.md).
_ACCEPT_INTERCEPT = 1.4
_NOISE_SD = 0.5  # what the rep learns on the call and the CRM never records
_SQL_INTERCEPT = -1.05


@dataclass(frozen=True)
class _Firm:
    """True firmographic codes and the observed CRM columns."""

    size: np.ndarray
    country: np.ndarray
    region: np.ndarray
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]  # codes as the CRM shows them, -1 where missing


@dataclass(frozen=True)
class _Person:
    """True person codes, contact-data quality flags and the observed CRM columns."""

    function: np.ndarray
    seniority: np.ndarray
    free_mail: np.ndarray
    edu_mail: np.ndarray
    bad_email: np.ndarray
    bad_phone: np.ndarray
    no_phone: np.ndarray
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Behaviour:
    """Source, engagement and readiness: the observed columns plus the values the outcome uses."""

    source: np.ndarray
    intent: np.ndarray
    need: np.ndarray
    engagement: np.ndarray  # saturating engagement points, >= 0
    demo: np.ndarray
    pricing: np.ndarray
    contact: np.ndarray  # False where the form had no checkbox
    bant: dict[str, np.ndarray]  # codes, -1 where not asked or skipped
    columns: dict[str, object]


def generate_leads(n_rows: int = 50_000, seed: int = 7) -> pd.DataFrame:
    """Return `n_rows` synthetic MQLs with their sales outcomes, sorted by `mql_at`.

    Columns are `COLUMNS`: the spec's fields plus `lead_id`, `mql_at` and the label/outcome
    columns. Text columns are `str` with "" (or another spec missing marker) where missing, counts
    are int64, `time_on_site_min` float64 (NaN when missing), the readiness flags pandas "boolean"
    and the three timestamps datetime64[s] (NaT when missing). Same seed and size, same frame.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    mql_at = _mql_times(rng, n_rows)
    function = _pick(rng, _FUNCTION_P, n_rows)
    firm = _firmographics(rng, function == _STUDENT)
    person = _person(rng, function, firm)
    behaviour = _behaviour(rng, firm, person)
    outcome = _outcomes(rng, mql_at, firm, person, behaviour)
    columns: dict[str, object] = {"lead_id": _lead_ids(n_rows), "mql_at": mql_at}
    columns |= firm.columns | person.columns | behaviour.columns | outcome
    return pd.DataFrame({name: _typed(name, columns[name]) for name in COLUMNS})


def write_leads(df: pd.DataFrame, path: Path) -> Path:
    """Write leads as the CRM export the pipeline reads and return the path.

    Comma-separated with a header and no index; booleans as "true"/"false", missing values as "",
    timestamps as `YYYY-MM-DD HH:MM:SS`. The output is byte-for-byte stable for a given frame.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            out[name] = column.map({True: "true", False: "false"}).astype("str").fillna("")
        elif pd.api.types.is_datetime64_any_dtype(column.dtype):
            out[name] = column.dt.strftime(_TIME_FORMAT).fillna("")
    out.to_csv(path, index=False, na_rep="", lineterminator="\n", encoding="utf-8")
    return path


# --- time ---------------------------------------------------------------------------------------
def _mql_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted MQL timestamps: weekday-heavy, business hours, volume growing over the window."""
    days = pd.date_range(WINDOW_START, WINDOW_END - pd.Timedelta(days=1), freq="D")
    weight = np.where(days.day_of_week < 5, 1.0, 0.15)
    weight = weight * np.linspace(1.0, 1.35, len(days))  # marketing budget grows
    holidays = ((days.month == 12) & (days.day >= 22)) | ((days.month == 1) & (days.day <= 2))
    weight = np.where(holidays, weight * 0.4, weight)
    day = rng.choice(len(days), size=n, p=weight / weight.sum())
    office = rng.random(n) < 0.88  # the rest arrive in the evening, at night or from abroad
    hour = np.where(office, 7.0 + 12.0 * rng.beta(3.0, 3.0, n), rng.uniform(0.0, 24.0, n))
    seconds = np.minimum((hour * 3600).astype(np.int64), 86_399)
    start = WINDOW_START.to_datetime64().astype("datetime64[s]")
    stamps = start + (day.astype(np.int64) * 86_400 + seconds).astype("timedelta64[s]")
    return np.sort(stamps)


def _month_end(stamps: np.ndarray) -> np.ndarray:
    """True for timestamps on one of the last three business days (Mon-Fri) of their month."""
    days = pd.date_range(WINDOW_START, WINDOW_END, freq="D")
    weekday = days.day_of_week < 5
    month = days.year * 12 + days.month
    # Count business days from the end of each month; the last one is 1.
    rank = pd.Series(weekday.astype(int)[::-1]).groupby(month[::-1]).cumsum().to_numpy()[::-1]
    flag = weekday & (rank <= 3)
    start = WINDOW_START.to_datetime64().astype("datetime64[D]")
    index = (stamps.astype("datetime64[D]") - start).astype(np.int64)
    return flag[np.clip(index, 0, len(days) - 1)]


def _lead_ids(n: int) -> np.ndarray:
    """Ids "L0000001", ... in time order, widened beyond seven digits only when needed."""
    width = max(7, len(str(n)))
    return _concat("L", np.strings.zfill(np.arange(1, n + 1).astype(_TEXT), width))


# --- sampling helpers ---------------------------------------------------------------------------
def _pick(rng: np.random.Generator, p: tuple[float, ...], n: int) -> np.ndarray:
    """Codes 0..len(p)-1 drawn with probabilities p."""
    return rng.choice(len(p), size=n, p=np.asarray(p) / np.sum(p))


def _pick_rows(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One code per row from a (rows, classes) matrix of log-odds."""
    weight = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weight, axis=1)
    u = rng.random(len(weight)) * cumulative[:, -1]
    return np.minimum((u[:, None] >= cumulative).sum(axis=1), weight.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Log-odds to probabilities."""
    return 1.0 / (1.0 + np.exp(-x))


def _blank(
    rng: np.random.Generator,
    labels: tuple[str, ...],
    codes: np.ndarray,
    markers: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Labels for codes with CRM missing markers sprinkled in at the given rates.

    Returns the observed strings and the observed codes (-1 where a marker replaced the value).
    """
    text, missing = _markers(rng, np.asarray(labels, dtype=object)[codes], markers)
    return text, np.where(missing, -1, codes)


def _markers(
    rng: np.random.Generator, text: np.ndarray, markers: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Replace values by missing markers at the given rates; returns the text and a missing mask."""
    u = rng.random(len(text))
    edges = np.cumsum([0.0, *markers.values()])
    which = np.searchsorted(edges, u, side="right") - 1  # marker index, len(markers) = keep value
    missing = which < len(markers)
    labels = np.asarray([*markers, ""], dtype=object)
    return np.where(missing, labels[np.minimum(which, len(markers))], text), missing


def _table(values: tuple[float, ...], codes: np.ndarray) -> np.ndarray:
    """Look up values by code, 0 where the code is -1 (unknown to the rep)."""
    lookup = np.append(np.asarray(values, dtype=float), 0.0)
    return lookup[np.where(codes < 0, len(values), codes)]


def _lookup(labels: tuple[str, ...] | list[str], codes: np.ndarray) -> np.ndarray:
    """Labels for codes as a numpy StringDType array, the fast path for building text."""
    return np.asarray(labels, dtype=_TEXT)[codes]


def _concat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of arrays and constants (numpy StringDType)."""
    out = np.asarray(parts[0], dtype=_TEXT)
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part, dtype=_TEXT))
    return out


# --- firmographics ------------------------------------------------------------------------------
def _firmographics(rng: np.random.Generator, student: np.ndarray) -> _Firm:
    """Industry, size, revenue correlated with size, and country with its derived region."""
    n = len(student)
    industry = _pick(rng, _INDUSTRY_P, n)
    # Students mostly give their university as the company.
    industry[student & (rng.random(n) < 0.6)] = _INDUSTRIES.index("education")
    size = _pick(rng, _SIZE_P, n)
    revenue = np.clip(size + rng.choice([-1, 0, 0, 0, 1], size=n), 0, len(_REVENUES) - 1)
    country = _pick(rng, _COUNTRY_P, n)
    region = np.asarray(_COUNTRY_REGION)[country]

    industry_text, industry_obs = _blank(rng, _INDUSTRIES, industry, {"Select": 0.03, "": 0.02})
    size_text, size_obs = _blank(rng, _SIZES, size, {"unknown": 0.04, "": 0.01})
    revenue_text, revenue_obs = _blank(rng, _REVENUES, revenue, {"": 0.11, "--": 0.01})
    country_text, country_obs = _blank(rng, _COUNTRIES, country, {"": 0.02})
    misspelt = (rng.random(n) < 0.01) & (country_obs >= 0)
    variant = np.asarray(_COUNTRY_VARIANTS, dtype=object)[country, rng.integers(0, 3, n)]
    country_text = np.where(misspelt, variant, country_text)
    # The CRM derives region from the (clean) country, so it is missing exactly when country is.
    region_text = np.where(country_obs >= 0, np.asarray(_REGIONS, dtype=object)[region], "")
    region_obs = np.where(country_obs >= 0, region, -1)
    return _Firm(
        size=size,
        country=country,
        region=region,
        columns={
            "industry": industry_text,
            "company_size": size_text,
            "annual_revenue": revenue_text,
            "country": country_text,
            "region": region_text,
        },
        observed={
            "industry": industry_obs,
            "size": size_obs,
            "revenue": revenue_obs,
            "country": country_obs,
            "region": region_obs,
        },
    )


# --- person -------------------------------------------------------------------------------------
def _person(rng: np.random.Generator, function: np.ndarray, firm: _Firm) -> _Person:
    """Seniority, title, name, email and phone of the person behind the lead."""
    n = len(function)
    student = function == _STUDENT
    seniority = _seniority(rng, function, firm.size)

    function_text, function_obs = _blank(rng, _FUNCTIONS, function, {"": 0.04, "Select": 0.01})
    seniority_text, seniority_obs = _blank(rng, _SENIORITIES, seniority, {"": 0.06})
    titles = _title_table()[seniority, function, rng.integers(0, 4, n)]
    title_text, title_missing = _markers(rng, titles, {"": 0.025, "N/A": 0.005})

    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    first_text, first_obs = _blank(rng, _FIRST_NAMES, first, {"": 0.01})
    last_text, last_obs = _blank(rng, _LAST_NAMES, last, {"": 0.01})

    email, kind = _emails(rng, first, last, firm, student)
    phone, phone_kind = _phones(rng, firm.country)
    return _Person(
        function=function,
        seniority=seniority,
        free_mail=kind == 1,
        edu_mail=kind == 2,
        bad_email=kind == 3,
        bad_phone=phone_kind == 2,
        no_phone=phone_kind == 0,
        columns={
            "job_function": function_text,
            "seniority": seniority_text,
            "job_title": title_text,
            "email": email,
            "phone": phone,
            "first_name": first_text,
            "last_name": last_text,
        },
        observed={
            "function": function_obs,
            "seniority": seniority_obs,
            "title": np.where(title_missing, -1, 0),
            "first_name": first_obs,
            "last_name": last_obs,
        },
    )


def _seniority(rng: np.random.Generator, function: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Seniority whose mix depends on company size; executives are senior, students junior."""
    logits = np.log(np.asarray(_SENIORITY_P))[None, :] + np.asarray(_SENIORITY_BY_SIZE)[size]
    logits[function == _EXECUTIVE] = np.log([0.55, 0.3, 0.1, 0.03, 0.02, 1e-6])
    logits[function == _STUDENT] = np.log([1e-6, 1e-6, 1e-6, 1e-6, 0.4, 0.6])
    return _pick_rows(rng, logits)


def _title_table() -> np.ndarray:
    """Every job title the generator writes, indexed (seniority, function, spelling variant)."""
    table = np.empty((len(_SENIORITIES), len(_FUNCTIONS), 4), dtype=object)
    for f, (proper, casual, chief, chief_long) in enumerate(_FUNCTION_WORDS):
        names = {"F": proper, "f": casual, "C": chief, "c": chief.lower(), "L": chief_long}
        for s, templates in enumerate(_TITLE_TEMPLATES):
            spelt = _CONTRIBUTOR_TITLES[f] if templates is None else templates
            table[s, f] = [template.format(**names) for template in spelt]
    table[:, _STUDENT] = _STUDENT_TITLES
    return table


def _emails(
    rng: np.random.Generator,
    first: np.ndarray,
    last: np.ndarray,
    firm: _Firm,
    student: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Email addresses and their kind: 0 corporate, 1 free-mail, 2 .edu, 3 malformed."""
    n = len(first)
    first_lower = _lookup([name.lower() for name in _FIRST_NAMES], first)
    last_lower = _lookup([name.lower().replace(" ", "") for name in _LAST_NAMES], last)
    style = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    initial = np.strings.slice(first_lower, 0, 1)
    local = np.where(
        style == 0,
        _concat(first_lower, ".", last_lower),
        np.where(style == 1, _concat(initial, last_lower), first_lower),
    )

    # Small companies sign up with private addresses more often; students mostly with .edu.
    kind = np.where(rng.random(n) < np.asarray(_FREE_MAIL_BY_SIZE)[firm.size], 1, 0)
    kind = np.where(student, np.where(rng.random(n) < 0.8, 2, 1), kind)
    kind = np.where(rng.random(n) < 0.015, 3, kind)

    stem = _lookup(_DOMAIN_STEMS, rng.integers(0, len(_DOMAIN_STEMS), n))
    suffix = _lookup(_DOMAIN_SUFFIXES, rng.integers(0, len(_DOMAIN_SUFFIXES), n))
    tld = np.where(rng.random(n) < 0.6, _lookup(_COUNTRY_TLDS, firm.country), ".com")
    corporate = _concat(stem, suffix, tld)
    free = _lookup(_FREE_MAIL, _pick(rng, _FREE_MAIL_P, n))
    university = _lookup(_UNIVERSITIES, rng.integers(0, len(_UNIVERSITIES), n))
    digits = np.where(rng.random(n) < 0.5, rng.integers(1, 99, n).astype(_TEXT), "")
    domain = np.where(kind == 1, free, np.where(kind == 2, university, corporate))
    email = _concat(local, np.where(kind == 1, digits, ""), "@", domain)

    broken = rng.choice(4, size=n, p=[0.35, 0.2, 0.25, 0.2])
    bad = np.flatnonzero(kind == 3)
    local, broken, stem, corporate = local[bad], broken[bad], stem[bad], corporate[bad]
    email[bad] = np.where(
        broken == 0,
        _concat(local, "@"),
        np.where(
            broken == 1,
            "n/a",
            np.where(broken == 2, _concat(local, "@", stem), _concat(local, " at ", corporate)),
        ),
    )
    return email, kind


def _phones(rng: np.random.Generator, country: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phone numbers (about 60 % present, 3 % of those junk) and their kind: 0 none, 1, 2 junk."""
    n = len(country)
    present = rng.random(n) < 0.60
    junk = present & (rng.random(n) < 0.03)
    area = rng.integers(200, 1000, n).astype(_TEXT)
    middle = rng.integers(200, 1000, n).astype(_TEXT)
    end = np.strings.zfill(rng.integers(0, 10_000, n).astype(_TEXT), 4)
    code = _lookup(_CALLING_CODES, country)
    # North American numbers are often written the national way, "(415) 555-0134".
    style = np.where(country <= 1, rng.integers(0, 3, n), rng.integers(0, 2, n))
    number = np.where(
        style == 0,
        _concat(code, " ", area, " ", middle, " ", end),
        np.where(
            style == 1, _concat(code, area, middle, end), _concat("(", area, ") ", middle, "-", end)
        ),
    )
    placeholder = _lookup(("000", "0000000000", "123", "tbd", "+1 000"), rng.integers(0, 5, n))
    number = np.where(junk, placeholder, np.where(present, number, ""))
    return number, np.where(junk, 2, np.where(present, 1, 0))


# --- source, engagement, readiness --------------------------------------------------------------
def _behaviour(rng: np.random.Generator, firm: _Firm, person: _Person) -> _Behaviour:
    """Lead source, web/email engagement, marketing's lead score and the readiness signals.

    A latent buying intent drives engagement and hand-raises alike; a latent need drives the BANT
    answers. Neither is a column: the rep only sees their traces.
    """
    n = len(firm.size)
    source = _pick(rng, _SOURCE_P, n)
    intent = rng.normal(0.0, 1.0, n) + np.asarray(_SOURCE_INTENT)[source]
    need = rng.normal(0.0, 1.0, n)

    visits = rng.poisson(np.exp(1.0 + 0.6 * intent) * rng.gamma(2.0, 0.5, n))
    pages = visits + rng.poisson(visits * np.exp(0.4 + 0.2 * intent) * rng.gamma(2.0, 0.5, n))
    minutes = np.round(pages * rng.gamma(2.0, 0.8, n) * np.exp(0.1 * intent), 1)
    minutes[rng.random(n) < 0.02] = np.nan  # visitor blocked the tracking script
    downloads = rng.poisson(0.35 * np.exp(0.5 * intent))
    events = source == _SOURCES.index("events")
    webinars = rng.poisson(0.15 * np.exp(0.5 * intent) + 0.3 * events)
    click_rate = np.where(source == _EMAIL_CAMPAIGN, 1.2, 0.3) * np.exp(0.4 * intent)
    clicks = rng.poisson(click_rate * rng.gamma(2.0, 0.5, n))
    idle = np.minimum(np.floor(rng.exponential(6.0 * np.exp(-0.5 * intent))), 180).astype(int)
    # Marketing's points: linear, uncapped and blind to fit, which is why it predicts poorly.
    points = 10 + 3 * visits + pages + 6 * downloads + 8 * webinars + 2 * clicks - 0.8 * idle
    score = np.clip(np.round(points + rng.normal(0.0, 6.0, n)), 0, 100).astype(int)
    # What sales values: diminishing returns on volume, and volume only while it is fresh (a
    # lead who read the docs three months ago has gone cold); recent activity counts most.
    volume = (
        0.45 * np.log1p(visits) + 0.25 * np.log1p(pages) + 0.35 * np.minimum(downloads, 2)
        + 0.4 * (webinars > 0) + 0.15 * np.log1p(clicks)
    )  # fmt: skip
    engagement = volume * (0.4 + 0.6 * np.exp(-idle / 10.0)) + 1.2 * np.exp(-idle / 4.0)
    synced = np.where(rng.random(n) < 0.0003, -1, visits)  # CRM sync bug: fails `min: 0`

    demo = rng.random(n) < _sigmoid(-2.3 + 0.7 * intent + 0.3 * need)
    pricing = rng.random(n) < _sigmoid(-2.8 + 0.6 * intent + 0.9 * demo)
    contact = rng.random(n) < _sigmoid(-1.5 + 0.5 * intent)
    no_checkbox = rng.random(n) < 0.05
    bant = _bant(rng, source, need, intent, firm.size, person.seniority)
    return _Behaviour(
        source=source,
        intent=intent,
        need=need,
        engagement=engagement,
        demo=demo,
        pricing=pricing,
        contact=contact & ~no_checkbox,
        bant=bant,
        columns={
            "lead_source": np.asarray(_SOURCES, dtype=object)[source],
            "web_visits": synced,
            "pages_viewed": pages,
            "time_on_site_min": minutes,
            "content_downloads": downloads,
            "webinars_attended": webinars,
            "email_clicks": clicks,
            "lead_score": score,
            "days_since_last_activity": idle,
            "demo_requested": demo,
            "pricing_requested": pricing,
            "contact_me": pd.arrays.BooleanArray(contact, no_checkbox),
            "bant_budget": _answers(("yes", "no"), bant["budget"]),
            "bant_authority": _answers(("yes", "no"), bant["authority"]),
            "bant_need": _answers(("yes", "no"), bant["need"]),
            "bant_timeline": _answers(_TIMELINES, bant["timeline"]),
        },
    )


def _bant(
    rng: np.random.Generator,
    source: np.ndarray,
    need: np.ndarray,
    intent: np.ndarray,
    size: np.ndarray,
    seniority: np.ndarray,
) -> dict[str, np.ndarray]:
    """BANT answer codes (yes=0/no=1, timeline 0..3 soonest first), -1 where not given.

    Only some forms and SDR calls ask, so all four are missing for about 65 % of leads; a few
    people skip single questions.
    """
    n = len(source)
    asked = rng.random(n) < np.asarray(_SOURCE_BANT_ASKED)[source]
    budget = rng.random(n) >= _sigmoid(0.1 + 0.9 * need + 0.3 * (size >= 3))
    authority = rng.random(n) >= _sigmoid(-0.3 + np.asarray(_AUTHORITY)[seniority] + 0.3 * need)
    needs = rng.random(n) >= _sigmoid(0.5 + 1.0 * need + 0.3 * intent)
    urgency = 0.9 * need + 0.5 * intent + rng.logistic(0.0, 1.0, n)
    timeline = np.digitize(-urgency, [-1.2, 0.0, 1.3])
    codes = {"budget": budget, "authority": authority, "need": needs, "timeline": timeline}
    return {
        name: np.where(asked & (rng.random(n) >= 0.03), code.astype(int), -1)
        for name, code in codes.items()
    }


def _answers(labels: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    """Answer labels for codes, "" where the question was not asked or skipped."""
    return np.append(np.asarray(labels, dtype=object), "")[np.where(codes < 0, len(labels), codes)]


# --- outcomes -----------------------------------------------------------------------------------
def _outcomes(
    rng: np.random.Generator,
    mql_at: np.ndarray,
    firm: _Firm,
    person: _Person,
    behaviour: _Behaviour,
) -> dict[str, np.ndarray]:
    """Sales' decision, its timing, reason and owner, and the SQL outcome of accepted leads."""
    n = len(mql_at)
    student = _looks_like_student(person)
    fit = _fit(mql_at, firm, person) + np.asarray(_SOURCE_FIT)[behaviour.source]
    missing = _missing_fields(firm, person)
    quality = _quality(person, missing)
    # Engagement only counts from a lead worth calling, and little from a private address.
    private = person.free_mail | person.edu_mail
    eng = behaviour.engagement * np.where(private, 0.4, 1.0) * np.where(fit > 0.0, 1.0, 0.5)
    eng = eng - 1.8
    ready = _readiness(firm, behaviour, student)
    routed = _route(rng, firm.region)
    owner = np.where(firm.observed["region"] >= 0, routed, rng.integers(0, len(_REPS), n))
    strictness = rng.normal(0.0, 0.3, len(_REPS))
    duplicate = rng.random(n) < 0.02  # contact already in the CRM: rejected whatever it looks like
    logit = (
        _ACCEPT_INTERCEPT + fit + quality + eng + ready
        - 0.9 * _month_end(mql_at)  # reps chase their quota at month-end, not new leads
        + strictness[owner] + 0.25 * behaviour.need + rng.normal(0.0, _NOISE_SD, n)
    )  # fmt: skip
    accepted = (rng.random(n) < _sigmoid(logit)) & ~duplicate

    hours = np.where(
        rng.random(n) < 0.1, 48 + rng.exponential(24 * 5, n), rng.lognormal(np.log(14), 0.7, n)
    )
    hours = np.clip(hours * np.where(accepted, 1.0, 1.25), 0.5, 24 * 60)  # rejections linger
    decided_at = mql_at + np.round(hours * 3600).astype("timedelta64[s]")
    export = EXPORT_AT.to_datetime64().astype("datetime64[s]")
    decided = (decided_at < export) & (rng.random(n) >= 0.01)  # ~1 % never looked at

    reason = _reasons(rng, fit, missing, eng + ready, person, student, duplicate)
    status = np.where(accepted, "accepted", "rejected").astype(object)
    status = np.where(decided, status, np.where(rng.random(n) < 0.7, "pending", ""))
    sql = _sql(rng, decided_at, firm, person, behaviour, export)
    won = decided & accepted
    return {
        "sal_status": status,
        "sal_decided_at": np.where(decided, decided_at, np.datetime64("NaT")),
        "rejection_reason": np.where(decided & ~accepted, reason, ""),
        "sql_status": np.where(won, sql["status"], ""),
        "sql_at": np.where(won, sql["at"], np.datetime64("NaT")),
        "owner": np.where(decided, np.asarray(_REPS, dtype=object)[owner], ""),
    }


def _looks_like_student(person: _Person) -> np.ndarray:
    """What gives a student away to the rep: the function field, a .edu address or the title."""
    title_seen = person.observed["title"] >= 0
    return (
        (person.observed["function"] == _STUDENT)
        | person.edu_mail
        | ((person.function == _STUDENT) & title_seen)
    )


def _fit(mql_at: np.ndarray, firm: _Firm, person: _Person) -> np.ndarray:
    """ICP fit as the rep reads it from the CRM record, including the launch's drift."""
    launched = mql_at >= LAUNCH_AT.to_datetime64()
    industry = firm.observed["industry"]
    size = firm.observed["size"]
    seniority = person.observed["seniority"]
    both = (size >= 0) & (seniority >= 0)
    interaction = np.where(
        both, np.asarray(_SENIORITY_X_SIZE)[np.maximum(seniority, 0), np.maximum(size, 0)], 0.0
    )
    regulated = np.isin(industry, [_INDUSTRIES.index(name) for name in _REGULATED])
    interaction += regulated * _table(_REGULATED_X_SIZE, size)
    interaction += (industry == _INDUSTRIES.index("software")) * _table(_SOFTWARE_X_SIZE, size)
    return (
        _table(_INDUSTRY_FIT, industry) + launched * _table(_INDUSTRY_DRIFT, industry)
        + _table(_SIZE_FIT, size) + _table(_FUNCTION_FIT, person.observed["function"])
        + _table(_SENIORITY_FIT, seniority) + _table(_REGION_FIT, firm.observed["region"])
        + interaction
    )  # fmt: skip


def _missing_fields(firm: _Firm, person: _Person) -> np.ndarray:
    """How many firmographic and person fields the CRM record lacks."""
    observed = (*firm.observed.values(), *person.observed.values())
    return np.sum([codes < 0 for codes in observed], axis=0)


def _quality(person: _Person, missing: np.ndarray) -> np.ndarray:
    """Data-quality penalty: each missing field hurts more than the last; bad contacts hurt most."""
    return (
        -0.2 * missing - 0.1 * missing**2
        - 0.6 * person.free_mail - 1.0 * person.edu_mail - 1.6 * person.bad_email
        - 0.8 * person.bad_phone - 0.15 * person.no_phone
    )  # fmt: skip


def _readiness(firm: _Firm, behaviour: _Behaviour, student: np.ndarray) -> np.ndarray:
    """Hand-raises and BANT answers; a demo request never counts against a lead.

    A demo request from a 1-10 company or a student gains nothing: sales won't demo to them.
    """
    tiny = firm.observed["size"] == 0
    bant = behaviour.bant
    # A demo for a project more than a year out is a courtesy, not a pipeline opportunity.
    demo_gain = np.where(bant["timeline"] == len(_TIMELINES) - 1, 0.3, 1.1)
    return (
        demo_gain * (behaviour.demo & ~tiny & ~student) + 0.6 * (behaviour.pricing & ~student)
        + 0.35 * behaviour.contact
        + _table((0.5, -0.4), bant["budget"]) + _table((0.4, -0.3), bant["authority"])
        + _table((0.6, -0.7), bant["need"]) + _table(_TIMELINE_FIT, bant["timeline"])
    )  # fmt: skip


def _route(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Index of the rep who owns the lead: a random rep of the lead's region."""
    first, count = np.asarray(_REPS_BY_REGION).T
    return first[region] + (rng.random(len(region)) * count[region]).astype(int)


def _reasons(
    rng: np.random.Generator,
    fit: np.ndarray,
    missing: np.ndarray,
    readiness: np.ndarray,
    person: _Person,
    student: np.ndarray,
    duplicate: np.ndarray,
) -> np.ndarray:
    """The reason a rep would give for rejecting each lead, drawn in proportion to what hurt it.

    Students and .edu addresses are "competitor_student", known contacts "duplicate"; the rest is
    "not_icp", "bad_data" or "not_ready", weighted by poor fit, broken contact data and missing
    fields, and low engagement and readiness.
    """
    n = len(fit)
    weights = np.column_stack(
        [
            0.2 + np.exp(-1.2 * fit),
            0.15 + 4.0 * person.bad_email + 2.0 * person.bad_phone + 0.4 * missing,
            0.2 + np.exp(-readiness),
        ]
    )
    reason = np.asarray(_REASONS[:3], dtype=object)[_pick_rows(rng, np.log(weights))]
    reason = np.where(student & (rng.random(n) < 0.9), "competitor_student", reason)
    return np.where(duplicate, "duplicate", reason)


def _sql(
    rng: np.random.Generator,
    decided_at: np.ndarray,
    firm: _Firm,
    person: _Person,
    behaviour: _Behaviour,
    export: np.datetime64,
) -> dict[str, np.ndarray]:
    """Whether an accepted lead becomes an SQL, and when ("open" if not known at export)."""
    n = len(decided_at)
    bant = behaviour.bant
    logit = (
        _SQL_INTERCEPT
        + _table((0.7, -0.5), bant["budget"]) + _table((0.5, -0.3), bant["authority"])
        + _table((0.5, -0.6), bant["need"]) + _table((0.8, 0.3, -0.2, -0.7), bant["timeline"])
        + np.asarray((0.4, 0.5, 0.3, 0.0, -0.3, -0.8))[person.seniority]
        + np.asarray((-0.5, -0.2, 0.0, 0.3, 0.3, 0.2))[firm.size]
        + 0.6 * behaviour.demo + 0.5 * behaviour.pricing
        + 0.3 * behaviour.intent + 0.3 * behaviour.need + rng.normal(0.0, 0.8, n)
    )  # fmt: skip
    qualified = rng.random(n) < _sigmoid(logit)
    days = 1.0 + rng.gamma(1.5, 8.0, n)
    at = decided_at + np.round(days * 86_400).astype("timedelta64[s]")
    status = np.where(qualified, "yes", "no").astype(object)
    return {
        "status": np.where(at < export, status, "open"),
        "at": np.where(qualified & (at < export), at, np.datetime64("NaT")),
    }


def _typed(name: str, values: object) -> object:
    """One column in its documented dtype: str, int64, float64, boolean or datetime64[s]."""
    if name in _BOOLEAN_COLUMNS:
        return pd.array(values, dtype="boolean")
    values = np.asarray(values)
    if name in _DATETIME_COLUMNS:
        return values.astype("datetime64[s]")
    if values.dtype.kind in "iuf":
        return values
    # Object arrays convert to pandas' Arrow-backed strings far faster than StringDType does.
    return pd.array(values.astype(object), dtype="str")
