"""The dialplan's contract with the app: Stasis args built and parsed alike, and the templates
naming every context and verb through the contract (no literal left behind)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callcenter.dialplan.contract import Context, Verb, parse_stasis_args, stasis_args
from callcenter.pbx.render import TEMPLATE_DIR, render_texts
from tests.unit.test_render_operators import SECRETS, config_data, layout, load

PASSWORDS = {"101": "a", "102": "b", "201": "c"}
EXPR = re.compile(r"\{\{ (contexts|verbs)\.([A-Z_]+) \}\}")


def templates() -> dict[str, str]:
    """Each template's text without its comment lines."""
    return {p.name: "\n".join(ln for ln in p.read_text().splitlines()
                              if not ln.lstrip().startswith(";"))
            for p in sorted(TEMPLATE_DIR.glob("*.j2"))}


def member(text: str, kind: str) -> str:
    """The enum member a template expression names ("{{ contexts.FROM_TRUNK }}" -> its value)."""
    m = EXPR.fullmatch(text.strip())
    assert m is not None and m.group(1) == kind, f"literal {text!r} instead of {{{{ {kind}.* }}}}"
    enum = Context if kind == "contexts" else Verb
    assert m.group(2) in enum.__members__, f"{text!r}: no such member"
    return enum.__members__[m.group(2)].value


# ---- args ---------------------------------------------------------------------------------

@pytest.mark.parametrize("verb", list(Verb))
def test_given_a_verb_and_an_id_when_built_then_parsed_back(verb: Verb) -> None:
    built = stasis_args(verb, "1733.42-op1")
    assert built == f"{verb.value},1733.42-op1"
    assert parse_stasis_args(built.split(",")) == (verb, ["1733.42-op1"])


def test_given_feature_code_args_then_verb_and_the_rest_in_order() -> None:
    assert parse_stasis_args(["agent", "pause", "2"]) == (Verb.AGENT, ["pause", "2"])
    assert stasis_args(Verb.AGENT, "pause", "2") == "agent,pause,2"


def test_given_no_args_then_a_citizens_call() -> None:
    assert parse_stasis_args([]) == (None, [])


@pytest.mark.parametrize("args", [["dialled"], ["Operator", "c1"], [""], ["agentx", "login"]])
def test_given_an_unknown_verb_then_none_and_every_arg_kept(args: list[str]) -> None:
    assert parse_stasis_args(args) == (None, args)


@pytest.mark.parametrize("verb", [Verb.OPERATOR, Verb.UNIT, Verb.CONSULT])
def test_given_a_verb_without_its_argument_then_none(verb: Verb) -> None:
    assert parse_stasis_args([verb.value]) == (None, [verb.value])


@pytest.mark.parametrize("verb", [Verb.AGENT, Verb.SUPERVISOR, Verb.SNOOP])
def test_given_a_verb_whose_handler_copes_without_argument_then_the_verb(verb: Verb) -> None:
    assert parse_stasis_args([verb.value]) == (verb, [])


def test_given_a_comma_in_an_argument_when_built_then_refused() -> None:
    with pytest.raises(ValueError, match="commas"):
        stasis_args(Verb.UNIT, "a,b")


# ---- templates ----------------------------------------------------------------------------

def test_every_context_and_verb_in_the_templates_comes_from_the_contract() -> None:
    texts = templates()
    ext = texts["extensions.conf.j2"]
    sections = [s for s in re.findall(r"^\[(.+)\]$", ext, re.M) if s != "general"]
    assert sorted(member(s, "contexts") for s in sections) == sorted(c.value for c in Context)
    gotos = re.findall(r"Goto\(([^,)]+),", ext)
    gotos += re.findall(r"GotoIf\([^?]*\?([^,():]+),[^,():]+,[^,():]+\)", ext)
    assert gotos
    for target in gotos:
        member(target, "contexts")
    for name, text in texts.items():
        for used in re.findall(r"^context\s*=\s*(.+)$", text, re.M):
            member(used, "contexts")
        for args in re.findall(r"Stasis\((.*)\)$", text, re.M):
            assert args.startswith("{{ service.stasis_app }}"), (name, args)
        for verb in re.findall(r"\{\{ stasis\(verbs\.(\w+)", text):  # the template's macro
            member(f"{{{{ verbs.{verb} }}}}", "verbs")
    assert "{{ contexts." in texts["pjsip.conf.j2"]


@pytest.mark.parametrize("instances", [1, 2])
def test_rendered_dialplan_defines_every_context_and_nothing_else(tmp_path: Path,
                                                                  instances: int) -> None:
    data = config_data(outbound={"host": "127.0.0.1", "port": 5090})
    data["service"] = {"app_instances": instances}
    data["tenants"][0]["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department", "hotline": "02513822000",
         "focal_persons": [{"name": "An", "phone": "0912345678"}]}]
    data["tenants"][0]["tickets"] = {"fallback_unit": "so_y_te"}
    cfg = load(tmp_path, data)
    texts = render_texts(cfg, layout(tmp_path), SECRETS, passwords=PASSWORDS,
                         bench_plain_number="19001022")
    ext = texts["extensions.conf"]
    sections = set(re.findall(r"^\[(.+)\]$", ext, re.M)) - {"general"}
    # hotline-stasis (try each app instance) only when there are several
    assert sections == {c.value for c in Context} - (
        {Context.HOTLINE_STASIS.value} if instances == 1 else set())
    entered = (re.findall(r"Stasis\(hotline,([^)]*)\)", ext) if instances == 1 else
               re.findall(r"Gosub\(hotline-stasis,\$\{EXTEN\},1\(([^)]*)\)\)", ext))
    assert {args.split(",")[0] for args in entered} == {Verb.AGENT.value, Verb.CONSULT.value}
    if instances > 1:
        assert "Stasis(hotline," not in ext and "Stasis(hotline)" not in ext
        assert "Stasis(hotline-${slot}" in ext and "RAND(1,2)" in ext
    used = set(re.findall(r"^context = (.+)$", texts["pjsip.conf"], re.M))
    assert used == {Context.FROM_TRUNK, Context.FROM_OPERATORS, Context.TRUNK_OUT_INBOUND}
