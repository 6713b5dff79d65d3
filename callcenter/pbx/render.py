"""Render Asterisk's configuration from the hotline config and the templates in templates/.

Nothing in the rootfs is edited by hand: every file Asterisk reads for an instance is written here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from callcenter.config.base import ConfigError
from callcenter.config.model import DEFAULT_PROMPTS, HotlineConfig
from callcenter.config.secrets import Secrets, operator_passwords
from callcenter.dialplan.contract import Context, Verb
from callcenter.ops.files import write_atomic
from callcenter.ops.processes import RunAs
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.prompts import PromptSpec, make_hold_music, place_prompts
from callcenter.pbx.tls import tls_pair
from callcenter.phones.devices import SCANNER_ENDPOINT, SCANNER_USER_AGENTS

# Package data (callcenter/pbx/templates/*.j2): found next to this module, installed or not.
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATES = (
    "asterisk.conf", "modules.conf", "logger.conf", "http.conf", "ari.conf", "manager.conf",
    "rtp.conf", "musiconhold.conf", "pjsip.conf", "extensions.conf", "cdr.conf", "cel.conf",
    "features.conf", "indications.conf", "acl.conf", "udptl.conf", "pjproject.conf",
    "stasis.conf", "ccss.conf", "codecs.conf", "geolocation.conf", "websocket_client.conf",
    "queues.conf",
)

# Only these are loaded (modules.conf autoload=no): each is needed for SIP calls, ARI, playback
# and music on hold; anything else could open a port or slow the start.
MODULES = (
    "res_sorcery_config.so", "res_sorcery_memory.so", "res_sorcery_astdb.so",
    "res_pjproject.so", "res_pjsip.so", "res_pjsip_session.so",
    "res_pjsip_authenticator_digest.so", "res_pjsip_endpoint_identifier_ip.so",
    "res_pjsip_endpoint_identifier_user.so", "res_pjsip_registrar.so", "res_pjsip_pubsub.so",
    "res_websocket_client.so", "res_geolocation.so", "res_pjsip_geolocation.so",
    "res_pjsip_outbound_authenticator_digest.so", "res_pjsip_sdp_rtp.so",
    "res_pjsip_caller_id.so", "res_pjsip_rfc3326.so", "res_pjsip_nat.so",
    "res_pjsip_logger.so", "res_pjsip_dtmf_info.so", "res_pjsip_header_funcs.so",
    "chan_pjsip.so", "res_rtp_asterisk.so", "res_timing_timerfd.so",
    "res_http_websocket.so", "res_stasis.so", "res_stasis_answer.so", "res_stasis_playback.so",
    "res_stasis_recording.so", "res_stasis_snoop.so", "res_stasis_device_state.so",
    "res_ari.so", "res_ari_model.so", "res_ari_applications.so", "res_ari_asterisk.so",
    "res_ari_bridges.so", "res_ari_channels.so", "res_ari_device_states.so",
    "res_ari_endpoints.so", "res_ari_events.so", "res_ari_playbacks.so",
    "res_ari_recordings.so", "res_ari_sounds.so", "app_stasis.so",
    "res_musiconhold.so", "app_playback.so", "app_echo.so", "app_dial.so",
    "app_mixmonitor.so", "chan_bridge_media.so", "res_format_attr_opus.so",
    # Operators: SIP REFER (the softphone's transfer button), refusal of sources after repeated
    # auth failures (type=acl), device state over AMI; app_queue is only the benchmark's
    # reference (bench/ P5), never used by the hotline's own calls.
    "res_pjsip_refer.so", "res_pjsip_acl.so", "res_manager_devicestate.so", "app_queue.so",
    "bridge_simple.so", "bridge_softmix.so", "bridge_native_rtp.so", "bridge_holding.so",
    "format_wav.so", "format_gsm.so", "format_pcm.so", "codec_ulaw.so", "codec_alaw.so",
    "codec_gsm.so", "codec_resample.so", "func_channel.so", "func_callerid.so",
    "func_strings.so", "pbx_config.so",
    # Several app instances (service.app_instances > 1): Gosub into hotline-stasis, which
    # picks one at random (RAND) and builds the Stasis args (IF).
    "app_stack.so", "func_rand.so", "func_logic.so",
    # Operators required to use TLS get SRTP (SDES keys in the TLS-protected SDP).
    "res_srtp.so",
)


def prompt_specs(config: HotlineConfig) -> list[PromptSpec]:
    """Every prompt the dialplan and the app play, per tenant, plus the default unavailable one."""
    specs = [PromptSpec("default", "unavailable", DEFAULT_PROMPTS.unavailable)]
    for t in config.tenants:
        p = t.prompts or DEFAULT_PROMPTS
        specs += [
            PromptSpec(t.id, "greeting", p.greeting),
            PromptSpec(t.id, "all_busy", p.all_busy),
            PromptSpec(t.id, "unavailable", p.unavailable),
            # Lines full: the callback offer and its confirmation (Shift.callback_when_full).
            PromptSpec(t.id, "callback_offer", p.callback_offer),
            PromptSpec(t.id, "callback_confirm", p.callback_confirm),
        ]
    return specs


# The digest realm of every challenge (global default_realm and each operator's auth): fixed,
# because the stored credential is md5("extension:realm:password") and changes with it.
SIP_REALM = "hotline1022"


@dataclass(frozen=True)
class OperatorAccount:
    """What pjsip.conf needs of one operator whose password was found."""

    tenant: str
    extension: str
    callerid: str  # already quoted and escaped: "Name" <101>
    password_digest: str  # md5 hex of "extension:SIP_REALM:password": pjsip.conf holds no password
    permit: tuple[str, ...] = ()  # networks the phone may use; empty: any
    tls: bool = False  # registers over transport-tls only, media SRTP (SDES) only


def conf_escape(value: str) -> str:
    """A value as Asterisk's config parser must read it back: ';' starts a comment unless
    escaped (the parser turns \\; into ;). A line break cannot be escaped (it would start a
    line of its own: a new key or section), so it and other control characters raise
    ValueError; secrets are checked for them when loaded (config.secrets)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a line break or control character cannot go into Asterisk's config")
    return value.replace(";", "\\;")


