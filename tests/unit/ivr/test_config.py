"""Validation of a tenant's IVR tree: every error names the node and the key."""

from __future__ import annotations

import pytest
import yaml

from callcenter.config.base import BaseParser, ConfigError
from callcenter.config.model import DEFAULT_FIELDS
from callcenter.config.parse import parse_config
from callcenter.ivr.config import parse_ivr
from callcenter.ivr.tree import FaqNode, MenuNode, OperatorNode

KEY = "tenants[0].ivr"


def errors_of(text: str) -> list[str]:
    p = BaseParser("h.yaml")
    tree = parse_ivr(p, yaml.safe_load(text), KEY, DEFAULT_FIELDS)
    lines = [e.line_text() for e in p.errors]
    assert (tree is None) == bool(lines)
    return lines


def tree_of(text: str):
    p = BaseParser("h.yaml")
    tree = parse_ivr(p, yaml.safe_load(text), KEY, DEFAULT_FIELDS)
    assert not p.errors, [e.line_text() for e in p.errors]
    return tree


GOOD = """
root: main
nodes:
  main: {type: menu, prompt: "Bấm 1", options: {1: health, "2": operator}}
  health: {type: faq, field: health}
  operator: {type: operator, prompt: "Xin giữ máy"}
"""


def test_given_good_tree_then_parsed_with_defaults():
    tree = tree_of(GOOD)
    main = tree.node("main")
    assert isinstance(main, MenuNode)
    assert main.choices == {"1": "health", "2": "operator"}  # unquoted 1 accepted
    assert main.fallback == "operator" and main.retries == 3 and main.timeout_s == 6.0
    assert isinstance(tree.node("health"), FaqNode)
    assert isinstance(tree.node("operator"), OperatorNode)
    assert tree.operator == "operator"
    assert {p.id for p in tree.prompts()} >= {"main", "operator", "feedback", "thanks"}


def test_given_option_pointing_nowhere_then_error_names_node_and_digit():
    errs = errors_of(GOOD.replace('"2": operator', '"2": operatr'))
    assert len(errs) == 1
    assert "tenants[0].ivr.nodes.main.options.2 = 'operatr'" in errs[0]
    assert "option 2 of menu 'main' points to no node" in errs[0]


def test_given_loop_with_no_exit_then_error_names_menus():
    errs = errors_of("""
root: a
nodes:
  a: {type: menu, prompt: "A", options: {"1": b}, fallback: op}
  b: {type: menu, prompt: "B", options: {"1": a}, fallback: op}
  op: {type: operator, prompt: "giữ máy"}
""")
    assert len(errs) == 2
    assert "nodes.a" in errs[0] and "loop with no exit" in errs[0]
    assert "nodes.b" in errs[1]


def test_given_prompt_without_text_or_file_then_error_names_node():
    errs = errors_of(GOOD.replace('prompt: "Xin giữ máy"', "prompt: {}"))
    assert any("nodes.operator.prompt" in e and "needs a text or a recorded file" in e
               for e in errs)


def test_given_node_without_prompt_then_error():
    errs = errors_of(GOOD.replace(', prompt: "Xin giữ máy"', ""))
    assert any("node 'operator' needs a prompt" in e for e in errs)


def test_given_recorded_file_only_prompt_then_id_is_the_file():
    tree = tree_of(GOOD.replace('prompt: "Xin giữ máy"', "prompt: {file: hold-vn}"))
    assert tree.node("operator").prompt.id == "hold-vn"
    assert tree.node("operator").prompt.text is None


@pytest.mark.parametrize("digit", ['"0"', '"*"', '"#"', '"01"', '"123"', '"a"'])
def test_given_reserved_or_bad_digit_then_error(digit):
    errs = errors_of(GOOD.replace('"2": operator', f"{digit}: operator"))
    assert errs and "options" in errs[0]


def test_given_unknown_field_then_error_lists_fields():
    errs = errors_of(GOOD.replace("field: health", "field: healthcare"))
    assert "nodes.health.field = 'healthcare'" in errs[0] and "social_security" in errs[0]


def test_given_faq_node_with_both_field_and_item_then_error():
    errs = errors_of(GOOD.replace("field: health", "field: health, item: YT-01"))
    assert "needs exactly one of field" in errs[0]


def test_given_missing_root_then_error():
    errs = errors_of(GOOD.replace("root: main", "root: start"))
    assert "tenants[0].ivr.root = 'start'" in errs[0]


def test_given_operator_key_naming_a_menu_then_error():
    errs = errors_of(GOOD + "operator: main\n")
    assert "ivr.operator = 'main'" in errs[0]


def test_given_unknown_node_key_then_did_you_mean():
    errs = errors_of(GOOD.replace('options: {1: health', 'optons: {1: health'))
    assert any("did you mean 'options'" in e for e in errs)


def test_given_choice_text_without_placeholders_then_error():
    errs = errors_of(GOOD + "texts: {choice: 'Bấm phím'}\n")
    assert "texts.choice" in errs[0]


def test_given_shipped_style_config_with_ivr_then_tenant_has_tree():
    data = yaml.safe_load("""
tenants:
  - id: dongnai
    name: Đồng Nai
    numbers: ["1022"]
    shifts: [{name: all, start: "00:00", end: "00:00", lines: 2}]
    ivr:
""" + "\n".join("      " + line for line in GOOD.strip().splitlines()))
    config = parse_config(data, "h.yaml")
    assert config.tenants[0].ivr is not None and config.tenants[0].ivr.root == "main"


def test_given_bad_ivr_in_config_then_config_error_names_tenant_key():
    data = yaml.safe_load("""
tenants:
  - id: dongnai
    name: Đồng Nai
    numbers: ["1022"]
    shifts: [{name: all, start: "00:00", end: "00:00", lines: 2}]
    ivr: {root: main, nodes: {main: {type: menu, prompt: x, options: {"1": nowhere}}}}
""")
    with pytest.raises(ConfigError) as e:
        parse_config(data, "h.yaml")
    assert "tenants[0].ivr.nodes.main" in str(e.value)
