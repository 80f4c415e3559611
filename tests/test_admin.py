"""The operators' Django admin: every registered model's list and change page loads for a
superuser, no page shows a secret in clear, and the filters and searches return the right rows."""

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from databases.models import Database
from fullstackagent.encryption import mask
from fullstackagent.status import ProjectStatus, ResourceStatus
from identities.models import ConfigCategory, IdentityProvider, UserConfig, UserIdentity, UserQuota
from previews.models import PreviewShare
from projects.models import Environment, EnvironmentCategory, Project
from sandboxes.models import Sandbox, TerminalSession

STRIPE_SECRET = "sk_live_51HadminPageLeakCheck9x"
TERMINAL_TOKEN = "ttyd-token-Xq3vL9pW2mZ8rT5yB7nK1cF4hJ6"
ANTHROPIC_KEY = "sk-ant-api03-admin-never-shows-this"
KUBECONFIG = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://k8s.example.com\nusers:\n- user:\n    token: kube-admin-token-0451\n"
DB_PASSWORD = "Db-Pa55-admin-leak-check"
CONNECTION_URL = f"postgresql://myblog_owner:{DB_PASSWORD}@db.internal:5432/myblog"
GITHUB_TOKEN = "gho_adminLeakCheck16C7e42F292c6912E77"
PREVIEW_SHARE_HASH = "5" * 64
# What a leak would look like: the clear values, and their distinctive parts on their own.
SECRETS = [STRIPE_SECRET, TERMINAL_TOKEN, ANTHROPIC_KEY, "kube-admin-token-0451", DB_PASSWORD, GITHUB_TOKEN]


@pytest.fixture
def platform_rows(user, other_user):
    """At least one row of every model the admin registers, with known secrets in the encrypted columns."""
    blog = Project.objects.create(user=user, name="My Blog", k8s_name="myblog", status=ProjectStatus.RUNNING)
    shop = Project.objects.create(user=other_user, name="Corner Shop", k8s_name="cornershop", status=ProjectStatus.ERROR)
    Environment.objects.create(
        project=blog, key="STRIPE_SECRET_KEY", value=STRIPE_SECRET, category=EnvironmentCategory.PAYMENT, is_secret=True
    )
    Environment.objects.create(
        project=blog, key="TTYD_ACCESS_TOKEN", value=TERMINAL_TOKEN, category=EnvironmentCategory.TTYD, is_secret=True
    )
    Environment.objects.create(
        project=blog, key="NEXT_PUBLIC_SITE_NAME", value="Alice's blog", category=EnvironmentCategory.GENERAL
    )
    Environment.objects.create(
        project=shop, key="SESSION_SECRET", value="shop-session-secret-77", category=EnvironmentCategory.SECRET, is_secret=True
    )
    UserConfig.objects.create(
        user=user, key="ANTHROPIC_API_KEY", value=ANTHROPIC_KEY, category=ConfigCategory.ANTHROPIC, is_secret=True
    )
    UserConfig.objects.create(
        user=user, key="KUBECONFIG", value=KUBECONFIG, category=ConfigCategory.KUBERNETES, is_secret=True
    )
    UserConfig.objects.create(user=user, key="SYSTEM_PROMPT", value="Prefer Postgres.", category=ConfigCategory.AGENT)
    UserQuota.objects.create(user=user, max_projects=7, sandbox_memory="2Gi")
    blog_sandbox = Sandbox.objects.create(
        project=blog, name="myblog-agentruntime-a1b2c3", status=ResourceStatus.RUNNING, ttyd_url="http://127.0.0.1:41234"
    )
    Sandbox.objects.create(
        project=shop, name="cornershop-agentruntime-d4e5f6", status=ResourceStatus.ERROR, last_error="image pull failed"
    )
    Database.objects.create(
        project=blog, name="myblog-agentruntime-g7h8i9", status=ResourceStatus.RUNNING, connection_url=CONNECTION_URL
    )
    Database.objects.create(project=shop, name="cornershop-agentruntime-j1k2l3", status=ResourceStatus.STOPPED)
    UserIdentity.objects.create(
        user=user,
        provider=IdentityProvider.GITHUB,
        provider_user_id="583231",
        metadata={"login": "alice-gh", "access_token": GITHUB_TOKEN, "scope": "repo read:user"},
    )
    TerminalSession.objects.create(sandbox=blog_sandbox, user=user, client_address="203.0.113.7", close_code=1000)
    PreviewShare.objects.create(project=blog, token_hash=PREVIEW_SHARE_HASH)
    Group.objects.create(name="operators")
    EmailAddress.objects.create(user=user, email="alice@example.com", verified=True, primary=True)
    app = SocialApp.objects.create(provider="github", name="GitHub", client_id="Iv1.admin-test")
    account = SocialAccount.objects.create(user=user, provider="github", uid="583231", extra_data={"login": "alice-gh"})
    # SOCIALACCOUNT_STORE_TOKENS is off, so production never has a row here; one exists so the page is loaded.
    SocialToken.objects.create(app=app, account=account, token="placeholder-never-stored")
    return {"blog": blog, "shop": shop}


