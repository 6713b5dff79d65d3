"""E-mail in's pure rules: the ``mail_in`` section, reading Vietnamese messages (multipart,
quoted-printable, base64, RFC 2047, windows-1258, HTML only), attachments, threading and the
signs of an automatic message; the automatic reply's text."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
import yaml

from callcenter.config.base import BaseParser, ConfigError
from callcenter.config.parse import parse_config
from callcenter.mailin import rules
from tests.support.api import CONFIG

OWN = ["tongdai1022@dongnai.gov.vn", "noreply@dongnai.gov.vn"]


def _parse(section: object) -> tuple[rules.MailInConfig | None, list[str]]:
    p = BaseParser("hotline.yaml")
    cfg = rules.parse_mail_in_section(p, section)
    return cfg, [f"{e.key}: {e.reason}" for e in p.errors]


# -- config --------------------------------------------------------------------------------------
def test_given_addresses_when_parsed_then_lower_case_map_to_tenant_with_defaults() -> None:
    cfg, errors = _parse({"tenants": {"dongnai": ["TongDai1022@DongNai.gov.vn"]}})
    assert errors == [] and cfg is not None
    assert cfg.tenant_of("tongdai1022@dongnai.gov.vn ") == "dongnai"
    assert cfg.tenant_of("khac@dongnai.gov.vn") is None
    assert (cfg.bind, cfg.port, cfg.max_bytes, cfg.field) == ("127.0.0.1", 8025,
                                                              25 * 1024 * 1024, "other")


def test_given_bad_keys_when_parsed_then_errors_name_the_keys() -> None:
    cfg, errors = _parse({"tenants": {"dongnai": ["not-an-address"]}, "prot": 1,
                          "per_sender_per_day": 0})
    assert cfg is None
    joined = "\n".join(errors)
    assert "mail_in.tenants.dongnai[0]" in joined or "mail_in.tenants.dongnai.0" in joined
    assert "mail_in.prot" in joined and "mail_in.per_sender_per_day" in joined


def test_given_one_address_twice_when_parsed_then_refused() -> None:
    cfg, errors = _parse({"tenants": {"dongnai": ["a@x.vn"], "thanhhoa": ["A@x.vn"]}})
    assert cfg is None and any("already the address of dongnai" in e for e in errors)


# -- reading messages ----------------------------------------------------------------------------
def _multipart(text: str, html: str | None = None) -> bytes:
    msg = MIMEMultipart("alternative")
    msg["From"] = "=?utf-8?b?" + "Tmd1eeG7hW4gVGjhu4sgSG9h" + "?= <Hoa@Example.vn>"
    msg["To"] = "tongdai1022@dongnai.gov.vn"
    msg["Subject"] = "=?utf-8?q?=C4=90=C6=B0=E1=BB=9Dng_ng=E1=BA=ADp_s=C3=A2u?="
    msg["Message-ID"] = "<abc.1@example.vn>"
    msg.attach(MIMEText(text, "plain", "utf-8"))
    if html is not None:
        msg.attach(MIMEText(html, "html", "utf-8"))
    return msg.as_bytes()


def test_given_rfc2047_and_utf8_text_when_read_then_vietnamese_decoded() -> None:
    m = rules.parse_message(_multipart("Nước ngập tới đầu gối ở xã An Phước.",
                                       "<p>HTML bỏ qua</p>"))
    assert m.subject == "Đường ngập sâu"
    assert m.sender_name == "Nguyễn Thị Hoa" and m.sender_address == "hoa@example.vn"
    assert m.text == "Nước ngập tới đầu gối ở xã An Phước."  # text/plain preferred
    assert m.message_id == "<abc.1@example.vn>" and not m.automatic


def test_given_windows_1258_base64_body_when_read_then_decoded() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.vn"
    msg["Subject"] = "Hỏi"
    msg.set_content("Xin hỏi thủ tục", charset="utf-8", cte="base64")
    assert "Xin hỏi thủ tục" == rules.parse_message(msg.as_bytes()).text
    raw = (b"From: b@example.vn\r\nSubject: x\r\nContent-Type: text/plain; "
           b"charset=windows-1258\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + "Xin chào".encode("cp1258"))
    assert rules.parse_message(raw).text == "Xin chào"


def test_given_html_only_when_read_then_text_without_script_or_style() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.vn"
    msg.set_content("<html><head><style>p{color:red}</style></head><body>"
                    "<p>Đèn&nbsp;đường <b>hỏng</b></p><script>alert('x')</script>"
                    "<div>đã 3 tuần</div></body></html>", subtype="html")
    text = rules.parse_message(msg.as_bytes()).text
    assert text == "Đèn đường hỏng\n\nđã 3 tuần"  # paragraphs kept apart
    assert "alert" not in text and "color" not in text and "<" not in text


def test_given_attachments_when_read_then_files_with_names_and_bytes() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.vn"
    msg.set_content("kèm ảnh")
    msg.add_attachment(b"\xff\xd8\xff" + b"1" * 50, maintype="image", subtype="jpeg",
                       filename="ảnh đường.jpg")
    msg.add_attachment(b"MZ...", maintype="application", subtype="octet-stream",
                       filename="virus.exe")
    m = rules.parse_message(msg.as_bytes())
    assert m.text == "kèm ảnh"
    assert [(f.name, f.declared) for f in m.files] == [
        ("ảnh đường.jpg", "image/jpeg"), ("virus.exe", "application/octet-stream")]
    assert m.files[0].data.startswith(b"\xff\xd8\xff")


def test_given_no_message_id_when_read_then_stable_made_up_id() -> None:
    raw = b"From: a@example.vn\r\nSubject: x\r\n\r\nbody\r\n"
    assert rules.parse_message(raw).message_id == rules.parse_message(raw).message_id
    assert rules.parse_message(raw).message_id.endswith("@mail-in.invalid>")


# -- threading -----------------------------------------------------------------------------------
def test_given_reply_headers_when_read_then_in_reply_to_first_and_our_digest_found() -> None:
    key = rules.dedupe_key("dongnai", "<abc.1@example.vn>")
    ours = f"<hotline1022.17.{rules.reply_digest(key)}@dongnai.gov.vn>"
    raw = (f"From: a@example.vn\r\nSubject: Re: [DN-20261207-0003] Đã tiếp nhận\r\n"
           f"In-Reply-To: {ours}\r\nReferences: <abc.1@example.vn> {ours}\r\n\r\nthêm\r\n"
           ).encode()
    m = rules.parse_message(raw)
    assert m.refers_to == (ours, "<abc.1@example.vn>")
    assert rules.our_digests(m.refers_to) == [rules.reply_digest(key)]
    assert m.code_in_subject() == "DN-20261207-0003"


def test_given_subject_without_code_when_read_then_none() -> None:
    m = rules.parse_message(b"From: a@example.vn\r\nSubject: DN-2026 hoi\r\n\r\nx\r\n")
    assert m.code_in_subject() is None and m.refers_to == ()


# -- loops ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    "From: a@example.vn\r\nAuto-Submitted: auto-replied\r\n",
    "From: a@example.vn\r\nPrecedence: bulk\r\n",
    "From: a@example.vn\r\nPrecedence: list\r\n",
    "From: a@example.vn\r\nList-Id: <news.example.vn>\r\n",
    "From: a@example.vn\r\nX-Autoreply: yes\r\n",
    "From: MAILER-DAEMON@mx.example.vn\r\n",
    "From: <>\r\n",
    "From: Tong dai <Tongdai1022@dongnai.gov.vn>\r\n",
])
def test_given_automatic_signs_when_read_then_automatic(headers: str) -> None:
    raw = (headers + "Subject: x\r\n\r\nbody\r\n").encode()
    assert rules.parse_message(raw, own_addresses=OWN).automatic


@pytest.mark.parametrize("headers", [
    "From: MAILER-DAEMON@mx.example.vn\r\n",
    "From: <>\r\n",
    "From: a@example.vn\r\nContent-Type: multipart/report; report-type=delivery-status; "
    "boundary=b\r\n",
])
def test_given_delivery_failure_when_read_then_bounce(headers: str) -> None:
    assert rules.parse_message((headers + "Subject: x\r\n\r\nbody\r\n").encode()).bounce


def test_given_out_of_office_when_read_then_automatic_not_bounce() -> None:
    raw = b"From: a@example.vn\r\nAuto-Submitted: auto-replied\r\nSubject: x\r\n\r\nb\r\n"
    m = rules.parse_message(raw)
    assert m.automatic and not m.bounce


def test_given_control_characters_when_read_then_replaced() -> None:
    m = rules.parse_message(b"From: a@example.vn\r\nSubject: x\r\n\r\nab\x00c\r\n")
    assert m.text == "ab\ufffdc"


def test_given_auto_submitted_no_when_read_then_not_automatic() -> None:
    raw = b"From: a@example.vn\r\nAuto-Submitted: no\r\nSubject: x\r\n\r\nbody\r\n"
    assert not rules.parse_message(raw, own_addresses=OWN).automatic


# -- texts ---------------------------------------------------------------------------------------
def test_given_message_when_content_built_then_contact_email_appended() -> None:
    m = rules.parse_message(_multipart("Nước ngập."))
    assert rules.ticket_content(m) == ("Đường ngập sâu\n\nNước ngập.\n\n"
                                       "E-mail liên hệ: hoa@example.vn")


def test_given_text_starting_with_subject_when_content_built_then_subject_not_repeated() -> None:
    m = rules.parse_message("From: a@example.vn\r\nSubject: Đèn hỏng\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n\r\nĐèn hỏng ở ấp 3\r\n"
                            .encode())
    assert rules.ticket_content(m) == "Đèn hỏng ở ấp 3\n\nE-mail liên hệ: a@example.vn"


def test_given_refused_files_when_reply_built_then_code_and_names_in_it() -> None:
    reply = rules.receipt_reply("DN-20261207-0001", "Re: Đường ngập", ["virus.exe"])
    assert reply.subject == "[DN-20261207-0001] Đã tiếp nhận phản ánh: Đường ngập"
    assert "Mã phản ánh: DN-20261207-0001" in reply.body and "- virus.exe" in reply.body
    assert "không được tiếp nhận" not in rules.receipt_reply("DN-1", "", []).body


def test_given_hotline_file_when_mail_in_names_unknown_tenant_then_error_names_key() -> None:
    data = yaml.safe_load(CONFIG)
    data["mail_in"] = {"port": 2525, "tenants": {"dongnai": ["tongdai1022@dongnai.gov.vn"]}}
    cfg = parse_config(data, "hotline.yaml")
    assert cfg.mail_in is not None and cfg.mail_in.port == 2525
    data["mail_in"]["tenants"] = {"hanoi": ["a@hanoi.gov.vn"]}
    with pytest.raises(ConfigError) as e:
        parse_config(data, "hotline.yaml")
    assert "mail_in.tenants.hanoi" in str(e.value) and "no tenant has this id" in str(e.value)
