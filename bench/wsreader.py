"""The compiled WebSocket clients (``wsreader.c``) seen from Python: built on first use with the
system C compiler into ``bench/.build/`` (not committed), started as one process holding every
socket, and read back as per-socket arrays shaped like ``staleness.Client``'s, so the same
analysis applies. Why compiled: one Python process reads at most some tens of thousands of
frames a second, and 10,000 sockets at 10 updates/s is 100,000."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import tempfile
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "wsreader.c"
BINARY = HERE / ".build" / "wsreader"
RECORD = struct.Struct("<IIqd")  # socket, padding, seq, seconds (CLOCK_MONOTONIC)
PAYLOAD_HEAD = struct.Struct("<qI")


def build() -> Path:
    """The binary, compiled again when the source is newer."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("no C compiler for bench/wsreader.c: apt-get install gcc")
    BINARY.parent.mkdir(exist_ok=True)
    subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-o", str(BINARY), str(SOURCE)], check=True
    )
    return BINARY


class Socket:
    """One socket's record: the times it first held each newer ``seq`` (as ``Client``)."""

    __slots__ = ("seqs", "times")

    def __init__(self) -> None:
        self.seqs: array[int] = array("q")
        self.times: array[float] = array("d")

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else -1


class Reader:
    def __init__(self, host: str, port: int, path: str, sockets: int, known: dict[int, bytes]):
        self.host, self.port, self.path, self.count = host, port, path, sockets
        self.known = known
        self.sockets = [Socket() for _ in range(sockets)]
        self.frames = 0
        self.lowest = -1
        self.open = 0
        self.cpu = (0.0, 0.0)
        self._folder = Path(tempfile.mkdtemp(prefix="wsreader-"))
        self._records = self._folder / "records"
        self._payloads = self._folder / "payloads"
        self._records_at = 0
        self._payloads_at = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, cpu: int | None = None) -> None:
        argv = [str(build()), self.host, str(self.port), self.path, str(self.count)]
        argv += [str(self._records), str(self._payloads)]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        line = await asyncio.wait_for(self._line(), 120)
        if not line.startswith("ready"):
            raise RuntimeError(f"wsreader: {line!r}")

    async def _line(self) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError("wsreader ended")
        return raw.decode().strip()

    async def _say(self, command: str) -> str:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line()

    async def flush(self) -> None:
        """Take in everything read so far."""
        _, frames, lowest, _, open_ = (await self._say("flush")).split()
        self.frames, self.lowest, self.open = int(frames), int(lowest), int(open_)
        with self._records.open("rb") as f:
            f.seek(self._records_at)
            data = f.read()
        usable = len(data) - len(data) % RECORD.size
        self._records_at += usable
        for sock, _, seq, at in RECORD.iter_unpack(data[:usable]):
            target = self.sockets[sock]
            target.seqs.append(seq)
            target.times.append(at)
        with self._payloads.open("rb") as f:
            f.seek(self._payloads_at)
            data = f.read()
        at = 0
        while len(data) - at >= PAYLOAD_HEAD.size:
            seq, length = PAYLOAD_HEAD.unpack_from(data, at)
            end = at + PAYLOAD_HEAD.size + length
            if end > len(data):
                break
            self.known.setdefault(seq, bytes(data[at + PAYLOAD_HEAD.size : end]))
            at = end
        self._payloads_at += at

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            _, user, system = (await self._say("quit")).split()
            self.cpu = (float(user), float(system))
        except (RuntimeError, ValueError, ConnectionError):
            pass
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        shutil.rmtree(self._folder, ignore_errors=True)
