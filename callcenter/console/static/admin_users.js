// User administration: the unit select only applies to the unit role. Disabling it for
// other roles means it is not submitted; the server checks the rule either way.
(function () {
  "use strict";
  function bind(form) {
    var role = form.querySelector("[data-role-select]");
    var unit = form.querySelector("[data-unit-select]");
    if (!role || !unit) { return; }
    function sync() {
      var isUnit = role.value === "unit";
      unit.disabled = !isUnit;
      if (!isUnit) { unit.value = ""; }
    }
    role.addEventListener("change", sync);
    sync();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-create], form[data-edit]").forEach(bind);
  });
}());
