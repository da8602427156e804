// The dashboard: reads and drives the emulator through its control API, with URLs relative to
// this page (so /_sandbox/<id>/_emulator/ shows that sandbox), and refreshes every few seconds.
// Every value from the emulator goes into the page as text (text nodes, attributes set one by
// one): merchants' values are never parsed as HTML, and no link is made from them.
"use strict";

(function () {
  var REFRESH_MS = 3000;
  var ROWS = 200;                   // the newest rows each table shows
  var KST_OFFSET = 9 * 3600 * 1000; // the emulator speaks Korean time

  var W = JSON.parse(document.getElementById("dashboard-words").textContent);
  var token = document.querySelector("meta[name=emulator-control-token]").content;
  var sandbox = new URLSearchParams(location.search).get("sandbox") || "";
  var base = location.pathname.replace(/\/?$/, "/");
  var sandboxInPath = (base.match(/\/_sandbox\/([^/]+)\/_emulator\/$/) || [])[1];
  // The root's dashboard, from which every sandbox's is /_sandbox/<id>/_emulator/ (the picker's way).
  var rootBase = base.replace(/_sandbox\/[^/]+\/_emulator\/$/, "_emulator/");

  var state = {clock: null, clockAt: 0, payments: [], callbacks: [], scenario: null, journal: [], sandboxes: [],
               globalPayments: [], globalNotifications: []};
  var rendered = {};          // what each table last showed, so an unchanged table is left alone
  var expanded = new Set();   // detail rows the user opened, kept open across refreshes
  var filter = "";
  var refundAmounts = {};     // what the user typed in a Global payment's refund box, by token, across refreshes
  var timer = null, inFlight = null, queued = null;

  // --- words and numbers --------------------------------------------------------------------

  function say(key, values) {
    var text = Object.prototype.hasOwnProperty.call(W, key) ? W[key] : key;
    return String(text).replace(/\{(\w+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  function word(table, key) {
    var found = W[table] && Object.prototype.hasOwnProperty.call(W[table], key) ? W[table][key] : null;
    return found === null ? String(key) : found;
  }

  function won(amount) {
    if (amount === null || amount === undefined || amount === "") { return W.none; }
    return say("won", {amount: Number(amount).toLocaleString("ko-KR")});
  }

  // A Payletter Global amount as the currency writes it ("USD 10.00"), as the hosted page shows it.
  function money(amount, currency) {
    if (amount === null || amount === undefined || amount === "") { return W.none; }
    return say("money", {currency: currency, amount: amount});
  }

  // Epoch milliseconds of a number, an ISO 8601 moment, or the gateway's "YYYY-MM-DD HH:MM:SS" (KST).
  function moment(value) {
    if (typeof value === "number") { return value; }
    if (!value) { return NaN; }
    var text = String(value);
    if (/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$/.test(text)) { text = text.replace(" ", "T") + "+09:00"; }
    return Date.parse(text);
  }

  function kst(value) {
    var t = moment(value);
    if (isNaN(t)) { return value ? String(value) : W.none; }
    return new Date(t + KST_OFFSET).toISOString().slice(0, 19).replace("T", " ");
  }

  function span(milliseconds) {
    var s = Math.round(Math.abs(milliseconds) / 1000);
    if (s < 60) { return say("seconds", {n: s}); }
    var m = Math.floor(s / 60);
    if (m < 60) { return say("minutes", {n: m}); }
    var hours = Math.floor(m / 60);
    if (hours < 24) { return say("hours", {n: hours}) + (m % 60 ? " " + say("minutes", {n: m % 60}) : ""); }
    var days = Math.floor(hours / 24);
    return say("days", {n: days}) + (hours % 24 ? " " + say("hours", {n: hours % 24}) : "");
  }

  function emulatorNow() {
    if (!state.clock) { return NaN; }
    var t = moment(state.clock.now);
    return state.clock.frozen ? t : t + (performance.now() - state.clockAt);
  }

  // "in 5 min", "3 h ago", or "due now", on the emulator's clock.
  function relative(value) {
    var delta = moment(value) - emulatorNow();
    if (isNaN(delta)) { return ""; }
    if (delta <= 0 && delta > -1000) { return W.due_now; }
    return delta > 0 ? say("in", {span: span(delta)}) : say("ago", {span: span(delta)});
  }

  // --- building the page: elements and text nodes only ------------------------------------------

  function h(tag, props) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (name) {
      var value = props[name];
      if (value === null || value === undefined || value === false) { return; }
      if (name === "class") { node.className = value; } else if (name === "testid") {
        node.setAttribute("data-testid", value);
      } else { node.setAttribute(name, value === true ? "" : String(value)); }
    });
    for (var i = 2; i < arguments.length; i++) { add(node, arguments[i]); }
    return node;
  }

  function add(node, child) {
    if (child === null || child === undefined || child === false) { return; }
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function one(selector) { return document.querySelector(selector); }

  function setText(node, text) { if (node.textContent !== text) { node.textContent = text; } }

  var TONES = {created: "neutral", page_entered: "info", awaiting_deposit: "warn", approved: "ok", verified: "ok",
               failed: "bad", abandoned: "muted", cancelled: "muted", partly_cancelled: "warn", pending: "warn",
               delivered: "ok", requested: "info", issued: "ok", paid: "ok", declined: "bad",
               partially_refunded: "warn", refunded: "muted"};

  function badge(status, testid) {
    return h("span", {class: "badge tone-" + (TONES[status] || "neutral"), "data-status": status, testid: testid},
             word("statuses", status));
  }

  function badges() {
    return h("td", null, h("div", {class: "badges"}, Array.prototype.slice.call(arguments)));
  }

  function code(text, extra) { return h("code", {class: extra || null}, text); }

  // A body as JSON, indented; text that is not JSON (a form, a cut body) as it came.
  function json(value) {
    var shown = asData(value);
    return h("pre", {class: "json"}, typeof shown === "string" ? shown : JSON.stringify(shown, null, 2));
  }

  // What the journal kept as text, read as JSON when it is.
  function asData(value) {
    return typeof value === "string" ? parsed(value) : value;
  }

  function parsed(text) {
    try { return JSON.parse(text, exact); } catch (ignored) { return text; }
  }

  function toggle(key) {
    var open = expanded.has(key);
    return h("button", {type: "button", class: "link", "data-action": "toggle", "data-key": key,
                        "aria-expanded": open ? "true" : "false", testid: "details"}, open ? W.hide : W.details);
  }

  function detailRow(columns, content) {
    return h("tr", {class: "detail"}, h("td", {colspan: columns}, h("div", {class: "detail-body"}, content)));
  }

  function facts(pairs) {
    var shown = pairs.filter(function (p) { return p[1] !== null && p[1] !== undefined && p[1] !== ""; });
    if (!shown.length) { return null; }
    return h("dl", {class: "facts"}, shown.map(function (p) {
      return h("div", null, h("dt", null, p[0]), h("dd", null, p[1]));
    }));
  }

  function block(title, content) {
    return content ? h("div", {class: "block"}, h("h4", null, title), content) : null;
  }

  function miniTable(headers, rows) {
    return h("table", {class: "mini"},
      h("thead", null, h("tr", null, headers.map(function (x) {
        return h("th", {class: x.charAt(0) === "#" ? "num" : null}, x.replace(/^#/, ""));
      }))),
      h("tbody", null, rows));
  }

  // A table's rows, its count, and the line under it (empty, nothing matches, only the newest).
  function fill(name, rows, total, matched, shown, emptyKey) {
    one("[data-body=" + name + "]").replaceChildren.apply(one("[data-body=" + name + "]"), rows);
    var count = one("[data-count=" + name + "]");
    if (count) { setText(count, String(total)); }
    var note = one("[data-empty=" + name + "]");
    var text = total === 0 ? say(emptyKey) : matched === 0 ? say("no_match")
      : shown < matched ? say("showing", {shown: shown, total: matched}) : "";
    note.hidden = text === "";
    setText(note, text);
  }

  function matches(values) {
    if (!filter) { return true; }
    return values.some(function (v) {
      return v !== null && v !== undefined && String(v).toLowerCase().indexOf(filter) >= 0;
    });
  }

  function changed(name, data) {
    var key = JSON.stringify([data, filter, Array.from(expanded).sort()]);
    if (rendered[name] === key) { return false; }
    rendered[name] = key;
    return true;
  }

  // The one way a list becomes a table: newest first, the filter applied to what `spec.values`
  // gives, the newest ROWS shown, each row (`spec.row`) followed by its details (`spec.detail`)
  // when the user opened them (`spec.key` names a row's details across refreshes).
  function listTable(name, list, spec) {
    var all = list.slice().reverse();
    var matched = all.filter(function (item) { return matches(spec.values(item)); });
    var shown = matched.slice(0, ROWS);
    var rows = [];
    shown.forEach(function (item) {
      var key = spec.key ? spec.key(item) : null;
      var row = spec.row(item, key);
      rows.push(row);
      if (key !== null && expanded.has(key)) {
        row.classList.add("open");
        rows.push(detailRow(row.children.length, spec.detail(item)));
      }
    });
    fill(name, rows, all.length, matched.length, shown.length, spec.empty);
  }

  // --- the sections -----------------------------------------------------------------------------

  function paymentValues(p) {
    return [p.tid, p.token, p.order_no, p.user_id, p.user_name, p.product_name, p.pgcode, p.paid_pgcode,
            p.status, p.client_id];
  }

  function methodCell(p) {
    var pgcode = p.paid_pgcode || p.pgcode;
    return [h("span", {class: "primary-text"}, word("methods", pgcode)), code(pgcode, "secondary-text")];
  }

  function cancelStatus(p) {
    if (!p.cancelled_amount) { return null; }
    return p.remaining === 0 ? "cancelled" : "partly_cancelled";
  }

  function paymentDetail(p) {
    var d = p.details || {};
    var request = p.request || {};
    var install = d.install_month && d.install_month !== "00" ? d.install_month : null;
    var cancellations = (p.cancellations || []).map(function (c) {
      return h("tr", {testid: "cancellation"}, h("td", null, kst(c.cancel_date)), h("td", null, c.partial ? W.partial : W.full),
               h("td", {class: "num"}, won(c.amount)), h("td", {class: "num"}, won(c.tax_amount)),
               h("td", {class: "num"}, won(c.taxfree_amount)), h("td", null, c.ip_addr || W.none));
    });
    var receipts = (p.cash_receipts || []).map(function (r) {
      var issued = r.details || {};
      var usage = issued.type || r.type;
      return h("tr", {testid: "cash-receipt"}, h("td", null, badge(r.status)),
               h("td", null, word("cash_receipt_types", usage)),
               h("td", null, issued.payer_sid ? code(issued.payer_sid) : W.none),
               h("td", null, issued.cid ? code(issued.cid) : W.none), h("td", null, kst(r.created_at)));
    });
    return [
      block(W.payment_details, facts([
        [W.transaction_date, p.tid ? kst(p.transaction_date) : null], ["cid", p.cid ? code(p.cid) : null],
        [W.pay_info, d.pay_info], [W.card_info, d.card_info ? code(d.card_info) : null],
        [W.install_month, install], [W.bank, d.bank_name ? d.bank_name + " " + (d.account_no || "") : null],
        [W.issue_tid, d.issue_tid], [W.billkey, p.billkey ? code(p.billkey) : null],
        [W.callback_url, request.callback_url], [W.return_url, request.return_url],
        [W.custom_parameter, p.custom_parameter]])),
      cancellations.length ? block(W.cancellations, miniTable(
        [W.col_date, W.col_kind_cancel, "#" + W.col_amount, "#" + W.col_tax, "#" + W.col_taxfree, W.col_ip], cancellations)) : null,
      receipts.length ? block(W.cash_receipts, miniTable(
        [W.col_status, W.col_usage, W.col_payer_sid, W.col_cid, W.col_created], receipts)) : null,
    ];
  }

  function paymentRow(p, key) {
    var cancel = cancelStatus(p);
    return h("tr", {testid: "payment-row", "data-tid": p.tid || "", "data-token": p.token, "data-status": p.status},
      h("td", {class: "time"}, kst(p.created_at)),
      h("td", null, p.tid ? code(p.tid, "primary-text") : null, h("span", {class: "secondary-text mono"}, String(p.token))),
      h("td", {class: "mono", testid: "order-no"}, p.order_no || W.none),
      h("td", null, methodCell(p)),
      h("td", {class: "wrap"}, h("span", {class: "primary-text", testid: "product-name"}, p.product_name),
        h("span", {class: "secondary-text", testid: "buyer"}, p.user_id + (p.user_name ? " · " + p.user_name : ""))),
      h("td", {class: "num", testid: "amount"}, won(p.amount)),
      h("td", {class: "num", testid: "cancelled"}, p.cancelled_amount ? won(p.cancelled_amount) : W.none),
      h("td", {class: "num", testid: "remaining"}, p.remaining === null ? W.none : won(p.remaining)),
      badges(badge(p.status, "status"), cancel ? badge(cancel, "cancel-status") : null,
        (p.cash_receipts || []).length ? h("span", {class: "badge tone-info"}, W.cash_receipts) : null),
      h("td", {class: "actions"}, toggle(key)));
  }

  function renderPayments() {
    listTable("payments", state.payments, {values: paymentValues, key: function (p) { return "p" + (p.tid || p.token); },
                                           row: paymentRow, detail: paymentDetail, empty: "no_payments"});
  }

  function expiry(d) {
    var date = String(d.expire_date || ""), time = String(d.expire_time || "");
    if (date.length !== 8) { return NaN; }
    return moment(date.slice(0, 4) + "-" + date.slice(4, 6) + "-" + date.slice(6) + " " +
                  (time.slice(0, 2) || "23") + ":" + (time.slice(2, 4) || "59") + ":59");
  }

  function accountRow(p) {
    var d = p.details || {};
    var ends = expiry(d);
    var over = ends < emulatorNow();
    return h("tr", {testid: "account-row", "data-tid": p.tid},
      h("td", null, code(p.tid, "primary-text"), h("span", {class: "secondary-text mono"}, p.order_no || "")),
      h("td", null, h("span", {class: "primary-text"}, (d.bank_name || "") + " ", code(d.account_no || "")),
        h("span", {class: "secondary-text"}, d.account_holder || "")),
      h("td", {class: "num", testid: "amount"}, won(p.amount)),
      h("td", {class: "time"}, isNaN(ends) ? W.none : kst(ends).slice(0, 16),
        h("span", {class: "secondary-text" + (over ? " bad-text" : "")}, over ? W.expired : relative(ends))),
      h("td", {class: "actions"}, h("button", {type: "button", class: "primary", "data-action": "deposit",
                                               "data-tid": p.tid, testid: "deposit"}, W.deposit)));
  }

  function renderAccounts() {
    var waiting = state.payments.filter(function (p) { return p.status === "awaiting_deposit"; });
    listTable("accounts", waiting, {values: paymentValues, row: accountRow, empty: "no_accounts"});
  }

  function attemptResult(a) {
    if (!a) { return W.none; }
    var text = a.http_status !== null && a.http_status !== undefined ? "HTTP " + a.http_status : "";
    if (a.error) { text = text ? text + " · " + a.error : a.error; }
    return text || "HTTP";
  }

  // A notification's details (a domestic callback's, a Global one's): `first` leads (Global's hash).
  function callbackDetail(c, first) {
    var attempts = (c.attempts || []).map(function (a) {
      return h("tr", {testid: "attempt", "data-kind": a.kind},
        h("td", {class: "num"}, a.number), h("td", null, word("attempt_kinds", a.kind)),
        h("td", {class: "time"}, kst(a.scheduled_at)), h("td", {class: "time"}, kst(a.at)),
        h("td", {class: a.error ? "bad-text" : "ok-text"}, a.http_status === null ? W.none : a.http_status),
        h("td", {class: "num"}, a.latency_ms === null || a.latency_ms === undefined ? W.none : say("ms", {n: a.latency_ms})),
        h("td", {class: "wrap"}, a.error ? h("span", {class: "bad-text"}, a.error) : null,
          a.response_body ? code(a.response_body, "answer") : null));
    });
    var warnings = (c.warnings || []).map(function (w) { return h("li", {testid: "callback-warning"}, w); });
    var fault = c.fault && Object.keys(c.fault).length ? c.fault : null;
    return [
      first || null,
      block(W.attempts, miniTable([W.col_number, W.col_kind, W.col_scheduled, W.col_sent, W.col_http,
                                   "#" + W.col_latency, W.col_response], attempts)),
      warnings.length ? block(W.warnings, h("ul", {class: "warnings"}, warnings)) : null,
      fault ? block(W.fault, json(fault)) : null,
      block(W.body, json(c.body)),
    ];
  }

  function warningsNote(c) {
    return (c.warnings || []).length ? h("span", {class: "secondary-text warn-text", title: c.warnings.join("\n")},
                                         "⚠ " + c.warnings.length + " " + W.warnings) : null;
  }

  // The cells every notification's row ends with: its status, attempts, last result, next attempt,
  // and Resend (one extra attempt now) beside its details.
  function deliveryCells(c, key) {
    var attempts = c.attempts || [];
    var last = attempts[attempts.length - 1];
    var extra = attempts.length - c.attempts_made;
    return [
      badges(badge(c.status, "status"), c.held ? h("span", {class: "badge tone-muted"}, W.held) : null),
      h("td", {class: "num", testid: "attempts"}, String(c.attempts_made) + (extra > 0 ? " + " + extra : "")),
      h("td", {class: "wrap result " + (last && last.error ? "bad-text" : "ok-text"), testid: "last-result",
               title: last ? attemptResult(last) : null}, h("span", {class: "clamp"}, attemptResult(last))),
      h("td", {class: "time"}, c.next_attempt_at ? [kst(c.next_attempt_at),
        h("span", {class: "secondary-text"}, relative(c.next_attempt_at))] : W.none),
      h("td", {class: "actions"}, h("button", {type: "button", class: "secondary", "data-action": "resend",
                                               "data-id": c.id, testid: "resend"}, W.resend), toggle(key))];
  }

  function callbackRow(c, key) {
    return h("tr", {testid: "callback-row", "data-id": c.id, "data-tid": c.tid, "data-status": c.status},
      h("td", {class: "mono"}, c.id),
      h("td", null, code(c.tid, "primary-text")),
      h("td", {class: "wrap url"}, code(c.url), warningsNote(c)),
      deliveryCells(c, key));
  }

  function isGlobal(c) { return c.gateway === "global"; }

  // The domestic gateway's callbacks; Payletter Global's notifications have a section of their own.
  function renderCallbacks() {
    listTable("callbacks", state.callbacks.filter(function (c) { return !isGlobal(c); }), {
      values: function (c) { return [c.id, c.tid, c.url, c.status]; }, key: function (c) { return "c" + c.id; },
      row: callbackRow, detail: function (c) { return callbackDetail(c); }, empty: "no_callbacks"});
  }

  // --- Payletter Global: its payments (by token) and its notifications (by paytoken) ---

  var REFUNDABLE = ["paid", "partially_refunded"];

  function globalPaymentValues(g) {
    var request = g.request || {};
    return [g.token, g.paytoken, g.order_no, g.store_id, g.pginfo, g.currency, g.service_name, g.status,
            request.payerid, request.payeremail];
  }

  function globalActions(g) {
    if (g.status === "requested") {
      return [h("button", {type: "button", class: "primary", "data-action": "global-approve", "data-token": g.token,
                           testid: "approve"}, W.approve),
              h("button", {type: "button", class: "secondary", "data-action": "global-decline", "data-token": g.token,
                           testid: "decline"}, W.decline)];
    }
    if (REFUNDABLE.indexOf(g.status) < 0) { return null; }
    return [h("input", {type: "text", inputmode: "decimal", class: "amount-input", "data-refund-amount": g.token,
                        testid: "refund-amount", placeholder: g.remaining_amount, "aria-label": W.refund_amount,
                        value: refundAmounts[g.token] || null}),
            h("button", {type: "button", class: "secondary", "data-action": "global-refund", "data-token": g.token,
                         testid: "refund"}, W.refund)];
  }

  function globalPaymentRow(g, key) {
    var request = g.request || {};
    return h("tr", {testid: "global-payment-row", "data-token": g.token, "data-paytoken": g.paytoken || "",
                    "data-status": g.status},
      h("td", {class: "time"}, kst(g.created_at)),
      h("td", null, g.paytoken ? code(g.paytoken, "primary-text") : null,
        h("span", {class: "secondary-text mono"}, String(g.token))),
      h("td", null, h("span", {class: "primary-text mono", testid: "order-no"}, g.order_no),
        h("span", {class: "secondary-text mono", testid: "store-id"}, g.store_id)),
      h("td", null, code(g.pginfo, "primary-text"),
        g.card_kind ? h("span", {class: "secondary-text mono", testid: "card"}, g.card_kind + " " + g.card_no) : null),
      h("td", {class: "wrap"}, h("span", {class: "primary-text", testid: "service-name"}, g.service_name || W.none),
        h("span", {class: "secondary-text", testid: "payer"},
          [request.payerid, request.payeremail].filter(Boolean).join(" · "))),
      h("td", {class: "num", testid: "amount"}, money(g.amount, g.currency)),
      h("td", {class: "num", testid: "refunded"}, g.refunded_units ? money(g.refunded_amount, g.currency) : W.none),
      h("td", {class: "num", testid: "remaining"}, money(g.remaining_amount, g.currency)),
      badges(badge(g.status, "status")),
      h("td", {class: "actions"}, globalActions(g), toggle(key)));
  }

  function globalPaymentDetail(g) {
    var request = g.request || {};
    var refunds = (g.refunds || []).map(function (r) {
      return h("tr", {testid: "refund-row"}, h("td", null, kst(r.trantime)), h("td", null, code(r.generation)),
               h("td", {class: "num"}, money(r.amount, g.currency)));
    });
    return [
      block(W.payment_details, facts([
        ["trantime", g.trantime ? kst(g.trantime) : null], ["cardkind", g.card_kind], ["cardno", g.card_no ? code(g.card_no) : null],
        ["poqtoken", g.poqtoken ? code(g.poqtoken) : null], ["payeremail", request.payeremail],
        ["returnurl", request.returnurl], ["notiurl", request.notiurl], ["backurl", request.backurl],
        ["custom", request.custom]])),
      refunds.length ? block(W.refunds, miniTable([W.col_date, W.col_generation, "#" + W.col_amount], refunds)) : null,
    ];
  }

  function renderGlobalPayments() {
    listTable("global-payments", state.globalPayments, {
      values: globalPaymentValues, key: function (g) { return "g" + g.token; },
      row: globalPaymentRow, detail: globalPaymentDetail, empty: "no_global_payments"});
  }

  function globalNotificationRow(n, key) {
    var form = n.body || {};
    return h("tr", {testid: "global-notification-row", "data-id": n.id, "data-paytoken": n.tid,
                    "data-notifytype": form.notifytype, "data-status": n.status},
      h("td", {class: "mono"}, n.id),
      h("td", null, code(n.tid, "primary-text"), h("span", {class: "secondary-text mono"}, form.storeorderno || "")),
      h("td", null, h("span", {class: "primary-text", testid: "notifytype"}, word("notify_types", form.notifytype)),
        h("span", {class: "secondary-text", testid: "payamt"}, money(form.payamt, form.currency))),
      h("td", {class: "wrap url"}, code(n.url), warningsNote(n)),
      h("td", {class: "wrap hash", testid: "hash"}, code(form.hash || "")),
      deliveryCells(n, key));
  }

  function globalNotificationDetail(n) {
    var form = n.body || {};
    return callbackDetail(n, block(W.notification, facts([
      ["hash", code(form.hash || "")], ["timestamp", form.timestamp], ["notifyid", form.notifyid],
      ["retcode", form.retcode], ["retmsg", form.retmsg]])));
  }

  function renderGlobalNotifications() {
    listTable("global-notifications", state.globalNotifications, {
      values: function (n) { var form = n.body || {}; return [n.id, n.tid, n.url, n.status, form.storeorderno, form.hash]; },
      key: function (n) { return "n" + n.id; }, row: globalNotificationRow, detail: globalNotificationDetail,
      empty: "no_global_notifications"});
  }

  function scenarioLoaded(s) {
    var doc = s && s.scenario;
    return !!doc && !(doc.name === "none" && !(s.rules || []).length && !(s.jobs || []).length && !doc.timeline);
  }

  function renderScenario() {
    var s = state.scenario || {rules: [], jobs: []};
    var loaded = scenarioLoaded(s);
    setText(one("[data-testid=scenario-name]"), loaded ? (s.scenario.name || "") : "");
    setText(one("[data-testid=scenario-description]"),
            loaded ? (s.scenario.description || W.scenario_note) : W.no_scenario);
    var rules = (s.rules || []).map(function (r) {
      return h("tr", {testid: "rule-row", "data-rule": r.name},
        h("td", {class: "primary-text"}, r.name), h("td", null, code(r.stage)), h("td", null, code(r.outcome)),
        h("td", {class: "num"}, r.times === "always" ? W.always : r.times),
        h("td", {class: "num strong", testid: "applied"}, r.applied));
    });
    fill("rules", rules, rules.length, rules.length, rules.length, "no_rules");
    var jobs = (s.jobs || []).map(function (j) {
      return h("tr", {testid: "job-row", "data-kind": j.kind, "data-done": j.done ? "true" : "false"},
        h("td", {class: "time"}, kst(j.due_at), j.done ? null : h("span", {class: "secondary-text"}, relative(j.due_at))),
        h("td", null, code(j.kind)), h("td", {class: "wrap"}, code(JSON.stringify(j.params))),
        h("td", {class: "wrap"}, j.origin),
        h("td", {class: "wrap"}, j.done ? [h("span", {class: "badge tone-ok"}, W.done), " ", j.result || ""]
                                         : h("span", {class: "badge tone-warn"}, W.waiting)));
    });
    fill("jobs", jobs, jobs.length, jobs.length, jobs.length, "no_jobs");
  }

  function statusTone(status) { return status < 300 ? "ok" : status < 500 ? "warn" : "bad"; }

  function journalRow(e, key) {
    var answer = asData(e.response) || {};
    var gatewayCode = typeof answer === "object" && answer !== null && "code" in answer && String(answer.code) !== "0"
      ? answer.code : null;
    return h("tr", {testid: "journal-row", "data-id": e.id, "data-path": e.path},
      h("td", {class: "time"}, kst(e.at)),
      h("td", {class: "wrap"}, h("span", {class: "method"}, e.method), " ", code(e.path + (e.query ? "?" + e.query : ""))),
      h("td", {class: "mono"}, e.client_id || W.none),
      badges(h("span", {class: "badge tone-" + statusTone(e.status), testid: "http-status"}, e.status),
        gatewayCode !== null ? h("span", {class: "secondary-text mono", testid: "code"}, String(gatewayCode)) : null),
      h("td", null, e.rule ? h("span", {class: "rule", testid: "rule"}, e.rule) : W.none),
      h("td", {class: "wrap"}, (e.warnings || []).length
        ? h("ul", {class: "warnings"}, e.warnings.map(function (w) { return h("li", {testid: "warning"}, w); }))
        : W.none),
      h("td", {class: "actions"}, toggle(key)));
  }

  function journalDetail(e) {
    return [
      block(W.request_body, e.request === null || e.request === undefined || e.request === "" ? null : json(e.request)),
      block(W.response_body, json(e.response)),
      e.error ? block("error", h("pre", {class: "json bad-text"}, e.error)) : null];
  }

  function renderJournal() {
    listTable("journal", state.journal, {
      values: function (e) {
        return [e.path, e.query, e.method, e.client_id, e.rule,
                typeof e.request === "string" ? e.request : JSON.stringify(e.request)];
      },
      key: function (e) { return "j" + e.id; }, row: journalRow, detail: journalDetail, empty: "no_requests"});
  }

  function renderStats() {
    var p = state.payments, c = state.callbacks, s = state.scenario || {};
    var count = function (list, test) { return list.filter(test).length; };
    var waiting = p.filter(function (x) { return x.status === "awaiting_deposit"; });
    setText(one("[data-stat=payments]"), String(p.length));
    setText(one("[data-stat=payments-sub]"), say("stat_payments_sub", {
      approved: count(p, function (x) { return x.status === "approved" || x.status === "verified"; }),
      cancelled: count(p, function (x) { return x.cancelled_amount > 0; })}));
    c = c.filter(function (x) { return !isGlobal(x); });
    setText(one("[data-stat=callbacks]"), String(c.length));
    setText(one("[data-stat=callbacks-sub]"), say("stat_callbacks_sub", {
      pending: count(c, function (x) { return x.status === "pending"; }),
      failed: count(c, function (x) { return x.status === "failed"; })}));
    setText(one("[data-stat=accounts]"), String(waiting.length));
    setText(one("[data-stat=accounts-sub]"), say("stat_accounts_sub", {
      amount: won(waiting.reduce(function (sum, x) { return sum + x.amount; }, 0))}));
    var g = state.globalPayments;
    setText(one("[data-stat=global]"), String(g.length));
    setText(one("[data-stat=global-sub]"), say("stat_global_sub", {
      paid: count(g, function (x) { return REFUNDABLE.indexOf(x.status) >= 0 || x.status === "refunded"; }),
      pending: count(state.globalNotifications, function (x) { return x.status === "pending"; })}));
    var loaded = scenarioLoaded(s);
    setText(one("[data-stat=scenario]"), loaded ? String(s.scenario.name || "") : W.none);
    setText(one("[data-stat=scenario-sub]"), loaded ? say("stat_scenario_sub", {
      rules: (s.rules || []).length, jobs: count(s.jobs || [], function (j) { return !j.done; })}) : W.no_scenario);
  }

  function renderClock() {
    if (!state.clock) { return; }
    var frozen = state.clock.frozen;
    setText(one("[data-testid=clock-now]"), kst(emulatorNow()) + " KST");
    var pill = one("[data-testid=clock-state]");
    setText(pill, frozen ? W.frozen : W.running);
    pill.className = "pill " + (frozen ? "pill-frozen" : "pill-running");
    pill.setAttribute("data-frozen", frozen ? "true" : "false");
    setText(one("[data-freeze]"), frozen ? W.unfreeze : W.freeze);
  }

  function render() {
    renderClock();
    renderStats();
    var now = state.clock ? state.clock.now : null;
    if (changed("payments", state.payments)) { renderPayments(); }
    if (changed("accounts", [state.payments, now])) { renderAccounts(); }
    if (changed("callbacks", [state.callbacks, now])) { renderCallbacks(); }
    if (changed("global-payments", state.globalPayments)) { renderGlobalPayments(); }
    if (changed("global-notifications", [state.globalNotifications, now])) { renderGlobalNotifications(); }
    if (changed("scenario", [state.scenario, now])) { renderScenario(); }
    if (changed("journal", state.journal)) { renderJournal(); }
  }

  // --- talking to the control API -------------------------------------------------------------

  // Tokens are 18 digits, beyond a JavaScript number's precision: such integers are kept as the
  // text they were sent as.
  function exact(key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return context.source;
    }
    return value;
  }

  function api(method, path, body) {
    var headers = {"Accept": "application/json"};
    if (token) { headers["X-Emulator-Token"] = token; }
    if (sandbox) { headers["X-Emulator-Sandbox"] = sandbox; }
    var init = {method: method, headers: headers, cache: "no-store", credentials: "same-origin"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text, exact) : null; } catch (ignored) { data = null; }
        if (!response.ok) {
          var message = data && data.message ? data.message : (text.slice(0, 200) || response.statusText);
          throw new Error(say("refused", {status: response.status, message: message}));
        }
        return data;
      });
    }, function (error) {
      throw new Error(say("unreachable", {message: error.message}));
    });
  }

  function banner(text) { notice("error-banner", text); }

  function flash(text) { notice("flash", text); }

  // A line of news above the panels, hidden while it has nothing to say.
  function notice(testid, text) {
    var node = one("[data-testid=" + testid + "]");
    setText(node, text);
    node.hidden = !text;
  }

  function stamp() {
    setText(one("[data-testid=updated]"), say("updated", {time: new Date().toTimeString().slice(0, 8)}));
  }

  function schedule() {
    clearTimeout(timer);
    if (one("[data-testid=auto-refresh]").checked && !document.hidden) { timer = setTimeout(refresh, REFRESH_MS); }
  }

  // One refresh at a time; asked for during one, another follows it (so an action's effect shows).
  function refresh() {
    if (inFlight) {
      queued = queued || inFlight.then(function () { queued = null; return refresh(); });
      return queued;
    }
    clearTimeout(timer);
    inFlight = Promise.all([api("GET", "clock"), api("GET", "payments"), api("GET", "callbacks"),
                            api("GET", "scenario"), api("GET", "requests?limit=" + ROWS), api("GET", "sandboxes"),
                            api("GET", "global/payments"), api("GET", "global/notifications")])
      .then(function (answers) {
        state.clock = answers[0];
        state.clockAt = performance.now();
        state.payments = answers[1].payments;
        state.callbacks = answers[2].callbacks;
        state.scenario = answers[3];
        state.journal = answers[4].requests;
        state.sandboxes = answers[5].sandboxes;
        state.globalPayments = answers[6].payments;
        state.globalNotifications = answers[7].notifications;
        banner("");
        render();
        renderPicker();
        stamp();
      }, function (error) { banner(error.message); })
      .then(function () { inFlight = null; schedule(); });
    return inFlight;
  }

  // The sandbox picker: the root and every sandbox of the server (a kept one from a failed test,
  // say); picking one opens its dashboard, in the same language.
  function renderPicker() {
    var select = one("[data-testid=sandbox-picker]");
    var ids = state.sandboxes.map(function (s) { return s.id; });
    var current = sandbox || sandboxInPath || "";
    if (current && ids.indexOf(current) < 0) { ids.unshift(current); }
    if (!changed("picker", ids)) { return; }
    while (select.options.length > 1) { select.remove(1); }
    ids.forEach(function (id) {
      var option = document.createElement("option");
      option.value = id;
      option.textContent = say("sandbox_option", {id: id});
      select.appendChild(option);
    });
    select.value = current;
  }

  function dashboardOf(id) {
    var path = id ? rootBase.replace(/_emulator\/$/, "_sandbox/" + encodeURIComponent(id) + "/_emulator/") : rootBase;
    var lang = new URLSearchParams(location.search).get("lang");
    return path + (lang ? "?lang=" + encodeURIComponent(lang) : "");
  }

  function act(button, work) {
    button.disabled = true;
    return work().then(function (message) { banner(""); flash(message); },
                       function (error) { banner(error.message); })
      .then(function () { button.disabled = false; return refresh(); });
  }

  function setClock(change, message) {
    return api("POST", "clock", change).then(function (clock) {
      state.clock = clock;
      state.clockAt = performance.now();
      renderClock();
      return say(message, {time: kst(clock.now)});
    });
  }

  // A Global payment's approve, decline or refund through the control API, by its token.
  function globalAct(button, operation, body, said) {
    var path = "global/payments/" + encodeURIComponent(button.getAttribute("data-token")) + "/" + operation;
    act(button, function () { return api("POST", path, body).then(said); });
  }

  var ACTIONS = {
    toggle: function (button) {
      var key = button.getAttribute("data-key");
      if (expanded.has(key)) { expanded.delete(key); } else { expanded.add(key); }
      render();
    },
    resend: function (button) {
      var id = button.getAttribute("data-id");
      act(button, function () {
        return api("POST", "callbacks/" + encodeURIComponent(id) + "/resend").then(function (answer) {
          return say("resent", {id: id, result: attemptResult(answer.attempt) + " · " +
                                word("statuses", answer.callback.status)});
        });
      });
    },
    "global-approve": function (button) {
      globalAct(button, "approve", {}, function (payment) {
        return say("global_settled", {token: payment.token, status: word("statuses", payment.status)});
      });
    },
    "global-decline": function (button) {
      globalAct(button, "decline", {}, function (payment) {
        return say("global_settled", {token: payment.token, status: word("statuses", payment.status)});
      });
    },
    "global-refund": function (button) {
      var typed = (refundAmounts[button.getAttribute("data-token")] || "").trim();
      globalAct(button, "refund", typed ? {amount: typed} : {}, function (answer) {
        delete refundAmounts[button.getAttribute("data-token")];
        var d = answer.data;
        return say("global_refunded", {paytoken: d.paytoken, amount: money(d.refundamount, d.currency),
                                       left: money(d.remainamount, d.currency)});
      });
    },
    deposit: function (button) {
      var tid = button.getAttribute("data-tid");
      act(button, function () {
        return api("POST", "virtual-accounts/" + encodeURIComponent(tid) + "/deposit", {}).then(function (payment) {
          return say("deposited", {tid: tid, amount: won(payment.amount)});
        });
      });
    },
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || button.disabled) { return; }
    if (button.hasAttribute("data-advance")) {
      act(button, function () { return setClock({advance_seconds: Number(button.getAttribute("data-advance"))}, "moved"); });
    } else if (button.hasAttribute("data-freeze")) {
      var freeze = !(state.clock && state.clock.frozen);
      act(button, function () { return setClock({freeze: freeze}, freeze ? "froze" : "unfroze"); });
    } else if (button.hasAttribute("data-flush")) {
      act(button, function () {
        return api("POST", "callbacks/flush", {max_seconds: 10}).then(function (answer) {
          return say("flushed", {pending: answer.pending});
        });
      });
    } else if (button.getAttribute("data-testid") === "refresh") {
      refresh();
    } else if (ACTIONS[button.getAttribute("data-action")]) {
      ACTIONS[button.getAttribute("data-action")](button);
    }
  });

  one("[data-testid=sandbox-picker]").addEventListener("change", function (event) {
    location.assign(dashboardOf(event.target.value));
  });

  // A refund's amount, kept while the table is drawn again.
  document.addEventListener("input", function (event) {
    var token = event.target.getAttribute && event.target.getAttribute("data-refund-amount");
    if (token) { refundAmounts[token] = event.target.value; }
  });

  one("[data-testid=filter]").addEventListener("input", function (event) {
    filter = event.target.value.trim().toLowerCase();
    render();
  });

  one("[data-testid=auto-refresh]").addEventListener("change", function (event) {
    if (event.target.checked) { refresh(); } else { clearTimeout(timer); }
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });

  // A running clock ticks between refreshes.
  setInterval(function () { if (state.clock && !state.clock.frozen) { renderClock(); } }, 1000);

  var where = sandbox || sandboxInPath;
  if (where) {
    setText(one("[data-testid=where]"), say("sandbox", {id: where}));
    one("[data-testid=where]").classList.add("where-sandbox");
  }
  refresh();
}());
