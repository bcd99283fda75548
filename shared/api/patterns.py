"""Patterns shared by the API's models and its operations table, kept apart so that the table (read at every cold
start) names them without loading pydantic or the models."""

DOMAIN_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}[A-Za-z]{2,63}$"
"""A domain name (a path parameter: ``…/domains/{domain}/federation``)."""
