"""Adapters for the ports in ``scoreboard.ports``; chosen by ``scoreboard.bootstrap`` only."""
