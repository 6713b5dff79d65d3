"""Operators required to use TLS and SRTP, as rendered text and as parsed config (no
Asterisk, nothing written): the endpoint's transport and media encryption, the refusal of a
Contact not reached over TLS, and the config errors that name their key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from callcenter.config.base import ConfigError
from callcenter.config.parse import parse_config
from callcenter.pbx.render import (
    MODULES,
    TLS_REQUIRED_ENDPOINT,
    plain_contact_regex,
    render_texts,
)
from tests.unit.test_render_operators import SECRETS as PBX_SECRETS
from tests.unit.test_render_operators import (
    STRONG,
    config_data,
    layout,
    load,
    section,
    sections,
)

PASSWORDS = {"101": STRONG["HOTLINE_OP_101"], "102": "another-long-pw-102",
             "201": STRONG["HOTLINE_OP_201"]}


def tls_config(tmp_path: Path, **sip_tls: Any) -> Any:
    data = config_data()
    data["tenants"][0]["operators_require_tls"] = True
    data["tenants"][0]["operators"][1]["require_tls"] = False  # 102 overrides the tenant
    if sip_tls:
        data["sip_tls"] = sip_tls
    return load(tmp_path, data)


def pjsip(tmp_path: Path, config: Any, *, tls: bool = True) -> str:
    return render_texts(config, layout(tmp_path), PBX_SECRETS, passwords=PASSWORDS,
                        tls=tls)["pjsip.conf"]


def test_given_operators_require_tls_when_rendered_then_their_endpoints_use_tls_and_mandatory_sdes(
        tmp_path: Path) -> None:
    conf = pjsip(tmp_path, tls_config(tmp_path, port=5071))
    transport = section(conf, "transport-tls", "transport")
    assert transport["protocol"] == ["tls"]
    assert transport["bind"] == ["127.0.0.1:5071"]  # bound like the UDP transport: trunk.bind
    assert transport["cert_file"] == ["/srv/hotline/unit/etc/sip-tls.crt"]
    assert transport["priv_key_file"] == ["/srv/hotline/unit/etc/sip-tls.key"]
    ep = section(conf, "101", "endpoint")
    assert ep["transport"] == ["transport-tls"]
    assert ep["media_encryption"] == ["sdes"]
    assert ep["media_encryption_optimistic"] == ["no"]
    assert "res_srtp.so" in MODULES
    # 102 says require_tls: false; 201 is another tenant's: both stay on UDP, no SRTP.
    for ext in ("102", "201"):
        plain = section(conf, ext, "endpoint")
        assert plain["transport"] == ["transport-udp"] and "media_encryption" not in plain
    # The carrier trunk stays on UDP.
    assert section(conf, "trunk", "endpoint")["transport"] == ["transport-udp"]


def test_given_operator_requires_tls_when_its_phone_registers_over_udp_then_it_is_identified_as_denied(  # noqa: E501
        tmp_path: Path) -> None:
    conf = pjsip(tmp_path, tls_config(tmp_path))
    denied = section(conf, TLS_REQUIRED_ENDPOINT, "endpoint")
    assert denied["identify_by"] == ["header"] and denied["deny"] == ["0.0.0.0/0.0.0.0,::/0"]
    assert "aors" not in denied and "auth" not in denied
    ident = section(conf, "101-plain", "identify")
    assert ident["endpoint"] == [TLS_REQUIRED_ENDPOINT]
    assert ident["match_header"] == [f"Contact: /{plain_contact_regex('101')}/"]
    assert not [n for n, _ in sections(conf) if n in ("102-plain", "201-plain")]


@pytest.mark.parametrize(("contact", "plain"), [
    ("<sip:101@127.0.0.1:5062>", True),
    ("<sip:101@10.0.0.5:5062;ob>", True),
    ('"Lan" <sip:101@10.0.0.5;rinstance=ab12;transport=UDP>;expires=60', True),
    ("<sip:101@10.0.0.5;transport=tcp>", True),
    ("<sip:101@10.0.0.5:40000;transport=TLS>", False),
    ("<sip:101@10.0.0.5;ob;transport=tls>", False),
    ("<sips:101@10.0.0.5:5061>", False),
    ("<sip:1010@10.0.0.5>", False),  # another operator's
])
def test_given_contact_when_matched_then_only_contacts_not_over_tls_are_refused(
        contact: str, plain: bool) -> None:
    # Python's re reads this POSIX ERE the same way (no construct they differ on).
    assert bool(re.search(plain_contact_regex("101"), contact)) is plain


def test_given_operator_requires_tls_and_no_certificate_when_rendered_then_error_names_sip_tls_cert(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        pjsip(tmp_path, tls_config(tmp_path), tls=False)
    assert e.value.key == "sip_tls.cert" and "101" in e.value.reason


def test_given_no_operator_requires_tls_and_no_certificate_when_rendered_then_no_tls_transport(
        tmp_path: Path) -> None:
    conf = pjsip(tmp_path, load(tmp_path, config_data()), tls=False)
    assert "transport-tls" not in conf and TLS_REQUIRED_ENDPOINT not in conf


@pytest.mark.parametrize(("sip_tls", "key"), [
    ({"cert": "tls/hotline.crt"}, "sip_tls.key"),
    ({"key": "tls/hotline.key"}, "sip_tls.cert"),
    ({"port": 70000}, "sip_tls.port"),
    ({"cert": "a.crt", "key": "a.key", "verify": True}, "sip_tls.verify"),
])
def test_given_incomplete_sip_tls_section_when_parsed_then_error_names_the_key(
        sip_tls: dict[str, Any], key: str) -> None:
    data = config_data()
    data["sip_tls"] = sip_tls
    with pytest.raises(ConfigError) as e:
        parse_config(data, "hotline.yaml")
    assert [err.key for err in e.value.errors] == [key]


def test_given_require_tls_not_a_boolean_when_parsed_then_error_names_the_key() -> None:
    data = config_data()
    data["tenants"][0]["operators_require_tls"] = "yes"
    data["tenants"][0]["operators"][0]["require_tls"] = 1
    with pytest.raises(ConfigError) as e:
        parse_config(data, "hotline.yaml")
    assert sorted(err.key for err in e.value.errors) == [
        "tenants[0].operators[0].require_tls", "tenants[0].operators_require_tls"]
