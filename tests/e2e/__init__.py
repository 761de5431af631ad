"""End-to-end tests: the four services as real processes (see conftest.py)."""
