"""Constraints of Environment (and the project rows it hangs off), enforced by PostgreSQL."""

import pytest
from django.db import IntegrityError, transaction

from projects.models import Environment, EnvironmentCategory, Project


@pytest.fixture
def project(user):
    return Project.objects.create(user=user, name="My Blog", k8s_name="myblog")


def test_environment_key_is_unique_per_project(user, project):
    other_project = Project.objects.create(user=user, name="Shop", k8s_name="shop")
    Environment.objects.create(project=project, key="NEXTAUTH_URL", value="https://blog.example.com")
    Environment.objects.create(project=other_project, key="NEXTAUTH_URL", value="https://shop.example.com")

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        Environment.objects.create(project=project, key="NEXTAUTH_URL", value="https://evil.example.com")

    assert "environment_project_key_unique" in str(error.value)
    assert Environment.objects.get(project=project, key="NEXTAUTH_URL").value == "https://blog.example.com"
    assert Environment.objects.count() == 2


@pytest.mark.parametrize("category", [EnvironmentCategory.SECRET, EnvironmentCategory.TTYD])
def test_secret_and_terminal_categories_must_be_secret(project, category):
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        Environment.objects.create(project=project, key="SOME_KEY", value="v", category=category, is_secret=False)

    assert "environment_secret_categories_are_secret" in str(error.value)
    assert Environment.objects.count() == 0


@pytest.mark.parametrize("category", [EnvironmentCategory.SECRET, EnvironmentCategory.TTYD])
def test_secret_categories_cannot_be_flipped_to_clear_later(project, category):
    variable = Environment.objects.create(project=project, key="SOME_KEY", value="v", category=category, is_secret=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        Environment.objects.filter(pk=variable.pk).update(is_secret=False)

    assert Environment.objects.get(pk=variable.pk).is_secret is True


@pytest.mark.parametrize(
    "category", [EnvironmentCategory.GENERAL, EnvironmentCategory.AUTH, EnvironmentCategory.PAYMENT]
)
def test_other_categories_may_be_clear_or_secret(project, category):
    Environment.objects.create(project=project, key="CLEAR", value="a", category=category, is_secret=False)
    Environment.objects.create(project=project, key="HIDDEN", value="b", category=category, is_secret=True)

    assert list(Environment.objects.order_by("key").values_list("key", "is_secret")) == [
        ("CLEAR", False),
        ("HIDDEN", True),
    ]


def test_deleting_a_project_deletes_its_environment(project):
    Environment.objects.create(project=project, key="A", value="1")

    project.delete()

    assert Environment.objects.count() == 0