def admin_pages():
    """(label, changelist URL, change URL of the first row) for every registered model."""
    pages = []
    for model in admin.site._registry:
        opts = model._meta
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"no {opts.label} row to open: add one to platform_rows"
        pages.append(
            (
                opts.label,
                reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]),
            )
        )
    return pages


def test_every_list_and_change_page_loads(admin_client, platform_rows):
    pages = admin_pages()

    statuses = {label: (admin_client.get(listing).status_code, admin_client.get(change).status_code)
                for label, listing, change in pages}

    assert statuses == {label: (200, 200) for label, _, _ in pages}
    assert {"identities.UserIdentity", "identities.UserConfig", "projects.Project", "projects.Environment",
            "sandboxes.Sandbox", "databases.Database"} <= set(statuses)


def test_no_admin_page_shows_a_secret(admin_client, platform_rows):
    urls = [url for _, listing, change in admin_pages() for url in (listing, change)]
    # Every row of the models holding secrets, not only the first.
    for model in (Environment, UserConfig, Database, UserIdentity, Project):
        opts = model._meta
        urls += [reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
                 for pk in model.objects.values_list("pk", flat=True)]

    leaks = {}
    for url in urls:
        html = admin_client.get(url).content.decode()
        found = [secret for secret in SECRETS if secret in html]
        if found:
            leaks[url] = found

    assert leaks == {}


def test_secret_values_are_shown_masked_and_clear_values_in_clear(admin_client, platform_rows):
    listing = admin_client.get(reverse("admin:projects_environment_changelist")).content.decode()
    stripe = Environment.objects.get(key="STRIPE_SECRET_KEY")
    change = admin_client.get(reverse("admin:projects_environment_change", args=[stripe.pk])).content.decode()
    configs = admin_client.get(reverse("admin:identities_userconfig_changelist")).content.decode()

    assert listing.count(mask(STRIPE_SECRET)) == 3  # the three secret variables
    assert "Alice&#x27;s blog" in listing  # a general variable is shown as it is
    assert mask(STRIPE_SECRET) in change
    assert configs.count(mask(ANTHROPIC_KEY)) == 2
    assert "Prefer Postgres." in configs


def test_project_page_shows_its_sandboxes_databases_and_variables_inline(admin_client, platform_rows):
    blog = platform_rows["blog"]

    html = admin_client.get(reverse("admin:projects_project_change", args=[blog.pk])).content.decode()

    assert "myblog-agentruntime-a1b2c3" in html
    assert "myblog-agentruntime-g7h8i9" in html
    assert "STRIPE_SECRET_KEY" in html
    assert "NEXT_PUBLIC_SITE_NAME" in html
    assert "cornershop" not in html


