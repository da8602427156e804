// The little the hosted pages do in the browser. Everything works without it except the automatic
// return to the shop, which then waits for the payer's click (the form's button).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // The result goes back to the shop at once, as the gateway's pages do.
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) { form.submit(); });

  // Card numbers read in groups of four as they are typed; the server takes digits only.
  var card = document.querySelector("input[name=card_number]");
  if (card) {
    card.addEventListener("input", function () {
      var digits = card.value.replace(/\D/g, "").slice(0, 19);
      card.value = digits.replace(/(\d{4})(?=\d)/g, "$1 ");
    });
  }

  // "Send code": the test environment sends nothing; the note says which codes work.
  document.querySelectorAll("[data-send-code]").forEach(function (button) {
    button.addEventListener("click", function () {
      var note = button.closest(".field").querySelector("[data-code-sent]");
      if (note) { note.hidden = false; }
      var input = button.closest(".field").querySelector("input");
      if (input) { input.focus(); }
    });
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  // One submission per page: a double click must not send the payment twice. Disabled after the
  // browser has read the clicked button's name and value into the submission.
  document.querySelectorAll("form[method=post]:not([data-autosubmit])").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
});
