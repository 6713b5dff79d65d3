"""`callcenter agent ...` and `callcenter queue`: operators' controls and the live queue.

    callcenter agent login|logout|unpause|ready EXT [--json]
    callcenter agent pause EXT [--reason R] [--json]   # R: reason id or its number (1-9)
    callcenter agent list [--tenant T] [--json]
    callcenter queue [--tenant T] [--json]

The actions are the phone's feature codes (``callcenter.queue.control``): they change the
operator's state in Redis (``REDIS_URL``, else the private server's socket in the state folder)
and the running service picks the change up at once from ``hotline:events``.

``queue --json`` prints the snapshot of docs/live-state.md exactly, one JSON object per line and
tenant (``--tenant`` for one). ``agent list --json`` prints a JSON list of the snapshots'
agents, each with its ``tenant``. The human forms mask callers' numbers.

Exit codes: 0 done; 2 refused (the error id and the Vietnamese reason on stderr), an unknown
tenant, or Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from callcenter.config.settings import Settings

T = TypeVar("T")


def register(sub: Any) -> None:
    """Add `agent` (with its subcommands) and `queue` to the top-level CLI's subparsers."""
    p = sub.add_parser("agent", help="operators: log in/out, pause/unpause, ready, list")
    ag = p.add_subparsers(dest="agent_command", required=True)
    for action, text in (("login", "log the operator in (ready for calls)"),
                         ("logout", "log the operator out (on a call: when it ends)"),
                         ("pause", "pause the operator (on a call: when it ends)"),
                         ("unpause", "end the operator's pause"),
                         ("ready", "end the operator's wrap-up now")):
        c = ag.add_parser(action, help=text)
        c.add_argument("extension", metavar="EXT", help="the operator's extension, e.g. 101")
        if action == "pause":
            c.add_argument("--reason", help="pause reason id (break, meeting ...) or its "
                                            "number in the tenant's list (default: the first)")
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=cmd_action, agent_action=action)
    c = ag.add_parser("list", help="operators and their states")
    c.add_argument("--tenant")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)
    c = sub.add_parser("queue", help="the live queue: waiting calls, operators, totals")
    c.add_argument("--tenant")
    c.add_argument("--json", action="store_true",
                   help="the snapshot JSON (docs/live-state.md), one line per tenant")
    c.set_defaults(handler=cmd_queue)


def _redis_url(settings: Settings) -> str:
    """Where the hotline's Redis is, for messages (REDIS_URL, the private socket, Sentinel)."""
    from callcenter.redis_clients import RedisTarget

    return str(RedisTarget.of(settings))


