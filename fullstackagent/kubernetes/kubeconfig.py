"""A user's kubeconfig: parsing, the API client built from it, and the check run when it is saved.

Public interface (the settings page and API call these; keep the signatures stable):

- ``validate_kubeconfig(text) -> (ok: bool, message: str)`` — parses the document, then asks the
  cluster for its version and lists one pod in the kubeconfig's namespace. ``message`` is one
  sentence for the user: what works, or what to fix. It never contains a credential.
- ``parse_kubeconfig(text) -> Kubeconfig`` — raises ``KubeconfigError`` (its ``str`` is the user
  message) for anything the platform will not use.
- ``new_api_client(kubeconfig) -> kubernetes.client.ApiClient`` — a client of its own (no global
  configuration is touched), without urllib3's silent retries: the reconcile engine retries.

What is refused, and why: the platform runs this kubeconfig on its own servers, so a kubeconfig
may not name local files (``certificate-authority``, ``client-certificate``, ``client-key``,
``tokenFile``), which would read the platform's files, nor ``exec`` / ``auth-provider`` plugins,
which would run commands on the platform. Sealos and most clusters hand out kubeconfigs with
inline ``*-data`` fields and tokens, which work.

Nor may its server be an address only the platform can reach (issue 14: any user could make the
platform send requests to 127.0.0.1:* or 169.254.169.254 and read the answers): loopback,
link-local (cloud metadata), unspecified, multicast and reserved addresses and the networks of the
platform's own interfaces (its addresses and its neighbours', such as its database) are refused before any request is sent, unless the operator
allows their network in KUBERNETES_ALLOWED_NETWORKS (a cluster on the same host or network). Every name the
server resolves to is checked. The check answers in classified messages only; the validation
never shows what a server answered (its version, its HTTP reason phrase).
"""

import fcntl
import ipaddress
import socket
import struct

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
import yaml
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

DEFAULT_NAMESPACE = "default"
# The settings check must answer while the user waits: (connect, read) seconds.
VALIDATION_TIMEOUT = (3.0, 5.0)
MAX_KUBECONFIG_BYTES = 256 * 1024

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FILE_FIELDS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}
_PLUGIN_FIELDS = ("exec", "auth-provider")


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; ``str(error)`` says what to fix, in words for the user."""


@dataclass(frozen=True)
class Kubeconfig:
    document: dict  # the parsed YAML, as kubernetes.config expects it
    context: str
    server: str  # https://host:port of the current context's cluster
    namespace: str

    @property
    def server_host(self) -> str:
        return urlsplit(self.server).hostname or ""


def _named(items, kind: str, name: str) -> dict:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            entry = item.get(kind)
            if isinstance(entry, dict):
                return entry
            raise KubeconfigError(f"The {kind} '{name}' in your kubeconfig has no settings.")
    raise KubeconfigError(f"Your kubeconfig's context refers to a {kind} '{name}' that it does not define.")


def parse_kubeconfig(text: str) -> Kubeconfig:
    """The kubeconfig's current context, checked for what the platform can use safely."""
    if not text or not text.strip():
        raise KubeconfigError("The kubeconfig is empty: paste the whole file.")
    if len(text.encode()) > MAX_KUBECONFIG_BYTES:
        raise KubeconfigError("The kubeconfig is larger than 256 KiB; paste only the file for one cluster.")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"The kubeconfig is not valid YAML{where}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), list):
        raise KubeconfigError("This is not a kubeconfig: it has no 'contexts' list.")

    contexts = [c for c in document["contexts"] if isinstance(c, dict)]
    context_name = document.get("current-context") or ""
    if not context_name:
        if len(contexts) != 1:
            raise KubeconfigError("The kubeconfig has no 'current-context': set it to the context to use.")
        context_name = contexts[0].get("name") or ""
        document = {**document, "current-context": context_name}
    context = _named(contexts, "context", context_name)
    cluster = _named(document.get("clusters"), "cluster", context.get("cluster") or "")
    user = _named(document.get("users"), "user", context.get("user") or "")

    for section, entry in (("cluster", cluster), ("user", user)):
        for name in _FILE_FIELDS[section]:
            if entry.get(name):
                raise KubeconfigError(
                    f"The kubeconfig's {section} uses '{name}', a path to a file on this machine; "
                    "paste the content instead (the '-data' field, or 'token')."
                )
    for name in _PLUGIN_FIELDS:
        if user.get(name):
            raise KubeconfigError(
                f"The kubeconfig's user signs in with an '{name}' plugin, which cannot run on the platform; "
                "use a kubeconfig with a token or a client certificate (for example a service account's)."
            )
    if not (user.get("token") or user.get("client-certificate-data") or user.get("username")):
        raise KubeconfigError("The kubeconfig's user has no credentials: it needs a token or a client certificate.")

    server = cluster.get("server") or ""
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeconfigError("The kubeconfig's cluster has no valid 'server' URL (https://host:port).")
    if parts.query or parts.fragment or "@" in parts.netloc:
        # Every request's path and query are the platform's, never the kubeconfig's.
        raise KubeconfigError("The kubeconfig's 'server' URL may not have a query, a fragment or a user name.")
    namespace = context.get("namespace") or DEFAULT_NAMESPACE
    if not _DNS_LABEL.match(namespace):
        raise KubeconfigError(f"The kubeconfig's namespace '{namespace[:63]}' is not a valid namespace name.")
    return Kubeconfig(document=document, context=context_name, server=server.rstrip("/"), namespace=namespace)


