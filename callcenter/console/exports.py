"""The console's xlsx exports, one way: rows fetched in batches up to a cap (a note row says
what was left out) and the workbook sent as a private download. Used by the ticket, call and
user lists; the workbook itself is ``tickets.reports.xlsx_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from aiohttp import web

from callcenter.console import listing as ls
from callcenter.console.auth import in_thread
from callcenter.console.context import Shared
from callcenter.tickets.reports import Table, xlsx_bytes

XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_T = TypeVar("_T")


async def fetch_capped(app: Shared, find: Callable[..., Sequence[_T]], *args: Any,
                       batch: int, cap: int = ls.EXPORT_CAP, **filters: Any) -> list[_T]:
    """Up to ``cap`` rows of ``find(*args, limit=, offset=, **filters)``, ``batch`` at a time
    (each batch in the console's pool, so one export never holds a connection long)."""
    rows: list[_T] = []
    while len(rows) < cap:
        got = await in_thread(app, find, *args, limit=min(batch, cap - len(rows)),
                              offset=len(rows), **filters)
        rows += got
        if len(got) < batch:
            break
    return rows


def numbered(rows: Sequence[dict[str, Any]], total: int, note_column: str,
             noun: str, order: str = "") -> tuple[dict[str, Any], ...]:
    """The rows numbered from 1 (``stt``), and a note row in ``note_column`` when the cap
    left some of ``total`` out."""
    out = [{"stt": i, **row} for i, row in enumerate(rows, 1)]
    note = ls.export_note(len(out), total, noun, order)
    if note is not None:
        out.append({note_column: note})
    return tuple(out)


async def xlsx_response(app: Shared, tables: Sequence[Table],
                        filename: str) -> web.Response:
    """The workbook of ``tables`` (built in the console's pool) as a private download named
    ``filename`` (ASCII: ids and dates)."""
    body = await in_thread(app, xlsx_bytes, tables)
    return web.Response(body=body, content_type=XLSX_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store"})
