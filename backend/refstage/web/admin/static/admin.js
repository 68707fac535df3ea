// Progressive enhancement only: every feature works without this file.
(function () {
  // Milestone picker: choosing a milestone fills the rule box at once (the "Use milestone" button does the same server-side).
  var picker = document.getElementById("milestone");
  var rule = document.getElementById("rule");
  if (picker && rule) {
    picker.addEventListener("change", function () {
      var opt = picker.options[picker.selectedIndex];
      if (opt && opt.dataset.rule) { rule.value = opt.dataset.rule; }
    });
  }
  // Review queue and ledger: "select all" checkboxes.
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name='" + box.dataset.selectAll + "']").forEach(function (b) { b.checked = box.checked; });
    });
  });
})();
