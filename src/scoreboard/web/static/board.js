// The live boards: the list of boards from /api/boards, then one board's channel,
// /ws/boards/{board}: the SNAPSHOT sent on connect and every SCORE_UPDATE after it.
//
// `/` shows every board as tabs (`?board=ID` selects one) and keeps a socket open for the visible
// board only; `/embed` shows one board (`?board=ID`, the default board without it). Under the
// title, the current period and a countdown to its end; on PERIOD_STARTED the board starts over.
// `?board=ID&period=P` on either page is an archive: that period's final top 10, read once from
// /api/boards/{board}/top10?period=P, with no socket. `/` lists a board's past periods, each
// with its winner and a link to its archive (/api/boards/{board}/periods, paged with `before`).
//
// The live channel itself (the socket, its messages, `seq`, reconnecting with jittered backoff)
// is client.js's, the module any site can use; this file draws what it hands over. Every state
// carries the whole top 10, so the page never patches a board: it keeps only the newest one
// received and draws it at the next animation frame. A burst of 50 changes a second therefore
// costs at most one render per frame. On `/`, the "find me" box (findme.js) follows the board
// shown.
import { connect, retryDelay } from "/client.js";
import { findMe } from "/static/findme.js";

(() => {
  const MOVE_MS = 450;
  const ANNOUNCE_EVERY_MS = 2000;
  const REFRESH_TRIES = 5; // reads of a board's new period, a second apart (see refreshPeriod)
  const PERIODS_PAGE = 10;
  const PAST = {
    daily: "Past days", weekly: "Past weeks", monthly: "Past months", manual: "Past seasons",
  };

  const embedded = document.body.classList.contains("embed");
  const tablist = document.getElementById("tabs"); // on `/` only
  const view = document.getElementById("view");
  const heading = document.getElementById("board-title");
  const table = document.getElementById("board");
  const caption = table.caption;
  const tbody = table.tBodies[0];
  const statusEl = document.getElementById("status");
  const statusText = statusEl.querySelector(".status-text");
  const periodLine = document.getElementById("period");
  const periodLabel = document.getElementById("period-label");
  const countdown = document.getElementById("countdown");
  const winner = document.getElementById("winner");
  const empty = document.getElementById("empty");
  const notice = document.getElementById("notice");
  // On `/` only: the way back from an archive, and the list of past periods.
  const backLine = document.getElementById("back-line");
  const back = document.getElementById("back");
  const archives = document.getElementById("archives");
  const archivesTitle = document.getElementById("archives-title");
  const periodList = document.getElementById("periods");
  const periodsNote = document.getElementById("periods-note");
  const older = document.getElementById("older");
  const embedCode = document.getElementById("embed-code");
  const announcer = document.getElementById("announcer");
  // On `/` only: a user's rank and score over the current period (a hand-drawn SVG chart).
  const chart = document.getElementById("chart");
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  const numbers = new Intl.NumberFormat();
  // A period id names a date of the board's own zone: formatted as that date, in UTC.
  const dayFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric", timeZone: "UTC",
  });
  const monthFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "long", timeZone: "UTC",
  });
  const momentFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  });
  const STATES = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    missing: "Not found",
    loading: "Loading…",
    archive: "Final",
  };

  // Counters for the browser tests and for anyone curious in the console.
  const stats = {
    messages: 0, renders: 0, moves: 0, seq: null, board: null, period: null,
    // Sockets opened for the board, over every board shown.
    get connects() {
      return pastConnects + (live ? live.stats.connects : 0);
    },
  };
  window.scoreboard = stats;

  // On `/` only: the "find me" box, following the board shown (findme.js; its counters are
  // `window.scoreboard.findme`).
  const finderBox = document.getElementById("findme");
  const finder = finderBox && !embedded ? findMe(finderBox) : null;

  let boards = []; // every board, as /api/boards lists them: the default board first
  let board = null; // the board shown
  let archive = null; // the id of the past period shown, or null for the live board
  let periodsOf = null; // the board whose past periods the list holds (or is loading)
  let periodsNext = null; // `before` for the list's next page
  const rows = new Map(); // user_id -> { tr, rank, name, score, value }
  let pending = null; // the newest board not yet drawn
  let frame = 0;
  let live = null; // the shown board's connection (client.js)
  let pastConnects = 0; // the sockets of the boards shown before it
  let attempt = 0; // of the retries of a read (the boards, an archive)
  let retryTimer = 0;
  let retry = null; // what the retry timer will do: load the boards, or an archive
  let skew = 0; // how far the server's clock is ahead of this one, in ms (see noteClock)
  let tickTimer = 0;
  let refreshTimer = 0;
  let lastAnnounced = 0;
  let announceTimer = 0;
  let announcement = "";

  function setState(state) {
    if (statusEl.dataset.state === state) return;
    statusEl.dataset.state = state;
    statusText.textContent = STATES[state];
  }

  function scheduleRetry(action) {
    if (retryTimer) return;
    // Equal jitter: half the ceiling fixed, half random. Many pages dropped by one server
    // restart spread their retries out instead of arriving together, and none retries at once.
    const delay = retryDelay(attempt, Math.random());
    attempt = Math.min(attempt + 1, 16);
    retry = action;
    retryTimer = setTimeout(() => {
      retryTimer = 0;
      action();
    }, delay);
  }

  function cancelRetry() {
    clearTimeout(retryTimer);
    retryTimer = 0;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    noteClock(response);
    if (!response.ok) {
      const error = new Error(`${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  // The countdown runs on the server's clock: a reader's clock that is minutes off would show the
  // wrong time left. The Date header has whole seconds, so it corrects only a clear difference.
  function noteClock(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isNaN(date)) return;
    const offset = date + 500 - Date.now(); // the header's second, taken at its middle
    skew = Math.abs(offset) > 2000 ? offset : 0;
  }

  function now() {
    return Date.now() + skew;
  }

  // -- Which board ------------------------------------------------------------------------------

  function loadBoards() {
    getJson("/api/boards").then(
      (body) => {
        attempt = 0;
        boards = body.boards;
        begin();
      },
      () => {
        setState("reconnecting");
        scheduleRetry(loadBoards);
      },
    );
  }

  function begin() {
    const params = new URLSearchParams(location.search);
    const wanted = params.get("board");
    const period = params.get("period");
    let chosen = boards.find((b) => b.id === wanted);
    if (!chosen && wanted !== null && embedded) {
      // An embed shows the board it names or says it has none; never another board silently.
      heading.textContent = "Scoreboard";
      notFound(`There is no board “${wanted}” on this server.`);
      return;
    }
    chosen = chosen || boards[0]; // the page falls back to the default board, in view as a tab
    if (period !== null && period !== chosen.period.id) {
      openArchive(chosen, period);
      return;
    }
    if (tablist && boards.length > 1) buildTabs();
    select(chosen, false);
  }

  function notFound(text) {
    table.hidden = true;
    winner.hidden = true;
    notice.textContent = text;
    notice.hidden = false;
    setState("missing");
  }

  function select(next, focus) {
    if (chart) chart.hidden = true; // a user of another board
    if (board === next) return;
    board = next;
    stats.board = next.id;
    heading.textContent = next.title;
    caption.textContent = `${next.title}: the top 10, best first`;
    document.title = `${next.title} · Scoreboard`;
    if (tablist && !tablist.hidden) {
      for (const tab of tablist.children) {
        const selected = tab.dataset.board === next.id;
        tab.setAttribute("aria-selected", String(selected));
        tab.tabIndex = selected ? 0 : -1;
        if (selected) {
          view.setAttribute("aria-labelledby", tab.id);
          if (focus) tab.focus();
        }
      }
    }
    if (!embedded) {
      // The address names the tab, so a link (or a reload) opens it; the default board is `/`.
      const url = new URL(location.href);
      url.searchParams.delete("period"); // the current period is the live board
      if (next === boards[0]) url.searchParams.delete("board");
      else url.searchParams.set("board", next.id);
      history.replaceState(null, "", url);
      showEmbedCode(next === boards[0] ? "/embed" : `/embed?board=${next.id}`);
    }
    clearBoard();
    showPeriod();
    listPeriods();
    cancelRetry();
    unfollow();
    // A live page stays "Live" across a change of tab: the new board answers within a round
    // trip, and the status region would otherwise say "Connecting…", "Live" at every arrow key.
    if (statusEl.dataset.state !== "live") setState("connecting");
    follow();
    if (finder) finder.follow(next);
  }

  // -- Tabs: the WAI-ARIA tabs pattern, selection following focus ------------------------------

  function buildTabs() {
    for (const b of boards) {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.id = `tab-${b.id}`; // board ids are a-z0-9_-: a valid id as they are
      tab.dataset.board = b.id;
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", view.id);
      tab.setAttribute("aria-selected", "false");
      tab.tabIndex = -1;
      tab.textContent = b.title;
      tab.addEventListener("click", () => select(b, false));
      tablist.append(tab);
    }
    tablist.addEventListener("keydown", onTabKey);
    tablist.hidden = false;
    // One panel shows the selected board; it is labelled by the selected tab.
    view.setAttribute("role", "tabpanel");
    view.tabIndex = 0;
  }

  function onTabKey(event) {
    const tabs = Array.from(tablist.children);
    const index = tabs.indexOf(document.activeElement);
    if (index < 0 || event.altKey || event.ctrlKey || event.metaKey) return;
    const last = tabs.length - 1;
    const to = {
      ArrowRight: index === last ? 0 : index + 1,
      ArrowLeft: index === 0 ? last : index - 1,
      Home: 0,
      End: last,
    }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    select(boards[to], true);
  }

  // -- The live channel ---------------------------------------------------------------------------

  function follow() {
    const mine = connect({ board: board.id });
    live = mine;
    mine.on("status", (state) => {
      if (live !== mine) return; // closed on purpose: another board was selected
      if (state === "live") setState("live");
      else if (state === "reconnecting") setState("reconnecting");
    });
    mine.on("state", (state) => {
      if (live === mine) onState(state);
    });
  }

  function unfollow() {
    if (!live) return;
    const was = live;
    live = null;
    pastConnects += was.stats.connects;
    was.close();
  }

  function onState(state) {
    stats.messages += 1;
    // A new period: announced live, or found on (re)connecting when it started meanwhile.
    if (state.period !== null && state.period !== board.period.id) {
      newPeriod(state.period, state.type === "PERIOD_STARTED");
    }
    show({
      rankings: state.rankings,
      seq: state.seq,
      changed: state.type === "SCORE_UPDATE" ? state.user_id : null,
    });
  }

  // -- The period and its countdown ----------------------------------------------------------

  function labelOf(reset, id) {
    let m;
    if (reset === "daily" && (m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(id))) {
      return dayFormat.format(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    }
    if (reset === "weekly" && (m = /^(\d{4})-W(\d{2})$/.exec(id))) {
      return `Week ${Number(m[2])}, ${m[1]}`;
    }
    if (reset === "monthly" && (m = /^(\d{4})-(\d{2})$/.exec(id))) {
      return monthFormat.format(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
    }
    if (reset === "manual") return `Season ${id}`;
    return id === "all" ? "All time" : id;
  }

  function newPeriod(id, live) {
    // The new period's bounds are the server's to say (local midnight in the board's zone, or an
    // operator's rollover): until they are read, the period has its name and no end.
    board.period = { id, starts_at: null, ends_at: null };
    forgetRows(); // another period's rows: nothing to slide from
    showPeriod();
    if (live) announce(`${board.title}: ${labelOf(board.reset, id)} has started`);
    refreshPeriod(board, id, REFRESH_TRIES);
    if (periodsOf === board) listPeriods(); // the period that ended is a past one now
  }

  function refreshPeriod(of, id, tries) {
    clearTimeout(refreshTimer);
    refreshTimer = 0;
    getJson(`/api/boards/${encodeURIComponent(of.id)}`).then(
      (body) => {
        if (of !== board || board.period.id !== id) return; // another board or period by now
        // Another process may not have started the period yet: it does within a second.
        if (body.period.id !== id) throw new Error(`${of.id} still in ${body.period.id}`);
        board.period = body.period;
        showPeriod();
      },
    ).catch(() => {
      if (of === board && board.period.id === id && tries > 1) {
        refreshTimer = setTimeout(() => refreshPeriod(of, id, tries - 1), 1000);
      }
    });
  }

  function showPeriod() {
    clearTimeout(tickTimer);
    tickTimer = 0;
    const period = board.period;
    stats.period = period.id;
    periodLine.hidden = board.reset === "never"; // one period, all of time: nothing to say
    periodLabel.textContent = labelOf(board.reset, period.id);
    if (period.ends_at) {
      countdown.hidden = false;
      tick();
    } else if (board.reset === "manual" && period.starts_at) {
      countdown.hidden = false;
      countdown.textContent = `Started ${momentFormat.format(Date.parse(period.starts_at))}`;
    } else {
      countdown.hidden = true;
      countdown.textContent = "";
    }
  }

  // The countdown changes once a second, right after each whole second left. It is a timer
  // (role="timer": not a live region), so a screen reader reads it when asked, not every second.
  function tick() {
    const left = Date.parse(board.period.ends_at) - now();
    countdown.textContent = left > 0 ? `Ends in ${duration(left)}` : "Ending…";
    if (left > 0) tickTimer = setTimeout(tick, (left % 1000) + 20);
  }

  function duration(ms) {
    const total = Math.floor(ms / 1000);
    const days = Math.floor(total / 86400);
    const hours = Math.floor(total / 3600) % 24;
    const minutes = Math.floor(total / 60) % 60;
    const seconds = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (days) return `${days}d ${hours}h ${two(minutes)}m ${two(seconds)}s`;
    if (hours) return `${hours}h ${two(minutes)}m ${two(seconds)}s`;
    if (minutes) return `${minutes}m ${two(seconds)}s`;
    return `${seconds}s`;
  }

  // -- An archive: a past period's final top 10 ------------------------------------------------

  function openArchive(of, id) {
    board = of;
    archive = id;
    stats.board = of.id;
    stats.period = id;
    const label = labelOf(of.reset, id);
    heading.textContent = of.title;
    caption.textContent = `${of.title}, ${label}: the final top 10, best first`;
    document.title = `${of.title}, ${label} · Scoreboard`;
    periodLabel.textContent = label;
    periodLine.hidden = false;
    countdown.hidden = true; // it is over
    empty.textContent = "No scores in this period.";
    showEmbedCode(`/embed?board=${of.id}&period=${encodeURIComponent(id)}`);
    if (backLine) {
      back.href = of === boards[0] ? "/" : `/?board=${encodeURIComponent(of.id)}`;
      backLine.hidden = false;
    }
    listPeriods();
    setState("loading");
    loadArchive();
  }

  function loadArchive() {
    const path = `/api/boards/${encodeURIComponent(board.id)}/top10`;
    getJson(`${path}?period=${encodeURIComponent(archive)}`).then(
      (body) => {
        attempt = 0;
        setState("archive");
        show({ rankings: body.scores, seq: 0, changed: null });
        const first = body.scores[0];
        winner.hidden = !first;
        if (first) {
          const name = document.createElement("strong");
          name.textContent = String(first.username || first.user_id);
          winner.replaceChildren("Winner: ", name, `, ${scoreText(first.score)}`);
        }
      },
      (error) => {
        if (error.status === 404 || error.status === 400) {
          notFound(`This board has no period “${archive}”: it never started, or it is no longer kept.`);
        } else {
          setState("reconnecting");
          scheduleRetry(loadArchive);
        }
      },
    );
  }

  // The footer's snippet embeds what the page shows.
  function showEmbedCode(path) {
    if (embedCode) embedCode.textContent = `<iframe src="${path}"></iframe>`;
  }

  function scoreText(score) {
    const unit = board.metric === "points" ? " points" : ""; // a lap time is not points
    return `${numbers.format(score)}${unit}`;
  }

  // -- The past periods: a disclosure under the board, read when opened, ten at a time ----------

  function listPeriods() {
    if (!archives) return;
    periodsOf = null;
    periodsNext = null;
    periodList.replaceChildren();
    periodsNote.hidden = true;
    older.hidden = true;
    older.removeAttribute("aria-disabled");
    archives.hidden = board.reset === "never"; // one period, all of time: nothing past
    archivesTitle.textContent = PAST[board.reset] || "Past periods";
    if (!archives.hidden && archives.open) loadPeriods();
  }

  function loadPeriods() {
    if (older.getAttribute("aria-disabled") === "true") return; // a page is on its way
    const of = board;
    periodsOf = of;
    // Not `disabled`: that would take the focus from the button the reader just pressed.
    older.setAttribute("aria-disabled", "true");
    const hadFocus = document.activeElement === older;
    const query = new URLSearchParams({ limit: String(PERIODS_PAGE) });
    if (periodsNext !== null) query.set("before", periodsNext);
    getJson(`/api/boards/${encodeURIComponent(of.id)}/periods?${query}`).then(
      (body) => {
        if (periodsOf !== of) return; // another board, or the list started over
        const added = body.periods
          .filter((p) => p.id !== of.period.id) // the current period is the live board
          .map((p) => periodItem(of, p));
        periodList.append(...added);
        periodsNext = body.next;
        older.hidden = periodsNext === null;
        older.removeAttribute("aria-disabled");
        older.textContent = "Show older";
        periodsNote.hidden = periodList.children.length > 0;
        periodsNote.textContent = "None yet.";
        // The button the reader pressed may be gone: carry on from the first period it showed.
        if (hadFocus && older.hidden && added.length) added[0].querySelector("a").focus();
      },
      () => {
        if (periodsOf !== of) return;
        periodsOf = null;
        periodsNote.textContent = "The past periods could not be read.";
        periodsNote.hidden = false;
        older.textContent = "Try again";
        older.hidden = false;
        older.removeAttribute("aria-disabled");
      },
    );
  }

  function periodItem(of, period) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/?board=${encodeURIComponent(of.id)}&period=${encodeURIComponent(period.id)}`;
    link.textContent = labelOf(of.reset, period.id);
    if (period.id === archive) link.setAttribute("aria-current", "page");
    const leader = document.createElement("span");
    leader.className = "leader";
    if (period.leader) {
      const name = document.createElement("strong");
      name.textContent = String(period.leader.username || period.leader.user_id);
      leader.append("Winner: ", name, `, ${scoreText(period.leader.score)}`);
    } else {
      leader.textContent = "No scores";
    }
    const entries = document.createElement("span");
    entries.className = "entries";
    entries.textContent = `${numbers.format(period.entries)} ${period.entries === 1 ? "player" : "players"}`;
    item.append(link, leader, entries);
    return item;
  }

  if (archives) {
    archives.addEventListener("toggle", () => {
      if (archives.open && periodsOf !== board) loadPeriods();
    });
    older.addEventListener("click", loadPeriods);
  }

  // -- Drawing --------------------------------------------------------------------------------------

  function show(next) {
    pending = next;
    if (!frame) frame = requestAnimationFrame(render);
  }

  function clearBoard() {
    forgetRows();
    empty.hidden = true;
    delete table.dataset.seq;
    stats.seq = null;
    clearTimeout(announceTimer); // news of the board that was shown is news no longer
    announceTimer = 0;
    announcer.textContent = "";
    clearTimeout(refreshTimer);
    refreshTimer = 0;
  }

  function forgetRows() {
    cancelAnimationFrame(frame);
    frame = 0;
    pending = null;
    for (const row of rows.values()) row.tr.remove();
    rows.clear();
  }

  function makeRow(userId) {
    const tr = document.createElement("tr");
    tr.dataset.user = userId;
    const rank = document.createElement("td");
    rank.className = "rank";
    const name = document.createElement("th");
    name.scope = "row";
    name.className = "name";
    const score = document.createElement("td");
    score.className = "score";
    tr.append(rank, name, score);
    let who = name;
    if (chart && !embedded) {
      // A button in the name cell: its text is the name, so the row reads as it did.
      who = document.createElement("button");
      who.type = "button";
      who.className = "who";
      who.addEventListener("click", () => openChart(userId, who.textContent));
      name.append(who);
    }
    return { tr, rank, name, who, score, value: null };
  }

  function render() {
    frame = 0;
    const next = pending;
    pending = null;
    if (!next) return;
    stats.renders += 1;
    const animate = !reducedMotion.matches;

    // FLIP, "first": where each row is now, including any move still in flight...
    const first = new Map();
    if (animate) {
      for (const [id, row] of rows) {
        first.set(id, row.tr.getBoundingClientRect().top);
        for (const a of row.tr.getAnimations()) a.cancel(); // ...which then stops there.
      }
    }

    const seen = new Set();
    const flashed = [];
    next.rankings.forEach((entry, index) => {
      const id = String(entry.user_id);
      seen.add(id);
      let row = rows.get(id);
      if (!row) {
        row = makeRow(id);
        rows.set(id, row);
      }
      const rank = String(entry.rank ?? index + 1);
      const name = String(entry.username || id);
      if (row.rank.textContent !== rank) row.rank.textContent = rank;
      if (row.name.textContent !== name) {
        row.who.textContent = name; // text, never HTML: names come from users
        row.name.title = name;
      }
      if (row.value !== entry.score) {
        if (row.value !== null) flashed.push(row.score);
        row.value = entry.score;
        row.score.textContent = numbers.format(entry.score);
      }
      // Move only a row that is out of place, so rows that stay keep their running highlight.
      const here = tbody.children[index];
      if (here !== row.tr) tbody.insertBefore(row.tr, here || null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    empty.hidden = next.rankings.length > 0;
    table.dataset.seq = String(next.seq);
    stats.seq = next.seq;

    for (const cell of flashed) {
      cell.classList.remove("flash");
      void cell.offsetWidth; // restart the highlight if it is still running
      cell.classList.add("flash");
    }

    // FLIP, "last, invert, play": each moved row starts where it was and slides into place.
    if (animate) {
      for (const [id, row] of rows) {
        const was = first.get(id);
        if (was === undefined) {
          row.tr.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 300, easing: "ease-out" });
          continue;
        }
        const dy = was - row.tr.getBoundingClientRect().top;
        if (Math.abs(dy) < 0.5) continue;
        stats.moves += 1;
        row.tr.animate(
          [{ transform: `translateY(${dy}px)` }, { transform: "translateY(0)" }],
          { duration: MOVE_MS, easing: "cubic-bezier(0.2, 0.7, 0.2, 1)" },
        );
      }
    }

    if (next.changed !== null && rows.has(String(next.changed))) {
      const row = rows.get(String(next.changed));
      const unit = board.metric === "points" ? " points" : ""; // a lap time is not points
      announce(`${row.name.textContent}: ${row.score.textContent}${unit}, rank ${row.rank.textContent}`);
    }
  }

  // -- A user's chart: rank and score at the end of each hour of the current period ---------------

  const hourFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "numeric" });

  async function openChart(userId, name) {
    if (!chart || archive !== null) return;
    const path = `/api/boards/${encodeURIComponent(board.id)}/users/${encodeURIComponent(userId)}`;
    const title = document.getElementById("chart-title");
    const summary = document.getElementById("chart-summary");
    title.textContent = `${name} this period`;
    summary.textContent = "Loading…";
    chart.hidden = false;
    let points = [];
    try {
      points = (await getJson(`${path}/trajectory?bucket=hour`)).points;
    } catch (error) {
      summary.textContent = "The chart could not be loaded.";
      return;
    }
    drawChart(points.filter((p) => p.rank !== null), name);
    document.getElementById("chart-close").focus();
  }

  function drawChart(points, name) {
    const svg = document.getElementById("chart-svg");
    const summary = document.getElementById("chart-summary");
    const body = document.getElementById("chart-table").tBodies[0];
    svg.replaceChildren();
    body.replaceChildren();
    if (points.length === 0) {
      summary.textContent = `${name} has no rank this period yet.`;
      return;
    }
    const W = 320, H = 140, PAD = 16;
    const x = (i) => PAD + (points.length === 1 ? 0 : (i * (W - 2 * PAD)) / (points.length - 1));
    const worst = Math.max(...points.map((p) => p.rank));
    const scores = points.map((p) => p.score);
    const low = Math.min(...scores), high = Math.max(...scores);
    const rankY = (r) => PAD + (worst === 1 ? 0 : ((r - 1) * (H - 2 * PAD)) / (worst - 1));
    const scoreY = (v) => H - PAD - (high === low ? 0 : ((v - low) * (H - 2 * PAD)) / (high - low));
    const line = (ys, cls) => {
      const el = document.createElementNS(svg.namespaceURI, "polyline"); // no URL in this file
      el.setAttribute("points", ys.map((y, i) => `${x(i).toFixed(1)},${y.toFixed(1)}`).join(" "));
      el.setAttribute("class", cls);
      svg.append(el);
    };
    line(points.map((p) => scoreY(p.score)), "score-line");
    line(points.map((p) => rankY(p.rank)), "rank-line");
    const first = points[0], last = points[points.length - 1];
    summary.textContent =
      `Rank ${first.rank} to ${last.rank} (solid line; higher is better), ` +
      `score ${numbers.format(first.score)} to ${numbers.format(last.score)} (dashed line), ` +
      `over ${points.length} hour${points.length === 1 ? "" : "s"}.`;
    for (const p of points) {
      const tr = document.createElement("tr");
      for (const text of [hourFormat.format(new Date(p.at)), String(p.rank), numbers.format(p.score)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
  }

  if (chart) {
    document.getElementById("chart-close").addEventListener("click", () => {
      chart.hidden = true;
    });
  }

  // A screen reader hears the latest change at most every two seconds, never a backlog.
  function announce(text) {
    announcement = text;
    if (announceTimer) return;
    const wait = Math.max(0, lastAnnounced + ANNOUNCE_EVERY_MS - performance.now());
    announceTimer = setTimeout(() => {
      announceTimer = 0;
      lastAnnounced = performance.now();
      announcer.textContent = announcement;
    }, wait);
  }

  window.addEventListener("online", () => {
    if (!retryTimer) return;
    cancelRetry();
    retry();
  });

  loadBoards();
})();
