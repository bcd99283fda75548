"""Runs over a whole directory: the full reconcile, drift enforcement and bulk import (rules 9, 13, 19, 20)."""
