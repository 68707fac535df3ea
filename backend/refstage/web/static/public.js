// Progressive enhancement for the referral link: copy and native share. The page works without it.
(function () {
  "use strict";
  var status = document.querySelector("[data-share-status]");
  function say(text) { if (status) { status.textContent = text; } }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { say("Link copied."); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { input.select(); say("Press Ctrl+C (or ⌘C) to copy."); });
      } else {
        input.select();
        try { document.execCommand("copy"); done(); } catch (e) { say("Press Ctrl+C (or ⌘C) to copy."); }
      }
    });
  });
  if (navigator.share) {
    document.querySelectorAll("[data-share-url]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.share({ title: button.getAttribute("data-share-title"), text: button.getAttribute("data-share-text"),
                          url: button.getAttribute("data-share-url") }).catch(function () {});
      });
    });
  }
})();
