"""Parsing a tenant's ``ivr:`` section into an ``IvrTree`` (pure; see callcenter.domain.ivr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcenter.domain.config_base import BaseParser

if TYPE_CHECKING:
    from callcenter.domain.ivr import IvrTree
    from callcenter.domain.model import Field


def parse_ivr(p: BaseParser, value: object, key: str,
              fields: tuple[Field, ...]) -> IvrTree | None:
    """Validate the menu tree; errors go to ``p`` and name the node."""
    p.error(key, value, "IVR menus are not supported yet")
    return None
