// Charts of the Patterns and pull-request pages, drawn by the vendored Chart.js from
// the JSON the server put in <script type="application/json" id="chart-data">.
"use strict";
(function () {
  const holder = document.getElementById("chart-data");
  if (!holder || !window.Chart) return;
  const data = JSON.parse(holder.textContent);
  const Chart = window.Chart;
  Chart.defaults.animation = false;
  Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  Chart.defaults.color = "#374151";
  Chart.defaults.maintainAspectRatio = false;
  const palette = ["#93c5fd", "#3b82f6", "#f59e0b", "#b91c1c", "#10b981", "#8b5cf6", "#6b7280"];

  function short(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

  function empty(canvas) {
    canvas.hidden = true;
    const note = canvas.parentElement.querySelector(".empty");
    if (note) note.hidden = false;
  }

  const latency = document.getElementById("chart-latency");
  if (latency && data.latency) {
    const l = data.latency;
    if (!l.labels.length) empty(latency);
    else new Chart(latency, {
      type: "bar",
      data: {
        labels: l.labels,
        datasets: ["min", "mean", "p95", "max"].map(function (k, i) {
          return { label: k, data: l.series[k], backgroundColor: palette[i] };
        }),
      },
      options: { indexAxis: "y", scales: { x: { title: { display: true, text: "ms" } } } },
    });
  }

  const errors = document.getElementById("chart-errors");
  if (errors && data.errors) {
    const e = data.errors;
    if (e.spans.length) {
      // each error pattern as a bar from its first to its last sighting
      const t0 = Math.min.apply(null, e.spans.map(function (s) { return Date.parse(s.first); }));
      const hours = function (iso) { return (Date.parse(iso) - t0) / 3600000; };
      const start = new Date(t0);
      new Chart(errors, {
        type: "bar",
        data: {
          labels: e.spans.map(function (s) { return short(s.id, 34) + " (" + s.count + ")"; }),
          datasets: [{
            label: "first → last seen",
            data: e.spans.map(function (s) { return [hours(s.first), Math.max(hours(s.last), hours(s.first) + 0.05)]; }),
            backgroundColor: "#fca5a5", borderColor: "#b91c1c", borderWidth: 1,
          }],
        },
        options: {
          indexAxis: "y",
          plugins: { legend: { display: false } },
          scales: {
            x: {
              title: { display: true, text: "hours since " + start.toISOString().slice(0, 16).replace("T", " ") + " UTC" },
              min: 0,
            },
          },
        },
      });
    } else if (e.labels.length) {
      new Chart(errors, {
        type: "bar",
        data: {
          labels: e.labels,
          datasets: Object.keys(e.series).map(function (id, i) {
            return { label: id, data: e.series[id], backgroundColor: palette[(i + 2) % palette.length] };
          }),
        },
        options: { scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 }, title: { display: true, text: "sampled error events per hour" } } } },
      });
    } else empty(errors);
  }

  const types = document.getElementById("chart-types");
  if (types && data.types) {
    if (!data.types.labels.length) empty(types);
    else new Chart(types, {
      type: "bar",
      data: { labels: data.types.labels, datasets: [{ label: "occurrences", data: data.types.values, backgroundColor: "#60a5fa" }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } } },
    });
  }

  const impact = document.getElementById("chart-impact");
  if (impact && data.impact) {
    const f = data.impact;
    new Chart(impact, {
      type: "bar",
      data: {
        labels: f.labels,
        datasets: [
          { label: "before", data: f.before, backgroundColor: "#9ca3af" },
          { label: "after", data: f.after, backgroundColor: "#10b981" },
        ],
      },
      options: { indexAxis: "y" },
    });
  }
})();
