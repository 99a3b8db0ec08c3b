// The console's behaviour: WAI-ARIA tabs, fields that follow the capability, focus after
// updates, inline Test Connection, Delete confirmation, catalogue search, and Connect in a
// popup (opened synchronously on click) with a full-page fallback when it is blocked.
"use strict";

function selectTab(tab, focus) {
  const list = tab.closest("[role=tablist]");
  for (const t of list.querySelectorAll("[role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", on ? "true" : "false");
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
}

function setUpTabs() {
  for (const list of document.querySelectorAll("[role=tablist]")) {
    const tabs = Array.from(list.querySelectorAll("[role=tab]"));
    list.addEventListener("click", (e) => {
      const tab = e.target.closest("[role=tab]");
      if (tab) selectTab(tab, true);
    });
    list.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  }
}

function followCapability() {
  const capability = document.getElementById("field-capability");
  if (!capability) return;
  const apply = () => {
    for (const wrap of document.querySelectorAll("[data-shown-for]")) {
      const only = wrap.dataset.shownFor.split(" ").filter(Boolean);
      const shown = only.length === 0 || only.includes(capability.value);
      wrap.hidden = !shown;
      for (const input of wrap.querySelectorAll("input, select")) input.disabled = !shown;
    }
  };
  capability.addEventListener("change", apply);
  apply();
}

function focusSummary() {
  const summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", (e) => {
      const link = e.target.closest("a[href^='#']");
      if (!link) return;
      const field = document.querySelector(link.getAttribute("href"));
      const panel = field && field.closest("[role=tabpanel]");
      if (panel && panel.hidden) selectTab(document.getElementById(panel.getAttribute("aria-labelledby")), false);
      if (field) { e.preventDefault(); field.focus(); }
    });
    return;
  }
  const notice = document.getElementById("notice");
  if (notice && notice.textContent.trim()) notice.focus();
}

function post(url, form, extra) {
  const body = new URLSearchParams(new FormData(form));
  for (const [k, v] of Object.entries(extra || {})) body.set(k, v);
  return fetch(url, { method: "POST", body, headers: { "x-sluice-fragment": "1" }, credentials: "same-origin" });
}

function inlineTests() {
  for (const form of document.querySelectorAll("form.inline-test")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const out = document.getElementById(form.dataset.result);
      out.textContent = "Testing the connection…";
      const resp = await post(form.action, form);
      out.innerHTML = await resp.text();
      out.focus();
    });
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
}

function catalogueSearch() {
  const input = document.getElementById("catalogue-search");
  const list = document.getElementById("catalogue");
  if (!input || !list) return;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of list.children) {
      item.hidden = !item.dataset.search.includes(needle);
      if (!item.hidden) shown++;
    }
    document.getElementById("catalogue-count").textContent = shown + " connector(s)";
  });
}

function connect() {
  const button = document.getElementById("connect");
  if (!button) return;
  const id = button.dataset.id;
  const status = document.getElementById("connect-status");
  const statusUrl = "/integrations/" + id + "/status";
  let before = null;
  fetch(statusUrl).then((r) => r.json()).then((s) => { before = s.token_obtained_at_ms; });
  let done = false;
  const succeed = () => {
    if (done) return;
    done = true;
    window.location.assign("/?connected=" + encodeURIComponent(id));
  };
  const fail = (message) => {
    status.textContent = message;
    status.classList.add("error");
    status.focus();
  };
  const hear = (data) => {
    if (!data || data.type !== "sluice-oauth") return;
    if (data.ok && data.id === id) succeed();
    else if (!data.ok) fail(data.message);
  };
  window.addEventListener("message", (e) => {
    if (e.origin === window.location.origin) hear(e.data);
  });
  if ("BroadcastChannel" in window) new BroadcastChannel("sluice-oauth").onmessage = (e) => hear(e.data);
  button.addEventListener("click", async (e) => {
    e.preventDefault();
    // Opened in the click itself, before any await, so popup blockers allow it.
    const popup = window.open("about:blank", "sluice-connect", "popup,width=620,height=720");
    const resp = await post("/integrations/" + id + "/authorize", button.form, { mode: popup ? "popup" : "redirect" });
    const answer = await resp.json();
    if (!resp.ok) {
      if (popup) popup.close();
      fail(answer.error);
      return;
    }
    if (!popup) {
      window.location.assign(answer.authorize_url);
      return;
    }
    popup.location.href = answer.authorize_url;
    status.textContent = "Waiting for you to log in and allow access in the popup…";
    const poll = setInterval(async () => {
      if (done) return clearInterval(poll);
      const s = await (await fetch(statusUrl)).json();
      if (s.state === "active" && s.token_obtained_at_ms !== before) succeed();
    }, 1000);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  followCapability();
  focusSummary();
  inlineTests();
  confirmations();
  catalogueSearch();
  connect();
});
