// The run page, live: while the run is running, apply each server-sent snapshot
// (status, cost, path) as text, reload the drawing and swap in the states section
// rendered (and escaped) by the server. Nothing from the run is parsed as HTML here.
"use strict";
(function () {
  const root = document.getElementById("run");
  if (!root) return;
  const graph = document.getElementById("run-graph");
  const problem = document.getElementById("graph-problem");
  graph.addEventListener("error", function () { graph.hidden = true; problem.hidden = false; });
  graph.addEventListener("load", function () { graph.hidden = false; problem.hidden = true; });
  if (root.dataset.status !== "running" || !window.EventSource) return;

  const note = document.getElementById("live-note");
  note.hidden = false;
  let seq = Number(root.dataset.seq);
  let lastDrawn = null;
  let busy = false;
  let again = false;

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  async function refreshStates() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const section = document.getElementById("states");
      const wasOpen = new Map();
      for (const d of section.querySelectorAll("details[id]")) wasOpen.set(d.id, d.open);
      const response = await fetch(root.dataset.states, { credentials: "same-origin" });
      if (response.ok) {
        section.innerHTML = await response.text();  // server-rendered, autoescaped
        for (const d of section.querySelectorAll("details[id]")) {
          if (wasOpen.has(d.id)) d.open = wasOpen.get(d.id);
        }
      }
    } catch (err) {
      // a dropped connection: the next update tries again
    } finally {
      busy = false;
      if (again) { again = false; refreshStates(); }
    }
  }

  function apply(snap) {
    const status = document.getElementById("run-status");
    status.textContent = snap.status;
    status.className = "status status-" + snap.status;
    setText("run-cost", snap.cost);
    setText("run-tokens", snap.tokens);
    setText("run-duration", snap.duration);
    setText("run-current", snap.current || "—");
    setText("run-final", snap.final || "—");
    const path = document.getElementById("run-path");
    path.replaceChildren();
    snap.path.forEach(function (name, i) {
      if (i > 0) path.append(" → ");
      const step = document.createElement("span");
      step.className = "step";
      step.textContent = name;
      path.append(step);
    });
    // the drawing shows the path and where the run is: redraw only when they change,
    // not for every event of a state (a fan-out's items would redraw it hundreds of times)
    const drawn = JSON.stringify([snap.path, snap.current, snap.status]);
    if (lastDrawn === null && snap.seq === seq) lastDrawn = drawn;  // as the page was served
    if (snap.seq !== seq) {
      seq = snap.seq;
      if (drawn !== lastDrawn) {
        lastDrawn = drawn;
        graph.src = root.dataset.graph + "?v=" + encodeURIComponent(String(seq));
      }
      refreshStates();
    }
  }

  const source = new EventSource(root.dataset.live);
  source.addEventListener("update", function (e) { apply(JSON.parse(e.data)); });
  source.addEventListener("end", function () {
    source.close();
    note.textContent = "run ended";
    note.classList.add("ended");
  });
})();
