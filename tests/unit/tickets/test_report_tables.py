"""xlsx and CSV tables (callcenter.tickets.reports): text from citizens never becomes a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from callcenter.tickets.reports import Column, Table, inert, table_csv, xlsx_bytes

HOSTILE = ['=HYPERLINK("http://x.example","bấm vào đây")', "+84912345678", "-1+1", "@SUM(A1)",
           "\t=1+1"]


def _table(values: list[str]) -> Table:
    return Table(sheet="Phiếu", title="Danh sách phiếu", subtitle="thử",
                 columns=(Column("content", "Nội dung", 40),
                          Column("n", "Số", 8, "int"),
                          Column("at", "Lúc", 18, "datetime")),
                 rows=tuple({"content": v, "n": -3,
                             "at": dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)}
                            for v in values))


def test_given_formula_like_text_when_xlsx_then_cells_are_text_as_typed() -> None:
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(xlsx_bytes([_table([*HOSTILE, "Đường ngập"])]))).active
    cells = [ws.cell(row=5 + i, column=1) for i in range(len(HOSTILE) + 1)]
    assert [c.value for c in cells] == [*HOSTILE, "Đường ngập"]
    assert {c.data_type for c in cells} == {"s"}  # no formula among them
    assert ws.cell(row=5, column=2).value == -3  # numbers stay numbers
    assert ws.cell(row=5, column=3).value == dt.datetime(2026, 11, 23, 9, 0)  # local wall clock


def test_given_formula_like_text_when_csv_then_quoted_with_an_apostrophe() -> None:
    rows = list(csv.reader(io.StringIO(table_csv(_table([*HOSTILE, "Đường ngập"])))))
    assert [r[0] for r in rows[1:]] == [*("'" + v for v in HOSTILE), "Đường ngập"]
    assert rows[1][1] == "-3"  # a negative number is no text to defuse


@pytest.mark.parametrize(("text", "shown"), [("=1", "'=1"), ("a=1", "a=1"), ("", "")])
def test_given_text_when_made_inert_then_only_a_leading_sign_is_escaped(
        text: str, shown: str) -> None:
    assert inert(text) == shown
