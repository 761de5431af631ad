"""The api's response bodies and their vocabulary, one module per resource: the api serves them, the client reads them.

This package depends on msgspec alone, so the client installs it without the server. None of the bodies forbids
unknown fields, so an older client reads a newer server's answers (the one exception is an agent's
``retryConfig``, which is also a request body); request bodies, their validation and the OpenAPI examples stay in
the api.
"""
