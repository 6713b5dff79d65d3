"""The FAQ domain: header recognition, row validation, item keys, sentences, catalogue."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.model import DEFAULT_FIELDS, Field
from callcenter.faq.rules import (
    MAX_CHARS,
    FaqCatalogue,
    FaqEntry,
    Sheet,
    column_letter,
    find_header,
    item_key,
    match_field,
    normalise_question,
    parse_faq,
    split_sentences,
)

VI_HEADER = ("STT", "Lĩnh vực", "Câu hỏi", "Trả lời", "Từ khóa", "Đơn vị")


def sheet(*rows: tuple[str, ...], name: str = "Y tế") -> Sheet:
    return Sheet(name, tuple(rows))


def errors_of(*rows: tuple[str, ...], field: str | None = None,
              source: str = "faq-yte.xlsx") -> list[str]:
    return [str(e) for e in parse_faq(source, [sheet(*rows)], DEFAULT_FIELDS, field).errors]


# -- header recognition ----------------------------------------------------------------------


@pytest.mark.parametrize("header, expected", [
    (VI_HEADER, {"field": 1, "question": 2, "answer": 3, "keywords": 4, "unit": 5}),
    (("tt", "LINH VUC", "cau hoi", "tra loi", "tu khoa", "don vi"),
     {"field": 1, "question": 2, "answer": 3, "keywords": 4, "unit": 5}),
    (("No.", "Field", "Question", "Answer", "Keywords", "Unit", "Code"),
     {"field": 1, "question": 2, "answer": 3, "keywords": 4, "unit": 5, "code": 6}),
    (("Mã câu hỏi", " Câu  hỏi ", "Câu trả lời (bắt buộc)"),
     {"code": 0, "question": 1, "answer": 2}),
    (("Mã", "Câu hỏi / Question", "Trả lời\n(Answer)", "Ghi chú"),
     {"code": 0, "question": 1, "answer": 2}),
])
def test_given_header_in_any_language_or_spelling_when_found_then_columns_mapped(
        header: tuple[str, ...], expected: dict[str, int]) -> None:
    found, near_miss = find_header([header])
    assert found is not None and near_miss is None
    assert dict(found.columns) == expected


def test_given_title_rows_and_merged_title_cell_when_header_searched_then_row_after_them() -> None:
    rows = [
        ("DANH MỤC CÂU HỎI THƯỜNG GẶP LĨNH VỰC Y TẾ", "", "", "", "", ""),  # merged A1:F1
        ("", "", "", "", "", ""),
        ("Kèm theo Công văn số 123/SYT", "", "", "", "", ""),
        VI_HEADER,
        ("1", "Y tế", "Câu hỏi?", "Trả lời.", "", ""),
    ]
    found, _ = find_header(rows)
    assert found is not None and found.row == 3
    assert found.titles["answer"] == "Trả lời"


def test_given_header_below_scan_window_when_searched_then_not_found() -> None:
    rows = [("",)] * 15 + [VI_HEADER]
    assert find_header(rows) == (None, None)
    assert find_header(rows, scan=16)[0] is not None


def test_given_header_without_answer_column_when_parsed_then_error_names_the_row() -> None:
    errors = errors_of(("Danh mục",), ("STT", "Lĩnh vực", "Câu hỏi"), ("1", "Y tế", "Hỏi?"))
    assert errors == ['faq-yte.xlsx: sheet "Y tế", row 2: header row has no '
                      '"Trả lời" (answer) column']


def test_given_sheet_without_any_header_when_others_have_one_then_skipped_with_note() -> None:
    guide = Sheet("Hướng dẫn", (("Điền mỗi câu hỏi một dòng",),))
    data = sheet(VI_HEADER, ("1", "Y tế", "Hỏi?", "Đáp.", "", ""))
    result = parse_faq("f.xlsx", [guide, data], DEFAULT_FIELDS)
    assert result.ok and len(result.rows) == 1
    assert result.notes and 'sheet "Hướng dẫn"' in result.notes[0]


def test_given_file_without_any_header_when_parsed_then_refused() -> None:
    result = parse_faq("f.csv", [Sheet("", (("a", "b"), ("c", "d")))], DEFAULT_FIELDS)
    assert not result.ok
    assert str(result.errors[0]).startswith("f.csv: no header row with")


# -- rows ------------------------------------------------------------------------------------


def test_given_valid_rows_when_parsed_then_rows_cleaned_and_grouped_in_file_order() -> None:
    result = parse_faq("f.xlsx", [sheet(
        VI_HEADER,
        ("1", "y te", "  Thẻ   BHYT\u00a0hết hạn? ", "Gia hạn tại xã.\r\n\r\nMang CCCD.", "", ""),
        ("", "", "", "", "", ""),  # blank row: skipped
        ("3", "", "", "", "", ""),  # pre-numbered template row: skipped
        ("4", "transport", "Đổi GPLX?", "Nộp trực tuyến.", "gplx", "Sở GTVT"),
        ("5", "Y TẾ", "Gọi cấp cứu?", "Gọi 115.", "", ""),
    )], DEFAULT_FIELDS)
    assert result.ok, result.errors
    groups = result.by_field()
    assert list(groups) == ["health", "transport"]
    first = groups["health"][0]
    assert (first.question, first.answer, first.row) == (
        "Thẻ BHYT hết hạn?", "Gia hạn tại xã.\nMang CCCD.", 2)
    assert [r.row for r in groups["health"]] == [2, 6]
    assert groups["transport"][0].unit == "Sở GTVT" and groups["transport"][0].keywords == "gplx"
    assert first.unit is None and first.code is None


def test_given_empty_answer_when_parsed_then_error_names_sheet_row_column_and_header() -> None:
    rows = [("DANH MỤC",), ("",), ("",), ("",), VI_HEADER,
            ("1", "Y tế", "Hỏi một?", "Đáp.", "", ""),
            ("2", "Y tế", "Hỏi hai?", "   ", "", "")]
    assert errors_of(*rows) == [
        'faq-yte.xlsx: sheet "Y tế", row 7, column D (Trả lời): empty answer']


def test_given_empty_question_when_parsed_then_error_on_question_column() -> None:
    assert errors_of(VI_HEADER, ("1", "Y tế", "", "Đáp.", "", "")) == [
        'faq-yte.xlsx: sheet "Y tế", row 2, column C (Câu hỏi): empty question']


def test_given_unknown_field_when_parsed_then_error_quotes_the_cell() -> None:
    assert errors_of(VI_HEADER, ("1", "Y khoa", "Hỏi?", "Đáp.", "", "")) == [
        'faq-yte.xlsx: sheet "Y tế", row 2, column B (Lĩnh vực): unknown field "Y khoa"']


def test_given_duplicate_question_when_parsed_then_error_names_both_rows() -> None:
    errors = errors_of(VI_HEADER,
                       ("1", "Y tế", "Gọi cấp cứu số nào?", "115.", "", ""),
                       ("2", "Giao thông vận tải", "Gọi cấp cứu số nào?", "115.", "", ""),
                       ("3", "health", "gọi  CẤP CỨU số nào?", "115.", "", ""))
    # The same question in another field is another item; in the same field it is refused.
    assert errors == ['faq-yte.xlsx: sheet "Y tế", row 4, column C (Câu hỏi): '
                      'duplicate question: same as row 2']


def test_given_duplicate_across_sheets_when_parsed_then_other_sheet_named() -> None:
    a = sheet(VI_HEADER, ("1", "Y tế", "Hỏi?", "Đáp.", "", ""), name="Đợt 1")
    b = sheet(VI_HEADER, ("1", "Y tế", "Hỏi?", "Đáp khác.", "", ""), name="Đợt 2")
    errors = [str(e) for e in parse_faq("f.xlsx", [a, b], DEFAULT_FIELDS).errors]
    assert errors == ['f.xlsx: sheet "Đợt 2", row 2, column C (Câu hỏi): '
                      'duplicate question: same as sheet "Đợt 1", row 2']


def test_given_duplicate_code_when_parsed_then_refused() -> None:
    header = ("Mã", "Câu hỏi", "Trả lời")
    errors = errors_of(header, ("YT01", "Một?", "Một."), ("yt01", "Hai?", "Hai."),
                       field="health")
    assert errors == ['faq-yte.xlsx: sheet "Y tế", row 3, column A (Mã): '
                      'duplicate code "yt01": same as row 2']


def test_given_field_option_when_sheet_has_no_field_column_then_rows_take_it() -> None:
    result = parse_faq("f.csv", [Sheet("", (("Câu hỏi", "Trả lời"), ("Hỏi?", "Đáp.")))],
                       DEFAULT_FIELDS, field="health")
    assert result.ok and result.rows[0].field == "health"
    assert str(result.rows[0].sheet) == ""


def test_given_no_field_column_and_no_option_when_parsed_then_error_asks_for_field() -> None:
    errors = errors_of(("Câu hỏi", "Trả lời"), ("Hỏi?", "Đáp."))
    assert errors == ['faq-yte.xlsx: sheet "Y tế", row 1: no "Lĩnh vực" (field) column: '
                      'add one, or give the field for the whole file (--field)']


def test_given_field_cell_conflicting_with_option_when_parsed_then_error() -> None:
    errors = errors_of(VI_HEADER, ("1", "Giao thông vận tải", "Hỏi?", "Đáp.", "", ""),
                       ("2", "", "Hỏi 2?", "Đáp.", "", ""), ("3", "y tế", "Hỏi 3?", "Đáp.", "", ""),
                       field="health")
    assert errors == ['faq-yte.xlsx: sheet "Y tế", row 2, column B (Lĩnh vực): field '
                      '"Giao thông vận tải" (transport) conflicts with --field health']


def test_given_empty_field_cell_without_option_when_parsed_then_error() -> None:
    assert errors_of(VI_HEADER, ("1", "", "Hỏi?", "Đáp.", "", "")) == [
        'faq-yte.xlsx: sheet "Y tế", row 2, column B (Lĩnh vực): empty field']


def test_given_too_long_cells_when_parsed_then_each_reported() -> None:
    long_q = "Hỏi " * (MAX_CHARS["question"] // 4 + 1)
    long_a = "Đáp. " * (MAX_CHARS["answer"] // 5 + 1)
    errors = errors_of(VI_HEADER, ("1", "Y tế", long_q, long_a, "", ""))
    assert len(errors) == 2
    assert "column C (Câu hỏi): question too long" in errors[0]
    assert f"at most {MAX_CHARS['answer']}" in errors[1] and "column D" in errors[1]


def test_given_many_bad_rows_when_parsed_then_all_errors_collected_in_order() -> None:
    result = parse_faq("f.xlsx", [sheet(
        VI_HEADER,
        ("1", "Y tế", "Hỏi?", "", "", ""),
        ("2", "Nông nghiệp", "", "Đáp.", "", ""),
        ("3", "Y tế", "Đúng?", "Đúng.", "", ""),
    )], DEFAULT_FIELDS)
    assert [(e.row, e.column) for e in result.errors] == [(2, 3), (3, 1), (3, 2)]
    assert [r.row for r in result.rows] == [4]  # valid rows are found, but the file is refused
    assert not result.ok


def test_given_unknown_field_option_when_parsed_then_value_error() -> None:
    with pytest.raises(ValueError, match="nope"):
        parse_faq("f.csv", [], DEFAULT_FIELDS, field="nope")


@pytest.mark.parametrize("cell, expected", [
    ("Y tế", "health"), ("y te", "health"), ("HEALTH", "health"), ("Lĩnh vực Y tế", "health"),
    ("social_security", "social_security"), ("social security", "social_security"),
    ("An sinh xa hoi", "social_security"), ("Thông tin, tin giả", "information"),
    ("thong tin tin gia", "information"), ("Y khoa", None), ("", None),
])
def test_given_field_cell_when_matched_then_by_id_or_name(cell: str, expected: str | None) -> None:
    f = match_field(cell, DEFAULT_FIELDS)
    assert (f.id if f else None) == expected


def test_given_tenant_own_fields_when_matched_then_only_those() -> None:
    fields = (Field("env", "Môi trường"),)
    assert match_field("moi truong", fields) == fields[0]
    assert match_field("Y tế", fields) is None


def test_given_indexes_when_lettered_then_spreadsheet_names() -> None:
    assert [column_letter(i) for i in (0, 2, 25, 26, 51, 52, 701, 702)] == [
        "A", "C", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]


# -- item keys -------------------------------------------------------------------------------


def test_given_same_question_spelled_differently_when_keyed_then_same_key() -> None:
    decomposed = unicodedata.normalize("NFD", "Thẻ BHYT hết hạn?")
    key = item_key("dongnai", "health", "Thẻ BHYT hết hạn?")
    assert len(key) == 16 and int(key, 16) >= 0
    assert item_key("dongnai", "health", f"  thẻ  bhyt\n{decomposed[9:]}") == key
    assert item_key("dongnai", "health", decomposed) == key


def test_given_other_tenant_field_or_question_when_keyed_then_other_key() -> None:
    key = item_key("dongnai", "health", "Hỏi?")
    assert item_key("thanhhoa", "health", "Hỏi?") != key
    assert item_key("dongnai", "transport", "Hỏi?") != key
    assert item_key("dongnai", "health", "Hỏi") != key


def test_given_known_inputs_when_keyed_then_value_is_stable_across_releases() -> None:
    # Stored keys and recorded IVR paths rely on this exact value: never change the recipe.
    assert item_key("dongnai", "health", "Q1?") == "54e09d0d7804e38b"


@given(st.text(max_size=60))
def test_given_any_question_when_normalised_twice_then_same(question: str) -> None:
    once = normalise_question(question)
    assert normalise_question(once) == once
    assert item_key("t", "f", question) == item_key("t", "f", once)


# -- sentences -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Gọi số 115 ngay. Nói rõ địa chỉ nhà mình!", ("Gọi số 115 ngay.", "Nói rõ địa chỉ nhà mình!")),
    ("Lệ phí là 1.000.000 đồng. Nộp tại xã nơi cư trú.",
     ("Lệ phí là 1.000.000 đồng.", "Nộp tại xã nơi cư trú.")),
    ("Tỷ lệ 3.5% mỗi năm. Áp dụng từ tháng sau nhé.",
     ("Tỷ lệ 3.5% mỗi năm.", "Áp dụng từ tháng sau nhé.")),
    ("Nộp tại TP. Biên Hòa trong giờ hành chính. Có thể nộp tại Tp.HCM nữa.",
     ("Nộp tại TP. Biên Hòa trong giờ hành chính.", "Có thể nộp tại Tp.HCM nữa.")),
    ("Liên hệ BS. Lan hoặc ThS. Minh ở P. Tân Phong. Họ trực cả ngày.",
     ("Liên hệ BS. Lan hoặc ThS. Minh ở P. Tân Phong.", "Họ trực cả ngày.")),
    ("Bước một nộp hồ sơ; bước hai nhận kết quả?",
     ("Bước một nộp hồ sơ;", "bước hai nhận kết quả?")),
    ("Dòng thứ nhất không có dấu chấm\nDòng thứ hai cũng vậy",
     ("Dòng thứ nhất không có dấu chấm", "Dòng thứ hai cũng vậy")),
    ("Có. Thẻ được gia hạn tại xã.", ("Có. Thẻ được gia hạn tại xã.",)),  # short merged forward
    ("Thẻ được gia hạn tại xã. Vâng.", ("Thẻ được gia hạn tại xã. Vâng.",)),  # merged back
    ('Ghi rõ "đã nộp." Sau đó chờ tin nhắn.', ('Ghi rõ "đã nộp."', "Sau đó chờ tin nhắn.")),
    ("Các giấy tờ như CCCD, sổ hộ khẩu v.v. và đơn.",
     ("Các giấy tờ như CCCD, sổ hộ khẩu v.v. và đơn.",)),
    ("", ()),
    ("  \n \n ", ()),
])
def test_given_answer_when_split_then_sentences_for_playback(
        text: str, expected: tuple[str, ...]) -> None:
    assert split_sentences(text) == expected


def test_given_long_sentence_when_split_then_cut_at_commas_within_limit() -> None:
    text = ("Hồ sơ gồm tờ khai theo mẫu, bản sao căn cước công dân, giấy chứng sinh, "
            "giấy xác nhận cư trú, và các giấy tờ khác theo hướng dẫn của cán bộ.")
    parts = split_sentences(text, max_chars=60)
    assert all(len(p) <= 60 for p in parts) and len(parts) >= 2
    assert all(p.endswith(",") for p in parts[:-1])
    assert " ".join(parts) == text


def test_given_word_longer_than_limit_when_split_then_hard_cut() -> None:
    url = "https://dichvucong.example/" + "x" * 50
    assert split_sentences(url, max_chars=30) == (url[:30], url[30:60], url[60:])


def test_given_bad_limit_when_split_then_value_error() -> None:
    with pytest.raises(ValueError):
        split_sentences("Câu.", max_chars=0)


_alphabet = st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyAĐTP0123456789 .,;!?\n\"()…")
                            + ["ế", "ộ", "ữ", "\u0301", "\u00a0", "TP.", "Tp.", "1.000"])


@given(st.lists(_alphabet, max_size=400).map("".join), st.integers(min_value=5, max_value=250))
def test_given_any_text_when_split_then_bounded_trimmed_and_nothing_lost(
        text: str, max_chars: int) -> None:
    parts = split_sentences(text, max_chars=max_chars)
    assert all(p and p == p.strip() and len(p) <= max_chars for p in parts)
    squeeze = "".join(unicodedata.normalize("NFC", text).replace("\u00a0", " ").split())
    assert "".join("".join(p.split()) for p in parts) == squeeze


# -- catalogue -------------------------------------------------------------------------------


def entry(key: str, field: str, position: int, code: str | None = None) -> FaqEntry:
    return FaqEntry(key=key, code=code, field=field, position=position, question=f"Q {key}",
                    answer=f"A {key}.", sentences=(f"A {key}.",))


def test_given_entries_when_catalogue_built_then_by_field_in_position_order() -> None:
    cat = FaqCatalogue.build("dongnai", [
        entry("k3", "transport", 1), entry("k2", "health", 2, "YT02"),
        entry("k1", "health", 1, "YT01"),
    ], generation="4,7")
    assert cat.tenant == "dongnai" and cat.generation == "4,7" and len(cat) == 3
    assert cat.fields == ("health", "transport")
    assert [e.key for e in cat.for_field("health")] == ["k1", "k2"]
    assert cat.for_field("other") == ()


def test_given_catalogue_when_looked_up_then_by_key_code_or_either() -> None:
    cat = FaqCatalogue.build("dongnai", [entry("k1", "health", 1, "YT01"),
                                         entry("k2", "health", 2)], generation="1")
    assert cat.by_key("k2") is cat.entries[1]
    assert cat.by_code("yt01 ") is cat.entries[0]
    assert cat.find("k1") is cat.entries[0] and cat.find("YT01") is cat.entries[0]
    assert cat.by_key("nope") is None and cat.by_code("YT99") is None and cat.find("x") is None


def test_given_duplicate_key_when_catalogue_built_then_value_error() -> None:
    with pytest.raises(ValueError, match="k1"):
        FaqCatalogue.build("dongnai", [entry("k1", "health", 1), entry("k1", "health", 2)], "")


def test_given_empty_catalogue_when_used_then_nothing_found() -> None:
    cat = FaqCatalogue.build("dongnai", [], generation="")
    assert len(cat) == 0 and cat.fields == () and cat.find("x") is None


def test_given_same_entries_when_built_twice_then_equal_catalogues() -> None:
    entries = [entry("k1", "health", 1), entry("k2", "health", 2)]
    assert FaqCatalogue.build("t", entries, "1") == FaqCatalogue.build("t", entries[::-1], "1")
    assert FaqCatalogue.build("t", entries, "1") != FaqCatalogue.build("t", entries, "2")
