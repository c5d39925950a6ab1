// Local times, countdowns, live updates (/api/v1/stream); the page works without it.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";
  var fmt;
  try {
    // (dateStyle and timeStyle cannot be combined with timeZoneName.)
    fmt = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    });
  } catch (e) { fmt = null; }
  var unit = lang === "en" ? { d: " d", h: " h", m: " min" } : { d: "天", h: "小时", m: "分钟" };
  function localTimes(root) {
    if (!fmt) return;
    var list = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < list.length; i++) {
      var t = new Date(list[i].getAttribute("datetime"));
      if (!isNaN(t)) list[i].textContent = fmt.format(t);
    }
    var note = document.getElementById("tz");
    if (note) note.textContent = note.getAttribute("data-local") + " " + fmt.resolvedOptions().timeZone;
  }
  function span(ms) {
    var min = Math.max(1, Math.ceil(ms / 60000));
    var d = Math.floor(min / 1440), h = Math.floor((min % 1440) / 60), m = min % 60;
    if (d) return d + unit.d + (h ? " " + h + unit.h : "");
    if (h) return h + unit.h + (m ? " " + m + unit.m : "");
    return m + unit.m;
  }
  function countdowns() {
    var list = document.querySelectorAll(".countdown[data-to]");
    for (var i = 0; i < list.length; i++) {
      var to = new Date(list[i].getAttribute("data-to"));
      list[i].textContent = list[i].getAttribute("data-word") + " " + span(to - Date.now());
    }
  }
  function json(attr) {
    try { return JSON.parse(document.body.getAttribute(attr)); } catch (e) { return {}; }
  }
  var labels = json("data-labels"), overallTexts = json("data-overall");
  var notices = document.body.getAttribute("data-v");
  function kind(state) { return (labels[state] || [])[1] || "degraded"; }
  function apply(msg) {
    var banner = document.getElementById("overall");
    if (banner && overallTexts[msg.overall]) {
      banner.className = "banner k-" + msg.overall;
      banner.textContent = overallTexts[msg.overall];
    }
    var rows = document.querySelectorAll("[data-svc]");
    for (var i = 0; i < rows.length; i++) {
      var state = msg.services[rows[i].getAttribute("data-svc")];
      var st = rows[i].querySelector(".st");
      if (!state || !st) continue;
      st.className = "st k-" + kind(state);
      st.textContent = (labels[state] || [state])[0];
      rows[i].setAttribute("data-state", state);
    }
    if (String(msg.notices) !== notices) {
      notices = String(msg.notices);
      refresh();
    }
  }
  // Notices changed: take the server's page, rendered already.
  function refresh() {
    fetch(location.pathname + location.search, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (next && main) {
          main.innerHTML = next.innerHTML;
          localTimes(main);
          countdowns();
        }
      })
      .catch(function () {});
  }
  localTimes(document);
  countdowns();
  setInterval(countdowns, 30000);
  if (window.EventSource && document.getElementById("overall")) {
    var es = new EventSource("/api/v1/stream");
    es.addEventListener("status", function (e) {
      try { apply(JSON.parse(e.data)); } catch (err) {}
    });
  }
})();
