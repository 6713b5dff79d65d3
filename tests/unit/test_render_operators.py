"""Operators' PJSIP accounts, the outbound trunk, refused sources and the operators' dialplan,
as rendered text (no Asterisk, nothing written); passwords from the environment or files."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig, OutboundTrunk
from callcenter.config.parse import parse_config
from callcenter.config.secrets import (
    OperatorSecretError,
    Secrets,
    operator_passwords,
    resolve_operator_passwords,
)
from callcenter.pbx.install import AsteriskInstall
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.render import (
    MODULES,
    REFUSED_FILE,
    SIP_REALM,
    refused_sources_text,
    render_texts,
)
from callcenter.phones.devices import SCANNER_ENDPOINT

SECRETS = Secrets("ari", "ari-pass", "ami", "ami-pass")


def config_data(**trunk: Any) -> dict[str, Any]:
    return {
        "service": {"stasis_app": "hotline"},
        "trunk": {"port": 5060, **trunk},
        "tenants": [
            {"id": "dongnai", "name": "Đồng Nai", "numbers": ["1022"],
             "shifts": [{"name": "all", "start": "00:00", "end": "00:00", "lines": 2}],
             "operators": [
                 {"extension": "101", "name": "Nguyễn Thị Lan", "secret_env": "HOTLINE_OP_101"},
                 {"extension": "102", "name": 'Trần "Minh" <x>', "secret_file": "op102.secret"},
             ]},
            {"id": "thanhhoa", "name": "Thanh Hóa", "numbers": ["02371022"],
             "shifts": [{"name": "all", "start": "00:00", "end": "00:00", "lines": 2}],
             "operators": [
                 {"extension": "201", "name": "Lê Văn Hùng", "secret_env": "HOTLINE_OP_201"},
             ]},
        ],
    }


def load(tmp_path: Path, data: dict[str, Any]) -> HotlineConfig:
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return parse_config(data, str(path))


def layout(tmp_path: Path) -> PbxLayout:
    install = AsteriskInstall(binary="/usr/sbin/asterisk", root=tmp_path / "rootfs",
                              version="Asterisk 22")
    return PbxLayout.for_instance(install, "unit", tmp_path / "state")


def texts(tmp_path: Path, config: HotlineConfig, passwords: dict[str, str]) -> dict[str, str]:
    return render_texts(config, layout(tmp_path), SECRETS, passwords=passwords)


def sections(conf: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Asterisk config text -> [(name, {key: [values]})], comments stripped (\\; kept as ;)."""
    result: list[tuple[str, dict[str, list[str]]]] = []
    for raw in conf.splitlines():
        line = raw.replace("\\;", "\0").split(";", 1)[0].replace("\0", ";").strip()
        if not line:
            continue
        if line.startswith("["):
            result.append((line[1:line.index("]")], {}))
            continue
        key, _, value = line.partition("=")
        result[-1][1].setdefault(key.strip().rstrip(">"), []).append(value.strip())
    return result


def section(conf: str, name: str, kind: str) -> dict[str, list[str]]:
    found = [s for n, s in sections(conf) if n == name and s.get("type") == [kind]]
    assert len(found) == 1, (name, kind, found)
    return found[0]


PW101, PW102, PW201 = "s3cret-101-long-pw", "pass;102-long-enough", "x201-long-enough!"
STRONG = {"HOTLINE_OP_101": PW101, "HOTLINE_OP_201": PW201}