def _with_acd(settings: Settings, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``work(acd, config)`` on an AcdQueue over the hotline's Redis, policies set."""
    from callcenter.config.file import load_config
    from callcenter.queue.redis import AcdQueue
    from callcenter.redis_clients import RedisTarget, async_client

    config = load_config(settings.config_path)

    async def run() -> T:
        client = async_client(RedisTarget.of(settings), socket_connect_timeout=2,
                              socket_timeout=5)
        try:
            acd = AcdQueue(client, instance="cli", node=config.service.node)
            for t in config.tenants:
                acd.set_policy(t.id, t.operators.queue)
            return await work(acd, config)
        finally:
            await client.aclose()

    return asyncio.run(run())


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _guarded(settings: Settings, work: Callable[[Any, Any], Awaitable[int]]) -> int:
    from redis.exceptions import RedisError

    try:
        return _with_acd(settings, work)
    except _Refused as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as e:
        print(f"error: Redis at {_redis_url(settings)} unreachable: {e}", file=sys.stderr)
        return 2


def cmd_action(args: argparse.Namespace, settings: Settings) -> int:
    """login | logout | pause | unpause | ready EXT."""
    from callcenter.queue.control import AgentActionError, apply_action, result_json

    async def work(acd: Any, config: Any) -> int:
        try:
            result = await apply_action(acd, config, args.extension, args.agent_action,
                                        getattr(args, "reason", None))
        except AgentActionError as e:
            if args.json:
                print(json.dumps({"error": {"id": e.id, "message": e.message}},
                                 ensure_ascii=False))
            print(f"error: {e.id}: {e.message}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result_json(result), ensure_ascii=False))
        else:
            print(f"{result.extension} ({result.tenant}): {result.message} "
                  f"[{_state_text(result.state.status.value)}]")
        return 0

    return _guarded(settings, work)


def _tenants(config: Any, wanted: str | None) -> list[Any]:
    if wanted is None:
        return list(config.tenants)
    try:
        found = [config.require_tenant(wanted)]
    except LookupError as e:
        raise _Refused(str(e)) from e
    return found


async def _snapshots(acd: Any, config: Any, wanted: str | None) -> list[tuple[Any, Any]]:
    return [(t, await acd.snapshot(t.id)) for t in _tenants(config, wanted)]


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every operator (of one tenant) and their state."""
    async def work(acd: Any, config: Any) -> int:
        snaps = await _snapshots(acd, config, args.tenant)
        if args.json:
            print(json.dumps([{"tenant": t.id, **a} for t, s in snaps for a in s["agents"]],
                             ensure_ascii=False))
            return 0
        print(f"{'tenant':<10} " + _AGENT_HEADER)
        for t, s in snaps:
            for a in s["agents"]:
                print(f"{t.id:<10} " + _agent_line(a))
        return 0

    return _guarded(settings, work)


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    """The live snapshot per tenant: waiting calls, operators, totals."""
    async def work(acd: Any, config: Any) -> int:
        snaps = await _snapshots(acd, config, args.tenant)
        for i, (t, s) in enumerate(snaps):
            if args.json:
                print(json.dumps(s, ensure_ascii=False))
                continue
            if i:
                print()
            print("\n".join(queue_text(t.id, t.name, s)))
        return 0

    return _guarded(settings, work)


# ---- human form -------------------------------------------------------------------------------
def _state_text(state: str) -> str:
    from callcenter.queue.agent import AgentStatus
    from callcenter.queue.texts import state_label

    return f"{state_label(AgentStatus(state))} ({state})"


def clock(seconds: object) -> str:
    """Seconds as mm:ss (h:mm:ss from an hour on)."""
    total = max(int(seconds), 0) if isinstance(seconds, int | float) else 0
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m:02}:{s:02}"


_AGENT_HEADER = (f"{'ext':<7} {'name':<24} {'state':<34} {'in state':>8}  reachable")


def _agent_line(a: dict[str, Any]) -> str:
    state = _state_text(str(a["state"]))
    if a.get("reason_label"):
        state += f": {a['reason_label']}"
    if a.get("pending"):
        state += f" +{a['pending']}"
    name = str(a.get("name") or "")[:24]
    return (f"{a['extension']:<7} {name:<24} {state:<34} {clock(a['time_in_state_s']):>8}  "
            f"{'yes' if a['reachable'] else 'no'}")


def queue_text(tenant_id: str, tenant_name: str, s: dict[str, Any]) -> list[str]:
    """A tenant's snapshot as lines for a terminal (callers masked)."""
    from callcenter.numbers import mask_number

    def caller(number: object) -> str:
        return mask_number(str(number)) if number else "-"

    counts = s["counts"]
    lines = [f"{tenant_id} — {tenant_name}"]
    lines.append(f"  waiting calls: {counts['queued']} ({counts['ringing']} ringing, "
                 f"{counts['urgent']} urgent), longest wait {clock(counts['longest_wait_s'])}")
    if s["calls"]:
        lines.append(f"  {'#':>3}  {'wait':>8}  {'urgent':<6}  {'caller':<14}  {'state':<8}  "
                     "ringing  est. wait")
        for c in s["calls"]:
            est = c["estimated_wait_s"]
            lines.append(
                f"  {c['position']:>3}  {clock(c['wait_s']):>8}  "
                f"{'!' if c['urgent'] else '':<6}  {caller(c['caller']):<14}  "
                f"{c['state']:<8}  {c['ringing_extension'] or '-':<7}  "
                f"{'-' if est is None else clock(est)}")
    lines.append(f"  operators: {len(s['agents'])}")
    if s["agents"]:
        lines.append("  " + _AGENT_HEADER)
        lines.extend("  " + _agent_line(a) for a in s["agents"])
    by_state = ", ".join(f"{k} {v}" for k, v in counts["agents"].items())
    aht = s["average_handle_s"]
    lines.append(f"  totals: free {counts['agents_free']}, serving {counts['agents_serving']}, "
                 f"reachable {counts['agents_reachable']}; average handle "
                 f"{'-' if aht is None else clock(aht)}")
    lines.append(f"  by state: {by_state}")
    return lines
