"""/metrics rendering (pure): exact text, escaping, every agent state, the text format's grammar."""

from __future__ import annotations

import re
import threading

from prometheus_client.parser import text_string_to_metric_families

from callcenter.console.metrics import (
    AGENT_STATES,
    MetricsSample,
    OutcomeCount,
    OutcomeCounter,
    TenantLive,
    escape_label,
    format_value,
    only_tenant,
    render_metrics,
)
from callcenter.domain.call import OUTCOMES

DONGNAI = TenantLive(tenant="dongnai", shift="day", lines_in_use=3, lines_limit=15, waiting=2,
                     ringing=1, agents=(("available", 1), ("on_call", 2)), agents_reachable=3)


def sample(**overrides: object) -> MetricsSample:
    values: dict[str, object] = dict(
        tenants=("dongnai",), live=(DONGNAI,),
        outcomes=(OutcomeCount("dongnai", "answered", 7), OutcomeCount("-", "not_found", 1)),
        redis_up=True, ari_connected=True, ami_connected=False, loop_lag_p99_ms=1.25,
        loop_lag_max_ms=7.0, call_sessions=4, journal_pending=0)
    values.update(overrides)
    return MetricsSample(**values)  # type: ignore[arg-type]


EXPECTED = """\
# HELP hotline_pool_lines_in_use Lines of the tenant's shift pool held by calls now (all instances).
# TYPE hotline_pool_lines_in_use gauge
hotline_pool_lines_in_use{tenant="dongnai",shift="day"} 3
# HELP hotline_pool_lines_limit Lines of the tenant's shift in force (the pool's size).
# TYPE hotline_pool_lines_limit gauge
hotline_pool_lines_limit{tenant="dongnai",shift="day"} 15
# HELP hotline_queue_calls Calls in the operators' queue: waiting, or ringing an operator.
# TYPE hotline_queue_calls gauge
hotline_queue_calls{tenant="dongnai",state="waiting"} 2
hotline_queue_calls{tenant="dongnai",state="ringing"} 1
# HELP hotline_agents Operators by state.
# TYPE hotline_agents gauge
hotline_agents{tenant="dongnai",state="logged_out"} 0
hotline_agents{tenant="dongnai",state="available"} 1
hotline_agents{tenant="dongnai",state="ringing"} 0
hotline_agents{tenant="dongnai",state="on_call"} 2
hotline_agents{tenant="dongnai",state="wrap_up"} 0
hotline_agents{tenant="dongnai",state="paused"} 0
# HELP hotline_agents_reachable Operators whose softphone is registered and answers qualify.
# TYPE hotline_agents_reachable gauge
hotline_agents_reachable{tenant="dongnai"} 3
# HELP hotline_calls_total Finished calls by outcome since this process started.
# TYPE hotline_calls_total counter
hotline_calls_total{tenant="dongnai",outcome="answered"} 7
hotline_calls_total{tenant="dongnai",outcome="busy"} 0
hotline_calls_total{tenant="dongnai",outcome="abandoned"} 0
hotline_calls_total{tenant="dongnai",outcome="not_found"} 0
hotline_calls_total{tenant="dongnai",outcome="failed"} 0
hotline_calls_total{tenant="dongnai",outcome="callback"} 0
hotline_calls_total{tenant="-",outcome="not_found"} 1
# HELP hotline_redis_up 1 when this scrape read the live state from Redis.
# TYPE hotline_redis_up gauge
hotline_redis_up 1
# HELP hotline_ari_connected 1 while this process's ARI websocket is connected.
# TYPE hotline_ari_connected gauge
hotline_ari_connected 1
# HELP hotline_ami_connected 1 while this process's AMI session is logged in.
# TYPE hotline_ami_connected gauge
hotline_ami_connected 0
# HELP hotline_event_loop_lag_p99_ms Event-loop lag, 99th percentile over the recent window, \
milliseconds.
# TYPE hotline_event_loop_lag_p99_ms gauge
hotline_event_loop_lag_p99_ms 1.25
# HELP hotline_event_loop_lag_max_ms Event-loop lag, maximum over the recent window, \
milliseconds.
# TYPE hotline_event_loop_lag_max_ms gauge
hotline_event_loop_lag_max_ms 7
# HELP hotline_call_sessions Calls this process is serving now.
# TYPE hotline_call_sessions gauge
hotline_call_sessions 4
# HELP hotline_journal_records_pending Call records in the journal, not yet written to the \
database.
# TYPE hotline_journal_records_pending gauge
hotline_journal_records_pending 0
"""

# The text format 0.0.4, strictly: comment lines, or name{labels} value, nothing else.
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)"
SAMPLE = re.compile(rf"({NAME})(?:\{{{LABEL}(?:,{LABEL})*\}})? {VALUE}")
HELP = re.compile(rf"# HELP ({NAME}) (?:[^\\\n]|\\\\|\\n)*")
TYPE = re.compile(rf"# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)")


