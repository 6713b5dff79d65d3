"""A scriptable SIP softphone (pjsua2, null audio) that places calls to the trunk over loopback.

Used by `callcenter dial`, the end-to-end tests and bench/. ``--mode operator`` registers one
operator account and answers what the PBX offers; ``--mode unit`` is a level-2 unit's hotline
that answers the outbound trunk's INVITEs on a fixed port (see SipAgent). Runs pjsua2 in the
calling thread (no pjsua worker threads), so it is deterministic. As a program it prints one
JSON line per call event and obeys `hangup [N]` / `quit` on stdin:

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
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

# The pjsua2 wheel on PyPI is built with PJSUA_MAX_CALLS = 4 (a 5th call fails with
# PJ_ETOOMANY whatever maxCalls says): more simultaneous calls need more phone processes.
MAX_CALLS = 4
TONE_HZ = 425  # the phones' default tone (a dial-tone pitch)

# Keys (RFC 4733 telephone-events) go out one at a time: each event lasts DTMF_TONE_MS (pjmedia's
# own default, so its RTP timestamps stay consistent), its end packet is sent 3 times, and the
# next key starts DTMF_GAP_S after that. Handing pjsua several keys at once queues them back to
# back 40 ms apart, and a stall of the phone's media clock sends them closer still; Asterisk
# ignores a key's begin within 45 ms of the previous key (AST_MIN_DTMF_GAP) and, once it
# emulates a key, publishes a key deferred meanwhile twice to ARI (ChannelDtmfReceived), so
# 13 keys typed at once arrived with keys doubled (docs/architecture.md, "Keys typed fast").
DTMF_TONE_MS = 200
DTMF_GAP_S = 0.2
DTMF_END_REPEATS = 3  # pjmedia sends an event's end packet this many times
DTMF_STUCK_S = 3.0  # a key whose packets have not all gone by then is given up on


class KeyLine:
    """What a call offers KeySender (mixed into both kinds of call)."""

    def send_key(self, key: str) -> None:
        """Hand pjsua one key as an RFC 4733 event of DTMF_TONE_MS."""
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = key
        prm.duration = DTMF_TONE_MS
        self.sendDtmf(prm)  # type: ignore[attr-defined]

    def tx_packets(self) -> int:
        """RTP packets this call has sent so far."""
        return int(self.getStreamStat(0).rtcp.txStat.pkt)  # type: ignore[attr-defined]

    def ptime_ms(self) -> int:
        """Milliseconds of audio per packet."""
        codec = self.getStreamInfo(0).audCodecParam  # type: ignore[attr-defined]
        return int(codec.info.frameLen * max(1, codec.setting.frmPerPkt))


class KeySender:
    """The keys pressed on one call, sent one at a time from the pjsua2 thread (``pump`` in the
    poll loop). A key is done once its packets have all left: the call's RTP packet count has
    grown by the event's packets (while a key is queued, every packet the stream sends is one
    of its events); then the next waits DTMF_GAP_S. The call (``KeyLine``) sends a key and
    reads its stream, raising pj.Error when it has none."""

    def __init__(self) -> None:
        self.pending: deque[str] = deque()
        self.key: str | None = None  # the key being sent
        self.until_packets = 0  # ... done once the packet count reaches this
        self.stuck_at = 0.0
        self.next_at = 0.0  # no key starts before this (monotonic)

    def press(self, digits: str) -> None:
        self.pending.extend(digits)

    def busy(self) -> bool:
        return self.key is not None or bool(self.pending)

    def pump(self, now: float, line: KeyLine) -> list[tuple[str, str]]:
        """Advance; what happened: ("sent", key) once a key's packets are all out,
        ("error", reason) for a key that could not be sent or never finished."""
        out: list[tuple[str, str]] = []
        if self.key is not None:
            try:
                done = line.tx_packets() >= self.until_packets
            except pj.Error:
                done = False  # no stream (any more): given up on at stuck_at
            if done:
                out.append(("sent", self.key))
            elif now >= self.stuck_at:
                out.append(("error", f"key {self.key} not sent within {DTMF_STUCK_S:.0f} s"))
            else:
                return out
            self.key = None
            self.next_at = now + DTMF_GAP_S
        if self.pending and now >= self.next_at:
            key = self.pending.popleft()
            try:
                ptime = max(1, line.ptime_ms())
                before = line.tx_packets()
                line.send_key(key)
            except pj.Error as e:
                out.append(("error", f"key {key}: {e.info()}"))
                self.next_at = now + DTMF_GAP_S
                return out
            self.key = key
            # The event's packets: one per ptime until its duration, then the end repeats.
            self.until_packets = before + -(-DTMF_TONE_MS // ptime) + DTMF_END_REPEATS - 1
            self.stuck_at = now + DTMF_STUCK_S
        return out


class _Call(KeyLine, pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Softphone | None, acc: pj.Account, index: int):
        if index >= MAX_CALLS:
            raise ValueError(f"one softphone places at most {MAX_CALLS} calls")
        super().__init__(acc)
        self.phone = phone
        self.index = index
        self.t_invite = 0.0
        self.keys = KeySender()
        self.result: dict[str, Any] = {
            "index": index, "final_code": None, "answered": False, "early_media": False,
            "ms_to_first_response": None, "ms_to_183": None, "ms_to_200": None,
            "ms_to_final": None, "rtp_rx_packets": 0, "rtp_rx_before_answer": 0,
            "reason": None, "disconnected": False, "keys_sent": "", "key_error": None,
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
            now = time.monotonic()
            for c in self.calls:
                if not c.result["disconnected"]:
                    c.sample_rtp()
                    self._pump_keys(c, now)
            if now >= end:
                return

    def _pump_keys(self, call: _Call, now: float) -> None:
        for what, detail in call.keys.pump(now, call):
            if what == "sent":
                call.result["keys_sent"] += detail
                self.emit("dtmf_sent", call)
            else:
                call.result["key_error"] = detail
                self.emit("dtmf_error", call)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.poll(0.02)
        return predicate()

    def dtmf(self, call: _Call, digits: str) -> None:
        """Press keys on a call (RFC 4733), one at a time (KeySender): each sent key is a
        ``dtmf_sent`` event (``keys_sent``: the keys sent so far), a key that could not be
        sent (the call is not up) a ``dtmf_error`` (``key_error``)."""
        if not call.result["disconnected"]:
            call.keys.press(digits)

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


class StdinLines:
    """Whole lines from stdin without blocking. (select() on sys.stdin then readline() loses
    commands: readline buffers every line already sent, and select() then sees none left.)"""

    def __init__(self, fd: int | None = None):
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.buf = b""
        self.eof = False

    def ready(self) -> list[str]:
        """The complete lines that arrived; after EOF a last partial line, then "quit"."""
        while not self.eof and select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        out = [line.decode(errors="replace") for line in lines]
        if self.eof:
            out += [self.buf.decode(errors="replace"), "quit"] if self.buf else ["quit"]
            self.buf = b""
        return out


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


# -- operator and unit phones ------------------------------------------------------------------
# A caller (above) places calls to the trunk. An *operator* phone registers one account with
# digest auth and is called by the PBX; a *unit* phone (a level-2 unit's hotline) registers
# nothing and answers what the outbound trunk sends to its fixed port. Both send audio (a tone
# or a wav through the conference bridge, clocked by the null sound device) so the other side
# receives RTP, and report what they receive.

RTP_SAMPLE_S = 0.5  # how often each live call's RTP counters are read and reported if changed


def request_user(whole_msg: str) -> str:
    """The user part of an INVITE's Request-URI ("INVITE sip:0251@h:p SIP/2.0" -> "0251")."""
    first = whole_msg.split("\r\n", 1)[0].split("\n", 1)[0]
    parts = first.split()
    if len(parts) < 2:
        return ""
    uri = parts[1]
    if ":" in uri:
        uri = uri.split(":", 1)[1]
    return uri.split("@", 1)[0] if "@" in uri else ""


