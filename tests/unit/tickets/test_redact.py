"""Personal data removal for public disclosure: names, phones, ID numbers, e-mails, addresses."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.tickets.redact import PLACEHOLDERS, find_personal_data, redact

NAME, PHONE, CCCD, CMND = "[họ tên]", "[số điện thoại]", "[số CCCD]", "[số CMND]"
EMAIL, ADDRESS, ACCOUNT = "[email]", "[địa chỉ]", "[số tài khoản]"


# ---- whole petitions --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("Ông Nguyễn Văn An, số điện thoại 0912 345 678, trú tại số 12 đường Nguyễn Văn Cừ, phường "
     "An Hòa, TP Biên Hòa phản ánh việc chưa nhận được hỗ trợ 1.500.000 đồng.",
     f"Ông {NAME}, số điện thoại {PHONE}, trú tại {ADDRESS}, phường An Hòa, TP Biên Hòa phản "
     "ánh việc chưa nhận được hỗ trợ 1.500.000 đồng."),
    ("Chị Trần Thị Bích Ngọc (CCCD 075190001234) ở 123 Phạm Văn Thuận, phường Tân Tiến đề nghị "
     "kiểm tra.",
     f"Chị {NAME} (CCCD {CCCD}) ở {ADDRESS}, phường Tân Tiến đề nghị kiểm tra."),
    ("ong Le Van Tam, sdt 0987.654.321, email tam.le@gmail.com, nha so 45/2 hem 12 duong Dong "
     "Khoi, phuong 3, quan 1",
     f"ong {NAME}, sdt {PHONE}, email {EMAIL}, {ADDRESS}, phuong 3, quan 1"),
    ("Tôi là Phạm Minh Hiếu, CMND 272123456, số tài khoản 0071001234567 tại Vietcombank; anh "
     "Chu Văn Long và chị Thị Mai cùng ký.",
     f"Tôi là {NAME}, CMND {CMND}, số tài khoản {ACCOUNT} tại Vietcombank; anh {NAME} và chị "
     f"{NAME} cùng ký."),
    ("Bà Lê Thị Hoa (SĐT: +84 35 123 4567) phản ánh hẻm 34 đường Lê Văn Sỹ bị ngập; nhờ cô "
     "Hạnh và bác Tư kiểm tra.",
     f"Bà {NAME} (SĐT: {PHONE}) phản ánh {ADDRESS} bị ngập; nhờ cô {NAME} và bác {NAME} kiểm "
     "tra."),
    ("Họ và tên: NGUYỄN THỊ LAN. Điện thoại: 028.3822.1234. Địa chỉ: 45 Trần Phú, xã An Phước.",
     f"Họ và tên: {NAME}. Điện thoại: {PHONE}. Địa chỉ: {ADDRESS}, xã An Phước."),
])
def test_given_realistic_petition_when_redacted_then_personal_data_masked(
        text: str, expected: str) -> None:
    assert redact(text) == expected


def test_given_unit_answer_when_redacted_then_names_of_citizen_masked_keep_offices() -> None:
    text = ("UBND xã An Phước đã liên hệ ông Trần Văn Bảy (0903 111 222) ngày 24/11/2026 lúc "
            "09:30; ông Chủ tịch UBND xã đã chỉ đạo Công an xã xử lý theo Văn bản số "
            "9193/UBND-HCC. Phiếu DN-20261123-0042 đã giải quyết.")
    assert redact(text) == (
        f"UBND xã An Phước đã liên hệ ông {NAME} ({PHONE}) ngày 24/11/2026 lúc 09:30; ông Chủ "
        "tịch UBND xã đã chỉ đạo Công an xã xử lý theo Văn bản số 9193/UBND-HCC. Phiếu "
        "DN-20261123-0042 đã giải quyết.")


# ---- known names ------------------------------------------------------------------------------
@pytest.mark.parametrize("written", ["Nguyễn Văn An", "nguyen van an", "NGUYỄN  VĂN AN",
                                     "Nguyen Van An"])
def test_given_known_citizen_name_when_redacted_then_every_spelling_masked(written: str) -> None:
    text = f"Người phản ánh: {written}. Gia đình {written} chưa nhận hỗ trợ."
    out = redact(text, ["Nguyễn Văn An"])
    assert written not in out and out.count(NAME) == 2


def test_given_known_name_inside_a_longer_word_when_redacted_then_left_alone() -> None:
    assert redact("Xã Long Antoan", ["An"]) == "Xã Long Antoan"
    assert redact("tỉnh Long An", ["A"]) == "tỉnh Long An"  # one letter: ignored


def test_given_decomposed_diacritics_when_redacted_then_names_still_found() -> None:
    text = unicodedata.normalize("NFD", "Ông Nguyễn Văn An phản ánh.")
    assert redact(text) == f"Ông {NAME} phản ánh."


# ---- phone numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("number", [
    "0912345678", "0912 345 678", "0912.345.678", "0912-345-678", "091 234 5678",
    "+84912345678", "+84 912 345 678", "+84-912-345-678", "(+84) 912 345 678", "84912345678",
    "0084 912 345 678", "0351234567", "0789.000.111", "028.3822.1234", "0251 3822 123",
    "02513822123", "(0251) 3822 123", "+84 28 3822 1234",
])
def test_given_phone_in_any_format_when_redacted_then_masked(number: str) -> None:
    assert redact(f"Liên hệ {number} để biết thêm.") == f"Liên hệ {PHONE} để biết thêm."


@given(st.sampled_from("35789"), st.lists(st.integers(0, 9), min_size=8, max_size=8),
       st.sampled_from(["", " ", ".", "-"]), st.sampled_from(["0", "+84", "+84 ", "84"]),
       st.sampled_from([(3, 3), (4, 2), (2, 3)]))
def test_given_any_mobile_number_when_redacted_then_no_digit_is_left(
        first: str, rest: list[int], sep: str, prefix: str, cut: tuple[int, int]) -> None:
    digits = first + "".join(map(str, rest))
    a, b = cut
    number = prefix + sep.join((digits[:a], digits[a:a + b + 2], digits[a + b + 2:]))
    out = redact(f"Gọi {number} giúp tôi")
    assert out == f"Gọi {PHONE} giúp tôi"


# ---- ID numbers, e-mail -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("CCCD số 079201012345 cấp ngày 01/02/2021", f"CCCD số {CCCD} cấp ngày 01/02/2021"),
    ("căn cước công dân: 079 201 012 345", f"căn cước công dân: {CCCD}"),
    ("CMND 272 123 456", f"CMND {CMND}"),
    ("số 079201012345 của tôi", f"số {CCCD} của tôi"),
    ("giấy tờ 272123456 cũ", f"giấy tờ {CMND} cũ"),
    ("can cuoc cong dan so 075190001234", f"can cuoc cong dan so {CCCD}"),
    ("hộ chiếu B1234567", f"hộ chiếu {CCCD}"),
    ("STK: 1903 5678 9012 34 Techcombank", f"STK: {ACCOUNT} Techcombank"),
    ("Gửi về Nguyen.Van-An+1022@dongnai.gov.vn nhé", f"Gửi về {EMAIL} nhé"),
    ("Nhắn qua facebook.com/lan.nguyen.90 hoặc https://zalo.me/0912345678.",
     "Nhắn qua [trang cá nhân] hoặc [trang cá nhân]."),
])
def test_given_id_numbers_and_emails_when_redacted_then_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


# ---- addresses --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("nhà số 7, phường Trảng Dài", f"{ADDRESS}, phường Trảng Dài"),
    ("số nhà 12/5 hẻm 8 đường 30 Tháng 4, phường Thanh Bình",
     f"{ADDRESS}, phường Thanh Bình"),
    ("tại 45A Trần Hưng Đạo, phường 1", f"tại {ADDRESS}, phường 1"),
    ("ở 12 đường số 5, khu phố 3", f"ở {ADDRESS}, khu phố 3"),
    ("ngõ 5 phố Huế, quận Hai Bà Trưng", f"{ADDRESS}, quận Hai Bà Trưng"),
    ("số 12 Nguyễn Văn Cừ, xã An Phước, huyện Long Thành",
     f"{ADDRESS}, xã An Phước, huyện Long Thành"),
    ("tru tai 88 Pham Van Thuan, phuong Tam Hiep", f"tru tai {ADDRESS}, phuong Tam Hiep"),
])
def test_given_exact_address_when_redacted_then_house_and_street_masked_area_kept(
        text: str, expected: str) -> None:
    assert redact(text) == expected


# ---- what must stay ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Hỗ trợ 1.000.000 đồng mỗi người, tổng 150000000 đồng, 2,5 triệu đồng, 1.500.000đ.",
    "Ngày 23/11/2026 lúc 08:30, hạn 24/11/2026 08:30; tháng 8/2021; năm 2021.",
    "Phiếu DN-20261123-0042 và HCM-20260228-12345 đã chuyển.",
    "Văn bản số 9193/UBND-HCC ngày 04/8/2021; Nghị định số 20/2008/NĐ-CP; Quyết định số "
    "3421/QĐ-UBND.",
    "Gọi Tổng đài 1022 hoặc 0251.1022, 0281022, 02371022.",
    "Bà con ấp 3 xã An Phước; anh chị em công nhân; ông (bà) vui lòng chờ.",
    "Đường Bà Triệu và tỉnh Bà Rịa - Vũng Tàu, chợ Bà Chiểu, đường Ông Ích Khiêm.",
    "Chú ý: ông Chủ tịch UBND xã và bà Giám đốc Sở Y tế đã làm việc với Công an xã.",
    "Điều 5 Luật Đất đai năm 2013; năm 2021 Bộ Y tế ban hành 15 văn bản; Quốc lộ 51 km 12.",
    "Covid-19, 15 line trực cùng lúc từ 7 giờ đến 18 giờ, 2 line ban đêm, 24 giờ, 04 tiếng.",
    "Báo cáo số 1384 ngày 29/7/2021 gồm 15 nội dung chưa xử lý và 43 nội dung chậm xử lý.",
    "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!",
    "tổ 5, khu phố 4, phường Trảng Dài; Phòng 1203; Phường 3, Quận 5.",
    "tỉnh Long An, xã Long An, huyện Long Thành",
    "Thông báo số 45 Văn phòng UBND tỉnh; Kế hoạch số 12 Tỉnh ủy; số 3 Công an tỉnh.",
    "Mã hồ sơ 000.00.12.H19-211123-0001 chưa được giải quyết.",
])
def test_given_ordinary_text_when_redacted_then_unchanged(text: str) -> None:
    assert redact(text) == text
    assert find_personal_data(text) == []


@given(st.integers(1, 999), st.integers(0, 999), st.integers(0, 999))
def test_given_any_money_amount_when_redacted_then_unchanged(a: int, b: int, c: int) -> None:
    text = f"Số tiền {a}.{b:03d}.{c:03d} đồng đã chi."
    assert redact(text) == text


@given(st.dates())
def test_given_any_date_when_redacted_then_unchanged(d: object) -> None:
    text = f"Ngày {d:%d/%m/%Y} và mã DN-{d:%Y%m%d}-0042."
    assert redact(text) == text


# ---- findings ---------------------------------------------------------------------------------
def test_given_text_when_findings_listed_then_kinds_spans_and_placeholders() -> None:
    text = "Ông Lê Văn Tám, 0912345678, tam@example.com"
    found = find_personal_data(text)
    assert [(f.kind, text[f.start:f.end], f.placeholder) for f in found] == [
        ("name", "Lê Văn Tám", NAME),
        ("phone", "0912345678", PHONE),
        ("email", "tam@example.com", EMAIL),
    ]
    assert set(PLACEHOLDERS.values()) == {NAME, PHONE, CCCD, CMND, EMAIL, ADDRESS, ACCOUNT,
                                          "[trang cá nhân]"}


def test_given_redacted_text_when_redacted_again_then_unchanged() -> None:
    once = redact("Ông Nguyễn Văn An, 0912345678, số 12 đường Lê Lợi, CCCD 079201012345")
    assert redact(once) == once
