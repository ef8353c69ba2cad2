// Live preview: while the editor types the intro, reload the sandboxed preview with it
// (nothing is saved until "Save"). Loaded as a file: the CSP forbids inline scripts.
(function () {
  "use strict";
  var intro = document.querySelector("#draft-form textarea[name=intro]");
  var frame = document.querySelector("iframe.preview");
  if (!intro || !frame) { return; }
  var timer = null;
  intro.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      frame.src = "/admin/issue/preview.html?intro=" + encodeURIComponent(intro.value.slice(0, 5000));
    }, 500);
  });
})();
