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

function followProgress() {
  const box = document.getElementById("progress");
  const summary = box && box.querySelector("#progress-summary");
  if (!summary || summary.dataset.running !== "true") return;
  const tick = async () => {
    if (await refreshProgress(box)) setTimeout(tick, PROGRESS_EVERY_MS);
  };
  setTimeout(tick, PROGRESS_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", followProgress);
