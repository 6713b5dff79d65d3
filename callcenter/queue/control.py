"""Operators' own controls: log in, log out, pause, unpause, "ready" (end wrap-up now).

One operation, ``apply_action``, serves the phone's feature codes (``features.py``), the CLI
(``callcenter agent ...``) and the HTTP API (``/api/v1/agents/{ext}/{action}``), so all three
accept and refuse the same things with the same words (``callcenter.queue.texts``).

* The operator's tenant is found by extension (extensions are unique across tenants).
* Pause reasons: a reason id (``break``) or its 1-based position in the tenant's
  ``queue.pause_reasons`` as the phone sends it (``*132`` -> 2); none: the first. The
  automatic ``no_answer`` reason cannot be chosen by hand.
* Pause or log out during a call (ringing, on call, wrap-up) is *pending*: it applies when the
  call is over (``callcenter.queue.agent``); the result says so.
* "ready" ends a wrap-up; for an operator already available it changes nothing and says so.
* The change goes to Redis through ``AcdQueue.agent_event``, which publishes it on
  ``hotline:events``: the service's ACD driver offers calls to a newly free operator from
  there, so the CLI needs no connection to the service.

Refusals raise ``AgentActionError`` with a stable id (``agent.unknown``, ``agent.not_loaded``,
``agent.bad_action``, ``agent.bad_reason``, ``agent.illegal``, ``agent.busy``,
``agent.unavailable``) and a Vietnamese message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from callcenter.config.model import HotlineConfig, Tenant
from callcenter.queue import agent as ag
from callcenter.queue import texts as tx
from callcenter.queue.policy import NO_ANSWER_REASON, PauseReason, QueuePolicy
from callcenter.queue.redis import AcdQueue
from callcenter.queue.rules import QueueConflict, agent_json

ACTIONS = tx.ACTIONS


class AgentActionError(Exception):
    """A refused operator action: stable ``id``, Vietnamese ``message``."""

    def __init__(self, error_id: str, text: tx.AgentText, extension: str,
                 tenant: str | None = None,
                 reasons: tuple[PauseReason, ...] = ()) -> None:
        super().__init__(f"{error_id}: {text.text}")
        self.id = error_id
        self.message = text.text
        self.prompt_id = text.prompt_id
        self.extension = extension
        self.tenant = tenant
        self.reasons = reasons  # the valid pause reasons (agent.bad_reason)


@dataclass(frozen=True)
class ActionResult:
    """What an accepted action did."""

    tenant: str
    extension: str
    action: str
    state: ag.AgentState  # after the action
    pending: bool  # a pause/log-out that waits for the current call to end
    message: str  # Vietnamese confirmation
    prompt_id: str  # the spoken confirmation's prompt id (recorded override)
    changed: bool = True  # False: nothing to do ("ready" while already available)
    reason: PauseReason | None = None  # the pause reason chosen (pause)
    commands: tuple[ag.Command, ...] = field(default=())


def result_json(result: ActionResult) -> dict[str, Any]:
    """An accepted action as the CLI (``--json``) and the HTTP API show it."""
    return {"tenant": result.tenant, "extension": result.extension, "action": result.action,
            "changed": result.changed, "pending": result.pending, "message": result.message,
            "reason": result.reason.id if result.reason else None,
            "agent": agent_json(result.state)}


def tenant_of(config: HotlineConfig, extension: str) -> Tenant | None:
    """The tenant whose operators include this extension."""
    return next((t for t in config.tenants if t.operators.operator(extension) is not None),
                None)


def resolve_reason(policy: QueuePolicy, reason: str | int | None) -> PauseReason | None:
    """The pause reason meant by an id, a 1-based position (int or digits) or None (the first);
    None when it names none of the tenant's reasons."""
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        return policy.pause_reasons[0] if policy.pause_reasons else None
    if isinstance(reason, bool):
        return None
    if isinstance(reason, int):
        return policy.reason_by_code(reason)
    text = reason.strip()
    by_id = next((r for r in policy.pause_reasons if r.id == text), None)
    if by_id is not None:
        return by_id
    if text.isascii() and text.isdigit() and len(text) <= 2:
        return policy.reason_by_code(int(text))
    return None


def _label(policy: QueuePolicy, reason_id: str | None) -> str | None:
    found = policy.reason(reason_id) if reason_id else None
    return found.label if found else reason_id


async def apply_action(acd: AcdQueue, config: HotlineConfig, extension: str, action: str,
                       reason: str | int | None = None) -> ActionResult:
    """Apply an operator's own action to their agent state; raises AgentActionError."""
    if action not in ACTIONS:
        raise AgentActionError(tx.BAD_ACTION, tx.refusal(tx.BAD_ACTION, extension), extension)
    tenant = tenant_of(config, extension)
    if tenant is None:
        raise AgentActionError(tx.UNKNOWN, tx.refusal(tx.UNKNOWN, extension), extension)
    tid = tenant.id
    policy = tenant.operators.queue
    if acd.policy(tid) != policy:
        # The queue checks pause reasons against its own copy of the policy: the config handed
        # in is the one in force (the service sets it at start and reload; the CLI never did).
        acd.set_policy(tid, policy)

    def refuse(error_id: str, state: ag.AgentState | None = None) -> AgentActionError:
        reasons = policy.pause_reasons if error_id == tx.BAD_REASON else ()
        text = tx.refusal(error_id, extension, action=action, state=state, reasons=reasons)
        return AgentActionError(error_id, text, extension, tid, reasons)

    chosen: PauseReason | None = None
    event: ag.Event
    if action == "login":
        event = ag.LogIn()
    elif action == "logout":
        event = ag.LogOut()
    elif action == "unpause":
        event = ag.Unpause()
    elif action == "ready":
        event = ag.WrapUpDone()
    else:
        chosen = resolve_reason(policy, reason)
        if chosen is None or chosen.id == NO_ANSWER_REASON.id:
            raise refuse(tx.BAD_REASON)
        event = ag.Pause(chosen.id)

    try:
        before = await acd.agent(tid, extension)
        if before is None:
            raise refuse(tx.NOT_LOADED)
        if action == "ready" and before.status is not ag.AgentStatus.WRAP_UP:
            # WrapUpDone outside wrap-up is a silent no-op in the machine (late timers); a
            # person asking deserves an answer.
            if before.status is ag.AgentStatus.AVAILABLE:
                text = tx.confirmation(action, before, before)
                return ActionResult(tid, extension, action, before, False, text.text,
                                    text.prompt_id, changed=False)
            raise refuse(tx.ILLEGAL, before)
        try:
            after, commands = await acd.agent_event(tid, extension, event)
        except ag.IllegalTransition:
            raise refuse(tx.ILLEGAL, await acd.agent(tid, extension)) from None
        except QueueConflict as e:
            if e.id == "unknown_agent":
                raise refuse(tx.NOT_LOADED) from None
            if e.id == "busy":
                raise refuse(tx.BUSY) from None
            raise refuse(tx.ILLEGAL, await acd.agent(tid, extension)) from None
    except (RedisError, OSError):
        raise refuse(tx.UNAVAILABLE) from None

    pending = ((action == "pause" and after.pending == ag.PENDING_PAUSE)
               or (action == "logout" and after.pending == ag.PENDING_LOGOUT))
    label = chosen.label if chosen is not None else _label(policy, after.reason)
    text = tx.confirmation(action, before, after, label)
    return ActionResult(tid, extension, action, after, pending, text.text, text.prompt_id,
                        reason=chosen, commands=tuple(commands))
