// Live updates without a reload: an element with data-refresh is fetched again every data-every seconds.
(function () {
  "use strict";
  function refresh(el) {
    fetch(el.dataset.refresh, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { el.innerHTML = html; el.dataset.refreshed = String(Date.now()); })
      .catch(function () { el.dataset.stale = "1"; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      var every = Math.max(1, parseFloat(el.dataset.every || "5")) * 1000;
      setInterval(function () { refresh(el); }, every);
    });
  });
})();
