/* compatgate console: charts (uPlot), copy buttons and confirmations. Loaded from the
   console's own origin (the CSP allows no inline script); every page works without it. */
(function () {
  "use strict";
  var COLORS = ["#0b5cad", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#57606a"];

  function say(text) {
    var live = document.getElementById("live");
    if (!live) return;
    live.textContent = text;
    setTimeout(function () { if (live.textContent === text) live.textContent = ""; }, 2500);
  }

  function drawChart(el) {
    if (!window.uPlot || el.dataset.drawn) return;
    var data;
    try { data = JSON.parse(el.dataset.chart); } catch (e) { return; }
    el.dataset.drawn = "1";
    var series = [{}];
    var columns = [data.t];
    data.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
                    points: { show: data.t.length < 40 } });
      columns.push(s.values);
    });
    var width = Math.max(el.clientWidth, 240);
    var plot = new uPlot({
      width: width, height: 220, series: series,
      scales: { x: { time: true } },
      axes: [{ stroke: "#57606a" }, { stroke: "#57606a", size: 60 }],
      legend: { live: true }
    }, columns, el);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = Math.max(el.clientWidth, 240);
        if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height: 220 });
      }).observe(el);
    }
  }

  function copy(button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.value !== undefined && source.tagName === "INPUT" ? source.value : source.textContent;
    var done = function () { say("Copied to the clipboard"); button.dataset.copied = "1"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(source); });
    } else {
      select(source);
      try { if (document.execCommand("copy")) done(); } catch (e) { say("Press Ctrl+C to copy"); }
    }
  }

  function select(source) {
    if (source.select) { source.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function init(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(drawChart);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (button) copy(button);
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
})();
