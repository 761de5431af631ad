"""The operator console: web pages at /ui over the API's own services, rules and streams."""
