// A little progressive enhancement; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const all of document.querySelectorAll("[data-select-all]")) {
    const form = all.closest("form");
    const boxes = () => form.querySelectorAll('input[type=checkbox][name="ids"]');
    const counter = form.querySelector("[data-selected-count]");
    const update = () => {
      const n = [...boxes()].filter((b) => b.checked).length;
      if (counter) counter.textContent = n ? `${n} selected` : "";
    };
    all.addEventListener("change", () => {
      for (const box of boxes()) box.checked = all.checked;
      update();
    });
    form.addEventListener("change", update);
  }
});
