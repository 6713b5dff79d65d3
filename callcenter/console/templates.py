"""Jinja2 templates of the console's pages (kept as module text so they ship with the code).

Rendered with autoescaping on: every ``{{ value }}`` is HTML-escaped.
"""

from __future__ import annotations

PUBLIC_PAGE = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Công khai kết quả giải quyết phản ánh, kiến nghị — Tổng đài 1022 {{ tenant.name }}</title>
<style>
 body { font-family: "Liberation Sans", "DejaVu Sans", Arial, sans-serif; margin: 1.5rem auto;
        max-width: 60rem; padding: 0 1rem; line-height: 1.45; color: #1a1a1a; }
 h1 { font-size: 1.4rem; } form { margin: 1rem 0; display: flex; flex-wrap: wrap; gap: .75rem;
        align-items: end; } label { display: flex; flex-direction: column; font-size: .9rem; }
 select, input, button { font: inherit; padding: .25rem; }
 article { border-top: 1px solid #ccc; padding: .75rem 0; }
 .meta { color: #555; font-size: .85rem; } .error { color: #a00; }
 h2 { font-size: 1rem; margin: .5rem 0 .25rem; } p { white-space: pre-wrap; margin: 0; }
</style>
</head>
<body>
<h1>Công khai kết quả giải quyết phản ánh, kiến nghị<br>Tổng đài 1022 — {{ tenant.name }}</h1>
<form method="get" action="">
 <label>Lĩnh vực
  <select name="field">
   <option value="">Tất cả</option>
   {% for id, name in fields.items() %}
   <option value="{{ id }}"{% if f.field == id %} selected{% endif %}>{{ name }}</option>
   {% endfor %}
  </select>
 </label>
 <label>Đơn vị giải quyết
  <select name="unit">
   <option value="">Tất cả</option>
   {% for id, name in units.items() %}
   <option value="{{ id }}"{% if f.unit == id %} selected{% endif %}>{{ name }}</option>
   {% endfor %}
  </select>
 </label>
 <label>Tháng
  <input type="month" name="month" value="{{ f.month or '' }}">
 </label>
 <button type="submit">Lọc</button>
</form>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<p class="meta">{{ rows|length }} phản ánh, kiến nghị đã được giải quyết.
 Thông tin cá nhân (họ tên, số điện thoại, số giấy tờ, địa chỉ) đã được ẩn.</p>
{% for r in rows %}
<article>
 <div class="meta">Mã {{ r.code }} · Lĩnh vực: {{ r.field }}{% if r.unit %} ·
  Đơn vị: {{ r.unit }}{% endif %} · Tiếp nhận: {{ r.received }}{% if r.resolved %} ·
  Giải quyết: {{ r.resolved }}{% endif %}</div>
 <h2>Nội dung phản ánh, kiến nghị</h2>
 <p>{{ r.question }}</p>
 <h2>Kết quả giải quyết</h2>
 <p>{{ r.answer }}</p>
</article>
{% else %}
<p>Không có phản ánh, kiến nghị nào phù hợp với bộ lọc.</p>
{% endfor %}
</body>
</html>
"""
