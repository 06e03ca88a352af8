"""The server layer: the only code that imports ``uvicorn`` (and its internals).

The app (``scoreboard.web``) is a plain ASGI application; it finds what this layer adds by
name, through the ASGI extensions described in ``scoreboard.web.extensions``, and runs without
them under any other server or a test client. This package holds:

- ``http``: uvicorn's httptools protocol with deadlines, a header cap and JSON refusals;
- ``websocket``: uvicorn's sans-I/O WebSocket protocol with prebuilt frames, a budget on every
  client frame, a bounded pong debt and JSON refusals;
- ``collector``: the garbage-collector policy of a process that holds many sockets;
- ``run``: the options of ``uvicorn.run`` (one place, for ``scoreboard serve`` and ``bench/``),
  and the check that the installed uvicorn is one whose internals these subclasses were tested
  against.

Imported only by ``scoreboard serve`` and the benchmarks (as python-websockets keeps its I/O-free
core apart from each I/O flavour).
"""
