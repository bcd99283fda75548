// Warden console: progressive enhancement only; every page and form works without this script.
"use strict";

// A form that needs a typed confirmation (data-confirm): its button is enabled once the text matches.
// The server checks the confirmation whatever this script does.
function guardConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    const input = form.querySelector("input[name=confirm]");
    const button = form.querySelector("button[type=submit]");
    if (!input || !button) continue;
    const expected = form.dataset.confirm;
    const update = () => { button.disabled = input.value.trim() !== expected; };
    input.addEventListener("input", update);
    update();
  }
}

// An import's progress, read every second until it is no longer running.
function followImport() {
  const section = document.getElementById("import-progress");
  if (!section) return;
  const url = section.dataset.progressUrl;
  const bar = document.getElementById("import-bar");
  const show = (p) => {
    for (const el of section.querySelectorAll("[data-field]")) {
      const value = p[el.dataset.field];
      if (value === null || value === undefined) { el.textContent = "—"; continue; }
      if (el.dataset.field === "progressPercent") el.textContent = Number(value).toFixed(1);
      else if (el.dataset.field === "ratePerSecond") el.textContent = Number(value).toFixed(1);
      else if (el.dataset.field === "etaSeconds") el.textContent = Math.round(Number(value));
      else el.textContent = value;
    }
    bar.value = p.progressPercent;
  };
  const tick = async () => {
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!answer.ok) return;
      const p = await answer.json();
      show(p);
      if (p.status === "planning" || p.status === "running") setTimeout(tick, 1000);
    } catch (e) {
      setTimeout(tick, 3000);
    }
  };
  const status = section.querySelector("[data-field=status]");
  if (status && (status.textContent === "planning" || status.textContent === "running")) setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => { guardConfirmations(); followImport(); });
