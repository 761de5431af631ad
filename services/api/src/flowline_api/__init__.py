"""The api service: the REST API over HTTP (Litestar), its auth, limits and middleware, and the operator console."""
