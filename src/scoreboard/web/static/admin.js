// The admin page: /api/admin/* with the key pasted into this tab.
//
// The key lives in sessionStorage only (this tab, until it closes or "Forget the key"): never in
// a cookie, which the browser would send by itself, nor in the address, which history, logs and
// Referer keep. Every request carries it as `Authorization: Bearer`. A 401 means the key is no
// longer good (revoked, mistyped): the page forgets it and asks again.
//
// The page holds no state the server does not: after every action it reads the user (and the
// audit) again, so what it shows is what the API answers, never a local guess. Each action that
// changes something asks for a reason; erasure also asks for the user id to be typed again.
// Errors are the API's own sentence, in a role="alert" region.
"use strict";

(() => {
  const KEY_ITEM = "scoreboard.admin-key";
  const EVENTS_PAGE = 20;
  const AUDIT_PAGE = 20;
  const STATUS_TEXT = {
    active: "Active",
    hidden: "Hidden: on no public board, updates still count",
    banned: "Banned: hidden, and updates are refused",
  };
  // Which status actions make sense from each status (both undos make the user active).
  const STATUS_ACTIONS = {
    active: ["hide", "ban"],
    hidden: ["unhide", "ban"],
    banned: ["unban"],
  };
  const ACTIONS = {
    hide: { title: "Hide", done: "is hidden" },
    unhide: { title: "Unhide", done: "is shown again" },
    ban: { title: "Ban", done: "is banned" },
    unban: { title: "Unban", done: "is no longer banned" },
    "unlock-name": { title: "Unlock the name of", done: "can be named by their token again" },
  };

  const $ = (id) => document.getElementById(id);
  const alertBox = $("alert");
  const done = $("done");
  const keyPanel = $("key-panel");
  const keyForm = $("key-form");
  const keyInput = $("key");
  const consolePart = $("console");
  const findForm = $("find-form");
  const userInput = $("user-id");
  const userPanel = $("user");
  const userTitle = $("user-title");
  const ranks = $("ranks").tBodies[0];
  const statusActions = $("status-actions");
  const eventList = $("events");
  const eventsEmpty = $("events-empty");
  const eventsOlder = $("events-older");
  const adjustForm = $("adjust-form");
  const adjustMetric = $("adjust-metric");
  const adjustDelta = $("adjust-delta");
  const adjustAction = $("adjust-action");
  const renameForm = $("rename-form");
  const unlockName = $("unlock-name");
  const rolloverPanel = $("rollover-panel");
  const rolloverForm = $("rollover-form");
  const rolloverBoard = $("rollover-board");
  const auditList = $("audit");
  const auditEmpty = $("audit-empty");
  const auditOlder = $("audit-older");
  const dialog = $("confirm");
  const dialogForm = $("confirm-form");
  const dialogAlert = $("confirm-alert");
  const dialogTyped = $("confirm-typed");
  const dialogId = $("confirm-id");
  const dialogReason = $("confirm-reason");
  const numbers = new Intl.NumberFormat();
  const moments = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "numeric", minute: "2-digit", second: "2-digit",
  });

  let key = null;
  let boards = []; // /api/boards, for titles, metrics and manual boards
  let user = null; // the user shown: GET /api/admin/users/{id}
  let eventsNext = null;
  let auditNext = null;
  let actionId = null; // the adjustment's, kept until it succeeds or the form changes
  let pending = null; // the dialog's action: () => Promise

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // -- the API -------------------------------------------------------------------------------

  async function call(method, path, body) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${key}` };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`/api/admin${path}`, init);
    } catch (error) {
      throw new ApiError(0, "network", "The server did not answer. Check the connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const code = data && data.error ? data.error : "http_error";
      const message = data && data.message ? data.message : response.statusText;
      throw new ApiError(response.status, code, message);
    }
    return data;
  }

  const userPath = (id) => `/users/${encodeURIComponent(id)}`;

  // -- messages ------------------------------------------------------------------------------

  function fail(error, where = alertBox) {
    if (!(error instanceof ApiError)) throw error;
    done.textContent = "";
    if (error.status === 401) {
      forgetKey();
      showAlert(alertBox, `The key was refused (401 ${error.code}): ${error.message}`);
      if (dialog.open) dialog.close();
      keyInput.focus();
      return;
    }
    const status = error.status ? `${error.status} ${error.code}: ` : "";
    showAlert(where, status + error.message);
  }

  function showAlert(box, text) {
    // Emptied first, so the same error twice in a row is announced twice.
    box.textContent = "";
    requestAnimationFrame(() => { box.textContent = text; });
  }

  function clearMessages() {
    alertBox.textContent = "";
    dialogAlert.textContent = "";
  }

  function say(text) {
    alertBox.textContent = "";
    done.textContent = text;
  }

  // -- the key -------------------------------------------------------------------------------

  function useKey(value) {
    key = value;
    sessionStorage.setItem(KEY_ITEM, value);
    keyPanel.hidden = true;
    consolePart.hidden = false;
  }

  function forgetKey() {
    key = null;
    sessionStorage.removeItem(KEY_ITEM);
    keyInput.value = "";
    keyPanel.hidden = false;
    consolePart.hidden = true;
    showUser(null);
  }

  async function start() {
    // Whether the key is good: the audit's first page needs it, and is shown anyway.
    try {
      await loadAudit(false);
    } catch (error) {
      fail(error);
      return false;
    }
    await loadBoards();
    return true;
  }

  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const value = keyInput.value.trim();
    if (!value) {
      showAlert(alertBox, "Paste an admin key first.");
      keyInput.focus();
      return;
    }
    useKey(value);
    keyInput.value = "";
    if (await start()) {
      say("Key accepted.");
      userInput.focus();
    }
  });

  $("forget").addEventListener("click", () => {
    forgetKey();
    say("The key is forgotten in this tab.");
    keyInput.focus();
  });

  // -- boards (titles, metrics, manual boards) --------------------------------------------------

  async function loadBoards() {
    try {
      const response = await fetch("/api/boards", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      boards = (await response.json()).boards;
    } catch (error) {
      return; // titles fall back to ids; the adjust form to the user's own metrics
    }
    const manual = boards.filter((b) => b.reset === "manual");
    rolloverBoard.replaceChildren(...manual.map((b) => option(b.id, `${b.title} (${b.id})`)));
    rolloverPanel.hidden = manual.length === 0;
    const metrics = [...new Set(boards.filter((b) => b.aggregate === "sum").map((b) => b.metric))];
    adjustMetric.replaceChildren(...metrics.map((m) => option(m, m)));
  }

  function option(value, text) {
    const item = document.createElement("option");
    item.value = value;
    item.textContent = text;
    return item;
  }

  function boardTitle(id) {
    const found = boards.find((b) => b.id === id);
    return found ? found.title : id;
  }

  // -- a user --------------------------------------------------------------------------------

  findForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    done.textContent = "";
    const id = userInput.value.trim();
    if (!id) {
      showAlert(alertBox, "Type a user id to look up.");
      userInput.focus();
      return;
    }
    try {
      await loadUser(id);
      userTitle.focus();
    } catch (error) {
      showUser(null);
      fail(error);
    }
  });

  async function loadUser(id) {
    const [found, events] = await Promise.all([
      call("GET", userPath(id)),
      call("GET", `${userPath(id)}/events?limit=${EVENTS_PAGE}`),
    ]);
    showUser(found);
    eventList.replaceChildren();
    addEvents(events);
  }

  async function reloadUser() {
    const found = await call("GET", userPath(user.user_id));
    showUser(found);
  }

  function showUser(found) {
    const same = found && user && found.user_id === user.user_id;
    user = found;
    userPanel.hidden = found === null;
    if (found === null) {
      eventList.replaceChildren();
      return;
    }
    userTitle.textContent = found.user_id;
    $("user-name").textContent = found.username + (found.name_locked ? " (locked by an operator)" : "");
    $("user-status").textContent = STATUS_TEXT[found.status] || found.status;
    $("user-status").dataset.status = found.status;
    $("user-since").textContent = moment(found.created_at);
    ranks.replaceChildren(...found.boards.map(rankRow));
    if (found.boards.length === 0) {
      const row = ranks.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 4;
      cell.textContent = "On no board.";
    }
    const allowed = STATUS_ACTIONS[found.status] || [];
    for (const button of statusActions.querySelectorAll("button")) {
      button.hidden = !allowed.includes(button.dataset.action);
    }
    unlockName.hidden = !found.name_locked;
    if (!same) {
      adjustForm.reset();
      renameForm.reset();
      newActionId();
    }
    // A user's metrics the boards list may not have (it failed to load): keep the form usable.
    if (adjustMetric.options.length === 0) adjustMetric.append(option("points", "points"));
  }

  function rankRow(entry) {
    const row = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = boardTitle(entry.board);
    row.append(name);
    cell(row, entry.period, "period-col");
    cell(row, entry.score === null ? "–" : numbers.format(entry.score), "num");
    cell(row, entry.rank === null ? "not ranked" : `#${numbers.format(entry.rank)}`, "num");
    return row;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function moment(iso) {
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? iso : moments.format(at);
  }

  // -- events --------------------------------------------------------------------------------

  function addEvents(page) {
    for (const item of page.events) eventList.append(eventItem(item));
    eventsNext = page.next;
    eventsOlder.hidden = eventsNext === null;
    eventsEmpty.hidden = eventList.children.length > 0;
    return page.events.length ? eventList.lastElementChild : null;
  }

  function eventItem(item) {
    const li = document.createElement("li");
    li.className = "item event";
    li.dataset.eventId = item.event_id;
    const sign = item.delta > 0 ? "+" : "−";
    const what = `${sign}${numbers.format(Math.abs(item.delta))} ${item.metric}`;
    const head = span(li, `#${item.event_id} `, "id");
    head.after(span(li, what, "what"));
    span(li, item.source === "admin" ? "by an operator" : "by the user", "source");
    span(li, moment(item.created_at), "when");
    const state = span(li, "", "state");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "quiet";
    li.append(button);
    markEvent(li, item.voided);
    button.addEventListener("click", () => {
      const voided = li.dataset.voided === "true";
      const verb = voided ? "restore" : "void";
      ask({
        title: `${voided ? "Restore" : "Void"} event #${item.event_id}`,
        text: voided
          ? `${what}: it counts again on every board and period it fed, archives included.`
          : `${what}: it stops counting on every board and period it fed, archives included.`,
        go: voided ? "Restore" : "Void",
        action: async (reason) => {
          const answer = await call("POST", `/events/${item.event_id}/${verb}`, { reason });
          markEvent(li, answer.voided);
          await reloadUser();
          return `Event #${item.event_id} ${answer.voided ? "is voided" : "counts again"}.`;
        },
      });
    });
    return li;
  }

  function markEvent(li, voided) {
    li.dataset.voided = String(voided);
    li.querySelector(".state").textContent = voided ? "Voided" : "Counts";
    const button = li.querySelector("button");
    button.textContent = voided ? "Restore" : "Void";
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` event ${li.dataset.eventId}`;
    button.append(hidden);
  }

  function span(parent, text, className) {
    const item = document.createElement("span");
    item.className = className;
    item.textContent = text;
    parent.append(item);
    return item;
  }

  eventsOlder.addEventListener("click", async () => {
    clearMessages();
    try {
      const page = await call(
        "GET", `${userPath(user.user_id)}/events?limit=${EVENTS_PAGE}&before=${eventsNext}`,
      );
      const first = eventList.children.length;
      addEvents(page);
      // The button goes with the last page: the reader's focus moves to what it brought.
      if (eventsOlder.hidden) focusItem(eventList.children[first]);
    } catch (error) {
      fail(error);
    }
  });

  function focusItem(li) {
    const target = li ? li.querySelector("button") : null;
    if (target) target.focus();
  }

  // -- actions on the user -------------------------------------------------------------------

  statusActions.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    userAction(button.dataset.action);
  });

  unlockName.addEventListener("click", () => userAction("unlock-name"));

  function userAction(action) {
    const id = user.user_id;
    const { title, done: result } = ACTIONS[action];
    ask({
      title: `${title} ${id}`,
      text: action === "ban"
        ? "Their scores leave every public board and their updates are refused until unbanned."
        : action === "hide"
          ? "Their scores leave every public board; their updates still count."
          : action === "unlock-name"
            ? "The name in their next token replaces the one set here."
            : "Their scores are shown again where their events put them.",
      go: action === "unlock-name" ? "Unlock the name" : title,
      action: async (reason) => {
        await call("POST", `${userPath(id)}/${action}`, { reason });
        await reloadUser();
        return `${id} ${result}.`;
      },
      // The button pressed is gone (Ban becomes Unban): the next status action takes the focus.
      focusAfter: () => statusActions.querySelector("button:not([hidden])") || userTitle,
    });
  }

  $("erase").addEventListener("click", () => {
    const id = user.user_id;
    ask({
      title: `Erase ${id}`,
      text: "This cannot be undone: the user's profile, events and every board entry, archives "
        + "included, are deleted.",
      go: "Erase for good",
      typed: id,
      action: async (reason) => {
        const answer = await call("DELETE", userPath(id), { reason });
        showUser(null);
        userInput.value = "";
        return `${id} is erased (in the audit as ${answer.audit_target}).`;
      },
      focusAfter: userInput,
    });
  });

  function newActionId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    actionId = `admin-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    adjustAction.textContent = actionId;
  }

  adjustMetric.addEventListener("change", newActionId);
  adjustDelta.addEventListener("input", newActionId);

  adjustForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const delta = Number(adjustDelta.value);
    const reason = $("adjust-reason").value;
    if (!Number.isSafeInteger(delta) || delta === 0) {
      showAlert(alertBox, "The change must be a whole number other than 0.");
      adjustDelta.focus();
      return;
    }
    if (!reason.trim()) {
      showAlert(alertBox, "Give a reason for the adjustment: it is kept in the audit.");
      $("adjust-reason").focus();
      return;
    }
    const id = user.user_id;
    try {
      const body = { metric: adjustMetric.value, delta, action_id: actionId, reason };
      const answer = await call("POST", `${userPath(id)}/adjust`, body);
      await loadUser(id);
      await loadAudit(false);
      adjustForm.reset();
      newActionId();
      say(`${id}: ${delta > 0 ? "+" : "−"}${numbers.format(Math.abs(delta))} ${body.metric}`
        + (answer.new_score === undefined ? "." : `, now ${numbers.format(answer.new_score)}.`));
    } catch (error) {
      fail(error);
    }
  });

  renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const username = $("rename-name").value;
    const reason = $("rename-reason").value;
    if (!username.trim() || !reason.trim()) {
      showAlert(alertBox, "Give the new display name and a reason: it is kept in the audit.");
      (username.trim() ? $("rename-reason") : $("rename-name")).focus();
      return;
    }
    const id = user.user_id;
    try {
      await call("POST", `${userPath(id)}/rename`, { username, reason });
      await reloadUser();
      await loadAudit(false);
      renameForm.reset();
      say(`${id} is now named ${username}, locked.`);
    } catch (error) {
      fail(error);
    }
  });

  rolloverForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const board = rolloverBoard.value;
    const reason = $("rollover-reason").value;
    if (!reason.trim()) {
      showAlert(alertBox, "Give a reason for the new season: it is kept in the audit.");
      $("rollover-reason").focus();
      return;
    }
    try {
      const answer = await call("POST", `/boards/${encodeURIComponent(board)}/rollover`, { reason });
      rolloverForm.reset();
      await loadAudit(false);
      if (user) await reloadUser();
      say(`${boardTitle(board)}: period ${answer.closed.id} ended, ${answer.opened.id} started.`);
    } catch (error) {
      fail(error);
    }
  });

  // -- the confirmation dialog ---------------------------------------------------------------

  // One modal dialog for every action without a form of its own: it asks for the reason (and,
  // for an erasure, the user id again) and stays open with the API's error until it succeeds or
  // is cancelled. Closing it returns the focus to the button that opened it, or to
  // `focusAfter` when that button is gone (an erased user's).
  let opener = null;
  let focusAfter = null;
  let typed = null;

  function ask(options) {
    clearMessages();
    done.textContent = "";
    opener = document.activeElement;
    focusAfter = options.focusAfter || null;
    typed = options.typed || null;
    pending = options.action;
    $("confirm-title").textContent = options.title;
    $("confirm-text").textContent = options.text;
    $("confirm-go").textContent = options.go;
    $("confirm-go").classList.toggle("danger", typed !== null);
    dialogTyped.hidden = typed === null;
    dialogForm.reset();
    dialog.showModal();
    (typed !== null ? dialogId : dialogReason).focus();
  }

  dialogForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    dialogAlert.textContent = "";
    if (typed !== null && dialogId.value !== typed) {
      showAlert(dialogAlert, `Type ${typed} exactly to confirm; nothing was erased.`);
      dialogId.focus();
      return;
    }
    const reason = dialogReason.value;
    if (!reason.trim()) {
      showAlert(dialogAlert, "Give a reason: it is kept in the audit.");
      dialogReason.focus();
      return;
    }
    try {
      const message = await pending(reason);
      close();
      say(message);
      await loadAudit(false);
    } catch (error) {
      fail(error, dialogAlert);
    }
  });

  $("confirm-cancel").addEventListener("click", () => close());
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape: closed the same way as Cancel, focus included
    close();
  });

  function close() {
    if (dialog.open) dialog.close();
    pending = null;
    const stays = opener && opener.isConnected && !opener.closest("[hidden]");
    const back = stays ? opener : typeof focusAfter === "function" ? focusAfter() : focusAfter;
    opener = null;
    if (back) back.focus();
    else if (user) userTitle.focus();
  }

  // -- the audit -----------------------------------------------------------------------------

  async function loadAudit(older) {
    const before = older ? `&before=${auditNext}` : "";
    const page = await call("GET", `/audit?limit=${AUDIT_PAGE}${before}`);
    const first = older ? auditList.children.length : 0;
    if (!older) auditList.replaceChildren();
    for (const entry of page.entries) auditList.append(auditItem(entry));
    auditNext = page.next;
    auditOlder.hidden = auditNext === null;
    auditEmpty.hidden = auditList.children.length > 0;
    return auditList.children[first] || null;
  }

  function auditItem(entry) {
    const li = document.createElement("li");
    li.className = "item";
    span(li, moment(entry.at), "when");
    span(li, entry.action, "what");
    span(li, entry.target, "target");
    span(li, `by ${entry.key}`, "source");
    if (entry.reason !== null) span(li, `“${entry.reason}”`, "reason");
    const details = Object.entries(entry.details || {});
    if (details.length) {
      span(li, details.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", "), "details");
    }
    return li;
  }

  auditOlder.addEventListener("click", async () => {
    clearMessages();
    try {
      const first = await loadAudit(true);
      if (auditOlder.hidden && first) {
        first.tabIndex = -1;
        first.focus();
      }
    } catch (error) {
      fail(error);
    }
  });

  // -- start ---------------------------------------------------------------------------------

  const stored = sessionStorage.getItem(KEY_ITEM);
  if (stored) {
    useKey(stored);
    start();
  }
  newActionId();
})();
