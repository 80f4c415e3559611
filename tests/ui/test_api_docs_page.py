"""The interactive API docs (/api/docs/, drf-spectacular's Swagger UI) lead back to the site."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_interactive_docs_link_back_to_the_site(client):
    page = client.get("/api/docs/").content.decode()

    assert '<a href="/" id="back-to-site" class="site-name">← FullstackAgent</a>' in page
    assert '<a href="/settings/?tab=tokens">API tokens</a>' in page
    assert '<a href="/api/">Browsable API</a>' in page
    # Still drf-spectacular's page underneath: Swagger UI, its start-up script served as a file.
    assert '<div id="swagger-ui"></div>' in page
    assert 'src="/api/docs/?script="' in page
