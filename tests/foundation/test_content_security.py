"""The Content-Security-Policy header (fullstackagent.content_security): django-csp's policy from the
settings, on pages and API answers alike, built once and built again when the settings change."""

from csp.utils import build_policy


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().partition(" ")[::2] for part in header.split(";"))


def test_pages_api_answers_and_errors_carry_the_sites_policy(client, user_client):
    expected = directives(build_policy())
    assert expected["script-src"] == "'self'" and expected["frame-ancestors"] == "'none'"
    for response in (
        client.get("/accounts/login/"),
        client.get("/api/user/config"),  # 401
        user_client.get("/api/user/config", HTTP_ACCEPT="application/json"),
        user_client.get("/"),
        client.get("/api/no-such-thing"),
    ):
        assert directives(response["Content-Security-Policy"]) == expected, response
        assert "Content-Security-Policy-Report-Only" not in response


def test_a_settings_change_changes_the_header(db, client, settings):
    first = client.get("/accounts/login/")["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"], "img-src": ["https://images.example"]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    response = client.get("/accounts/login/")
    assert response["Content-Security-Policy"] != first
    assert directives(response["Content-Security-Policy"]) == {"default-src": "'self'", "img-src": "https://images.example"}
    assert directives(response["Content-Security-Policy-Report-Only"]) == {"default-src": "'none'"}


def test_a_response_with_its_own_directives_gets_its_own_policy(rf, settings):
    from django.http import HttpResponse

    from fullstackagent.content_security import ContentSecurityPolicyMiddleware

    def view(request):
        response = HttpResponse("framed")
        response._csp_replace = {"frame-ancestors": ["https://desktop.example"]}
        return response

    def plain(request):
        return HttpResponse("plain")

    framed = ContentSecurityPolicyMiddleware(view)(rf.get("/"))
    assert directives(framed["Content-Security-Policy"])["frame-ancestors"] == "https://desktop.example"
    assert directives(framed["Content-Security-Policy"])["script-src"] == "'self'"
    # The site's policy is untouched for the next response.
    assert directives(ContentSecurityPolicyMiddleware(plain)(rf.get("/"))["Content-Security-Policy"])["frame-ancestors"] == "'none'"


def test_djangos_debug_pages_are_left_without_a_policy(db, client, settings):
    settings.DEBUG = True
    assert "Content-Security-Policy" not in client.get("/api/no-such-thing")
    settings.DEBUG = False
    assert "Content-Security-Policy" in client.get("/api/no-such-thing")
