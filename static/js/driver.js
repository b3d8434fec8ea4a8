// The driver's route page on a phone: every confirmation goes into an outbox on the phone first
// (localStorage: ids, outcome, note, time — no names or addresses), then to
// POST /api/v1/stops/{id}/confirmations with its Idempotency-Key and the route's delivery token,
// in order, now or when the connection returns (on `online`, on page load, when the page is shown
// again). The server answers a retry with the stored answer, so sending twice is harmless.
// A service worker (/sw.js) keeps the page and its assets openable with no signal.
(() => {
  "use strict";
  const OUTBOX = "delivery-outbox";
  const KEEP_SENT_MS = 24 * 3600 * 1000; // sent items only mark cards on an offline reload
  const UNDO_MS = 5 * 60 * 1000;
  const SHELL = "driver-shell-v1";
  const FOOD = ["delivered", "left_at_door"];

  const load = () => { try { return JSON.parse(localStorage.getItem(OUTBOX) || "[]"); } catch { return []; } };
  const save = (items) => localStorage.setItem(OUTBOX, JSON.stringify(items));
  const waiting = () => load().filter((i) => i.state === "waiting");
  const change = (key, fields) => save(load().map((i) => (i.key === key ? { ...i, ...fields } : i)));

  const root = document.getElementById("route");
  const say = (name) => (root ? root.dataset[name] || "" : "");

  // Signing out never wipes unsent confirmations (R8.4): warn, then clear only what is not the queue.
  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("submit", async (event) => {
      event.preventDefault();
      const unsent = waiting();
      if (unsent.length && !window.confirm(say("msgUnsent") || "Some confirmations are not sent yet. Sign out anyway?")) return;
      save(unsent);
      if (window.caches) for (const name of await caches.keys()) await caches.delete(name);
      signOut.submit();
    });
  }

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/driver/" }).catch(() => {});
  }
  if (!root) return;

  document.querySelectorAll(".js-only").forEach((element) => { element.hidden = false; });  // photos need the script
  const routeId = root.dataset.route;
  const token = root.dataset.token;
  const labels = {};
  document.querySelectorAll("#reason-dialog input[name=outcome]").forEach((input) => {
    labels[input.value] = input.parentElement.textContent.trim();
  });
  document.querySelectorAll(".confirm-form button[name=outcome]").forEach((button) => {
    labels[button.value] = button.textContent.trim();
  });

  // A first visit is not yet under the service worker: keep this page for an offline reload.
  if (window.caches && !(navigator.serviceWorker && navigator.serviceWorker.controller)) {
    const html = "<!doctype html>\n" + document.documentElement.outerHTML;
    caches.open(SHELL).then((cache) => cache.put(location.pathname, new Response(html, {
      headers: { "Content-Type": "text/html; charset=utf-8" } }))).catch(() => {});
  }

  const banner = document.getElementById("outbox-banner");
  const problems = document.getElementById("outbox-problems");
  const progress = document.getElementById("progress");

  function showCounts() {
    const n = waiting().filter((i) => i.route === routeId).length;
    banner.hidden = n === 0;
    banner.textContent = `${say("msgWaiting")} (${n})`;
    const done = document.querySelectorAll("#done-stops > li").length;
    progress.textContent = say("msgProgress").replace("%(done)s", done).replace("%(total)s", progress.dataset.total);
    document.getElementById("done-count").textContent = done;
    document.getElementById("done-section").hidden = done === 0;
  }

  function mark(item) {
    const card = document.getElementById("stop-" + item.stop);
    if (!card) return;
    const outcome = item.body.outcome;
    card.classList.remove("pending", "delivered", "failed", "queued");
    card.classList.add(FOOD.includes(outcome) ? "delivered" : "failed");
    if (item.state === "waiting") card.classList.add("queued");
    const badge = card.querySelector(".stop-state");
    badge.className = "badge stop-state " + (item.state === "waiting" ? "queued" : FOOD.includes(outcome) ? "delivered" : "failed");
    badge.textContent = (labels[outcome] || outcome) + (item.state === "waiting" ? ` · ${say("msgWaiting")}` : "");
    const undo = card.querySelector(".done-actions");
    undo.replaceChildren();
    if (Date.now() - item.made < UNDO_MS) undo.append(undoButton(item));
    document.getElementById("done-stops").append(card);
  }

  function reopen(stopId) {
    const card = document.getElementById("stop-" + stopId);
    if (!card) return;
    card.classList.remove("delivered", "failed", "queued");
    card.classList.add("pending");
    card.querySelector(".stop-state").textContent = "";
    card.querySelector(".done-actions").replaceChildren();
    const list = document.getElementById("pending-stops");
    const later = [...list.children].find((li) => Number(li.dataset.stop) > stopId);
    list.insertBefore(card, later || null);
  }

  function undoButton(item) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = say("msgUndo") || "Undo";
    button.addEventListener("click", async () => {
      const current = load().find((i) => i.key === item.key);
      if (current && current.state === "waiting") {        // never sent: just take it back
        save(load().filter((i) => i.key !== item.key));
      } else if (current && current.id) {
        const res = await fetch(`/driver/confirmations/${current.id}/undo`, { method: "POST",
          headers: { "X-CSRF-Token": root.dataset.csrf, Accept: "application/json" } }).catch(() => null);
        if (!res || !res.ok) { problem((res && (await res.json()).detail) || say("msgOffline")); return; }
        save(load().filter((i) => i.key !== item.key));
      }
      reopen(item.stop);
      showCounts();
    });
    return button;
  }

  function problem(text) {
    problems.hidden = false;
    problems.textContent = text;
  }

  // A photo is shrunk on the phone (at most 1280 px, JPEG) before it is kept or sent; the server
  // re-encodes it again and strips whatever metadata is left.
  async function shrink(file) {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 1280 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.7);
  }

  async function sendPhoto(item) {
    const bytes = Uint8Array.from(atob(item.photo.split(",")[1]), (c) => c.charCodeAt(0));
    const res = await fetch(`/api/v1/stops/${item.stop}/confirmations/photo`, { method: "PUT", body: bytes,
      headers: { "Content-Type": "image/jpeg", Authorization: "Bearer " + token, "Idempotency-Key": item.key } });
    if (res.ok || (res.status >= 400 && res.status < 500 && res.status !== 401)) change(item.key, { photo: null });
  }

  function queue(stopId, outcome, note, photo) {
    const now = new Date();
    const item = { key: crypto.randomUUID(), route: routeId, stop: Number(stopId), state: "waiting",
                   made: now.getTime(), photo: photo || null,
                   body: { outcome, note: note || null, occurred_at: now.toISOString() } };
    save([...load(), item]);
    mark(item);
    showCounts();
    flush();
  }

  let flushing = false;
  async function flush() {
    if (flushing || !token) return;
    flushing = true;
    try {
      for (const item of load().filter((i) => i.route === routeId && i.state === "sent" && i.photo)) {
        try { await sendPhoto(item); } catch { break; }
      }
      for (const item of waiting().filter((i) => i.route === routeId)) {
        let res;
        try {
          res = await fetch(`/api/v1/stops/${item.stop}/confirmations`, { method: "POST", cache: "no-store",
            headers: { "Content-Type": "application/json", Authorization: "Bearer " + token,
                       "Idempotency-Key": item.key }, body: JSON.stringify(item.body) });
        } catch { break; }                                    // no connection: keep all, in order
        if (res.status >= 500 || res.status === 401 || res.headers.get("Retry-After")) break;  // later
        const answer = await res.json().catch(() => ({}));
        if (res.ok) {
          change(item.key, { state: "sent", id: answer.id });
          mark({ ...item, state: "sent" });
          if (item.photo) { try { await sendPhoto(item); } catch { break; } }
        } else {                                              // refused for good: say why, drop it
          save(load().filter((i) => i.key !== item.key));
          problem(`${say("msgConflict")} ${answer.detail || res.status}`);
          if (answer.stored_outcome) mark({ ...item, state: "sent", made: 0, body: { outcome: answer.stored_outcome } });
          else reopen(item.stop);
        }
      }
    } finally {
      flushing = false;
      showCounts();
    }
  }

  // Cards the server still shows as open but this phone has confirmed (sent or waiting).
  const fresh = load().filter((i) => i.state === "waiting" || Date.now() - i.made < KEEP_SENT_MS);
  save(fresh);
  for (const item of fresh.filter((i) => i.route === routeId)) {
    const card = document.getElementById("stop-" + item.stop);
    if (card && card.classList.contains("pending")) mark(item);
  }

  document.querySelectorAll(".confirm-form").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const outcome = event.submitter.value;
      const file = form.querySelector("input.photo").files[0];
      const photo = file ? await shrink(file).catch(() => null) : null;
      queue(form.dataset.stop, outcome, form.elements.note.value.trim(), photo);
      form.reset();
    });
  });

  const dialog = document.getElementById("reason-dialog");
  const reasonForm = document.getElementById("reason-form");
  document.querySelectorAll(".reason-open").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      dialog.dataset.stop = form.dataset.stop;
      reasonForm.reset();
      dialog.showModal();
    });
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "send") return;
    const reason = reasonForm.querySelector("input[name=outcome]:checked");
    queue(dialog.dataset.stop, reason.value, reasonForm.elements.note.value.trim());
  });

  window.addEventListener("online", flush);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") flush(); });
  setInterval(() => { if (waiting().length) flush(); }, 30000);
  showCounts();
  flush();
})();
