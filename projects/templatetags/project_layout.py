"""Pieces of templates/projects/layout.html that load their own data, so any view extending the
layout (the terminal page included) only has to pass ``project``."""

from django import template

from projects import selectors

register = template.Library()

# URL names of the project navigation, in order: (url name, label).
PROJECT_NAVIGATION = [
    ("project-terminal", "Terminal"),
    ("project-database", "Database"),
    ("project-environment", "Environment"),
    ("project-secrets", "Secrets"),
    ("project-auth", "Auth"),
    ("project-payment", "Payment"),
    ("project-history", "History"),
]


@register.inclusion_tag("projects/_sidebar.html", takes_context=True)
def project_sidebar(context, project):
    request = context["request"]
    projects = context.get("sidebar_projects")
    if projects is None:
        projects = selectors.sidebar_projects(request.user)
    return {"sidebar_projects": projects, "project": project}


@register.inclusion_tag("projects/_project_nav.html", takes_context=True)
def project_navigation(context, project):
    current = getattr(context["request"].resolver_match, "url_name", "")
    return {"project": project, "items": PROJECT_NAVIGATION, "current": current}


@register.inclusion_tag("projects/_status_bar.html")
def project_status_bar(project):
    """The status bar, first rendered with the page, then polled (projects.views.project_status_bar)."""
    if not hasattr(project, "allowed_actions"):
        project = selectors.with_resources(project)
    return {"project": project}
