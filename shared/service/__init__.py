"""Use cases, written against the ports of ``shared.service.ports``; never against an SDK."""
