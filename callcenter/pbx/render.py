"""Render Asterisk's configuration from the hotline config and the templates in asterisk-config/.

Nothing in the rootfs is edited by hand: every file Asterisk reads for an instance is written here.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from callcenter.domain.model import DEFAULT_PROMPTS, HotlineConfig
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.prompts import PromptSpec, make_hold_music, place_prompts
from callcenter.secrets import Secrets

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "asterisk-config"
TEMPLATES = (
    "asterisk.conf", "modules.conf", "logger.conf", "http.conf", "ari.conf", "manager.conf",
    "rtp.conf", "musiconhold.conf", "pjsip.conf", "extensions.conf", "cdr.conf", "cel.conf",
    "features.conf", "indications.conf", "acl.conf", "udptl.conf", "pjproject.conf",
    "stasis.conf", "ccss.conf", "codecs.conf", "geolocation.conf", "websocket_client.conf",
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
    "app_mixmonitor.so", "res_format_attr_opus.so",
    "bridge_simple.so", "bridge_softmix.so", "bridge_native_rtp.so", "bridge_holding.so",
    "format_wav.so", "format_gsm.so", "format_pcm.so", "codec_ulaw.so", "codec_alaw.so",
    "codec_gsm.so", "codec_resample.so", "func_channel.so", "func_callerid.so",
    "func_strings.so", "pbx_config.so",
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
        ]
    return specs


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o640)  # contains ARI/AMI secrets: readable by asterisk only (chown_tree)
    os.replace(tmp, path)
    return True


def render(config: HotlineConfig, layout: PbxLayout, secrets: Secrets, *,
           prompt_cache: Path, sounds_override: Path | None = None,
           verbose: bool = False, bench_plain_number: str | None = None) -> list[str]:
    """Write all config files and prompts for the instance; return the names that changed."""
    layout.create()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Asterisk config, not HTML
    )
    ctx = {
        "paths": layout.paths(),
        "service": config.service,
        "trunk": config.trunk,
        "tenants": config.tenants,
        "secrets": secrets,
        "modules": MODULES,
        "verbose": verbose,
        "bench_plain_number": bench_plain_number,
    }
    changed = []
    for name in TEMPLATES:
        text = env.get_template(f"{name}.j2").render(ctx)
        if _write_if_changed(layout.host("etc") / name, text):
            changed.append(name)
    place_prompts(prompt_specs(config), layout.host("sounds"), sounds_override, prompt_cache)
    make_hold_music(layout.host("moh") / "hotline-hold.wav")
    layout.chown_tree()
    return changed
