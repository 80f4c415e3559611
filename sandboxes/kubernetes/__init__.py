"""Kubernetes plumbing shared by the sandbox and database backends: per-user API clients
(client.py), the objects they create (manifests.py) and how API failures are classified (errors.py)."""
