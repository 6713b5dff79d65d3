"""Operators over TLS at the edge, against Debian's real Kamailio (kamailio-tls-modules) on
loopback: raw SIP over a Python ``ssl`` connection.

A REGISTER over TLS with the right digest answer is let in (200), a wrong one is not (401);
an operator who must use TLS is never let in over UDP, even with the right password, and is
over TLS; a node's request for an operator registered over TLS reaches it down the very
connection the phone opened (its Contact names a port nobody listens on, as behind NAT).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.cluster.edge import (
    EdgeNode,
    EdgeSettings,
    EdgeTls,
    Kamailio,
    kamailio_binary,
    module_dir,
)
from callcenter.pbx.render import SIP_REALM, password_digest
from tests.e2e.rawsip import Response, parse_response, register_message
from tests.e2e.stack import free_port, wait_until

PASSWORD = "Mat-Khau-TLS-101"
TLS_ONLY_PASSWORD = "Mat-Khau-TLS-102"


def md5(text: str) -> str:
    # MD5 is what SIP digest authentication is built on.
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest(user: str, password: str, uri: str, nonce: str) -> str:
    cnonce, nc = secrets.token_hex(4), "00000001"
    response = md5(f"{password_digest(user, password)}:{nonce}:{nc}:{cnonce}:auth:"
                   f"{md5(f'REGISTER:{uri}')}")
    return (f'Digest username="{user}", realm="{SIP_REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')


def split_messages(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole SIP messages at the front of a stream buffer (by Content-Length), and the rest."""
    messages = []
    while b"\r\n\r\n" in buffer:
        head, _, rest = buffer.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        if len(rest) < length:
            break
        messages.append(head + b"\r\n\r\n" + rest[:length])
        buffer = rest[length:]
    return messages, buffer


class Phone:
    """One operator's REGISTERs over UDP or over one TLS connection it opened. Its Contact
    names port 9 (discard), where nothing listens: a request reaches it only down its own
    connection."""

    def __init__(self, edge: Kamailio, transport: str):
        self.transport = transport
        settings = edge.settings
        if transport == "tls":
            assert settings.tls is not None
            self.port = settings.tls.port
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # a self-signed test certificate
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # So that a test may listen on this address once the connection is closed.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            raw.bind(("127.0.0.1", 0))
            raw.settimeout(5)
            raw.connect(("127.0.0.1", self.port))
            self.sock: socket.socket = context.wrap_socket(raw)
        else:
            self.port = settings.listen_port
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        self.local_port = self.sock.getsockname()[1]
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self.transport == "tls":
            self.sock.sendall(data)
        else:
            self.sock.sendto(data, ("127.0.0.1", self.port))

    def receive(self, timeout: float) -> bytes | None:
        """The next whole message within ``timeout`` s (None: none)."""
        end = time.monotonic() + timeout
        while True:
            messages, self.buffer = split_messages(self.buffer)
            if messages:
                first = messages[0]
                self.buffer = b"".join(messages[1:]) + self.buffer
                return first
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, ssl.SSLWantReadError):
                return None
            if not data:
                return None
            self.buffer += data

    def register(self, user: str, password: str) -> int:
        """Challenge, then the digest answer with ``password``: the final code (0: none)."""
        call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        first = self.request(user, call_id, 1)
        if first is None or first.code != 401:
            return first.code if first is not None else 0
        m = re.search(r'nonce="([^"]+)"', first.header("www-authenticate"))
        assert m, first.raw
        uri = f"sip:127.0.0.1:{self.port}" + (";transport=tls" if self.transport == "tls"
                                              else "")
        final = self.request(user, call_id, 2, digest(user, password, uri, m.group(1)), uri)
        return final.code if final is not None else 0

    def request(self, user: str, call_id: str, cseq: int, authorization: str | None = None,
                uri: str | None = None) -> Response | None:
        via = "TLS" if self.transport == "tls" else "UDP"
        params = ";transport=tls" if self.transport == "tls" else ""
        self.send(register_message(uri or f"sip:127.0.0.1:{self.port}{params}", user, call_id,
                                   cseq, via=f"{via} 127.0.0.1:{self.local_port}",
                                   contact=f"sip:{user}@127.0.0.1:9{params}", expires=60,
                                   authorization=authorization))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            data = self.receive(end - time.monotonic())
            if data is None:
                return None
            resp = parse_response(data)
            if resp is not None and call_id in resp.header("call-id") and resp.code >= 200:
                return resp
        return None


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("edge-tls-pair")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-subj", "/CN=hotline1022-edge", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def edge(tmp_path: Path, tls_pair: tuple[Path, Path]) -> Iterator[Kamailio]:
    try:
        kamailio_binary()
    except RuntimeError as e:
        pytest.skip(str(e))
    if not (Path(module_dir()) / "tls.so").exists():
        pytest.skip("Kamailio's tls.so is missing (Debian's kamailio-tls-modules: `make deps`)")
    settings = EdgeSettings(
        listen_port=free_port(socket.SOCK_DGRAM),
        operators=(("101", password_digest("101", PASSWORD)),
                   ("102", password_digest("102", TLS_ONLY_PASSWORD))),
        tls=EdgeTls(free_port(), *tls_pair), tls_only=("102",))
    kamailio = Kamailio(tmp_path, settings, [EdgeNode("node1", "127.0.0.1",
                                                      free_port(socket.SOCK_DGRAM))])
    kamailio.start()
    try:
        yield kamailio
    finally:
        kamailio.stop()


