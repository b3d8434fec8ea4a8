// The coordinator's plan map: routes in one colour per driver, numbered stops, depots, stops left out.
// Data from the JSON at #map[data-url]; redrawn whenever the server says the plan changed (HX-Trigger:
// plan-changed). With no tile URL configured the map draws on a plain background (works offline).
(function () {
  "use strict";
  var COLOURS = ["#1d4ed8", "#b91c1c", "#047857", "#7c3aed", "#c2410c", "#0e7490", "#be185d", "#4d7c0f",
                 "#92400e", "#334155"];
  var map = null, layer = null, fitted = false;

  // Everything from map.json is text (addresses come from clinics): build elements and set
  // textContent, never an HTML string, so markup in the data shows as typed.
  function textElement(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = String(text);
    return el;
  }

  function icon(text, colour, locked) {
    return L.divIcon({className: "stop-icon", iconSize: [26, 26], iconAnchor: [13, 13],
      html: textElement("span", "stop-num c" + Number(colour) + (locked ? " locked" : ""), text)});
  }

  function draw(data) {
    if (!map) return;
    if (layer) layer.remove();
    layer = L.featureGroup().addTo(map);
    data.depots.forEach(function (d) {
      L.marker([d.lat, d.lon], {icon: L.divIcon({className: "depot-icon", iconSize: [18, 18]}),
        title: "Depot: " + d.name, alt: "Depot: " + d.name}).addTo(layer);
    });
    data.routes.forEach(function (r) {
      var colour = COLOURS[r.colour % COLOURS.length];
      var points = r.stops.map(function (s) { return [s.lat, s.lon]; });
      if (r.start) points = [r.start].concat(points);
      if (points.length > 1) L.polyline(points, {color: colour, weight: 4, opacity: 0.8}).addTo(layer);
      r.stops.forEach(function (s) {
        var title = r.driver + ", stop " + s.seq + " at " + s.eta + ": " + s.label + " (" + s.boxes + " boxes)";
        L.marker([s.lat, s.lon], {icon: icon(s.seq, r.colour, s.locked), title: title, alt: title,
          keyboard: false}).addTo(layer);
      });
    });
    data.unassigned.forEach(function (s) {
      L.circleMarker([s.lat, s.lon], {radius: 7, color: "#6b7280", fillColor: "#e5e7eb", fillOpacity: 1})
        .bindTooltip(textElement("span", "", "Not on a route: " + s.label + " (" + s.reason.replace(/_/g, " ") + ")"))
        .addTo(layer);
    });
    var bounds = layer.getBounds();
    if (bounds.isValid() && !fitted) { map.fitBounds(bounds, {padding: [20, 20]}); fitted = true; }
    document.getElementById("map").setAttribute("data-drawn", String(data.version));
  }

  function load() {
    var el = document.getElementById("map");
    if (!el || !el.dataset.url) return;
    fetch(el.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) draw(data); });
  }

  function init() {
    if (window.htmx) {
      // Conflicts (409) carry the current day: swap them like any other answer.
      htmx.config.responseHandling = [{code: "204", swap: false}, {code: "[23]..", swap: true},
        {code: "409", swap: true}, {code: "[45]..", swap: false, error: true}];
    }
    var el = document.getElementById("map");
    if (!el || typeof L === "undefined") return;
    map = L.map(el, {attributionControl: false, zoomControl: true});
    map.setView([37.77, -122.2], 12);
    if (el.dataset.tileUrl) L.tileLayer(el.dataset.tileUrl, {maxZoom: 19}).addTo(map);
    load();
    document.body.addEventListener("plan-changed", load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