def test_identity_page_shows_metadata_keys_not_values(admin_client, platform_rows):
    identity = UserIdentity.objects.get(provider=IdentityProvider.GITHUB)

    html = admin_client.get(reverse("admin:identities_useridentity_change", args=[identity.pk])).content.decode()

    assert "access_token, login, scope" in html
    assert GITHUB_TOKEN not in html
    assert "alice-gh" not in html


def listed(admin_client, url_name, query):
    """The rows a changelist shows for a query string, as their str()."""
    response = admin_client.get(reverse(url_name), query)
    assert response.status_code == 200
    return sorted(str(row) for row in response.context["cl"].result_list)


def test_filters_by_status(admin_client, platform_rows):
    assert listed(admin_client, "admin:projects_project_changelist", {"status__exact": "ERROR"}) == ["Corner Shop"]
    assert listed(admin_client, "admin:projects_project_changelist", {"status__exact": "RUNNING"}) == ["My Blog"]
    assert listed(admin_client, "admin:sandboxes_sandbox_changelist", {"status__exact": "ERROR"}) == [
        "cornershop-agentruntime-d4e5f6"
    ]
    assert listed(admin_client, "admin:databases_database_changelist", {"status__exact": "STOPPED"}) == [
        "cornershop-agentruntime-j1k2l3"
    ]
    assert listed(admin_client, "admin:databases_database_changelist", {"status__exact": "ERROR"}) == []


def test_filters_by_provider(admin_client, platform_rows):
    assert listed(admin_client, "admin:identities_useridentity_changelist", {"provider__exact": "GITHUB"}) == [
        "GitHub:583231"
    ]
    assert len(listed(admin_client, "admin:identities_useridentity_changelist", {"provider__exact": "PASSWORD"})) == 2


def test_filters_by_category(admin_client, platform_rows):
    blog, shop = platform_rows["blog"], platform_rows["shop"]

    assert listed(admin_client, "admin:projects_environment_changelist", {"category__exact": "ttyd"}) == [
        f"{blog.pk}:TTYD_ACCESS_TOKEN"
    ]
    assert listed(admin_client, "admin:projects_environment_changelist", {"category__exact": "secret"}) == [
        f"{shop.pk}:SESSION_SECRET"
    ]
    assert listed(admin_client, "admin:identities_userconfig_changelist", {"category__exact": "anthropic"}) == [
        "alice ANTHROPIC_API_KEY"
    ]


def test_search_by_name_and_username(admin_client, platform_rows):
    assert listed(admin_client, "admin:projects_project_changelist", {"q": "blog"}) == ["My Blog"]
    assert listed(admin_client, "admin:projects_project_changelist", {"q": "mallory"}) == ["Corner Shop"]
    assert listed(admin_client, "admin:sandboxes_sandbox_changelist", {"q": "alice"}) == ["myblog-agentruntime-a1b2c3"]
    assert listed(admin_client, "admin:databases_database_changelist", {"q": "cornershop"}) == [
        "cornershop-agentruntime-j1k2l3"
    ]
    assert listed(admin_client, "admin:identities_useridentity_changelist", {"q": "mallory"}) == [
        f"Username and password:{UserIdentity.objects.get(user__username='mallory').provider_user_id}"
    ]
    assert listed(admin_client, "admin:identities_userconfig_changelist", {"q": "KUBECONFIG"}) == ["alice KUBECONFIG"]


def test_searching_a_secret_value_finds_nothing(admin_client, platform_rows):
    # Values are ciphertext in the column: not searchable, so the admin cannot be used to probe them.
    assert listed(admin_client, "admin:projects_environment_changelist", {"q": STRIPE_SECRET}) == []


def test_admin_is_closed_to_ordinary_users(user_client, platform_rows):
    response = user_client.get(reverse("admin:projects_environment_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
