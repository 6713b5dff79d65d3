"""P5 — queued caller -> operator's phone rings: this app's queue versus Asterisk's app_queue.

One `callcenter run` (tenant dongnai with four operators, a one-word greeting, no IVR, wrap-up 0)
and, on the *same* PBX, Asterisk's own `app_queue` configured the same way (queues.conf
`benchq-dongnai`, rendered only for benchmarks: the same four phones as static members,
`leastrecent` = longest idle, the tenant's ring timeout and retry, wrapuptime 0, ringinuse no,
autofill). The operators' phones are four SIPp processes that REGISTER with digest auth, answer
the qualify OPTIONS, and for each INVITE ring 100 ms, answer, talk 300-700 ms (uniform: a fixed
talk time would lock the hang-ups to app_queue's once-a-second poll) and hang up (BYE), so
calls cycle. The operators are logged in with `callcenter agent login`; the app sees them
reachable through its AMI watcher.

* app path: the caller dials 1022 -> Stasis -> line from the pool -> greeting -> music on hold +
  the app's queue (Redis) -> offer -> ARI originate PJSIP/<ext>;
* app_queue path: the caller dials 19001022qdongnai -> Answer, the same greeting ->
  Queue(benchq-dongnai) -> app_queue rings PJSIP/<ext>.

Both paths start music on hold when the caller joins the queue, so the clock starts at AMI
`MusicOnHoldStart` of the caller's channel and stops at the operator channel's AMI `Newchannel`
(the channel Asterisk creates to ring the phone; linked to the caller by Linkedid) — both on
Asterisk's clock (manager.conf timestampevents, microseconds). Also shown: to `DialBegin`, and to
the INVITE's arrival at the operator's phone (SIPp's trace, same machine clock).

Measurement 1 (free operator): at most 2 callers at a time for 4 operators, so a free phone
always exists when a caller joins. Rounds alternate the paths (ABBA...) so both see the same
machine. Measurement 2 (operator hangs up, callers waiting): 20 callers at a time for 4
operators; for each operator channel's AMI `Hangup` while at least 2 callers are on hold and
not yet rung, the time to the next `Newchannel` towards that operator (and, at the phone, its
BYE -> the next INVITE). app_queue's waiting callers look for a free member once a second
(app_queue.c RECHECK), so there it is 0-1 s; the app offers at once on the hang-up.

Targets: measurement 1, app - app_queue <= 20 ms at p95; measurement 2, the app's p50 and p95 no
slower than app_queue's. Exit status 0 only when both hold and nothing is left behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    LOOPBACK,
    PLAIN_NUMBER,
    TENANT,
    Hotline,
    SippProcess,
    finish,
    fmt_ms,
    free_udp_range,
    log,
    machine_summary,
    median,
    parse_calls,
    percentile,
    start_sipp,
    stop_on_signals,
    table,
)

APP_NUMBER = "1022"
QUEUE_NUMBER = f"{PLAIN_NUMBER}q{TENANT}"  # extensions.conf.j2 [from-trunk], bench only
OPERATORS = ("201", "202", "203", "204")
RING_MS = 100
TALK_MS = (300, 700)  # uniform
TARGET_P95_DIFF_MS = 20.0
MIN_WAITING = 2  # measurement 2 counts a hang-up only with this many callers on hold
FLOOD_LIMIT = 20  # measurement 2: callers at once (4 talking, the rest greeted or on hold)
PATHS = {"app": ("1", APP_NUMBER), "app_queue": ("2", QUEUE_NUMBER)}
OP_CHANNEL = re.compile(r"^PJSIP/(\d{3,6})-")
CALLER_CHANNEL = re.compile(r"^PJSIP/trunk-")

# ---- SIPp scenarios (written into the run's work folder) ------------------------------------
_SDP = """
      v=0
      o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=ptime:20
      a=sendrecv
