import pytest
from django.core.exceptions import ValidationError

from projects.naming import k8s_project_name, resource_name, validate_project_name


@pytest.mark.parametrize(
    "name, expected",
    [
        ("My Blog!", "myblog"),
        ("Café Crème", "cafecreme"),
        ("日本語", "project"),
        ("123 Go", "go"),
        ("a" * 40, "a" * 20),
        ("Shop-Front 2", "shopfront2"),
        ("---", "project"),
    ],
)
def test_k8s_project_name(name, expected):
    assert k8s_project_name(name) == expected


def test_resource_name_shape():
    name = resource_name("myblog")
    prefix, suffix = name.rsplit("-", 1)
    assert prefix == "myblog-agentruntime"
    assert len(suffix) == 6 and suffix.isalnum() and suffix == suffix.lower()


@pytest.mark.parametrize("name", ["My Blog", "Café Crème", "日本語", "shop-front", "a1b"])
def test_valid_project_names(name):
    assert validate_project_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", "   ", "1abc", "abc1", "-abc", "abc-", "my_blog", "blog!", "a" * 65])
def test_invalid_project_names(name):
    with pytest.raises(ValidationError) as caught:
        validate_project_name(name)
    assert caught.value.code == "invalid_name"
