// Helpers shared by the console pages' scripts (desk.js, wallboard.js). A page loads this
// file before its own script (both deferred: they run in that order). Vanilla JS, no build.
"use strict";
window.Hotline = (function () {
  // The page's CSRF token (<meta name="csrf-token">, see console/pages.py), sent as
  // X-CSRF-Token on every unsafe API call.
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return (meta && meta.content) || "";
  }

  // A call to the API with the session cookie: JSON in (a body when given) and out, the CSRF
  // header on anything but GET. Resolves with the response; rejects as fetch does (network,
  // abort through `signal`).
  function send(method, path, body, signal) {
    const init = {method, credentials: "same-origin", cache: "no-store", signal,
                  headers: {"Accept": "application/json"}};
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init);
  }

  // The response's JSON body, or null when it has none or it does not parse.
  async function jsonOf(resp) {
    try { return await resp.json(); } catch (err) { return null; }
  }

  // A new element with a class and a text (never markup: text from citizens stays text).
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // Seconds as m:ss or h:mm:ss ("–" when unknown).
  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
  }

  // HH:MM:SS in the tenant's time zone (the page's data-timezone).
  function clockFormat(tz) {
    return new Intl.DateTimeFormat("vi-VN", {timeZone: tz, hour: "2-digit",
      minute: "2-digit", second: "2-digit", hour12: false});
  }

  // Show or hide the page's #stale-banner and mark `holder` (class and data-stale) with it.
  function showStale(holder, stale) {
    document.getElementById("stale-banner").hidden = !stale;
    holder.classList.toggle("stale", stale);
    holder.dataset.stale = stale ? "1" : "0";
  }

  return Object.freeze({csrfToken, send, jsonOf, el, duration, clockFormat, showStale});
}());
