// Live updates for the operator console: follows the event stream and refreshes
// the current view from the server. No HTML is ever built from strings here: a
// fresh view is parsed by the browser (XMLHttpRequest with responseType
// "document") and its nodes are imported, so the page needs no Trusted Types
// policy at all.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.EventSource) { return; }
  var mode = main.getAttribute("data-live");
  var streamUrl = main.getAttribute("data-stream");
  if (!streamUrl || mode === "off") { return; }
  var banner = document.getElementById("stream-banner");
  var age = document.getElementById("stream-age");
  var summary = document.getElementById("live-summary");
  var newEvents = document.getElementById("new-events");
  var newCount = document.getElementById("new-events-count");
  var newLink = document.getElementById("new-events-link");
  var lastUpdate = Date.now();
  var down = false;
  var unseen = 0;
  var timer = null;
  var loading = false;
  var again = false;

  function showAge() {
    if (down && age) {
      age.textContent = ", last update " + Math.round((Date.now() - lastUpdate) / 1000) + " s ago";
    }
  }

  function typing() {
    var el = document.activeElement;
    return el && main.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  function refresh() {
    timer = null;
    if (typing()) { timer = setTimeout(refresh, 1000); return; }
    if (loading) { again = true; return; }
    loading = true;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", location.href);
    xhr.responseType = "document";
    xhr.onloadend = function () {
      loading = false;
      var doc = xhr.responseXML;
      if (xhr.status === 200 && doc && xhr.responseURL.indexOf("/console/login") !== -1) {
        location.reload();
        return;
      }
      var fresh = xhr.status === 200 && doc ? doc.getElementById("main") : null;
      if (fresh) {
        var focused = document.activeElement && main.contains(document.activeElement)
          ? document.activeElement.id : "";
        var nodes = [];
        for (var i = 0; i < fresh.childNodes.length; i++) {
          nodes.push(document.importNode(fresh.childNodes[i], true));
        }
        main.replaceChildren.apply(main, nodes);
        if (focused) {
          var target = document.getElementById(focused);
          if (target) { target.focus(); }
        }
        if (summary) { summary.textContent = "View updated at " + new Date().toISOString().slice(11, 19) + " UTC"; }
      }
      if (again) { again = false; schedule(); }
    };
    xhr.send();
  }

  function schedule() {
    if (!timer) { timer = setTimeout(refresh, 250); }
  }

  function onEvent() {
    lastUpdate = Date.now();
    if (mode === "count") {
      unseen += 1;
      if (newEvents && newCount && newLink) {
        newCount.textContent = String(unseen);
        newLink.setAttribute("href", location.href);
        newEvents.hidden = false;
      }
      if (summary) { summary.textContent = unseen + " new events"; }
    } else {
      schedule();
    }
  }

  var source = null;
  function follow() {
    source = new EventSource(streamUrl);
    source.onopen = function () {
      if (down) { schedule(); }
      down = false;
      if (banner) { banner.hidden = true; }
    };
    source.onerror = function () {
      down = true;
      if (banner) { banner.hidden = false; }
      showAge();
    };
    source.onmessage = onEvent;
  }
  follow();
  // A page being left lets go of its stream at once: a browser holds few
  // connections per server, and a kept page (back/forward cache) would otherwise
  // keep one open. Coming back to a kept page follows again and refreshes it.
  window.addEventListener("pagehide", function () {
    if (source) { source.close(); source = null; }
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && !source) { follow(); schedule(); }
  });
  setInterval(showAge, 1000);
}());
