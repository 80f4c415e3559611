"""runtime/entrypoint.sh: refuses to run without a proper token, seeds a fresh home once."""

import json
import subprocess

import pytest


def run_entrypoint(sandbox, **overrides):
    env = {**sandbox.env, **overrides}
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run(["sh", str(sandbox.entrypoint)], env=env, capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "entrypoint: TTYD_ACCESS_TOKEN is not set; refusing to serve a terminal without authentication\n"),
        ("", "entrypoint: TTYD_ACCESS_TOKEN is not set; refusing to serve a terminal without authentication\n"),
        ("short-secret-" + "s" * 18, "entrypoint: TTYD_ACCESS_TOKEN is shorter than 32 characters; refusing to start\n"),
    ],
)
def test_entrypoint_refuses_to_start_without_a_long_enough_token(make_sandbox, token, message):
    sandbox = make_sandbox()

    result = run_entrypoint(sandbox, TTYD_ACCESS_TOKEN=token)

    assert result.returncode == 78
    assert result.stderr == message
    assert result.stdout == ""
    if token:
        assert len(token) == 31
        assert token not in result.stderr
    # Refused before anything else: the home was not even seeded.
    assert not sandbox.home.exists()


def test_entrypoint_seeds_an_empty_home_with_the_template_and_bashrc(make_sandbox):
    sandbox = make_sandbox()
    sandbox.home.mkdir()
    (sandbox.home / "lost+found").mkdir()  # what a fresh ext4 volume claim holds

    sandbox.start()

    seeded = sorted(str(path.relative_to(sandbox.home)) for path in sandbox.home.rglob("*"))
    assert seeded == [
        ".bashrc",
        ".claude.json",
        ".gitignore",
        ".profile",
        "app",
        "app/layout.tsx",
        "app/page.tsx",
        "lost+found",
        "next.config.mjs",
        "package.json",
    ]
    assert (sandbox.home / ".bashrc").read_bytes() == (sandbox.runtime / "bashrc").read_bytes()
    for name in ["package.json", "next.config.mjs", "app/page.tsx", "app/layout.tsx", ".gitignore"]:
        assert (sandbox.home / name).read_bytes() == (sandbox.runtime / "template" / name).read_bytes()
    assert ". \"$HOME/.bashrc\"" in (sandbox.home / ".profile").read_text()
    # Claude Code's first-run questions are answered, so the agent takes a task at once.
    assert json.loads((sandbox.home / ".claude.json").read_text()) == {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "projects": {str(sandbox.home): {"hasTrustDialogAccepted": True}},
    }


def test_entrypoint_leaves_a_home_with_content_untouched(make_sandbox):
    sandbox = make_sandbox()
    sandbox.home.mkdir()
    (sandbox.home / ".bashrc").write_text("# mine\n")

    sandbox.start()

    # Not seeded: only Claude Code's first-run answers are added, which this home did not have.
    assert sorted(path.name for path in sandbox.home.iterdir()) == [".bashrc", ".claude.json"]
    assert (sandbox.home / ".bashrc").read_text() == "# mine\n"


def test_entrypoint_keeps_the_users_own_claude_code_settings(make_sandbox):
    sandbox = make_sandbox()
    sandbox.home.mkdir()
    (sandbox.home / ".claude.json").write_text('{"theme": "light"}\n')

    sandbox.start()

    assert (sandbox.home / ".claude.json").read_text() == '{"theme": "light"}\n'


def test_entrypoint_keeps_the_token_out_of_ttyd_logs(make_sandbox):
    sandbox = make_sandbox()
    sandbox.start()

    terminal = sandbox.terminal()
    terminal.read_until("demo:")
    terminal.close()
    rejected = sandbox.terminal(auth_token="w" * 40)
    rejected.wait_closed()
    sandbox.stop()

    log = sandbox.log.read_text()
    assert sandbox.token not in log
    assert sandbox.credential() not in log
    assert sandbox.credential(token="w" * 40) not in log
