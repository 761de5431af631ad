"""The api's response bodies, one module per resource: the api serves them and the client decodes them.

None of them forbids unknown fields, so an older client reads a newer server's answers (the one exception is
an agent's ``retryConfig``, which is also a request body); request bodies, their validation and the OpenAPI
examples stay in the api.
"""
