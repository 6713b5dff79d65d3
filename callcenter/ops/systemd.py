"""systemd integration of `callcenter app` (Type=notify): READY=1, WATCHDOG=1, STATUS=, STOPPING=1.

The protocol is one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET (a
path, or ``@name`` for the abstract namespace), so no dependency is needed. Outside systemd
(no $NOTIFY_SOCKET: `make run`, tests) every call is a no-op.

- READY=1 once ARI is connected: `systemctl start` returns when calls can be answered, and
  units ordered after the app start then.
- WATCHDOG=1 every WATCHDOG_USEC/2 from a task on the event loop, when systemd asks for it
  (WatchdogSec=, and $WATCHDOG_PID absent or ours): a loop that hangs stops the pings and
  systemd restarts the app. A lost ARI connection does not stop them (Asterisk restarting is
  not the app's fault); it shows in STATUS= (`systemctl status`).
- STOPPING=1 when the app begins to shut down.

Wiring (callcenter/app.py): ``app.cleanup_ctx.append(systemd_ctx)`` last in ``build_app`` (its
cleanup runs first, so STOPPING=1 goes out at the start of the shutdown), and ``await
systemd_ready(app, app[STASIS].connected)`` in ``serve`` once the HTTP site is up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

STATUS_POLL_S = 1.0  # how often the connection state is looked at for STATUS= lines


def socket_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as an address for socket.sendto: a path, or '@name' -> '\\0name'."""
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: (systemd >= 254, VMs), not used on a host


class Notifier:
    """Sends sd_notify messages to one socket; never raises (systemd must not kill us for it)."""

    def __init__(self, address: str):
        self.address = address
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier for $NOTIFY_SOCKET, or None outside systemd."""
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        if not raw:
            return None
        address = socket_address(raw)
        if address is None:
            log.warning("NOTIFY_SOCKET=%r is not a socket path or @name: systemd is not told "
                        "when the app is ready", raw)
            return None
        return cls(address)

    def send(self, *lines: str) -> bool:
        """Send the lines as one message ("READY=1", "STATUS=..."); False if it was not sent."""
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)  # a full queue drops the message rather than the loop
                s.sendto(message, self.address)
        except OSError as e:
            if not self._warned:  # once: a watchdog ping every 15 s would flood the log
                log.warning("systemd notification to %r failed: %s", self.address, e)
                self._warned = True
            return False
        self._warned = False
        return True


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify message (e.g. notify("READY=1")); False outside systemd."""
    notifier = Notifier.from_env(env)
    return notifier.send(*lines) if notifier else False


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None
                      ) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when not asked."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wd_pid = env.get("WATCHDOG_PID", "")
    if wd_pid and wd_pid != str(os.getpid() if pid is None else pid):
        return None  # meant for another process (e.g. the parent that exec'd us)
    return int(usec) / 2 / 1_000_000


async def watchdog(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog every ``interval`` seconds while the event loop runs."""
    while True:
        notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)


def status_line(connected: bool) -> str:
    """The STATUS= text `systemctl status` shows for the ARI connection state."""
    if connected:
        return "STATUS=ARI connected: answering calls"
    return "STATUS=ARI not connected (is hotline1022-asterisk.service running?): calls are " \
           "not answered"


async def announce(notifier: Notifier, connected: asyncio.Event,
                   poll: float = STATUS_POLL_S) -> None:
    """READY=1 once ``connected`` is set, then a STATUS= line whenever it changes."""
    notifier.send(status_line(False))
    await connected.wait()
    notifier.send("READY=1", status_line(True))
    log.info("systemd told: ready (ARI connected)")
    shown = True
    while True:
        await asyncio.sleep(poll)
        now = connected.is_set()
        if now != shown:
            notifier.send(status_line(now))
            shown = now


@dataclass
class SystemdState:
    """What systemd_ctx keeps on the app: the notifier and the tasks it owns."""

    notifier: Notifier | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def own(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Start a named task that systemd_ctx's cleanup cancels."""
        task = asyncio.create_task(coro, name=name)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s died: %r", name, t.exception())

        task.add_done_callback(done)
        self.tasks.append(task)


SYSTEMD = web.AppKey("systemd", SystemdState)


async def systemd_ctx(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx: the watchdog task (when systemd asks for one); STOPPING=1 on cleanup."""
    notifier = Notifier.from_env()
    state = app[SYSTEMD] = SystemdState(notifier)
    interval = watchdog_interval()
    if notifier is not None and interval is not None:
        state.own(watchdog(notifier, interval), "systemd-watchdog")
        log.info("systemd watchdog: a ping every %.1f s", interval)
    yield
    if notifier is not None:
        notifier.send("STOPPING=1", "STATUS=stopping: flushing call records")
    for task in state.tasks:
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)


async def systemd_ready(app: web.Application, connected: asyncio.Event) -> None:
    """Tell systemd READY=1 once ``connected`` (ARI) is set; returns at once (a task waits)."""
    state = app.get(SYSTEMD)
    if state is None or state.notifier is None:
        return
    state.own(announce(state.notifier, connected), "systemd-ready")