_REFUSED_SERVER = (
    "The kubeconfig's server {host} is an address the platform does not connect to (loopback, "
    "link-local, or the platform's own network); use the address your cluster's API is published on."
)
SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B  # ioctl(2): an interface's IPv4 address and netmask


def _platform_interfaces() -> set:
    """This machine's interface addresses with their networks (IPv4 by ioctl, IPv6 from /proc):
    its own addresses and its neighbours' (in docker compose: the PostgreSQL and Redis containers)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                address = ipaddress.ip_address(fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)[20:24])
                netmask = ipaddress.ip_address(fcntl.ioctl(probe.fileno(), SIOCGIFNETMASK, request)[20:24])
            except OSError:
                continue  # an interface without an IPv4 address
            found.add(ipaddress.ip_interface(f"{address}/{netmask}"))
    try:
        with open("/proc/net/if_inet6") as table:
            for line in table:
                fields = line.split()
                address = ipaddress.ip_address(bytes.fromhex(fields[0]))
                found.add(ipaddress.ip_interface(f"{address}/{int(fields[2], 16)}"))
    except OSError:
        pass
    return found


def _allowed_networks() -> list:
    return [ipaddress.ip_network(network, strict=False) for network in settings.KUBERNETES_ALLOWED_NETWORKS]


def _address_refused(address) -> bool:
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return False
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or any(address in interface.network for interface in _platform_interfaces())
    )


def check_server_address(kubeconfig: Kubeconfig) -> None:
    """Raises KubeconfigError when the server is, or resolves to, an address the platform must not
    send a user's requests to. A name that does not resolve is left to the request to report."""
    host = kubeconfig.server_host
    port = urlsplit(kubeconfig.server).port or 443
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    for _family, _type, _protocol, _name, address in answers:
        if _address_refused(ipaddress.ip_address(address[0].split("%", 1)[0])):
            raise KubeconfigError(_REFUSED_SERVER.format(host=host))


def new_api_client(kubeconfig: Kubeconfig) -> k8s.ApiClient:
    """A client for this kubeconfig's current context, independent of any other user's; refused
    (KubeconfigError) for a server on an address the platform does not connect to."""
    check_server_address(kubeconfig)
    configuration = k8s.Configuration()
    # urllib3 would otherwise retry connection errors three times inside one call, multiplying
    # timeouts; the reconcile engine owns retries and backs off between them.
    configuration.retries = 0
    try:
        return k8s_config.new_client_from_config_dict(
            kubeconfig.document,
            context=kubeconfig.context,
            persist_config=False,
            client_configuration=configuration,
        )
    except (k8s_config.ConfigException, ValueError, TypeError) as error:
        # The loader's messages name fields, not values (base64 errors, missing keys).
        raise KubeconfigError(f"The kubeconfig cannot be loaded: {error}") from None


def validate_kubeconfig(text: str) -> tuple[bool, str]:
    """(True, what was reached) when the cluster answers and the user may list pods in the
    namespace; (False, what to fix) otherwise. Two requests, a few seconds at most.

    The messages are classified, never the server's own words: a user could otherwise read
    another server's answers through this check."""
    try:
        kubeconfig = parse_kubeconfig(text)
        api_client = new_api_client(kubeconfig)
    except KubeconfigError as error:
        return False, str(error)
    where = f"{kubeconfig.server}"
    not_kubernetes = (
        f"The server at {where} did not answer like a Kubernetes API server; check the server URL, "
        "or try again later."
    )
    try:
        k8s.VersionApi(api_client).get_code(_request_timeout=VALIDATION_TIMEOUT)
        k8s.CoreV1Api(api_client).list_namespaced_pod(
            kubeconfig.namespace, limit=1, _request_timeout=VALIDATION_TIMEOUT
        )
    except ApiException as error:
        if error.status == 401:
            return False, (
                f"The cluster at {where} rejected the kubeconfig's credentials (401 Unauthorized): "
                "the token or certificate is wrong or expired; download a fresh kubeconfig."
            )
        if error.status == 403:
            return False, (
                f"The kubeconfig has no permission to list pods in namespace '{kubeconfig.namespace}' "
                f"(403 Forbidden); use a kubeconfig for your own namespace or ask the cluster admin for access."
            )
        return False, not_kubernetes
    except urllib3.exceptions.SSLError:
        return False, (
            f"The TLS certificate of {where} could not be verified; the kubeconfig needs the cluster's "
            "'certificate-authority-data'."
        )
    except (urllib3.exceptions.HTTPError, OSError):
        return False, (
            f"Cannot reach the cluster at {where}: check the server address, and that the platform's network can reach it."
        )
    except (ValueError, TypeError, KeyError):
        # An answer the client's models refuse (a partial version document, not JSON at all).
        return False, not_kubernetes
    finally:
        api_client.close()
    return True, f"Connected to the Kubernetes cluster at {where}, namespace '{kubeconfig.namespace}'."
