"""Kubernetes plumbing shared by the sandbox and database backends: per-user API clients
(client.py), the kubeconfig policy (kubeconfig.py: what a user's kubeconfig may contain and which
servers it may reach), how API failures are classified (errors.py) and what every object shares
(objects.py). The objects themselves are each backend's own (sandboxes.kubernetes.manifests,
databases.manifests)."""
