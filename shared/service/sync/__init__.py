"""The sync of one user, or one group, into Microsoft 365 (rules 2-8, 14, 19)."""
