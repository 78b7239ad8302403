"""The hardened HTTP core: one pure ASGI middleware per concern.

Each class takes its configuration in ``__init__``, passes scopes it does not handle (lifespan,
and websocket unless stated) straight through, and answers errors itself with
:func:`bastion.http.problems.send_problem`. The order is set in :func:`bastion.app._middleware`,
outermost first::

    core              one layer (core.py) doing, in order, what these modules decide:
      proxy             client IP and scheme (trusted proxies only)
      request_id        X-Request-ID, in state and logs
      security_headers  CSP, nosniff, HSTS, no-store ... on every answer
      metrics           requests and latency by route template
      audit_rejections  one audit event per 400/413/415/422/431
      errors            exceptions -> 500 problem, never their text
      trusted_host      Host allowlist (DNS rebinding)
      methods           TRACE, TRACK, CONNECT -> 405
    cors              explicit origin allowlist (skipped by requests without Origin)
    (concurrency cap and rate limits: bastion.protections.ratelimit)
    body_limit        413 before or while reading the body
    content_type      JSON only, bounded depth and size (skipped by requests without a body)

Each concern's module keeps its own middleware class too (used alone in tests and by apps that
want one concern); the core calls the same functions.

Every request crosses the whole stack, so the hot path is kept lean: per-request work that
repeats (a ``Host`` decision, a header edit) is computed once and remembered in small bounded
caches, and the ``send`` wrappers are plain functions that return the next ``send``'s awaitable
instead of coroutines (each response message crosses every wrapper; ``__call__`` itself stays
``async def``, which is how servers recognise an ASGI 3 app).

State shared through ``scope["state"]``: ``client_ip``, ``request_id``, ``problem_code`` (set by
``send_problem``), ``authenticated`` (set by the authentication code) and ``response_headers``
(set by the core: headers inner layers hand it for the answer, see ``_state``).
"""
