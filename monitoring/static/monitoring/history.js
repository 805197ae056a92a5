// Draws the history section of the overview and of a deployment's page (templates/admin/monitoring/history.html)
// with the vendored Chart.js, from the data the page embeds (monitoring/selectors/charts.py): traffic, error rate
// and latency over the window the toggle picks. The overview draws a line per deployment; a deployment's page
// stacks answered and failed requests and puts p50 and p99 in one chart. A window without a request shows a
// note instead of empty axes. Animation is off, so the charts are complete once drawn; window.historyCharts
// lists them by name (the browser tests read them).
(function () {
  "use strict";
  const root = document.getElementById("sp-history");
  const node = document.getElementById("sp-history-data");
  if (!root || !node || typeof Chart === "undefined") {
    return;
  }
  const data = JSON.parse(node.textContent);
  // The admin's own font and quiet colour for axes and legends (its dark theme included).
  const style = getComputedStyle(root);
  Chart.defaults.font.family = style.fontFamily;
  Chart.defaults.color = style.getPropertyValue("--body-quiet-color").trim() || "#666";
  const overview = root.classList.contains("sp-history-overview");
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#d62728"];
  const failed = "#d62728";
  const charts = {};
  window.historyCharts = charts;

  // A 24-hour clock whatever the locale: "17:05" is half as wide on the axis as "05:05 PM".
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit",
    hourCycle: "h23"});
  const stamp = (t) => new Date(t * 1000).toLocaleString([], {month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23"});
  const rounded = (value) => Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1)
    : value.toFixed(2);
  // A point between two steps without requests has no line to be part of: it is drawn as a dot.
  const alone = (context) => {
    const values = context.dataset.data;
    const i = context.dataIndex;
    return values[i] !== null && (i === 0 || values[i - 1] === null) && (i === values.length - 1 ||
      values[i + 1] === null) ? 2.5 : 0;
  };

  function line(label, values, colour) {
    return {label, data: values, borderColor: colour, backgroundColor: colour, borderWidth: 1.5, pointRadius: alone,
      pointHoverRadius: 4, spanGaps: false};
  }

  function datasets(name, frame) {
    const series = frame.series;
    if (overview) {
      const key = {traffic: "requests_per_min", error_rate: "error_rate_pct", p50: "p50_ms", p99: "p99_ms"}[name];
      return series.map((s, i) => line(s.endpoint, s[key], palette[i % palette.length]));
    }
    const only = series[0];
    if (name === "traffic") {
      const answered = only.requests_per_min.map((n, i) => Math.round((n - only.errors_per_min[i]) * 100) / 100);
      // A day's 288 bars touch, instead of leaving gaps that shimmer.
      const bars = {type: "bar", stack: "requests", categoryPercentage: answered.length > 100 ? 1 : 0.8};
      return [{...bars, label: "answered", data: answered, backgroundColor: palette[0]},
        {...bars, label: "failed", data: only.errors_per_min, backgroundColor: failed}];
    }
    if (name === "error_rate") {
      return [line("error rate", only.error_rate_pct, failed)];
    }
    return [line("p50", only.p50_ms, palette[0]), line("p99", only.p99_ms, palette[1])];
  }

  function config(canvas, frame) {
    const name = canvas.dataset.chart;
    const unit = canvas.dataset.unit;
    const sets = datasets(name, frame);
    const stacked = sets[0].type === "bar";
    return {type: stacked ? "bar" : "line", data: {labels: frame.t.map(clock), datasets: sets}, options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: {mode: "index", intersect: false},
      plugins: {
        legend: {display: sets.length > 1, position: "bottom", labels: {boxWidth: 12, boxHeight: 12}},
        tooltip: {callbacks: {
          title: (items) => stamp(frame.t[items[0].dataIndex]),
          label: (item) => `${item.dataset.label}: ${item.parsed.y === null ? "–" : rounded(item.parsed.y)} ${unit}`,
        }},
      },
      scales: {
        x: {stacked, grid: {display: false}, ticks: {maxRotation: 0, autoSkip: true, maxTicksLimit: 7}},
        y: {stacked, beginAtZero: true, grace: "5%", ticks: {maxTicksLimit: 6}},  // no line on the top edge
      },
    }};
  }

  function emptyNote(frame) {
    const traffic = (w) => w.series.some((s) => s.total.requests);
    const other = Object.values(data.windows).find((w) => w !== frame && traffic(w));
    if (other) {
      return `No traffic in the ${frame.label.toLowerCase()}: “${other.label}” has some.`;
    }
    return overview ? "No traffic yet: the charts fill in once a deployment answers requests."
      : "No traffic yet: the charts fill in once this deployment answers requests.";
  }

  function show(name) {
    const frame = data.windows[name];
    root.querySelectorAll("button[data-window]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.window === name));
    });
    Object.keys(charts).forEach((key) => {
      charts[key].destroy();
      delete charts[key];
    });
    const empty = !frame.series.some((s) => s.total.requests);
    const note = root.querySelector(".sp-history-empty");
    note.textContent = empty ? emptyNote(frame) : "";
    note.hidden = !empty;
    root.querySelectorAll(".sp-plot").forEach((figure) => {
      figure.hidden = empty;
    });
    if (!empty) {
      root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
        charts[canvas.dataset.chart] = new Chart(canvas, config(canvas, frame));
      });
    }
    root.dataset.window = name;
  }

  root.querySelectorAll("button[data-window]").forEach((button) => {
    button.addEventListener("click", () => show(button.dataset.window));
  });
  show(Object.keys(data.windows)[0]);
})();
