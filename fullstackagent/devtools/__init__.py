"""Development tooling, never imported by the running platform: the embedded PostgreSQL and Redis
(embedded.py) and ``make run``'s launcher (launcher.py)."""
