// The live board: renders the SNAPSHOT sent on connect and every SCORE_UPDATE after it.
//
// Every message carries the whole top 10, so the page never patches a board: it keeps only the
// newest one received and draws it at the next animation frame. A burst of 50 changes a second
// therefore costs at most one render per frame, and a gap in `seq` needs no repair. When the
// socket drops, the page reconnects with capped, jittered exponential backoff and takes the next
// SNAPSHOT as the truth (a restarted server may even number its boards differently).
"use strict";

(() => {
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 8000;
  const MOVE_MS = 450;
  const ANNOUNCE_EVERY_MS = 2000;

  const table = document.getElementById("board");
  const tbody = table.tBodies[0];
  const statusEl = document.getElementById("status");
  const statusText = statusEl.querySelector(".status-text");
  const empty = document.getElementById("empty");
  const announcer = document.getElementById("announcer");
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  const numbers = new Intl.NumberFormat();
  const STATES = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

  // Counters for the browser tests and for anyone curious in the console.
  const stats = { messages: 0, renders: 0, moves: 0, connects: 0, seq: null };
  window.scoreboard = stats;

  const rows = new Map(); // user_id -> { tr, rank, name, score, value }
  let pending = null; // the newest board not yet drawn
  let frame = 0;
  let lastSeq = -Infinity;
  let socket = null;
  let attempt = 0;
  let retryTimer = 0;
  let lastAnnounced = 0;
  let announceTimer = 0;
  let announcement = "";

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/scoreboard`;
  }

  function setState(state) {
    if (statusEl.dataset.state === state) return;
    statusEl.dataset.state = state;
    statusText.textContent = STATES[state];
  }

  function connect() {
    retryTimer = 0;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    socket = ws;
    stats.connects += 1;
    ws.onmessage = (event) => onMessage(event.data);
    ws.onclose = () => {
      // "error" is always followed by "close", so this is the one place that retries.
      if (socket !== ws) return;
      socket = null;
      setState("reconnecting");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    // Equal jitter: half the ceiling fixed, half random. Many pages dropped by one server
    // restart spread their retries out instead of arriving together, and none retries at once.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
    attempt = Math.min(attempt + 1, 16);
    retryTimer = setTimeout(connect, ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  function onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    const data = message && message.data;
    if (!data || !Array.isArray(data.rankings) || typeof data.seq !== "number") return;
    stats.messages += 1;
    if (message.type === "SNAPSHOT") {
      attempt = 0; // reset only once the server has really answered, not on "open"
      setState("live");
    } else if (message.type !== "SCORE_UPDATE" || data.seq <= lastSeq) {
      return; // unknown, or older than the board already held
    }
    lastSeq = data.seq;
    pending = {
      rankings: data.rankings,
      seq: data.seq,
      changed: message.type === "SCORE_UPDATE" ? data.user_id : null,
    };
    if (!frame) frame = requestAnimationFrame(render);
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
    return { tr, rank, name, score, value: null };
  }

  function render() {
    frame = 0;
    const board = pending;
    pending = null;
    if (!board) return;
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
    board.rankings.forEach((entry, index) => {
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
        row.name.textContent = name; // text, never HTML: names come from users
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
    empty.hidden = board.rankings.length > 0;
    table.dataset.seq = String(board.seq);
    stats.seq = board.seq;

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

    if (board.changed !== null && rows.has(String(board.changed))) {
      const row = rows.get(String(board.changed));
      announce(`${row.name.textContent}: ${row.score.textContent} points, rank ${row.rank.textContent}`);
    }
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
    clearTimeout(retryTimer);
    connect();
  });

  connect();
})();
