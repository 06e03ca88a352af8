"""The ``scoreboard`` command: serve, migrate, token, demo, backup, restore.

Every failure a user can cause (a bad flag, a bad setting) ends in one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from scoreboard import demo, logs
from scoreboard.errors import ScoreboardError
from scoreboard.model import DEFAULT_METRIC
from scoreboard.settings import Settings, describe_error

log = logging.getLogger("scoreboard")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"scoreboard: error: {message}\n")
    raise SystemExit(2)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        _fail(describe_error(exc))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scoreboard",
        description="A live leaderboard service. Configuration comes from SCOREBOARD_* "
        "environment variables or a .env file (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="apply pending migrations, then serve HTTP and WebSocket"
    )
    serve.add_argument("--host", help="address to listen on (default: SCOREBOARD_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: SCOREBOARD_PORT, 8000)"
    )
    serve.add_argument(
        "--workers",
        type=_workers_arg,
        default=1,
        help="processes sharing the port (default 1); more than 1 needs PostgreSQL and Redis",
    )

    commands.add_parser("migrate", help="apply pending database migrations and exit")

    boards = commands.add_parser(
        "boards",
        help="list the boards; start a manual board's next season; apply a boards file",
        description="Without an action: every board served (from the database's applied "
        "configuration), its current period and entries.",
    )
    board_actions = boards.add_subparsers(dest="action", metavar="ACTION")
    rollover = board_actions.add_parser(
        "rollover",
        help="end the current season of a manual board and start the next one (the running "
        "servers announce it within a second)",
    )
    rollover.add_argument("board", metavar="BOARD")
    apply_cmd = board_actions.add_parser(
        "apply",
        help="store FILE as the boards every process serves (the running servers take it up "
        "within seconds; new boards are filled from the stored events)",
    )
    apply_cmd.add_argument("file", metavar="FILE", type=Path)

    export = commands.add_parser(
        "export",
        help="write every row of a board's period as CSV or NDJSON (streamed)",
        description="From the database: the board's current period unless --period names "
        "another. CSV is for spreadsheets (formula-like text cells get a leading '); NDJSON "
        "is the lossless format.",
    )
    export.add_argument("board", metavar="BOARD")
    export.add_argument("--period", help="a period id (default: the current one)")
    export.add_argument("--format", choices=("csv", "ndjson"), default="csv")
    export.add_argument("--out", type=Path, help="the file to write (default: standard output)")

    _consistency_parsers(commands)

    keys = commands.add_parser(
        "admin-key",
        help="create, list or revoke the keys of the admin API (/api/admin)",
        description="Admin keys are kept in the database as hashes; a new key is printed once.",
    )
    key_actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create_key = key_actions.add_parser("create", help="make a key and print it (once)")
    create_key.add_argument("name", metavar="NAME", type=_key_name_arg, help="who holds it")
    key_actions.add_parser("list", help="every key's name, when made, last used, revoked")
    revoke_key = key_actions.add_parser("revoke", help="revoke a key at once, for good")
    revoke_key.add_argument("name", metavar="NAME")

    token = commands.add_parser(
        "token",
        help="print a signed token for a user, to try the API with curl",
        description="Print a token signed with the server's secret (SCOREBOARD_JWT_SECRET, "
        "or the one generated in the data folder).",
    )
    token.add_argument("user_id", metavar="USER_ID", help="the user the token speaks for")
    token.add_argument(
        "--ttl", type=int, help="seconds until it expires (default 3600; a grant 300)"
    )
    token.add_argument("--name", help="display name shown on the board")
    token.add_argument(
        "--grant",
        action="store_true",
        help="mint a score grant (for SCOREBOARD_AUTH_MODE=grant) instead of a login token",
    )
    token.add_argument("--delta", type=int, help="with --grant: the points it grants")
    token.add_argument("--action", help="with --grant: the action id, applied at most once")
    token.add_argument(
        "--metric", help="with --grant: the metric the grant is for (default points)"
    )

    demo_cmd = commands.add_parser(
        "demo",
        help="post realistic score updates to a running server, to watch the page move",
        description="Mint tokens with the server's secret (run it in the server's folder) and "
        "post score updates for a cast of players, printing a line each second.",
    )
    demo_cmd.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the server (default %(default)s)"
    )
    demo_cmd.add_argument(
        "--users", type=demo.users_arg, default=20, help="players, 1-1000 (default 20)"
    )
    demo_cmd.add_argument(
        "--rate", type=demo.rate_arg, default=5.0, help="updates a second, max 1000 (default 5)"
    )
    demo_cmd.add_argument(
        "--duration", type=demo.duration_arg, default=120.0, help="seconds (default 120)"
    )
    demo_cmd.add_argument(
        "--wait",
        type=demo.wait_arg,
        default=0.0,
        help="seconds to wait for a server that is still starting (default 0)",
    )
    demo_cmd.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="post events of this metric, in its range from SCOREBOARD_BOARDS; repeat it for "
        "several (default: points)",
    )
    _add_backup_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port, args.workers)
    elif args.command == "migrate":
        _migrate()
    elif args.command == "boards":
        _boards(args)
    elif args.command == "export":
        _export(args)
    elif args.command in ("verify", "repair"):
        _consistency(args)
    elif args.command == "admin-key":
        _admin_key(args)
    elif args.command == "token":
        _token(args)
    elif args.command == "demo":
        _demo(args)
    elif args.command in ("backup", "restore"):
        _backup_or_restore(args)


def _migrate(settings: Settings | None = None, *, log_level: str | None = None) -> None:
    from scoreboard import migrate

    settings = settings or _settings()
    logs.configure(settings.log_format, log_level or settings.log_level)
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:  # a database we cannot reach or write: one line, not a traceback
        _fail(f"migration failed: {exc}".splitlines()[0])


def _export(args: argparse.Namespace) -> None:
    """``scoreboard export BOARD [--period P] [--format F] [--out FILE]``, on the database."""
    import asyncio
    from datetime import UTC, datetime

    from scoreboard import bootstrap, exports, periods

    settings = _settings()
    _migrate(settings, log_level="warning")

    async def run() -> None:
        store = bootstrap.store_of(settings)
        await store.open()
        try:
            config, _ = await store.load_config()
            if config is None:
                _fail("no boards configuration is stored yet: start the server once first")
            board = config.boards.get(args.board)
            if board is None:
                _fail(f"there is no board '{args.board}' (boards: {', '.join(config.boards)})")
            if args.period is not None:
                period_id = periods.parse_period_id(board.reset, args.period)
            elif board.reset == "manual":
                season = (await store.seasons()).get(board.id)
                if season is None:
                    _fail(f"board '{board.id}' has no season yet")
                period_id = season.id
            else:
                period_id = periods.period_at(board.reset, board.timezone, datetime.now(UTC)).id
            if await store.period(board.id, period_id) is None:
                _fail(f"board '{board.id}' has no period '{period_id}'")
            out = sys.stdout.buffer if args.out is None else args.out.open("wb")
            try:
                chunks = store.iter_ranked(board.id, period_id)
                async for data in exports.encode(chunks, args.format):
                    out.write(data)
                out.flush()
            finally:
                if args.out is not None:
                    out.close()
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except ScoreboardError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot write {args.out}: {exc.strerror or exc}")


def _consistency_parsers(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="recompute every board and period from the events and compare with the stored "
        "standings (and the Redis rank index); exit 1 on any difference",
        description="Prints one line per difference (board, period, user, which store, "
        "expected, found) and exits 1; with none, a one-line summary and exit 0. Safe while "
        "the servers run.",
    )
    verify.add_argument("--board", metavar="BOARD", help="only this board")
    repair = commands.add_parser(
        "repair",
        help="rebuild the standings (and the Redis rank index) from the events where they "
        "differ, while the servers run; then verify",
        description="Recounts each user that differs from the events, under the same "
        "serialization as updates (none is lost or counted twice), prints what it repaired, "
        "then verifies: exit 0 when everything agrees.",
    )
    repair.add_argument("--board", metavar="BOARD", help="only this board")


def _consistency(args: argparse.Namespace) -> None:
    """``scoreboard verify|repair [--board B]`` (scoreboard.consistency), on the database."""
    import asyncio

    from scoreboard import bootstrap
    from scoreboard.consistency import Summary

    settings = _settings()
    _migrate(settings, log_level="warning")

    async def run() -> int:
        async with bootstrap.consistency_of(settings) as consistency:
            if args.command == "repair":
                repaired = Summary()
                async for difference in consistency.repair(args.board, repaired):
                    print("repaired: " + difference.line(), flush=True)
                print(f"repaired {repaired.repaired} standings", flush=True)
            summary = Summary()
            async for difference in consistency.verify(args.board, summary):
                print(difference.line(), flush=True)
            print(summary.line(), flush=True)
            return 1 if summary.differences else 0

    try:
        status = asyncio.run(run())
    except ScoreboardError as exc:
        _fail(exc.message)
    raise SystemExit(status)


def _key_name_arg(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", value) is None:
        raise argparse.ArgumentTypeError("must be 1-64 of A-Za-z0-9_.@-")
    return value


def _admin_key(args: argparse.Namespace) -> None:
    """``scoreboard admin-key create NAME | list | revoke NAME``, on the database."""
    import asyncio

    from scoreboard import bootstrap
    from scoreboard.web.guards.admin import key_hash, new_key

    settings = _settings()
    _migrate(settings, log_level="warning")

    async def run() -> None:
        store = bootstrap.store_of(settings)
        await store.open()
        try:
            if args.action == "create":
                secret = new_key()
                await store.add_key(args.name, key_hash(secret))
                print(secret, flush=True)
                sys.stderr.write(
                    f"admin key '{args.name}' created; it is shown only now: keep it safe\n"
                )
            elif args.action == "revoke":
                if not await store.revoke_key(args.name):
                    _fail(f"there is no active admin key named '{args.name}'")
                print(f"admin key '{args.name}' revoked")
            else:
                print(f"{'NAME':<24} {'CREATED (UTC)':<17} {'LAST USED':<17} REVOKED")
                for held in await store.keys():
                    print(
                        f"{held.name:<24} {_when(held.created_at):<17} "
                        f"{_when(held.last_used_at):<17} {_when(held.revoked_at)}"
                    )
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except ScoreboardError as exc:
        _fail(exc.message)


def _when(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _workers_arg(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= workers <= 256:
        raise argparse.ArgumentTypeError("must be from 1 to 256")
    return workers


def _serve(host: str | None, port: int | None, workers: int = 1) -> None:
    import asyncio

    from scoreboard import bootstrap
    from scoreboard.applying import ConfigurationRefused
    from scoreboard.server import run

    settings = _settings(host=host, port=port)
    if workers > 1 and not settings.is_scaled:
        _fail(
            f"--workers {workers} needs PostgreSQL and Redis (SCOREBOARD_DATABASE_URL="
            "postgresql://... and SCOREBOARD_REDIS_URL=redis://...): otherwise each process "
            "would keep a board of its own"
        )
    try:
        run.check_version(run.installed_uvicorn(), allow_untested=settings.allow_untested_server)
    except run.UnsupportedServer as exc:
        _fail(str(exc))
    _migrate(settings)
    try:
        bootstrap.build(settings)  # fail fast, before uvicorn starts, on what we cannot run
        asyncio.run(bootstrap.settle_boards(settings))
    except (bootstrap.ConfigurationError, ConfigurationRefused, ValueError, OSError) as exc:
        _fail(str(exc))
    except ScoreboardError as exc:  # the database is unavailable
        _fail(exc.message)
    log.info(
        "starting",
        extra={
            "listen": f"http://{settings.host}:{settings.port}",
            "database": _without_password(settings.database_url),
            "redis": _without_password(settings.redis_url),
            "workers": workers,
            "delta_range": f"{settings.min_delta}..{settings.max_delta}",
            "jwt_audience": settings.jwt_audience,
            "jwt_issuer": settings.jwt_issuer,
            "log_format": settings.log_format,
        },
    )
    log.info(
        "limits",
        extra={
            "rate_limit_user": settings.rate_limit_user,
            "rate_limit_ip": settings.rate_limit_ip,
            "velocity_limit": settings.velocity_limit,
            "trusted_proxies": settings.trusted_proxies or None,
            "allowed_origins": settings.allowed_origins or "*",
            "ws_max_connections": settings.ws_max_connections,
            "ws_max_per_address": settings.ws_max_per_address,
        },
    )
    run.serve(settings, workers=workers)


def _without_password(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***``, for the log (no secret is ever logged)."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _boards(args: argparse.Namespace) -> None:
    """``scoreboard boards [rollover BOARD | apply FILE]``: on the database, so it works while
    the servers run (they take changes up within seconds)."""
    import asyncio
    from datetime import UTC, datetime

    from scoreboard import applying, bootstrap
    from scoreboard.boards import BoardsConfigError, load_config
    from scoreboard.service import period_closed_notice

    settings = _settings()
    _migrate(settings, log_level="warning")  # the command's output is its answer, not a log

    async def run() -> None:
        store = bootstrap.store_of(settings)
        await store.open()
        try:
            config, _ = await store.load_config()
            if args.action == "apply":
                defaults = bootstrap.boards_of(settings).metrics["points"]
                wanted = load_config(args.file, points_defaults=defaults)
                version = await applying.apply(store, wanted)
                print(f"applied {args.file} as version {version}: {', '.join(wanted.boards)}")
                return
            if config is None:
                _fail("no boards configuration is stored yet: start the server once first")
            if args.action == "rollover":
                board = config.boards.get(args.board)
                if board is None:
                    _fail(f"there is no board '{args.board}' (boards: {', '.join(config.boards)})")
                if board.reset != "manual":
                    _fail(
                        f"board '{board.id}' resets {board.reset} by itself; only a manual "
                        "board is rolled over"
                    )
                closed, opened = await store.rollover(board)
                print(f"board {board.id}: season {closed.id} ended, season {opened.id} started")
                # Queued here, so it is sent even if no server runs now (a server that takes
                # the new season up queues the same event: the outbox keeps one).
                notice = await period_closed_notice(store, board.id, closed.id, datetime.now(UTC))
                await store.enqueue(notice)
                return
            await _list_boards(store, config)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except (BoardsConfigError, applying.ConfigurationRefused, OSError) as exc:
        _fail(str(exc))
    except ScoreboardError as exc:
        _fail(exc.message)


async def _list_boards(store: Any, config: Any) -> None:
    from datetime import UTC, datetime

    from scoreboard import periods

    seasons = await store.seasons()
    now = datetime.now(UTC)
    print(f"{'BOARD':<20} {'METRIC':<12} {'RESET':<8} {'PERIOD':<12} {'ENDS (UTC)':<20} ENTRIES")
    for board in config.boards.values():
        if board.reset == "manual":
            period = seasons.get(board.id)
        else:
            period = periods.period_at(board.reset, board.timezone, now)
        period_id = "-" if period is None else period.id
        ends = "-" if period is None or period.ends_at is None else period.ends_at
        ends_text = ends if isinstance(ends, str) else ends.strftime("%Y-%m-%d %H:%M")
        entries = 0 if period is None else await store.count(board.id, period.id)
        print(
            f"{board.id:<20} {board.metric:<12} {board.reset:<8} {period_id:<12} "
            f"{ends_text:<20} {entries}"
        )


def _token(args: argparse.Namespace) -> None:
    from scoreboard.auth.mint import mint
    from scoreboard.auth.secret import load_or_create_secret
    from scoreboard.auth.verify import Grant
    from scoreboard.model import USER_ID_RULE, is_valid_action_id, is_valid_user_id

    if not is_valid_user_id(args.user_id):
        _fail(f"USER_ID must be {USER_ID_RULE}")
    grant = None
    if args.grant:
        if args.delta is None or args.action is None:
            _fail("--grant needs --delta D and --action A")
        if not is_valid_action_id(args.action):
            _fail("--action must be 1-128 printable characters")
        grant = Grant(delta=args.delta, action_id=args.action, metric=args.metric or "points")
    elif args.delta is not None or args.action is not None or args.metric is not None:
        _fail("--delta, --action and --metric only go with --grant")
    ttl = args.ttl if args.ttl is not None else (300 if grant else 3600)
    if ttl <= 0:
        _fail("--ttl must be a positive number of seconds")
    settings = _settings()
    if ttl > settings.jwt_max_ttl:
        _fail(f"--ttl must be at most SCOREBOARD_JWT_MAX_TTL ({settings.jwt_max_ttl} s)")
    if "HS256" not in settings.token_algorithms:
        _fail(
            "this server verifies "
            + ", ".join(settings.token_algorithms)
            + " tokens, signed by your own issuer's private key; token mints HS256 only"
        )
    logs.configure(settings.log_format, settings.log_level)
    try:
        secret = load_or_create_secret(settings)
    except ValueError as exc:  # a secret file that cannot be used
        _fail(str(exc))
    print(
        mint(
            secret,
            args.user_id,
            ttl=ttl,
            name=args.name,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            grant=grant,
        )
    )


def _demo(args: argparse.Namespace) -> None:
    from scoreboard import bootstrap
    from scoreboard.auth.secret import load_or_create_secret
    from scoreboard.boards import BoardsConfigError

    settings = _settings()
    logs.configure(settings.log_format, settings.log_level)
    try:
        declared = bootstrap.boards_of(settings).metrics
    except BoardsConfigError as exc:
        _fail(str(exc))
    metrics = {}
    for name in args.metric or [DEFAULT_METRIC]:
        metric = declared.get(name)
        if metric is None:
            _fail(
                f"--metric: there is no metric '{name}' in the boards file "
                f"(SCOREBOARD_BOARDS; metrics: {', '.join(sorted(declared))})"
            )
        if metric.max_delta < 1:
            _fail(f"--metric: the demo posts positive values; '{name}' allows none")
        metrics[name] = (max(1, metric.min_delta), metric.max_delta)
    try:
        demo.run(
            args.url,
            secret=load_or_create_secret(settings),
            users=args.users,
            rate=args.rate,
            duration=args.duration,
            metrics=metrics,
            wait=args.wait,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            out=sys.stdout,
        )
    except (demo.DemoError, ValueError) as exc:
        _fail(str(exc))


def _add_backup_commands(commands: Any) -> None:
    backup = commands.add_parser(
        "backup",
        help="copy the database and the data folder's secrets to FILE while the server runs",
        description="Embedded mode (SQLite): a consistent copy taken while the server keeps "
        "serving and writing, with the generated token secret and erasure key, in one tar "
        "file (mode 0600: it holds secrets). PostgreSQL: prints how to use pg_dump instead.",
    )
    backup.add_argument("file", metavar="FILE", type=Path)
    restore = commands.add_parser(
        "restore",
        help="replace the database and the data folder's secrets with a backup (server stopped)",
        description="Embedded mode (SQLite), with every server on this data stopped: checks "
        "FILE, replaces the database and secrets, and erases again every user erased after "
        "the backup was taken. A bad file or a running server changes nothing.",
    )
    restore.add_argument("file", metavar="FILE", type=Path)


def _backup_or_restore(args: argparse.Namespace) -> None:
    """``scoreboard backup FILE`` and ``scoreboard restore FILE`` (``scoreboard.backup``)."""
    from scoreboard import backup
    from scoreboard.adapters.sqlite_store import sqlite_path

    settings = _settings()
    logs.configure(settings.log_format, "warning")  # the command's output is its answer
    if not settings.is_sqlite:
        sys.stderr.write(_pg_guidance(args.command, args.file, settings.database_url))
        raise SystemExit(2)
    database = sqlite_path(settings.database_url)
    try:
        if args.command == "backup":
            made = backup.backup(database, settings.data_dir, args.file)
            secrets = [name for name in made.files if name != backup.DATABASE]
            print(
                f"backed up {database} as of {made.created_at:%Y-%m-%d %H:%M:%S} UTC (schema "
                f"{made.schema_revision}), with {' and '.join(secrets) or 'no secret file'} "
                f"from {settings.data_dir}, to {args.file}"
            )
            return
        key = settings.erasure_key
        done = backup.restore(
            database,
            settings.data_dir,
            args.file,
            erasure_key=None if key is None else key.get_secret_value().encode(),
        )
    except backup.BackupError as exc:
        _fail(str(exc))
    print(
        f"restored {database} from {args.file}, as of "
        f"{done.manifest.created_at:%Y-%m-%d %H:%M:%S} UTC; {done.erasures_carried} erasure(s) "
        f"made since the backup, {done.erasures_reapplied} user(s) in it erased again"
    )


def _pg_guidance(command: str, file: Path, database_url: str) -> str:
    url = _without_password(database_url)
    return (
        f"scoreboard: error: {command} works on the embedded database (SQLite); this "
        "deployment runs on PostgreSQL, where pg_dump is the tool. Nothing was done.\n"
        "  back up (while serving; one consistent snapshot):\n"
        f"    pg_dump --format=custom --file={file} '{url}'\n"
        "  restore (every server stopped; the database is replaced):\n"
        f"    pg_restore --clean --if-exists --no-owner --single-transaction --dbname='{url}' "
        f"{file}\n"
        "Redis holds only derived state (rank indexes, the bus): the servers rebuild it from "
        "PostgreSQL when they start. Keep SCOREBOARD_JWT_SECRET and SCOREBOARD_ERASURE_KEY "
        "with the dump. pg_restore does not erase again users erased after the dump was "
        "taken: see docs/operations.md, 'Backup and restore'.\n"
    )


if __name__ == "__main__":
    main()
