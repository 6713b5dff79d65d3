"""/metrics rendering (pure): exact text, escaping, every agent state, the text format's grammar."""

from __future__ import annotations

import datetime as dt
import platform
import re
import threading

from prometheus_client.parser import text_string_to_metric_families

from callcenter.calls import OUTCOMES
from callcenter.console.metrics import (
    AGENT_STATES,
    CallMetrics,
    FaultCounts,
    MetricsSample,
    OutcomeCount,
    OutcomeCounter,
    TenantLive,
    hotline_version,
    make_registry,
    only_tenant,
    render_metrics,
)
from callcenter.store.data import CallRecordData

DONGNAI = TenantLive(tenant="dongnai", shift="day", lines_in_use=3, lines_limit=15, waiting=2,
                     ringing=1, agents=(("available", 1), ("on_call", 2)), agents_reachable=3)


def sample(**overrides: object) -> MetricsSample:
    values: dict[str, object] = dict(
        tenants=("dongnai",), live=(DONGNAI,),
        outcomes=(OutcomeCount("dongnai", "answered", 7), OutcomeCount("-", "not_found", 1)),
        redis_up=True, ari_connected=True, ami_connected=False, loop_lag_p99_ms=1.25,
        loop_lag_max_ms=7.0, call_sessions=4, journal_pending=0,
        faults=FaultCounts(degraded=True, redis_outages=1, degraded_admissions=3,
                           asterisk_restarts=2, sip_scanner_requests=5, sip_sources_refused=2,
                           sip_account_probes=6, sip_refusals=3, sip_refusals_evicted=1))
    values.update(overrides)
    return MetricsSample(**values)  # type: ignore[arg-type]


