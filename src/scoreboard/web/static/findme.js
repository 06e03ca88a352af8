// The "find me" box of `/`: type a user id, see the rows around that user on the board shown,
// live (an `around` view of /ws through client.js), their row marked and "You are #N" above.
//
// The id is kept in the address (`?me=ID`), so a reload or a shared link finds the same user;
// nothing is stored in the browser. A screen reader hears the user's rank when it is first
// found and then when it changes (not at every state: a score that changes without a change of
// rank is only drawn), at most every 2 s and only the newest, through a polite live region of
// its own, so that the board's announcements and these do not replace each other.
import { subscribe } from "/client.js";

const RADIUS = 3; // three rows above, three below: seven rows fit a phone screen
const ANNOUNCE_EVERY_MS = 2000;
const USER_ID = /^[A-Za-z0-9_\-.:@]{1,64}$/; // the server's rule (docs/live.md)

export function findMe(box) {
  const form = box.querySelector("form");
  const input = box.querySelector("input");
  const stop = box.querySelector(".stop");
  const error = box.querySelector(".error");
  const rankLine = box.querySelector(".you");
  const table = box.querySelector("table");
  const tbody = table.tBodies[0];
  // Outside the box: a live region must be in the page before it changes, and the box starts
  // hidden.
  const region = document.getElementById("findme-live");
  const numbers = new Intl.NumberFormat();

  // For the browser tests and the curious, next to the board's counters.
  // `view`: the subscription's own counters (client.js), while there is one.
  const stats = { user: null, rank: null, states: 0, announcements: 0, view: null };
  if (window.scoreboard) window.scoreboard.findme = stats;

  let board = null; // the board shown (from board.js)
  let user = null; // the user followed, or null
  let view = null; // the subscription (client.js)
  let shownRank; // the rank on screen: undefined before the first state, null when unranked
  let spokenRank; // the rank last announced (same convention)
  let announceTimer = 0;
  let lastAnnounced = -Infinity;

  function start() {
    // The new view first, then the old one closed: the socket they share stays open.
    const old = view;
    view = null;
    close();
    if (board && user) {
      shownRank = undefined;
      spokenRank = undefined;
      rankLine.textContent = "Looking…";
      rankLine.hidden = false;
      follow(subscribe({ board: board.id, view: "around", user_id: user, radius: RADIUS }));
    }
    if (old) old.close();
  }

  function follow(mine) {
    view = mine;
    stats.view = mine.stats;
    mine.on("state", (state) => {
      if (view === mine) draw(state.rows);
    });
    mine.on("status", (status) => {
      if (view === mine) box.dataset.state = status;
    });
    mine.on("error", (refused) => {
      if (view === mine && refused.code !== "unavailable") showError(refused.message);
    });
  }

  function close() {
    clearTimeout(announceTimer);
    announceTimer = 0;
    region.textContent = "";
    if (view) view.close();
    view = null;
    stats.view = null;
    stats.rank = null;
    table.hidden = true;
    tbody.replaceChildren();
    rankLine.hidden = true;
    delete box.dataset.state;
  }

  function draw(rows) {
    stats.states += 1;
    const me = rows.find((row) => row.user_id === user);
    const rank = me ? me.rank : null;
    tbody.replaceChildren(...rows.map((row) => line(row, row === me)));
    table.hidden = rows.length === 0;
    rankLine.textContent = me
      ? `You are #${numbers.format(rank)}`
      : `${user} has no score on ${board.title} yet.`;
    stats.rank = rank;
    if (rank !== shownRank) {
      shownRank = rank;
      announce();
    }
  }

  function line(row, mine) {
    const tr = document.createElement("tr");
    tr.dataset.user = row.user_id;
    if (mine) {
      tr.className = "me";
      tr.setAttribute("aria-current", "true");
    }
    const rank = document.createElement("td");
    rank.className = "rank";
    rank.textContent = numbers.format(row.rank);
    const name = document.createElement("th");
    name.scope = "row";
    name.className = "name";
    name.textContent = String(row.username || row.user_id); // text, never HTML
    name.title = name.textContent;
    const score = document.createElement("td");
    score.className = "score";
    score.textContent = numbers.format(row.score);
    tr.append(rank, name, score);
    return tr;
  }

  // The rank on screen, at most every 2 s, and only when it differs from the one last said.
  function announce() {
    if (announceTimer) return;
    const wait = Math.max(0, lastAnnounced + ANNOUNCE_EVERY_MS - performance.now());
    announceTimer = setTimeout(() => {
      announceTimer = 0;
      if (shownRank === spokenRank) return; // it moved and came back: nothing to say
      region.textContent = sentence(spokenRank, shownRank);
      spokenRank = shownRank;
      lastAnnounced = performance.now();
      stats.announcements += 1;
    }, wait);
  }

  function sentence(was, now) {
    if (now === null) return `${user} has no score on ${board.title} yet`;
    const place = `#${numbers.format(now)}`;
    if (was === undefined || was === null) return `You are ${place} on ${board.title}`;
    return `You are now ${place}, ${now < was ? "up" : "down"} from #${numbers.format(was)}`;
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
  }

  function clearError() {
    error.textContent = "";
    error.hidden = true;
    input.removeAttribute("aria-invalid");
  }

  function remember(id) {
    const url = new URL(location.href);
    if (id) url.searchParams.set("me", id);
    else url.searchParams.delete("me");
    history.replaceState(null, "", url);
  }

  function choose(id) {
    clearError();
    user = id;
    stats.user = id;
    stop.hidden = id === null;
    remember(id);
    if (id === null) close();
    else start();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = input.value.trim();
    if (id === "") {
      choose(null);
      return;
    }
    if (!USER_ID.test(id)) {
      showError("A user id is 1 to 64 letters, digits or _ - . : @");
      input.focus();
      return;
    }
    clearError();
    if (id !== user) choose(id);
  });

  stop.addEventListener("click", () => {
    input.value = "";
    choose(null);
    input.focus(); // the button is gone: the field is where the reader goes on
  });

  const wanted = new URLSearchParams(location.search).get("me");
  if (wanted !== null && USER_ID.test(wanted)) {
    input.value = wanted;
    user = wanted;
    stats.user = wanted;
    stop.hidden = false;
  }

  return {
    /** The board shown changed (or was first chosen): follow the user there. */
    follow(next) {
      board = next;
      box.hidden = false;
      if (user) start();
    },
  };
}
