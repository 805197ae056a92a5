// The add-deployment page: the version and alias lists show only the chosen model's (their options carry
// data-model); the server refuses any other (inference/deployments/admin_forms.py).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const model = document.getElementById("id_model");
  if (!model) return;
  function filter() {
    for (const select of document.querySelectorAll("select[data-filter-by-model]")) {
      for (const option of select.options) {
        if (!option.dataset.model) continue;
        const mine = option.dataset.model === model.value;
        option.hidden = !mine;
        if (!mine && option.selected) select.value = "";
      }
    }
  }
  model.addEventListener("change", filter);
  filter();
});