def test_given_operators_with_secrets_when_rendered_then_endpoint_auth_aor_each(
        tmp_path: Path) -> None:
    (tmp_path / "op102.secret").write_text(PW102 + "\n")
    config = load(tmp_path, config_data())
    pw = operator_passwords(config, STRONG)
    assert pw == {"101": PW101, "102": PW102, "201": PW201}
    pjsip = texts(tmp_path, config, pw)["pjsip.conf"]
    ep = section(pjsip, "101", "endpoint")
    assert ep["context"] == ["from-operators"]
    assert ep["auth"] == ["101"] and ep["aors"] == ["101"]
    assert ep["allow"] == ["ulaw,alaw"] and ep["disallow"] == ["all"]
    assert ep["dtmf_mode"] == ["rfc4733"]
    for key in ("rtp_symmetric", "force_rport", "rewrite_contact", "bind_rtp_to_media_address"):
        assert ep[key] == ["yes"], key
    assert ep["direct_media"] == ["no"]
    assert ep["media_address"] == ["127.0.0.1"]
    assert ep["callerid"] == ['"Nguyễn Thị Lan" <101>']
    assert "deny" not in ep and "permit" not in ep  # no permit: any source may register
    aor = section(pjsip, "101", "aor")
    assert aor["max_contacts"] == ["1"] and aor["remove_existing"] == ["yes"]
    assert int(aor["qualify_frequency"][0]) > 0
    # Quotes and angle brackets in a name cannot break the callerid.
    assert section(pjsip, "102", "endpoint")["callerid"] == ['"Trần Minh x" <102>']
    # Operators of every tenant; the trunk still identified by address only.
    assert section(pjsip, "201", "endpoint")["context"] == ["from-operators"]
    assert section(pjsip, "trunk", "endpoint")["identify_by"] == ["ip"]
    assert sections(pjsip)[0][1]["endpoint_identifier_order"] == ["header,username,ip"]


def test_given_stolen_pjsip_conf_when_read_then_it_holds_digests_never_passwords(
        tmp_path: Path) -> None:
    (tmp_path / "op102.secret").write_text(PW102)
    config = load(tmp_path, config_data())
    pjsip = texts(tmp_path, config, operator_passwords(config, STRONG))["pjsip.conf"]
    for ext, pw in (("101", PW101), ("102", PW102), ("201", PW201)):
        assert pw not in pjsip
        ha1 = hashlib.md5(f"{ext}:{SIP_REALM}:{pw}".encode()).hexdigest()
        assert section(pjsip, ext, "auth") == {
            "type": ["auth"], "auth_type": ["digest"], "realm": [SIP_REALM],
            "username": [ext], "password_digest": [f"md5:{ha1}"]}
    # The realm the digests were made with is the one every challenge carries.
    assert sections(pjsip)[0][1]["default_realm"] == [SIP_REALM]
    assert "password =" not in pjsip and "userpass" not in pjsip


def test_given_operators_when_rendered_then_no_password_leaks_into_other_files(
        tmp_path: Path) -> None:
    config = load(tmp_path, config_data())
    files = texts(tmp_path, config, {"101": "unique-pw-4711-long"})
    assert not [n for n, t in files.items() if "unique-pw-4711-long" in t]


