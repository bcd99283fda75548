"""Thin trigger adapters: each parses its trigger's input, calls one thing in ``shared``, and maps the
result or a domain error to a response. No business rule lives here."""
