"""Helpers shared by the test tiers: timeouts, tokens, real server processes."""
