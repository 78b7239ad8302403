"""Keys of ``scope["state"]`` shared by the HTTP core and layers inside it."""

from __future__ import annotations

#: A list the HTTP core puts in the state: headers that inner layers want on the answer (the
#: rate limit fields). The core appends them to the response start, so an inner layer does not
#: need a ``send`` wrapper of its own. Absent when no core is outside: wrap ``send`` then.
RESPONSE_HEADERS = "response_headers"

#: Set (to ``True``) by the HTTP core when the request has neither ``Content-Length`` nor
#: ``Transfer-Encoding`` and is HTTP/1.x: it has no body (RFC 9112 section 6.3). Layers that
#: only look at bodies are then skipped (see ``without_body`` in body_limit and content_type).
NO_BODY = "no_body"
