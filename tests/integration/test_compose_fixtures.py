"""Compose files of every shape, read through `hutch stack config` (issue 11, docs/compose.md).

Each directory of tests/fixtures/compose/ is a project: its compose files, with what
they need beside them (.env, env files), and what hutch must make of them:
- `args`: more arguments for `stack config`, shell words (`-f a.yaml -f b.yaml`,
  `--profile debug`); `environ`: NAME=VALUE lines set in hutch's environment;
- `expected.json`: the `--format json` document. The hutch.ini `stack config` writes
  must then load back to the same document (less compose's top-level `volumes`, which a
  hutch.ini does not declare);
- or `expected.err`: the exact stderr of a refused project (exit 1, nothing on stdout),
  and, when it is refused for unsupported keys only, `expected-ignored.json` and
  `expected-ignored.err`: the document and the warnings with `--ignore-unsupported`.

The project is copied to a directory named as the fixture, so the stack's name (from the
directory when no `name:`) and the messages (FILE:LINE:COLUMN, relative) are the same
wherever the suite runs. HOME is /home/u (`~` in volumes).

The spec-* fixtures (the compose documentation's healthcheck, depends_on, restart, volumes
and networks examples) are also brought up, with busybox stand-ins for their images
(rootless too: rootless stacks get their networks in the user's rootless namespace).

UPDATE_FIXTURES=1 writes the expected files from what hutch says, for a new fixture: read
every one of them before committing it, it is the test's answer.
"""
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compose"
ALL = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
UPDATE = os.environ.get("UPDATE_FIXTURES") == "1"
EXPECTED = (
    "expected.json",
    "expected.err",
    "expected.warnings",
    "expected-ignored.json",
    "expected-ignored.err",
)


def environ(src):
    e = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    e["HOME"] = "/home/u"
    f = src / "environ"
    if f.exists():
        for line in f.read_text().splitlines():
            if line.strip():
                k, _, v = line.partition("=")
                e[k] = v
    return e


def config(hutch, cwd, args, env, *more):
    return hutch("stack", "config", *args, *more, cwd=cwd, check=False, env=env)


def check_text(src, name, got):
    if UPDATE:
        (src / name).write_text(got)
    want = (src / name).read_text()
    assert got == want, f"{name}: hutch says:\n{got}"


def check_json(src, name, got):
    doc = json.loads(got)
    if UPDATE:
        (src / name).write_text(json.dumps(doc, indent=2) + "\n")
    want = json.loads((src / name).read_text())
    assert doc == want, f"{name}: hutch says:\n{got}"
    return doc


def ini_round_trip(hutch, tmp, cwd, args, env, doc):
    r = config(hutch, cwd, args, env, "--format", "ini")
    assert r.returncode == 0, r.stderr
    back = tmp / "back" / doc["name"]
    back.mkdir(parents=True)
    (back / "hutch.ini").write_text(r.stdout)
    # the env files were read into env: the INI stands alone (relative bind
    # mounts stay relative, and are not looked at by stack config)
    b = config(hutch, back, [], env, "--format", "json")
    assert b.returncode == 0, f"{b.stderr}\n{r.stdout}"
    got = json.loads(b.stdout)
    want = dict(doc)
    want.pop("volumes")
    got.pop("volumes")
    assert got == want, r.stdout


def test_every_fixture_has_an_answer():
    assert len(ALL) >= 20
    for name in ALL:
        have = {p.name for p in (FIXTURES / name).iterdir()}
        assert ("expected.json" in have) != ("expected.err" in have) or UPDATE, name
        assert ("expected-ignored.json" in have) == ("expected-ignored.err" in have), name


@pytest.mark.parametrize("name", ALL)
def test_fixture(hutch, tmp, name):
    src = FIXTURES / name
    cwd = tmp / name
    shutil.copytree(
        src, cwd, ignore=lambda d, files: [f for f in files if f in EXPECTED or f == "args"]
    )
    args = shlex.split((src / "args").read_text()) if (src / "args").exists() else []
    env = environ(src)
    r = config(hutch, cwd, args, env, "--format", "json")
    refused = (src / "expected.err").exists() or (UPDATE and r.returncode != 0)
    if not refused:
        assert r.returncode == 0, r.stderr
        doc = check_json(src, "expected.json", r.stdout)
        assert r.stderr == "" or (src / "expected.warnings").exists() or UPDATE, r.stderr
        if (src / "expected.warnings").exists() or (UPDATE and r.stderr):
            check_text(src, "expected.warnings", r.stderr.replace(f"{cwd}/", ""))
        ini_round_trip(hutch, tmp, cwd, args, env, doc)
        return
    assert r.returncode == 1 and r.stdout == "", r.stdout
    check_text(src, "expected.err", r.stderr.replace(f"{cwd}/", ""))
    ignored = config(hutch, cwd, args, env, "--format", "json", "--ignore-unsupported")
    if not (src / "expected-ignored.json").exists() and not (UPDATE and ignored.returncode == 0):
        assert ignored.returncode == 1
        return
    assert ignored.returncode == 0, ignored.stderr
    doc = check_json(src, "expected-ignored.json", ignored.stdout)
    check_text(src, "expected-ignored.err", ignored.stderr.replace(f"{cwd}/", ""))
    ini_round_trip(hutch, tmp, cwd, args + ["--ignore-unsupported"], env, doc)


