// The OAuth callback page: tells the console page that opened it (same origin only), or every
// console tab through a BroadcastChannel when the opener link is cut; returns to the console
// when the whole page went to the provider.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const result = document.getElementById("oauth-result");
  const message = {
    type: "sluice-oauth",
    ok: result.dataset.ok === "true",
    id: result.dataset.id,
    code: result.dataset.code,
    message: document.getElementById("oauth-message").textContent + " " + document.getElementById("oauth-advice").textContent,
  };
  const opener = window.opener && !window.opener.closed ? window.opener : null;
  if (opener) opener.postMessage(message, window.location.origin);
  if ("BroadcastChannel" in window) {
    const channel = new BroadcastChannel("sluice-oauth");
    channel.postMessage(message);
    channel.close();
  }
  if (result.dataset.return === "console" && message.ok) {
    window.location.replace("/?connected=" + encodeURIComponent(message.id));
  } else if (opener && message.ok) {
    window.close();
  }
});
