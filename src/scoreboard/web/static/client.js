// @ts-self-types="./client.d.ts"
//
// Scoreboard's browser client: the live channels of docs/live.md, as an ES module with no build
// step and no dependency. Served by the service at /client.js (its types at /client.d.ts).
//
//   connect({url, board})    one board's push channel, /ws/boards/{board} (/ws/scoreboard
//                            without a board): the top 10, whole, at every change
//   subscribe({url, board, view, ...})
//                            one view of /ws (top, around, me); the subscriptions made with one
//                            url share a socket (up to 20 each, the server's limit)
//
// Both hand out states through callbacks (`on("state", fn)`, or `onState` among the options)
// and as an async iterator (`for await (const state of connection)`), and keep themselves up:
//
// - Reconnecting. A closed socket is opened again after a delay that doubles from 0.5 s to 8 s
//   with equal jitter (half fixed, half random), so pages dropped together by a restart do not
//   come back in the same instant. The delay starts over only when the server has answered with
//   a state, not on "open": a server that accepts and closes at once gets no tight loop.
// - Resubscribing. Every open subscription is sent again on the new socket (under a new wire
//   id, so a late message of the old one can never be taken for the new one); its snapshot
//   replaces what was held, whatever its seq (a restarted server numbers from 1 again).
// - seq. A state whose seq is not above the last one taken is stale and dropped. A seq more
//   than one above is a gap (the server skipped states for a slow socket): every state is
//   whole, so taking it is the repair; the gap is counted in `stats.gaps`.
//
// Time, randomness and the socket are options (`setTimeout`, `clearTimeout`, `random`,
// `WebSocket`), so the rules above can be tested at any instant without a server.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;
const SUBSCRIPTIONS_PER_SOCKET = 20; // the server's limit (docs/live.md)
const QUEUE_MAX = 1024; // items an iterator holds for a consumer that stopped reading
const NORMAL_CLOSURE = 1000;

/** An error the server sent about a subscription, or a refusal before anything was sent. */
export class SubscriptionError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SubscriptionError";
    this.code = code;
  }
}

/** The delay before retry number `attempt` (0 for the first): equal jitter under a doubling,
 * capped ceiling. `random` is a number in [0, 1). */
