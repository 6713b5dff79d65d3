"""A scriptable SIP softphone (pjsua2, null audio) that places calls to the trunk over loopback.

Used by `callcenter dial`, the end-to-end tests and bench/. Runs pjsua2 in the calling thread
(no pjsua worker threads), so it is deterministic. As a program it prints one JSON line per call
event and obeys `hangup [N]` / `quit` on stdin:

    python -m callcenter.tools.softphone --to 127.0.0.1:5060 --number 1022 --count 3 --hold 30
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

# The pjsua2 wheel on PyPI is built with PJSUA_MAX_CALLS = 4 (a 5th call fails with
# PJ_ETOOMANY whatever maxCalls says): more simultaneous calls need more phone processes.
MAX_CALLS = 4


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Softphone | None, acc: pj.Account, index: int):
        if index >= MAX_CALLS:
            raise ValueError(f"one softphone places at most {MAX_CALLS} calls")
        super().__init__(acc)
        self.phone = phone
        self.index = index
        self.t_invite = 0.0
        self.result: dict[str, Any] = {
            "index": index, "final_code": None, "answered": False, "early_media": False,
            "ms_to_first_response": None, "ms_to_183": None, "ms_to_200": None,
            "ms_to_final": None, "rtp_rx_packets": 0, "rtp_rx_before_answer": 0,
            "reason": None, "disconnected": False,
        }

    def _emit(self, kind: str) -> None:
        if self.phone is not None:
            self.phone.emit(kind, self)

    def _ms(self) -> float:
        return round((time.monotonic() - self.t_invite) * 1000, 2)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 - pjsua2 API
        ci = self.getInfo()
        r = self.result
        code = ci.lastStatusCode
        if r["ms_to_first_response"] is None and code and code > 100:
            r["ms_to_first_response"] = self._ms()
        if ci.state == pj.PJSIP_INV_STATE_EARLY and code == 183 and r["ms_to_183"] is None:
            r["ms_to_183"] = self._ms()
            self._emit("progress")
        elif ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not r["answered"]:
            r["answered"] = True
            r["ms_to_200"] = self._ms()
            r["final_code"] = 200
            self._emit("answered")
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if r["final_code"] is None:
                r["final_code"] = code
                r["ms_to_final"] = self._ms()
            r["reason"] = ci.lastReason
            r["disconnected"] = True
            self._emit("disconnected")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if ci.state == pj.PJSIP_INV_STATE_EARLY:
                    self.result["early_media"] = True

    def sample_rtp(self) -> None:
        """Read RTP counters while the stream exists (it is gone after disconnect)."""
        try:
            ci = self.getInfo()
            if not any(m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in ci.media):
                return
            pkts = self.getStreamStat(0).rtcp.rxStat.pkt
        except pj.Error:
            return
        self.result["rtp_rx_packets"] = max(self.result["rtp_rx_packets"], pkts)
        if not self.result["answered"]:
            self.result["rtp_rx_before_answer"] = max(self.result["rtp_rx_before_answer"], pkts)


class Softphone:
    """One pjsua2 endpoint on 127.0.0.1 with an account per caller number."""

    def __init__(self, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 log_level: int = 0, bind: str = "127.0.0.1"):
        self.on_event = on_event
        self.bind = bind
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        cfg.medConfig.hasIoqueue = True
        cfg.medConfig.threadCnt = 0
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = bind
        tcfg.publicAddress = bind
        tcfg.port = 0
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self.accounts: dict[str, pj.Account] = {}
        self.calls: list[_Call] = []

    def emit(self, kind: str, call: _Call) -> None:
        if self.on_event:
            self.on_event(kind, dict(call.result))

    def account(self, caller: str) -> pj.Account:
        if caller not in self.accounts:
            acfg = pj.AccountConfig()
            acfg.idUri = f"sip:{caller}@{self.bind}"
            # Keep RTP on loopback: the machine's other interface must never appear in SDP.
            acfg.mediaConfig.transportConfig.boundAddress = self.bind
            acfg.mediaConfig.transportConfig.publicAddress = self.bind
            acfg.mediaConfig.transportConfig.port = 0
            acc = pj.Account()
            acc.create(acfg)
            self.accounts[caller] = acc
        return self.accounts[caller]

    def call(self, target: str, number: str, caller: str) -> _Call:
        """Send an INVITE to sip:number@target from caller."""
        c = _Call(self, self.account(caller), len(self.calls))
        self.calls.append(c)
        c.t_invite = time.monotonic()
        c.makeCall(f"sip:{number}@{target}", pj.CallOpParam(True))
        return c

    def poll(self, seconds: float) -> None:
        """Run pjsua2's events for up to seconds, sampling RTP counters."""
        end = time.monotonic() + seconds
        while True:
            self.ep.libHandleEvents(10)
            for c in self.calls:
                if not c.result["disconnected"]:
                    c.sample_rtp()
            if time.monotonic() >= end:
                return

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.poll(0.02)
        return predicate()

    def dtmf(self, call: _Call, digits: str) -> None:
        """Press keys on an answered call (RFC 2833); ignored if the call is not up."""
        try:
            call.sample_rtp()
            call.dialDtmf(digits)
        except pj.Error:
            pass

    def hangup(self, call: _Call) -> None:
        if not call.result["disconnected"]:
            call.sample_rtp()
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass

    def all_done(self) -> bool:
        return all(c.result["disconnected"] for c in self.calls)

    def hangup_all(self) -> None:
        for c in self.calls:
            self.hangup(c)

    def results(self) -> list[dict[str, Any]]:
        return [dict(c.result) for c in self.calls]

    def close(self) -> None:
        """Hang up, free every Call, then destroy the library (in that order, or pjsua aborts)."""
        self.hangup_all()
        self.wait(self.all_done, 5)
        while self.calls:
            call = self.calls.pop()
            call.phone = None  # break the cycle so the Call is freed before the library
            del call
        self.accounts.clear()
        gc.collect()  # pjsua2 objects collected after libDestroy abort the process
        self.ep.libDestroy()


