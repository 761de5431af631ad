"""Browser tests of the operator console (Chromium driven by Playwright against a real stack)."""
