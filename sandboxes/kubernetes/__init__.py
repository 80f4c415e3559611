"""The Kubernetes objects of a sandbox (manifests.py); the client they go through is the core's
(fullstackagent.kubernetes)."""