def caller_for(caller: str, index: int, total: int) -> str:
    """Each of several simultaneous calls gets its own caller number (last digits = index)."""
    return caller if total == 1 else f"{caller[:-2]}{index:02d}"


class PhoneGroup:
    """Any number of simultaneous calls: phone processes of up to MAX_CALLS calls each, their
    JSON events gathered by reader threads. Commands go to every process."""

    def __init__(self, target: str, number: str, count: int = 1, hold: float = 60.0,
                 caller: str = "0909000111", bind: str = "127.0.0.1"):
        self.count = count
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        for base in range(0, count, MAX_CALLS):
            proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter.tools.softphone", "--to", target,
                 "--number", number, "--count", str(min(MAX_CALLS, count - base)),
                 "--index-base", str(base), "--hold", str(hold), "--caller", caller,
                 "--bind", bind, "--total", str(count)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True,
            )
            self.procs.append(proc)
            reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    def wait_for(self, kind: str, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until n events of this kind arrived (or timeout); return them all."""
        end = time.monotonic() + timeout
        while len(self.of(kind)) < n and time.monotonic() < end:
            time.sleep(0.02)
        return self.of(kind)

    def send(self, command: str) -> None:
        """`hangup`, `hangup N` (N counted within each process), `dtmf DIGITS [N]`, `report`
        or `quit`."""
        for proc in self.procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write(command + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def finish(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Hang up everything; return each call's final result, by index."""
        self.send("hangup")
        self.send("quit")
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for reader in self._readers:
            reader.join(5)
        return sorted(self.of("final"), key=lambda r: r["index"])


def parse_keys(spec: str) -> list[tuple[float, str]]:
    """ "1@2 5@4.5" -> [(2.0, "1"), (4.5, "5")]: press these keys this many seconds after the
    answer. Raises ValueError naming the bad item."""
    plan: list[tuple[float, str]] = []
    for item in spec.split():
        digits, _, at = item.partition("@")
        if not digits or any(d not in "0123456789*#" for d in digits):
            raise ValueError(f"{item!r}: keys are 0-9 * #, e.g. 1@2")
        try:
            plan.append((float(at), digits))
        except ValueError:
            raise ValueError(f"{item!r}: expected KEYS@SECONDS, e.g. 1@2") from None
    return sorted(plan)


def place_calls(target: str, number: str, *, caller: str = "0909000111", count: int = 1,
                hold: float = 8.0, bind: str = "127.0.0.1",
                keys: list[tuple[float, str]] | None = None) -> list[dict[str, Any]]:
    """Place count simultaneous calls, keep the answered ones for hold seconds (pressing
    ``keys`` at their times after the first answer), hang up."""
    group = PhoneGroup(target, number, count=count, hold=hold, caller=caller, bind=bind)
    if keys and group.wait_for("answered", 1, timeout=30):
        start = time.monotonic()
        for at, digits in keys:
            time.sleep(max(0.0, start + at - time.monotonic()))
            group.send(f"dtmf {digits}")
    group.wait_for("final", count, timeout=hold + 30)
    return group.finish()


def main() -> int:
    """The scriptable phone: JSON lines out, commands in."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", default="127.0.0.1:5060")
    ap.add_argument("--number", default="1022")
    ap.add_argument("--caller", default="0909000111")
    ap.add_argument("--count", type=int, default=1, help=f"at most {MAX_CALLS}")
    ap.add_argument("--index-base", type=int, default=0, help="number this phone's calls from")
    ap.add_argument("--total", type=int, default=0, help="calls placed by the whole group")
    ap.add_argument("--bind", default="127.0.0.1", help="loopback address to send from")
    ap.add_argument("--hold", type=float, default=60.0, help="hang up after this many seconds")
    args = ap.parse_args()

    def out(kind: str, result: dict[str, Any]) -> None:
        result = {**result, "index": result["index"] + args.index_base}
        sys.stdout.write(json.dumps({"event": kind, **result}) + "\n")
        sys.stdout.flush()

    phone = Softphone(on_event=out, bind=args.bind)
    try:
        for i in range(args.count):
            phone.call(args.to, args.number, caller_for(args.caller, args.index_base + i,
                                                        args.total or args.count))
        end = time.monotonic() + args.hold
        while time.monotonic() < end and not phone.all_done():
            phone.poll(0.05)
            if select.select([sys.stdin], [], [], 0)[0]:
                line = sys.stdin.readline()
                if not line or line.strip() == "quit":
                    break
                words = line.split()
                if words and words[0] == "hangup":
                    targets = phone.calls if len(words) == 1 else [phone.calls[int(words[1])]]
                    for c in targets:
                        phone.hangup(c)
                elif len(words) >= 2 and words[0] == "dtmf":
                    # RFC 2833 telephone-events, as a phone's keypad sends them.
                    targets = phone.calls if len(words) == 2 else [phone.calls[int(words[2])]]
                    for c in targets:
                        phone.dtmf(c, words[1])
                elif words and words[0] == "report":
                    for c in phone.calls:
                        out("report", c.result)
        for c in phone.calls:
            phone.hangup(c)
        phone.wait(phone.all_done, 10)
        for c in phone.calls:
            out("final", c.result)
    finally:
        phone.close()
        os._exit(0)  # pjsua2's destructors can crash at interpreter exit; all output is flushed


if __name__ == "__main__":
    sys.exit(main())
