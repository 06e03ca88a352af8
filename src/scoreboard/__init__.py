"""Scoreboard: a live leaderboard service.

Authenticated score updates go into a durable store, a rank index serves the board, and every
change to the top of the board is pushed to open pages over WebSocket. See docs/design.md.
"""

__version__ = "0.1.0"
