"""Quality review of operators' answers (the orders: "nghe, rà soát, đối chiếu kết quả xử lý";
"kiểm tra … chất lượng trả lời … đùn đẩy"); pure rules, no I/O, time passed in.

Config (a tenant's key, validated like every other key)::

    quality:
      sample_per_operator: 5   # 1..100 calls per operator per week to review; default 5

Decisions:

* Periods are the tenant's local ISO weeks (``2026-W49``: Monday 00:00 to the next Monday
  00:00, local time) or local calendar months (``2026-12``); a call belongs to the period its
  arrival falls in.
* The weekly sample: of the calls an operator answered in the week that still have a
  recording, the ``sample_per_operator`` whose hash of (tenant, week, operator, call id) is
  smallest. The same week gives the same sample to every supervisor and every app instance,
  whatever order the database returns the calls in; a call arriving late (from the journal)
  can only displace one with a larger hash.
* Scores: greeting (chào hỏi), accuracy (trả lời chính xác) and attitude (thái độ) on 1..5
  (1 rất kém … 5 rất tốt); "không đùn đẩy" is đạt / không đạt (a yes/no matter: the operator
  did or did not pass the citizen on without cause), and "không đạt" needs a note saying what
  happened (the orders ask units to "xử lý trách nhiệm", which needs the facts).
* The report counts reviews (a call two supervisors reviewed counts twice), averages each
  1..5 criterion over them, gives the share of "đạt" for "không đùn đẩy", and lists the calls
  at least one review found "đùn đẩy".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.config.base import BaseParser, join_key

QUALITY_KEYS: Final = ("quality",)
DEFAULT_SAMPLE: Final = 5
MAX_SAMPLE: Final = 100
MAX_NOTES: Final = 2000
SCORE_MIN: Final = 1
SCORE_MAX: Final = 5


@dataclass(frozen=True)
class QualityPolicy:
    """A tenant's quality review settings."""

    sample_per_operator: int = DEFAULT_SAMPLE


DEFAULT_QUALITY: Final = QualityPolicy()


def parse_quality_section(p: BaseParser, m: Mapping[str, object],
                          key: str) -> QualityPolicy | None:
    """Validate the tenant's ``quality`` key; errors go to ``p`` (None when invalid)."""
    raw = m.get("quality")
    if raw is None:
        return DEFAULT_QUALITY
    qk = join_key(key, "quality")
    section = p.mapping(raw, qk, ("sample_per_operator",))
    if section is None:
        return None
    if section.get("sample_per_operator") is None:
        return DEFAULT_QUALITY
    n = p.integer(section["sample_per_operator"], join_key(qk, "sample_per_operator"),
                  1, MAX_SAMPLE)
    return None if n is None else QualityPolicy(sample_per_operator=n)


# --- periods ------------------------------------------------------------------------------

_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Period:
    """A local ISO week or calendar month of one time zone, as UTC bounds [start, end)."""

    key: str  # "2026-W49" or "2026-12"
    label: str  # Vietnamese: "tuần 49/2026 (30/11–06/12/2026)", "tháng 12/2026"
    start: dt.datetime
    end: dt.datetime

    def holds(self, at: dt.datetime) -> bool:
        """Whether the instant ``at`` falls in the period."""
        return self.start <= at < self.end


def _utc(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.UTC)


def parse_period(text: str, timezone: str) -> Period:
    """The period ``2026-W49`` (ISO week) or ``2026-12`` (month) in ``timezone``;
    ValueError in Vietnamese when it is neither."""
    zone = ZoneInfo(timezone)
    text = text.strip()
    if m := _WEEK.fullmatch(text):
        year, week = int(m[1]), int(m[2])
        try:
            monday = dt.date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"tuần {text!r} không tồn tại (năm {year} có "
                             f"{dt.date(year, 12, 28).isocalendar().week} tuần)") from None
        sunday = monday + dt.timedelta(days=6)
        return Period(f"{year}-W{week:02d}",
                      f"tuần {week}/{year} ({monday:%d/%m}–{sunday:%d/%m/%Y})",
                      _utc(monday, zone), _utc(monday + dt.timedelta(days=7), zone))
    if m := _MONTH.fullmatch(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"tháng {text!r} không hợp lệ")
        first = dt.date(year, month, 1)
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        return Period(f"{year}-{month:02d}", f"tháng {month}/{year}", _utc(first, zone),
                      _utc(nxt, zone))
    raise ValueError(f"kỳ {text!r} không hợp lệ: ghi tuần dạng 2026-W49 hoặc tháng dạng "
                     "2026-12")


def week_of(now: dt.datetime, timezone: str) -> Period:
    """The local ISO week holding the instant ``now``."""
    iso = now.astimezone(ZoneInfo(timezone)).isocalendar()
    return parse_period(f"{iso.year}-W{iso.week:02d}", timezone)


def shift_week(period: Period, weeks: int, timezone: str) -> Period:
    """The week ``weeks`` before (negative) or after ``period`` (a week)."""
    middle = period.start + dt.timedelta(days=3, hours=12) + dt.timedelta(weeks=weeks)
    return week_of(middle, timezone)


# --- the weekly sample -----------------------------------------------------------------------


@dataclass(frozen=True)
class CallFacts:
    """What the sample needs of one call record."""

    call_id: str
    operator: str | None
    outcome: str
    arrived_at: dt.datetime
    recording: str | None


def sample_key(tenant: str, week: str, operator: str, call_id: str) -> str:
    """The call's place in its operator's weekly draw (smallest first)."""
    return hashlib.sha256(f"{tenant}\x1f{week}\x1f{operator}\x1f{call_id}".encode()).hexdigest()


