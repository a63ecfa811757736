// Progressive enhancements only: every action works without this file.
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button.copy");
  if (!b || !navigator.clipboard) return;
  navigator.clipboard.writeText(b.dataset.copy).then(function () {
    var t = b.textContent;
    b.textContent = "copied";
    setTimeout(function () { b.textContent = t; }, 1200);
  });
});
document.addEventListener("submit", function (ev) {
  var msg = ev.target.dataset.confirm;
  if (msg && !window.confirm(msg)) ev.preventDefault();
});
