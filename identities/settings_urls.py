"""The settings page (/settings/) and the forms it posts to."""

from django.urls import path

from identities import settings_views

urlpatterns = [
    path("", settings_views.settings_page, name="settings"),
    path("system-prompt/", settings_views.save_system_prompt, name="settings-system-prompt"),
    path("idle-stop/", settings_views.save_idle_stop, name="settings-idle-stop"),
    path("kubeconfig/", settings_views.save_kubeconfig, name="settings-kubeconfig"),
    path("anthropic/", settings_views.save_anthropic, name="settings-anthropic"),
    path("tokens/", settings_views.create_api_token, name="settings-tokens"),
    path("tokens/<int:token_id>/revoke/", settings_views.revoke_api_token, name="settings-token-revoke"),
]
