// Live parts of a page: every element with data-live-src is refetched every few seconds while
// the server's last answer said it may still change (X-Live: active), then left alone; a part
// the server no longer has (4xx) is left alone too. The
// server renders (and escapes) the HTML; this script only swaps it in.
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function poll(el) {
    if (el.getAttribute("data-live") !== "active") return;
    window.setTimeout(function () {
      fetch(el.getAttribute("data-live-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (response) {
          // A 4xx will not change by asking again (the attempt deleted, the session ended):
          // stop, marked "gone" (404, 410) or "stopped". A 5xx or no answer is retried below.
          if (response.status >= 400 && response.status < 500) {
            el.setAttribute("data-live", response.status === 404 || response.status === 410 ? "gone" : "stopped");
            return;
          }
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
