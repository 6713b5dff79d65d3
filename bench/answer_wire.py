"""P1 on the wire: where an app call's INVITE -> 200 OK goes, step by step, against plain dialplan.

The same run as bench/answer_latency.py (one `callcenter run`, SIPp's interleaved calls to 1022
and to the plain-dialplan number), watched on the loopback interface itself (an AF_PACKET
socket, kernel timestamps; needs root): the INVITE and the 200 OK (SIP), the StasisStart frame
Asterisk sends the app and the app's `answer` request and its response (ARI websocket), and
the AMI messages Asterisk sends the app meanwhile. Per app call:

  INVITE -> StasisStart frame (Asterisk)      StasisStart -> `answer` request (the app)
  `answer` request -> response (Asterisk)     response -> 200 OK (Asterisk)

In-process timestamps can be merged in: with HOTLINE_ANSWER_TRACE=<folder> set, files
``<folder>/*.json`` of ``{channel id: {step name: time.time_ns()}}`` written by a temporary
tracer in the app (not kept in the tree: marks cost the answer path; docs/performance.md,
issue 20, lists the steps) appear as ``app: <step>`` rows, relative to the StasisStart frame.

Usage: ``sudo .venv/bin/python bench/answer_wire.py [--calls 150]`` (about 40 s). Prints
Markdown tables; figures only mean something against the plain series of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from answer_latency import APP_NUMBER, call_plan  # noqa: E402
from common import (  # noqa: E402
    PLAIN_NUMBER,
    Hotline,
    log,
    machine_summary,
    median,
    percentile,
    run_sipp,
    stop_on_signals,
    table,
)

SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
CALL_ID = re.compile(rb"\r\nCall-ID:\s*(\S+)", re.I)
CSEQ = re.compile(rb"\r\nCSeq:\s*\d+\s+(\w+)", re.I)


class Sniffer(threading.Thread):
    """Loopback packets of the SIP trunk, the ARI websocket and AMI, with kernel timestamps."""

    def __init__(self, sip_port: int, ari_port: int, ami_port: int):
        super().__init__(name="sniffer", daemon=True)
        self.sip_port, self.ari_port, self.ami_port = sip_port, ari_port, ami_port
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.stop = False
        self.events: list[tuple[int, str, Any]] = []  # (ns, kind, detail)
        self._ws: dict[tuple[int, int], bytearray] = {}  # websocket flows -> unparsed bytes

    def run(self) -> None:
        while not self.stop:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
            except TimeoutError:
                continue
            if addr[2] == PACKET_OUTGOING:  # lo shows each packet twice
                continue
            ns = time.time_ns()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    ns = sec * 1_000_000_000 + nsec
            self._packet(ns, data)

    def _packet(self, ns: int, data: bytes) -> None:
        ip = data[14:]
        if data[12:14] == b"\x08\x00":
            proto, l4 = ip[9], ip[(ip[0] & 15) * 4:]
        elif data[12:14] == b"\x86\xdd":  # ARI may be reached as localhost (::1)
            proto, l4 = ip[6], ip[40:]
        else:
            return
        if len(l4) < 20:
            return
        sport, dport = struct.unpack("!HH", l4[:4])
        if proto == 17 and self.sip_port in (sport, dport):
            self._sip(ns, l4[8:], to_pbx=dport == self.sip_port)
        elif proto == 6 and (self.ari_port in (sport, dport) or self.ami_port in (sport, dport)):
            off = (l4[12] >> 4) * 4
            payload = l4[off:]
            if not payload:
                return
            if self.ami_port == sport:
                self.events.append((ns, "ami", payload.count(b"Event:")))
            elif self.ari_port in (sport, dport):
                self._ari(ns, (sport, dport), payload, from_pbx=sport == self.ari_port)

    def _sip(self, ns: int, msg: bytes, to_pbx: bool) -> None:
        first = msg.split(b"\r\n", 1)[0]
        cid = CALL_ID.search(msg)
        cseq = CSEQ.search(msg)
        if cid is None or cseq is None or cseq.group(1) != b"INVITE":
            return
        call = cid.group(1).decode()
        if to_pbx and first.startswith(b"INVITE"):
            self.events.append((ns, "invite", call))
        elif not to_pbx and first.startswith(b"SIP/2.0 "):
            self.events.append((ns, f"sip{first[8:11].decode()}", call))

    def _ari(self, ns: int, flow: tuple[int, int], payload: bytes, from_pbx: bool) -> None:
        if payload.startswith(b"HTTP/1.1 101"):
            self._ws[(flow[1], flow[0])] = bytearray()  # the client's side of this flow too
            self._ws[flow] = bytearray()
            return
        # The websocket was opened before the capture: take each flow's segments as frames
        # (at this rate a frame starts a segment); an HTTP request or garbage resets it.
        buf = self._ws.setdefault(flow, bytearray())
        if payload[:1] not in (b"\x81", b"\x82", b"\x88", b"\x89", b"\x8a", b"\x01",
                               b"\x80") and not buf:
            return
        buf += payload
        if len(buf) > 1 << 20:
            buf.clear()
            return
        while True:
            frame = _ws_frame(buf)
            if frame is None:
                return
            text, used = frame
            del buf[:used]
            if text is None:
                continue
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            kind = msg.get("type")
            if kind == "StasisStart":
                ch = msg.get("channel", {})
                self.events.append((ns, "stasis", (ch.get("id"),
                                                   ch.get("caller", {}).get("number"))))
            elif kind == "RESTRequest":
                self.events.append((ns, "req", (msg.get("request_id"), msg.get("method"),
                                                msg.get("uri"))))
            elif kind == "RESTResponse":
                self.events.append((ns, "resp", msg.get("request_id")))
            else:
                self.events.append((ns, "ari_event", (kind, msg.get("channel", {}).get("id"))))


def _ws_frame(buf: bytearray) -> tuple[str | None, int] | None:
    """(text of the frame or None for other opcodes, bytes used); None until it is complete."""
    if len(buf) < 2:
        return None
    opcode, b1 = buf[0] & 15, buf[1]
    masked, n, pos = b1 & 128, b1 & 127, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    mask = b""
    if masked:
        mask, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None
    body = bytes(buf[pos:pos + n])
    if masked:
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    return (body.decode("utf-8", "replace") if opcode == 1 else None), pos + n


def _trace(folder: str | None) -> dict[str, dict[str, int]]:
    """The in-process tracer's timestamps per channel (files <pid>.json in the folder)."""
    out: dict[str, dict[str, int]] = {}
    if not folder:
        return out
    for f in Path(folder).glob("*.json"):
        out.update({k: v for k, v in json.loads(f.read_text()).items() if not k.startswith("_")})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=150, help="measured calls per series")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1022)
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--dump", type=int, default=0, help="print the timeline of N app calls")
    args = ap.parse_args(argv)
    stop_on_signals()
    machine = machine_summary()
    log(f"P1 on the wire — {machine}")
    plan = call_plan(args.calls, args.warmup, args.seed)
    trace_dir = os.environ.get("HOTLINE_ANSWER_TRACE")
    if trace_dir:
        Path(trace_dir).mkdir(exist_ok=True)
        os.chmod(trace_dir, 0o1777)
        for f in Path(trace_dir).glob("*.json"):
            f.unlink()
    hotline = Hotline(50, plain_number=PLAIN_NUMBER, log_level=args.log_level)
    with hotline:
        sniffer = Sniffer(hotline.sip_port, hotline.ari_port, hotline.ami_port)
        sniffer.start()
        inf = hotline.workdir / "numbers.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in plan))
        run_sipp("answer_latency.xml", hotline, APP_NUMBER, calls=len(plan), rate=args.rate,
                 limit=args.concurrency, tag="p1", timeout_s=int(len(plan) / args.rate) + 60,
                 extra=["-inf", str(inf)])
        time.sleep(0.5)
        sniffer.stop = True
        sniffer.join(2)
    events = sorted(sniffer.events, key=lambda e: e[0])
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e[1]] = kinds.get(e[1], 0) + 1
    log(f"captured: {kinds}; example {[e for e in events if e[1] == 'stasis'][:1]}")
    trace = _trace(trace_dir)

    calls: dict[str, dict[str, Any]] = {}  # SIP call id -> what happened
    by_number: dict[str, str] = {}  # caller number 0909<n> -> SIP call id
    by_channel: dict[str, str] = {}
    answer_req: dict[str, str] = {}  # request id -> SIP call id
    ami_times: list[int] = []
    for ns, kind, d in events:
        if kind == "invite" and d not in calls:
            n = d.split("-")[1]
            calls[d] = {"invite": ns, "n": n, "order": len(calls)}
            by_number[f"0909{n}"] = d
        elif kind.startswith("sip") and d in calls:
            calls[d].setdefault(kind, ns)
        elif kind == "stasis" and d[1] in by_number:
            c = calls[by_number[d[1]]]
            c.setdefault("stasis", ns)
            c["channel"] = d[0]
            by_channel[d[0]] = by_number[d[1]]
        elif kind == "req":
            rid, _method, uri = d
            parts = str(uri).split("/")
            if len(parts) >= 3 and parts[0] == "channels" and parts[1] in by_channel:
                c = calls[by_channel[parts[1]]]
                what = parts[2].split("?")[0]
                c.setdefault(f"req_{what}", ns)
                if what == "answer":
                    answer_req[rid] = by_channel[parts[1]]
        elif kind == "resp" and d in answer_req:
            calls[answer_req[d]].setdefault("resp_answer", ns)
        elif kind == "ami":
            ami_times += [ns] * max(1, d)

    app_rows: list[dict[str, float]] = []
    plain: list[float] = []
    seen = {"app": 0, "plain": 0}
    for c in sorted(calls.values(), key=lambda c: c["order"]):
        if "sip200" not in c:
            continue
        is_app = "stasis" in c
        key = "app" if is_app else "plain"
        seen[key] += 1
        if seen[key] <= args.warmup:
            continue
        total = (c["sip200"] - c["invite"]) / 1e6
        if not is_app:
            plain.append(total)
            continue
        if "req_answer" not in c or "resp_answer" not in c:
            continue
        row = {"total": total,
               "invite→StasisStart": (c["stasis"] - c["invite"]) / 1e6,
               "StasisStart→answer sent": (c["req_answer"] - c["stasis"]) / 1e6,
               "answer sent→response": (c["resp_answer"] - c["req_answer"]) / 1e6,
               "response→200 OK": (c["sip200"] - c["resp_answer"]) / 1e6,
               "answer sent→200 OK": (c["sip200"] - c["req_answer"]) / 1e6,
               "AMI events to the app, invite→answer (count)": float(sum(
                   1 for t in ami_times if c["invite"] <= t <= c["req_answer"]))}
        tr = trace.get(c.get("channel", ""), {})
        if tr:
            base = c["stasis"]
            for name, ns in sorted(tr.items(), key=lambda kv: kv[1]):
                row[f"  app: {name}"] = (ns - base) / 1e6
        app_rows.append(row)

    if args.dump:
        apps = [c for c in sorted(calls.values(), key=lambda c: c["order"]) if "stasis" in c]
        for c in apps[args.warmup + 20:args.warmup + 20 + args.dump]:
            t0 = c["invite"]
            end = c.get("sip200", t0) + 1_500_000
            print(f"-- call {c['n']} channel {c.get('channel')}")
            marks = [(ns, "ARI/app", f"{k}") for k, ns in trace.get(c.get("channel", ""),
                                                                     {}).items()]
            for ns, kind, d in sorted([*((e[0], e[1], e[2]) for e in events), *marks]):
                if t0 <= ns <= end:
                    print(f"  {(ns - t0) / 1e3:8.1f} us  {kind:10s} {str(d)[:90]}")
    print()
    print(f"## P1 on the wire ({machine})")
    print(f"{len(app_rows)} app calls, {len(plain)} plain calls; ms, median / p95 of each step "
          "(steps' medians do not add up to the total's)")
    print()
    names: list[str] = []
    for r in app_rows:
        for k in r:
            if k not in names:
                names.append(k)
    rows = []
    for k in names:
        vals = [r[k] for r in app_rows if k in r]
        rows.append([k, len(vals), f"{median(vals):.3f}", f"{percentile(vals, 95):.3f}"])
    rows.append(["plain dialplan INVITE→200 OK", len(plain), f"{median(plain):.3f}",
                 f"{percentile(plain, 95):.3f}"])
    print(table(["step", "n", "median ms", "p95 ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
