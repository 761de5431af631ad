"""Registered agents: their routes, request bodies and the service that seals their credentials and checks health."""
