"""``/admin/login/``: the Django admin signs in through the site's own sign-in page.

The admin's login form had no failed sign-in limit (30 wrong passwords, then the right one worked),
and its failures did not count for the account's limit on the site. Sending operators through
allauth's sign-in gives both one limit (ACCOUNT_RATE_LIMITS["login_failed"], per address and per
account) and every sign-in method the site has. Credentials posted here are never looked at.
"""

from urllib.parse import urlencode

from django.http import HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def admin_sign_in(request):
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = reverse("admin:index")
    if request.user.is_authenticated:
        if request.user.is_active and request.user.is_staff:
            return redirect(target)
        # Sending a signed-in user on to the site's sign-in would bounce straight back here.
        return HttpResponseForbidden(
            "<!DOCTYPE html><html><head><title>No access</title></head><body><h1>No access to the admin</h1>"
            "<p>This account is not an operator's. <a href=\"/\">Back to your projects</a></p></body></html>"
        )
    return redirect(f"{reverse('account_login')}?{urlencode({'next': target})}")
