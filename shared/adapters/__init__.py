"""The ports' real implementations: Table Storage, Graph, Key Vault, queues, admin token validation."""
