from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from projects import services
from projects.models import Project


@login_required
def project_list(request):
    if request.method == "POST":
        try:
            project = services.do_create_project(request.user, name=request.POST.get("name", ""))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        except services.KubeconfigMissing as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Project {project.name} is being created.")
        return redirect("project-list")
    projects = Project.objects.visible().owned_by(request.user)
    return render(request, "projects/list.html", {"projects": projects})
