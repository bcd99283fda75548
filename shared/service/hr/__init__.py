"""HR input (SPEC §3): the signed HRIS webhook, its signing secret and its events."""