def check_grammar(text: str) -> dict[str, str]:
    """Every line well formed; each family once, HELP then TYPE before its samples."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    families: dict[str, str] = {}
    current = None
    for line in text[:-1].split("\n"):
        if m := HELP.fullmatch(line):
            assert m[1] not in families, f"family {m[1]} repeated"
            current = m[1]
        elif m := TYPE.fullmatch(line):
            assert m[1] == current, f"TYPE of {m[1]} without its HELP just before"
            families[m[1]] = m[2]
        else:
            m = SAMPLE.fullmatch(line)
            assert m is not None, f"malformed line: {line!r}"
            assert m[1] == current, f"sample {m[1]} outside its family {current}"
    return families


def test_given_small_sample_when_rendered_then_exact_text() -> None:
    assert render_metrics(sample()) == EXPECTED


def test_given_sample_when_rendered_then_strict_grammar_and_prefixed_names() -> None:
    families = check_grammar(render_metrics(sample()))
    assert all(name.startswith("hotline_") for name in families)
    assert families["hotline_calls_total"] == "counter"
    assert {k for k, v in families.items() if v == "counter"} == {"hotline_calls_total"}
    # the checker itself refuses what the format forbids
    for bad in ('# HELP a x\n# TYPE a gauge\na{t="x"y"} 1\n',  # unescaped quote
                '# HELP a x\n# TYPE a gauge\na 1\n# HELP a x\n# TYPE a gauge\na 2\n',
                '# HELP a x\n# TYPE a gauge\nb 1\n'):  # sample outside its family
        try:
            check_grammar(bad)
        except AssertionError:
            continue
        raise AssertionError(f"grammar check accepted {bad!r}")


def test_given_no_agents_when_rendered_then_all_six_states_present_at_zero() -> None:
    live = TenantLive("binhduong", "all", 0, 3, 0, 0, (), 0)
    text = render_metrics(sample(tenants=("binhduong",), live=(live,), outcomes=()))
    lines = [ln for ln in text.splitlines() if ln.startswith("hotline_agents{")]
    assert lines == [f'hotline_agents{{tenant="binhduong",state="{s}"}} 0'
                     for s in ("logged_out", "available", "ringing", "on_call", "wrap_up",
                               "paused")]
    assert len(AGENT_STATES) == 6


def test_given_two_tenants_when_rendered_then_every_state_of_each_and_parser_agrees() -> None:
    other = TenantLive("binhduong", "all", 1, 3, 0, 0, (("paused", 2),), 2)
    text = render_metrics(sample(tenants=("dongnai", "binhduong"), live=(DONGNAI, other)))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    agents = {(s.labels["tenant"], s.labels["state"]): s.value
              for s in fams["hotline_agents"].samples}
    assert set(agents) == {(t, s) for t in ("dongnai", "binhduong") for s in AGENT_STATES}
    assert agents[("binhduong", "paused")] == 2 and agents[("dongnai", "on_call")] == 2
    calls = {(s.labels["tenant"], s.labels["outcome"]): s.value
             for s in fams["hotline_calls"].samples}
    assert set(calls) == ({(t, o) for t in ("dongnai", "binhduong") for o in OUTCOMES}
                          | {("-", "not_found")})
    assert fams["hotline_calls"].type == "counter"
    assert calls[("dongnai", "answered")] == 7 and calls[("binhduong", "answered")] == 0


def test_given_quote_backslash_newline_in_label_when_rendered_then_escaped_and_parsed() -> None:
    shift = 'ca "đêm"\\tết\nmới'
    live = TenantLive("dongnai", shift, 1, 2, 0, 0, (), 0)
    text = render_metrics(sample(live=(live,)))
    assert 'shift="ca \\"đêm\\"\\\\tết\\nmới"' in text
    check_grammar(text)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    (used,) = fams["hotline_pool_lines_in_use"].samples
    assert used.labels == {"tenant": "dongnai", "shift": shift}
    assert escape_label("a\\b") == "a\\\\b"


def test_given_redis_down_when_rendered_then_no_live_series_but_counters_and_health() -> None:
    text = render_metrics(sample(live=(), redis_up=False))
    check_grammar(text)
    assert "hotline_redis_up 0\n" in text
    assert not re.search(r"^hotline_(pool|queue|agents)", text, re.M)
    assert 'hotline_calls_total{tenant="dongnai",outcome="busy"} 0\n' in text


def test_given_values_when_formatted_then_prometheus_spelling() -> None:
    assert [format_value(v) for v in (True, False, 0, 12, 2.0, 0.125, float("nan"),
                                      float("inf"), float("-inf"))] == \
        ["1", "0", "0", "12", "2", "0.125", "NaN", "+Inf", "-Inf"]


def test_given_tenant_scope_when_filtered_then_other_tenants_gone_process_figures_kept() -> None:
    other = TenantLive("binhduong", "all", 1, 3, 0, 0, (), 0)
    full = sample(tenants=("dongnai", "binhduong"), live=(DONGNAI, other),
                  outcomes=(OutcomeCount("binhduong", "busy", 2),
                            OutcomeCount("dongnai", "answered", 1),
                            OutcomeCount("-", "not_found", 4)))
    scoped = only_tenant(full, "binhduong")
    assert scoped.tenants == ("binhduong",) and scoped.live == (other,)
    assert scoped.outcomes == (OutcomeCount("binhduong", "busy", 2),)
    assert (scoped.call_sessions, scoped.ari_connected) == (full.call_sessions, True)
    assert "dongnai" not in render_metrics(scoped)


def test_given_counts_from_threads_when_snapshot_then_exact_and_sorted() -> None:
    counter = OutcomeCounter()

    def work() -> None:
        for _ in range(1000):
            counter.count("dongnai", "answered")
        counter.count("-", "not_found")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.snapshot() == (OutcomeCount("-", "not_found", 8),
                                  OutcomeCount("dongnai", "answered", 8000))
