// The console's map: stores as circle markers (and a campaign's radii) from the container's data-map
// attribute. Tiles only when a tile URL is configured; without them the markers stand on a plain
// background and the map is still usable.
(function () {
  "use strict";
  var element = document.getElementById("map");
  if (!element || typeof L === "undefined") {
    return;
  }
  var data;
  try {
    data = JSON.parse(element.getAttribute("data-map") || "{}");
  } catch (err) {
    return;
  }
  var stores = Array.isArray(data.stores) ? data.stores : [];
  var map = L.map(element, { scrollWheelZoom: false });
  if (data.tiles) {
    L.tileLayer(data.tiles, {
      maxZoom: 19,
      attribution: "&copy; OpenStreetMap contributors",
    }).addTo(map);
  }
  var points = [];
  stores.forEach(function (store) {
    var at = [store.lat, store.lon];
    points.push(at);
    if (data.radius_m) {
      L.circle(at, { radius: data.radius_m, color: "#0b57d0", weight: 1, fillOpacity: 0.15 }).addTo(map);
    }
    L.circleMarker(at, { radius: 7, color: "#1d1d1f", weight: 2, fillColor: "#0b57d0", fillOpacity: 0.9 })
      .bindTooltip(store.name + " (" + store.id + ")")
      .addTo(map);
  });
  if (points.length === 1) {
    map.setView(points[0], 15);
  } else if (points.length > 1) {
    map.fitBounds(points, { padding: [24, 24], maxZoom: 16 });
  } else {
    map.setView([55.7558, 37.6173], 10);
  }
  element.setAttribute("data-markers", String(stores.length));
})();