"""

OPERATOR_REGISTER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- P5 operator phone: REGISTER with digest auth (-au/-ap), then stay registered (the calls
     arrive out of this dialog and run queue_operator_ooc.xml). -->
<scenario name="P5 operator register">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]:[remote_port]>;tag=[pid]reg[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 3600
      User-Agent: hotline-bench-operator
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]:[remote_port]>;tag=[pid]reg[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      [authentication]
      Max-Forwards: 70
      Expires: 3600
      User-Agent: hotline-bench-operator
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="3600000"/>
</scenario>
"""

OPERATOR_OOC = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- P5 operator phone, each request from the PBX: OPTIONS (qualify) -> 200; INVITE -> 180,
     ring RING_MS, 200 with SDP, ACK, talk TALK_MIN-TALK_MAX ms, BYE (the operator hangs up).
     Tags and the BYE's branch come from the PBX's Call-ID: [call_number] is not unique among SIPp's
     out-of-call calls, and a repeated branch makes the PBX answer a BYE as a retransmission
     of an earlier call's BYE. -->
<scenario name="P5 operator answers">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE">
    <action>
      <ereg regexp="&lt;[^>]*>.*" search_in="hdr" header="From:" assign_to="peer"/>
      <ereg regexp="&lt;[^>]*>" search_in="hdr" header="To:" assign_to="me"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="target"/>
      <ereg regexp="[^ ]+$" search_in="hdr" header="Call-ID:" assign_to="cid" check_it="true"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=op[$cid]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="RING_MS"/>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=op[$cid]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]
