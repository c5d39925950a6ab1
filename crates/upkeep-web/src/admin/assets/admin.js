// The admin pages work without this script. With it, the window form says, while you type,
// how much notice the lead-time rule asks of this window and whether its start gives it.
// The rule comes from the form's data attributes (seconds); the daemon decides for real.
"use strict";
(function () {
  const form = document.getElementById("window-form");
  const out = document.getElementById("rule-live");
  if (!form || !out) return;
  const d = form.dataset;
  const shortMax = Number(d.shortMax), shortNotice = Number(d.shortNotice), longNotice = Number(d.longNotice);
  function seconds(text) {
    let total = 0, seen = false;
    const re = /(\d+)\s*(d|h|m|s)/g;
    let m;
    while ((m = re.exec(text.trim())) !== null) {
      seen = true;
      total += Number(m[1]) * { d: 86400, h: 3600, m: 60, s: 1 }[m[2]];
    }
    return seen ? total : NaN;
  }
  function span(s) {
    if (s > 0 && s % 86400 === 0) return s / 86400 + " d";
    if (s % 3600 === 0) return s / 3600 + " h";
    return Math.ceil(s / 60) + " min";
  }
  function show() {
    const kind = form.elements.kind.value;
    const length = seconds(form.elements.duration.value);
    const start = form.elements.start.value;
    if (isNaN(length) || !start) { out.hidden = true; return; }
    const notice = kind === "emergency" ? 0 : (length <= shortMax ? shortNotice : longNotice);
    // The start is a wall time in the form's zone; the browser's zone is close enough for
    // a hint when they are the same, and the daemon checks exactly either way.
    const earliest = new Date(Date.now() + notice * 1000);
    const late = notice > 0 && new Date(start) < earliest;
    out.textContent = d.needs + " " + span(notice) + (notice > 0 ? " (" + d.earliest + ": " +
      earliest.toLocaleString() + "). " : ". ") + (late ? d.late : d.ok);
    out.classList.toggle("late", late);
    out.hidden = false;
  }
  form.addEventListener("input", show);
  form.addEventListener("change", show);
  show();
})();
