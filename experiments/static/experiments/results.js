// Draws the experiment results page's charts with Chart.js (vendored: vendor/chart.umd.js) from the JSON
// the page embeds. Animation is off so the charts are complete as soon as the page has loaded.
(function () {
  "use strict";
  const source = document.getElementById("experiment-results");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const colour = (index, alpha) => {
    const hex = palette[index % palette.length];
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return alpha === undefined ? hex : `rgba(${r}, ${g}, ${b}, ${alpha})`;
  };
  const common = {animation: false, responsive: true, maintainAspectRatio: false};
  const charts = {};
  window.experimentCharts = charts;

  function placeholder(id, text) {
    const canvas = document.getElementById(id);
    const note = document.createElement("p");
    note.className = "help chart-empty";
    note.textContent = text;
    canvas.parentNode.replaceChild(note, canvas);
  }

  function trafficShare() {
    const arms = data.variants.filter((v) => !v.shadow).map((v) => v.name);
    const points = data.traffic.points;
    if (!points.length) {
      return placeholder("chart-traffic", "No traffic recorded yet.");
    }
    const totals = points.map((p) => arms.reduce((sum, name) => sum + (p.counts[name] || 0), 0));
    const datasets = arms.map((name, i) => ({
      label: name,
      data: points.map((p, j) => (totals[j] ? (100 * (p.counts[name] || 0)) / totals[j] : null)),
      borderColor: colour(i), backgroundColor: colour(i, 0.6), borderWidth: 1,
    }));
    const labels = points.map((p) => new Date(p.t * 1000).toLocaleString([], {month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit"}));
    // 100% stacked bars: one bar per time bucket reads well from the first minute to the last week.
    charts.traffic = new Chart(document.getElementById("chart-traffic"), {
      type: "bar", data: {labels, datasets},
      options: {...common, scales: {x: {stacked: true},
        y: {stacked: true, min: 0, max: 100, title: {display: true, text: "% of requests"}}},
        plugins: {tooltip: {mode: "index", intersect: false, callbacks: {
          footer: (items) => `${totals[items[0].dataIndex]} requests (bucket of ${data.traffic.bucket_s / 60} min)`}}}},
    });
  }

  function latency() {
    const histogram = data.latency_histogram;
    if (!histogram.bounds_ms.length) {
      return placeholder("chart-latency", "No latencies recorded yet.");
    }
    const label = (bound) => (bound === null ? "slower" : `≤ ${bound < 10 ? bound.toFixed(2) : bound.toFixed(0)} ms`);
    const datasets = data.variants.map((v, i) => {
      const counts = histogram.counts[v.name] || [];
      const total = counts.reduce((a, b) => a + b, 0);
      return {label: v.shadow ? `${v.name} (shadow)` : v.name, data: counts.map((c) => (total ? (100 * c) / total : 0)),
        backgroundColor: colour(i, 0.7), borderColor: colour(i), borderWidth: 1};
    });
    charts.latency = new Chart(document.getElementById("chart-latency"), {
      type: "bar", data: {labels: histogram.bounds_ms.map(label), datasets},
      options: {...common, scales: {y: {title: {display: true, text: "% of the variant's requests"}}}},
    });
  }

  function outcome() {
    const measured = data.variants.filter((v) => v.outcome.n > 0 && v.outcome.ci);
    if (!measured.length) {
      return placeholder("chart-outcome", "No feedback received yet (POST /api/v1/feedback).");
    }
    const scale = data.outcome_kind === "rate" ? 100 : 1;
    const unit = data.outcome_kind === "rate" ? `${data.outcome} (%)` : `mean ${data.outcome}`;
    const index = (v) => data.variants.indexOf(v);
    charts.outcome = new Chart(document.getElementById("chart-outcome"), {
      type: "bar",
      data: {
        labels: measured.map((v) => `${v.name} (n=${v.outcome.n})`),
        datasets: [
          {type: "bar", label: `${Math.round(data.confidence * 100)}% confidence interval`,
            data: measured.map((v) => [v.outcome.ci[0] * scale, v.outcome.ci[1] * scale]),
            backgroundColor: measured.map((v) => colour(index(v), 0.35)),
            borderColor: measured.map((v) => colour(index(v))), borderWidth: 1, barPercentage: 0.4},
          {type: "line", label: "estimate", data: measured.map((v) => v.outcome.value * scale), showLine: false,
            pointRadius: 7, pointStyle: "rectRot", backgroundColor: "#222", borderColor: "#222"},
        ],
      },
      options: {...common, scales: {y: {title: {display: true, text: unit}}}},
    });
  }

  trafficShare();
  latency();
  outcome();
})();
