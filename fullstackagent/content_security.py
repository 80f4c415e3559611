"""The Content-Security-Policy header of every response, built once.

The policy is django-csp's (``csp.utils.build_policy`` from CONTENT_SECURITY_POLICY and
CONTENT_SECURITY_POLICY_REPORT_ONLY). Its middleware built it twice for every response (the policy
and the report-only one), through dataclass copies and set iteration: 0.34 ms of an API no-op's
3.3 ms of CPU (cProfile, bench/api.py's authenticated no-op). The site's policy does not change
between requests, so it is built when first needed and again only when a test changes the settings.
A response that asks for its own directives (``_csp_config``, ``_csp_update``, ``_csp_replace``, as
django-csp's decorators and identities.middleware's Sealos framing set them) gets a policy built for
it. No nonces: no page of the platform has an inline script.
"""

import http

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_built: dict[bool, str] = {}  # report_only -> the site's policy


def _site_policy(report_only: bool) -> str:
    policy = _built.get(report_only)
    if policy is None:
        policy = _built[report_only] = build_policy(report_only=report_only)
    return policy


@receiver(setting_changed)
def _forget_policies(setting, **kwargs):
    if setting in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"):
        _built.clear()


def _policy(response, report_only: bool) -> str:
    suffix = "_ro" if report_only else ""
    config = getattr(response, f"_csp_config{suffix}", None)
    update = getattr(response, f"_csp_update{suffix}", None)
    replace = getattr(response, f"_csp_replace{suffix}", None)
    if config is None and update is None and replace is None:
        return _site_policy(report_only)
    return build_policy(config=config, update=update, replace=replace, report_only=report_only)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # As django-csp: Django's debug pages for 404 and 500 have inline scripts and styles.
        if settings.DEBUG and response.status_code in (http.HTTPStatus.NOT_FOUND, http.HTTPStatus.INTERNAL_SERVER_ERROR):
            return response
        for header, report_only in ((HEADER, False), (HEADER_REPORT_ONLY, True)):
            if header in response or getattr(response, "_csp_exempt" + ("_ro" if report_only else ""), False):
                continue
            policy = _policy(response, report_only)
            if policy:
                response[header] = policy
        return response
