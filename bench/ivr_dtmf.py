"""P4 — DTMF digit received -> next prompt starts playing, on Asterisk's own clock.

One `callcenter run` with IVR menus and a two-item health FAQ (imported with `callcenter faq
import`, prompts built ahead with `callcenter prompts build`). SIPp places 20 calls at once; each
caller presses 14 keys (RFC 2833 telephone-events, one every 0.6-1.2 s) along a path where every
key leads to a new prompt: a sub-menu, * (repeat), # (back), the FAQ list, an answer, 5 (skip to
the next sentence) ...

A second ARI websocket, a separate application ("bench-observer", subscribeAll=true), receives
every channel's ChannelDtmfReceived and PlaybackStarted with Asterisk's `timestamp`. For each
digit: the first PlaybackStarted on the same channel after the ChannelDtmfReceived; latency =
difference of the two timestamps (Asterisk writes them to the millisecond). The same interval at
the observer's receive times (microseconds) is shown beside it.

Target: p95 <= 150 ms over >= 200 digits. Also: no digit lost (pressed but no event), every digit
followed by a prompt, no call or pool line left after the callers hang up. Exit status 0 only
when all of these hold.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    TENANT,
    Hotline,
    finish,
    fmt_ms,
    log,
    machine_summary,
    median,
    parse_calls,
    percentile,
    run_sipp,
    sipp_summary,
    stop_on_signals,
    table,
)

NUMBER = "1022"
CALLER_PREFIX = "0939"  # From: user of bench/scenarios/ivr_dtmf.xml is 0939<call number>
OBSERVER_APP = "bench-observer"
TARGET_P95_MS = 150.0
MIN_DIGITS = 200
AMBIGUOUS_MS = 50.0  # a prompt that ended by itself this shortly before a digit

# Every key leads to a new prompt. What the caller hears after each press:
PATH: list[tuple[str, str]] = [
    ("1", "main -> info (sub-menu)"),
    ("*", "info: repeat"),
    ("#", "info -> main (back)"),
    ("2", "main -> FAQ list (intro, then list)"),
    ("1", "list -> answer 1, sentence 1"),
    ("5", "answer 1: skip to sentence 2"),
    ("5", "answer 1: skip to sentence 3"),
    ("*", "answer 1: repeat from sentence 1"),
    ("#", "answer 1 -> list (back)"),
    ("2", "list -> answer 2, sentence 1"),
    ("5", "answer 2: skip to sentence 2"),
    ("#", "answer 2 -> list (back)"),
    ("#", "list -> main (back)"),
    ("3", "main -> guide (sub-menu)"),
]

TREE: dict[str, Any] = {
    "root": "main",
    "timeout": 10,
    "retries": 5,
    "inter_digit": 2,
    "fallback": "operator",
    "nodes": {
        "main": {"type": "menu",
                 "prompt": "Để nghe thông tin chung về đường dây nóng, xin bấm phím 1. "
                           "Để nghe các câu hỏi thường gặp về y tế, bấm phím 2. "
                           "Để nghe hướng dẫn sử dụng dịch vụ, bấm phím 3. "
                           "Để gặp tổng đài viên, bấm phím 9.",
                 "options": {"1": "info", "2": "faq_health", "3": "guide", "9": "operator"}},
        "info": {"type": "menu",
                 "prompt": "Tổng đài 1022 tiếp nhận phản ánh, kiến nghị của người dân suốt "
                           "hai mươi bốn giờ mỗi ngày. Để nghe các câu hỏi về y tế, bấm phím 1. "
                           "Để quay lại, bấm phím thăng.",
                 "options": {"1": "faq_health"}},
        "guide": {"type": "menu",
                  "prompt": "Quý khách có thể bấm phím sao để nghe lại, phím thăng để quay lại "
                            "và phím không để gặp tổng đài viên bất cứ lúc nào. "
                            "Để nghe các câu hỏi về y tế, bấm phím 1.",
                  "options": {"1": "faq_health"}},
        "faq_health": {"type": "faq", "field": "health",
                       "prompt": "Các câu hỏi thường gặp về y tế."},
        "operator": {"type": "operator",
                     "prompt": "Xin quý khách vui lòng giữ máy, tổng đài viên sẽ trả lời ngay."},
    },
}

FAQ_ROWS = [
    ("Y tế", "Tiêm chủng cho trẻ em ở đâu?",
     "Quý khách đưa trẻ đến trạm y tế xã hoặc phường nơi cư trú. "
     "Lịch tiêm chủng mở rộng là ngày mùng năm đến mùng mười hằng tháng. "
     "Xin mang theo sổ tiêm chủng và giấy tờ tùy thân của người giám hộ. "
     "Trẻ đang sốt sẽ được hẹn tiêm vào lần sau."),
    ("Y tế", "Khám bệnh ngoài giờ thế nào?",
     "Bệnh viện đa khoa tỉnh khám ngoài giờ từ mười bảy giờ đến hai mươi mốt giờ. "
     "Quý khách không cần hẹn trước, chỉ cần lấy số tại quầy tiếp đón. "
     "Thẻ bảo hiểm y tế được áp dụng như trong giờ hành chính. "
     "Các ngày lễ, bệnh viện chỉ khám cấp cứu."),
]


# ---- RFC 2833 key presses as pcap files -----------------------------------------------------
_EVENT = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def dtmf_pcap(path: Path, key: str, *, seq: int, timestamp: int, ssrc: int = 0x10221022,
              tone_ms: int = 160, payload_type: int = 101) -> None:
    """One key press as RFC 2833 packets (Ethernet/IPv4/UDP) in a pcap SIPp can play.

    A packet every 20 ms (the first with the marker bit), the duration growing by 160 samples,
    then three end-of-event packets; one RTP timestamp for the whole event."""
    event = _EVENT[key]
    packets: list[tuple[float, bytes]] = []
    steps = tone_ms // 20
    for i in range(steps):
        packets.append((i * 0.020, _rtp_event(payload_type, i == 0, seq + i, timestamp, ssrc,
                                              event, False, (i + 1) * 160)))
    for j in range(3):
        packets.append((steps * 0.020 + j * 0.0005,
                        _rtp_event(payload_type, False, seq + steps + j, timestamp, ssrc, event,
                                   True, steps * 160)))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    for t, rtp in packets:
        udp = struct.pack("!HHHH", 49170, 10000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec = int(t)
        out.append(struct.pack("<IIII", 1_700_000_000 + sec, int(round((t - sec) * 1e6)),
                               len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _rtp_event(pt: int, marker: bool, seq: int, ts: int, ssrc: int, event: int, end: bool,
               duration: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                         ts & 0xFFFFFFFF, ssrc)
    return header + struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)


def write_presses(folder: Path) -> None:
    """pressNN.pcap for the NN-th key of PATH: sequence numbers and timestamps of one stream."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, (key, _what) in enumerate(PATH, start=1):
        dtmf_pcap(folder / f"press{n:02d}.pcap", key, seq=1000 + 50 * n,
                  timestamp=16000 * n)


