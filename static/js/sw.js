// The driver pages' service worker: network first, the last good copy when there is no signal, so
// a route opened once still opens in a basement. Confirmations never pass through here: the page
// queues and sends them itself (driver.js), which works on every browser (no Background Sync).
const SHELL = "driver-shell-v1";
const ASSETS = ["/static/css/app.css", "/static/js/driver.js"];

self.addEventListener("install", (event) => event.waitUntil(
  caches.open(SHELL).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting())));
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith("/driver/") && !url.pathname.startsWith("/static/")) return;
  const key = url.pathname.startsWith("/driver/") ? url.pathname : request;  // ?notice=… is the same page
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && !response.redirected) {
          const copy = response.clone();
          caches.open(SHELL).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit || Response.error())),
  );
});
