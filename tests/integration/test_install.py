"""`make install` as a packager runs it, and what it installs to bring stacks back at boot.

The binary under test (build/hutch) is installed as is (`make -o build/hutch`: never
rebuilt here). A staging install (DESTDIR, PREFIX=/usr) is checked file by file: paths,
modes, the final paths written into the units and the init script, and that uninstall
removes it all. An install to a real prefix under the test's dir gives units whose
ExecStart exists, for `systemd-analyze verify`, and an init script that the test runs
against the session's store (its /etc/default/hutch-restore says --root) after a
clean shutdown: the supervisor gets the SIGTERM a machine going down sends, the
containers die, the run dir is emptied, then `init.d/hutch-restore start`.
"""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from conftest import REPO, wait_for
from test_stack import LONG, make_stack  # noqa: F401 (make_stack: a fixture)

DOCS = ["README.md"] + sorted(p.name for p in (REPO / "docs").glob("*.md"))


def make(*args):
    cp = subprocess.run(["make", "-s", "-C", str(REPO), "-o", "build/hutch", *args],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, f"make {' '.join(args)}: {cp.stdout}{cp.stderr}"
    return cp


def files_under(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = os.lstat(p).st_mode & 0o7777
    return out


def unit_keys(path):
    """KEY=VALUE lines of a unit file (comments and sections left out)."""
    keys = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return keys


def test_install_with_destdir_puts_each_file_in_place_with_its_mode(tmp):
    stage = tmp / "stage"
    make("install", f"DESTDIR={stage}", "PREFIX=/usr")
    want = {
        "usr/bin/hutch": 0o755,
        "usr/bin/hutch-oci": 0o777,  # a symlink: hutch reads its name
        "usr/lib/systemd/system/hutch-restore.service": 0o644,
        "usr/lib/systemd/user/hutch-restore.service": 0o644,
        "etc/init.d/hutch-restore": 0o755,
    }
    want.update({f"usr/share/doc/hutch/{d}": 0o644 for d in DOCS})
    assert files_under(stage) == want
    assert (stage / "usr/bin/hutch").read_bytes() == (REPO / "build/hutch").read_bytes()
    assert os.readlink(stage / "usr/bin/hutch-oci") == "hutch"

    for rel in want:
        if rel.startswith("usr/share/doc") or rel.startswith("usr/bin/"):
            continue
        text = (stage / rel).read_text()
        # the final paths, never the staging dir nor a placeholder
        assert str(stage) not in text, rel
        assert not re.search(r"@[A-Z]+@", text), rel

    system = unit_keys(stage / "usr/lib/systemd/system/hutch-restore.service")
    assert system["ExecStart"] == "/usr/bin/hutch stack restore"
    assert system["Type"] == "oneshot"
    assert system["RemainAfterExit"] == "yes"
    # the supervisors restore starts stay in the unit's cgroup: stopping or
    # restarting the unit must not signal them
    assert system["KillMode"] == "process"
    assert set(system["After"].split()) >= {"network-online.target", "local-fs.target"}
    assert "network-online.target" in system["Wants"].split()
    assert system["WantedBy"] == "multi-user.target"
    assert system["Documentation"] == "file:/usr/share/doc/hutch/cli.md"

    user = unit_keys(stage / "usr/lib/systemd/user/hutch-restore.service")
    assert user["ExecStart"] == "/usr/bin/hutch stack restore"
    assert user["KillMode"] == "process" and user["RemainAfterExit"] == "yes"
    assert user["WantedBy"] == "default.target"

    init = (stage / "etc/init.d/hutch-restore").read_text()
    assert init.startswith("#!/bin/sh\n")
    assert "### BEGIN INIT INFO" in init and "### END INIT INFO" in init
    assert re.search(r"^# Provides: +hutch-restore$", init, re.M)
    assert re.search(r"^# Default-Start: +2 3 4 5$", init, re.M)
    assert "HUTCH=/usr/bin/hutch\n" in init
    assert "[ -r /etc/default/hutch-restore ]" in init
    cp = subprocess.run(["sh", "-n", str(stage / "etc/init.d/hutch-restore")],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr

    make("uninstall", f"DESTDIR={stage}", "PREFIX=/usr")
    assert files_under(stage) == {}


def test_install_honours_prefix_and_the_directory_variables(tmp):
    make("install", f"DESTDIR={tmp}", "PREFIX=/opt/h", "SYSCONFDIR=/etc/h",
         "SYSTEMD_UNIT_DIR=/lib/systemd/system")
    assert set(files_under(tmp)) == {
        "opt/h/bin/hutch", "opt/h/bin/hutch-oci", "lib/systemd/system/hutch-restore.service",
        "opt/h/lib/systemd/user/hutch-restore.service", "etc/h/init.d/hutch-restore",
        *(f"opt/h/share/doc/hutch/{d}" for d in DOCS)}
    assert unit_keys(tmp / "lib/systemd/system/hutch-restore.service")["ExecStart"] == \
        "/opt/h/bin/hutch stack restore"
    init = (tmp / "etc/h/init.d/hutch-restore").read_text()
    assert "HUTCH=/opt/h/bin/hutch\n" in init and "/etc/h/default/hutch-restore" in init


def real_install(tmp):
    """An install whose paths exist: PREFIX and SYSCONFDIR under tmp, no DESTDIR."""
    p = tmp / "p"
    make("install", f"PREFIX={p}", f"SYSCONFDIR={p}/etc")
    return p


def verify(unit, user, env):
    cmd = ["systemd-analyze", *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_units_pass_systemd_analyze_verify(tmp):
    assert shutil.which("systemd-analyze"), \
        "systemd-analyze not found: apt-get install systemd"
    p = real_install(tmp)
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(xdg))
    for unit, user in ((p / "lib/systemd/system/hutch-restore.service", False),
                       (p / "lib/systemd/user/hutch-restore.service", True)):
        cp = verify(unit, user, env)
        # verify exits 0 on mere warnings: its silence is the pass
        assert cp.returncode == 0 and not (cp.stdout + cp.stderr).strip(), \
            f"{unit}:\n{cp.stdout}{cp.stderr}"
    # and it would have said so: the same unit with one bad value
    bad = tmp / "hutch-restore.service"
    bad.write_text((p / "lib/systemd/system/hutch-restore.service").read_text()
                   .replace("KillMode=process", "KillMode=sometimes"))
    cp = verify(bad, False, env)
    assert "sometimes" in cp.stdout + cp.stderr, cp


def test_init_script_restores_a_stack_after_a_clean_shutdown(make_stack, hutch, state, tmp):
    p = real_install(tmp)
    (p / "etc/default").mkdir(parents=True)
    (p / "etc/default/hutch-restore").write_text(f'HUTCH_OPTS="--root {state.root}"\n')
    script = p / "etc/init.d/hutch-restore"
    st = make_stack(f"""
[service.always]
image = bb
{LONG}restart = always

[service.never]
image = bb
{LONG}
[service.held]
image = bb
{LONG}restart = always
stop_grace_period = 1s
""")
    st.run("up", "--wait")
    st.run("stack", "stop", "held")
    # a loaded machine (the whole suite, rootless) may take a while to stop it
    wait_for(lambda: st.by_container()[f"{st.name}-held-1"]["state"] == "stopped",
             timeout=30, what="held stopped")
    before = st.by_container()

    # the shutdown: first the SIGTERM every process gets (systemd's and
    # sysvinit's last round): the supervisor leaves, the stack stays up
    sup = st.supervisor_pid()
    os.kill(sup, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{sup}"), what="supervisor gone")
    stacks = [json.loads(l) for l in
              hutch("stack", "ls", "--format", "json").stdout.splitlines()]
    mine = [s for s in stacks if s["name"] == st.name]
    # up, without a supervisor (as after SIGKILL): what restore looks for
    assert len(mine) == 1 and mine[0]["status"] == "orphaned", stacks
    running = []
    for c in st.containers():
        rec = json.loads(hutch("inspect", c["id"]).stdout)
        rec = rec[0] if isinstance(rec, list) else rec
        if rec["status"] == "running":
            running.append(rec)
    assert sorted(r["name"] for r in running) == sorted(
        [f"{st.name}-always-1", f"{st.name}-never-1"]), "services run on"
    # then the rest of the machine goes: every process killed, /run emptied
    for rec in running:
        os.kill(rec["monitor_pid"], signal.SIGKILL)
        os.kill(rec["pid"], signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{rec['pid']}"), what="container dead")
    shutil.rmtree(st.run_dir)

    # the boot
    cp = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp
    assert f"stack {st.name} restored" in cp.stderr, cp.stderr
    wait_for(lambda: st.by_container()[f"{st.name}-always-1"]["state"] == "running",
             timeout=20, what="always back")
    reps = st.by_container()
    assert reps[f"{st.name}-always-1"]["pid"] != before[f"{st.name}-always-1"]["pid"]
    assert reps[f"{st.name}-never-1"]["state"] == "exited"
    assert reps[f"{st.name}-held-1"]["state"] == "stopped"
    assert len(st.containers()) == 3

    # stop stops nothing; status lists the stacks; a second start restores none
    sup = st.supervisor_pid()
    cp = subprocess.run([str(script), "stop"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and os.path.exists(f"/proc/{sup}"), cp
    cp = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and st.name in cp.stdout, cp
    cp = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and "restored" not in cp.stderr, cp
    assert st.supervisor_pid() == sup
    cp = subprocess.run([str(script), "bogus"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 3 and "Usage:" in cp.stderr, cp
