"""Constraints of UserIdentity and UserConfig, enforced by PostgreSQL itself."""

import pytest
from django.db import IntegrityError, transaction

from identities.models import IdentityProvider, UserConfig, UserIdentity


def test_password_identity_of_a_new_user_is_primary(user):
    identity = UserIdentity.objects.get(user=user)

    assert (identity.provider, identity.provider_user_id, identity.is_primary) == (
        IdentityProvider.PASSWORD,
        str(user.pk),
        True,
    )


def test_one_provider_account_belongs_to_one_identity(user, other_user):
    UserIdentity.objects.create(user=user, provider=IdentityProvider.GITHUB, provider_user_id="583231")

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        UserIdentity.objects.create(user=other_user, provider=IdentityProvider.GITHUB, provider_user_id="583231")

    assert "identity_provider_user_unique" in str(error.value)
    assert UserIdentity.objects.filter(provider=IdentityProvider.GITHUB).count() == 1
    assert UserIdentity.objects.filter(user=other_user).count() == 1


def test_same_provider_user_id_at_two_providers_is_allowed(user):
    UserIdentity.objects.create(user=user, provider=IdentityProvider.GITHUB, provider_user_id="42")
    UserIdentity.objects.create(user=user, provider=IdentityProvider.SEALOS, provider_user_id="42")

    assert UserIdentity.objects.filter(provider_user_id="42").count() == 2


def test_a_user_has_at_most_one_primary_identity(user):
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        UserIdentity.objects.create(
            user=user, provider=IdentityProvider.GITHUB, provider_user_id="583231", is_primary=True
        )

    assert "identity_one_primary_per_user" in str(error.value)
    assert list(UserIdentity.objects.filter(user=user).values_list("provider", "is_primary")) == [
        (IdentityProvider.PASSWORD, True)
    ]


def test_a_user_may_hold_several_secondary_identities(user):
    UserIdentity.objects.create(user=user, provider=IdentityProvider.GITHUB, provider_user_id="583231")
    UserIdentity.objects.create(user=user, provider=IdentityProvider.SEALOS, provider_user_id="ns-alice")

    assert UserIdentity.objects.filter(user=user, is_primary=False).count() == 2
    assert UserIdentity.objects.filter(user=user, is_primary=True).count() == 1


def test_two_users_each_have_their_own_primary(user, other_user):
    assert UserIdentity.objects.filter(is_primary=True).count() == 2


def test_user_config_key_is_unique_per_user(user, other_user):
    UserConfig.objects.create(user=user, key="SYSTEM_PROMPT", value="Build it in Go.")
    UserConfig.objects.create(user=other_user, key="SYSTEM_PROMPT", value="Build it in Rust.")

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        UserConfig.objects.create(user=user, key="SYSTEM_PROMPT", value="Build it in Elm.")

    assert "userconfig_user_key_unique" in str(error.value)
    assert UserConfig.objects.get(user=user, key="SYSTEM_PROMPT").value == "Build it in Go."
    assert UserConfig.objects.count() == 2