# What prometheus-client writes (labels sorted, values as floats), pinned so a change shows.
EXPECTED = """\
# HELP hotline_pool_lines_in_use Lines of the tenant's shift pool held by calls now (all instances).
# TYPE hotline_pool_lines_in_use gauge
hotline_pool_lines_in_use{shift="day",tenant="dongnai"} 3.0
# HELP hotline_pool_lines_limit Lines of the tenant's shift in force (the pool's size).
# TYPE hotline_pool_lines_limit gauge
hotline_pool_lines_limit{shift="day",tenant="dongnai"} 15.0
# HELP hotline_queue_calls Calls in the operators' queue: waiting, or ringing an operator.
# TYPE hotline_queue_calls gauge
hotline_queue_calls{state="waiting",tenant="dongnai"} 2.0
hotline_queue_calls{state="ringing",tenant="dongnai"} 1.0
# HELP hotline_agents Operators by state.
# TYPE hotline_agents gauge
hotline_agents{state="logged_out",tenant="dongnai"} 0.0
hotline_agents{state="available",tenant="dongnai"} 1.0
hotline_agents{state="ringing",tenant="dongnai"} 0.0
hotline_agents{state="on_call",tenant="dongnai"} 2.0
hotline_agents{state="wrap_up",tenant="dongnai"} 0.0
hotline_agents{state="paused",tenant="dongnai"} 0.0
# HELP hotline_agents_reachable Operators whose softphone is registered and answers qualify.
# TYPE hotline_agents_reachable gauge
hotline_agents_reachable{tenant="dongnai"} 3.0
# HELP hotline_operators_min Operators the tenant's shift in force requires logged in (0: no \
minimum).
# TYPE hotline_operators_min gauge
hotline_operators_min{shift="day",tenant="dongnai"} 0.0
# HELP hotline_shift_understaffed 1 while fewer operators are logged in than the shift's minimum.
# TYPE hotline_shift_understaffed gauge
hotline_shift_understaffed{shift="day",tenant="dongnai"} 0.0
# HELP hotline_calls_total Finished calls by outcome since this process started.
# TYPE hotline_calls_total counter
hotline_calls_total{outcome="answered",tenant="dongnai"} 7.0
hotline_calls_total{outcome="busy",tenant="dongnai"} 0.0
hotline_calls_total{outcome="abandoned",tenant="dongnai"} 0.0
hotline_calls_total{outcome="not_found",tenant="dongnai"} 0.0
hotline_calls_total{outcome="failed",tenant="dongnai"} 0.0
hotline_calls_total{outcome="callback",tenant="dongnai"} 0.0
hotline_calls_total{outcome="not_found",tenant="-"} 1.0
# HELP hotline_redis_up 1 when this scrape read the live state from Redis.
# TYPE hotline_redis_up gauge
hotline_redis_up 1.0
# HELP hotline_ari_connected 1 while this process's ARI websocket is connected.
# TYPE hotline_ari_connected gauge
hotline_ari_connected 1.0
# HELP hotline_ami_connected 1 while this process's AMI session is logged in.
# TYPE hotline_ami_connected gauge
hotline_ami_connected 0.0
# HELP hotline_event_loop_lag_p99_seconds Event-loop lag, 99th percentile over the recent window, \
seconds.
# TYPE hotline_event_loop_lag_p99_seconds gauge
hotline_event_loop_lag_p99_seconds 0.00125
# HELP hotline_event_loop_lag_max_seconds Event-loop lag, maximum over the recent window, seconds.
# TYPE hotline_event_loop_lag_max_seconds gauge
hotline_event_loop_lag_max_seconds 0.007
# HELP hotline_call_sessions Calls this process is serving now.
# TYPE hotline_call_sessions gauge
hotline_call_sessions 4.0
# HELP hotline_journal_records_pending Call records in the journal, not yet written to the \
database.
# TYPE hotline_journal_records_pending gauge
hotline_journal_records_pending 0.0
# HELP hotline_journal_write_failures_total Call records the journal could not take (disk full, \
read-only, unwritable) since this process started; each went to the database directly or was \
held in memory.
# TYPE hotline_journal_write_failures_total counter
hotline_journal_write_failures_total 0.0
# HELP hotline_call_records_held Call records held only in memory (the journal and the database \
both failed), retried until they land.
# TYPE hotline_call_records_held gauge
hotline_call_records_held 0.0
# HELP hotline_call_records_dropped_total Call records lost because the journal and the database \
failed and the memory bound was reached, since this process started.
# TYPE hotline_call_records_dropped_total counter
hotline_call_records_dropped_total 0.0
# HELP hotline_config_reload_failed 1 when the last configuration reload was refused (the \
previous one stays in force).
# TYPE hotline_config_reload_failed gauge
hotline_config_reload_failed 0.0
# HELP hotline_lines_degraded 1 while this process admits calls on its own line count because \
Redis is unreachable.
# TYPE hotline_lines_degraded gauge
hotline_lines_degraded 1.0
# HELP hotline_sip_sources_refused SIP source addresses this process's SIP guard refuses now \
(wrong passwords).
# TYPE hotline_sip_sources_refused gauge
hotline_sip_sources_refused 2.0
# HELP hotline_redis_outages_total Times this process lost Redis (and went DEGRADED).
# TYPE hotline_redis_outages_total counter
hotline_redis_outages_total 1.0
# HELP hotline_degraded_admissions_total Calls admitted on this process's own line count while \
Redis was unreachable.
# TYPE hotline_degraded_admissions_total counter
hotline_degraded_admissions_total 3.0
# HELP hotline_asterisk_restarts_total Times this process found Asterisk restarted when its ARI \
session came back.
# TYPE hotline_asterisk_restarts_total counter
hotline_asterisk_restarts_total 2.0
# HELP hotline_sip_scanner_requests_total SIP requests denied for carrying a known SIP scanner's \
User-Agent (their source is never refused for it: it may be forged).
# TYPE hotline_sip_scanner_requests_total counter
hotline_sip_scanner_requests_total 5.0
# HELP hotline_sip_account_probes_total SIP authentication failures for accounts that do not \
exist (their source is never refused for them: it may be forged).
# TYPE hotline_sip_account_probes_total counter
hotline_sip_account_probes_total 6.0
# HELP hotline_sip_refusals_total SIP sources refused for repeated wrong passwords.
# TYPE hotline_sip_refusals_total counter
hotline_sip_refusals_total 3.0
# HELP hotline_sip_refusals_evicted_total SIP refusals lifted before their end because the \
refused list was full (sip_guard.max_refused).
# TYPE hotline_sip_refusals_evicted_total counter
hotline_sip_refusals_evicted_total 1.0
# HELP hotline_build_info Versions of this process: the hotline, Python, and the Asterisk it \
drives (empty until located).
# TYPE hotline_build_info gauge
hotline_build_info{asterisk="",python="@PYTHON@",version="@VERSION@"} 1.0
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
            own = {current} | ({f"{current}_{x}" for x in ("bucket", "sum", "count")}
                               if families.get(str(current)) == "histogram" else set())
            assert m[1] in own, f"sample {m[1]} outside its family {current}"
    return families


def test_given_small_sample_when_rendered_then_exact_text() -> None:
    assert render_metrics(sample()) == EXPECTED.replace(
        "@PYTHON@", platform.python_version()).replace("@VERSION@", hotline_version())


def test_given_sample_when_rendered_then_strict_grammar_and_prefixed_names() -> None:
    families = check_grammar(render_metrics(sample()))
    assert all(name.startswith("hotline_") for name in families)
    assert families["hotline_calls_total"] == "counter"
    assert {k for k, v in families.items() if v == "counter"} == {
        "hotline_calls_total", "hotline_journal_write_failures_total",
        "hotline_call_records_dropped_total", "hotline_redis_outages_total",
        "hotline_degraded_admissions_total", "hotline_asterisk_restarts_total",
        "hotline_sip_scanner_requests_total", "hotline_sip_account_probes_total",
        "hotline_sip_refusals_total", "hotline_sip_refusals_evicted_total"}
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
    assert lines == [f'hotline_agents{{state="{s}",tenant="binhduong"}} 0.0'
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


def test_given_fewer_logged_in_than_shift_minimum_when_rendered_then_understaffed_1() -> None:
    # 1 available + 2 paused + 4 logged out: 3 logged in.
    agents = (("available", 1), ("paused", 2), ("logged_out", 4))
    cases = [(4, 1.0), (3, 0.0), (0, 0.0)]
    for minimum, expected in cases:
        live = TenantLive("thanhhoa", "ca-sang", 0, 4, 0, 0, agents, 3, operators_min=minimum)
        text = render_metrics(sample(tenants=("thanhhoa",), live=(live,), outcomes=()))
        f = {s.name: s for m in text_string_to_metric_families(text) for s in m.samples}
        assert f["hotline_operators_min"].value == minimum
        assert f["hotline_operators_min"].labels == {"tenant": "thanhhoa", "shift": "ca-sang"}
        assert f["hotline_shift_understaffed"].value == expected, minimum


def test_given_quote_backslash_newline_in_label_when_rendered_then_escaped_and_parsed() -> None:
    shift = 'ca "đêm"\\tết\nmới'
    live = TenantLive("dongnai", shift, 1, 2, 0, 0, (), 0)
    text = render_metrics(sample(live=(live,)))
    assert 'shift="ca \\"đêm\\"\\\\tết\\nmới"' in text
    check_grammar(text)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    (used,) = fams["hotline_pool_lines_in_use"].samples
    assert used.labels == {"tenant": "dongnai", "shift": shift}


def test_given_redis_down_when_rendered_then_no_live_series_but_counters_and_health() -> None:
    text = render_metrics(sample(live=(), redis_up=False))
    check_grammar(text)
    assert "hotline_redis_up 0.0\n" in text
    assert not re.search(r"^hotline_(pool|queue|agents)", text, re.M)
    assert 'hotline_calls_total{outcome="busy",tenant="dongnai"} 0.0\n' in text


def test_given_lag_in_ms_when_rendered_then_base_unit_seconds_and_no_ms_family() -> None:
    text = render_metrics(sample(loop_lag_p99_ms=40.0, loop_lag_max_ms=1500.0))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["hotline_event_loop_lag_p99_seconds"].samples[0].value == 0.04
    assert fams["hotline_event_loop_lag_max_seconds"].samples[0].value == 1.5
    assert "_ms" not in text


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


T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def finished(n: int, tenant: str = "dongnai", outcome: str = "answered",
             **times: float) -> CallRecordData:
    """A call record whose times are ``T0`` plus the given seconds (arrived at ``T0``)."""
    at = {k: T0 + dt.timedelta(seconds=v) for k, v in times.items()}
    return CallRecordData(
        id=f"pbx1:{n}", node="pbx1", tenant=tenant, dialled="1022", caller="0900000000",
        shift="day", pool_limit=15, arrived_at=T0, answered_at=at.get("answered_at"),
        ended_at=at.get("ended_at", T0 + dt.timedelta(seconds=900)), outcome=outcome,
        cause=None, cause_code=None, linkedid=str(n), queued_at=at.get("queued_at"),
        bridged_at=at.get("bridged_at"), talk_ended_at=at.get("talk_ended_at"))


def histogram(text: str, name: str, tenant: str) -> dict[str, float]:
    """le -> cumulative count, plus "count" and "sum", of one tenant's histogram."""
    fam = next(f for f in text_string_to_metric_families(text) if f.name == name)
    assert fam.type == "histogram"
    out: dict[str, float] = {}
    for smp in fam.samples:
        if smp.labels.get("tenant") != tenant:
            continue
        key = smp.labels["le"] if smp.name.endswith("_bucket") else smp.name.rsplit("_", 1)[1]
        out[key] = smp.value
    return out


