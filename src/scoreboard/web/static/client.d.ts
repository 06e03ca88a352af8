// Types of Scoreboard's browser client, /client.js (docs/live.md, "Browser client").

/** One row of a board or a view, best first. */
export interface Row {
  rank: number;
  user_id: string;
  username: string | null;
  score: number;
}

/** Where a connection or subscription is: `live` once the server has sent a state on the
 * current socket; `reconnecting` while it waits to open a socket again (or, for a view the
 * server could not read, to ask again); `closed` after `close()` or a refusal. */
export type Status = "connecting" | "live" | "reconnecting" | "closed";

/** Test seams: what the client would otherwise take from the browser. */
export interface Seams {
  WebSocket?: { new (url: string): WebSocket };
  /** A number in [0, 1): the jitter of the reconnection delay. */
  random?: () => number;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

export interface ConnectionOptions extends Seams {
  /** The server: an http, https, ws or wss address whose path is a prefix. Default: the server
   * this module was loaded from. */
  url?: string | URL;
}

/** A board's top 10, whole, as the push channel sent it. */
export interface BoardState {
  /** `SNAPSHOT` on every (re)connect, `SCORE_UPDATE` at a change of the top 10,
   * `PERIOD_STARTED` when a new period began. */
  type: "SNAPSHOT" | "SCORE_UPDATE" | "PERIOD_STARTED";
  /** The board (the one asked for; `null` on `/ws/scoreboard` without it). */
  board: string | null;
  /** The board's current period; `null` on `/ws/scoreboard`, which does not say. */
  period: string | null;
  /** The board's own sequence number. */
  seq: number;
  rankings: Row[];
  /** `SCORE_UPDATE`: whose update changed the board, and their new score. */
  user_id: string | null;
  new_score: number | null;
  /** `PERIOD_STARTED`: the period that ended. */
  previous: string | null;
}

export interface Counters {
  /** States taken, and those dropped as stale (seq not above the last one taken). */
  states: number;
  stale: number;
  /** States taken after a gap in seq (states the server skipped for a slow socket). */
  gaps: number;
}

export interface BoardConnectOptions extends ConnectionOptions {
  /** The board's id; without it, the default board's `/ws/scoreboard`. */
  board?: string;
  onState?: (state: BoardState) => void;
  onStatus?: (status: Status) => void;
}

export interface BoardConnection extends AsyncIterable<BoardState> {
  readonly url: string;
  readonly status: Status;
  /** The newest state taken, or `null` before the first. */
  readonly state: BoardState | null;
  readonly stats: Counters & { connects: number };
  on(type: "state", listener: (state: BoardState) => void): () => void;
  on(type: "status", listener: (status: Status) => void): () => void;
  /** Closes the socket for good; every iterator over this connection ends. */
  close(): void;
}

/** Connects to one board's push channel, `/ws/boards/{board}` (`/ws/scoreboard` without a
 * board), and keeps it connected until `close()`. */
export function connect(options?: BoardConnectOptions): BoardConnection;

/** A view's rows, whole. */
export interface ViewState {
  /** `snapshot` at (re)subscribing and at a new period; `update` when the view changed. */
  type: "snapshot" | "update";
  board: string;
  period: string;
  /** The subscription's own sequence number: 1 for its snapshot, then one more per state. */
  seq: number;
  /** `me`: the user's own row, empty until ranked. `around`: empty while the user is not
   * ranked. */
  rows: Row[];
}

/** A personal event of a `me` view, in the order the server sent them. */
export interface ViewEvent {
  event: "rank_changed" | "overtaken" | "entered_top" | "left_top";
  board: string;
  period: string;
  rank: number | null;
  score: number | null;
  by: { user_id: string; username: string | null; score: number } | null;
}

interface ViewCallbacks {
  onState?: (state: ViewState) => void;
  onEvent?: (event: ViewEvent) => void;
  onStatus?: (status: Status) => void;
  /** Every error the server sent about this subscription. `unavailable` is retried with the
   * reconnection delays; any other ends the subscription (`status` becomes `closed`). */
  onError?: (error: SubscriptionError) => void;
}

export type SubscribeOptions = ConnectionOptions &
  ViewCallbacks & { board: string } & (
    | { view: "top"; limit?: number }
    | { view: "around"; user_id: string; radius?: number }
    | { view: "me"; auth_token: string }
  );

/** Iterating yields states and events in order; states not yet taken by a slow loop are
 * replaced by newer ones. A refusal ends the loop by throwing its `SubscriptionError`. */
export interface Subscription extends AsyncIterable<ViewState | ViewEvent> {
  readonly url: string;
  readonly board: string;
  readonly view: "top" | "around" | "me";
  readonly status: Status;
  readonly state: ViewState | null;
  readonly stats: Counters & { subscribes: number; events: number };
  on(type: "state", listener: (state: ViewState) => void): () => void;
  on(type: "event", listener: (event: ViewEvent) => void): () => void;
  on(type: "status", listener: (status: Status) => void): () => void;
  on(type: "error", listener: (error: SubscriptionError) => void): () => void;
  /** Unsubscribes; the socket closes with its last subscription. Iterators end. */
  close(): void;
}

/** Subscribes to one view of `/ws`. The subscriptions made with the same `url` (and
 * `WebSocket`) share a socket, up to the server's 20 a socket; more open another. */
export function subscribe(options: SubscribeOptions): Subscription;

/** An error the server sent about a subscription (`code` is its `error`), or a request refused
 * before anything was sent (`invalid_view`, `invalid_board`, `invalid_url`). */
export class SubscriptionError extends Error {
  readonly code: string;
  constructor(code: string, message: string);
}

/** The delay in ms before retry number `attempt` (0 first): half of min(8000, 500 * 2^attempt)
 * plus `random` times the other half. */
export function retryDelay(attempt: number, random: number, base?: number, most?: number): number;

/** The WebSocket address of `path` on the server at `url` (default: this module's server). */
export function socketUrl(url: string | URL | undefined, path: string): string;