class _AgentCall(KeyLine, pj.Call):  # type: ignore[misc]
    """One call of an operator or unit phone, incoming or dialled."""

    def __init__(self, agent: SipAgent, acc: pj.Account, index: int,
                 call_id: int = pj.PJSUA_INVALID_ID, direction: str = "in"):
        super().__init__(acc, call_id)
        self.agent: SipAgent | None = agent
        self.index = index
        self.direction = direction
        self.state = "ringing" if direction == "in" else "calling"
        self.created = time.monotonic()
        self.answer_at: float | None = None  # auto-answer (or auto-reject) due at
        self.reject_code: int | None = None
        self.rtp_rx = 0
        self.rtp_tx = 0
        self.reported_rx = 0  # report once packets flow
        self.media_status = ""
        self.connected_media: pj.AudioMedia | None = None
        self.recorder: pj.AudioMediaRecorder | None = None  # what this phone hears (--record-dir)
        self.keys = KeySender()

    def emit(self, kind: str, **fields: Any) -> None:
        if self.agent is not None:
            self.agent.emit(kind, index=self.index, **fields)

    def _record(self, aud: pj.AudioMedia) -> None:
        """Record what the far end sends to ``<record_dir>/call-<index>.wav`` (once)."""
        if self.agent is None or self.agent.record_dir is None or self.recorder is not None:
            return
        path = os.path.join(self.agent.record_dir, f"call-{self.index}.wav")
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        aud.startTransmit(recorder)
        self.recorder = recorder
        self.emit("recording", path=path)

    def _stop_recording(self) -> None:
        # Destroying the recorder writes the WAV header's sizes.
        recorder, self.recorder = self.recorder, None
        del recorder

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 - pjsua2 API
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_EARLY and self.direction == "out":
            self.emit("progress", code=ci.lastStatusCode)
        elif ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.state not in ("confirmed",):
            if self.direction == "out":
                self.emit("answered", code=200)
            self.state = "confirmed"
            self.emit("confirmed")
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and self.state != "disconnected":
            self.sample_rtp()
            self.state = "disconnected"
            self.connected_media = None
            self._stop_recording()
            self.emit("disconnected", code=ci.lastStatusCode, reason=ci.lastReason,
                      rtp_rx=self.rtp_rx, rtp_tx=self.rtp_tx)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = {pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
                      pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
                      pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
                      pj.PJSUA_CALL_MEDIA_NONE: "none",
                      pj.PJSUA_CALL_MEDIA_ERROR: "error"}.get(mi.status, str(mi.status))
            if status != self.media_status:
                self.media_status = status
                self.emit("media", status=status, srtp=self.srtp_active())
            if mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                aud = self.getAudioMedia(i)
                if self.agent is not None and self.agent.source is not None:
                    self.agent.source.startTransmit(aud)
                self.connected_media = aud
                self._record(aud)
            break

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        self.emit("dtmf_rx", digit=prm.digit)

    def srtp_active(self) -> bool:
        """Whether the call's media goes through an active SRTP session (pjsua's own call
        dump says "SRTP status: Active" only once keys were negotiated)."""
        try:
            return "SRTP status: Active" in self.dump(True, "")
        except pj.Error:
            return False

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        self.emit("transfer_status", code=prm.statusCode, reason=prm.reason,
                  final=bool(prm.finalNotify))
        if prm.finalNotify and 200 <= prm.statusCode < 300:
            # Transferred: hang up our leg as softphones do (the PBX may have done it already).
            try:
                self.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        # Accept the REFER (202) and place the new call as one of ours, so it reports too.
        agent = self.agent
        self.emit("transfer_request", uri=prm.dstUri)
        if agent is not None and agent.acc is not None:
            new = _AgentCall(agent, agent.acc, len(agent.calls), direction="out")
            agent.calls.append(new)
            new.emit("dialing", uri=prm.dstUri, transferred_from=self.index)
            prm.newCall = new

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:  # noqa: N802
        # An INVITE with Replaces (attended transfer) took this call's place: the new call is
        # one of ours too.
        agent = self.agent
        if agent is not None and agent.acc is not None:
            new = _AgentCall(agent, agent.acc, len(agent.calls), prm.newCallId, "in")
            new.state = "answering"
            agent.calls.append(new)
            new.emit("replaced", replaces=self.index, remote_uri=new.getInfo().remoteUri)
            prm.newCall = new

    def sample_rtp(self) -> None:
        """Read RTP counters while the stream exists (it is gone after disconnect)."""
        try:
            ci = self.getInfo()
            if not any(m.status != pj.PJSUA_CALL_MEDIA_NONE for m in ci.media):
                return
            stat = self.getStreamStat(0)
        except pj.Error:
            return
        self.rtp_rx = max(self.rtp_rx, stat.rtcp.rxStat.pkt)
        self.rtp_tx = max(self.rtp_tx, stat.rtcp.txStat.pkt)


