/* Sluice dashboard: live updates over server-sent events, the list filter, and the charts.
 * The pages work without this script (server-rendered, filter as a plain GET form); it only
 * makes them live. Charts are drawn with uPlot, served from this package (no CDN). */
(function () {
  "use strict";

  var charts = [];

  function finite(v) { return typeof v === "number" && isFinite(v); }

  var INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

  function log10(v) { return finite(v) && v > 0 ? Math.log(v) / Math.LN10 : null; }

  function options(el, xLabel, yLabel, series, yValues) {
    var opts = {
      width: Math.max(el.clientWidth, 280), height: 200,
      legend: { live: false },
      scales: { x: { time: false } },
      axes: [
        { label: xLabel, incrs: INTEGER_STEPS, space: 40 },
        { label: yLabel, size: 60 }
      ],
      series: series
    };
    if (yValues) { opts.axes[1].values = yValues; }
    return opts;
  }

  /* The e-value on a log10 axis (status may carry values like 1e19), the threshold dashed. */
  function evalueChart(el, d) {
    var xs = d.path.x;
    if (!xs.length) {
      el.textContent = "No e-value reported yet.";
      return null;
    }
    var ys = d.path.y.map(log10);
    var thr = xs.map(function () { return log10(d.threshold); });
    var dots = xs.length < 3;
    return new uPlot(options(el, "measurements", "e-value (log scale)", [
      { label: "measurements" },
      { label: "e-value", stroke: "#1f4fa8", width: 2, points: { show: true, size: 7 } },
      { label: "threshold", stroke: "#b3261e", width: 2, dash: [8, 5], points: { show: dots, size: 5 } }
    ], function (_, ticks) {
      return ticks.map(function (t) { return Math.abs(t - Math.round(t)) < 1e-9 ? "1e" + Math.round(t) : ""; });
    }), [xs, ys, thr], el);
  }

  /* Each window's value, with the estimate (dashed) and its interval (dotted) across them. */
  function trendChart(el, d) {
    if (!d.trend.length) {
      el.textContent = "No measurement yet.";
      return null;
    }
    var xs = d.trend.map(function (_, i) { return i + 1; });
    var same = function (v) { return xs.map(function () { return finite(v) ? v : null; }); };
    var lo = d.interval ? d.interval[0] : null, hi = d.interval ? d.interval[1] : null;
    var dots = xs.length < 3;
    return new uPlot(options(el, "last measurements", "value", [
      { label: "window" },
      { label: "measured", stroke: "#1f4fa8", width: 2, points: { show: true, size: 7 } },
      { label: "estimate", stroke: "#333333", width: 2, dash: [8, 5], points: { show: dots, size: 5 } },
      { label: "interval low", stroke: "#6b6b6b", width: 1, dash: [2, 4], points: { show: dots, size: 4 } },
      { label: "interval high", stroke: "#6b6b6b", width: 1, dash: [2, 4], points: { show: dots, size: 4 } }
    ]), [xs, d.trend, same(d.estimate), same(lo), same(hi)], el);
  }

  function drawCharts(root) {
    if (typeof uPlot === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var d = JSON.parse(el.getAttribute("data-chart"));
      var chart = el.getAttribute("data-kind") === "evalue" ? evalueChart(el, d) : trendChart(el, d);
      if (chart) { charts.push(chart); }
    });
    document.body.setAttribute("data-charts", String(charts.length));
  }

  function destroyCharts() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
  }

  function announce(text) {
    var el = document.getElementById("announce");
    if (el) { el.textContent = text; }
  }

  function connect(url, handlers) {
    if (!window.EventSource) { return; }
    var es = new EventSource(url);
    es.onopen = function () { document.body.setAttribute("data-live", "connected"); };
    es.onerror = function () { document.body.setAttribute("data-live", "reconnecting"); };
    Object.keys(handlers).forEach(function (name) {
      es.addEventListener(name, function (e) { handlers[name](JSON.parse(e.data)); });
    });
  }

  /* ---- one rollout */
  function rolloutPage(live) {
    drawCharts(live);
    var lastPhase = null;
    connect(live.getAttribute("data-stream"), {
      view: function (d) {
        var open = Array.prototype.map.call(live.querySelectorAll("details[open] summary"),
          function (s) { return s.textContent; });
        var focused = document.activeElement && live.contains(document.activeElement);
        var focusedId = focused ? document.activeElement.id : "";
        destroyCharts();
        live.innerHTML = d.html;
        live.querySelectorAll("details summary").forEach(function (s) {
          if (open.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
        });
        drawCharts(live);
        if (focused) {  /* keep the keyboard where it was, or at least inside the page's content */
          var again = focusedId && document.getElementById(focusedId);
          (again || live).focus();
        }
        if (d.phase !== lastPhase) {
          var h = document.getElementById("headline");
          announce(h ? h.textContent : d.phase);
          lastPhase = d.phase;
        }
        var n = Number(document.body.getAttribute("data-updates") || "0") + 1;
        document.body.setAttribute("data-updates", String(n));
      },
      gone: function (d) {
        if (!document.getElementById("gone")) {
          var note = document.createElement("p");
          note.id = "gone";
          note.className = "banner";
          note.setAttribute("role", "alert");
          note.textContent = "\u26a0 " + d.message + "; what follows is its last known state.";
          live.insertBefore(note, live.firstChild);
        }
        live.setAttribute("data-gone", "1");
      }
    });
  }

  /* ---- the list */
  function listPage(table, form) {
    var tbody = table.tBodies[0];
    function keeps(row) {
      var q = form.elements.q.value.trim().toLowerCase();
      var ns = form.elements.namespace.value, phase = form.elements.phase.value;
      var waiting = form.elements.waiting.checked;
      if (ns && row.getAttribute("data-namespace") !== ns) { return false; }
      if (phase && row.getAttribute("data-phase") !== phase) { return false; }
      if (waiting && row.getAttribute("data-waiting") !== "1") { return false; }
      return !q || row.getAttribute("data-text").indexOf(q) >= 0;
    }
    function apply() {
      var shown = 0;
      Array.prototype.forEach.call(tbody.rows, function (row) {
        var keep = keeps(row);
        row.hidden = !keep;
        if (keep) { shown += 1; }
      });
      document.getElementById("shown").textContent = String(shown);
      document.getElementById("total").textContent = String(tbody.rows.length);
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    connect(table.getAttribute("data-stream"), {
      row: function (d) {
        var holder = document.createElement("tbody");
        holder.innerHTML = d.html;
        var row = holder.rows[0];
        var old = document.getElementById(d.id);
        if (old && old.innerHTML === row.innerHTML) { return; }  /* nothing a person sees changed */
        var focused = old && old.contains(document.activeElement);
        if (old) { tbody.replaceChild(row, old); } else { tbody.appendChild(row); }
        row.hidden = !keeps(row);
        /* a live update must not take the keyboard focus away from the row it replaces */
        if (focused) { row.querySelector("a").focus(); }
        apply();
      },
      remove: function (d) {
        var old = document.getElementById(d.id);
        if (old) { old.parentNode.removeChild(old); apply(); }
      },
      reset: function () { window.location.reload(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) { live.setAttribute("tabindex", "-1"); rolloutPage(live); }
    var table = document.getElementById("rollouts"), form = document.getElementById("filter");
    if (table && form) { listPage(table, form); }
    document.body.setAttribute("data-ready", "1");
  });
})();
