"""The national config: one tenant per province (callcenter/config/provinces.py); pure.

``national_config(...)`` builds the plain data a hotline.yaml holds (what ``yaml.safe_load``
would return) and ``national_yaml(...)`` its text, as ``callcenter config provinces`` writes
it. Each province gets:

* its own number, the area code then 1022 (``02511022``, ``0281022``): the DID its trunk
  delivers; the bare short code ``1022`` can reach one tenant only (``short_code``);
* a day/night line pool (07:00-18:00 / 18:00-07:00, ``day_lines``/``night_lines``);
* a greeting naming the province, and a small IVR: FAQ on health, social security and
  administrative procedures, 9 (or 0) for an operator. The menu texts are the same for every
  province, so their synthesised speech is made once and shared (the prompt cache is keyed
  by text); only the 63 greetings differ;
* ticket codes with the province's own prefix (``TH-20261123-0042``); the built-in fields, no
  units, operators or places: each province adds its own (see config/hotline.yaml).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from callcenter.config.provinces import PROVINCES, Province, by_code

DAY_LINES = 15
NIGHT_LINES = 2
DAY_START, DAY_END = "07:00", "18:00"
SHORT_CODE = "1022"


def select(codes: Iterable[str] | None) -> list[Province]:
    """The provinces named by area code ("0251", "251") or id, in the table's order; all when
    ``codes`` is None. An unknown code raises ValueError naming it."""
    if codes is None:
        return list(PROVINCES)
    wanted: set[str] = set()
    for code in codes:
        p = by_code(code)
        if p is None:
            raise ValueError(f"unknown province {code!r}: expected an area code such as 0251 "
                             f"or 028, or a tenant id such as dongnai")
        wanted.add(p.id)
    return [p for p in PROVINCES if p.id in wanted]


def ivr_tree() -> dict[str, Any]:
    """The small IVR every province starts with (the same texts everywhere)."""
    return {
        "root": "main",
        "operator": "operator",
        "timeout": 6,
        "retries": 3,
        "fallback": "operator",
        "nodes": {
            "main": {
                "type": "menu",
                "prompt": ("Để nghe giải đáp về y tế, xin bấm phím 1. "
                           "Về an sinh xã hội, bấm phím 2. "
                           "Về thủ tục hành chính, bấm phím 3. "
                           "Để gặp tổng đài viên, bấm phím 9."),
                "options": {"1": "faq_health", "2": "faq_social", "3": "faq_admin",
                            "9": "operator"},
            },
            "faq_health": {"type": "faq", "field": "health",
                           "prompt": "Các câu hỏi thường gặp về y tế."},
            "faq_social": {"type": "faq", "field": "social_security",
                           "prompt": "Các câu hỏi thường gặp về an sinh xã hội."},
            "faq_admin": {"type": "faq", "field": "admin_procedures",
                          "prompt": "Các câu hỏi thường gặp về thủ tục hành chính."},
            "operator": {"type": "operator",
                         "prompt": "Xin quý khách vui lòng giữ máy, tổng đài viên sẽ trả lời "
                                   "trong giây lát."},
        },
    }


def greeting(p: Province) -> str:
    """What a caller of the province hears first."""
    return (f"Tổng đài 1022 {p.title} xin kính chào quý khách. "
            f"Cuộc gọi của quý khách đang được kết nối, xin vui lòng chờ trong giây lát.")


def tenant_entry(p: Province, day_lines: int = DAY_LINES, night_lines: int = NIGHT_LINES,
                 short_code: bool = False) -> dict[str, Any]:
    """One province as a ``tenants:`` item."""
    return {
        "id": p.id,
        "name": p.name,
        "timezone": "Asia/Ho_Chi_Minh",
        "numbers": ([SHORT_CODE] if short_code else []) + [p.number],
        "shifts": [
            {"name": "day", "start": DAY_START, "end": DAY_END, "lines": day_lines},
            {"name": "night", "start": DAY_END, "end": DAY_START, "lines": night_lines},
        ],
        "prompts": {"greeting": greeting(p)},
        "ivr": ivr_tree(),
        "tickets": {"code_prefix": p.code_prefix},
    }


def national_config(codes: Iterable[str] | None = None, *, day_lines: int = DAY_LINES,
                    night_lines: int = NIGHT_LINES,
                    short_code: str | None = None) -> dict[str, Any]:
    """The config data for these provinces (all 63 by default). ``short_code``: the area code
    or id of the one province the bare ``1022`` reaches (None: none)."""
    provinces = select(codes)
    short = by_code(short_code) if short_code is not None else None
    if short_code is not None and (short is None or short not in provinces):
        raise ValueError(f"--short-code {short_code!r}: expected one of the chosen provinces")
    return {"tenants": [tenant_entry(p, day_lines, night_lines, short_code=p == short)
                        for p in provinces]}


class _Dumper(yaml.SafeDumper):
    """Every tenant written out in full (no &anchors), values that are not plain words quoted:
    numbers and times must stay strings (YAML 1.1 reads 02511022 as octal, 18:00 as 1080)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    plain = value.isascii() and value.replace("_", "").isalpha() and value.islower()
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else '"')


_Dumper.add_representer(str, _str)

HEADER = """\
# Tổng đài 1022: the national config, one tenant per province ({count} of the 63),
# written by `callcenter config provinces` (callcenter/config/national.py). Check it with
# `callcenter check-config FILE`. The service, trunk and the rest take their defaults
# (loopback): copy those sections from config/hotline.yaml to change them.
# Each province: its own number (area code + 1022), a day/night line pool, a greeting and
# a small IVR; add its operators, units and places as config/hotline.yaml shows for Đồng Nai.
"""


def national_yaml(codes: Sequence[str] | None = None, **options: Any) -> str:
    """``national_config`` as hotline.yaml text, with a header saying what it is."""
    data = national_config(codes, **options)
    body = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                     width=1000)  # a prompt on one line, not folded
    return HEADER.format(count=len(data["tenants"])) + body
