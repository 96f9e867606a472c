// Live updates without a reload: an element with data-refresh is fetched again every data-every seconds,
// and replaced only when what it says changed (so a page being read or clicked is left alone otherwise).
(function () {
  "use strict";
  function words(text) { return text.replace(/\s+/g, " ").trim(); }
  function refresh(el) {
    fetch(el.dataset.refresh, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = document.createElement("template");
        fresh.innerHTML = "<table><tbody>" + html + "</tbody></table>";
        var links = function (node) {
          return Array.prototype.map.call(node.querySelectorAll("[href],[class]"), function (n) {
            return (n.getAttribute("href") || "") + "|" + (n.getAttribute("class") || "");
          }).join(" ");
        };
        var body = fresh.content.querySelector("tbody");
        if (words(body.textContent) !== words(el.textContent) || links(body) !== links(el)) {
          el.innerHTML = html;
        }
        el.dataset.refreshed = String(Date.now());
        delete el.dataset.stale;
      })
      .catch(function () { el.dataset.stale = "1"; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      var every = Math.max(1, parseFloat(el.dataset.every || "5")) * 1000;
      setInterval(function () { refresh(el); }, every);
    });
  });
})();
