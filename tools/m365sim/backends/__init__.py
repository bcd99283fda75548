"""The simulated cloud's backends (moto's ``models.py``): per service, plain state and rules that take and return
plain values. They never import the HTTP layer (``tools.m365sim.http``) or aiohttp (an import-linter contract)."""
