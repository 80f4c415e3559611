"""Fixtures shared by every app's tests. Services (PostgreSQL, Redis) come from
fullstackagent.testing.plugin; these fixtures add users, clients and a real Celery worker."""

import pytest

from fullstackagent.testing.processes import CeleryWorker


@pytest.fixture
def make_user(db, django_user_model):
    def make(username="alice", password="correct-horse-battery"):
        user = django_user_model.objects.create_user(username=username, password=password)
        from identities.services import record_password_identity

        record_password_identity(user)
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("mallory")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    worker = CeleryWorker(tmp_path)
    yield worker
    worker.stop()
    # Captured by pytest and shown only when the test failed.
    print(f"--- celery worker log ---\n{worker.output()[-6000:]}")


@pytest.fixture
def start_celery_worker(transactional_db, tmp_path):
    workers = []

    def start(**options):
        worker = CeleryWorker(tmp_path, **options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
