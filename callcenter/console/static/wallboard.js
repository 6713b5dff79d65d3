// The supervisors' wallboard: one websocket, the server pushes the whole state (see
// callcenter/wallboard/http.py for its shape). Vanilla JS, no build step; console.js first.
"use strict";
(function () {
  const STALE_AFTER_MS = 12000;   // the server sends at least every 5 s
  const SESSION_ENDED = 4401;     // the server closed: logged out or expired
  const SVG = "http://www.w3.org/2000/svg";
  const body = document.body;
  const tz = body.dataset.timezone || "Asia/Ho_Chi_Minh";
  let state = null, receivedAt = 0, lastMessageAt = 0, socket = null, attempt = 0, ok = false;

  const {el, duration} = Hotline;
  const $ = (id) => document.getElementById(id);
  const clockFmt = Hotline.clockFormat(tz);
  const dueFmt = new Intl.DateTimeFormat("vi-VN", {timeZone: tz, hour: "2-digit",
    minute: "2-digit", day: "2-digit", month: "2-digit", hour12: false});

  function text(id, value) { const el = $(id); if (el) el.textContent = value; }
  function seconds(v) { return v === null || v === undefined ? "–" : `${Math.round(v)} giây`; }
  function elapsed() { return state ? (Date.now() - receivedAt) / 1000 : 0; }

  function setStale(stale) { Hotline.showStale(body, stale); }

  function renderLines(s) {
    const lines = s.lines, limit = lines.limit;
    text("lines-in-use", lines.in_use);
    text("lines-limit", limit === null ? "–" : limit);
    const pct = limit ? Math.min(100, (100 * lines.in_use) / limit) : (lines.in_use ? 100 : 0);
    const bar = $("lines-bar");
    bar.style.width = pct + "%";
    bar.classList.toggle("full", lines.full);
    bar.classList.toggle("high", !lines.full && pct >= 80);
    bar.dataset.full = lines.full ? "1" : "0";
    $("lines-card").classList.toggle("full", lines.full);
    const sh = s.shift;
    text("shift", sh ? `${sh.name} (${sh.start}–${sh.end}, ${sh.lines} line)` +
      (sh.override ? ` · ${sh.override}` : "") : "–");
  }

  function renderStaffing(s) {  // the banner's words live in the page
    const st = s.staffing, banner = $("understaffed-banner");
    const under = Boolean(st && st.understaffed);
    if (st) { text("staff-logged-in", st.logged_in); text("staff-minimum", st.minimum); }
    banner.hidden = !under;
    banner.dataset.understaffed = under ? "1" : "0";
  }

  function renderQueue(s) {
    const q = s.queue, extra = elapsed();
    text("waiting-count", q.queued);
    text("longest-wait", q.queued ? duration(q.longest_wait_s + extra) : "–");
    const list = $("waiting-calls");
    list.replaceChildren(...q.calls.map((c) => {
      const li = el("li", c.urgent ? "urgent" : "",
        `${c.caller} — ${duration(c.wait_s + extra)}` + (c.urgent ? " · khẩn" : "") +
        (c.state === "ringing" ? " · đang đổ chuông" : ""));
      return li;
    }));
  }

  function renderAgents(s) {
    const extra = elapsed();
    const counts = $("agent-counts");
    const labels = {};
    s.agents.forEach((a) => { labels[a.state] = a.state_label; });
    counts.replaceChildren(...Object.entries(s.agent_counts).filter(([, n]) => n > 0)
      .map(([st, n]) => el("span", "state st-" + st, `${labels[st] || st}: ${n}`)));
    $("agents").replaceChildren(...s.agents.map((a) => {
      const tr = el("tr");
      tr.dataset.extension = a.extension;
      tr.dataset.state = a.state;
      tr.append(el("td", "", a.extension), el("td", "", a.name || ""));
      const st = el("td");
      st.append(el("span", "state st-" + a.state,
        a.state_label + (a.reason_label ? ` (${a.reason_label})` : "")));
      if (a.reachable === false) st.append(" ", el("span", "unreachable", "mất kết nối máy"));
      tr.append(st, el("td", "", duration(a.time_in_state_s + extra)), listenCell(a));
      return tr;
    }));
  }

  // ---- listen, whisper, barge (POST /api/v1/calls/{id}/listen with the session) -----------
  const LISTEN_MODES = [["listen", "Nghe"], ["whisper", "Nhắc"], ["barge", "Tham gia"]];
  const LISTEN_DONE = {listen: "nghe", whisper: "nhắc điện thoại viên trong",
                       barge: "tham gia"};
  const EXT_KEY = "hotline.listen.extension";
  let listening = null;  // {callId, extension, mode} of the listen-in started here
  const extInput = $("listen-ext");
  if (extInput) {
    extInput.value = localStorage.getItem(EXT_KEY) || "";
    extInput.addEventListener("change", () => localStorage.setItem(EXT_KEY, extInput.value));
  }

  function listenStatus(message, error) {
    const st = $("listen-status");
    st.textContent = message;
    st.classList.toggle("error", Boolean(error));
    $("listen-stop").hidden = !listening;
  }

  async function listenApi(method, callId, bodyJson) {
    const resp = await Hotline.send(method,
      `/api/v1/calls/${encodeURIComponent(callId)}/listen`, bodyJson);
    const data = await Hotline.jsonOf(resp);
    if (!resp.ok) {
      const msg = data && data.error ? data.error.message : `Lỗi ${resp.status}`;
      throw new Error(resp.status === 401 ? "Phiên đăng nhập đã hết hạn." : msg);
    }
    return data;
  }

  async function startListen(a, mode, label) {
    const ext = (extInput.value || "").trim();
    if (!/^[0-9]{2,6}$/.test(ext)) {
      listenStatus("Nhập máy lẻ của bạn (2–6 chữ số) trước khi nghe xen.", true);
      extInput.focus();
      return;
    }
    localStorage.setItem(EXT_KEY, ext);
    listenStatus(`${label}: đang gọi máy lẻ ${ext}…`, false);
    try {
      await listenApi("POST", a.call_id, {extension: ext, mode});
      listening = {callId: a.call_id, extension: ext, mode};
      listenStatus(`Máy lẻ ${ext} đổ chuông — nhấc máy để ${LISTEN_DONE[mode]} cuộc gọi của ` +
        `${a.extension}.`, false);
    } catch (e) {
      listenStatus(e.message, true);
    }
  }

  function listenCell(a) {
    const td = el("td", "listen");
    if (!a.call_id) return td;
    for (const [mode, label] of LISTEN_MODES) {
      const b = el("button", "listen-" + mode, label);
      b.type = "button";
      b.dataset.mode = mode;
      b.addEventListener("click", () => startListen(a, mode, label));
      td.append(b);
    }
    return td;
  }

  if ($("listen-stop")) {
    $("listen-stop").addEventListener("click", async () => {
      if (!listening) return;
      const was = listening;
      try {
        await listenApi("DELETE", was.callId);
        listening = null;
        listenStatus("Đã dừng nghe xen.", false);
      } catch (e) {
        listening = null;
        listenStatus(e.message, true);
      }
    });
  }

  function renderKpis(s) {
    const k = s.kpis;
    text("kpi-offered", k.offered);
    text("kpi-answered", k.answered);
    text("kpi-abandoned", k.abandoned);
    text("kpi-rejected-busy", k.rejected_busy);
    const sl = $("kpi-service-level");
    sl.textContent = k.service_level === null ? "–" : `${Math.round(k.service_level * 100)} %`;
    sl.className = k.service_level_ok === null ? "" : (k.service_level_ok ? "ok" : "bad");
    text("kpi-asa", seconds(k.asa_s));
    text("kpi-aht", k.aht_s === null ? "–" : duration(k.aht_s));
    const [y, m, d] = s.local_date.split("-");
    text("local-date", `(${d}/${m}/${y})`);
  }

  function renderTickets(s) {
    const now = Date.now();
    const rows = s.tickets.map((t) => {
      const tr = el("tr", t.late ? "late" : "");
      tr.dataset.code = t.code;
      const left = t.resolve_due_ms - now;
      const when = dueFmt.format(new Date(t.resolve_due_ms)) +
        (left < 0 ? ` (quá hạn ${duration(-left / 1000)})` : ` (còn ${duration(left / 1000)})`);
      tr.append(el("td", "", t.code), el("td", "", t.field_name), el("td", "", t.unit_name),
                el("td", "", t.state_label), el("td", "", when));
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr"), td = el("td", "meta", "Không có phản ánh nào sắp hoặc đã quá hạn.");
      td.colSpan = 5; tr.append(td); rows.push(tr);
    }
    $("tickets").replaceChildren(...rows);
  }

  function svg(tag, attrs, content) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (content !== undefined) e.textContent = content;
    return e;
  }

  function renderChart(s) {
    const hours = s.hours, W = 960, H = 260, L = 36, R = 8, T = 12, B = 26;
    const top = Math.max(4, ...hours.map((h) => Math.max(h.calls, h.peak_lines, h.limit || 0)));
    const step = (W - L - R) / hours.length, bw = step * 0.7;
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": "Cuộc gọi theo giờ so với số line của ca"});
    for (let i = 0; i <= 4; i++) {
      const v = Math.round((top * i) / 4);
      root.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ea"}),
                  svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, String(v)));
    }
    let limitPath = "";
    hours.forEach((h, i) => {
      const x = L + i * step + (step - bw) / 2;
      const g = svg("g", {"data-hour": h.hour});
      g.append(svg("title", {}, `${h.hour}:00 — ${h.calls} cuộc gọi, ${h.busy} từ chối do bận, ` +
        `cao nhất ${h.peak_lines} line, ca ${h.limit === null ? "–" : h.limit} line`));
      if (h.calls) g.append(svg("rect", {x, y: y(h.calls), width: bw,
        height: y(0) - y(h.calls), fill: "#5c8fd6"}));
      if (h.busy) g.append(svg("rect", {x, y: y(h.busy), width: bw,
        height: y(0) - y(h.busy), fill: "#c62828"}));
      if (!h.future && h.peak_lines) g.append(svg("circle", {cx: x + bw / 2, cy: y(h.peak_lines),
        r: 3.5, fill: "#1b1b1b"}));
      if (h.hour % 3 === 0) g.append(svg("text", {x: x + bw / 2, y: H - 8,
        "text-anchor": "middle"}, `${h.hour}h`));
      root.append(g);
      if (h.limit !== null) {
        const x0 = L + i * step, x1 = x0 + step;
        limitPath += `${limitPath ? "L" : "M"}${x0},${y(h.limit)} L${x1},${y(h.limit)} `;
      }
    });
    if (limitPath) root.append(svg("path", {d: limitPath, fill: "none", stroke: "#b36b00",
      "stroke-width": 2.5, "data-series": "limit"}));
    $("hours-chart").replaceChildren(root);
  }

  function render() {
    if (!state) return;
    renderLines(state); renderStaffing(state); renderQueue(state); renderAgents(state); renderKpis(state);
    renderTickets(state); renderChart(state);
    body.dataset.atMs = state.at_ms;
  }

  function tick() {  // every second: the clocks move between pushes
    text("clock", clockFmt.format(new Date()));
    if (state) { renderQueue(state); renderAgents(state); }
    setStale(!ok || Date.now() - lastMessageAt > STALE_AFTER_MS);
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${proto}//${location.host}${body.dataset.ws}`);
    socket.onopen = () => { attempt = 0; };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      lastMessageAt = Date.now();
      if (msg.type === "state") {
        state = msg; receivedAt = Date.now(); ok = true; render();
      } else if (msg.type === "unavailable") {
        ok = false;
      }
      setStale(!ok);
    };
    socket.onclose = (ev) => {
      ok = false; setStale(true);
      if (ev.code === SESSION_ENDED) { location.reload(); return; }  // shows the login page
      // Back off: 1, 2, 4, 8, 15 s (with jitter) so a restarting server is not stampeded.
      const wait = Math.min(15000, 1000 * 2 ** attempt) * (0.75 + Math.random() / 2);
      attempt += 1;
      if (attempt >= 3) {  // refused again and again: is the session gone (login redirect)?
        fetch(location.href, {redirect: "manual", cache: "no-store"}).then((r) => {
          if (r.type === "opaqueredirect") location.reload();
        }).catch(() => { /* server away: keep retrying */ });
      }
      setTimeout(connect, wait);
    };
    socket.onerror = () => { try { socket.close(); } catch (e) { /* closing anyway */ } };
  }

  tick();
  setInterval(tick, 1000);
  connect();
})();
