"""Compose files: `hutch up` runs a compose.yaml as it is (docs/compose.md).

A compose file is read into the same model as a hutch.ini, so these tests check
what is compose's own against real busybox stacks: the file found without -f
(from a subdirectory too), health-gated start order from depends_on's
conditions, anchors and interpolation reaching the containers, override files,
-p naming the containers, and a refused key stopping everything before it
starts. The supervisor's behaviours themselves are test_stack.py's.
"""
import itertools
import json
import os
import signal
from pathlib import Path

import pytest

_count = itertools.count()


class ComposeStack:
    def __init__(self, state, hutch, tmp, files, name=None):
        self.state, self.hutch = state, hutch
        self.name = name or f"cp{os.getpid() % 10000}x{next(_count)}"
        self.dir = Path(tmp) / self.name
        self.dir.mkdir()
        for fname, text in files.items():
            p = self.dir / fname
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def run(self, *args, cwd=None, **kw):
        return self.hutch(*args, cwd=cwd or self.dir, **kw)

    @property
    def run_dir(self):
        return self.state.root / "run" / "stacks" / self.name

    def ps(self):
        cp = self.run("stack", "ps", "--format", "json")
        return {r["container"]: r for r in map(json.loads, cp.stdout.splitlines())}

    def containers(self):
        cp = self.hutch("ps", "-a", "--format", "json")
        return [c for c in map(json.loads, cp.stdout.splitlines())
                if c.get("labels", {}).get("hutch.stack") == self.name]

    def teardown(self):
        self.run("down", "-t", "0", check=False, timeout=60)
        try:
            pid = int((self.run_dir / "supervisor.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            self.run("down", "-t", "0", check=False, timeout=60)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture
def make_compose(state, hutch, tmp):
    made = []

    def make(files, name=None):
        s = ComposeStack(state, hutch, tmp, files, name)
        made.append(s)
        return s

    yield make
    for s in made:
        s.teardown()
        assert not s.containers(), f"containers of {s.name} left after down"


def test_up_wait_down_health_order_anchors_env(make_compose):
    """A compose.yaml as people write one: found without -f, a healthcheck gating
    its dependent, a one-shot job it waits for, anchors and .env interpolation."""
    st = make_compose({})
    (st.dir / "compose.yaml").write_text(f"""
name: {st.name}
x-base: &base
  image: bb
  init: true
  environment: &env
    GREETING: ${{GREETING:-hello}}
    FROM_DOTENV: ${{DOTENV_VALUE}}
services:
  db:
    <<: *base
    command: ["sh", "-c", "sleep 0.3; touch /shared/ready; exec sleep 1000"]
    volumes: [./shared:/shared]
    healthcheck:
      test: ["CMD-SHELL", "test -e /shared/ready"]
      interval: 100ms
      start_period: 5s
      start_interval: 100ms
  migrate:
    image: bb
    # fails, and so fails api, unless db was healthy (its file there) first
    command: test -e /shared/ready
    volumes: [./shared:/shared:ro]
    depends_on:
      db:
        condition: service_healthy
  api:
    <<: *base
    command: sleep 1000
    depends_on:
      db: {{condition: service_healthy}}
      migrate: {{condition: service_completed_successfully}}
    deploy:
      replicas: 2
""")
    (st.dir / ".env").write_text("DOTENV_VALUE=from .env\n")
    (st.dir / "shared").mkdir()
    st.run("up", "-d", "--wait", timeout=60)
    reps = st.ps()
    assert set(reps) == {f"{st.name}-db-1", f"{st.name}-migrate-1", f"{st.name}-api-1",
                         f"{st.name}-api-2"}
    assert reps[f"{st.name}-db-1"]["health"] == "healthy"
    assert reps[f"{st.name}-api-1"]["state"] == "running"
    assert reps[f"{st.name}-migrate-1"]["state"] == "exited"
    env = st.run("exec", f"{st.name}-api-2", "env").stdout.splitlines()
    assert "GREETING=hello" in env
    assert "FROM_DOTENV=from .env" in env
    st.run("down", "-t", "0", timeout=60)
    assert not st.containers()


def test_found_from_a_subdirectory(make_compose):
    st = make_compose({
        "docker-compose.yml": "services:\n  web:\n    image: bb\n    init: true\n"
                              "    command: [sleep, '1000']\n    environment: [A=base]\n",
        "sub/dir/.keep": "",
    })
    sub = st.dir / "sub" / "dir"
    # no name: in the file: the stack is named after the compose file's directory
    st.run("up", "-d", "--wait", cwd=sub, timeout=60)
    env = st.run("exec", f"{st.name}-web-1", "env").stdout.splitlines()
    assert "A=base" in env
    st.run("down", "-t", "0", cwd=sub, timeout=60)
    assert not st.containers()


def test_a_file_someone_else_could_write_is_not_picked_up(make_compose):
    """A stack file found by looking runs as the caller: one in a directory
    above that another user owns, or that anyone may write, is refused (root
    climbing from /tmp/x/y into another user's /tmp/x/compose.yaml ran its
    services as root); given with -f it is the caller's choice."""
    st = make_compose({
        "compose.yaml": "services:\n  web:\n    image: bb\n    command: [true]\n",
        "sub/.keep": "",
    })
    f = st.dir / "compose.yaml"
    if os.geteuid() == 0:
        os.chown(f, 65534, 65534)  # nobody's
        why = "it belongs to uid 65534, not to you"
    else:
        os.chmod(f, 0o666)
        why = "anyone may write it"
    for cwd in (st.dir, st.dir / "sub"):
        cp = st.run("up", "-d", "--wait", cwd=cwd, check=False, timeout=60)
        assert cp.returncode != 0
        assert f"found {f} but will not use it: {why}" in cp.stderr, cp.stderr
        assert "-f FILE" in cp.stderr
        assert not st.containers()
    # a world-writable directory (not sticky) is refused the same way
    os.chmod(f, 0o644)
    if os.geteuid() == 0:
        os.chown(f, 0, 0)
    os.chmod(st.dir, 0o777)
    cp = st.run("up", "-d", "--wait", cwd=st.dir / "sub", check=False, timeout=60)
    assert "anyone may write its directory" in cp.stderr, cp.stderr
    os.chmod(st.dir, 0o755)
    # given by name, it is used
    st.run("up", "-f", str(f), "-d", "--wait", timeout=60)
    st.run("down", "-f", str(f), "-t", "0", timeout=60)


def test_override_files(make_compose):
    """-f twice: the second merged onto the first, in the supervisor too (it
    reads the stack again itself)."""
    st = make_compose({
        "compose.yaml": "services:\n  web:\n    image: bb\n    init: true\n"
                        "    command: [sleep, '1000']\n    environment: [A=base, B=base]\n",
        "override.yaml": "services:\n  web:\n    environment: {B: override}\n"
                         "  extra:\n    image: bb\n    command: [sleep, '1000']\n",
    })
    st.run("up", "-f", "compose.yaml", "-f", "override.yaml", "-d", "--wait", timeout=60)
    assert set(st.ps()) == {f"{st.name}-web-1", f"{st.name}-extra-1"}
    env = st.run("exec", f"{st.name}-web-1", "env").stdout.splitlines()
    assert "A=base" in env and "B=override" in env
    st.run("down", "-f", "compose.yaml", "-f", "override.yaml", "-t", "0", timeout=60)
    assert not st.containers()


def test_refused_key_starts_nothing(make_compose):
    st = make_compose({
        "compose.yaml": "services:\n  a:\n    image: bb\n    command: [sleep, '1000']\n"
                        "  b:\n    image: bb\n    tty: true\n"
                        "    healthcheck:\n      test: [CMD, 'true']\n      interval: 5x\n",
    })
    cp = st.run("up", "-d", check=False, timeout=60)
    assert cp.returncode != 0
    assert "compose.yaml:7:5: services.b.tty: not supported: services run without" in cp.stderr
    assert ("compose.yaml:10:17: services.b.healthcheck.interval: '5x' is not a duration"
            in cp.stderr)
    assert not st.containers()
    assert not st.run_dir.exists()