def test_given_config_file_then_yaml_holds_no_secret_only_references(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "config/hotline.yaml"
    data = yaml.safe_load(shipped.read_text())
    ops = [op for t in data["tenants"] for op in t.get("operators", [])]
    assert [op["extension"] for op in ops] == ["101", "102"]
    assert all(set(op) == {"extension", "name", "secret_env"} for op in ops)
    assert [op["secret_env"] for op in ops] == ["HOTLINE_OP_101", "HOTLINE_OP_102"]
    with pytest.raises(ConfigError, match="never goes in the YAML"):
        bad = config_data()
        bad["tenants"][0]["operators"][0]["password"] = "clear"
        parse_config(bad, "x.yaml")


def test_given_missing_secrets_when_resolved_then_named_errors_and_others_rendered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load(tmp_path, config_data())  # op102.secret does not exist
    env = {"HOTLINE_OP_101": "", "HOTLINE_OP_201": PW201}
    pw, problems = resolve_operator_passwords(config, env)
    assert pw == {"201": PW201}
    assert [(p.tenant, p.extension) for p in problems] == [("dongnai", "101"), ("dongnai", "102")]
    assert all(isinstance(p, OperatorSecretError) for p in problems)
    assert str(problems[0]) == ("operator 101 of tenant dongnai: environment variable "
                                "HOTLINE_OP_101: is empty")
    assert str(problems[1]) == (f"operator 102 of tenant dongnai: secret file "
                                f"{tmp_path / 'op102.secret'}: does not exist")
    with caplog.at_level(logging.ERROR, logger="callcenter.config.secrets"):
        pw = operator_passwords(config, {"HOTLINE_OP_201": PW201})
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "101" in errors[0] and "HOTLINE_OP_101" in errors[0] and "is not set" in errors[0]
    assert "102" in errors[1] and "op102.secret" in errors[1]
    pjsip = texts(tmp_path, config, pw)["pjsip.conf"]
    names = {n for n, _ in sections(pjsip)}
    assert "201" in names and "101" not in names and "102" not in names


@pytest.mark.parametrize("value,reason", [
    (" padded", "leading or trailing spaces"),
    ("two\nlines", "control character"),
    ("x" * 129, "longer than 128"),
])
def test_given_unusable_password_then_refused_not_altered(tmp_path: Path, value: str,
                                                          reason: str) -> None:
    config = load(tmp_path, config_data())
    (tmp_path / "op102.secret").write_text(value)
    _, problems = resolve_operator_passwords(config, STRONG)
    assert [p.extension for p in problems] == ["102"]
    assert reason in problems[0].reason


def test_given_file_secret_with_absolute_path_then_read_from_there(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "op"
    secret.parent.mkdir()
    secret.write_text("abs-pass-long-enough\r\n")
    data = config_data()
    data["tenants"][0]["operators"][1]["secret_file"] = str(secret)
    config = load(tmp_path, data)
    pw = operator_passwords(config, STRONG)
    assert pw["102"] == "abs-pass-long-enough"


def test_given_outbound_trunk_when_rendered_then_trunk_out_endpoint_and_aor(
        tmp_path: Path) -> None:
    config = load(tmp_path, config_data(outbound={"host": "127.0.0.1", "port": 5090}))
    assert config.trunk.outbound == OutboundTrunk("127.0.0.1", 5090)
    pjsip = texts(tmp_path, config, {})["pjsip.conf"]
    ep = section(pjsip, "trunk-out", "endpoint")
    assert ep["aors"] == ["trunk-out"]
    assert ep["media_address"] == ["127.0.0.1"] and ep["bind_rtp_to_media_address"] == ["yes"]
    assert ep["allow"] == ["ulaw,alaw"] and ep["direct_media"] == ["no"]
    # Never matched by a From user: nothing enters unauthenticated through it.
    assert ep["identify_by"] == ["ip"]
    assert not [s for n, s in sections(pjsip) if n == "trunk-out" and s["type"] == ["identify"]]
    assert section(pjsip, "trunk-out", "aor")["contact"] == ["sip:127.0.0.1:5090"]


def test_given_outbound_caller_id_then_parsed_for_call_backs(tmp_path: Path) -> None:
    config = load(tmp_path, config_data(outbound={"host": "127.0.0.1", "port": 5090,
                                                  "caller_id": "02511022"}))
    assert config.trunk.outbound == OutboundTrunk("127.0.0.1", 5090, caller_id="02511022")


def test_given_no_outbound_trunk_then_nothing_rendered(tmp_path: Path) -> None:
    config = load(tmp_path, config_data())
    assert config.trunk.outbound is None
    assert "trunk-out]" not in texts(tmp_path, config, {})["pjsip.conf"]


@pytest.mark.parametrize("outbound,key", [
    ({"port": 5090}, "trunk.outbound.host"),
    ({"host": "::1"}, "trunk.outbound.host"),
    ({"host": "127.0.0.1", "port": 70000}, "trunk.outbound.port"),
    ({"host": "127.0.0.1", "port": 5060}, "trunk.outbound.port"),  # our own listener
    ({"host": "127.0.0.1", "prot": 5090}, "trunk.outbound.prot"),
    ("127.0.0.1:5090", "trunk.outbound"),
    ({"host": "127.0.0.1", "port": 5090, "caller_id": 2511022}, "trunk.outbound.caller_id"),
    ({"host": "127.0.0.1", "port": 5090, "caller_id": "Tổng đài"}, "trunk.outbound.caller_id"),
    ({"host": "127.0.0.1", "port": 5090, "callerid": "1022"}, "trunk.outbound.callerid"),
])
def test_given_bad_outbound_trunk_then_error_names_key(outbound: Any, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(config_data(outbound=outbound), "hotline.yaml")
    assert e.value.errors[0].key == key


def test_given_banned_sources_when_rendered_then_acl_denies_them(tmp_path: Path) -> None:
    config = load(tmp_path, config_data())
    pjsip = texts(tmp_path, config, {})["pjsip.conf"]
    assert f"#tryinclude {REFUSED_FILE}" in pjsip  # the guard's own file, rewritten alone
    assert "type = acl" not in pjsip
    acl = section(refused_sources_text(("127.0.0.9", "10.1.2.3", "127.0.0.9")),
                  "refused-sources", "acl")
    assert acl["deny"] == ["10.1.2.3", "127.0.0.9"]
    assert "permit" not in acl  # everything else stays allowed
    assert "type = acl" not in refused_sources_text(())
    with pytest.raises(ValueError, match="'10.0.0.0/8'"):
        refused_sources_text(("10.0.0.0/8",))
    assert "res_pjsip_acl.so" in MODULES


def test_given_operators_dialplan_then_feature_codes_enter_stasis_with_contract_args(
        tmp_path: Path) -> None:
    ext = texts(tmp_path, load(tmp_path, config_data()), {})["extensions.conf"]
    block = ext.split("[from-operators]")[1].split("\n[")[0]
    for code, args in (("*11", "agent,login"), ("*12", "agent,logout"), ("*13", "agent,pause"),
                       ("_*13[1-9]", "agent,pause,${EXTEN:3}"), ("*14", "agent,unpause"),
                       ("*15", "agent,ready")):
        assert f"exten => {code},1,Stasis(hotline,{args})\n" \
               f" same => n,Goto(operator-feature-done,s,1)" in block, code
    # Any other number: congestion (cause 34 -> SIP 503).
    assert "exten => _[0-9*#+a-zA-Z].,1,Hangup(34)" in block
    done = ext.split("[operator-feature-done]")[1].split("\n[")[0]
    assert '"${STASISSTATUS}" = "FAILED"]?failed' in done
    assert "Playback(${HOTLINE_FEATURE_PROMPT})" in done
    assert "default/unavailable" in done
    for app_module in ("app_stasis.so", "app_playback.so", "pbx_config.so", "res_pjsip_refer.so",
                       "res_manager_devicestate.so", "app_queue.so"):
        assert app_module in MODULES


def test_given_manager_conf_then_security_events_and_timestamps(tmp_path: Path) -> None:
    manager = texts(tmp_path, load(tmp_path, config_data()), {})["manager.conf"]
    assert "timestampevents = yes" in manager
    read = [line for line in manager.splitlines() if line.startswith("read =")]
    assert read and "security" in read[0].split("=")[1].split(",")


def test_given_unset_secret_when_config_checked_then_ok_with_warning_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import main

    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(config_data(), allow_unicode=True))
    (tmp_path / "op102.secret").write_text(PW102)
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    monkeypatch.delenv("HOTLINE_OP_201", raising=False)
    assert main(["check-config", str(path)]) == 0  # the service would start
    out = capsys.readouterr()
    assert out.out.startswith("ok: ")
    assert out.err.splitlines() == [
        "warning: operator 201 of tenant thanhhoa: environment variable HOTLINE_OP_201: is not "
        "set; this operator is left out of the PBX (in this environment)"]


# ---- weak passwords, `operator secret`, permit, the trunk's REFER, scanners -------------------
def write_config(tmp_path: Path, data: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(data or config_data(), allow_unicode=True))
    return path


def test_given_operator_password_101_when_config_loaded_then_refused_naming_key_not_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    (tmp_path / "op102.secret").write_text("short-102\n")
    monkeypatch.setenv("HOTLINE_OP_101", "hunter2-101")
    monkeypatch.setenv("HOTLINE_OP_201", PW201)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    errors = e.value.errors
    assert [x.key for x in errors] == ["tenants[0].operators[0].secret_env",
                                       "tenants[0].operators[1].secret_file"]
    assert errors[0].source == str(path) and errors[0].raw_value == "HOTLINE_OP_101"
    assert "operator 101" in errors[0].reason and "environment variable HOTLINE_OP_101" in \
        errors[0].reason and "11 characters long: expected at least 16" in errors[0].reason
    assert f"secret file {tmp_path / 'op102.secret'}" in errors[1].reason
    text = e.value.format_all() if hasattr(e.value, "format_all") else str(e.value)
    assert "hunter2-101" not in text and "short-102" not in text
    # Unset stays what it was: the operator is left out, the config loads.
    monkeypatch.delenv("HOTLINE_OP_101")
    (tmp_path / "op102.secret").write_text(PW102)
    assert load_config(path).tenants[0].operators.operator("101") is not None


def test_given_weak_password_when_check_config_then_invalid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import main

    path = write_config(tmp_path)
    (tmp_path / "op102.secret").write_text(PW102)
    monkeypatch.setenv("HOTLINE_OP_101", "101")
    monkeypatch.setenv("HOTLINE_OP_201", PW201)
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "tenants[0].operators[0].secret_env" in err and "at least 16" in err


def test_given_weak_env_password_when_operator_secret_then_operators_env_line_replaced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import main

    path = write_config(tmp_path)
    env_file = tmp_path / "operators.env"
    env_file.write_text("# keep me\nHOTLINE_OP_101=101\nHOTLINE_OP_201=" + PW201 + "\n"
                        "HOTLINE_OP_101=old-duplicate\n")
    env_file.chmod(0o604)
    monkeypatch.setenv("HOTLINE_OP_101", "101")  # weak: the command must still run
    assert main(["--config", str(path), "operator", "secret", "101"]) == 0
    out = capsys.readouterr().out
    lines = env_file.read_text().splitlines()
    assert lines[0] == "# keep me" and lines[2] == f"HOTLINE_OP_201={PW201}" and len(lines) == 3
    new = lines[1].removeprefix("HOTLINE_OP_101=")
    assert len(new) >= 32 and new != "101"
    assert oct(env_file.stat().st_mode & 0o777) == oct(0o600)  # others lose read
    assert f"HOTLINE_OP_101 in {env_file}" in out and new in out  # shown once, to type in
    monkeypatch.setenv("HOTLINE_OP_101", new)  # what the restarted service reads
    (tmp_path / "op102.secret").write_text(PW102)
    monkeypatch.setenv("HOTLINE_OP_201", PW201)
    load_config(path)  # now accepted


def test_given_file_secret_when_operator_secret_then_file_rewritten_private(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from callcenter.cli import main

    path = write_config(tmp_path)
    secret = tmp_path / "op102.secret"  # none yet: made 0600
    assert main(["--config", str(path), "operator", "secret", "102"]) == 0
    value = secret.read_text()
    assert value.endswith("\n") and len(value.strip()) >= 32
    assert secret.stat().st_mode & 0o777 == 0o600
    assert str(secret) in capsys.readouterr().out
    # An installer's file readable by the app's group keeps that, never what others had.
    secret.chmod(0o644)
    assert main(["--config", str(path), "operator", "secret", "102"]) == 0
    assert secret.read_text() != value and secret.stat().st_mode & 0o777 == 0o640
    assert not (tmp_path / "operators.env").exists()
    assert main(["--config", str(path), "operator", "secret", "999"]) == 1


def test_given_permit_networks_when_rendered_then_other_sources_cannot_reach_that_operator(
        tmp_path: Path) -> None:
    data = config_data()
    data["tenants"][0]["operators"][0]["permit"] = ["10.20.0.0/24", "192.0.2.7"]
    config = load(tmp_path, data)
    assert config.tenants[0].operators.operators[0].permit == ("10.20.0.0/24", "192.0.2.7/32")
    pjsip = texts(tmp_path, config, {"101": PW101, "201": PW201})["pjsip.conf"]
    ep = section(pjsip, "101", "endpoint")
    assert ep["deny"] == ["0.0.0.0/0.0.0.0,::/0"]
    assert ep["permit"] == ["10.20.0.0/24,192.0.2.7/32"]
    assert "deny" not in section(pjsip, "201", "endpoint")


@pytest.mark.parametrize("permit,key", [
    (["10.20.0.300/24"], "tenants[0].operators[0].permit[0]"),
    (["10.20.0.5/24"], "tenants[0].operators[0].permit[0]"),  # host bits: a typo, surely
    (["10.20.0.0/24", "office"], "tenants[0].operators[0].permit[1]"),
    ("10.20.0.0/24", "tenants[0].operators[0].permit"),
    ([], "tenants[0].operators[0].permit"),
])
def test_given_malformed_permit_then_config_error_names_the_key(permit: Any, key: str) -> None:
    data = config_data()
    data["tenants"][0]["operators"][0]["permit"] = permit
    with pytest.raises(ConfigError) as e:
        parse_config(data, "hotline.yaml")
    assert e.value.errors[0].key == key


def test_given_a_refer_from_the_carrier_when_rendered_then_trunks_allow_no_transfer(
        tmp_path: Path) -> None:
    config = load(tmp_path, config_data(outbound={"host": "127.0.0.1", "port": 5090}))
    pjsip = texts(tmp_path, config, {})["pjsip.conf"]
    for name in ("trunk", "trunk-out"):
        assert section(pjsip, name, "endpoint")["allow_transfer"] == ["no"], name
    assert section(pjsip, "trunk", "endpoint")["trust_id_inbound"] == ["yes"]


def test_given_scanner_user_agents_when_rendered_then_identified_by_header_and_denied(
        tmp_path: Path) -> None:
    pjsip = texts(tmp_path, load(tmp_path, config_data()), {})["pjsip.conf"]
    ep = section(pjsip, SCANNER_ENDPOINT, "endpoint")
    assert ep["identify_by"] == ["header"] and ep["deny"] == ["0.0.0.0/0.0.0.0,::/0"]
    assert "auth" not in ep and "context" not in ep and "aors" not in ep
    ident = section(pjsip, SCANNER_ENDPOINT, "identify")
    assert ident["endpoint"] == [SCANNER_ENDPOINT]
    header, _, value = ident["match_header"][0].partition(": ")
    assert header == "User-Agent" and value.startswith("/") and value.endswith("/")
    pattern = re.compile(value[1:-1])  # POSIX ERE brackets and groups: Python reads the same
    for ua in ("friendly-scanner", "SIPVicious 0.3.4", "sipcli/v1.8", "VaxSIPUserAgent/3.1",
               "sundayddr", "iWar", "sip-scan", "SIPSCAN 1.0"):
        assert pattern.search(ua), ua
    for ua in ("Zoiper rv2.10.20", "PJSUA v2.14 Linux", "Hotline1022", "Linphone/5.2",
               "MicroSIP/3.21.3", "Asterisk PBX 22.1.0"):
        assert not pattern.search(ua), ua
    assert sections(pjsip)[0][1]["endpoint_identifier_order"][0].startswith("header,")


class ReloadRecorder:
    """Records the modules the SIP guard asks Asterisk to reload (the ARI call it makes)."""

    def __init__(self) -> None:
        self.modules: list[str] = []

    async def reload_module(self, module: str) -> None:
        self.modules.append(module)


async def test_given_a_flood_of_refusals_when_applied_then_no_full_render_only_the_acl_file(
        tmp_path: Path) -> None:
    # Each refusal rewrites pjsip_refused.conf alone and reloads res_pjsip.so alone: a flood of
    # refusals never re-renders the dialplan or prompts, nor reloads anything else.
    from callcenter.app import refused_sources_applier

    pbx = layout(tmp_path)
    etc = pbx.host("etc")
    etc.mkdir(parents=True)
    rendered = texts(tmp_path, load(tmp_path, config_data()), {"101": PW101, "201": PW201})
    for name, text in rendered.items():
        (etc / name).write_text(text)
    before = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in etc.iterdir()}
    ari = ReloadRecorder()
    apply = refused_sources_applier(pbx, ari)
    await apply(("203.0.113.9",))
    await apply(("203.0.113.9",))  # unchanged: no second reload
    await apply(("203.0.113.9", "203.0.113.10"))
    assert ari.modules == ["res_pjsip.so", "res_pjsip.so"]
    after = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in etc.iterdir()
             if p.name not in (REFUSED_FILE, ".render.lock")}
    assert after == {k: v for k, v in before.items() if k != REFUSED_FILE}
    acl = section((etc / REFUSED_FILE).read_text(), "refused-sources", "acl")
    assert acl["deny"] == ["203.0.113.9", "203.0.113.10"]
