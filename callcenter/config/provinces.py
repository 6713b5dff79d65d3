"""Vietnam's 63 provinces and centrally-run cities with their telephone area codes; pure data.

The organisation of 63 units (58 provinces, 5 centrally-run cities) and the fixed-line area
codes after the 2017 renumbering (Thông tư 15/2014/TT-BTTTT: 0251 Đồng Nai, 0237 Thanh Hóa,
024 Hà Nội, 028 Thành phố Hồ Chí Minh ...). A province's 1022 hotline is reached through its
own trunk number, the area code followed by 1022 (``02511022``, ``0281022``); the national
config (``callcenter config provinces``, callcenter/config/national.py) is built from here.

``code_prefix``: the ticket codes' prefix (``DN-20261123-0042``), unique over the 63 (Đồng Nai
keeps the ``DN`` of config/hotline.yaml; Đà Nẵng is ``DNG``). ``id``: the tenant id, the
name without diacritics or spaces. Checked by tests/unit/config/test_provinces.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Province:
    """One of the 63 first-level units: a province (tỉnh) or a centrally-run city."""

    id: str  # tenant id: a-z only
    name: str  # Vietnamese, with diacritics: "Đồng Nai"
    area_code: str  # national form with the trunk prefix 0: "0251", "028"
    city: bool  # a centrally-run city (thành phố trực thuộc trung ương)
    code_prefix: str  # ticket codes: "DN"

    @property
    def number(self) -> str:
        """The province's own 1022 number: area code then 1022 ("02511022")."""
        return f"{self.area_code}1022"

    @property
    def title(self) -> str:
        """How the hotline names it to callers: "tỉnh Đồng Nai", "thành phố Hà Nội"."""
        return f"{'thành phố' if self.city else 'tỉnh'} {self.name}"


def _p(id_: str, name: str, area_code: str, prefix: str, city: bool = False) -> Province:
    return Province(id_, name, area_code, city, prefix)


# North to south, region by region.
PROVINCES: tuple[Province, ...] = (
    # Đồng bằng sông Hồng
    _p("hanoi", "Hà Nội", "024", "HN", city=True),
    _p("haiphong", "Hải Phòng", "0225", "HP", city=True),
    _p("quangninh", "Quảng Ninh", "0203", "QN"),
    _p("haiduong", "Hải Dương", "0220", "HD"),
    _p("hungyen", "Hưng Yên", "0221", "HY"),
    _p("bacninh", "Bắc Ninh", "0222", "BN"),
    _p("vinhphuc", "Vĩnh Phúc", "0211", "VP"),
    _p("hanam", "Hà Nam", "0226", "HNA"),
    _p("namdinh", "Nam Định", "0228", "ND"),
    _p("thaibinh", "Thái Bình", "0227", "TB"),
    _p("ninhbinh", "Ninh Bình", "0229", "NB"),
    # Trung du và miền núi phía Bắc
    _p("hagiang", "Hà Giang", "0219", "HG"),
    _p("caobang", "Cao Bằng", "0206", "CB"),
    _p("backan", "Bắc Kạn", "0209", "BK"),
    _p("tuyenquang", "Tuyên Quang", "0207", "TQ"),
    _p("laocai", "Lào Cai", "0214", "LC"),
    _p("dienbien", "Điện Biên", "0215", "DB"),
    _p("laichau", "Lai Châu", "0213", "LCH"),
    _p("sonla", "Sơn La", "0212", "SL"),
    _p("yenbai", "Yên Bái", "0216", "YB"),
    _p("hoabinh", "Hòa Bình", "0218", "HB"),
    _p("thainguyen", "Thái Nguyên", "0208", "TN"),
    _p("langson", "Lạng Sơn", "0205", "LS"),
    _p("bacgiang", "Bắc Giang", "0204", "BG"),
    _p("phutho", "Phú Thọ", "0210", "PT"),
    # Bắc Trung Bộ và duyên hải miền Trung
    _p("thanhhoa", "Thanh Hóa", "0237", "TH"),
    _p("nghean", "Nghệ An", "0238", "NA"),
    _p("hatinh", "Hà Tĩnh", "0239", "HT"),
    _p("quangbinh", "Quảng Bình", "0232", "QB"),
    _p("quangtri", "Quảng Trị", "0233", "QT"),
    _p("thuathienhue", "Thừa Thiên Huế", "0234", "TTH"),
    _p("danang", "Đà Nẵng", "0236", "DNG", city=True),
    _p("quangnam", "Quảng Nam", "0235", "QNA"),
    _p("quangngai", "Quảng Ngãi", "0255", "QNG"),
    _p("binhdinh", "Bình Định", "0256", "BD"),
    _p("phuyen", "Phú Yên", "0257", "PY"),
    _p("khanhhoa", "Khánh Hòa", "0258", "KH"),
    _p("ninhthuan", "Ninh Thuận", "0259", "NT"),
    _p("binhthuan", "Bình Thuận", "0252", "BTH"),
    # Tây Nguyên
    _p("kontum", "Kon Tum", "0260", "KT"),
    _p("gialai", "Gia Lai", "0269", "GL"),
    _p("daklak", "Đắk Lắk", "0262", "DLK"),
    _p("daknong", "Đắk Nông", "0261", "DKN"),
    _p("lamdong", "Lâm Đồng", "0263", "LD"),
    # Đông Nam Bộ
    _p("binhphuoc", "Bình Phước", "0271", "BP"),
    _p("tayninh", "Tây Ninh", "0276", "TNI"),
    _p("binhduong", "Bình Dương", "0274", "BDG"),
    _p("dongnai", "Đồng Nai", "0251", "DN"),
    _p("bariavungtau", "Bà Rịa - Vũng Tàu", "0254", "BRVT"),
    _p("hochiminh", "Hồ Chí Minh", "028", "HCM", city=True),
    # Đồng bằng sông Cửu Long
    _p("longan", "Long An", "0272", "LA"),
    _p("tiengiang", "Tiền Giang", "0273", "TG"),
    _p("bentre", "Bến Tre", "0275", "BT"),
    _p("travinh", "Trà Vinh", "0294", "TV"),
    _p("vinhlong", "Vĩnh Long", "0270", "VL"),
    _p("dongthap", "Đồng Tháp", "0277", "DT"),
    _p("angiang", "An Giang", "0296", "AG"),
    _p("kiengiang", "Kiên Giang", "0297", "KG"),
    _p("cantho", "Cần Thơ", "0292", "CT", city=True),
    _p("haugiang", "Hậu Giang", "0293", "HGI"),
    _p("soctrang", "Sóc Trăng", "0299", "ST"),
    _p("baclieu", "Bạc Liêu", "0291", "BL"),
    _p("camau", "Cà Mau", "0290", "CM"),
)


def by_code(code: str) -> Province | None:
    """The province with this area code ("0251", "251", "28") or tenant id, or None."""
    wanted = code.strip().lower()
    for p in PROVINCES:
        if wanted in (p.id, p.area_code, p.area_code[1:]):
            return p
    return None
