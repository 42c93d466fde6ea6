// The start form: choosing another experiment reloads the page with that experiment's defaults.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("experiment");
    if (!select) return;
    select.addEventListener("change", function () {
      window.location.assign("/start?experiment=" + encodeURIComponent(select.value));
    });
  });
})();