def test_long_env_in_the_ini(hutch, tmp):
    # the fixture's 50 variables are past one INI line: env goes on in env.2, ...
    cwd = tmp / "environment-long"
    shutil.copytree(FIXTURES / "environment-long", cwd)
    ini = config(hutch, cwd, [], environ(cwd), "--format", "ini").stdout
    keys = [line.split(" = ")[0] for line in ini.splitlines() if line.startswith("env")]
    assert keys == ["env", "env.2", "env.3"], ini
    assert max(len(line) for line in ini.splitlines()) <= 999


def test_ini_keys_of_compose(hutch, tmp):
    d = tmp / "ini"
    d.mkdir()
    (d / "hutch.ini").write_text(
        "[service.db]\nimage = bb\nhealth_cmd = true\n"
        "[service.a]\nimage = bb\ndepends_on = db:healthy:restart\n"
        "env = A=1\nenv.2 = B=2 A=3\n"
        "[service.b]\nimage = bb\ndepends_on = db:restart\n"
    )
    j = json.loads(config(hutch, d, [], environ(d), "--format", "json").stdout)
    assert j["services"]["a"]["depends_on"] == {"db": {"condition": "healthy", "restart": True}}
    assert j["services"]["b"]["depends_on"] == {"db": {"condition": "started", "restart": True}}
    assert j["services"]["a"]["environment"] == {"A": "3", "B": "2"}
    (d / "hutch.ini").write_text(
        "[service.db]\nimage = bb\n"
        "[service.a]\nimage = bb\ndepends_on = db:restart:healthy\nenv.1 = A=1\nenv.02 = B=2\n"
    )
    r = config(hutch, d, [], environ(d))
    assert r.returncode == 1
    assert r.stderr.replace(f"{d}/", "") == (
        "hutch.ini: 3 errors:\n"
        "hutch.ini:5: depends_on: 'db:restart:healthy': the condition after ':' is started "
        "(the default), healthy or completed\n"
        "hutch.ini:6: env.1: unknown key (did you mean 'env'?)\n"
        "hutch.ini:7: env.02: unknown key (docs/stack-file.md lists a service's keys)\n"
    )


# The compose documentation's examples, brought up as they are written, with busybox
# stand-ins for their images given the compose way: an override file (image, a command
# that stays up, a health check busybox can run, quicker).
STAND_IN = "    image: bb\n    init: true\n    command: [sleep, '1000']\n"
QUICK_CHECK = "    healthcheck: {test: [CMD, 'true'], interval: 200ms}\n"
SPEC_UP = {
    "spec-depends-on": ({"web": "", "redis": "", "db": QUICK_CHECK}, []),
    "spec-healthcheck": (
        {"web": QUICK_CHECK, "shell": QUICK_CHECK, "string": QUICK_CHECK, "off": ""}, []
    ),
    "spec-restart": ({s: "" for s in "abcde"} | {"redis": ""}, []),
    "spec-volumes": ({"backend": "", "backup": "", "web": ""}, ["--ignore-unsupported"]),
    "spec-networks": ({"proxy": "    build: !reset null\n", "app": "", "db": ""}, []),
}


@pytest.mark.parametrize("name", sorted(SPEC_UP))
def test_spec_example_comes_up(hutch, tmp, name):
    services, opts = SPEC_UP[name]
    project = f"spec{os.getpid() % 10000}{name.split('-')[1][:3]}"
    cwd = tmp / name
    shutil.copytree(
        FIXTURES / name, cwd, ignore=lambda d, files: [f for f in files if f in EXPECTED]
    )
    (cwd / "static").mkdir()
    (cwd / "compose.override.yaml").write_text(
        "services:\n" + "".join(f"  {s}:\n{STAND_IN}{more}" for s, more in services.items())
    )
    env = environ(cwd)
    args = ("-p", project, *opts)
    try:
        r = hutch("up", "-d", "--wait", "--wait-timeout", "30", *args, cwd=cwd, env=env,
                  check=False, timeout=90)
        assert r.returncode == 0, r.stderr
        ps = hutch("stack", "ps", "--format", "json", *args, cwd=cwd, env=env).stdout
        rows = {row["container"]: row for row in map(json.loads, ps.splitlines())}
        assert set(rows) == {f"{project}-{s}-1" for s in services}, ps
        for s in services:
            row = rows[f"{project}-{s}-1"]
            assert row["state"] == "running", row
            if "healthcheck" in services[s]:
                assert row["health"] == "healthy", row
    finally:
        hutch("down", "-t", "0", *args, cwd=cwd, env=env, check=False, timeout=60)