def reviewable(call: CallFacts) -> bool:
    """Answered by an operator and still recorded: a call one can listen to and review."""
    return call.outcome == "answered" and bool(call.operator) and bool(call.recording)


def weekly_sample(calls: Iterable[CallFacts], *, tenant: str, week: Period,
                  per_operator: int) -> dict[str, list[str]]:
    """Per operator (sorted by extension), the ids of the week's calls to review, in draw
    order: at most ``per_operator`` answered, recorded calls that arrived in ``week``."""
    if per_operator < 0:
        raise ValueError(f"per_operator: expected >= 0, got {per_operator}")
    by_operator: dict[str, list[str]] = {}
    for c in calls:
        if reviewable(c) and week.holds(c.arrived_at):
            assert c.operator is not None
            by_operator.setdefault(c.operator, []).append(c.call_id)
    return {op: sorted(set(ids), key=lambda i: sample_key(tenant, week.key, op, i))[:per_operator]
            for op, ids in sorted(by_operator.items())}


# --- the scoring form ------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One line of the scoring form."""

    id: str
    label: str  # Vietnamese
    kind: str  # "score" (1..5) or "pass" (đạt / không đạt)


CRITERIA: Final = (
    Criterion("greeting", "Chào hỏi", "score"),
    Criterion("accuracy", "Trả lời chính xác", "score"),
    Criterion("attitude", "Thái độ", "score"),
    Criterion("no_buck_passing", "Không đùn đẩy", "pass"),
)
SCORE_LABELS: Final = {1: "1 - Rất kém", 2: "2 - Kém", 3: "3 - Đạt", 4: "4 - Tốt",
                       5: "5 - Rất tốt"}
PASS_LABELS: Final = {True: "Đạt", False: "Không đạt (có đùn đẩy)"}


@dataclass(frozen=True)
class Scores:
    """One reviewer's scores of one call."""

    greeting: int
    accuracy: int
    attitude: int
    no_buck_passing: bool  # False: the operator passed the buck ("đùn đẩy")
    notes: str = ""


def validate_scores(form: Mapping[str, str]) -> Scores | dict[str, str]:
    """The scores a form gives, or the errors (field -> Vietnamese message)."""
    errors: dict[str, str] = {}
    values: dict[str, int] = {}
    for c in CRITERIA:
        if c.kind != "score":
            continue
        raw = (form.get(c.id) or "").strip()
        if raw not in {str(n) for n in range(SCORE_MIN, SCORE_MAX + 1)}:
            errors[c.id] = f"{c.label}: chọn điểm từ {SCORE_MIN} đến {SCORE_MAX}."
        else:
            values[c.id] = int(raw)
    buck = (form.get("no_buck_passing") or "").strip()
    if buck not in ("dat", "khong_dat"):
        errors["no_buck_passing"] = "Không đùn đẩy: chọn Đạt hoặc Không đạt."
    notes = (form.get("notes") or "").strip()
    if len(notes) > MAX_NOTES:
        errors["notes"] = f"Ghi chú dài quá {MAX_NOTES} ký tự; vui lòng rút gọn."
    elif buck == "khong_dat" and not notes:
        errors["notes"] = "Có đùn đẩy: ghi rõ trường hợp trong phần ghi chú."
    if errors:
        return errors
    return Scores(values["greeting"], values["accuracy"], values["attitude"],
                  buck == "dat", notes)


# --- the per-operator report -----------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFacts:
    """What the report needs of one stored review."""

    call_id: str
    operator: str
    reviewer: str
    scores: Scores


@dataclass(frozen=True)
class OperatorSummary:
    """One operator's line of the report."""

    operator: str
    reviews: int
    calls: int
    greeting: float | None  # average of the reviews' scores, None without reviews
    accuracy: float | None
    attitude: float | None
    no_buck_passing_rate: float | None  # share of reviews "đạt", 0..1
    buck_passing_calls: tuple[str, ...] = field(default=())  # calls a review found "đùn đẩy"


def _avg(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def operator_report(reviews: Iterable[ReviewFacts],
                    operators: Iterable[str] = ()) -> list[OperatorSummary]:
    """Per operator (by extension; ``operators`` adds lines for those without reviews)."""
    grouped: dict[str, list[ReviewFacts]] = {op: [] for op in operators}
    for r in reviews:
        grouped.setdefault(r.operator, []).append(r)
    out: list[OperatorSummary] = []
    for op, rs in sorted(grouped.items()):
        passed = [r.scores.no_buck_passing for r in rs]
        buck = sorted({r.call_id for r in rs if not r.scores.no_buck_passing})
        out.append(OperatorSummary(
            operator=op, reviews=len(rs), calls=len({r.call_id for r in rs}),
            greeting=_avg([r.scores.greeting for r in rs]),
            accuracy=_avg([r.scores.accuracy for r in rs]),
            attitude=_avg([r.scores.attitude for r in rs]),
            no_buck_passing_rate=(round(sum(passed) / len(passed), 4) if passed else None),
            buck_passing_calls=tuple(buck)))
    return out


# --- plays and downloads ---------------------------------------------------------------------

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def starts_a_play(range_header: str | None) -> bool:
    """Whether a request for a recording starts a play (and so is audited): no Range, or a
    range from byte 0. A browser's later Range requests (seeking, the next chunk) are parts
    of the same play and are not audited again."""
    if not range_header:
        return True
    m = _RANGE.fullmatch(range_header.strip().split(",")[0].strip())
    if m is None:
        return True  # a range aiohttp will refuse or ignore: audit it rather than miss a play
    return m[1] == "0"
