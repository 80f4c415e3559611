"""Uploads dropped onto the terminal (projects.terminal_views.terminal_upload): chunked, resumable, landing in
the shell's current directory, refusing any path that leaves the workspace with nothing written."""

import io
from urllib.parse import quote

import pytest
from django.test import Client

from fullstackagent.backends import PermanentError
from fullstackagent.status import ResourceStatus
from sandboxes import terminal
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.terminal.conftest import shell, workspace

UPLOAD_ID = "0123456789abcdef"


def upload_url(project, *, name, size, offset, session="main", upload=UPLOAD_ID):
    return (
        f"/projects/{project.pk}/terminal/upload?session={session}&upload={upload}"
        f"&name={name}&size={size}&offset={offset}"
    )


def post_chunk(client, project, chunk: bytes, **params):
    return client.post(upload_url(project, **params), data=chunk, content_type="application/octet-stream")


def all_files(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def owner_client(running_project, user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def uploads_of_this_test(settings, tmp_path):
    """Staged uploads in a folder of this test's: user ids start again at 1 in every run's test
    database, and an unfinished upload of an earlier run must not count against this one's cap."""
    settings.STATE_DIR = tmp_path / "state"


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(terminal, "UPLOAD_CHUNK_BYTES", 4)


def test_upload_in_chunks_lands_in_the_shells_current_directory(running_project, owner_client, small_chunks, settings):
    shell(running_project, "mkdir -p src/app && cd src/app && echo moved-$((1+1))", "moved-2")
    content = b"hello, sandbox\n"

    responses = [
        post_chunk(owner_client, running_project, content[offset : offset + 4], name="notes.txt", size=len(content), offset=offset)
        for offset in range(0, len(content), 4)
    ]

    target = workspace(running_project) / "src" / "app" / "notes.txt"
    assert [response.status_code for response in responses] == [200, 200, 200, 200]
    assert [response.json()["received"] for response in responses] == [4, 8, 12, 15]
    assert [response.json()["complete"] for response in responses] == [False, False, False, True]
    # As the shell names it (its $HOME is the workspace), never the platform's own path (issue 14).
    assert responses[-1].json()["path"] == "~/src/app/notes.txt"
    assert target.read_bytes() == content
    assert list(terminal.upload_staging_dir(running_project.user_id, running_project.pk).iterdir()) == []


def test_upload_of_an_empty_file(running_project, owner_client):
    response = post_chunk(owner_client, running_project, b"", name="empty", size=0, offset=0)

    assert response.status_code == 200
    assert response.json()["complete"] is True
    assert (workspace(running_project) / "empty").read_bytes() == b""


def test_chunk_at_the_wrong_offset_answers_where_to_resume(running_project, owner_client, small_chunks):
    first = post_chunk(owner_client, running_project, b"abcd", name="data.bin", size=8, offset=0)
    skipped = post_chunk(owner_client, running_project, b"ijkl", name="data.bin", size=8, offset=8)
    resumed = post_chunk(owner_client, running_project, b"efgh", name="data.bin", size=8, offset=4)

    assert first.json() == {"received": 4, "complete": False, "path": ""}
    assert skipped.status_code == 409
    assert skipped.json()["offset"] == 4
    assert resumed.json()["complete"] is True
    assert (workspace(running_project) / "data.bin").read_bytes() == b"abcdefgh"


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/escape.txt", "sub/escape.txt", "..", ".", "", "a\\b", "bad\x1bname"])
def test_names_that_leave_the_directory_are_refused_and_nothing_is_written(running_project, owner_client, name):
    before = all_files(workspace(running_project))

    response = owner_client.post(
        f"/projects/{running_project.pk}/terminal/upload",
        QUERY_STRING=f"session=main&upload={UPLOAD_ID}&size=3&offset=0&name=" + quote(name),
        data=b"bad",
        content_type="application/octet-stream",
    )

    assert response.status_code == 400
    assert all_files(workspace(running_project)) == before
    assert not (workspace(running_project).parent / "escape.txt").exists()


def test_a_current_directory_out_of_the_workspace_is_refused(running_project, owner_client):
    # The shell can only leave its home for the sandbox's own /tmp (a link there included).
    shell(running_project, "ln -s /tmp out && cd out && echo inside-$((1+1))", "inside-2")

    response = post_chunk(owner_client, running_project, b"bad", name="escape.txt", size=3, offset=0)

    assert response.status_code == 400
    assert not (workspace(running_project) / "escape.txt").exists()


def test_a_directory_linked_to_a_host_folder_is_refused(running_project, tmp_path):
    # A link the sandbox made to a path of the host's: the platform writes as root, never through it.
    outside = tmp_path / "outside"
    outside.mkdir()
    shell(running_project, f"ln -s {outside} out && echo linked-$((1+1))", "linked-2")
    spec = build_spec(Sandbox.objects.get(project=running_project))

    with pytest.raises(PermanentError, match="inside the project's workspace"):
        get_sandbox_backend().upload_file(spec, "/home/agent/out", "escape.txt", io.BytesIO(b"bad"))

    assert list(outside.iterdir()) == []


def test_an_existing_symlink_is_not_replaced(running_project, owner_client, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    shell(running_project, f"ln -s {victim} link.txt && echo linked-$((1+1))", "linked-2")

    response = post_chunk(owner_client, running_project, b"bad", name="link.txt", size=3, offset=0)

    assert response.status_code == 400
    assert victim.read_text() == "untouched"
    assert (workspace(running_project) / "link.txt").is_symlink()


def test_a_chunk_larger_than_announced_is_refused(running_project, owner_client, small_chunks):
    response = post_chunk(owner_client, running_project, b"too long", name="big.bin", size=100, offset=0)

    assert response.status_code == 413
    assert not (workspace(running_project) / "big.bin").exists()


def test_another_users_project_is_404_and_nothing_is_written(running_project, other_user):
    client = Client()
    client.force_login(other_user)
    before = all_files(workspace(running_project))

    response = post_chunk(client, running_project, b"bad", name="x.txt", size=3, offset=0)

    assert response.status_code == 404
    assert all_files(workspace(running_project)) == before


def test_anonymous_upload_is_401(running_project):
    response = post_chunk(Client(), running_project, b"bad", name="x.txt", size=3, offset=0)

    assert response.status_code == 401
    assert not (workspace(running_project) / "x.txt").exists()


def test_upload_without_csrf_token_is_refused(running_project, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = post_chunk(client, running_project, b"bad", name="x.txt", size=3, offset=0)

    assert response.status_code == 403
    assert not (workspace(running_project) / "x.txt").exists()


def test_upload_to_a_sandbox_that_is_not_running_is_409(running_project, owner_client):
    Sandbox.objects.filter(project=running_project).update(status=ResourceStatus.STOPPED)

    response = post_chunk(owner_client, running_project, b"bad", name="x.txt", size=3, offset=0)

    assert response.status_code == 409
    assert not (workspace(running_project) / "x.txt").exists()


# --- unfinished uploads (issue 14, finding 10) -------------------------------------------------------


def start_upload(client, project, upload_id, size=100):
    return post_chunk(client, project, b"abcd", name=f"{upload_id}.bin", size=size, offset=0, upload=upload_id)


def staged_ids(project):
    return sorted(path.stem for path in terminal.upload_staging_dir(project.user_id, project.pk).glob("*.part"))


def test_a_user_has_at_most_three_unfinished_uploads(running_project, owner_client, small_chunks, settings):
    assert settings.TERMINAL_UPLOADS_UNFINISHED_MAX == 3
    started = [start_upload(owner_client, running_project, f"upload-{n}-xyz") for n in range(3)]

    refused = start_upload(owner_client, running_project, "upload-3-xyz")
    continued = post_chunk(owner_client, running_project, b"efgh", name="upload-0-xyz.bin", size=100, offset=4, upload="upload-0-xyz")

    assert [response.status_code for response in started] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {
        "message": "You have 3 unfinished uploads; let them finish (or wait 60 minutes after one stopped) "
        "before starting another."
    }
    assert continued.status_code == 200  # the ones under way go on
    assert staged_ids(running_project) == ["upload-0-xyz", "upload-1-xyz", "upload-2-xyz"]


def test_a_finished_upload_makes_room_for_another(running_project, owner_client, small_chunks):
    for n in range(2):
        start_upload(owner_client, running_project, f"upload-{n}-xyz")
    finished = post_chunk(owner_client, running_project, b"abc", name="done.txt", size=3, offset=0, upload="upload-2-xyz")

    again = start_upload(owner_client, running_project, "upload-3-xyz")

    assert finished.json()["complete"] is True
    assert again.status_code == 200
    assert staged_ids(running_project) == ["upload-0-xyz", "upload-1-xyz", "upload-3-xyz"]


def test_the_periodic_clean_up_removes_abandoned_uploads_only(running_project, owner_client, small_chunks, settings):
    import os
    import time

    from projects import tasks

    for n in range(3):
        start_upload(owner_client, running_project, f"upload-{n}-xyz")
    abandoned = terminal.upload_staging_dir(running_project.user_id, running_project.pk) / "upload-0-xyz.part"
    old = time.time() - terminal.STALE_UPLOAD_SECONDS - 1
    os.utime(abandoned, (old, old))

    removed = tasks.remove_stale_uploads()

    assert removed == 1
    assert staged_ids(running_project) == ["upload-1-xyz", "upload-2-xyz"]
    assert start_upload(owner_client, running_project, "upload-3-xyz").status_code == 200
    assert settings.CELERY_BEAT_SCHEDULE["remove-stale-uploads"]["task"] == "projects.tasks.remove_stale_uploads"