SDP
    ]]>
  </send>
  <recv request="ACK"/>
  <pause distribution="uniform" min="TALK_MIN" max="TALK_MAX"/>
  <send retrans="500">
    <![CDATA[

      BYE [$target] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-bye-[$cid]
      From: [$me];tag=op[$cid]
      To: [$peer]
      [last_Call-ID:]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="done"/>
  <label id="options"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]opt[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
"""

CALLER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- P5 caller: INVITE (From user [caller][call_number], unique per run), answered, ACK, then
     wait for the hotline's BYE (sent when the operator hung up). -->
<scenario name="P5 caller">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller][call_number]@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[caller][call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: hotline-bench
      Content-Type: application/sdp
      Content-Length: [len]
SDP
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[caller][call_number]@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv request="BYE" timeout="120000"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def write_scenarios(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in (("operator_register", OPERATOR_REGISTER), ("operator_ooc", OPERATOR_OOC),
                       ("caller", CALLER)):
        text = (text.replace("SDP\n", _SDP + "\n").replace("RING_MS", str(RING_MS))
                .replace("TALK_MIN", str(TALK_MS[0])).replace("TALK_MAX", str(TALK_MS[1])))
        path = folder / f"queue_{name}.xml"
        path.write_text(text)
        out[name] = path
    return out


# ---- AMI tap: every event we need, with Asterisk's Timestamp --------------------------------
KEEP = {"Newchannel", "Hangup", "DialBegin", "MusicOnHoldStart", "QueueCallerJoin",
        "PeerStatus"}


class AmiTap:
    """One raw AMI session (the product's AMI account) read in a thread; keeps KEEP events."""

    def __init__(self, port: int, user: str, password: str):
        self.port, self.user, self.password = port, user, password
        self.events: list[dict[str, str]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._logged_in = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ami-tap", daemon=True)

    def __enter__(self) -> AmiTap:
        self._thread.start()
        if not self._logged_in.wait(10):
            self._stop.set()
            raise RuntimeError(f"AMI tap could not log in: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=5) as s:
                s.settimeout(0.2)
                s.sendall((f"Action: Login\r\nUsername: {self.user}\r\nSecret: {self.password}"
                           "\r\nEvents: on\r\n\r\n").encode())
                buf = b""
                while not self._stop.is_set():
                    try:
                        chunk = s.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        self.error = "AMI closed the session"
                        return
                    buf += chunk
                    while b"\r\n\r\n" in buf:
                        block, buf = buf.split(b"\r\n\r\n", 1)
                        self._block(block.decode(errors="replace"))
        except OSError as e:
            self.error = repr(e)

    def _block(self, text: str) -> None:
        fields: dict[str, str] = {}
        for line in text.split("\r\n"):
            k, sep, v = line.partition(": ")
            if sep and k not in fields:
                fields[k] = v
        if fields.get("Response") == "Success" and "Message" in fields \
                and "Authentication accepted" in fields["Message"]:
            self._logged_in.set()
        elif fields.get("Response") == "Error":
            self.error = fields.get("Message")
        if fields.get("Event") in KEEP and "Timestamp" in fields:
            self.events.append(fields)


# ---- the run ----------------------------------------------------------------------------------
def tenant_extra(passwords: dict[str, str]) -> dict[str, Any]:
    return {
        "prompts": {"greeting": "Xin chào."},
        "operators": [{"extension": ext, "name": f"Tổng đài viên {ext}",
                       "secret_env": f"HOTLINE_OP_{ext}"} for ext in passwords],
        "queue": {"ring_timeout_s": 15, "retry_s": 5, "wrap_up_s": 0, "max_wait_s": 3600,
                  "announce_every_s": 0, "callback_offer": False},
    }


def cli(hotline: Hotline, *args: str) -> subprocess.CompletedProcess[str]:
    env = hotline.env()
    env["REDIS_URL"] = f"unix://{hotline.state / 'redis.sock'}"
    exe = Path(sys.executable).parent / "callcenter"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def agents(hotline: Hotline) -> list[dict[str, Any]]:
    out = cli(hotline, "agent", "list", "--json")
    if out.returncode != 0:
        raise RuntimeError(f"agent list failed: {out.stdout}{out.stderr}")
    return list(json.loads(out.stdout))


def start_operators(hotline: Hotline, passwords: dict[str, str],
                    scen: dict[str, Path]) -> dict[str, SippProcess]:
    phones = {}
    # SIPp binds its media ports only once it runs: give each phone its own block up front.
    base, _ = free_udp_range(4 * len(passwords), start=40000)
    for i, (ext, pw) in enumerate(passwords.items()):
        phones[ext] = start_sipp(scen["operator_register"], hotline, ext, calls=1, rate=1,
                                 limit=1, tag=f"op{ext}", timeout_s=3600,
                                 media_port=base + 4 * i,
                                 extra=["-oocsf", str(scen["operator_ooc"]), "-au", ext,
                                        "-ap", pw])
    return phones


def operators_ready(hotline: Hotline, timeout: float = 30) -> list[dict[str, Any]]:
    """Log every operator in and wait until the app sees them all available and reachable."""
    for ext in OPERATORS:
        out = cli(hotline, "agent", "login", ext)
        if out.returncode != 0:
            raise RuntimeError(f"agent login {ext} failed: {out.stdout}{out.stderr}")
    end = time.monotonic() + timeout
    listed: list[dict[str, Any]] = []
    while time.monotonic() < end:
        listed = agents(hotline)
        if len(listed) == len(OPERATORS) and all(a.get("reachable") for a in listed) \
                and all(a.get("state") == "available" for a in listed):
            return listed
        time.sleep(0.3)
    raise RuntimeError(f"operators not all available and reachable: {listed}")


@dataclass
class Block:
    """One SIPp caller run: which path, which measurement, its caller-number prefix."""

    path: str
    measure: int
    prefix: str
    calls: int
    limit: int
    sipp: Any = None
    started: float = 0.0
    ended: float = 0.0


def run_block(hotline: Hotline, scen: dict[str, Path], b: Block, rate: float) -> None:
    b.started = time.time()
    proc = start_sipp(scen["caller"], hotline, PATHS[b.path][1], calls=b.calls, rate=rate,
                      limit=b.limit, tag=f"c{b.prefix}", timeout_s=600,
                      extra=["-key", "caller", b.prefix])
    b.sipp = proc.wait()
    b.ended = time.time()
    calls = parse_calls(b.sipp.trace)
    done = sum(1 for c in calls.values() if c.final_code() == 200
               and any(m.first_line.startswith("BYE ") and m.direction == "recv"
                       for m in c.msgs))
    log(f"  {b.path:9} m{b.measure} prefix {b.prefix}: {b.calls} calls at most {b.limit} at "
        f"once, {done} answered and hung up by the hotline, SIPp exit {b.sipp.returncode}, "
        f"{b.ended - b.started:.1f} s")


# ---- analysis ---------------------------------------------------------------------------------
@dataclass
class Caller:
    uid: str
    number: str
    path: str
    measure: int
    moh: float | None = None
    join: float | None = None  # QueueCallerJoin (app_queue only)
    gone: float | None = None
    legs: list[tuple[float, str, str]] = field(default_factory=list)  # (t, ext, op uid)


def analyse(events: list[dict[str, str]], blocks: list[Block]
            ) -> tuple[dict[str, Caller], dict[str, float], list[tuple[float, str, str]]]:
    """Callers by uid; DialBegin time by operator uid; operator hang-ups (t, ext, uid)."""
    prefixes = {b.prefix: b for b in blocks}
    callers: dict[str, Caller] = {}
    dial: dict[str, float] = {}
    hangups: list[tuple[float, str, str]] = []
    for e in events:
        t = float(e["Timestamp"])
        kind = e["Event"]
        chan = e.get("Channel", "")
        uid = e.get("Uniqueid", "")
        if kind == "Newchannel" and CALLER_CHANNEL.match(chan):
            number = e.get("CallerIDNum", "")
            b = prefixes.get(number[:8])
            if b is not None:
                callers[uid] = Caller(uid, number, b.path, b.measure)
        elif kind == "Newchannel" and (m := OP_CHANNEL.match(chan)):
            c = callers.get(e.get("Linkedid", ""))
            if c is None:  # not linked: an ARI channel id is "<caller uid>-opN"
                c = callers.get(uid.split("-op")[0])
            if c is not None:
                c.legs.append((t, m.group(1), uid))
        elif kind == "MusicOnHoldStart" and uid in callers and callers[uid].moh is None:
            callers[uid].moh = t
        elif kind == "QueueCallerJoin" and uid in callers:
            callers[uid].join = t
        elif kind == "DialBegin" and e.get("DestUniqueid"):
            dial.setdefault(e["DestUniqueid"], t)
        elif kind == "Hangup":
            if uid in callers:
                callers[uid].gone = t
            elif m := OP_CHANNEL.match(chan):
                hangups.append((t, m.group(1), uid))
    return callers, dial, hangups


def phone_invites(trace: Path) -> list[tuple[float, str]]:
    """(time, caller number) of each INVITE an operator phone received."""
    out = []
    for c in parse_calls(trace).values():
        for msg in c.msgs:
            if msg.direction == "recv" and msg.first_line.startswith("INVITE "):
                frm = msg.header("From") or ""
                m = re.search(r"sip:([^@>;]+)@", frm)
                out.append((msg.t, m.group(1) if m else ""))
                break
    return sorted(out)


def phone_byes(trace: Path) -> list[float]:
    return sorted(m.t for c in parse_calls(trace).values() for m in c.msgs
                  if m.direction == "sent" and m.first_line.startswith("BYE "))


def ring_times(callers: dict[str, Caller], dial: dict[str, float],
               invites: dict[str, float], path: str) -> dict[str, list[float]]:
    """Measurement 1: MOH start -> first operator leg (Newchannel, DialBegin, INVITE at phone)."""
    out: dict[str, list[float]] = {"newchannel": [], "dialbegin": [], "phone": [], "join": []}
    for c in callers.values():
        if c.path != path or c.measure != 1 or c.moh is None or not c.legs:
            continue
        t_new, _ext, op_uid = min(c.legs)
        out["newchannel"].append((t_new - c.moh) * 1000)
        if op_uid in dial:
            out["dialbegin"].append((dial[op_uid] - c.moh) * 1000)
        if c.number in invites:
            out["phone"].append((invites[c.number] - c.moh) * 1000)
        if c.join is not None:
            out["join"].append((c.moh - c.join) * 1000)
    return out


def next_ring_times(callers: dict[str, Caller], hangups: list[tuple[float, str, str]],
                    path: str, byes: dict[str, list[float]],
                    invites_by_ext: dict[str, list[tuple[float, str]]]
                    ) -> dict[str, list[float]]:
    """Measurement 2: operator hang-up with callers waiting -> next ring towards that operator."""
    mine = [c for c in callers.values() if c.path == path and c.measure == 2 and c.moh]
    legs = sorted((t, ext, c) for c in mine for t, ext, _uid in c.legs)
    op_uids = {uid for c in mine for _t, _e, uid in c.legs}
    by_number = {c.number: c for c in mine}

    def waiting(at: float) -> bool:
        """At least MIN_WAITING callers on hold, not yet rung: if another operator frees at
        the same moment and takes one, the next still rings this one."""
        return sum(1 for c in mine
                   if c.moh is not None and c.moh < at and (c.gone is None or c.gone > at)
                   and not any(t <= at for t, _e, _u in c.legs)) >= MIN_WAITING

    out: dict[str, list[float]] = {"ast": [], "phone": []}
    for t_h, ext, uid in hangups:
        if uid not in op_uids or not waiting(t_h):
            continue
        nxt = next((t for t, e, _c in legs if e == ext and t > t_h), None)
        if nxt is not None:
            out["ast"].append((nxt - t_h) * 1000)
    for ext, bye_times in byes.items():
        invs = invites_by_ext.get(ext, [])
        for t_b in bye_times:
            nxt_inv = next(((t, n) for t, n in invs if t > t_b), None)
            if nxt_inv is None or nxt_inv[1] not in by_number:
                continue
            c_prev = [n for t, n in invs if t < t_b]
            if not c_prev or c_prev[-1] not in by_number:
                continue  # the call that ended belongs to another path or measurement
            if waiting(t_b):
                out["phone"].append((nxt_inv[0] - t_b) * 1000)
    return out


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ callcenter\.call: "
                       r"call=(\S+) .*?: (queued for an operator|queued -\[Offered\]-> ringing|"
                       r"ringing operator \d+)")
STEPS = ("queued for an operator", "queued -[Offered]-> ringing", "ringing operator")


def app_steps(app_log: Path, callers: dict[str, Caller]) -> dict[str, list[float]]:
    """Measurement 1, app path, from the service log (whole milliseconds): MusicOnHoldStart ->
    the call queued in Redis, -> the offer reached the call, -> ARI originate returned."""
    seen: dict[tuple[str, str], float] = {}
    try:
        lines = app_log.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for ln in lines:
        m = _LOG_LINE.match(ln)
        if m is None:
            continue
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        step = next(st for st in STEPS if m.group(3).startswith(st))
        seen.setdefault((m.group(2), step), t)
    out: dict[str, list[float]] = {st: [] for st in STEPS}
    for c in callers.values():
        if c.path != "app" or c.measure != 1 or c.moh is None:
            continue
        for st in STEPS:
            if (c.uid, st) in seen:
                out[st].append((seen[(c.uid, st)] - c.moh) * 1000)
    return out


def row(name: str, vals: list[float]) -> list[str]:
    return [name, str(len(vals)), fmt_ms(median(vals)), fmt_ms(percentile(vals, 95)),
            fmt_ms(percentile(vals, 99)), fmt_ms(max(vals) if vals else float("nan"))]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=120,
                    help="measurement 1: calls per path (split into --rounds blocks)")
    ap.add_argument("--rounds", type=int, default=4, help="measurement 1: blocks per path")
    ap.add_argument("--flood-calls", type=int, default=100,
                    help="measurement 2: calls per path")
    ap.add_argument("--lines", type=int, default=50, help="pool lines (none may be refused)")
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)

    stop_on_signals()
    machine = machine_summary()
    log(f"P5 queued caller -> operator rings, app vs app_queue — {machine}")
    passwords = {ext: secrets.token_hex(8) for ext in OPERATORS}
    for ext, pw in passwords.items():
        os.environ[f"HOTLINE_OP_{ext}"] = pw
    hotline = Hotline(args.lines, plain_number=PLAIN_NUMBER, keep=args.keep,
                      log_level=args.log_level, tenant_extra=tenant_extra(passwords))
    failures: list[str] = []
    blocks: list[Block] = []
    phones: dict[str, SippProcess] = {}
    ok = False
    tap: AmiTap | None = None
    try:
        with hotline:
            from callcenter.config.secrets import load_secrets
            s = load_secrets(hotline.state)
            scen = write_scenarios(hotline.workdir / "scenarios")
            tap = AmiTap(hotline.ami_port, s.ami_user, s.ami_password)
            with tap:
                phones = start_operators(hotline, passwords, scen)
                listed = operators_ready(hotline)
                log(f"operators registered, logged in, reachable: "
                    f"{[a.get('extension') for a in listed]}")
                per = max(1, args.calls // args.rounds)
                order = ["app", "app_queue"]
                n = 0
                for r in range(args.rounds):
                    for path in (order if r % 2 == 0 else order[::-1]):
                        n += 1
                        b = Block(path, 1, f"09{PATHS[path][0]}1{n:04d}"[:8], per, 2)
                        blocks.append(b)
                        run_block(hotline, scen, b, rate=5)
                        time.sleep(0.5)
                for path in order:
                    n += 1
                    b = Block(path, 2, f"09{PATHS[path][0]}2{n:04d}"[:8], args.flood_calls,
                              FLOOD_LIMIT)
                    blocks.append(b)
                    run_block(hotline, scen, b, rate=20)
                    time.sleep(0.5)
                listed = agents(hotline)
                time.sleep(1.0)
            for p in phones.values():
                p.kill()
            left = hotline.in_use()
            try:
                channels = len(hotline.ari("/channels") or [])
            except OSError:
                channels = None
            warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
        ok = True
    finally:
        for p in phones.values():
            p.kill()
        if not ok:
            hotline.cleanup(keep=True)

    assert tap is not None
    (hotline.workdir / "ami-events.json").write_text(json.dumps(tap.events))
    callers, dial, hangups = analyse(tap.events, blocks)
    invites: dict[str, float] = {}
    invites_by_ext: dict[str, list[tuple[float, str]]] = {}
    byes: dict[str, list[float]] = {}
    for ext in OPERATORS:
        trace = hotline.workdir / f"sipp-op{ext}" / "messages.log"
        invites_by_ext[ext] = phone_invites(trace)
        byes[ext] = phone_byes(trace)
        for t, number in invites_by_ext[ext]:
            invites.setdefault(number, t)
    m1 = {p: ring_times(callers, dial, invites, p) for p in PATHS}
    m2 = {p: next_ring_times(callers, hangups, p, byes, invites_by_ext) for p in PATHS}

    a1, q1 = m1["app"]["newchannel"], m1["app_queue"]["newchannel"]
    a2, q2 = m2["app"]["ast"], m2["app_queue"]["ast"]
    d50 = median(a1) - median(q1)
    d95 = percentile(a1, 95) - percentile(q1, 95)
    pass1 = d95 <= TARGET_P95_DIFF_MS and len(a1) >= 100 and len(q1) >= 100
    pass2 = bool(a2 and q2) and median(a2) <= median(q2) \
        and percentile(a2, 95) <= percentile(q2, 95)
    date = dt.date.today().isoformat()
    heads = ["series", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms"]

    print()
    print(f"## P5 queued caller -> operator rings, {date} ({machine})")
    print(f"{len(OPERATORS)} operators (SIPp: ring {RING_MS} ms, talk {TALK_MS[0]}-"
          f"{TALK_MS[1]} ms, then BYE); "
          f"wrap-up 0; clock: AMI Timestamp (Asterisk), phone: SIPp trace (same machine).")
    print()
    print("Measurement 1 — free operator: caller's MusicOnHoldStart -> operator channel")
    print()
    print(table(heads, [
        row("app: -> Newchannel PJSIP/<ext>", a1),
        row("app_queue: -> Newchannel PJSIP/<ext>", q1),
        row("app: -> DialBegin", m1["app"]["dialbegin"]),
        row("app_queue: -> DialBegin", m1["app_queue"]["dialbegin"]),
        row("app: -> INVITE at the phone", m1["app"]["phone"]),
        row("app_queue: -> INVITE at the phone", m1["app_queue"]["phone"]),
        row("app_queue: QueueCallerJoin -> MusicOnHoldStart", m1["app_queue"]["join"]),
    ]))
    print()
    steps = app_steps(hotline.app_log, callers)
    if steps:
        print("Where the app's time goes (service log, whole milliseconds, so +-1 ms): "
              "MusicOnHoldStart ->")
        print()
        print(table(heads, [
            row("app: the call queued in Redis (Enqueue done)", steps[STEPS[0]]),
            row("app: the offer reached the call (Offered)", steps[STEPS[1]]),
            row("app: ARI originate returned (ringing operator)", steps[STEPS[2]]),
        ]))
        print()
    print("Measurement 2 — operator hangs up, callers waiting: operator channel Hangup -> next "
          "Newchannel towards that operator")
    print()
    print(table(heads, [
        row("app: Hangup -> next Newchannel", a2),
        row("app_queue: Hangup -> next Newchannel", q2),
        row("app: phone BYE -> next INVITE at it", m2["app"]["phone"]),
        row("app_queue: phone BYE -> next INVITE at it", m2["app_queue"]["phone"]),
    ]))
    print()
    print(table(["app vs app_queue", "value", "target", "result"], [
        ["m1 p50 difference / ratio", f"{d50:+.2f} ms / {ratio(median(a1), median(q1))}", "-",
         "-"],
        ["m1 p95 difference / ratio",
         f"{d95:+.2f} ms / {ratio(percentile(a1, 95), percentile(q1, 95))}",
         f"<= {TARGET_P95_DIFF_MS:g} ms", "PASS" if pass1 else "FAIL"],
        ["m2 p50 app / app_queue", f"{fmt_ms(median(a2))} / {fmt_ms(median(q2))} ms",
         "app <= app_queue", "PASS" if a2 and q2 and median(a2) <= median(q2) else "FAIL"],
        ["m2 p95 app / app_queue",
         f"{fmt_ms(percentile(a2, 95))} / {fmt_ms(percentile(q2, 95))} ms",
         "app <= app_queue",
         "PASS" if a2 and q2 and percentile(a2, 95) <= percentile(q2, 95) else "FAIL"],
        ["lines / app calls / ARI channels left",
         f"{left.get('api')} / {left.get('calls')} / {channels}", "0",
         "PASS" if left.get("api") == 0 and left.get("calls") == 0 and channels == 0
         else "FAIL"],
    ]))
    print()
    seen = {p: sum(1 for c in callers.values() if c.path == p) for p in PATHS}
    no_leg = {p: sum(1 for c in callers.values() if c.path == p and not c.legs) for p in PATHS}
    print(table(["also seen", "value"], [
        ["callers seen on AMI (app / app_queue)", f"{seen['app']} / {seen['app_queue']}"],
        ["callers never offered to a phone (app / app_queue)",
         f"{no_leg['app']} / {no_leg['app_queue']}"],
        ["operator hang-ups (AMI)", str(len(hangups))],
        ["AMI events kept", str(len(tap.events))],
        ["agents at the end", ", ".join(f"{a.get('extension')}:{a.get('state')}"
                                        for a in listed)],
        ["app log: warning/error lines", str(warn_log)],
        ["SIPp exit codes", " ".join(str(b.sipp.returncode) for b in blocks if b.sipp)],
    ]))
    if tap.error:
        print(f"AMI tap: {tap.error}")

    if not pass1:
        failures.append(f"m1 p95 difference {d95:+.1f} ms (> {TARGET_P95_DIFF_MS:g} ms or "
                        f"< 100 calls: {len(a1)} / {len(q1)})")
    if not pass2:
        failures.append("m2: the app rings the freed operator later than app_queue")
    if not (left.get("api") == 0 and left.get("calls") == 0 and channels == 0):
        failures.append(f"left behind: {left}, channels {channels}")
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
