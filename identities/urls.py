from django.urls import path

from identities import views

app_name = "identities"

urlpatterns = [
    path("", views.sign_in_methods, name="sign-in-methods"),
    path("<int:identity_id>/unlink/", views.unlink_identity, name="unlink"),
    path("<int:identity_id>/primary/", views.make_primary, name="make-primary"),
    path("sealos/", views.sealos_page, name="sealos"),
    path("sealos/sign-in/", views.sealos_sign_in, name="sealos-sign-in"),
]