def test_given_finished_calls_when_recorded_then_outcomes_and_three_histograms() -> None:
    calls = CallMetrics()
    calls.record(finished(1, answered_at=0.3, queued_at=5, bridged_at=25, talk_ended_at=95))
    calls.record(finished(2, answered_at=1.5, queued_at=2, bridged_at=3, talk_ended_at=4000))
    calls.record(finished(3, "dongnai", "abandoned", answered_at=0.2, queued_at=1))  # left
    calls.record(finished(4, "-", "not_found"))  # refused before answer: no times at all
    text = render_metrics(sample(outcomes=calls.outcomes.snapshot()), make_registry(calls))
    check_grammar(text)
    answer = histogram(text, "hotline_call_answer_seconds", "dongnai")
    assert (answer["0.25"], answer["0.5"], answer["2.0"], answer["+Inf"]) == (1, 2, 3, 3)
    assert answer["count"] == 3 and abs(answer["sum"] - 2.0) < 1e-9
    wait = histogram(text, "hotline_queue_wait_seconds", "dongnai")  # bridged calls only
    assert (wait["1.0"], wait["5.0"], wait["20.0"], wait["+Inf"], wait["sum"]) == \
        (1, 1, 2, 2, 21.0)
    talk = histogram(text, "hotline_talk_seconds", "dongnai")
    assert (talk["60.0"], talk["120.0"], talk["3600.0"], talk["+Inf"]) == (0, 1, 1, 2)
    assert histogram(text, "hotline_call_answer_seconds", "-") == {}
    assert 'hotline_calls_total{outcome="abandoned",tenant="dongnai"} 1.0' in text
    assert 'hotline_calls_total{outcome="not_found",tenant="-"} 1.0' in text
    assert "_created" not in text


