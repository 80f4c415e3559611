"""The project pages: the projects list (cards polled every 3 s), the project layout's Database,
Environment, Secrets, Auth and Payment pages, and the fragments htmx swaps in.

Views are thin: projects.selectors reads (404 for another user's project), projects.services
writes, projects.forms validates. Every POST ends in a message saying what happened; htmx
requests get it as an ``HX-Trigger: {"toast": ...}`` header, others through django.contrib.messages.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from projects import selectors, services
from projects.forms import AUTH_VARIABLES, PAYMENT_VARIABLES, FixedVariablesForm, VariableRowsForm
from projects.models import EnvironmentCategory
from projects.serializers import ProjectListQuerySerializer

_CATEGORY_PAGES = {
    EnvironmentCategory.GENERAL: "Environment",
    EnvironmentCategory.SECRET: "Secrets",
    EnvironmentCategory.AUTH: "Auth",
    EnvironmentCategory.PAYMENT: "Payment",
}
_SECTION_URLS = {
    EnvironmentCategory.GENERAL: "project-environment",
    EnvironmentCategory.SECRET: "project-secrets",
    EnvironmentCategory.AUTH: "project-auth",
    EnvironmentCategory.PAYMENT: "project-payment",
}
CHANGES_REACH_SANDBOX = "A running sandbox picks the change up within a few seconds."


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _with_toast(response: HttpResponse, message: str, level: str = "success") -> HttpResponse:
    response["HX-Trigger"] = json.dumps({"toast": {"message": message, "level": level}})
    return response


# --- projects list -------------------------------------------------------------------------------


def _filters(request) -> tuple[dict, dict]:
    """(validated filters, errors by field) from the query string; bad dates are ignored and named."""
    query = ProjectListQuerySerializer(data={key: value for key, value in request.GET.items() if value})
    if query.is_valid():
        return query.validated_data, {}
    # Only what passed: a refused value (a day out of range, a word too long) never reaches the query.
    valid = {key: value for key, value in query.initial_data.items() if key == "q" and key not in query.errors}
    return valid, {field: str(errors[0]) for field, errors in query.errors.items()}


def _cards_context(request) -> dict:
    filters, filter_errors = _filters(request)
    projects = selectors.project_list(request.user, **filters)
    return {
        "projects": projects,
        "filters": {key: request.GET.get(key, "") for key in ("q", "created_from", "created_to")},
        "filtered": any(request.GET.get(key) for key in ("q", "created_from", "created_to")),
        "filter_errors": filter_errors,
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request):
    if request.method == "POST":
        # The form without JavaScript; the page's dialog uses POST /api/projects instead.
        try:
            project = services.do_create_project(
                request.user, name=request.POST.get("name", ""), description=request.POST.get("description", "")
            )
        except ValidationError as error:
            messages.error(request, f"{' '.join(error.messages)} Choose another name.")
        except services.KubeconfigMissing as error:
            messages.error(request, str(error))
            return redirect(f"{reverse('settings')}?tab=kubernetes")
        except services.QuotaExceeded as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Project {project.name} is being created; its card turns green when it runs.")
        return redirect("project-list")
    return render(request, "projects/list.html", _cards_context(request))


@login_required
@require_GET
def project_cards(request):
    """The cards alone: polled every 3 s by the projects page and swapped in by htmx."""
    return render(request, "projects/_cards.html", _cards_context(request))


_ACTIONS = {
    "start": (services.do_start_project, "Project {name} is starting."),
    "stop": (services.do_stop_project, "Project {name} is stopping."),
    "delete": (services.do_delete_project, "Project {name} is being deleted."),
    "restart": (services.do_restart_project, "The sandbox of {name} is restarting."),
    "recreate-database": (services.do_recreate_database, "A new, empty database is being created for {name}."),
    "recreate-workspace": (services.do_recreate_workspace, "The sandbox of {name} starts with a new, empty workspace."),
}


@login_required
@require_POST
def project_action(request, project_id, action):
    service, message = _ACTIONS[action]
    project = selectors.owned_project(request.user, project_id)
    try:
        project = service(project)
        text, level = message.format(name=project.name), "success"
    except services.ActionNotAllowed as error:
        text, level = f"{error} Wait for the current step to finish, then try again.", "error"
    if _is_htmx(request):
        return _with_toast(render(request, "projects/_cards.html", _cards_context(request)), text, level)
    (messages.success if level == "success" else messages.error)(request, text)
    return redirect(_local_next(request) or "project-list")


def _local_next(request) -> str | None:
    """The posted ``next`` when it is a path on this site; None for anything else, so a crafted
    form cannot send the user on to another site (https://evil.example/, //evil.example/)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return None


# --- the project layout --------------------------------------------------------------------------


@login_required
@require_GET
def project_home(request, project_id):
    selectors.owned_project(request.user, project_id)
    return redirect("project-terminal", project_id=project_id)


@login_required
@require_GET
def project_status_bar(request, project_id):
    """The layout's status bar ("Sandbox: X  Database: Y", the app URL), polled every 3 s."""
    return render(request, "projects/_status_bar.html", {"project": selectors.owned_project(request.user, project_id)})


@login_required
@require_GET
def database_page(request, project_id):
    context = selectors.project_page_context(request, project_id)
    context["connection"] = selectors.database_connection(context["project"]).masked()
    return render(request, "projects/database.html", context)


@login_required
@require_GET
def history_page(request, project_id):
    """The project's events (projects.events): what changed, when, why and who caused it."""
    context = selectors.project_page_context(request, project_id)
    project = context["project"]
    context["events"] = selectors.project_events(project)
    context["resources"] = selectors.resource_restarts(project)
    return render(request, "projects/history.html", context)


def _elsewhere(project, category) -> dict[str, str]:
    return {
        row.key: _CATEGORY_PAGES[row.category]
        for row in selectors.variables(project)
        if row.category != category
    }


def _variables_page(request, project_id, category: str, template: str):
    context = selectors.project_page_context(request, project_id)
    project = context["project"]
    stored = selectors.variables(project, category)
    form = None
    if request.method == "POST":
        form = VariableRowsForm(request.POST, category=category, stored=stored, elsewhere=_elsewhere(project, category))
        if form.is_valid():
            try:
                if form.to_save:
                    services.do_set_variables(project, form.to_save)
            except ValidationError as error:  # the project's limits (count, total size)
                messages.error(request, f"Nothing was saved: {' '.join(error.messages)}")
            else:
                if form.to_save:
                    keys = ", ".join(item["key"] for item in form.to_save)
                    messages.success(request, f"Saved {keys}. {CHANGES_REACH_SANDBOX}")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect(_SECTION_URLS[category], project_id=project.pk)
        else:
            messages.error(request, "Nothing was saved: fix the fields marked below.")
    errors = form.errors if form else {}
    new_rows = form.new_rows if form else []
    if not any(not row["key"] and not row["value"] for row in new_rows):
        new_rows = [*new_rows, {"index": len(new_rows), "key": "", "value": ""}]
    for row in new_rows:
        row["error"] = errors.get(f"new-key-{row['index']}")
    context.update(
        {
            # A value the user typed and that was refused is shown again, so nothing typed is lost.
            "rows": [
                {
                    "variable": variable,
                    "error": errors.get(f"value-{variable.pk}"),
                    "posted": request.POST.get(f"value-{variable.pk}") if form else None,
                }
                for variable in stored
            ],
            "new_rows": new_rows,
            "secret_page": category == EnvironmentCategory.SECRET,
        }
    )
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def environment_page(request, project_id):
    return _variables_page(request, project_id, EnvironmentCategory.GENERAL, "projects/environment.html")


@login_required
@require_http_methods(["GET", "POST"])
def secrets_page(request, project_id):
    return _variables_page(request, project_id, EnvironmentCategory.SECRET, "projects/secrets.html")


def _fixed_page(request, project_id, category: str, variables, template: str):
    context = selectors.project_page_context(request, project_id)
    project = context["project"]
    keys = {variable.key for variable in variables}
    stored = {row.key: row for row in selectors.variables(project) if row.key in keys}
    form = FixedVariablesForm(request.POST or None, variables=variables, stored=stored)
    if request.method == "POST":
        if form.is_valid():
            to_save, to_remove = form.changes(category)
            generate = request.POST.get("generate")
            if generate in {variable.key for variable in variables if variable.generated}:
                to_save = [item for item in to_save if item["key"] != generate]
                to_save.append(
                    {"key": generate, "value": services.generate_secret_value(), "category": category, "is_secret": True}
                )
            try:
                if to_save:
                    services.do_set_variables(project, to_save)
            except ValidationError as error:  # the project's limits (count, total size)
                messages.error(request, f"Nothing was saved: {' '.join(error.messages)}")
                return redirect(_SECTION_URLS[category], project_id=project.pk)
            for key in to_remove:
                services.do_delete_variable(project, key)
            done = [f"Saved {', '.join(item['key'] for item in to_save)}"] if to_save else []
            done += [f"{'removed' if done else 'Removed'} {', '.join(to_remove)}"] if to_remove else []
            if generate and any(item["key"] == generate for item in to_save):
                messages.success(request, f"Generated a new {generate} and saved it. {CHANGES_REACH_SANDBOX}")
            elif done:
                messages.success(request, f"{'; '.join(done)}. {CHANGES_REACH_SANDBOX}")
            else:
                messages.info(request, "Nothing changed.")
            return redirect(_SECTION_URLS[category], project_id=project.pk)
        messages.error(request, "Nothing was saved: fix the fields marked below.")
    context.update(
        {"form": form, "fields": _fixed_fields(form, variables, stored), "app_url": project.public_url.rstrip("/")}
    )
    return render(request, template, context)


def _fixed_fields(form, variables, stored) -> list[dict]:
    return [{"spec": variable, "field": form[variable.key], "row": stored.get(variable.key)} for variable in variables]


@login_required
@require_http_methods(["GET", "POST"])
def auth_page(request, project_id):
    return _fixed_page(request, project_id, EnvironmentCategory.AUTH, AUTH_VARIABLES, "projects/auth.html")


@login_required
@require_http_methods(["GET", "POST"])
def payment_page(request, project_id):
    return _fixed_page(request, project_id, EnvironmentCategory.PAYMENT, PAYMENT_VARIABLES, "projects/payment.html")


@login_required
@require_POST
def delete_variable(request, project_id, variable_id):
    project = selectors.owned_project(request.user, project_id)
    variable = selectors.owned_variable(project, variable_id)
    services.do_delete_variable(project, variable.key)
    messages.success(request, f"Deleted {variable.key}. {CHANGES_REACH_SANDBOX}")
    url_name = _SECTION_URLS.get(variable.category)
    if url_name is None:
        raise Http404
    return redirect(url_name, project_id=project.pk)
