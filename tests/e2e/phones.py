"""Operator and unit phones for end-to-end tests: one pjsua2 process each
(``callcenter.tools.softphone --mode operator|unit``), its JSON events gathered here.

Every event is a dict with ``event`` (kind), ``t`` (wall clock) and, for call events, ``index``
(the phone's own count of calls, incoming and dialled, from 0). Kinds: ready, registered,
reg_failed, unregistered, incoming (remote_uri, user = dialled user part, source), dialing,
progress, answered, confirmed, media (status: active|local_hold|remote_hold|none; srtp: bool),
rtp (rx, tx:
packets so far, every 0.5 s while they grow), dtmf_rx (digit), dtmf_sent (digit: a key pressed
with ``dtmf`` has all left; keys go one at a time), transfer_status (code, final),
transfer_request (uri), disconnected (code, reason, rtp_rx, rtp_tx), recording (path: what
the call receives, with ``record_dir``), report, error, closed. ``audio``: ``tone`` (425 Hz),
``tone:FREQ``, ``wav:PATH`` or ``none``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

from callcenter.tools.softphone import PhoneProcess
from tests.e2e.stack import free_port


def _record_args(record_dir: Path | None) -> list[str]:
    """Record what each call receives to ``record_dir/call-<index>.wav`` (``recording``)."""
    return [] if record_dir is None else ["--record-dir", str(record_dir)]


class _HasSipPort(Protocol):
    sip_port: int
    tls_port: int


class _Phone(PhoneProcess):
    """What operator and unit phones share: call commands and RTP counters."""

    def _wait_ready(self, timeout: float) -> None:
        ready = self.wait_for("ready", 1, timeout)
        if not ready:
            self.close(2)
            raise RuntimeError(f"softphone did not start: {self.events}")
        self.port = int(ready[0]["port"])

    @staticmethod
    def _opt(index: int | None) -> str:
        return "" if index is None else f" {index}"

    def answer(self, index: int | None = None) -> None:
        """Answer call ``index`` (default: the oldest ringing one)."""
        self.send("answer" + self._opt(index))

    def reject(self, index: int | None = None, code: int = 486) -> None:
        """Refuse ringing call ``index`` (default: the oldest ringing one) with ``code``."""
        self.send(f"reject {'-' if index is None else index} {code}")

    def hangup(self, index: int | None = None) -> None:
        """Hang up call ``index`` (default: every live call)."""
        self.send("hangup" + self._opt(index))

    def hold(self, index: int | None = None) -> None:
        self.send("hold" + self._opt(index))

    def unhold(self, index: int | None = None) -> None:
        self.send("unhold" + self._opt(index))

    def dtmf(self, digits: str, index: int | None = None) -> None:
        """Press keys (RFC 4733) on call ``index`` (default: every live call): sent one at a
        time, each a ``dtmf_sent`` event once out."""
        self.send(f"dtmf {digits}" + self._opt(index))

    def dial(self, number: str) -> None:
        """Call a number through the registrar (``*11``, an extension) or a SIP URI."""
        self.send(f"dial {number}")

    def report(self) -> None:
        self.send("report")

    def rtp_rx(self, index: int = 0) -> int:
        """RTP packets received on call ``index`` so far (as last reported)."""
        seen = [e["rx"] for e in self.of("rtp", index=index)]
        seen += [e["rtp_rx"] for e in self.of("disconnected", index=index)]
        return max(seen, default=0)

    def rtp_tx(self, index: int = 0) -> int:
        seen = [e["tx"] for e in self.of("rtp", index=index)]
        seen += [e["rtp_tx"] for e in self.of("disconnected", index=index)]
        return max(seen, default=0)


class OperatorPhone(_Phone):
    """An operator's softphone: registers ``extension`` with digest auth at the stack's SIP
    port (``None``: registers nowhere, dials SIP URIs), from ``bind`` (any 127.x address; SIP
    and RTP both). ``auto_answer``: seconds before answering an incoming call; None rings until
    ``answer()``. ``transport="tls"``: registers at the stack's TLS port (an int port is taken
    as that port) and sends SRTP only."""

    def __init__(self, stack_or_sip_port: _HasSipPort | int | None, extension: str,
                 password: str, bind: str = "127.0.0.1", auto_answer: float | None = None,
                 audio: str = "tone", reg_timeout: int = 300, reg_retry: int = 0,
                 timeout: float = 10.0, record_dir: Path | None = None,
                 transport: str = "udp"):
        if stack_or_sip_port is None:
            registrar = ""
        else:
            port = (stack_or_sip_port if isinstance(stack_or_sip_port, int)
                    else stack_or_sip_port.tls_port if transport == "tls"
                    else stack_or_sip_port.sip_port)
            registrar = f"127.0.0.1:{port}"
        self.extension = extension
        self._reg_mark = 0
        # The password travels in the environment, not on the command line (ps shows that).
        super().__init__(
            ["--mode", "operator", "--extension", extension, "--registrar", registrar,
             "--bind", bind, "--audio", audio, "--reg-timeout", str(reg_timeout),
             "--reg-retry", str(reg_retry), "--transport", transport,
             "--answer-after", str(-1.0 if auto_answer is None else auto_answer),
             *_record_args(record_dir)],
            env={**os.environ, "SOFTPHONE_PASSWORD": password})
        self._wait_ready(timeout)

    def _reg_outcomes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events
                    if e["event"] in ("registered", "reg_failed", "unregistered")]

    def wait_registered(self, timeout: float = 10.0) -> int:
        """The SIP code of the next registration outcome since the last (re)register
        (200: registered; 401/403: refused; 408: no answer); 0 if none came in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            outcomes = self._reg_outcomes()
            if len(outcomes) > self._reg_mark:
                self._reg_mark += 1
                return int(outcomes[self._reg_mark - 1]["code"])
            time.sleep(0.02)
        return 0

    def register(self) -> None:
        """REGISTER again (e.g. after unregister(), or to retry after a failure)."""
        self._reg_mark = len(self._reg_outcomes())
        self.send("register")

    def unregister(self) -> None:
        """REGISTER with Expires: 0; wait_registered() then returns its code (200)."""
        self._reg_mark = len(self._reg_outcomes())
        self.send("unregister")

    def xfer(self, index: int, target: str) -> None:
        """Blind transfer (REFER) of call ``index``'s far end to a number or SIP URI."""
        self.send(f"xfer {index} {target}")

    def xfer_replaces(self, index: int, other: int) -> None:
        """Attended transfer: REFER call ``index``'s far end to replace call ``other``."""
        self.send(f"xfer_replaces {index} {other}")


class UnitPhone(_Phone):
    """A level-2 unit's hotline: registers nothing, answers INVITEs sent to 127.0.0.1:``port``
    (the stack's outbound trunk) after ``answer_after`` seconds (None: rings until
    ``answer()``), or rejects them with ``reject_code``. ``port`` None: a free one
    (``self.port``)."""

    def __init__(self, port: int | None = None, answer_after: float | None = 0.5,
                 reject_code: int | None = None, audio: str = "tone", bind: str = "127.0.0.1",
                 timeout: float = 10.0, record_dir: Path | None = None):
        port = port or free_port(socket.SOCK_DGRAM)
        argv = ["--mode", "unit", "--port", str(port), "--bind", bind, "--audio", audio,
                "--answer-after", str(-1.0 if answer_after is None else answer_after),
                *_record_args(record_dir)]
        if reject_code is not None:
            argv += ["--reject-code", str(reject_code)]
        super().__init__(argv)
        self._wait_ready(timeout)

    def dialled(self) -> list[str]:
        """The user part (the unit's hotline number) of every INVITE received, in order."""
        return [e["user"] for e in self.of("incoming")]
