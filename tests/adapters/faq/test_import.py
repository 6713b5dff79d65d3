"""FAQ import from real .xls/.xlsx/.csv files into the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import codecs
import datetime as dt
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import xlwt

from callcenter.config.model import DEFAULT_FIELDS
from callcenter.faq.rules import FaqRow, Sheet, item_key, parse_faq
from callcenter.faq.sheets import MAX_BYTES, SheetError, cell_text, read_bytes, read_upload
from callcenter.faq.store import FaqStore, FaqStoreError
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from tests.adapters.conftest import MakeRecord
from tests.support.concurrency import run_together

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
HEADER = ["STT", "Lĩnh vực", "Câu hỏi", "Trả lời", "Từ khóa", "Đơn vị"]
ROWS = [
    [1, "Y tế", "Thẻ BHYT hết hạn thì làm sao?", "Gia hạn tại xã, phường. Mang theo CCCD.",
     "bhyt", "BHXH tỉnh"],
    [2, "Y tế", "Gọi cấp cứu số nào?", "Gọi 115 ngay. Cuộc gọi miễn phí.", "", "Sở Y tế"],
    [3, "Giao thông vận tải", "Đổi GPLX ở đâu?", "Nộp trực tuyến hoặc tại TP. Biên Hòa.", "",
     ""],
]


# -- files -----------------------------------------------------------------------------------


def write_xlsx(path: Path, rows: list[list[object]], title: str | None = "DANH MỤC CÂU HỎI",
               sheet: str = "Y tế") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    if title is not None:
        ws.append([title])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADER))
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def write_xls(path: Path, rows: list[list[object]], sheet: str = "Y tế") -> Path:
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet(sheet)
    ws.write_merge(0, 0, 0, len(HEADER) - 1, "DANH MỤC CÂU HỎI THƯỜNG GẶP")
    for j, h in enumerate(HEADER):
        ws.write(2, j, h)  # row 2 left empty: a blank line under the title
    for i, r in enumerate(rows, start=3):
        for j, v in enumerate(r):
            ws.write(i, j, v)
    wb.save(str(path))
    return path


def csv_text(rows: list[list[object]], sep: str) -> str:
    def quote(v: object) -> str:
        s = str(v)
        return f'"{s}"' if (sep in s or '"' in s) else s
    lines = [sep.join(HEADER)] + [sep.join(quote(v) for v in r) for r in rows]
    return "\r\n".join(lines) + "\r\n"


def cp1258(text: str) -> bytes:
    """Vietnamese as Windows-1258 writes it: base letters composed, tones as marks."""
    out = b""
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            d = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", "".join(c for c in d if c not in "\u0300\u0301"
                                                        "\u0303\u0309\u0323"))
            out += (base + "".join(c for c in d if c in "\u0300\u0301\u0303\u0309\u0323")
                    ).encode("cp1258")
    return out


def parse(path: Path, field: str | None = None) -> tuple[str, dict[str, tuple[FaqRow, ...]]]:
    upload = read_upload(path)
    result = parse_faq(upload.name, upload.sheets, DEFAULT_FIELDS, field)
    assert result.ok, [str(e) for e in result.errors]
    return upload.sha256, result.by_field()


@pytest.fixture
def faq(database_url: str) -> Iterator[FaqStore]:
    upgrade_head(database_url)
    s = FaqStore(database_url)
    yield s
    s.close()


# -- reading files ---------------------------------------------------------------------------


def test_given_real_xls_with_merged_title_when_read_then_rows_and_numbers_as_shown(
        tmp_path: Path) -> None:
    upload = read_upload(write_xls(tmp_path / "faq-yte.xls", ROWS))
    (sheet,) = upload.sheets
    assert sheet.name == "Y tế"
    assert sheet.rows[0][:2] == ("DANH MỤC CÂU HỎI THƯỜNG GẶP", "")
    assert sheet.rows[3][:3] == ("1", "Y tế", "Thẻ BHYT hết hạn thì làm sao?")
    result = parse_faq(upload.name, upload.sheets, DEFAULT_FIELDS)
    assert result.ok and [r.row for r in result.rows] == [4, 5, 6]


def test_given_xlsx_with_merged_title_when_read_then_same_rows(tmp_path: Path) -> None:
    upload = read_upload(write_xlsx(tmp_path / "faq.xlsx", ROWS))
    assert upload.sheets[0].rows[0] == ("DANH MỤC CÂU HỎI", "", "", "", "", "")
    _, groups = parse(tmp_path / "faq.xlsx")
    assert {f: len(rows) for f, rows in groups.items()} == {"health": 2, "transport": 1}


def test_given_sheet_not_starting_at_a1_when_read_then_columns_keep_their_letters(
        tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["C4"], ws["D4"], ws["C5"] = "Câu hỏi", "Trả lời", "Hỏi?"
    wb.save(tmp_path / "offset.xlsx")
    upload = read_upload(tmp_path / "offset.xlsx")
    errors = parse_faq(upload.name, upload.sheets, DEFAULT_FIELDS, "health").errors
    assert [str(e) for e in errors] == [
        'offset.xlsx: sheet "Sheet", row 5, column D (Trả lời): empty answer']


def test_given_hidden_sheet_when_read_then_skipped(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", ROWS)
    wb = openpyxl.load_workbook(path)
    hidden = wb.create_sheet("Danh mục lĩnh vực")
    hidden.append(["Câu hỏi", "Trả lời"])
    hidden.sheet_state = "hidden"
    wb.save(path)
    assert [s.name for s in read_upload(path).sheets] == ["Y tế"]


def test_given_csv_with_bom_and_semicolons_when_read_then_rows(tmp_path: Path) -> None:
    rows = [*ROWS, [4, "Y tế", "Có mất phí không?", "Không; hoàn toàn miễn phí, 0 đồng.", "", ""]]
    path = tmp_path / "faq.csv"
    path.write_bytes(csv_text(rows, ";").encode("utf-8-sig"))
    upload = read_upload(path)
    assert upload.encoding == "utf-8-sig"
    assert upload.sheets[0].rows[0] == tuple(HEADER)  # no BOM glued to "STT"
    _, groups = parse(path)
    assert groups["health"][2].answer == "Không; hoàn toàn miễn phí, 0 đồng."


@pytest.mark.parametrize("sep", [",", "\t"])
def test_given_csv_with_comma_or_tab_when_read_then_delimiter_found(
        tmp_path: Path, sep: str) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(csv_text(ROWS, sep), encoding="utf-8")
    _, groups = parse(path)
    assert groups["transport"][0].question == "Đổi GPLX ở đâu?"


def test_given_utf16_csv_when_read_then_decoded(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + csv_text(ROWS, "\t").encode("utf-16-le"))
    assert read_upload(path).encoding == "utf-16"
    assert parse(path)[1]["health"][0].question == "Thẻ BHYT hết hạn thì làm sao?"


def test_given_cp1258_csv_when_read_then_vietnamese_restored_in_nfc(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes(cp1258(csv_text(ROWS, ",")))
    upload = read_upload(path)
    assert upload.encoding == "cp1258"
    _, groups = parse(path)
    assert groups["health"][1].question == "Gọi cấp cứu số nào?"
    assert unicodedata.is_normalized("NFC", groups["health"][1].answer)


def test_given_undecodable_csv_when_read_then_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes(b"C\xe2u h\xe1i,Tr\xe1 l\xe1i\n\x81\x81\n")
    with pytest.raises(SheetError, match=r'faq.csv: .*neither UTF-8.*save it as "CSV UTF-8"'):
        read_upload(path)


@pytest.mark.parametrize("name, content, message", [
    ("faq.xlsx", b"Cau hoi,Tra loi\n", "faq.xlsx: not an Excel workbook"),
    ("faq.xls", b"<html><table><tr><td>x</td></tr></table></html>", "web page"),
    ("faq.xlsx", b"PK\x03\x04 truncated zip", "faq.xlsx: not a readable Excel workbook"),
    ("faq.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100,
     "faq.xls: not a readable Excel workbook"),
    ("faq.pdf", b"%PDF-1.4", "faq.pdf: not a spreadsheet"),
    ("faq.csv", b"  \n", "faq.csv: the file is empty"),
])
def test_given_file_that_is_not_what_it_says_when_read_then_error_names_it(
        tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SheetError, match=message):
        read_upload(path)


def test_given_xlsx_saved_under_xls_name_when_read_then_read_by_content(tmp_path: Path) -> None:
    real = write_xlsx(tmp_path / "real.xlsx", ROWS)
    renamed = tmp_path / "faq.xls"
    renamed.write_bytes(real.read_bytes())
    assert read_upload(renamed).sheets[0].rows[1] == tuple(HEADER)


def test_given_file_over_limit_when_read_then_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.xlsx"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no 20 MB written
    with pytest.raises(SheetError, match="huge.xlsx: .* larger than the 20 MB limit"):
        read_upload(path)
    with pytest.raises(SheetError, match="larger than"):
        read_bytes("x.csv", b"a" * (MAX_BYTES + 1))


@pytest.mark.parametrize("value, text", [
    (12.0, "12"), (2.5, "2.5"), (-3.0, "-3"), (1234567890123.0, "1234567890123"), (7, "7"),
    (True, "TRUE"), (None, ""), (dt.date(2026, 2, 5), "05/02/2026"),
    (dt.datetime(2026, 2, 5, 7, 30), "05/02/2026 07:30"), (dt.time(18, 0), "18:00"),
    ("  giữ nguyên ", "  giữ nguyên "),
])
def test_given_cell_values_when_rendered_then_as_the_sheet_shows_them(
        value: object, text: str) -> None:
    assert cell_text(value) == text


# -- store -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["faq-dongnai.xlsx", "faq-dongnai.csv"])
def test_given_shipped_example_when_imported_then_four_fields_active_with_sentences(
        faq: FaqStore, name: str) -> None:
    sha, groups = parse(EXAMPLES / name)
    infos = faq.import_version("dongnai", groups, name, sha, "admin", T0)
    assert sorted((i.field, i.version, i.item_count, i.active) for i in infos) == [
        ("admin_procedures", 1, 2, True), ("health", 1, 2, True),
        ("social_security", 1, 2, True), ("transport", 1, 2, True)]
    cat = faq.catalogue("dongnai")
    assert len(cat) == 8 and cat.generation == faq.generation("dongnai") != ""
    first = cat.for_field("health")[0]
    assert first.position == 1 and first.question == "Thẻ bảo hiểm y tế hết hạn thì gia hạn ở đâu?"
    assert len(first.sentences) == 3
    assert first.key == item_key("dongnai", "health", first.question)
    assert any("TP. Biên Hòa" in s for e in cat.for_field("transport") for s in e.sentences)
    assert faq.catalogue("thanhhoa").entries == () and faq.generation("thanhhoa") == ""


def test_given_examples_xlsx_and_csv_when_parsed_then_same_items() -> None:
    _, a = parse(EXAMPLES / "faq-dongnai.xlsx")
    _, b = parse(EXAMPLES / "faq-dongnai.csv")
    strip = {f: [(r.question, r.answer, r.keywords, r.unit) for r in rows] for f, rows in a.items()}
    assert strip == {f: [(r.question, r.answer, r.keywords, r.unit) for r in rows]
                     for f, rows in b.items()}


def test_given_active_version_when_broken_file_imported_then_row_named_and_nothing_changes(
        faq: FaqStore, tmp_path: Path) -> None:
    sha, groups = parse(write_xlsx(tmp_path / "faq.xlsx", ROWS))
    faq.import_version("dongnai", groups, "faq.xlsx", sha, "admin", T0)
    before = (faq.versions("dongnai"), faq.active_items("dongnai"), faq.generation("dongnai"))

    broken = [*ROWS, [4, "Y tế", "Câu hỏi mới?", "", "", ""]]
    upload = read_upload(write_xlsx(tmp_path / "faq-v2.xlsx", broken))
    result = parse_faq(upload.name, upload.sheets, DEFAULT_FIELDS)
    assert [str(e) for e in result.errors] == [
        'faq-v2.xlsx: sheet "Y tế", row 6, column D (Trả lời): empty answer']
    assert (faq.versions("dongnai"), faq.active_items("dongnai"),
            faq.generation("dongnai")) == before


def test_given_failure_mid_import_when_second_field_fails_then_first_field_rolled_back(
        faq: FaqStore, tmp_path: Path) -> None:
    sha, groups = parse(write_xlsx(tmp_path / "faq.xlsx", ROWS))
    faq.import_version("dongnai", groups, "faq.xlsx", sha, "admin", T0)
    before = (faq.versions("dongnai"), faq.active_items("dongnai"), faq.generation("dongnai"))
    changed = [[*r[:3], f"{r[3]} Cập nhật."] + list(r[4:]) for r in ROWS]
    sha2, groups2 = parse(write_xlsx(tmp_path / "faq-v2.xlsx", changed))

    def fail_on_second_field(done: int) -> None:
        if done > 2:  # health (2 items) written, transport being written
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        faq.import_version("dongnai", groups2, "faq-v2.xlsx", sha2, "admin", T0,
                           fail_on_second_field)
    assert (faq.versions("dongnai"), faq.active_items("dongnai"),
            faq.generation("dongnai")) == before


def test_given_version_1_when_new_sheet_imported_then_version_2_active_and_1_kept(
        faq: FaqStore, tmp_path: Path) -> None:
    sha, groups = parse(write_xlsx(tmp_path / "faq.xlsx", ROWS))
    faq.import_version("dongnai", groups, "faq.xlsx", sha, "admin", T0)
    gen1 = faq.generation("dongnai")
    updated = [ROWS[1], [2, "Y tế", "Khám bệnh ngoài giờ ở đâu?", "Tại bệnh viện tỉnh.", "", ""]]
    sha2, groups2 = parse(write_xlsx(tmp_path / "faq-yte.xlsx", updated))
    infos = faq.import_version("dongnai", groups2, "faq-yte.xlsx", sha2, "lan",
                               T0 + dt.timedelta(days=1))
    assert [(i.field, i.version, i.unchanged) for i in infos] == [("health", 2, False)]
    health = faq.versions("dongnai", "health")
    assert [(v.version, v.active, v.source_name, v.imported_by) for v in health] == [
        (2, True, "faq-yte.xlsx", "lan"), (1, False, "faq.xlsx", "admin")]
    assert health[0].imported_at == T0 + dt.timedelta(days=1)
    # transport untouched (not in the second file); health now holds only the new sheet
    items = faq.active_items("dongnai")
    assert [(i.field, i.version, i.position, i.question) for i in items] == [
        ("health", 2, 1, "Gọi cấp cứu số nào?"), ("health", 2, 2, "Khám bệnh ngoài giờ ở đâu?"),
        ("transport", 1, 1, "Đổi GPLX ở đâu?")]
    # the question kept across versions keeps its key
    cat = faq.catalogue("dongnai")
    assert cat.for_field("health")[0].key == item_key("dongnai", "health", "Gọi cấp cứu số nào?")
    assert cat.generation == faq.generation("dongnai") != gen1


def test_given_same_file_again_when_imported_then_no_op_reported(
        faq: FaqStore, tmp_path: Path) -> None:
    sha, groups = parse(write_xlsx(tmp_path / "faq.xlsx", ROWS))
    faq.import_version("dongnai", groups, "faq.xlsx", sha, "admin", T0)
    gen = faq.generation("dongnai")
    again = faq.import_version("dongnai", groups, "faq (1).xlsx", sha, "other", T0)
    assert [(i.field, i.version, i.unchanged) for i in again] == [
        ("health", 1, True), ("transport", 1, True)]
    assert len(faq.versions("dongnai")) == 2 and faq.generation("dongnai") == gen


def test_given_two_versions_when_rolled_back_then_old_one_active_and_generation_changes(
        faq: FaqStore, tmp_path: Path) -> None:
    sha, groups = parse(write_xlsx(tmp_path / "a.xlsx", ROWS))
    faq.import_version("dongnai", groups, "a.xlsx", sha, "admin", T0)
    sha2, groups2 = parse(write_xlsx(tmp_path / "b.xlsx", ROWS[:1]))
    faq.import_version("dongnai", groups2, "b.xlsx", sha2, "admin", T0)
    gen2 = faq.generation("dongnai")

    info = faq.rollback("dongnai", "health", 1)
    assert (info.version, info.active, info.unchanged, info.item_count) == (1, True, False, 2)
    assert [(v.version, v.active) for v in faq.versions("dongnai", "health")] == [
        (2, False), (1, True)]
    assert [i.question for i in faq.active_items("dongnai", "health")] == [
        "Thẻ BHYT hết hạn thì làm sao?", "Gọi cấp cứu số nào?"]
    assert faq.generation("dongnai") != gen2
    assert faq.rollback("dongnai", "health", 1).unchanged
    with pytest.raises(FaqStoreError, match=r"no version 7 \(versions: 1, 2\)"):
        faq.rollback("dongnai", "health", 7)
    with pytest.raises(FaqStoreError, match="versions: none"):
        faq.rollback("dongnai", "humanitarian_aid", 1)
    # the file of version 2 again: version 2 is no longer active, so this is a new version 3
    infos = faq.import_version("dongnai", groups2, "b.xlsx", sha2, "admin", T0)
    assert [(i.version, i.unchanged) for i in infos] == [(3, False)]


def test_given_concurrent_imports_of_one_field_when_done_then_exactly_one_active(
        faq: FaqStore) -> None:
    counter = iter(range(100))
    lock = threading.Lock()
    outcomes: list[int] = []

    def one() -> None:
        with lock:
            n = next(counter)
        row = FaqRow("health", f"Câu hỏi {n}?", "Đáp.", None, None, None, "s", 2)
        try:
            infos = faq.import_version("dongnai", {"health": [row]}, f"{n}.csv", f"{n:064d}",
                                       None, T0)
        except FaqStoreError:
            return  # told to try again: acceptable, nothing half-done
        outcomes.append(infos[0].version)

    assert run_together(one, 6) == []
    versions = faq.versions("dongnai", "health")
    assert sorted(outcomes) == sorted(v.version for v in versions)
    assert len(set(outcomes)) == len(outcomes) >= 1
    assert [v.active for v in versions].count(True) == 1
    assert len(faq.active_items("dongnai")) == 1


# -- events and statistics -------------------------------------------------------------------


def path_of(*steps: tuple[str, dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for i, (event, extra) in enumerate(steps):
        at = (T0 + dt.timedelta(seconds=i)).astimezone(dt.timezone(dt.timedelta(hours=7)))
        out.append({"at": at.isoformat(), "event": event, **extra})
    return out


def test_given_calls_with_ivr_paths_when_stats_then_heard_yes_no_and_deflection(
        database_url: str, tmp_path: Path, make_record: MakeRecord) -> None:
    upgrade_head(database_url)
    faq, calls = FaqStore(database_url), CallRecordStore(database_url)
    try:
        sha, groups = parse(write_xlsx(tmp_path / "faq.xlsx", ROWS))
        faq.import_version("dongnai", groups, "faq.xlsx", sha, "admin", T0)
        bhyt = item_key("dongnai", "health", "Thẻ BHYT hết hạn thì làm sao?")
        c115 = item_key("dongnai", "health", "Gọi cấp cứu số nào?")
        paths = [
            path_of(("enter", {"node": "main"}), ("digit", {"digit": "1"}),
                    ("faq", {"faq": bhyt}), ("feedback", {"faq": bhyt, "answer": "yes"})),
            path_of(("faq", {"faq": bhyt}), ("feedback", {"answer": "no"}),  # key implied
                    ("faq", {"faq": c115}), ("feedback", {"faq": c115, "answer": "yes"})),
            path_of(("faq", {"faq": bhyt}), ("hangup", {})),
            path_of(("faq", {"faq": "ffffffffffffffff"})),  # a key no version holds
        ]
        recs = [make_record(n, ivr_path=p) for n, p in enumerate(paths, start=1)]
        assert [calls.insert_once(r) for r in recs] == [True] * 4
        assert [calls.insert_once(r) for r in recs] == [False] * 4  # replays: not recounted
        assert calls.get(recs[0].id).ivr_path == paths[0]  # type: ignore[union-attr]

        stats = {s.key: s for s in faq.stats("dongnai")}
        assert (stats[bhyt].heard, stats[bhyt].yes, stats[bhyt].no) == (3, 1, 1)
        assert stats[bhyt].deflection == pytest.approx(1 / 3)
        assert stats[bhyt].field == "health"
        assert stats[bhyt].question == "Thẻ BHYT hết hạn thì làm sao?"
        assert (stats[c115].heard, stats[c115].yes, stats[c115].deflection) == (1, 1, 1.0)
        unknown = stats["ffffffffffffffff"]
        assert (unknown.heard, unknown.field, unknown.question) == (1, None, None)
        gplx = item_key("dongnai", "transport", "Đổi GPLX ở đâu?")
        assert (stats[gplx].heard, stats[gplx].deflection) == (0, None)  # never heard, listed
        ordered = faq.stats("dongnai")
        assert ordered[0].key == bhyt and [s.heard for s in ordered] == sorted(
            (s.heard for s in ordered), reverse=True)
        assert faq.stats("thanhhoa") == []
        assert {s.key for s in faq.stats()} == set(stats)
        # since: only the events of steps at or after it (each path starts at T0)
        later = {s.key: s for s in faq.stats("dongnai", since=T0 + dt.timedelta(seconds=2))}
        assert (later[bhyt].heard, later[bhyt].yes, later[bhyt].no, later[c115].heard) == (
            1, 1, 0, 1)
    finally:
        faq.close()
        calls.close()


def test_given_new_version_when_stats_then_counts_survive_and_latest_question_shown(
        database_url: str, tmp_path: Path, make_record: MakeRecord) -> None:
    upgrade_head(database_url)
    faq, calls = FaqStore(database_url), CallRecordStore(database_url)
    try:
        sha, groups = parse(write_xlsx(tmp_path / "a.xlsx", ROWS))
        faq.import_version("dongnai", groups, "a.xlsx", sha, "admin", T0)
        key = item_key("dongnai", "health", "Gọi cấp cứu số nào?")
        calls.insert_once(make_record(1, ivr_path=path_of(("faq", {"faq": key}))))
        # Version 2 spells the question with other case and spaces (and numbers it oddly:
        # STT is not a code column)
        v2: list[list[object]] = [["YT-115", "Y tế", "gọi  CẤP CỨU số nào?", "Gọi 115.", "", ""]]
        sha2, groups2 = parse(write_xlsx(tmp_path / "b.xlsx", v2, title=None))
        faq.import_version("dongnai", groups2, "b.xlsx", sha2, "admin", T0)
        calls.insert_once(make_record(2, ivr_path=path_of(("faq", {"faq": key}))))
        stat = next(s for s in faq.stats("dongnai") if s.key == key)
        assert (stat.heard, stat.question, stat.code) == (2, "gọi CẤP CỨU số nào?", None)
    finally:
        faq.close()
        calls.close()


def test_given_malformed_ivr_steps_when_record_inserted_then_record_kept_and_steps_skipped(
        database_url: str, make_record: MakeRecord, caplog: pytest.LogCaptureFixture) -> None:
    upgrade_head(database_url)
    faq, calls = FaqStore(database_url), CallRecordStore(database_url)
    try:
        good = item_key("dongnai", "health", "Hỏi?")
        steps = [
            {"at": "2026-11-23T10:00:00+07:00", "event": "faq", "faq": "x" * 40},  # too long
            {"at": "2026-11-23T10:00:01", "event": "faq", "faq": good},  # naive time
            {"at": "2026-11-23T10:00:02+07:00", "event": "feedback", "answer": "maybe"},
            {"at": "2026-11-23T10:00:03+07:00", "event": "feedback", "answer": "yes"},  # no key
            {"at": "2026-11-23T10:00:04+07:00", "event": "faq", "faq": good},
        ]
        assert calls.insert_once(make_record(1, ivr_path=steps))
        (stat,) = faq.stats("dongnai")
        assert (stat.key, stat.heard, stat.yes) == (good, 1, 0)
        assert caplog.text.count("skipped") == 4
    finally:
        faq.close()
        calls.close()


def test_given_sheet_rows_when_parsed_from_plain_sheet_then_store_accepts_them(
        faq: FaqStore) -> None:
    rows = (("Câu hỏi", "Trả lời", "Mã"),) + tuple(
        (f"Câu hỏi số {i}?", f"Trả lời số {i}.", f"C{i}") for i in range(1, 1201))
    result = parse_faq("big.csv", [Sheet("", rows)], DEFAULT_FIELDS, "other")
    seen: list[int] = []
    faq.import_version("dongnai", result.by_field(), "big.csv", "b" * 64, None, T0, seen.append)
    assert seen == [500, 1000, 1200]
    cat = faq.catalogue("dongnai")
    assert len(cat) == 1200 and cat.by_code("c1200") is cat.for_field("other")[-1]
