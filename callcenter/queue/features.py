"""Feature codes dialled from an operator's phone (``*11`` log in ... ``*15`` ready).

The dialplan (context ``from-operators``) sends the call into the Stasis app with the args
``agent,<action>[,<N>]``; the service hands that channel here. We apply the action to the
operator whose phone dialled (the channel's PJSIP endpoint: ``PJSIP/101-0000001a`` -> ``101``),
put the spoken confirmation's file in the channel variable ``HOTLINE_FEATURE_PROMPT`` (a path
as Asterisk sees it, without extension, as ``Playback`` wants it), and send the channel back to
the dialplan, which answers, plays it and hangs up. Nothing here raises: whatever fails, the
channel still goes back to the dialplan (with no prompt, it just hangs up) and the log says why.
"""

from __future__ import annotations

import logging
from typing import Any

from callcenter.ari_app.client import AriClient, ChannelGone
from callcenter.config.model import HotlineConfig
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.tree import Prompt
from callcenter.queue import texts as tx
from callcenter.queue.control import AgentActionError, apply_action
from callcenter.queue.redis import AcdQueue

log = logging.getLogger("callcenter.queue.features")

PROMPT_VAR = "HOTLINE_FEATURE_PROMPT"
NO_TENANT = "default"  # prompts of an extension that belongs to no tenant (no recorded files)


def extension_of(channel: dict[str, Any]) -> str | None:
    """The PJSIP endpoint that owns the channel (``PJSIP/101-0000001a`` -> ``101``)."""
    name = str(channel.get("name", ""))
    tech, _, rest = name.partition("/")
    if tech.upper() != "PJSIP" or not rest:
        return None
    endpoint, sep, _suffix = rest.rpartition("-")
    return endpoint if sep and endpoint else None


def _sound_path(media: str) -> str:
    """``sound:/srv/.../cache/ab12`` -> ``/srv/.../cache/ab12`` (Playback's argument)."""
    return media.removeprefix("sound:")


async def handle_feature(ari: AriClient, acd: AcdQueue, config: HotlineConfig,
                         prompts: PromptLibrary, channel: dict[str, Any],
                         args: list[str]) -> None:
    """Apply the feature code ``args`` (["agent", action, (N)]) for the channel's operator and
    return the channel to the dialplan with the confirmation prompt set. Never raises."""
    channel_id = str(channel.get("id", ""))
    extension = extension_of(channel) or ""
    action = args[1] if len(args) > 1 else ""
    reason: str | None = args[2] if len(args) > 2 and args[2] else None
    tenant = NO_TENANT
    prompt: Prompt | None = None
    try:
        try:
            if not extension:
                raise AgentActionError(tx.UNKNOWN, tx.refusal(tx.UNKNOWN, ""), "")
            result = await apply_action(acd, config, extension, action, reason)
            tenant = result.tenant
            prompt = Prompt(result.prompt_id, result.message)
            outcome = ("ok " + result.state.status.value
                       + (f" pending {result.state.pending}" if result.pending else ""))
        except AgentActionError as e:
            tenant = e.tenant or NO_TENANT
            prompt = Prompt(e.prompt_id, e.message)
            outcome = f"refused {e.id}"
        log.info("feature code: extension=%s tenant=%s action=%s%s result=%s",
                 extension or "?", tenant, action or "?", f" reason={reason}" if reason else "",
                 outcome)
    except Exception:  # the phone must still get its channel back (and hang up)
        log.exception("feature code: extension=%s action=%s failed", extension or "?", action)
    if prompt is not None:
        try:
            media = await prompts.media(tenant, prompt)
            await ari.request("POST", f"/channels/{channel_id}/variable", variable=PROMPT_VAR,
                              value=_sound_path(media))
        except ChannelGone:
            # The operator hung up before the answer came: nothing to play, nothing to continue.
            log.info("feature code: extension=%s hung up before the confirmation",
                     extension or "?")
            return
        except Exception:
            log.exception("feature code: extension=%s: no confirmation prompt", extension or "?")
    try:
        await ari.request("POST", f"/channels/{channel_id}/continue")
    except ChannelGone:
        log.info("feature code: extension=%s hung up before the confirmation", extension or "?")
    except Exception:
        log.exception("feature code: extension=%s: could not return the channel to the "
                      "dialplan", extension or "?")
