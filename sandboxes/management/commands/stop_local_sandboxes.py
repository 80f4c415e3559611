from django.core.management.base import BaseCommand

from sandboxes.backends.local import LocalSandboxBackend


class Command(BaseCommand):
    help = (
        "End every process of the local sandbox backend (ttyd, tmux, shells) without changing any "
        "sandbox's recorded status; `make run` calls it on Ctrl-C. Running sandboxes are started "
        "again by the reconcilers on the next run. Workspaces are kept."
    )

    def handle(self, *args, **options):
        stopped = LocalSandboxBackend().stop_all()
        self.stdout.write(f"stopped {stopped} local sandbox(es)")
