"""What Warden manages of a tenant itself, not its users: federation (rule 15), password policy (rule 16), the
Entra Connect guard (rule 17) and protected accounts (rule 23)."""
