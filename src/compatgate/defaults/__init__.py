"""The built-in behaviour, registered as default plugins marked ``trylast``.

- `auth`: accepts the static ``[gateway] api_keys``.
- `routing`: routes the ``[[models]]`` table and lists it on ``GET /models``.
- `openai`: the ``type = "openai"`` provider, for every OpenAI-compatible upstream.
- `demo`: the ``type = "demo"`` provider, offline, for ``compatgate serve --demo`` and tests.
"""
