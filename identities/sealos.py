"""Sign-in from inside Sealos: the desktop hands our page the user's session token and kubeconfig.

The session token is a JWT signed with HS256 under ``SEALOS_JWT_SECRET`` (shared with the Sealos
deployment). Its claims name the Sealos user and workspace; ``userId`` is the stable user id that
becomes ``UserIdentity(SEALOS, userId)``. The kubeconfig sent alongside is the user's own and becomes
their ``KUBECONFIG`` setting, so projects run in their Sealos namespace.

Everything here only checks; nothing is written until both the token and the kubeconfig pass
(identities.services.do_sign_in_with_sealos does the sign-in).
"""

from dataclasses import dataclass

import jwt
from django.conf import settings

# Claims the Sealos desktop puts into every session token (the original system's schema).
STRING_CLAIMS = ("workspaceUid", "workspaceId", "regionUid", "userCrUid", "userCrName", "userId", "userUid")
TIME_CLAIMS = ("iat", "exp")
REQUIRED_CLAIMS = STRING_CLAIMS + TIME_CLAIMS


class SealosSignInRefused(Exception):
    """Why a Sealos sign-in was refused: a machine-readable code, a message for people, a status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SealosSession:
    user_id: str  # claim userId: the identity's provider_user_id
    user_uid: str
    user_cr_name: str  # the user's Kubernetes user name (also their namespace suffix)
    user_cr_uid: str
    workspace_id: str
    workspace_uid: str
    region_uid: str

    def identity_metadata(self) -> dict:
        """What the identity row keeps about the Sealos account (no kubeconfig: that is a setting)."""
        return {
            "userId": self.user_id,
            "userUid": self.user_uid,
            "userCrName": self.user_cr_name,
            "userCrUid": self.user_cr_uid,
            "workspaceId": self.workspace_id,
            "workspaceUid": self.workspace_uid,
            "regionUid": self.region_uid,
        }


def verify_session_token(token: str) -> SealosSession:
    """The session the token carries, or SealosSignInRefused (403 for a token we must not trust,
    400 for one that is genuine but lacks what we need)."""
    if not token or not isinstance(token, str):
        raise SealosSignInRefused("SEALOS_TOKEN_REQUIRED", "The Sealos session token is missing.")
    secret = settings.SEALOS_JWT_SECRET
    try:
        # Only HS256: accepting the token's own `alg` header would let "none" or an RSA public key
        # used as an HMAC secret through.
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": list(TIME_CLAIMS), "verify_exp": True, "verify_iat": True},
        )
    except jwt.ExpiredSignatureError:
        raise SealosSignInRefused(
            "SEALOS_TOKEN_EXPIRED", "The Sealos session has expired; reopen the app from Sealos.", 403
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise SealosSignInRefused(
            "SEALOS_TOKEN_CLAIMS_MISSING", f"The Sealos session token lacks the claim {error.claim}."
        ) from None
    except jwt.InvalidSignatureError:
        raise SealosSignInRefused(
            "SEALOS_TOKEN_INVALID", "The Sealos session token is not signed by this Sealos.", 403
        ) from None
    except jwt.InvalidTokenError as error:
        # Malformed, wrong algorithm, non-numeric exp/iat, iat in the future...
        raise SealosSignInRefused("SEALOS_TOKEN_INVALID", f"The Sealos session token is invalid ({error}).", 403) from None

    missing = [
        name for name in STRING_CLAIMS if not isinstance(claims.get(name), str) or not claims[name].strip()
    ]
    if missing:
        raise SealosSignInRefused(
            "SEALOS_TOKEN_CLAIMS_MISSING",
            f"The Sealos session token lacks the claim{'s' if len(missing) > 1 else ''} {', '.join(missing)}.",
        )
    return SealosSession(
        user_id=claims["userId"],
        user_uid=claims["userUid"],
        user_cr_name=claims["userCrName"],
        user_cr_uid=claims["userCrUid"],
        workspace_id=claims["workspaceId"],
        workspace_uid=claims["workspaceUid"],
        region_uid=claims["regionUid"],
    )


def check_kubeconfig(text: str) -> None:
    """The kubeconfig must be one the platform can use (fullstackagent.kubernetes.kubeconfig.parse_kubeconfig:
    YAML with clusters, contexts, users and a current context; no local files or exec plugins).
    No cluster is contacted at sign-in: Sealos just issued it, and sign-in must not wait on it."""
    from fullstackagent.kubernetes.kubeconfig import KubeconfigError, parse_kubeconfig

    if not text or not isinstance(text, str) or not text.strip():
        raise SealosSignInRefused("KUBECONFIG_REQUIRED", "The Sealos kubeconfig is missing.")
    try:
        parse_kubeconfig(text)
    except KubeconfigError as error:
        # Its message is written for users and never quotes a credential.
        raise SealosSignInRefused("KUBECONFIG_INVALID", str(error)) from None
