// Live parts of a page: every element with data-live-src is refetched every few seconds while
// the server's last answer said it may still change (X-Live: active), then left alone. The
// server renders (and escapes) the HTML; this script only swaps it in.
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function poll(el) {
    if (el.getAttribute("data-live") !== "active") return;
    window.setTimeout(function () {
      fetch(el.getAttribute("data-live-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          var state = response.headers.get("X-Live") || "done";
          return response.text().then(function (html) {
            el.innerHTML = html;
            el.setAttribute("data-live", state);
            el.dispatchEvent(new CustomEvent("live:update", {bubbles: true}));
          });
        })
        .catch(function () { /* the server restarts or is gone: try again next period */ })
        .then(function () { poll(el); });
    }, PERIOD_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(poll);
  });
})();
