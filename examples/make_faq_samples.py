"""Write the sample FAQ sheets examples/faq-dongnai.xlsx and examples/faq-dongnai.csv.

The sheet looks like what a provincial department sends: a title merged across the table,
a note, then Vietnamese headers ``STT | Lĩnh vực | Câu hỏi | Trả lời | Từ khóa | Đơn vị``.
The questions and answers were written for this project to exercise the importer and the
IVR; they illustrate the format and are not official guidance.

Run: ``.venv/bin/python examples/make_faq_samples.py``. The output is byte-for-byte the same
on every run (fixed timestamps), so a re-import of an unchanged sample is a no-op.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

HERE = Path(__file__).resolve().parent
TITLE = "DANH MỤC CÂU HỎI THƯỜNG GẶP - TỔNG ĐÀI 1022 TỈNH ĐỒNG NAI"
NOTE = "(Dữ liệu minh họa cho phần mềm Tổng đài 1022, không phải văn bản hướng dẫn chính thức)"
HEADERS = ("STT", "Lĩnh vực", "Câu hỏi", "Trả lời", "Từ khóa", "Đơn vị")
FIXED_TIME = (2026, 1, 1, 0, 0, 0)

ITEMS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Y tế",
        "Thẻ bảo hiểm y tế hết hạn thì gia hạn ở đâu?",
        "Người dân gia hạn thẻ bảo hiểm y tế tại đại lý thu bảo hiểm xã hội ở xã, phường hoặc "
        "tại cơ quan bảo hiểm xã hội cấp huyện. Khi đi, xin mang theo căn cước công dân. "
        "Sau khi đóng tiền, quý khách có thể tra cứu hạn thẻ mới trên ứng dụng VssID.",
        "bảo hiểm y tế, BHYT, gia hạn thẻ",
        "Bảo hiểm xã hội tỉnh",
    ),
    (
        "Y tế",
        "Khi có người cần cấp cứu thì gọi số nào?",
        "Xin gọi ngay số 115, cuộc gọi miễn phí. Hãy nói rõ địa chỉ, tình trạng người bệnh "
        "và số điện thoại liên hệ. Trong khi chờ xe, không tự ý di chuyển người bị chấn "
        "thương nặng.",
        "cấp cứu, 115, xe cứu thương",
        "Sở Y tế",
    ),
    (
        "An sinh xã hội",
        "Hồ sơ đề nghị trợ cấp xã hội hằng tháng nộp ở đâu?",
        "Hồ sơ nộp tại Ủy ban nhân dân xã, phường nơi người đề nghị cư trú. Hồ sơ gồm tờ "
        "khai theo mẫu và bản sao giấy tờ tùy thân. Công chức phụ trách lao động, thương binh "
        "và xã hội của xã hướng dẫn kê khai miễn phí.",
        "trợ cấp xã hội, bảo trợ xã hội",
        "Sở Lao động - Thương binh và Xã hội",
    ),
    (
        "An sinh xã hội",
        "Gia đình bị thiệt hại do thiên tai, hỏa hoạn được hỗ trợ thế nào?",
        "Hộ gia đình bị thiệt hại báo ngay cho trưởng ấp, khu phố hoặc Ủy ban nhân dân xã, "
        "phường. Địa phương lập danh sách, xác minh thiệt hại và đề nghị mức hỗ trợ theo quy "
        "định. Hỗ trợ khẩn cấp về lương thực được xem xét trước tiên.",
        "thiên tai, hỏa hoạn, hỗ trợ khẩn cấp",
        "Sở Lao động - Thương binh và Xã hội",
    ),
    (
        "Giao thông vận tải",
        "Đổi giấy phép lái xe ở đâu?",
        "Quý khách có thể nộp hồ sơ đổi giấy phép lái xe trực tuyến trên Cổng Dịch vụ công "
        "quốc gia hoặc nộp trực tiếp tại bộ phận một cửa ở TP. Biên Hòa. Lệ phí theo biểu "
        "phí hiện hành, ví dụ 135.000 đồng cho một lần đổi. Kết quả có thể nhận qua bưu điện "
        "nếu quý khách đăng ký.",
        "giấy phép lái xe, GPLX, đổi bằng lái",
        "Sở Giao thông vận tải",
    ),
    (
        "Giao thông vận tải",
        "Muốn phản ánh đèn tín hiệu giao thông bị hỏng thì làm thế nào?",
        "Xin cho biết vị trí cụ thể: giao lộ, tên đường và phường, xã. Tổng đài chuyển thông "
        "tin đến đơn vị quản lý đường bộ để kiểm tra, sửa chữa. Nếu đang gây nguy hiểm, xin "
        "báo ngay cho cảnh sát giao thông gần nhất.",
        "đèn tín hiệu, đèn giao thông, hư hỏng",
        "Sở Giao thông vận tải",
    ),
    (
        "Thủ tục hành chính",
        "Đăng ký khai sinh cho con cần giấy tờ gì?",
        "Cần tờ khai theo mẫu, giấy chứng sinh của cơ sở y tế và giấy tờ tùy thân của người "
        "đi đăng ký. Thời hạn đăng ký khai sinh là 60 ngày kể từ ngày sinh. Quý khách có thể "
        "nộp trực tuyến trên Cổng Dịch vụ công hoặc tại Ủy ban nhân dân xã, phường.",
        "khai sinh, hộ tịch",
        "Sở Tư pháp",
    ),
    (
        "Thủ tục hành chính",
        "Làm sao biết hồ sơ đã nộp đang được giải quyết đến đâu?",
        "Quý khách dùng mã số hồ sơ ghi trên giấy tiếp nhận để tra cứu trên Cổng Dịch vụ "
        "công của tỉnh. Quý khách cũng có thể gọi Tổng đài 1022 và đọc mã số hồ sơ để được "
        "hỗ trợ. Hồ sơ trễ hẹn thì cơ quan giải quyết phải có văn bản xin lỗi và hẹn lại.",
        "tra cứu hồ sơ, trễ hẹn, một cửa",
        "Văn phòng Ủy ban nhân dân tỉnh",
    ),
)


def rows() -> list[tuple[object, ...]]:
    """The table under the title: header, then one numbered row per item."""
    return [HEADERS, *((n, *item) for n, item in enumerate(ITEMS, start=1))]


def write_xlsx(path: Path) -> None:
    """The sheet as a department would format it (merged title, wrapped answers)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Hỏi đáp 1022"
    ws.append([TITLE])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
    ws["A1"].font = Font(bold=True, size=13)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append([NOTE])
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(HEADERS))
    ws["A2"].alignment = Alignment(horizontal="center")
    for row in rows():
        ws.append(list(row))
    for cell in ws[3]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEF", (6, 20, 40, 80, 30, 30), strict=True):
        ws.column_dimensions[letter].width = width
    for row in ws.iter_rows(min_row=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(_reproducible(buffer.getvalue()))


def _reproducible(xlsx: bytes) -> bytes:
    """The same workbook with fixed zip and document timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*",
                              rb"\g<1>2026-01-01T00:00:00Z", data)
            dst.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), data,
                         compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def write_csv(path: Path) -> None:
    """The same table as CSV, UTF-8 with BOM (what Excel writes as "CSV UTF-8")."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([TITLE] + [""] * (len(HEADERS) - 1))
    writer.writerows(rows())
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))


def main() -> None:
    """Write both samples next to this script."""
    write_xlsx(HERE / "faq-dongnai.xlsx")
    write_csv(HERE / "faq-dongnai.csv")
    print(f"wrote {HERE / 'faq-dongnai.xlsx'} and {HERE / 'faq-dongnai.csv'}")


if __name__ == "__main__":
    main()