def test_given_registry_when_rendered_then_process_metrics_and_build_info() -> None:
    text = render_metrics(sample(asterisk="Asterisk 22.5.2"), make_registry(CallMetrics()))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
            "python_info"} <= set(fams)
    (build,) = fams["hotline_build_info"].samples
    assert build.labels == {"version": hotline_version(), "python": platform.python_version(),
                            "asterisk": "Asterisk 22.5.2"} and build.value == 1


def test_given_two_registries_when_recorded_then_independent() -> None:
    a, b = CallMetrics(), CallMetrics()  # two apps in one process: no global registry
    a.record(finished(1, answered_at=0.3))
    text_b = render_metrics(sample(), make_registry(b))
    assert histogram(text_b, "hotline_call_answer_seconds", "dongnai") == {}
    text_a = render_metrics(sample(), make_registry(a))
    assert histogram(text_a, "hotline_call_answer_seconds", "dongnai")["count"] == 1


def test_given_tenant_scope_when_rendered_then_other_tenants_histograms_gone() -> None:
    calls = CallMetrics()
    calls.record(finished(1, "dongnai", answered_at=0.3))
    calls.record(finished(2, "binhduong", answered_at=0.4))
    text = render_metrics(sample(), make_registry(calls), tenant="binhduong")
    assert "dongnai" not in text
    assert histogram(text, "hotline_call_answer_seconds", "binhduong")["count"] == 1
    assert "process_cpu_seconds_total" in text and "hotline_build_info{" in text
