"""The database backend interface, shared by the local and the Kubernetes (KubeBlocks) backends.

Same contract as sandboxes.backends.base: specs in, observations out, idempotent methods called
outside transactions, errors from fullstackagent.backends.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Protocol

from fullstackagent.backends import Owner


class DatabasePhase(str, Enum):
    MISSING = "missing"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    FAILED = "failed"


@dataclass(frozen=True)
class DatabaseSpec:
    database_id: int
    name: str  # `<k8s project name>-agentruntime-<6>`
    project_id: int
    project_k8s_name: str
    namespace: str
    owner: Owner
    runtime_state: Mapping = field(default_factory=dict)
    # The URL recorded so far (decrypted), so a backend can keep the password it already gave out.
    connection_url: str = ""


@dataclass
class DatabaseObservation:
    phase: DatabasePhase
    # postgresql://user:password@host:port/database, once known; "" before.
    connection_url: str = ""
    namespace: str = ""
    message: str = ""
    runtime_state: dict = field(default_factory=dict)


class DatabaseBackend(Protocol):
    def create(self, spec: DatabaseSpec) -> DatabaseObservation: ...

    def start(self, spec: DatabaseSpec) -> DatabaseObservation: ...

    def stop(self, spec: DatabaseSpec) -> DatabaseObservation: ...

    def delete(self, spec: DatabaseSpec) -> DatabaseObservation: ...

    def observe(self, spec: DatabaseSpec) -> DatabaseObservation: ...