export function retryDelay(attempt, random, base = BASE_DELAY_MS, most = MAX_DELAY_MS) {
  const ceiling = Math.min(most, base * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + (random * ceiling) / 2;
}

/** The WebSocket address of `path` on the server at `url` (http, https, ws or wss; its path is
 * a prefix, as behind a proxy that serves the service under /scores/). Without `url`, the
 * server this module was loaded from. */
export function socketUrl(url, path) {
  const base = new URL(url ?? new URL(".", import.meta.url), globalThis.location?.href);
  if (base.protocol === "http:") base.protocol = "ws:";
  else if (base.protocol === "https:") base.protocol = "wss:";
  else if (base.protocol !== "ws:" && base.protocol !== "wss:") {
    throw new SubscriptionError("invalid_url", `not an http(s) or ws(s) address: ${base.href}`);
  }
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return new URL(path, base).href;
}

function seams(options) {
  return {
    WebSocket: options.WebSocket ?? globalThis.WebSocket,
    random: options.random ?? Math.random,
    setTimeout: options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
    clearTimeout: options.clearTimeout ?? ((id) => globalThis.clearTimeout(id)),
  };
}

// -- What both kinds of connection share: listeners and async iterators --------------------------

class Feed {
  #listeners = new Map(); // type -> Set of functions
  #queues = new Set();
  #ended = false;
  #failure = null;

  constructor(options) {
    for (const [type, key] of [["state", "onState"], ["event", "onEvent"],
                               ["status", "onStatus"], ["error", "onError"]]) {
      if (typeof options[key] === "function") this.on(type, options[key]);
    }
  }

  /** Calls `listener` with every item of `type`; returns the function that stops it. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type).delete(listener);
  }

  emit(type, item) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(item);
      } catch (error) {
        // One listener's bug must not stop the others nor the connection: report it as the
        // browser reports an uncaught error, after this turn.
        queueMicrotask(() => { throw error; });
      }
    }
    if (type === "state" || type === "event") {
      for (const queue of this.#queues) queue.push(item, type === "state");
    }
  }

  end(failure = null) {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    for (const queue of this.#queues) queue.end(failure);
    this.#queues.clear();
  }

  [Symbol.asyncIterator]() {
    const queue = new Queue(() => this.#queues.delete(queue));
    if (this.#ended) queue.end(this.#failure);
    else this.#queues.add(queue);
    return queue;
  }
}

// One consumer's items. States are whole, so a state not yet taken is replaced by a newer one
// (unless an event came between them: events keep their place and order).
class Queue {
  #items = [];
  #waiting = [];
  #done = false;
  #failure = null;
  #detach;

  constructor(detach) {
    this.#detach = detach;
  }

  push(value, isState) {
    const waiter = this.#waiting.shift();
    if (waiter) {
      waiter.resolve({ value, done: false });
      return;
    }
    const last = this.#items[this.#items.length - 1];
    if (isState && last && last.isState) last.value = value;
    else this.#items.push({ value, isState });
    if (this.#items.length > QUEUE_MAX) this.#items.shift();
  }

  end(failure) {
    this.#done = true;
    this.#failure = failure;
    const waiting = this.#waiting.splice(0);
    if (failure && waiting.length) {
      this.#failure = null; // thrown to the loop that was waiting; it is over after it
      waiting.shift().reject(failure);
    }
    for (const waiter of waiting) waiter.resolve({ value: undefined, done: true });
  }

  next() {
    if (this.#items.length) return Promise.resolve({ value: this.#items.shift().value, done: false });
    if (this.#done) {
      const failure = this.#failure;
      this.#failure = null; // thrown once; the loop is over after it
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Leaving a `for await` loop: this consumer stops; the connection stays open. */
  return() {
    this.#detach();
    this.#items = [];
    this.end(null);
    this.#failure = null;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

// -- A socket that comes back ------------------------------------------------------------------

// Opens `url`, hands each parsed message to `onMessage`, and after every close waits its delay
// and opens it again, until `close()`. `answered()` says the server really answered (a state),
// which starts the delays over.
class Link {
  constructor(url, seam, handlers, stats) {
    this.url = url;
    this.seam = seam;
    this.handlers = handlers; // onOpen(), onMessage(message), onDrop()
    this.stats = stats; // its `connects` counts the sockets opened
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.closed = false;
    this.onOnline = () => {
      if (this.timer === null) return;
      this.seam.clearTimeout(this.timer);
      this.timer = null;
      this.open();
    };
    globalThis.addEventListener?.("online", this.onOnline);
    this.open();
  }

  open() {
    if (this.closed) return;
    let ws;
    try {
      ws = new this.seam.WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.socket = ws;
    this.stats.connects += 1;
    ws.onopen = () => {
      if (this.socket === ws) this.handlers.onOpen();
    };
    ws.onmessage = (event) => {
      if (this.socket !== ws) return; // a socket given up on: nothing it says counts
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message !== null && typeof message === "object") this.handlers.onMessage(message);
    };
    // "error" is always followed by "close": this is the one place that retries.
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (this.closed) return;
      this.handlers.onDrop();
      this.retry();
    };
  }

  retry() {
    if (this.closed || this.timer !== null) return;
    const delay = retryDelay(this.attempt, this.seam.random());
    this.attempt += 1;
    this.timer = this.seam.setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  answered() {
    this.attempt = 0;
  }

  send(message) {
    if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(message));
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === 1;
  }

  close() {
    this.closed = true;
    if (this.timer !== null) this.seam.clearTimeout(this.timer);
    this.timer = null;
    globalThis.removeEventListener?.("online", this.onOnline);
    const ws = this.socket;
    this.socket = null;
    if (ws) ws.close(NORMAL_CLOSURE);
  }
}

// -- connect(): a board's push channel ---------------------------------------------------------

const BOARD_TYPES = new Set(["SNAPSHOT", "SCORE_UPDATE", "PERIOD_STARTED"]);

class BoardConnection extends Feed {
  #link;
  #board;
  #lastSeq = null;

  constructor(options) {
    super(options);
    this.#board = options.board ?? null;
    this.status = "connecting";
    this.state = null;
    this.stats = { connects: 0, states: 0, stale: 0, gaps: 0 };
    const path = this.#board === null ? "ws/scoreboard" : `ws/boards/${encodeURIComponent(this.#board)}`;
    this.url = socketUrl(options.url, path);
    this.#link = new Link(this.url, seams(options), {
      onOpen: () => {},
      onMessage: (message) => this.#take(message),
      onDrop: () => this.#setStatus("reconnecting"),
    }, this.stats);
  }

  #take(message) {
    const data = message.data;
    if (!BOARD_TYPES.has(message.type) || data === null || typeof data !== "object") return;
    if (!Array.isArray(data.rankings) || typeof data.seq !== "number") return;
    if (this.#board !== null && data.board !== undefined && data.board !== this.#board) return;
    if (message.type === "SNAPSHOT") {
      // The truth on (re)connecting, whatever its seq: a restarted server may number anew.
      this.#link.answered();
    } else if (this.#lastSeq === null || data.seq <= this.#lastSeq) {
      this.stats.stale += 1; // older than the board held (or before any snapshot)
      return;
    } else if (data.seq > this.#lastSeq + 1) {
      this.stats.gaps += 1; // skipped for a slow socket; this board is whole
    }
    this.#lastSeq = data.seq;
    const state = {
      type: message.type,
      board: data.board ?? this.#board,
      period: data.period ?? null,
      seq: data.seq,
      rankings: data.rankings,
      user_id: data.user_id ?? null,
      new_score: data.new_score ?? null,
      previous: data.previous ?? null,
    };
    this.state = state;
    this.stats.states += 1;
    this.#setStatus("live");
    this.emit("state", state);
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  /** Closes the socket for good; every iterator over this connection ends. */
  close() {
    if (this.status === "closed") return;
    this.#link.close();
    this.#setStatus("closed");
    this.end();
  }
}

/** One board's live top 10 from `/ws/boards/{board}` (`/ws/scoreboard` without `board`). */
export function connect(options = {}) {
  return new BoardConnection(options);
}

// -- subscribe(): the views of /ws, many on one socket ------------------------------------------

const pools = new Map(); // WebSocket constructor -> Map(socket url -> [Mux])

// One /ws socket and the subscriptions on it.
class Mux {
  constructor(url, seam) {
    this.url = url;
    this.seam = seam;
    this.subscriptions = new Set();
    this.byWireId = new Map();
    this.nextId = 1;
    this.stats = { connects: 0 };
    this.link = new Link(url, seam, {
      onOpen: () => {
        for (const sub of this.subscriptions) this.send(sub);
      },
      onMessage: (message) => this.take(message),
      onDrop: () => {
        this.byWireId.clear(); // the server forgot them with the socket
        for (const sub of this.subscriptions) sub.dropped();
      },
    }, this.stats);
  }

  add(sub) {
    this.subscriptions.add(sub);
    if (this.link.isOpen) this.send(sub);
  }

  send(sub) {
    if (sub.wireId !== null) this.byWireId.delete(sub.wireId);
    sub.wireId = `c${this.nextId++}`;
    sub.lastSeq = 0;
    sub.stats.subscribes += 1;
    this.byWireId.set(sub.wireId, sub);
    this.link.send({ type: "subscribe", id: sub.wireId, ...sub.request });
  }

  remove(sub, refused) {
    this.subscriptions.delete(sub);
    if (sub.wireId !== null && this.byWireId.get(sub.wireId) === sub) {
      this.byWireId.delete(sub.wireId);
      // A refused subscription is not open on the server: nothing to unsubscribe.
      if (!refused) this.link.send({ type: "unsubscribe", id: sub.wireId });
    }
    if (this.subscriptions.size === 0) {
      this.link.close();
      const pool = pools.get(this.seam.WebSocket)?.get(this.url);
      if (pool) pool.splice(pool.indexOf(this), 1);
    }
  }

  take(message) {
    if (typeof message.id !== "string") return; // about no subscription (a bug of ours)
    const sub = this.byWireId.get(message.id);
    if (sub) sub.take(message);
  }
}

const VIEW_FIELDS = {
  top: ["limit"],
  around: ["user_id", "radius"],
  me: ["auth_token"],
};

class Subscription extends Feed {
  #mux;
  #retryTimer = null;
  #attempt = 0;

  constructor(options) {
    super(options);
    const fields = VIEW_FIELDS[options.view];
    if (!fields) throw new SubscriptionError("invalid_view", "view must be 'top', 'around' or 'me'");
    if (typeof options.board !== "string") throw new SubscriptionError("invalid_board", "board is required");
    this.request = { board: options.board, view: options.view };
    for (const field of fields) {
      if (options[field] !== undefined) this.request[field] = options[field];
    }
    this.board = options.board;
    this.view = options.view;
    this.status = "connecting";
    this.state = null;
    this.stats = { subscribes: 0, states: 0, events: 0, stale: 0, gaps: 0 };
    this.wireId = null;
    this.lastSeq = 0;
    const seam = seams(options);
    this.seam = seam;
    const url = socketUrl(options.url, "ws");
    if (!pools.has(seam.WebSocket)) pools.set(seam.WebSocket, new Map());
    const byUrl = pools.get(seam.WebSocket);
    if (!byUrl.has(url)) byUrl.set(url, []);
    const pool = byUrl.get(url);
    this.#mux = pool.find((m) => m.subscriptions.size < SUBSCRIPTIONS_PER_SOCKET);
    if (!this.#mux) {
      this.#mux = new Mux(url, seam);
      pool.push(this.#mux);
    }
    this.url = url;
    this.#mux.add(this);
  }

  take(message) {
    if (message.type === "snapshot" || message.type === "update") {
      if (!Array.isArray(message.rows) || typeof message.seq !== "number") return;
      if (message.seq <= this.lastSeq) {
        this.stats.stale += 1;
        return;
      }
      if (message.seq > this.lastSeq + 1) this.stats.gaps += 1; // skipped, and this one is whole
      this.lastSeq = message.seq;
      if (message.type === "snapshot") {
        this.#attempt = 0;
        this.#mux.link.answered();
      }
      const state = {
        type: message.type,
        board: message.board,
        period: message.period,
        seq: message.seq,
        rows: message.rows,
      };
      this.state = state;
      this.stats.states += 1;
      this.#setStatus("live");
      this.emit("state", state);
    } else if (message.type === "event") {
      this.stats.events += 1;
      const { type, id, ...event } = message;
      this.emit("event", event);
    } else if (message.type === "error") {
      this.#refused(message);
    }
  }

  #refused(message) {
    const error = new SubscriptionError(String(message.error), String(message.message ?? ""));
    this.emit("error", error);
    if (message.error === "unavailable") {
      // The rank index cannot be read now (scaled mode, Redis down): ask again later.
      this.#setStatus("reconnecting");
      const delay = retryDelay(this.#attempt, this.seam.random());
      this.#attempt += 1;
      this.#retryTimer = this.seam.setTimeout(() => {
        this.#retryTimer = null;
        if (this.status !== "closed" && this.#mux.link.isOpen) this.#mux.send(this);
      }, delay);
      return;
    }
    this.#finish(error); // a request the server will not serve, or a board that is gone
  }

  dropped() {
    this.wireId = null;
    if (this.#retryTimer !== null) this.seam.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#setStatus("reconnecting");
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  #finish(failure) {
    if (this.status === "closed") return;
    if (this.#retryTimer !== null) this.seam.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#mux.remove(this, failure !== null);
    this.#setStatus("closed");
    this.end(failure);
  }

  /** Unsubscribes; the shared socket closes with its last subscription. Iterators end. */
  close() {
    this.#finish(null);
  }
}

/** One view of `/ws`: `top` (`limit`), `around` (`user_id`, `radius`) or `me` (`auth_token`). */
export function subscribe(options) {
  return new Subscription(options);
}
