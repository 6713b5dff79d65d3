"""Operators and queue policy of a tenant: defaults, the documented example, errors naming keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from callcenter.config.base import BaseParser, ConfigError
from callcenter.queue import policy as acfg
from callcenter.queue.policy import (
    DEFAULT_OPERATORS,
    DEFAULT_PAUSE_REASONS,
    NO_ANSWER_REASON,
    Operator,
    OperatorsConfig,
    PauseReason,
    QueuePolicy,
    SecretRef,
    parse_operators_section,
)

SOURCE = "hotline.yaml"
T = "tenants[0]"


def tenant(**keys: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "dongnai", "name": "Đồng Nai", "numbers": ["1022", "02511022"]}
    base.update(keys)
    return base


def parse(m: dict[str, Any]) -> tuple[OperatorsConfig | None, list[ConfigError]]:
    p = BaseParser(SOURCE)
    return parse_operators_section(p, m, T), p.errors


def ok(m: dict[str, Any]) -> OperatorsConfig:
    cfg, errors = parse(m)
    assert errors == [], [e.line_text() for e in errors]
    assert cfg is not None
    return cfg


def err(m: dict[str, Any]) -> list[str]:
    cfg, errors = parse(m)
    assert cfg is None and errors
    return [e.line_text() for e in errors]


def op(ext: object = "101", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"extension": ext, "name": "Nguyễn Thị Lan", "secret_env": "HOTLINE_OP"}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


def test_given_no_keys_when_parsed_then_defaults() -> None:
    cfg = ok(tenant())
    assert cfg == DEFAULT_OPERATORS
    q = cfg.queue
    assert (q.strategy, q.ring_timeout_s, q.wrap_up_s, q.max_wait_s, q.announce_every_s,
            q.callback_offer, q.auto_pause_on_no_answer, q.retry_s) == \
        ("longest_idle", 15, 10, 300, 45, True, False, 5)
    labels = [r.label for r in DEFAULT_PAUSE_REASONS]
    assert {"Nghỉ giải lao", "Họp", "Xử lý hồ sơ"} <= set(labels)


def test_given_documented_example_when_parsed_then_exactly_those_values() -> None:
    doc = acfg.__doc__ or ""
    block = doc.split("::", 1)[1].split("\nDecisions:", 1)[0]
    example = yaml.safe_load(re.sub(r"^ {4}", "", block, flags=re.M))
    cfg = ok(tenant(**example))
    assert cfg.operators == (
        Operator("101", "Nguyễn Thị Lan", SecretRef("env", "HOTLINE_OP_101")),
        Operator("102", "Trần Văn Minh", SecretRef("file", "secrets/op102"),
                 permit=("10.20.0.0/24",), require_tls=False),
    )
    assert cfg.require_tls is True  # the tenant's operators_require_tls ...
    assert [cfg.tls_required(op) for op in cfg.operators] == [True, False]  # ... 102 opts out
    assert cfg.queue == QueuePolicy(pause_reasons=(
        PauseReason("break", "Nghỉ giải lao"), PauseReason("meeting", "Họp"),
        PauseReason("paperwork", "Xử lý hồ sơ")))
    assert cfg.operator("102") is cfg.operators[1] and cfg.operator("103") is None


def test_given_queue_settings_when_parsed_then_used() -> None:
    cfg = ok(tenant(queue={"ring_timeout_s": 20, "wrap_up_s": 0, "max_wait_s": 600,
                           "announce_every_s": 0, "callback_offer": False,
                           "auto_pause_on_no_answer": True, "handle_time_window": 5,
                           "retry_s": 0}))
    assert cfg.queue == QueuePolicy(ring_timeout_s=20, wrap_up_s=0, max_wait_s=600,
                                    announce_every_s=0, callback_offer=False,
                                    auto_pause_on_no_answer=True, handle_time_window=5, retry_s=0)


def test_pause_reason_lookup_by_id_and_phone_digit() -> None:
    q = QueuePolicy()
    assert q.reason("meeting") == PauseReason("meeting", "Họp")
    assert q.reason("no_answer") == NO_ANSWER_REASON
    assert q.reason("lunch") is None
    assert q.reason_by_code(1) == DEFAULT_PAUSE_REASONS[0]
    assert q.reason_by_code(0) is None and q.reason_by_code(len(DEFAULT_PAUSE_REASONS) + 1) is None


def test_given_empty_operator_list_when_parsed_then_no_operators() -> None:
    assert ok(tenant(operators=[])).operators == ()


@pytest.mark.parametrize(("operator", "key", "expected"), [
    (op(101), "operators[0].extension", 'expected a quoted extension such as "101"'),
    (op("12"), "operators[0].extension", "expected 3-6 digits"),
    (op("1234567"), "operators[0].extension", "at most 6 characters"),
    (op("10a"), "operators[0].extension", "expected 3-6 digits"),
    (op(name=""), "operators[0].name", "expected a non-empty string"),
    (op(name=None), "operators[0].name", "required key is missing"),
    (op(secret_env=None), "operators[0].secret_env",
     "required: secret_env (an environment variable) or secret_file"),
    (op(secret_file="/etc/x"), "operators[0].secret_file",
     "expected only one of secret_env and secret_file"),
    (op(secret_env="1BAD"), "operators[0].secret_env", "expected an environment variable name"),
    (op(secret_env="HOTLINE-OP"), "operators[0].secret_env",
     "expected an environment variable name"),
    (op(secret_env=None, secret_file="a\nb"), "operators[0].secret_file",
     "without surrounding spaces or line breaks"),
    (op(secret_env=None, secret_file=" x"), "operators[0].secret_file",
     "without surrounding spaces"),
    (op(secret_env=None, secret_file=7), "operators[0].secret_file", "expected a string"),
    (op(password="hunter2"), "operators[0].password", "a password never goes in the YAML"),
    (op(secret="hunter2", secret_env=None), "operators[0].secret",
     "a password never goes in the YAML"),
    (op(extention="101"), "operators[0].extention", "did you mean 'extension'?"),
    ("101", "operators[0]", "expected a mapping"),
])
def test_given_bad_operator_when_parsed_then_error_names_key(operator: object, key: str,
                                                             expected: str) -> None:
    lines = err(tenant(operators=[operator]))
    assert any(line.startswith(f"{SOURCE}: {T}.{key} = ") and expected in line
               for line in lines), lines


def test_given_password_in_yaml_when_refused_then_value_not_echoed() -> None:
    lines = err(tenant(operators=[op(password="hunter2")]))
    assert not any("hunter2" in line for line in lines)


def test_given_duplicate_extension_when_parsed_then_error_on_second() -> None:
    lines = err(tenant(operators=[op("101"), op("102"), op("101")]))
    assert lines == [f"{SOURCE}: {T}.operators[2].extension = '101': expected a unique "
                     f"extension; {T}.operators[0] has it too"]


def test_given_extension_equal_to_hotline_number_when_parsed_then_error() -> None:
    lines = err(tenant(operators=[op("1022")]))
    assert lines == [f"{SOURCE}: {T}.operators[0].extension = '1022': expected an extension "
                     f"other than the tenant's hotline numbers"]


def test_given_operators_not_a_list_when_parsed_then_error() -> None:
    assert err(tenant(operators={"extension": "101"}))[0].startswith(
        f"{SOURCE}: {T}.operators = ")


@pytest.mark.parametrize(("queue", "key", "expected"), [
    ({"strategy": "round_robin"}, "queue.strategy",
     "expected longest_idle (the only supported strategy), got 'round_robin'"),
    ({"strategy": 3}, "queue.strategy", "got an integer"),
    ({"ring_timeout_s": 2}, "queue.ring_timeout_s", "expected an integer 5..120"),
    ({"ring_timeout_s": "15"}, "queue.ring_timeout_s", "got a string"),
    ({"wrap_up_s": -1}, "queue.wrap_up_s", "expected an integer 0..3600"),
    ({"max_wait_s": 10}, "queue.max_wait_s", "expected an integer 30..7200"),
    ({"announce_every_s": 601}, "queue.announce_every_s", "expected an integer 0..600"),
    ({"handle_time_window": 0}, "queue.handle_time_window", "expected an integer 1..1000"),
    ({"retry_s": True}, "queue.retry_s", "got a boolean"),
    ({"callback_offer": "yes"}, "queue.callback_offer", "expected true or false"),
    ({"auto_pause_on_no_answer": 1}, "queue.auto_pause_on_no_answer", "expected true or false"),
    ({"wrapup_s": 5}, "queue.wrapup_s", "did you mean 'wrap_up_s'?"),
    ({"pause_reasons": []}, "queue.pause_reasons", "expected a non-empty list"),
    ({"pause_reasons": [{"id": "no_answer", "label": "x"}]}, "queue.pause_reasons[0].id",
     "reserved for the automatic pause"),
    ({"pause_reasons": [{"id": "Họp", "label": "Họp"}]}, "queue.pause_reasons[0].id",
     "expected 1-32 characters from a-z 0-9 _"),
    ({"pause_reasons": [{"id": "hop", "label": "Họp"}, {"id": "hop", "label": "Họp 2"}]},
     "queue.pause_reasons[1].id", "expected a unique pause reason id; "
                                  "tenants[0].queue.pause_reasons[0] has it too"),
    ({"pause_reasons": [{"id": "hop"}]}, "queue.pause_reasons[0].label",
     "required key is missing"),
    ({"pause_reasons": [{"id": f"r{i}", "label": "x"} for i in range(10)]},
     "queue.pause_reasons", "at most 9 pause reasons"),
    ("fast", "queue", "expected a mapping"),
])
def test_given_bad_queue_setting_when_parsed_then_error_names_key(queue: object, key: str,
                                                                  expected: str) -> None:
    lines = err(tenant(queue=queue))
    assert any(line.startswith(f"{SOURCE}: {T}.{key} = ") and expected in line
               for line in lines), lines


def test_given_several_problems_when_parsed_then_all_reported() -> None:
    lines = err(tenant(operators=[op(101), op("102", secret_env=None)],
                       queue={"strategy": "random", "wrap_up_s": "10"}))
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == [f"{SOURCE}: {T}.operators[0].extension",
                    f"{SOURCE}: {T}.operators[1].secret_env",
                    f"{SOURCE}: {T}.queue.strategy",
                    f"{SOURCE}: {T}.queue.wrap_up_s"]


def test_operator_keys_are_the_three_tenant_keys() -> None:
    assert acfg.OPERATOR_KEYS == ("operators", "queue", "operators_require_tls")
