/* Préau — sector map: the project's own GeoJSON layers drawn with Leaflet (SVG), no basemap. */
(function () {
  "use strict";
  var el = document.getElementById("map");
  var cfgEl = document.getElementById("map-config");
  if (!el || !cfgEl || typeof L === "undefined") { return; }
  var root = document.documentElement.getAttribute("data-root") || "./";
  var cfg = JSON.parse(cfgEl.textContent);
  var palette = cfg.palette || ["#8fb8de"];
  var map = L.map(el, { zoomSnap: 0.25, attributionControl: false, preferCanvas: false, keyboard: true });
  map.getContainer().setAttribute("tabindex", "0");
  var bounds = null;

  function load(url) {
    return fetch(root + url).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status + " " + url); }
      return r.json();
    });
  }
  function grow(layer) {
    var b = layer.getBounds();
    if (b.isValid()) { bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast()); }
  }
  var layers = cfg.layers || {};
  var jobs = [
    layers.sectors ? load(layers.sectors) : Promise.resolve(null),
    layers.communes ? load(layers.communes) : Promise.resolve(null),
    layers.schools ? load(layers.schools) : Promise.resolve(null)
  ];
  Promise.all(jobs).then(function (data) {
    var i = 0;
    var toAdd = [];
    if (data[0]) {
      var sectors = L.geoJSON(data[0], {
        className: "sector",
        style: function () {
          var color = palette[i++ % palette.length];
          return { color: "#2b4a66", weight: 1.2, fillColor: color, fillOpacity: 0.75 };
        },
        onEachFeature: function (f, layer) {
          var code = (f.properties && f.properties.code_secteur) || "";
          if (code) {
            layer.bindTooltip(code, { permanent: !!cfg.labels, direction: "center", className: "sector-label" });
          }
        }
      });
      grow(sectors);
      toAdd.push(sectors);
    }
    if (data[1]) {
      var communes = L.geoJSON(data[1], {
        className: "commune", interactive: false,
        style: function () { return { color: "#222222", weight: 2.5, fill: false }; }
      });
      grow(communes);
      toAdd.push(communes);
    }
    if (data[2]) {
      var schools = L.geoJSON(data[2], {
        pointToLayer: function (f, latlng) {
          return L.circleMarker(latlng, { radius: 5, color: "#ffffff", weight: 1.5, fillColor: "#c0392b", fillOpacity: 1, className: "school" });
        },
        onEachFeature: function (f, layer) {
          var p = f.properties || {};
          layer.bindTooltip((p.nom || "") + (p.uai ? " (" + p.uai + ")" : ""));
        }
      });
      grow(schools);
      toAdd.push(schools);
    }
    if (bounds) { map.fitBounds(bounds, { padding: [12, 12] }); } else { map.setView([46.6, 2.4], 6); }
    toAdd.forEach(function (layer) { layer.addTo(map); });
    el.setAttribute("data-ready", "true");
  });
})();
