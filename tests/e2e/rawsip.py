"""A bare SIP caller over UDP for the hostile-trunk tests: it sends exactly the bytes it is given
(a Request-URI user or a From with dialplan syntax, 300 characters, raw UTF-8 or invalid bytes,
an SDP that is broken or offers only G.729), which a real phone or SIPp would refuse to build or
would escape. One INVITE transaction at a time, from a fixed loopback port, every wait bounded.

What it does per RFC 3261, no more: retransmit the INVITE until a provisional answer (timer A,
doubling from 0.5 s), ACK a final answer (in the INVITE's transaction for a non-2xx; a new one
to the Contact for a 2xx), and BYE an answered call.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import socket
import time

from tests.e2e.stack import free_port

VALID_SDP = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=sendrecv\r\n")

G729_ONLY_SDP = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio {rtp} RTP/AVP 18\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\n"
    "a=sendrecv\r\n")

# Not SDP at all where SDP is announced: no v= line, an m= line without port or profile, a
# connection address that is no address.
BROKEN_SDP = (
    "v=zero\r\n"
    "o=- x y IN IP4\r\n"
    "c=IN IP4 not-an-address\r\n"
    "m=audio RTP/AVP\r\n"
    "a=rtpmap:0\r\n")


@dataclasses.dataclass
class Response:
    """A SIP response as received: status, reason, header lines by lower-case name."""

    code: int
    reason: str
    headers: dict[str, list[str]]
    raw: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), [""])[0]


def parse_response(data: bytes) -> Response | None:
    head, _, _body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if not m:
        return None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(int(m.group(1)), m.group(2), headers, data)


@dataclasses.dataclass
class Call:
    """One INVITE's dialog as far as this caller keeps it."""

    ruri: bytes
    from_hdr: bytes
    to_hdr: bytes
    call_id: str
    branch: str
    responses: list[Response]
    final: Response | None = None

    @property
    def code(self) -> int:
        return self.final.code if self.final is not None else 0


class RawSipCaller:
    """Sends hand-made INVITEs from 127.0.0.1:``port`` to the trunk at 127.0.0.1:``target``."""

    def __init__(self, target: int, port: int | None = None):
        self.target = ("127.0.0.1", target)
        self.port = port or free_port(socket.SOCK_DGRAM)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        # Where the SDP says our audio goes: bound, so Asterisk's RTP lands somewhere quiet.
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", free_port(socket.SOCK_DGRAM)))
        self.rtp.setblocking(False)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()
        self.rtp.close()

    def __enter__(self) -> RawSipCaller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ------------------------------------------------------------------------------
    def _via(self, branch: str) -> bytes:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport".encode()

    def invite(self, user: bytes | str, *, from_user: bytes | str = b"0909000222",
               display: bytes | str | None = None, sdp: str | None = VALID_SDP,
               content_type: str = "application/sdp", timeout: float = 10.0) -> Call:
        """Send an INVITE for ``user``@trunk (bytes as given) and wait for its final answer
        (ACKed); ``call.final`` None when none came within ``timeout``."""
        user_b = user.encode() if isinstance(user, str) else user
        from_b = from_user.encode() if isinstance(from_user, str) else from_user
        tag = secrets.token_hex(4)
        call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        branch = "z9hG4bK" + secrets.token_hex(8)
        host = f"127.0.0.1:{self.target[1]}".encode()
        ruri = b"sip:" + user_b + b"@" + host
        name = b""
        if display is not None:
            d = display.encode() if isinstance(display, str) else display
            name = b'"' + d + b'" '
        from_hdr = name + b"<sip:" + from_b + b"@127.0.0.1:" + str(self.port).encode() + b">;tag=" \
            + tag.encode()
        to_hdr = b"<" + ruri + b">"
        body = b"" if sdp is None else sdp.format(rtp=self.rtp.getsockname()[1]).encode()
        self.cseq += 1
        lines = [
            b"INVITE " + ruri + b" SIP/2.0",
            b"Via: " + self._via(branch),
            b"Max-Forwards: 70",
            b"From: " + from_hdr,
            b"To: " + to_hdr,
            b"Call-ID: " + call_id.encode(),
            f"CSeq: {self.cseq} INVITE".encode(),
            b"Contact: <sip:" + from_b + b"@127.0.0.1:" + str(self.port).encode() + b">",
            b"User-Agent: hostile-trunk-test",
        ]
        if sdp is not None:
            lines.append(f"Content-Type: {content_type}".encode())
        lines.append(f"Content-Length: {len(body)}".encode())
        message = b"\r\n".join(lines) + b"\r\n\r\n" + body
        call = Call(ruri, from_hdr, to_hdr, call_id, branch, [])
        self._transact(call, message, timeout)
        return call

    def _transact(self, call: Call, message: bytes, timeout: float) -> None:
        end = time.monotonic() + timeout
        retransmit, next_send = 0.5, 0.0
        provisional = False
        while time.monotonic() < end:
            now = time.monotonic()
            if not provisional and now >= next_send:
                self.sock.sendto(message, self.target)
                next_send = now + retransmit
                retransmit = min(retransmit * 2, 4.0)
            self.sock.settimeout(max(0.01, min(next_send if not provisional else end, end)
                                     - time.monotonic()))
            try:
                data, _addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            resp = parse_response(data)
            if resp is None or call.call_id not in resp.header("call-id"):
                continue
            call.responses.append(resp)
            if resp.code < 200:
                provisional = True
                continue
            call.final = resp
            self._ack(call, resp)
            return

    def _ack(self, call: Call, resp: Response) -> None:
        to = resp.header("to").encode()
        cseq = f"CSeq: {resp.header('cseq').split()[0]} ACK".encode()
        if resp.code >= 300:
            ruri, via = call.ruri, self._via(call.branch)  # same transaction as the INVITE
        else:
            contact = re.search(r"<([^>]+)>", resp.header("contact"))
            ruri = (contact.group(1) if contact else call.ruri.decode()).encode()
            via = self._via("z9hG4bK" + secrets.token_hex(8))
        msg = b"\r\n".join([
            b"ACK " + ruri + b" SIP/2.0", b"Via: " + via, b"Max-Forwards: 70",
            b"From: " + call.from_hdr, b"To: " + to, b"Call-ID: " + call.call_id.encode(),
            cseq, b"Content-Length: 0"]) + b"\r\n\r\n"
        self.sock.sendto(msg, self.target)

    def bye(self, call: Call, timeout: float = 5.0) -> int:
        """End an answered call; the BYE's final code (0: none within ``timeout``)."""
        return self.in_dialog(call, "BYE", timeout=timeout)

    def refer(self, call: Call, target: str, timeout: float = 5.0) -> int:
        """Ask to transfer an answered call to ``target`` (a SIP URI), as a carrier would;
        the REFER's final code (0: none within ``timeout``)."""
        return self.in_dialog(call, "REFER", (
            f"Refer-To: <{target}>", f"Referred-By: <sip:carrier@127.0.0.1:{self.port}>",
            f"Contact: <sip:carrier@127.0.0.1:{self.port}>"), timeout=timeout)

    def in_dialog(self, call: Call, method: str, headers: tuple[str, ...] = (), *,
                  timeout: float = 5.0) -> int:
        """Send ``method`` in an answered call's dialog; its final code (0: none in time)."""
        assert call.final is not None and call.final.code == 200
        contact = re.search(r"<([^>]+)>", call.final.header("contact"))
        ruri = (contact.group(1) if contact else call.ruri.decode()).encode()
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        msg = b"\r\n".join([
            method.encode() + b" " + ruri + b" SIP/2.0", b"Via: " + self._via(branch),
            b"Max-Forwards: 70",
            b"From: " + call.from_hdr, b"To: " + call.final.header("to").encode(),
            b"Call-ID: " + call.call_id.encode(), f"CSeq: {self.cseq} {method}".encode(),
            *(h.encode() for h in headers), b"Content-Length: 0"]) + b"\r\n\r\n"
        end = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < end:
            if time.monotonic() >= next_send:
                self.sock.sendto(msg, self.target)
                next_send = time.monotonic() + 0.5
            self.sock.settimeout(0.1)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            resp = parse_response(data)
            if resp and call.call_id in resp.header("call-id") and method in resp.header("cseq") \
                    and resp.code >= 200:
                return resp.code
        return 0

