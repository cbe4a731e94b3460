// The console's live parts. Every page works without this file; with it, statuses update in place
// and a run's page reloads itself when the run needs a different page (a plan to approve, an outcome).
(function () {
  "use strict";
  var EVERY_MS = 1000;

  function text(el, value) { if (el && el.textContent !== value) { el.textContent = value; } }

  function showProgress(box, p, busy) {
    var list = box.querySelector(".progress");
    if (!list) { return; }
    list.hidden = !(p && busy);
    if (!p) { return; }
    text(box.querySelector('[data-field="stage"]'), p.stage || p.state || "");
    text(box.querySelector('[data-field="trials"]'), String(p.trials));
    text(box.querySelector('[data-field="best_score"]'), p.best_score == null ? "–" : p.best_score.toFixed(4));
    text(box.querySelector('[data-field="current"]'), p.strategy ? p.strategy + " + " + p.estimator : "–");
    text(box.querySelector('[data-field="seconds_left"]'), p.seconds_left == null ? "–" : Math.round(p.seconds_left) + " s");
  }

  function pollRun(box) {
    var url = box.getAttribute("data-poll");
    var phase = box.getAttribute("data-phase");
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) { return setTimeout(tick, EVERY_MS * 3); }
          if (s.phase !== phase) { window.location.reload(); return; }
          var status = box.querySelector('[data-field="status"]');
          text(status, s.status);
          if (status) { status.className = "status status-" + s.status.replace(/ /g, "-"); }
          text(box.querySelector('[data-field="detail"]'), s.detail || "");
          showProgress(box, s.progress, s.busy);
          if (!s.settled) { setTimeout(tick, EVERY_MS); }
        })
        .catch(function () { setTimeout(tick, EVERY_MS * 3); });
    }
    if (!box.hasAttribute("data-settled")) { setTimeout(tick, EVERY_MS); }
  }

  function pollList(root) {
    var url = root.getAttribute("data-poll-list");
    function tick() {
      fetch(url, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (all) {
          if (!all) { return setTimeout(tick, EVERY_MS * 3); }
          var moving = false;
          Object.keys(all).forEach(function (id) {
            var cell = root.querySelector('[data-run-status="' + id + '"]');
            if (!cell) { if (!all[id].settled) { moving = true; } return; }
            text(cell, all[id].status);
            cell.className = "status status-" + all[id].status.replace(/ /g, "-");
            cell.setAttribute("aria-label", "Status of run " + id + ": " + all[id].status);
            text(root.querySelector('[data-run-progress="' + id + '"]'), all[id].progress || "");
            if (!all[id].settled) { moving = true; }
          });
          setTimeout(tick, moving ? EVERY_MS : EVERY_MS * 5);
        })
        .catch(function () { setTimeout(tick, EVERY_MS * 3); });
    }
    setTimeout(tick, EVERY_MS);
  }

  document.querySelectorAll("[data-poll]").forEach(pollRun);
  document.querySelectorAll("[data-poll-list]").forEach(pollList);
})();
