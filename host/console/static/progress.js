// The progress of a running pull on an integration's page: polls its progress part and
// updates the summary (a role=status region, so it is announced) and the streams table in
// place, without moving focus, until the pull ends.
"use strict";

const PROGRESS_EVERY_MS = 1000;

async function refreshProgress(box) {
  let html;
  try {
    const resp = await fetch(box.dataset.source, { credentials: "same-origin" });
    if (!resp.ok) return true;
    html = await resp.text();
  } catch (_) {
    return true;
  }
  const part = document.createElement("template");
  part.innerHTML = html;
  const summary = box.querySelector("#progress-summary");
  const fresh = part.content.querySelector("#progress-summary");
  if (!summary || !fresh) return false;
  if (summary.textContent !== fresh.textContent) summary.textContent = fresh.textContent;
  summary.dataset.running = fresh.dataset.running;
  const streams = part.content.querySelector("#progress-streams");
  if (streams) box.querySelector("#progress-streams").replaceChildren(...streams.childNodes);
  return fresh.dataset.running === "true";
}

// Once the pull ended, the page's runs table (which showed it running) is brought up to date
// from the page itself; it holds no control, so no focus is lost.
async function refreshRuns() {
  const runs = document.getElementById("runs");
  if (!runs) return;
  try {
    const resp = await fetch(location.href, { credentials: "same-origin" });
    if (!resp.ok) return;
    const page = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = page.getElementById("runs");
    if (fresh) runs.replaceChildren(...fresh.childNodes);
  } catch (_) {
    // The table stays as it was; a reload shows the run.
  }
}

function followProgress() {
  const box = document.getElementById("progress");
  const summary = box && box.querySelector("#progress-summary");
  if (!summary || summary.dataset.running !== "true") return;
  const tick = async () => {
    if (await refreshProgress(box)) setTimeout(tick, PROGRESS_EVERY_MS);
    else refreshRuns();
  };
  setTimeout(tick, PROGRESS_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", followProgress);
