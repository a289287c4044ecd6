"""`hutch stack config`: the stack as hutch read it (docs/compose.md).

Compose files are merged and interpolated, written as a hutch.ini that `up` then
runs as it is, and as JSON; the options every stack verb takes apply; bad input is
refused with what was wrong. Nothing here needs root: the same as any user.
"""
import json
import os

import pytest


def config(hutch, cwd, *args, check=True, env=None):
    e = dict(os.environ)
    e.pop("COMPOSE_PROJECT_NAME", None)
    e.pop("COMPOSE_PROFILES", None)
    e.update(env or {})
    return hutch("stack", "config", *args, cwd=cwd, check=check, env=e)


BASE = """\
name: shop
x-common: &common
  restart: unless-stopped
  environment: &env
    TZ: UTC
services:
  db:
    <<: *common
    image: bb
    command: ["sh", "-c", "echo \\"$$HOSTNAME\\"; exec sleep 1000"]
    env_file: db.env
    healthcheck:
      test: ["CMD", "true"]
      interval: 1500ms
  api:
    image: bb:${TAG:-latest}
    command: sleep 1000
    depends_on:
      db: {condition: service_healthy}
  debug:
    image: bb
    profiles: [debug]
"""

OVERRIDE = """\
services:
  api:
    environment:
      MODE: "a;b # c"
    deploy:
      replicas: 2
"""


@pytest.fixture
def project(tmp):
    d = tmp / "proj"
    d.mkdir()
    (d / "compose.yaml").write_text(BASE)
    (d / "compose.override.yaml").write_text(OVERRIDE)
    (d / "db.env").write_text("SECRET='x y'\nMULTI=\"l1\\nl2\"\n")
    return d


def test_ini_of_merged_compose_files(hutch, project):
    ini = config(hutch, project).stdout
    assert "[stack]\nname = shop\n" in ini
    assert "[service.debug]" not in ini  # its profile is not enabled
    assert "image = bb:latest\n" in ini
    assert "replicas = 2\n" in ini  # from the override file found beside it
    assert "health_interval = 1s500ms\n" in ini
    assert "restart = unless-stopped\n" in ini
    # the override's value with ';' and '#', the env file's line break
    assert "env = \"MODE='a;b # c'\"\n" in ini
    assert "$$'MULTI=l1\\nl2'" in ini
    # the INI is a stack file of its own: written elsewhere, it reads the same
    out = project.parent / "converted"
    out.mkdir()
    (out / "hutch.ini").write_text(ini)
    a = json.loads(config(hutch, project, "--format", "json").stdout)
    b = json.loads(config(hutch, out, "--format", "json").stdout)
    assert a == b
    api = a["services"]["api"]
    assert api["environment"] == {"MODE": "a;b # c"}
    assert api["replicas"] == 2
    assert api["depends_on"] == {"db": {"condition": "healthy", "restart": False}}
    db = a["services"]["db"]
    assert db["command"] == ["sh", "-c", 'echo "$HOSTNAME"; exec sleep 1000']
    assert db["environment"] == {"SECRET": "x y", "MULTI": "l1\nl2", "TZ": "UTC"}
    assert db["healthcheck"]["test"] == ["true"]
    assert db["healthcheck"]["interval"] == "1s500ms"
    assert a["start_order"] == ["db", "api"]


def test_services_quiet_and_options(hutch, project):
    assert config(hutch, project, "--services").stdout == "db\napi\n"
    assert (
        config(hutch, project, "--services", "--profile", "debug").stdout
        == "db\napi\ndebug\n"
    )
    r = config(hutch, project, "-q")
    assert r.stdout == ""
    # -p, --env-file, -f given: only the named files
    (project / "vars.env").write_text("TAG=2\n")
    r = config(
        hutch, project, "-f", "compose.yaml", "-p", "other", "--env-file", "vars.env",
        "--format", "json",
    )
    j = json.loads(r.stdout)
    assert j["name"] == "other"
    assert j["services"]["api"]["image"] == "bb:2"
    assert j["services"]["api"]["replicas"] == 1  # no override read
    r = config(hutch, project, env={"COMPOSE_PROFILES": "debug", "TAG": "3"})
    assert "[service.debug]" in r.stdout and "image = bb:3\n" in r.stdout


def test_the_converted_file_comes_up(hutch, project):
    ini = config(hutch, project).stdout
    out = project.parent / "up"
    out.mkdir()
    (out / "hutch.ini").write_text(ini)
    try:
        hutch("up", "--wait", "--wait-timeout", "30", cwd=out, timeout=60)
        ps = hutch("stack", "ps", "--format", "json", cwd=out).stdout
        names = sorted(json.loads(line)["container"] for line in ps.splitlines())
        assert names == ["shop-api-1", "shop-api-2", "shop-db-1"], ps
        env = hutch("exec", "shop-db-1", "sh", "-c", 'printf "%s|%s" "$SECRET" "$MULTI"').stdout
        assert env == "x y|l1\nl2"
        env = hutch("exec", "shop-api-2", "sh", "-c", 'printf %s "$MODE"').stdout
        assert env == "a;b # c"
    finally:
        hutch("down", "-t", "0", cwd=out, check=False)


def test_depends_on_restart_and_networks_in_the_ini(hutch, tmp):
    d = tmp / "n"
    d.mkdir()
    (d / "compose.yaml").write_text(
        "services:\n"
        "  a:\n    image: bb\n    networks: [back]\n"
        "  b:\n    image: bb\n    depends_on: {a: {condition: service_started, restart: true}}\n"
        "networks:\n  back: {internal: true}\n"
    )
    r = config(hutch, d)
    assert r.stderr == ""
    assert "depends_on = a:started:restart\n" in r.stdout
    # declared networks are sections of their own
    assert "[network.back]\ninternal = true\n" in r.stdout
    j = json.loads(config(hutch, d, "--format", "json").stdout)
    assert j["networks"] == {"back": {"internal": True, "subnet": None, "ipv6": False,
                                  "subnet6": None}}
    assert j["services"]["b"]["depends_on"]["a"]["restart"] is True


def test_bad_input(hutch, tmp):
    d = tmp / "bad"
    d.mkdir()
    (d / "compose.yaml").write_text("services:\n  a:\n    image: bb\n    working_dir: \"/a\\nb\"\n")
    r = config(hutch, d, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (
        "hutch: stack config: services.a.workdir: '/a\\x0ab': it holds a line break: a "
        "hutch.ini cannot hold it (--format json shows it)\n"
    )
    # the JSON holds it
    j = json.loads(config(hutch, d, "--format", "json").stdout)
    assert j["services"]["a"]["options"]["workdir"] == "/a\nb"
    r = config(hutch, d, "--help")
    assert r.stdout.startswith("Usage: hutch stack config [-f FILE]... [--format ini|json]")
    r = config(hutch, d, "--format", "yaml", check=False)
    assert r.returncode == 125
    assert "unknown --format 'yaml' (ini or json)" in r.stderr
    r = config(hutch, d, "extra", check=False)
    assert r.returncode == 125
    assert "unexpected argument 'extra'" in r.stderr
    (d / "compose.yaml").write_text("services:\n  a:\n    imag: bb\n")
    r = config(hutch, d, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "services.a.imag: unknown key (did you mean 'image'?)" in r.stderr
