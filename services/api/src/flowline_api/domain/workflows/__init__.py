"""Workflow definitions: their routes, request bodies and the service that defines, versions and starts them."""