class _AgentAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, agent: SipAgent):
        super().__init__()
        self.agent = agent

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 - pjsua2 API
        code = int(prm.code)
        if 200 <= code < 300:
            kind = "registered" if prm.expiration > 0 else "unregistered"
            self.agent.emit(kind, code=code, expires=int(prm.expiration))
        else:
            self.agent.emit("reg_failed", code=code, reason=prm.reason)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self.agent.incoming(self, prm)


class SipAgent:
    """An operator's (registering) or a unit's (listening) phone: one account, up to MAX_CALLS
    calls at once, events to ``on_event(kind, fields)``, driven by ``poll``."""

    def __init__(self, on_event: Callable[[str, dict[str, Any]], None], *,
                 bind: str = "127.0.0.1", port: int = 0, audio: str = "tone",
                 answer_after: float | None = None, reject_code: int | None = None,
                 log_level: int = 0, record_dir: str | None = None, transport: str = "udp"):
        self.on_event = on_event
        self.bind = bind
        self.record_dir = record_dir
        self.answer_after = answer_after
        self.reject_code = reject_code
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
        cfg.medConfig.noVad = True  # send every frame: the far end counts packets
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = bind
        tcfg.publicAddress = bind
        tcfg.port = port
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.port = int(self.ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        # "tls": the account signals over TLS (its own transport; the server's certificate is
        # not verified: a test PBX's is self-signed) and sends SRTP only (SDES).
        self.tls_transport: int | None = None
        if transport == "tls":
            tls = pj.TransportConfig()
            tls.boundAddress = bind
            tls.publicAddress = bind
            tls.port = 0
            self.tls_transport = self.ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self.source: pj.AudioMedia | None = self._audio_source(audio)
        self.acc: _AgentAccount | None = None
        self.registrar = ""
        self.calls: list[_AgentCall] = []
        self.last_sample = 0.0

    def _audio_source(self, audio: str) -> pj.AudioMedia | None:
        if audio == "none":
            return None
        if audio.startswith("wav:"):
            player = pj.AudioMediaPlayer()
            player.createPlayer(audio[4:], 0)  # 0: loop
            self._player = player
            return player
        freq = int(audio.partition(":")[2] or TONE_HZ)  # "tone" or "tone:FREQ"
        tone = pj.ToneGenerator()
        tone.createToneGenerator()
        desc = pj.ToneDesc()
        desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = freq, 0, 1000, 0
        tones = pj.ToneDescVector()
        tones.append(desc)
        tone.play(tones, True)
        self._tone = tone
        return tone

    def emit(self, kind: str, **fields: Any) -> None:
        self.on_event(kind, {"t": round(time.time(), 3), **fields})

    # -- account ------------------------------------------------------------------------
    def create_account(self, user: str, *, registrar: str | None = None,
                       password: str | None = None, reg_timeout: int = 300,
                       reg_retry: int = 0) -> None:
        """One account: registering with digest auth at ``registrar`` (host:port), or local."""
        acfg = pj.AccountConfig()
        host = registrar or f"{self.bind}:{self.port}"
        acfg.idUri = f"sip:{user}@{host}"
        if registrar:
            self.registrar = registrar
            acfg.regConfig.registrarUri = f"sip:{registrar}" + (
                ";transport=tls" if self.tls_transport is not None else "")
            acfg.regConfig.timeoutSec = reg_timeout
            acfg.regConfig.retryIntervalSec = reg_retry  # 0: a refused REGISTER is not retried
            acfg.regConfig.firstRetryIntervalSec = reg_retry
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", user, 0, password or ""))
        # A plain softphone: no RFC 5626 outbound, no contact/Via rewriting from responses.
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        # Keep RTP on loopback, on the same address as SIP.
        acfg.mediaConfig.transportConfig.boundAddress = self.bind
        acfg.mediaConfig.transportConfig.publicAddress = self.bind
        acfg.mediaConfig.transportConfig.port = 0
        if self.tls_transport is not None:
            acfg.sipConfig.transportId = self.tls_transport
            acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
            acfg.mediaConfig.srtpSecureSignaling = 1  # SDES keys only over TLS
        self.acc = _AgentAccount(self)
        self.acc.create(acfg)

    def register(self, on: bool = True) -> None:
        if self.acc is not None and self.registrar:
            try:
                self.acc.setRegistration(on)
            except pj.Error as e:
                self.emit("error", command="register" if on else "unregister", reason=e.info())

    # -- calls --------------------------------------------------------------------------
    def live(self) -> list[_AgentCall]:
        return [c for c in self.calls if c.state != "disconnected"]

    def incoming(self, acc: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        call = _AgentCall(self, acc, len(self.calls), prm.callId, "in")
        self.calls.append(call)
        ci = call.getInfo()
        src = prm.rdata.srcAddress
        call.emit("incoming", remote_uri=ci.remoteUri, local_uri=ci.localUri,
                  user=request_user(prm.rdata.wholeMsg), source=src)
        if self.reject_code is not None and not self.answer_after:
            self._respond(call, self.reject_code)
            return
        self._respond(call, 180)
        if self.answer_after is not None:
            call.answer_at = time.monotonic() + self.answer_after
            call.reject_code = self.reject_code

    def _respond(self, call: _AgentCall, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        try:
            if code < 300:
                call.answer(prm)
                if code == 200:
                    call.emit("answered", code=200)
            else:
                call.hangup(prm)
        except pj.Error as e:
            call.emit("error", command=f"respond {code}", reason=e.info())

    def _pick(self, index: int | None, ringing: bool = False) -> list[_AgentCall]:
        if index is not None:
            return [self.calls[index]] if 0 <= index < len(self.calls) else []
        live = self.live()
        if ringing:
            live = [c for c in live if c.direction == "in" and c.state == "ringing"][:1]
        return live

    def answer(self, index: int | None = None) -> None:
        for call in self._pick(index, ringing=True):
            call.answer_at = None
            call.state = "answering"
            self._respond(call, 200)

    def reject(self, index: int | None = None, code: int = 486) -> None:
        for call in self._pick(index, ringing=True):
            call.answer_at = None
            self._respond(call, code)

    def hangup(self, index: int | None = None) -> None:
        for call in self._pick(index):
            if call.state != "disconnected":
                call.sample_rtp()
                try:
                    call.hangup(pj.CallOpParam(True))
                except pj.Error:
                    pass  # already ending

    def hold(self, index: int | None = None, on: bool = True) -> None:
        for call in self._pick(index):
            prm = pj.CallOpParam(True)
            try:
                if on:
                    call.setHold(prm)
                else:
                    prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                    call.reinvite(prm)
            except pj.Error as e:
                call.emit("error", command="hold" if on else "unhold", reason=e.info())

    def dtmf(self, digits: str, index: int | None = None) -> None:
        """Press keys (RFC 4733) one at a time (KeySender): ``dtmf_sent`` (digit) for each
        key sent, ``error`` for one that could not be."""
        for call in self._pick(index):
            call.keys.press(digits)

    def target_uri(self, target: str) -> str:
        """A number becomes sip:number@registrar (or @this phone's own address)."""
        if target.startswith(("sip:", "sips:")):
            return target
        if "@" in target:
            return f"sip:{target}"
        return f"sip:{target}@{self.registrar or f'{self.bind}:{self.port}'}"

    def dial(self, target: str) -> None:
        """Call a number (a feature code such as *11, an extension) or a SIP URI."""
        if self.acc is None:
            return
        if len(self.live()) >= MAX_CALLS:
            self.emit("error", command="dial", reason=f"at most {MAX_CALLS} calls")
            return
        call = _AgentCall(self, self.acc, len(self.calls), direction="out")
        self.calls.append(call)
        uri = self.target_uri(target)
        call.emit("dialing", uri=uri)
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as e:
            call.state = "disconnected"
            call.emit("disconnected", code=0, reason=e.info(), rtp_rx=0, rtp_tx=0)

    def xfer(self, index: int, target: str) -> None:
        """Blind transfer: REFER the far end of call ``index`` to ``target``."""
        for call in self._pick(index):
            try:
                call.xfer(self.target_uri(target), pj.CallOpParam(True))
            except pj.Error as e:
                call.emit("error", command="xfer", reason=e.info())

    def xfer_replaces(self, index: int, other: int) -> None:
        """Attended transfer: REFER the far end of ``index`` to replace call ``other``."""
        calls, others = self._pick(index), self._pick(other)
        for call in calls:
            for dest in others:
                try:
                    call.xferReplaces(dest, pj.CallOpParam(True))
                except pj.Error as e:
                    call.emit("error", command="xfer_replaces", reason=e.info())

    def report(self) -> None:
        for c in self.calls:
            c.sample_rtp()
            c.emit("report", state=c.state, direction=c.direction, media=c.media_status,
                   rtp_rx=c.rtp_rx, rtp_tx=c.rtp_tx)

    # -- loop ---------------------------------------------------------------------------
    def poll(self, seconds: float) -> None:
        """Run pjsua2's events for up to seconds; auto-answer due calls; report RTP."""
        end = time.monotonic() + seconds
        while True:
            self.ep.libHandleEvents(10)
            now = time.monotonic()
            for c in self.live():
                if c.answer_at is not None and now >= c.answer_at:
                    c.answer_at = None
                    if c.reject_code is not None:
                        self._respond(c, c.reject_code)
                    else:
                        c.state = "answering"
                        self._respond(c, 200)
            for c in self.live():
                for what, detail in c.keys.pump(now, c):
                    if what == "sent":
                        c.emit("dtmf_sent", digit=detail)
                    else:
                        c.emit("error", command="dtmf", reason=detail)
            if now - self.last_sample >= RTP_SAMPLE_S:
                self.last_sample = now
                for c in self.live():
                    c.sample_rtp()
                    if c.rtp_rx != c.reported_rx:
                        c.reported_rx = c.rtp_rx
                        c.emit("rtp", rx=c.rtp_rx, tx=c.rtp_tx)
            if now >= end:
                return

    def command(self, line: str) -> bool:
        """Obey one stdin command; False on quit. Unknown commands are reported, not fatal.

        answer [I] | reject [I|-] [CODE] | hangup [I] | hold [I] | unhold [I] | dtmf DIGITS [I]
        | dial NUMBER|URI | xfer I NUMBER|URI | xfer_replaces I OTHER | register | unregister
        | report | quit. Without I: answer/reject the oldest ringing call, others every call.
        """
        words = line.split()
        if not words:
            return True
        verb, args = words[0], words[1:]

        def idx(i: int) -> int | None:
            return int(args[i]) if len(args) > i and args[i] != "-" else None  # "-": default

        try:
            if verb == "quit":
                return False
            if verb == "answer":
                self.answer(idx(0))
            elif verb == "reject":
                self.reject(idx(0), int(args[1]) if len(args) > 1 else 486)
            elif verb == "hangup":
                self.hangup(idx(0))
            elif verb in ("hold", "unhold"):
                self.hold(idx(0), on=verb == "hold")
            elif verb == "dtmf" and args:
                self.dtmf(args[0], int(args[1]) if len(args) > 1 else None)
            elif verb == "dial" and args:
                self.dial(args[0])
            elif verb == "xfer" and len(args) == 2:
                self.xfer(int(args[0]), args[1])
            elif verb == "xfer_replaces" and len(args) == 2:
                self.xfer_replaces(int(args[0]), int(args[1]))
            elif verb in ("register", "unregister"):
                self.register(verb == "register")
            elif verb == "report":
                self.report()
            else:
                self.emit("error", command=line.strip(), reason="unknown command")
        except (ValueError, IndexError) as e:
            self.emit("error", command=line.strip(), reason=str(e))
        return True

    def close(self) -> None:
        """Hang up, unregister, free every Call and Account, then destroy the library."""
        self.hangup()
        end = time.monotonic() + 5
        while self.live() and time.monotonic() < end:
            self.poll(0.05)
        if self.acc is not None and self.registrar:
            self.register(False)
            self.poll(0.3)
        while self.calls:
            call = self.calls.pop()
            call._stop_recording()
            call.agent = None
            call.connected_media = None
            del call
        self.acc = None
        self.source = None
        self.__dict__.pop("_tone", None)
        self.__dict__.pop("_player", None)
        gc.collect()  # pjsua2 objects collected after libDestroy abort the process
        self.ep.libDestroy()


def run_agent(args: argparse.Namespace) -> int:
    """Operator or unit mode: JSON lines out, commands on stdin, until quit or stdin closes."""

    def out(kind: str, fields: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"event": kind, **fields}) + "\n")
        sys.stdout.flush()

    agent = SipAgent(out, bind=args.bind, port=args.port, audio=args.audio,
                     answer_after=None if args.answer_after < 0 else args.answer_after,
                     reject_code=args.reject_code, log_level=args.log_level,
                     record_dir=args.record_dir, transport=args.transport)
    try:
        if args.mode == "operator":
            agent.create_account(args.extension, registrar=args.registrar or None,
                                 password=args.password or os.environ.get("SOFTPHONE_PASSWORD"),
                                 reg_timeout=args.reg_timeout, reg_retry=args.reg_retry)
        else:
            agent.create_account(args.user)
        agent.emit("ready", mode=args.mode, port=agent.port, bind=args.bind)
        stdin = StdinLines()
        running = True
        while running:
            agent.poll(0.02)
            for line in stdin.ready():
                if not agent.command(line):
                    running = False
                    break
    finally:
        agent.close()
        out("closed", {"t": round(time.time(), 3)})
        os._exit(0)  # pjsua2's destructors can crash at interpreter exit; all output is flushed


class PhoneProcess:
    """One operator or unit phone process (``--mode operator|unit``): its JSON events gathered
    by a reader thread, commands written to its stdin."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.tools.softphone", *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Events of this kind whose fields equal ``match`` (e.g. index=0)."""
        with self._lock:
            return [e for e in self.events if e["event"] == kind
                    and all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, kind: str, n: int = 1, timeout: float = 15.0,
                 **match: Any) -> list[dict[str, Any]]:
        """Wait until n such events arrived (or timeout, or the process ended); return them."""
        end = time.monotonic() + timeout
        while len(self.of(kind, **match)) < n and time.monotonic() < end:
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        return self.of(kind, **match)

    def send(self, command: str) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the phone has ended already

    def close(self, timeout: float = 15.0) -> None:
        """Hang up everything, unregister and end the process."""
        self.send("quit")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


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
    ap.add_argument("--mode", choices=("caller", "operator", "unit"), default="caller",
                    help="caller: place --count calls; operator: register --extension at "
                         "--registrar; unit: answer INVITEs sent to --bind:--port")
    ap.add_argument("--extension", default="101", help="operator: SIP user")
    ap.add_argument("--password", default="",
                    help="operator: SIP password (or the SOFTPHONE_PASSWORD environment variable)")
    ap.add_argument("--registrar", default="127.0.0.1:5060",
                    help="operator: host:port (empty: no registration, dial SIP URIs)")
    ap.add_argument("--transport", choices=("udp", "tls"), default="udp",
                    help="operator: register and call over TLS with mandatory SRTP (SDES)")
    ap.add_argument("--reg-timeout", type=int, default=300, help="operator: REGISTER expiry")
    ap.add_argument("--reg-retry", type=int, default=0,
                    help="operator: retry a failed REGISTER after this many seconds (0: never)")
    ap.add_argument("--user", default="unit", help="unit: the account's user part")
    ap.add_argument("--port", type=int, default=0, help="operator/unit: SIP port (0: any)")
    ap.add_argument("--answer-after", type=float, default=-1.0,
                    help="operator/unit: answer incoming calls after this many seconds "
                         "(negative: ring until told)")
    ap.add_argument("--reject-code", type=int, default=None,
                    help="operator/unit: reject incoming calls with this code instead "
                         "(after --answer-after seconds, at once if that is negative or 0)")
    ap.add_argument("--audio", default="tone",
                    help=f"operator/unit: tone (a {TONE_HZ} Hz tone) | tone:FREQ | wav:PATH | none")
    ap.add_argument("--record-dir", default=None,
                    help="operator/unit: record what each call receives to DIR/call-N.wav")
    ap.add_argument("--log-level", type=int, default=0, help="pjsua2 log level to stderr")
    args = ap.parse_args()
    if args.mode != "caller":
        return run_agent(args)

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
        stdin = StdinLines()
        quitting = False
        while time.monotonic() < end and not phone.all_done() and not quitting:
            phone.poll(0.05)
            for line in stdin.ready():
                if line.strip() == "quit":
                    quitting = True
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
