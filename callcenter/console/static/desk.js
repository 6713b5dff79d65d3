// The operator desk (callcenter/desk/pages.py): polls GET /api/v1/desk every 1.5 s and acts
// through the API with the session cookie and the page's CSRF token. Vanilla JS, no build step;
// console.js first.
"use strict";
(function () {
  const root = document.getElementById("desk");
  const dataEl = document.getElementById("desk-data");
  if (!root || !dataEl || !root.dataset.ext) return;  // the supervisor's chooser: nothing live
  const DATA = JSON.parse(dataEl.textContent);
  const EXT = root.dataset.ext;
  const READONLY = root.dataset.readonly === "1";
  const POLL_MS = 1500;
  const TIMEOUT_MS = 5000;  // reads: the poll gives up and the stale banner speaks
  // Writes wait longer: giving up on a POST the server is still doing invites a second one
  // (a duplicate ticket); after a lost answer the desk looks before allowing another save.
  const WRITE_TIMEOUT_MS = 30000;
  const DETAIL_EVERY = 10;  // re-read the tickets every 10th poll even if the call is the same
  const tz = root.dataset.timezone || "Asia/Ho_Chi_Minh";
  const timeFmt = Hotline.clockFormat(tz);
  const dueFmt = new Intl.DateTimeFormat("vi-VN", {timeZone: tz, hour: "2-digit",
    minute: "2-digit", day: "2-digit", month: "2-digit", year: "numeric", hour12: false});
  const fieldNames = Object.fromEntries(DATA.fields.map((f) => [f.id, f.name]));

  // Vietnamese texts of the API's common error ids; others show the API's own message.
  const ERRORS = {
    "auth.required": "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
    "auth.forbidden": "Bạn không có quyền thực hiện thao tác này.",
    "csrf.invalid": "Phiên làm việc không hợp lệ. Vui lòng tải lại trang.",
    "ticket.conflict": "Phiếu vừa được người khác cập nhật. Vui lòng thử lại.",
    "ticket.illegal_transition": "Không thể thực hiện thao tác này ở trạng thái hiện tại của phiếu.",
    "ticket.no_route": "Chưa có quy tắc phân công cho lĩnh vực này: hãy chọn đơn vị nhận phiếu.",
    "ticket.unknown_field": "Lĩnh vực không hợp lệ.",
    "ticket.unknown_unit": "Đơn vị không hợp lệ.",
    "ticket.invalid_phone": "Số điện thoại không hợp lệ.",
    "ticket.invalid_text": "Nội dung chưa hợp lệ (trống hoặc quá dài).",
    "request.invalid": "Dữ liệu nhập chưa hợp lệ.",
    "store.unavailable": "Cơ sở dữ liệu tạm thời không phản hồi. Vui lòng thử lại.",
    "agent.unavailable": "Hàng đợi tạm thời không phản hồi. Vui lòng thử lại.",
    "internal": "Lỗi hệ thống (đã ghi nhật ký). Vui lòng thử lại.",
    "network": "Không kết nối được máy chủ. Vui lòng thử lại.",
  };
  const FIELD_NAMES = {content: "nội dung", field: "lĩnh vực", place: "địa bàn",
    citizen_phone: "số điện thoại", citizen_name: "họ tên", unit: "đơn vị", answer: "câu trả lời"};

  const {el, duration} = Hotline;
  const $ = (id) => document.getElementById(id);
  function at(iso) { return iso ? timeFmt.format(new Date(iso)) : "–"; }
  function due(iso) { return iso ? dueFmt.format(new Date(iso)) : "–"; }

  // ---- API ------------------------------------------------------------------------------------
  class ApiFailure extends Error {
    constructor(id, message, status, details) {
      super(message); this.id = id; this.status = status; this.details = details || {};
    }
  }
  function errorText(e) {
    if (!(e instanceof ApiFailure)) return ERRORS.network;
    let text = ERRORS[e.id];
    if (e.id === "request.invalid" && e.details.field) {
      text = `Trường “${FIELD_NAMES[e.details.field] || e.details.field}” chưa hợp lệ.`;
    }
    // agent.* and transfer.* messages are Vietnamese already (the phone says the same).
    if (!text && /^(agent|transfer)\./.test(e.id)) text = e.message;
    return text || e.message || ERRORS.internal;
  }
  async function api(method, path, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), method === "GET" ? TIMEOUT_MS : WRITE_TIMEOUT_MS);
    let resp;
    try {
      resp = await Hotline.send(method, path, body, ctl.signal);
    } catch (err) {
      throw new ApiFailure("network", ERRORS.network, 0);
    } finally {
      clearTimeout(timer);
    }
    const data = await Hotline.jsonOf(resp);
    if (resp.status === 401) sessionEnded();
    if (!resp.ok) {
      const e = (data && data.error) || {};
      throw new ApiFailure(e.id || `http.${resp.status}`, e.message || resp.statusText,
                           resp.status, e.details);
    }
    return data;
  }
  function say(id, text, ok) {
    const p = $(id);
    if (!p) return;
    p.textContent = text || "";
    p.classList.toggle("error", !ok && !!text);
    p.classList.toggle("ok", !!ok && !!text);
    p.dataset.kind = text ? (ok ? "ok" : "error") : "";
  }

  // ---- live state -----------------------------------------------------------------------------
  let desk = null, receivedAt = 0, lastOk = 0, polls = 0, timer = null;
  // Polls overlap (an action's poll while the timed one is in flight): each is numbered and a
  // reply older than the one shown is dropped, so the page never steps back in time.
  // detailSeq: the poll whose IVR path and tickets are shown (light replies carry them over).
  let pollSeq = 0, shownSeq = 0, detailSeq = 0;
  const DETAIL_KEYS = ["ivr_path", "caller_tickets", "call_tickets"];
  let busy = false, ended = false;
  // No button acts while another action runs, on a read-only desk, or once the session ended
  // (every request would be refused: the banner's link is the way on).
  const locked = () => READONLY || busy || ended;

  function sessionEnded() {
    ended = true;
    setStale(false);  // nothing is retried any more: only the session banner speaks
    $("session-banner").hidden = false;
    root.dataset.session = "ended";
    render();
  }
  function setStale(stale) { Hotline.showStale(root, stale); }

  async function poll(forceDetail) {
    if (ended) return;
    polls += 1;
    const seq = ++pollSeq;
    const detail = forceDetail || polls % DETAIL_EVERY === 1 || desk === null;
    try {
      let d = await api("GET", `/api/v1/desk?ext=${encodeURIComponent(EXT)}` +
                                (detail ? "" : "&detail=false"));
      const newCall = d.call ? d.call.call_id : null;
      const shownCall = desk && desk.call ? desk.call.call_id : null;
      if (!detail && newCall !== null && newCall !== shownCall) {
        // A new call: its path and tickets at once.
        d = await api("GET", `/api/v1/desk?ext=${encodeURIComponent(EXT)}`);
      }
      if (ended) return;
      const sameCall = d.call && desk && desk.call && desk.call.call_id === d.call.call_id;
      const detailed = !!(d.call && d.call.ivr_path);
      if (seq < shownSeq) {
        // Older than what is shown: its state is stale. Its tickets may still be newer than
        // the ones shown (a later light reply only carried older ones over).
        if (detailed && sameCall && seq > detailSeq) {
          for (const k of DETAIL_KEYS) desk.call[k] = d.call[k];
          detailSeq = seq;
          render();
        }
        return;
      }
      if (d.call && !detailed && sameCall) {
        // A light answer for the same call: keep what the last detailed one said.
        for (const k of DETAIL_KEYS) d.call[k] = desk.call[k];
      } else {
        detailSeq = seq;
      }
      shownSeq = seq;
      desk = d; receivedAt = Date.now(); lastOk = receivedAt;
      setStale(false);
      render();
    } catch (e) {
      if (seq < shownSeq) return;  // a later reply has been shown: this failure is old news
      if (e instanceof ApiFailure && e.status && e.status !== 503) {
        say("agent-msg", errorText(e), false);
      }
      if (Date.now() - lastOk > TIMEOUT_MS || !(e instanceof ApiFailure) || !e.status ||
          e.status >= 500) {
        setStale(true);
      }
    }
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => { await poll(false); schedule(); }, POLL_MS);
  }

  // ---- rendering ------------------------------------------------------------------------------
  function renderAgent() {
    const a = desk.agent, since = (Date.now() - receivedAt) / 1000;
    const state = $("agent-state");
    state.textContent = a.state_label + (a.state === "paused" && a.reason_label ?
      `: ${a.reason_label}` : "");
    state.dataset.state = a.state;
    root.dataset.agentState = a.state;
    root.dataset.pending = a.pending || "";
    $("agent-time").textContent = `(${duration(a.time_in_state_s + since)})`;
    let note = "";
    if (a.pending === "pause") {
      note = `Sẽ tạm nghỉ (${a.pending_reason_label || ""}) khi xong cuộc gọi.`;
    } else if (a.pending === "logout") {
      note = "Sẽ đăng xuất khi xong cuộc gọi.";
    } else if (a.state === "wrap_up" && a.wrap_up_left_s !== null) {
      note = `Còn ${duration(Math.max(0, a.wrap_up_left_s - since))} xử lý sau cuộc gọi.`;
    } else if (!a.reachable && a.state !== "logged_out") {
      note = "Điện thoại chưa đăng ký: chưa nhận được cuộc gọi.";
    }
    $("agent-note").textContent = note;
    const s = a.state;
    $("btn-ready").disabled = locked() ||
      !(s === "logged_out" || s === "paused" || a.pending === "pause");
    $("btn-pause").disabled = locked() || s === "logged_out" || s === "paused" ||
      a.pending === "pause";
    $("pause-reason").disabled = $("btn-pause").disabled;
    $("btn-wrapup").disabled = locked() || s !== "wrap_up";
  }

  function ticketRow(t) {
    const tr = el("tr");
    tr.dataset.code = t.code;
    tr.append(el("td", "mono", t.code), el("td", null, fieldNames[t.field] || t.field),
              el("td", null, DATA.ticket_states[t.state] || t.state));
    const d = el("td", t.late ? "late" : null, due(t.resolve_due));
    tr.append(d);
    return tr;
  }

  function renderTalk() {
    const c = desk.call;
    if (!c) return;
    const live = c.bridged_at && !c.talk_ended_at && !c.ended_at;
    const talk = c.talk_s === null ? null : c.talk_s + (live ? (Date.now() - receivedAt) / 1000 : 0);
    $("call-talk").textContent = c.bridged_at ? duration(talk) +
      (live ? "" : " (đã kết thúc)") : "Chưa kết nối";
  }

  function renderCall() {
    const c = desk.call;
    const card = $("call-card");
    card.dataset.call = c ? c.call_id : "";
    $("no-call").hidden = !!c;
    $("call-info").hidden = !c;
    if (!c) return;
    $("call-caller").textContent = c.caller || "(số ẩn)";
    $("call-urgent").hidden = !c.urgent;
    $("call-phase").textContent = c.phase_label;
    $("call-tenant").textContent = c.tenant_name || c.tenant || "";
    $("call-dialled").textContent = c.dialled;
    renderTalk();
    $("call-arrived").textContent = at(c.arrived_at);
    $("call-record").textContent = c.record_id;
    if (c.ivr_path) {
      const ol = $("ivr-path");
      ol.replaceChildren(...c.ivr_path.map((s) => {
        const li = el("li");
        li.dataset.event = s.event;
        li.append(el("span", "at", at(s.at)), document.createTextNode(s.text));
        return li;
      }));
      $("ivr-empty").hidden = c.ivr_path.length > 0;
    }
    if (c.caller_tickets) {
      $("caller-tickets").tBodies[0].replaceChildren(...c.caller_tickets.map(ticketRow));
      $("caller-tickets-empty").hidden = c.caller_tickets.length > 0;
      $("caller-tickets").hidden = c.caller_tickets.length === 0;
    }
    if (c.call_tickets) {
      $("call-tickets").replaceChildren(...c.call_tickets.map((t) => {
        const li = el("li");
        li.dataset.code = t.code;
        li.dataset.state = t.state;
        li.append(el("span", "mono", t.code), document.createTextNode(
          ` — ${fieldNames[t.field] || t.field} — ${DATA.ticket_states[t.state] || t.state}` +
          (t.unit ? ` — ${DATA.unit_names[t.unit] || t.unit}` : "")));
        return li;
      }));
      $("call-tickets-empty").hidden = c.call_tickets.length > 0;
    }
  }

  // After "Chuyển cuộc gọi" the message under the panel follows the transfer's state
  // (ringing, the unit answered, its end) rather than staying at "Đang gọi đơn vị…".
  let transferCall = null, following = null;  // following: {done: transfers before it}
  const TRANSFER_ENDS = {
    completed: ["Đã chuyển cuộc gọi cho đơn vị.", true],
    returned: ["Đã hủy chuyển; người gọi trở lại với bạn.", true],
    no_answer: ["Đơn vị không nhấc máy; người gọi trở lại với bạn.", false],
    failed: ["Không gọi được đơn vị; người gọi trở lại với bạn.", false],
  };
  function transferNote(c, since) {
    const t = c.transfer;
    if (t && !t.unit_answered) return ["Đang gọi đơn vị…", true];
    if (t) {
      return [t.kind === "attended" ? "Đơn vị đã nhấc máy: trao đổi xong thì bấm “Hoàn tất " +
        "chuyển”, hoặc “Hủy chuyển” để trở lại với người gọi." : "Đơn vị đã nhấc máy.", true];
    }
    const past = (c.transfers || []).slice(since.done);
    if (!past.length) return ["Đang gọi đơn vị…", true];  // not in the call's state yet
    return TRANSFER_ENDS[past[past.length - 1].result] || ["", true];
  }
  function renderTransfer() {
    const btn = $("btn-transfer");
    if (!btn) return;
    const c = desk.call;
    const id = c ? c.call_id : null;
    if (id !== transferCall) {
      // Another call (or none): the last transfer's message is about a call that is gone.
      transferCall = id;
      following = null;
      say("transfer-msg", "");
    }
    if (c && following) {
      const [text, ok] = transferNote(c, following);
      say("transfer-msg", text, ok);
      if (!c.transfer && (c.transfers || []).length > following.done) following = null;
    }
    const canStart = !!c && c.mine && c.phase === "bridged" && !c.transfer;
    btn.disabled = locked() || !canStart;
    const prog = $("transfer-progress");
    if (c && c.transfer) {
      prog.hidden = false;
      const t = c.transfer;
      $("transfer-status").textContent = `Đang chuyển tới ${DATA.unit_names[t.unit] || t.unit}` +
        ` (${t.kind === "attended" ? "trao đổi trước" : "chuyển thẳng"}): ` +
        (t.unit_answered ? "đơn vị đã nhấc máy." : "đang đổ chuông…");
      $("btn-transfer-complete").hidden = t.kind !== "attended";
      $("btn-transfer-complete").disabled = locked() || !t.unit_answered;
      $("btn-transfer-cancel").disabled = locked();
    } else {
      prog.hidden = true;
    }
  }

  // The ticket form keeps the last call's number and record id until another call comes,
  // so a ticket can still be written during and after wrap-up. Once the operator has edited
  // the form (drafted), the draft belongs to its call until it is saved or cleared: a new
  // call (wrap-up ended by itself, the next caller bridged) must not take it over.
  let formCall = null, drafted = false;
  function adoptCall(c) {
    formCall = {call_id: c.call_id, record_id: c.record_id, caller: c.caller};
    $("t-phone").value = c.caller || "";
    $("t-urgent").checked = !!c.urgent;
  }
  function renderForm() {
    const c = desk.call;
    if (c && (!formCall || c.call_id !== formCall.call_id) && !drafted) adoptCall(c);
    const waiting = !!c && (!formCall || c.call_id !== formCall.call_id);
    $("draft-notice").hidden = !waiting;
    if (waiting) {
      $("draft-notice-text").textContent = "Có cuộc gọi mới — phiếu đang soạn vẫn " + (formCall ?
        `gắn với cuộc gọi trước (số ${formCall.caller || "ẩn"}).` : "không gắn với cuộc gọi nào.") +
        " Lưu hoặc xoá phiếu để chuyển sang cuộc gọi mới.";
    }
    $("btn-draft-clear").disabled = locked();
    $("ticket-form").dataset.call = formCall ? formCall.record_id : "";
    $("t-call").textContent = formCall ? formCall.record_id : "—";
    for (const id of ["btn-save", "btn-forward"]) $(id).disabled = locked();
    $("btn-answer").disabled = locked() || !chosen;
  }

  function render() {
    if (!desk) return;
    renderAgent();
    renderCall();
    renderTransfer();
    renderForm();
  }

  // ---- agent actions --------------------------------------------------------------------------
  async function agentAction(action, body) {
    busy = true; render();
    say("agent-msg", "");
    try {
      const r = await api("POST", `/api/v1/agents/${encodeURIComponent(EXT)}/${action}`, body);
      say("agent-msg", r.message, true);
    } catch (e) {
      say("agent-msg", errorText(e), false);
    } finally {
      busy = false;
      await poll(false);
    }
  }
  $("btn-ready").addEventListener("click", () => {
    const a = desk && desk.agent;
    agentAction(a && a.state === "logged_out" ? "login" : "unpause");
  });
  $("btn-pause").addEventListener("click", () =>
    agentAction("pause", {reason: $("pause-reason").value}));
  $("btn-wrapup").addEventListener("click", () => agentAction("ready"));

  // ---- transfer -------------------------------------------------------------------------------
  async function transfer(suffix, body) {
    const c = desk && desk.call;
    if (!c) return;
    busy = true; render();
    following = null;
    say("transfer-msg", "");
    try {
      await api("POST", `/api/v1/calls/${encodeURIComponent(c.call_id)}/transfer${suffix}`, body);
      if (suffix === "") following = {done: (c.transfers || []).length};
      say("transfer-msg", suffix === "" ? "Đang gọi đơn vị…" :
        suffix === "/complete" ? "Đã chuyển cuộc gọi cho đơn vị." : "Đã hủy chuyển; "
        + "người gọi trở lại với bạn.", true);
    } catch (e) {
      say("transfer-msg", errorText(e), false);
    } finally {
      busy = false;
      await poll(false);
    }
  }
  if ($("btn-transfer")) {
    $("btn-transfer").addEventListener("click", () =>
      transfer("", {unit: $("transfer-unit").value, kind: $("transfer-kind").value}));
    $("btn-transfer-complete").addEventListener("click", () => transfer("/complete"));
    $("btn-transfer-cancel").addEventListener("click", () => transfer("/cancel"));
  }

  // ---- FAQ search -----------------------------------------------------------------------------
  let chosen = null, searchSeq = 0, searchTimer = null, results = [];
  async function search() {
    const seq = ++searchSeq;
    const q = $("faq-q").value.trim(), field = $("faq-field").value;
    if (!q && !field) {
      results = []; showResults(); return;
    }
    const params = new URLSearchParams({limit: "10"});
    if (q) params.set("q", q);
    if (field) params.set("field", field);
    try {
      const r = await api("GET", `/api/v1/faq?${params}`);
      if (seq !== searchSeq) return;  // a later keystroke's answer wins
      results = r.items;
      showResults();
    } catch (e) {
      if (seq === searchSeq) say("ticket-msg", errorText(e), false);
    }
  }
  function showResults() {
    const ul = $("faq-results");
    ul.replaceChildren(...results.map((item) => {
      const li = el("li", chosen && chosen.key === item.key ? "chosen" : null);
      li.dataset.key = item.key;
      li.append(el("div", "q", item.question));
      li.append(el("div", "a", item.answer.length > 240 ?
        item.answer.slice(0, 240) + "…" : item.answer));
      li.append(el("div", "m", [item.code, item.field_name, item.unit].filter(Boolean)
        .join(" · ")));
      const b = el("button", null, "Chọn");
      b.type = "button";
      b.className = "choose";
      b.addEventListener("click", () => choose(item));
      li.append(b);
      return li;
    }));
    const typed = $("faq-q").value.trim() || $("faq-field").value;
    $("faq-empty").hidden = !typed || results.length > 0;
  }
  function choose(item) {
    chosen = item;
    drafted = true;
    if ($("ticket-msg").dataset.kind === "error") say("ticket-msg", "");
    $("faq-chosen").hidden = false;
    $("faq-chosen-q").textContent = item.question;
    $("t-answer").value = item.answer;
    if (fieldNames[item.field]) $("t-field").value = item.field;
    showResults();
    render();
  }
  function clearChoice() {
    chosen = null;
    $("faq-chosen").hidden = true;
    $("t-answer").value = "";
    showResults();
    render();
  }
  $("faq-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 250);
  });
  $("faq-field").addEventListener("change", search);
  $("faq-clear").addEventListener("click", clearChoice);

  // ---- tickets --------------------------------------------------------------------------------
  function ticketBody(withAnswer) {
    let content = $("t-content").value.trim();
    if (!content && withAnswer && chosen) content = chosen.question;  // the question asked
    const body = {
      channel: "phone", content, field: $("t-field").value,
      place: $("t-place").value || null,
      citizen_name: $("t-name").value.trim() || null,
      citizen_phone: $("t-phone").value.trim() || null,
      urgent: $("t-urgent").checked,
      call_ids: formCall ? [formCall.record_id] : [],
    };
    if (withAnswer) {
      body.answer = $("t-answer").value.trim() || chosen.answer;
      body.faq_item = chosen.key;
    }
    return body;
  }
  function checkContent(withAnswer) {
    const missing = !$("t-content").value.trim() && !(withAnswer && chosen);
    $("t-content-error").hidden = !missing;
    $("t-content").setAttribute("aria-invalid", missing ? "true" : "false");
    if (missing) $("t-content").focus();
    return !missing;
  }
  function resetForm() {
    drafted = false;  // the draft is gone: the form follows the current call again
    $("t-content").value = "";
    $("t-name").value = "";
    $("t-place").value = "";
    $("faq-q").value = "";
    results = [];
    clearChoice();
  }
  // A save whose answer was lost (network error, timeout): the server may have stored it. It
  // stays "unsure" until a look at the call's tickets (or the tenant's latest, without a call)
  // finds it, or a later save is answered; every save looks first while it is set.
  let unsure = null;
  const lostAnswer = (e) => !(e instanceof ApiFailure) || !e.status || e.status === 502 ||
    e.status === 504;
  async function findSent(u) {
    const r = await api("GET", u.call ? `/api/v1/calls/${encodeURIComponent(u.call)}/tickets` :
      `/api/v1/tickets?limit=50&since=${encodeURIComponent(u.since)}`);
    const same = r.items.filter((t) => t.content === u.body.content && t.field === u.body.field);
    same.sort((a, b) => (a.received_at < b.received_at ? 1 : -1));  // the latest first
    return same[0] || null;
  }
  async function finishSave(t, outcome) {
    let text = `Đã lưu phiếu ${t.code}`;
    if (outcome === "forward" && t.state === "new") {
      try {
        t = await api("POST", `/api/v1/tickets/${encodeURIComponent(t.code)}/actions`,
                      {action: "forward", version: t.version,
                       unit: $("forward-unit").value || null});
        text = `Đã lưu phiếu ${t.code} và chuyển cho ${DATA.unit_names[t.unit] || t.unit}`;
      } catch (e) {
        say("ticket-msg", `Đã lưu phiếu ${t.code} nhưng chưa chuyển được: ${errorText(e)}`,
            false);
        resetForm();
        return;
      }
    } else if (outcome === "answer") {
      text = `Đã lưu phiếu ${t.code} và trả lời người dân từ FAQ`;
    }
    say("ticket-msg", `${text} (${DATA.ticket_states[t.state] || t.state}).`, true);
    $("ticket-msg").dataset.code = t.code;
    $("ticket-msg").dataset.state = t.state;
    resetForm();
  }
  // What the last unsure save became: true when it was found (and shown), false when not
  // (it may be sent again), null when the look itself failed (still unsure).
  async function settleUnsure(bodyNow) {
    let t;
    try {
      t = await findSent(unsure);
    } catch (e) {
      say("ticket-msg", "Chưa kiểm tra được phiếu gửi lúc mất kết nối đã được lưu hay chưa; " +
          "chưa lưu lại để tránh tạo phiếu trùng. Vui lòng thử lại sau giây lát.", false);
      return null;
    }
    const was = unsure;
    unsure = null;
    if (!t) return false;
    if (bodyNow.content === was.body.content) {
      await finishSave(t, was.outcome);
    } else {  // edited since: the earlier text is saved, the form's is not yet
      say("ticket-msg", `Phiếu ${t.code} (gửi lúc mất kết nối) đã được lưu; nội dung đang ` +
          "soạn chưa được lưu.", false);
    }
    return true;
  }
  async function saveTicket(outcome) {
    const withAnswer = outcome === "answer";
    if (withAnswer && !chosen) return;
    if (!checkContent(withAnswer)) return;
    busy = true; render();
    say("ticket-msg", "");
    try {
      const body = ticketBody(withAnswer);
      if (unsure && await settleUnsure(body) !== false) return;
      const sent = {body, outcome, call: formCall ? formCall.record_id : null,
                    since: new Date(Date.now() - 10 * 60 * 1000).toISOString()};
      let t;
      try {
        t = await api("POST", "/api/v1/tickets", body);
      } catch (e) {
        if (!lostAnswer(e)) throw e;
        unsure = sent;
        const found = await settleUnsure(body);
        if (found === false) {
          unsure = sent;  // it may still be on its way: the next save looks again first
          say("ticket-msg", "Mất kết nối khi lưu; phiếu chưa được lưu. Vui lòng thử lại.", false);
        } else if (found === null) {
          unsure = sent;
        }
        return;
      }
      unsure = null;
      await finishSave(t, outcome);
    } catch (e) {
      say("ticket-msg", errorText(e), false);
    } finally {
      busy = false;
      await poll(true);
    }
  }
  $("ticket-form").addEventListener("submit", (ev) => { ev.preventDefault(); saveTicket("save"); });
  $("btn-answer").addEventListener("click", () => saveTicket("answer"));
  $("btn-forward").addEventListener("click", () => saveTicket("forward"));
  // An error stays until the operator changes something: then it no longer describes the form.
  $("ticket-form").addEventListener("input", (ev) => {
    if ($("ticket-msg").dataset.kind === "error") say("ticket-msg", "");
    // Searching the FAQ is not drafting; any ticket field is.
    if (ev.target.id !== "faq-q" && ev.target.id !== "faq-field") drafted = true;
  });
  $("ticket-form").addEventListener("change", (ev) => {
    if (ev.target.id !== "faq-q" && ev.target.id !== "faq-field") drafted = true;
  });
  $("btn-draft-clear").addEventListener("click", () => {
    resetForm();
    say("ticket-msg", "");
    render();  // an untouched form: it takes the new call's number and record
  });
  $("t-content").addEventListener("input", () => {
    if ($("t-content").value.trim()) $("t-content-error").hidden = true;
  });

  // The clocks tick between polls (not once the session has ended: nothing is known any more).
  setInterval(() => { if (desk && !busy && !ended) { renderAgent(); renderTalk(); } }, 1000);
  // No answer for a while (a hung request included): the banner says so. After the session
  // ended the desk no longer asks, so silence is expected there.
  setInterval(() => {
    if (!ended && lastOk && Date.now() - lastOk > TIMEOUT_MS + POLL_MS) setStale(true);
  }, 1000);
  if (READONLY) {
    for (const b of root.querySelectorAll("button, select, input, textarea")) {
      if (b.closest("#ticket-card, #agent-card, #transfer-card")) b.disabled = true;
    }
  }
  poll(true).then(schedule);
})();
