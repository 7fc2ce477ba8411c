"""The issue's headline: `shoal build` FROM a bootstrapped Debian base with
`RUN pip install` of a real package (through the machine's pip configuration), run
with `shoal run`; a rebuild with no change is all cache hits in under 10% of the time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from click.testing import CliRunner

from shoal.cli.build import build
from shoal.cli.main import cli

from tests.builder.conftest import CGROUP_PARENT, write_context

DOCKERFILE = """\
FROM localhost/debian-py:12
ENV PYTHONDONTWRITEBYTECODE=1
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install --break-system-packages --no-warn-script-location six==1.17.0
WORKDIR /app
COPY app.py ./
CMD ["python3", "/app/app.py"]
"""


def _shoal_build(root, *args: str):
    if "build" not in cli.commands:
        cli.add_command(build)  # the lead registers shoal.cli.build in main.py
    return CliRunner().invoke(cli, ["--state-dir", str(root), "build", "--progress", "plain", *args])


def _shoal_run(root, image: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHOAL_CGROUP_PARENT": CGROUP_PARENT}
    return subprocess.run([sys.executable, "-m", "shoal.cli.main", "--state-dir", str(root), "run", "--rm", image],
                          capture_output=True, text=True, env=env, timeout=120)


def test_pip_install_build_runs_and_an_unchanged_rebuild_is_all_cached(debian_env, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": DOCKERFILE,
                                   "app.py": "import six\nprint('six', six.__version__, six.PY3)\n"})
    t0 = time.monotonic()
    first = _shoal_build(debian_env.root, "-t", "localhost/pyapp:1", str(ctx))
    first_seconds = time.monotonic() - t0
    assert first.exit_code == 0, first.output
    assert "Successfully installed six-1.17.0" in first.output  # RUN output is shown
    assert "2 steps run, 0 cached" in first.output

    proc = _shoal_run(debian_env.root, "localhost/pyapp:1")
    assert (proc.returncode, proc.stdout) == (0, "six 1.17.0 True\n"), proc.stderr

    t0 = time.monotonic()
    again = _shoal_build(debian_env.root, "-t", "localhost/pyapp:1", str(ctx))
    again_seconds = time.monotonic() - t0
    assert again.exit_code == 0, again.output
    assert "0 steps run, 2 cached" in again.output and again.output.count("CACHED") == 2
    assert again.output.strip().splitlines()[-1] == first.output.strip().splitlines()[-1]  # same image ID
    assert again_seconds < 0.10 * first_seconds, (again_seconds, first_seconds)

    # the pip layer holds the package, and nothing of the host's pip config or mounts
    names = {n for n, _ in debian_env.layer_members("localhost/pyapp:1")[1]}
    assert any(n.endswith("-packages/six.py") for n in names)
    assert not any(n.startswith(("opt/", "etc/resolv.conf", "root/.cache/pip/")) for n in names)
    assert debian_env.leftovers() == {"snapshots": [], "mounts": [], "containers": []}


def test_editing_the_app_rebuilds_only_the_copy_and_keeps_the_pip_layer(debian_env, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": DOCKERFILE, "app.py": "print('v1')\n"})
    assert _shoal_build(debian_env.root, "-t", "localhost/pyapp:2", str(ctx)).exit_code == 0
    before = debian_env.store.resolve("localhost/pyapp:2")
    (ctx / "app.py").write_text("import six\nprint('v2', six.__version__)\n")
    result = _shoal_build(debian_env.root, "-t", "localhost/pyapp:2", str(ctx))
    assert "1 steps run, 1 cached" in result.output, result.output
    after = debian_env.store.resolve("localhost/pyapp:2")
    assert after.layers[:2] == before.layers[:2] and after.layers[2] != before.layers[2]
    assert _shoal_run(debian_env.root, "localhost/pyapp:2").stdout == "v2 1.17.0\n"
