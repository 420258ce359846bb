/* Préau — search as you type and facets, offline: reads recherche.json / ecoles.json from the site. */
(function () {
  "use strict";
  var html = document.documentElement;
  var root = html.getAttribute("data-root") || "./";
  var home = html.getAttribute("data-home") || "./";
  var form = document.getElementById("search-form");
  if (!form) { return; }
  var input = document.getElementById("q");
  var list = document.getElementById("dataset-list");
  var countEl = document.getElementById("result-count");
  var noResult = document.getElementById("no-result");
  var schoolSection = document.getElementById("school-section");
  var schoolList = document.getElementById("school-results");
  var datasets = null;
  var schools = null;
  var schoolsLoading = false;
  var MAX_SCHOOLS = 20;

  function fold(text) {
    return String(text || "").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }
  function tokens(query) {
    return fold(query).split(/\s+/).filter(function (t) { return t.length > 0; });
  }
  function matches(text, toks) {
    for (var i = 0; i < toks.length; i++) {
      if (text.indexOf(toks[i]) === -1) { return false; }
    }
    return true;
  }
  function selected() {
    var out = {};
    var boxes = form.querySelectorAll("input[type=checkbox]:checked");
    for (var i = 0; i < boxes.length; i++) {
      (out[boxes[i].name] = out[boxes[i].name] || []).push(boxes[i].value);
    }
    return out;
  }
  function facetOk(doc, chosen) {
    for (var key in chosen) {
      if (!Object.prototype.hasOwnProperty.call(chosen, key)) { continue; }
      var values = doc[key];
      if (!Array.isArray(values)) { values = [values]; }
      var hit = false;
      for (var i = 0; i < chosen[key].length; i++) {
        if (values.indexOf(chosen[key][i]) !== -1) { hit = true; break; }
      }
      if (!hit) { return false; }
    }
    return true;
  }
  function update() {
    if (!datasets) { return; }
    var toks = tokens(input.value);
    var chosen = selected();
    var shown = 0;
    var items = list.querySelectorAll("li[data-name]");
    for (var i = 0; i < items.length; i++) {
      var doc = datasets[items[i].getAttribute("data-name")];
      var ok = !!doc && matches(doc.text, toks) && facetOk(doc, chosen);
      items[i].hidden = !ok;
      if (ok) { shown++; }
    }
    countEl.textContent = (countEl.getAttribute("data-template") || "{n}").replace("{n}", String(shown));
    noResult.hidden = shown > 0;
    updateSchools(toks);
  }
  function updateSchools(toks) {
    var query = toks.join(" ");
    if (query.length < 2) {
      schoolSection.hidden = true;
      return;
    }
    if (!schools) { loadSchools(); return; }
    while (schoolList.firstChild) { schoolList.removeChild(schoolList.firstChild); }
    var n = 0;
    for (var i = 0; i < schools.length && n < MAX_SCHOOLS; i++) {
      var s = schools[i];
      if (!matches(s[3], toks)) { continue; }
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = home + "ecoles/" + encodeURIComponent(s[0]) + ".html";
      a.textContent = s[1];
      li.appendChild(a);
      li.appendChild(document.createTextNode(" — " + s[2] + " (" + s[0] + ")"));
      schoolList.appendChild(li);
      n++;
    }
    schoolSection.hidden = n === 0;
  }
  function loadSchools() {
    if (schoolsLoading) { return; }
    schoolsLoading = true;
    fetch(root + "ecoles.json").then(function (r) { return r.json(); }).then(function (data) {
      schools = data.schools || [];
      update();
    });
  }
  form.addEventListener("submit", function (e) { e.preventDefault(); update(); });
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("reset", function () { window.setTimeout(update, 0); });
  fetch(root + "recherche.json").then(function (r) { return r.json(); }).then(function (data) {
    datasets = {};
    (data.datasets || []).forEach(function (d) { datasets[d.name] = d; });
    var params = new URLSearchParams(window.location.search);
    if (params.get("q")) { input.value = params.get("q"); }
    form.setAttribute("data-ready", "true");
    update();
  });
})();
