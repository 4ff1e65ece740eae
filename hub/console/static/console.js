// The console's only script of its own (CSP: script-src 'self', no inline code, no eval).
// It marks whether the live connection of the queues page is open, for people and for tests.
(function () {
  "use strict";
  function mark(state) {
    document.body.dataset.live = state;
    var dot = document.getElementById("live-state");
    if (dot) { dot.dataset.state = state; }
  }
  document.addEventListener("htmx:sseOpen", function () { mark("open"); });
  document.addEventListener("htmx:sseError", function () { mark("error"); });
  document.addEventListener("htmx:sseMessage", function () {
    document.body.dataset.liveMessages = String(Number(document.body.dataset.liveMessages || "0") + 1);
  });
})();
