"""The messages shown on the next page ("Project … is being created"), with their storage made only
for requests that add or show one (fullstackagent.middleware.MessageMiddleware)."""

from django.contrib.messages.storage import default_storage

from fullstackagent import middleware


def count_storages(monkeypatch) -> list:
    made = []

    def counted(request):
        made.append(request.path)
        return default_storage(request)

    monkeypatch.setattr(middleware, "default_storage", counted)
    return made


def test_a_message_added_by_a_form_post_is_shown_once_on_the_next_page(user_client, monkeypatch):
    made = count_storages(monkeypatch)

    posted = user_client.post("/", {"name": "Messages Blog"})
    shown = user_client.get("/")
    again = user_client.get("/")

    assert posted.status_code == 302
    assert "Project Messages Blog is being created" in shown.content.decode()
    assert "is being created" not in again.content.decode()  # shown once, then gone
    assert made == ["/", "/", "/"]  # each page added or showed messages


def test_requests_that_never_touch_messages_make_no_storage_and_set_no_cookie(user_client, monkeypatch):
    made = count_storages(monkeypatch)

    answers = [
        user_client.get("/api/user/config"),
        user_client.get("/api/no-such-route"),
        user_client.get("/healthz"),
    ]

    assert [answer.status_code for answer in answers] == [200, 404, 200]
    assert made == []
    assert all("messages" not in answer.cookies for answer in answers)


def test_a_message_that_is_not_shown_survives_a_request_that_does_not_touch_it(user_client, monkeypatch):
    """The storage keeps unread messages (in the session or a cookie) across requests that do not
    read them: an API call between the POST and the page does not lose the message."""
    user_client.post("/", {"name": "Kept Blog"})

    user_client.get("/api/user/config")
    shown = user_client.get("/")

    assert "Project Kept Blog is being created" in shown.content.decode()
