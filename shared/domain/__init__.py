"""Warden's domain: plain data and pure rules. No I/O, no clock, no Azure, httpx or aiohttp imports."""
