// Draws the monitoring pages' charts with Chart.js (vendored by the experiments app) from the JSON the page
// embeds: the quality page (requests, latency, quality over time) and the drift page (one chart per feature:
// the reference's distribution against the current window's). Animation is off, so the charts are complete
// as soon as the page has loaded; window.monitoringCharts lists them by canvas id.
(function () {
  "use strict";
  if (typeof Chart === "undefined") {
    return;
  }
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  const common = {animation: false, responsive: true, maintainAspectRatio: false};
  const charts = {};
  window.monitoringCharts = charts;
  const embedded = (id) => {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  };
  const time = (t) => new Date(t * 1000).toLocaleString([], {month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit"});

  function placeholder(canvas, text) {
    const note = document.createElement("p");
    note.className = "help chart-empty";
    note.textContent = text;
    canvas.parentNode.replaceChild(note, canvas);
  }

  function draw(canvas, config) {
    charts[canvas.id] = new Chart(canvas, {...config, options: {...common, ...(config.options || {})}});
  }

  function quality(data) {
    const points = (data.timeseries || {points: []}).points;
    const labels = points.map((p) => time(p.t));
    const requests = document.getElementById("chart-requests");
    if (!points.some((p) => p.requests)) {
      placeholder(requests, "No requests in this window.");
    } else {
      draw(requests, {type: "bar", data: {labels, datasets: [
        {label: "requests", data: points.map((p) => p.requests - p.errors), backgroundColor: palette[0]},
        {label: "errors", data: points.map((p) => p.errors), backgroundColor: palette[3]}]},
        options: {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}}});
    }
    const latency = document.getElementById("chart-latency");
    if (!points.some((p) => p.p50_ms !== null)) {
      placeholder(latency, "No latencies in this window.");
    } else {
      draw(latency, {type: "line", data: {labels, datasets: ["p50_ms", "p95_ms", "p99_ms"].map((name, i) => ({
        label: name.replace("_ms", ""), data: points.map((p) => p[name]), borderColor: palette[i], spanGaps: true}))},
        options: {scales: {y: {beginAtZero: true, title: {display: true, text: "ms"}}}}});
    }
    const figures = data.quality;
    const canvas = document.getElementById("chart-quality");
    const versions = figures.versions.filter((v) => v.rows_with_feedback);
    if (!versions.length) {
      return placeholder(canvas, "No feedback yet: POST /api/v1/feedback with a logged request's id.");
    }
    draw(canvas, {type: "line", data: {labels: versions[0].points.map((p) => `+${Math.round(p.offset_s / 60)} min`),
      datasets: versions.map((v, i) => ({label: `v${v.version}`, data: v.points.map((p) => p[figures.metric]),
        borderColor: palette[i % palette.length], spanGaps: true}))},
      options: {scales: {y: {beginAtZero: true, title: {display: true, text: figures.metric}}}}});
  }

  function featureChart(feature, index, box) {
    const section = document.createElement("section");
    section.className = "module";
    const title = document.createElement("h2");
    title.textContent = `${feature.name}${feature.drifted ? " (drifted)" : ""} — PSI ${feature.score}, p ${feature.p_value}`;
    const holder = document.createElement("div");
    holder.className = "chart-box";
    const canvas = document.createElement("canvas");
    canvas.id = `drift-${index}`;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `reference and current distribution of ${feature.name}`);
    holder.appendChild(canvas);
    section.append(title, holder);
    box.appendChild(section);
    const histogram = feature.histogram;
    const labels = histogram.categories || histogram.edges.slice(0, -1).map((edge, i) =>
      `${Number(edge).toPrecision(3)} – ${Number(histogram.edges[i + 1]).toPrecision(3)}`);
    draw(canvas, {type: "bar", data: {labels, datasets: [
      {label: "reference", data: histogram.reference, backgroundColor: "rgba(31, 119, 180, 0.6)"},
      {label: "current", data: histogram.current, backgroundColor: "rgba(214, 39, 40, 0.6)"}]},
      options: {scales: {y: {beginAtZero: true, title: {display: true, text: "share of rows"}}}}});
  }

  function drift(data) {
    const box = document.getElementById("drift-charts");
    const features = [...data.features, ...(data.prediction ? [data.prediction] : [])];
    features.forEach((feature, index) => featureChart(feature, index, box));
  }

  const page = embedded("monitoring-quality");
  if (page) {
    quality(page);
  }
  const report = embedded("monitoring-drift");
  if (report) {
    drift(report);
  }
})();