def register_message(uri: str, user: str, call_id: str, cseq: int, *, via: str,
                     contact: str, expires: int, authorization: str | None = None) -> bytes:
    """A REGISTER for ``user`` (``via``: e.g. "UDP 127.0.0.2:5555"; ``contact``: its URI), with
    a digest answer when ``authorization`` is given."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    lines = [f"REGISTER {uri} SIP/2.0", f"Via: SIP/2.0/{via};branch={branch};rport",
             "Max-Forwards: 70", f"From: <sip:{user}@127.0.0.1>;tag=t{cseq}",
             f"To: <sip:{user}@127.0.0.1>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
             f"Contact: <{contact}>", f"Expires: {expires}", "User-Agent: Hotline1022-test"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return "\r\n".join([*lines, "Content-Length: 0"]).encode() + b"\r\n\r\n"


def sip_request(target: int, method: str, user: str, *, user_agent: str,
                bind: str = "127.0.0.1", timeout: float = 5.0,
                headers: tuple[str, ...] = ()) -> Response | None:
    """One out-of-dialog request (REGISTER, OPTIONS) for ``user`` to 127.0.0.1:``target`` from
    ``bind``, with this User-Agent and any extra ``headers`` (e.g. a forged Authorization), as a
    scanner sends it; its final answer (None: none came).
    Retransmitted like a UAC's non-INVITE transaction (timer E: 0.5 s doubling to 4 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        port = sock.getsockname()[1]
        call_id = f"{secrets.token_hex(8)}@{bind}"
        branch = "z9hG4bK" + secrets.token_hex(8)
        host = f"127.0.0.1:{target}"
        uri = f"sip:{host}" if method == "REGISTER" else f"sip:{user}@{host}"
        message = "\r\n".join([
            f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/UDP {bind}:{port};branch={branch};rport",
            "Max-Forwards: 70", f"From: <sip:{user}@127.0.0.1>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@127.0.0.1>", f"Call-ID: {call_id}", f"CSeq: 1 {method}",
            f"Contact: <sip:{user}@{bind}:{port}>", f"User-Agent: {user_agent}", *headers,
            "Content-Length: 0"]).encode() + b"\r\n\r\n"
        end, retransmit, next_send = time.monotonic() + timeout, 0.5, 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_send:
                sock.sendto(message, ("127.0.0.1", target))
                next_send, retransmit = now + retransmit, min(retransmit * 2, 4.0)
            sock.settimeout(max(0.01, min(next_send, end) - time.monotonic()))
            try:
                data, _addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            resp = parse_response(data)
            if resp is not None and call_id in resp.header("call-id") and resp.code >= 200:
                return resp
    return None
