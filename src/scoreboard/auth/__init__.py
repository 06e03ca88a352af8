"""Who may post a score: tokens, the keys that verify them, and the decision for one update.

- ``algorithms``: the one list of algorithms the service knows, and the default allow-list;
- ``keys``: which public key fits which algorithm, and reading a PEM file;
- ``jwks``: an identity provider's published keys, fetched over HTTP (the one I/O adapter here);
- ``secret``: the HS256 secret, or the one generated once in the data folder;
- ``verify``: :class:`~scoreboard.auth.verify.TokenVerifier`, login tokens and score grants;
- ``mint``: signing tokens and grants (the ``token`` command, tests, benchmarks);
- ``decision``: user mode or grant mode, what a verified token allows one update to do.

The composition root (``scoreboard.bootstrap``) builds the verifier from the settings.
"""
