// Ticket page: refuse a reply document, photo or video over its kind's upload limit before
// sending it (the server checks again, by content); the typed result stays in the form.
// Without scripts the form still works.
"use strict";
const VIDEO = /\.(mp4|m4v|mov|qt|3gp|3g2)$/i;
const IMAGE = /\.(jpe?g|jpe|jfif|png|webp|heic|heif)$/i;
const LABEL = {document: "văn bản", image: "hình ảnh", video: "đoạn phim"};
// The kind by the browser's type, else by the name (HEIC often comes without a type).
function kindOf(file) {
  if (file.type.startsWith("video/") || VIDEO.test(file.name)) return "video";
  if (file.type.startsWith("image/") || IMAGE.test(file.name)) return "image";
  return "document";
}
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-form='resolve']");
  if (!form) return;
  const input = form.querySelector("input[type='file']");
  form.addEventListener("submit", (event) => {
    const old = form.querySelector("p[data-error-field='file'][data-client]");
    if (old) old.remove();
    const file = input && input.files && input.files[0];
    if (!file) return;
    const kind = kindOf(file);
    const max = Number(form.dataset["max" + kind[0].toUpperCase() + kind.slice(1)] || "0");
    if (!max || file.size <= max) return;
    event.preventDefault();
    const p = document.createElement("p");
    p.className = "field-error";
    p.dataset.errorField = "file";
    p.dataset.client = "1";
    const limit = max >= 1048576 ? Math.floor(max / 1048576) + " MB"
      : Math.max(1, Math.floor(max / 1024)) + " KB";
    p.textContent = "Tệp đính kèm quá lớn: " + LABEL[kind] + " tối đa " + limit + ".";
    input.insertAdjacentElement("afterend", p);
  });
});
