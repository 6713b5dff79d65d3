// Ticket page: refuse a reply document over the upload limit before sending it (the server
// checks again); the typed result stays in the form. Without scripts the form still works.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-form='resolve']");
  if (!form) return;
  const input = form.querySelector("input[type='file']");
  const max = Number(form.dataset.maxBytes || "0");
  form.addEventListener("submit", (event) => {
    const old = form.querySelector("p[data-error-field='file'][data-client]");
    if (old) old.remove();
    const file = input && input.files && input.files[0];
    if (!file || !max || file.size <= max) return;
    event.preventDefault();
    const p = document.createElement("p");
    p.className = "field-error";
    p.dataset.errorField = "file";
    p.dataset.client = "1";
    const limit = max >= 1048576 ? Math.floor(max / 1048576) + " MB"
      : Math.max(1, Math.floor(max / 1024)) + " KB";
    p.textContent = "Tệp đính kèm quá lớn (tối đa " + limit + ").";
    input.insertAdjacentElement("afterend", p);
  });
});