def password_digest(extension: str, password: str, realm: str = SIP_REALM) -> str:
    """The digest credential (RFC 2617 HA1) PJSIP's ``password_digest = md5:...`` takes."""
    # MD5 is what SIP digest authentication is built on (HA1), not our choice of hash.
    ha1 = hashlib.md5(f"{extension}:{realm}:{password}".encode(), usedforsecurity=False)
    return ha1.hexdigest()


def _caseless(text: str) -> str:
    """``text`` as a POSIX extended regex in any letter case (regcomp has no flag for that in
    match_header): friendly-scanner -> [Ff][Rr]..."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c if c in "-_0123456789"
                   else f"[{c}]" for c in text)


def scanner_user_agent_regex(names: Sequence[str] = SCANNER_USER_AGENTS) -> str:
    """A POSIX extended regex matching any of ``names`` in any letter case."""
    return "(" + "|".join(_caseless(n) for n in names) + ")"


def plain_contact_regex(extension: str) -> str:
    """A POSIX extended regex matching a Contact of ``extension`` that is not reached over TLS:
    ``<sip:101@host:port>``, ``;transport=udp`` ... but neither ``sips:`` nor any parameter
    ``transport=tls`` (letter case aside). ERE has no negative look-ahead: each parameter must
    differ from ``transport=tls`` at some position, or be shorter."""
    word = "transport=tls"
    not_tls = "|".join(
        f"{_caseless(word[:i])}([^{word[i].lower()}{word[i].upper()};>][^;>]*)?"
        for i in range(len(word)))
    return f"{_caseless('sip:')}{extension}@[^;>]*([;]({not_tls}))*(>|$)"


def _callerid(name: str, extension: str) -> str:
    # Quotes, angle brackets and ';' would break the callerid syntax or the config line.
    clean = "".join(c for c in name if c not in '"<>;\\' and ord(c) >= 0x20).strip()
    return f'"{clean}" <{extension}>' if clean else f"<{extension}>"


def operator_accounts(config: HotlineConfig, passwords: Mapping[str, str]) -> list[OperatorAccount]:
    """Operators of every tenant that have a password, in config order."""
    return [
        OperatorAccount(t.id, op.extension, _callerid(op.name, op.extension),
                        password_digest(op.extension, passwords[op.extension]), op.permit,
                        t.operators.tls_required(op))
        for t in config.tenants for op in t.operators.operators if op.extension in passwords
    ]


def refused_sources(banned_sources: Sequence[str]) -> list[str]:
    """Validated, sorted, de-duplicated IPv4 addresses; raise ValueError naming a bad one."""
    result = set()
    for s in banned_sources:
        try:
            result.add(ipaddress.IPv4Address(s.strip()))
        except ValueError:
            raise ValueError(f"banned source {s!r}: expected an IPv4 address") from None
    return [str(a) for a in sorted(result)]


TLS_CERT_FILE, TLS_KEY_FILE = "sip-tls.crt", "sip-tls.key"  # in etc/, with the config
# Where a request of an operator who must use TLS arrives when it is not over TLS: denied.
TLS_REQUIRED_ENDPOINT = "tls-required"


def render_texts(config: HotlineConfig, layout: PbxLayout, secrets: Secrets, *,
                 passwords: Mapping[str, str], verbose: bool = False,
                 bench_plain_number: str | None = None, tls: bool = False) -> dict[str, str]:
    """Each config file's text by name (nothing written); ``passwords`` by extension.

    ``tls``: a certificate and key are in etc/ (TLS_CERT_FILE, TLS_KEY_FILE), so PJSIP gets
    ``transport-tls``; without them an operator who must use TLS is a ConfigError."""
    operators = operator_accounts(config, passwords)
    tls_only = [op.extension for op in operators if op.tls]
    if tls_only and not tls:
        raise ConfigError(config.source, "sip_tls.cert", None,
                          f"expected a certificate and key (sip_tls.cert, sip_tls.key) for the "
                          f"operators who must use TLS ({', '.join(tls_only)}); `callcenter run` "
                          f"makes a self-signed pair when none is set")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Asterisk config, not HTML
    )
    env.filters["conf"] = conf_escape  # every secret written into a config value
    ctx = {
        "paths": layout.paths(),
        "service": config.service,
        "trunk": config.trunk,
        "tenants": config.tenants,
        "secrets": secrets,
        "modules": MODULES,
        "verbose": verbose,
        "bench_plain_number": bench_plain_number,
        "operators": operators,
        "tls": {"port": config.sip_tls.port, "cert": layout.pbx(f"etc/{TLS_CERT_FILE}"),
                "key": layout.pbx(f"etc/{TLS_KEY_FILE}")} if tls else None,
        "plain_contact": plain_contact_regex,
        "tls_required_endpoint": TLS_REQUIRED_ENDPOINT,
        "refused_file": REFUSED_FILE,
        "realm": SIP_REALM,
        "scanner_endpoint": SCANNER_ENDPOINT,
        "scanner_user_agents": scanner_user_agent_regex(),
        "contexts": Context,  # the dialplan's contract with the app (dialplan/contract.py)
        "verbs": Verb,
    }
    return {name: env.get_template(f"{name}.j2").render(ctx) for name in TEMPLATES}


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    # 0640: holds ARI/AMI secrets, for the owner and Asterisk's group (set_ownership). Root
    # writes here too, in a folder the app owns: never through a name the app could plant.
    write_atomic(path, text, 0o640)
    return True


REFUSED_FILE = "pjsip_refused.conf"  # included by pjsip.conf; the SIP guard rewrites it alone


def refused_sources_text(banned_sources: Sequence[str]) -> str:
    """The PJSIP ``type=acl`` section refusing these sources (a comment when there are none)."""
    lines = ["; Sources refused after repeated authentication failures (the SIP guard, from AMI",
             "; security events): every request from them gets 403, whatever endpoint it is for."]
    refused = refused_sources(banned_sources)
    if refused:
        lines += ["[refused-sources]", "type = acl", *(f"deny = {ip}" for ip in refused)]
    return "\n".join(lines) + "\n"


def write_refused_sources(layout: PbxLayout, banned_sources: Sequence[str]) -> bool:
    """Rewrite only the refused-sources ACL (``module reload res_pjsip.so`` applies it);
    True when it changed. Prompts and the rest of the tree are left alone."""
    with layout.locked():
        return _write_if_changed(layout.host("etc") / REFUSED_FILE,
                                 refused_sources_text(banned_sources))


def render(config: HotlineConfig, layout: PbxLayout, secrets: Secrets, *,
           prompt_cache: Path, sounds_override: Path | None = None,
           verbose: bool = False, bench_plain_number: str | None = None,
           banned_sources: Sequence[str] | None = (),
           environ: Mapping[str, str] | None = None,
           app_account: RunAs | None = None, state_dir: Path | None = None) -> list[str]:
    """Write all config files and prompts for the instance; return the names that changed.

    Operators' passwords are read from ``environ`` (default: this process's environment) or
    their files; an operator without one is left out and logged at ERROR. ``banned_sources``
    (IPv4 addresses) are refused by a PJSIP ``type=acl`` section in its own file: 403 to every
    request from them, registered operators and the trunk alike (``module reload
    res_pjsip.so`` applies it); None leaves that file as the SIP guard last wrote it (a config
    reload while sources are refused). One render at a time per instance (``layout.locked``);
    as root, ownership follows `PbxLayout.set_ownership` for ``app_account``.

    SIP TLS: the configured ``sip_tls`` pair, else the self-signed one `callcenter run` made
    in ``state_dir`` (pbx/tls.py), is copied into etc/ like the other secret files (0640,
    Asterisk's group); with neither, no ``transport-tls`` (ConfigError if an operator needs it).
    """
    layout.create()
    pair = tls_pair(config, state_dir)
    texts = render_texts(config, layout, secrets,
                         passwords=operator_passwords(config, environ),
                         verbose=verbose, bench_plain_number=bench_plain_number,
                         tls=pair is not None)
    if pair is not None:
        texts[TLS_CERT_FILE], texts[TLS_KEY_FILE] = pair.cert_pem, pair.key_pem
    if banned_sources is not None:
        texts[REFUSED_FILE] = refused_sources_text(banned_sources)
    changed = []
    with layout.locked():
        for name, text in texts.items():
            if _write_if_changed(layout.host("etc") / name, text):
                changed.append(name)
        if pair is None:  # TLS turned off: no private key left behind in the instance
            for name in (TLS_CERT_FILE, TLS_KEY_FILE):
                (layout.host("etc") / name).unlink(missing_ok=True)
        place_prompts(prompt_specs(config), layout.host("sounds"), sounds_override, prompt_cache)
        make_hold_music(layout.host("moh") / "hotline-hold.wav")
        layout.set_ownership(app_account)
    return changed