# ---- the observer: a second ARI application that sees every channel ------------------------
@dataclass
class Seen:
    """One ARI event as the observer received it."""

    kind: str
    channel: str
    ast: dt.datetime  # Asterisk's timestamp (millisecond resolution)
    recv: float  # our receive time (time.time())
    data: dict[str, Any] = field(repr=False)


def ari_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


class AriObserver:
    """ARI websocket of another application with subscribeAll=true, read in its own thread."""

    def __init__(self, url: str):
        self.url = url
        self.events: list[Seen] = []
        self.raw_count = 0
        self.error: str | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ari-observer", daemon=True)

    def __enter__(self) -> AriObserver:
        self._thread.start()
        if not self.connected.wait(10):
            self._stop.set()
            raise RuntimeError(f"ARI observer could not connect: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by the benchmark (connect failure, lost websocket)
            self.error = repr(e)

    async def _main(self) -> None:
        import aiohttp
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(self.url, heartbeat=5) as ws:
            self.connected.set()
            while not self._stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                now = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        self.error = f"websocket {msg.type.name}"
                        return
                    continue
                self.raw_count += 1
                self._keep(msg.json(), now)

    def _keep(self, ev: dict[str, Any], now: float) -> None:
        kind = ev.get("type", "")
        if kind in ("ChannelDtmfReceived", "ChannelCreated", "ChannelDestroyed"):
            channel = ev["channel"]["id"]
        elif kind in ("PlaybackStarted", "PlaybackFinished"):
            uri = ev["playback"].get("target_uri", "")
            if not uri.startswith("channel:"):
                return
            channel = uri.split(":", 1)[1]
        else:
            return
        self.events.append(Seen(kind, channel, ari_time(ev["timestamp"]), now, ev))


# ---- analysis -------------------------------------------------------------------------------
@dataclass
class Digit:
    channel: str
    press: int  # 1-based position in the call's presses
    key: str
    ast_ms: float | None = None  # DTMF -> PlaybackStarted, Asterisk's timestamps
    recv_ms: float | None = None  # the same at the observer's receive times
    after_next: bool = False  # the prompt started only after the caller's next digit
    ambiguous: bool = False  # a prompt had just ended by itself (the next one was queued)


def analyse(events: list[Seen]) -> tuple[dict[str, str], list[Digit], Counter[str]]:
    """Channels of our callers (id -> caller number), every digit with its latency, notes."""
    callers: dict[str, str] = {}
    per_channel: dict[str, list[Seen]] = defaultdict(list)
    for e in events:
        per_channel[e.channel].append(e)
        if e.kind == "ChannelCreated":
            number = e.data["channel"].get("caller", {}).get("number", "")
            if number.startswith(CALLER_PREFIX):
                callers[e.channel] = number
        elif e.kind == "ChannelDtmfReceived" and e.channel not in callers:
            callers[e.channel] = e.data["channel"].get("caller", {}).get("number", "")
    digits: list[Digit] = []
    notes: Counter[str] = Counter()
    for channel in callers:
        seq = per_channel[channel]
        press = 0
        for i, e in enumerate(seq):
            if e.kind != "ChannelDtmfReceived":
                continue
            press += 1
            d = Digit(channel, press, str(e.data.get("digit", "")))
            # A prompt that ended by itself just before the digit: the app may already have
            # asked for the next queued prompt, whose start is not an answer to this digit.
            d.ambiguous = any(
                p.kind == "PlaybackFinished"
                and 0 <= (e.ast - p.ast).total_seconds() * 1000 <= AMBIGUOUS_MS
                for p in seq[max(0, i - 4):i])
            nxt = next((j for j in range(i + 1, len(seq)) if seq[j].kind == "PlaybackStarted"),
                       None)
            if nxt is None:
                notes["digit without a next prompt"] += 1
            else:
                started = seq[nxt]
                d.ast_ms = (started.ast - e.ast).total_seconds() * 1000
                d.recv_ms = (started.recv - e.recv) * 1000
                d.after_next = any(s.kind == "ChannelDtmfReceived" for s in seq[i + 1:nxt])
            digits.append(d)
    return callers, digits, notes


def faq_csv(path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["Lĩnh vực", "Câu hỏi", "Trả lời"])
        w.writerows(FAQ_ROWS)


def prepare_ivr(hotline: Hotline) -> None:
    """FAQ imported (as an administrator does), loaded by the app, every prompt built."""
    sheet = hotline.workdir / "faq-yte.csv"
    faq_csv(sheet)
    out = hotline.cli("faq", "import", str(sheet), "--tenant", TENANT)
    if out.returncode != 0:
        raise RuntimeError(f"faq import failed: {out.stdout}{out.stderr}")
    end = time.monotonic() + 60
    ivr: Any = None
    while time.monotonic() < end:
        _status, ivr = hotline._get("/api/ivr")
        row: dict[str, Any] = next((r for r in ivr or [] if r.get("tenant") == TENANT), {})
        if row.get("root") == "main" and row.get("faq_items") == {"health": len(FAQ_ROWS)}:
            break
        time.sleep(0.3)
    else:
        raise RuntimeError(f"the app did not load the FAQ: /api/ivr {ivr}")
    t0 = time.monotonic()
    built = hotline.cli("prompts", "build", timeout=600)
    if built.returncode != 0:
        raise RuntimeError(f"prompts build failed: {built.stdout}{built.stderr}")
    log(f"FAQ imported and loaded; prompts built in {time.monotonic() - t0:.1f} s")


def leaks(hotline: Hotline, settle: float) -> dict[str, Any]:
    """Lines, app calls and Asterisk channels left `settle` seconds after the last hang-up."""
    time.sleep(settle)
    use = hotline.in_use()
    try:
        channels = len(hotline.ari("/channels") or [])
    except OSError as e:
        log(f"ARI /channels failed: {e}")
        channels = None
    return {**use, "channels": channels}


def stats_row(name: str, vals: list[float]) -> list[str]:
    return [name, str(len(vals)), fmt_ms(median(vals)), fmt_ms(percentile(vals, 95)),
            fmt_ms(percentile(vals, 99)), fmt_ms(max(vals) if vals else float("nan"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20, help="callers at once")
    ap.add_argument("--rate", type=float, default=20.0,
                    help="SIPp -r: calls placed per second (20: all within ~1 s)")
    ap.add_argument("--lines", type=int, default=50, help="pool lines (none may be refused)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds after the last hang-up before counting leftovers")
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)

    stop_on_signals()
    machine = machine_summary()
    log(f"P4 DTMF -> next prompt — {machine}")
    hotline = Hotline(args.lines, keep=args.keep, log_level=args.log_level, ivr=TREE)
    failures: list[str] = []
    ok = False
    observer: AriObserver | None = None
    try:
        with hotline:
            prepare_ivr(hotline)
            write_presses(hotline.workdir / "sipp-p4" / "pcap")
            observer = AriObserver(hotline.ari_events_url(OBSERVER_APP))
            with observer:
                log(f"{args.calls} callers, {len(PATH)} keys each ({''.join(k for k, _ in PATH)}),"
                    f" one every 0.6-1.2 s")
                run = run_sipp("ivr_dtmf.xml", hotline, NUMBER, calls=args.calls,
                               rate=args.rate, limit=args.calls, tag="p4", timeout_s=120)
                log(f"SIPp finished in {run.elapsed:.1f} s with exit code {run.returncode}")
                if run.returncode != 0:
                    log(sipp_summary(run))
                time.sleep(0.5)  # the last events of the last hang-ups
            left = leaks(hotline, args.settle)
            warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
            try:
                records = hotline.records(args.calls * 2)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                log(f"reading call records failed: {e}")
                records = []
        ok = True
    finally:
        if not ok:
            hotline.cleanup(keep=True)

    assert observer is not None
    calls = parse_calls(run.trace)
    answered = [c for c in calls.values() if c.final_code() == 200]
    completed = [c for c in answered if 200 in c.responses("BYE")]
    callers, digits, notes = analyse(observer.events)
    sent = len(completed) * len(PATH)
    received = len(digits)
    lost = max(0, sent - received)
    wrong = 0
    by_channel: dict[str, list[Digit]] = defaultdict(list)
    for d in digits:
        by_channel[d.channel].append(d)
    for ds in by_channel.values():
        if [d.key for d in ds] != [k for k, _ in PATH][:len(ds)]:
            wrong += 1
    measured = [d for d in digits if d.ast_ms is not None and not d.ambiguous]
    ast = [d.ast_ms for d in measured if d.ast_ms is not None]
    recv = [d.recv_ms for d in measured if d.recv_ms is not None]
    p95 = percentile(ast, 95)
    pass_p95 = p95 <= TARGET_P95_MS
    leaked = max((v or 0) for k, v in left.items() if k in ("api", "cli", "calls", "channels"))
    leak_ok = all(left.get(k) == 0 for k in ("api", "cli", "calls", "channels"))
    no_prompt = notes["digit without a next prompt"]
    after_next = sum(1 for d in measured if d.after_next)
    ambiguous = sum(1 for d in digits if d.ambiguous)
    date = dt.date.today().isoformat()
    ivr_records = sum(1 for r in records if r.get("ivr_path"))

    print()
    print(f"## P4 DTMF -> next prompt, {date} ({machine})")
    print(f"{args.calls} callers at once (SIPp -r {args.rate:g} -l {args.calls}), {len(PATH)} "
          f"RFC 2833 keys each, one every 0.6-1.2 s; latency = ChannelDtmfReceived -> first "
          f"PlaybackStarted on the same channel, from a second ARI application "
          f"(subscribeAll).")
    print()
    print(table(["DTMF -> next prompt", "digits", "p50 ms", "p95 ms", "p99 ms", "max ms"], [
        stats_row("Asterisk event timestamps (1 ms resolution)", ast),
        stats_row("observer receive times", recv),
    ]))
    print()
    print(table(["measure", "value", "target", "result"], [
        ["digits measured", str(len(ast)), f">= {MIN_DIGITS}",
         "PASS" if len(ast) >= MIN_DIGITS else "FAIL"],
        ["p95 (Asterisk clock)", f"{fmt_ms(p95)} ms", f"<= {TARGET_P95_MS:g} ms",
         "PASS" if pass_p95 else "FAIL"],
        ["digits lost (sent, no ChannelDtmfReceived)",
         f"{lost} of {sent} ({received} events)", "0", "PASS" if lost == 0 else "FAIL"],
        ["calls whose digits arrived out of order or wrong", str(wrong), "0",
         "PASS" if wrong == 0 else "FAIL"],
        ["digits not followed by a prompt", str(no_prompt), "0",
         "PASS" if no_prompt == 0 else "FAIL"],
        ["calls answered / completed (BYE 200)", f"{len(answered)} / {len(completed)}",
         str(args.calls), "PASS" if len(completed) == args.calls else "FAIL"],
        ["calls leaked (pool API / CLI, app calls, ARI channels)",
         f"{left.get('api')} / {left.get('cli')}, {left.get('calls')}, "
         f"{left.get('channels')}", "0", "PASS" if leak_ok else "FAIL"],
    ]))
    print()
    rows = []
    for n, (key, what) in enumerate(PATH, start=1):
        vals = [d.ast_ms for d in measured if d.press == n and d.ast_ms is not None]
        rows.append([str(n), key, what, str(len(vals)), fmt_ms(median(vals)),
                     fmt_ms(percentile(vals, 95)),
                     fmt_ms(max(vals) if vals else float("nan"))])
    print(table(["press", "key", "what the caller hears next", "digits", "p50 ms", "p95 ms",
                 "max ms"], rows))
    print()
    print(table(["also seen", "value"], [
        ["our callers' channels seen by the observer", str(len(callers))],
        ["ARI events received by the observer", str(observer.raw_count)],
        ["digits left out: a prompt had ended by itself < 50 ms before",
         str(ambiguous)],
        ["digits whose prompt started only after the next digit", str(after_next)],
        ["call records with an IVR path", f"{ivr_records} of {len(records)}"],
        ["app log: warning/error lines", str(warn_log)],
        ["SIPp exit code", str(run.returncode)],
    ]))
    if observer.error:
        print(f"observer: {observer.error}")

    if len(ast) < MIN_DIGITS:
        failures.append(f"only {len(ast)} digits measured (< {MIN_DIGITS})")
    if not pass_p95:
        failures.append(f"p95 {p95:.1f} ms > {TARGET_P95_MS:g} ms")
    if lost:
        failures.append(f"{lost} digits lost")
    if wrong:
        failures.append(f"{wrong} calls with digits out of order")
    if no_prompt:
        failures.append(f"{no_prompt} digits not followed by a prompt")
    if len(completed) != args.calls:
        failures.append(f"{args.calls - len(completed)} calls not answered or not completed")
    if not leak_ok:
        failures.append(f"calls leaked: {left} ({leaked})")
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