def test_given_tls_listener_when_kamailio_checks_the_config_then_accepted(
        edge: Kamailio) -> None:
    edge.check()


def test_given_operator_over_tls_when_it_answers_the_challenge_then_right_password_only(
        edge: Kamailio) -> None:
    phone = Phone(edge, "tls")
    try:
        assert phone.register("101", "sai-mat-khau") == 401
        assert phone.register("101", PASSWORD) == 200
    finally:
        phone.close()
    assert PASSWORD not in edge.log_tail(400)


def test_given_operator_who_must_use_tls_when_it_registers_over_udp_then_never_let_in(
        edge: Kamailio) -> None:
    udp, tls = Phone(edge, "udp"), Phone(edge, "tls")
    try:
        assert udp.register("102", TLS_ONLY_PASSWORD) == 401
        assert "TLS only" in edge.log_tail(50)
        assert tls.register("102", TLS_ONLY_PASSWORD) == 200
        assert udp.register("101", PASSWORD) == 200  # the others: either transport
    finally:
        udp.close()
        tls.close()


def node_options(node_port: int, edge_port: int) -> bytes:
    """A node's qualify of operator 101, sent to the edge."""
    return "\r\n".join([
        f"OPTIONS sip:101@127.0.0.1:{edge_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{node_port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70", "From: <sip:node1@127.0.0.1>;tag=n1", "To: <sip:101@127.0.0.1>",
        f"Call-ID: {secrets.token_hex(8)}@node1", "CSeq: 1 OPTIONS",
        "Content-Length: 0"]).encode() + b"\r\n\r\n"


def final_answer(sock: socket.socket, timeout: float) -> Response | None:
    """The next final response (not a request: the edge's probes arrive here too)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
        resp = parse_response(data)
        if resp is not None and resp.code >= 200 and "OPTIONS" in resp.header("cseq"):
            return resp
    return None


def test_given_operator_registered_over_tls_when_a_node_asks_for_it_then_down_its_connection(
        edge: Kamailio) -> None:
    phone = Phone(edge, "tls")
    edge_port = edge.settings.listen_port
    node_port = int(edge.nodes[0].port)
    node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    node.bind(("127.0.0.1", node_port))  # the dispatcher's node1: its requests go to phones
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert phone.register("101", PASSWORD) == 200

        def reaches_phone() -> bool:
            node.sendto(node_options(node_port, edge_port), ("127.0.0.1", edge_port))
            data = phone.receive(1.0)
            # Its Contact's port 9: nobody listens there; only the connection reaches it.
            return data is not None and data.startswith(b"OPTIONS sip:101@127.0.0.1:9")

        assert wait_until(reaches_phone, 5, 0.1), edge.log_tail(40)
        # The phone's connection gone (a phone behind NAT: nobody can reach it but through
        # the connection it opens): the edge connects to no address of the phone's, not even
        # the one its connection came from; the node's request fails at once.
        source = phone.local_port
        phone.close()
        time.sleep(0.5)  # the edge sees the connection closed
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", source))
        listener.listen(1)
        listener.settimeout(2.0)
        node.sendto(node_options(node_port, edge_port), ("127.0.0.1", edge_port))
        answer = final_answer(node, 3.0)
        assert answer is not None and answer.code >= 400, (answer, edge.log_tail(40))
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
        node.close()
        phone.close()
