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
  // Narrow screens: each table cell carries its column's name, so CSS can stack rows as cards
  // (without this file, tables scroll inside their own box instead of widening the page).
  document.querySelectorAll("main table").forEach(function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
    if (!heads.length) { return; }
    table.classList.add("stacks");
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (cell, i) {
        if (heads[i] && !cell.hasAttribute("data-label") && !cell.hasAttribute("colspan")) { cell.setAttribute("data-label", heads[i]); }
      });
    });
  });
  // Review queue and ledger: "select all" checkboxes.
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name='" + box.dataset.selectAll + "']").forEach(function (b) { b.checked = box.checked; });
    });
  });
})();
