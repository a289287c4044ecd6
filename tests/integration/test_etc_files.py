"""/etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker makes them: written per
container and bind-mounted over the image's; --dns, --dns-search, --dns-option,
--add-host; a user's own mount wins; the image never changes."""
import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import tree_snapshot

LOCALHOST_LINES = ("127.0.0.1\tlocalhost\n"
                   "::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\n"
                   "ff00::0\tip6-mcastprefix\n"
                   "ff02::1\tip6-allnodes\n"
                   "ff02::2\tip6-allrouters\n")


def _is_loopback(addr):
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _host_resolv():
    """The host's resolver settings as a container without the host's network gets
    them: nameservers without loopback ones (behind systemd-resolved's stub, the
    servers it forwards to), the last search/domain line, every option."""
    try:
        text = Path("/etc/resolv.conf").read_text()
    except FileNotFoundError:
        text = ""

    def parse(t):
        servers, search, options = [], [], []
        for line in t.splitlines():
            w = line.split()
            if not w or w[0][0] in "#;" or len(w) < 2:
                continue
            if w[0] == "nameserver":
                servers.append(w[1])
            elif w[0] == "search":
                search = w[1:]
            elif w[0] == "domain":
                search = w[1:2]
            elif w[0] == "options":
                options += w[1:]
        return servers, search, options

    servers, search, options = parse(text)
    if servers and all(_is_loopback(s) for s in servers) and "127.0.0.53" in servers:
        stub = Path("/run/systemd/resolve/resolv.conf")
        if stub.exists():
            servers, search, options = parse(stub.read_text())
    return [s for s in servers if not _is_loopback(s)], search, options


def _expected_resolv(servers, search, options):
    out = "".join(f"nameserver {s}\n" for s in servers)
    search = [d for d in search if d != "."]
    if search:
        out += "search " + " ".join(search) + "\n"
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


def _three(hutch, *flags):
    out = hutch("run", "--rm", *flags, "bb", "sh", "-c",
                "hostname; echo ==; cat /etc/hostname; echo ==; cat /etc/hosts; echo ==; "
                "cat /etc/resolv.conf").stdout
    hostname, f_hostname, f_hosts, f_resolv = out.split("==\n")
    return hostname.strip(), f_hostname, f_hosts, f_resolv


# ------------------------------------------------------------------ contents


def test_files_without_the_host_network(hutch):
    hostname, f_hostname, f_hosts, f_resolv = _three(hutch)
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    assert f_hostname == hostname + "\n"
    assert f_hosts == LOCALHOST_LINES + f"127.0.0.1\t{hostname}\n::1\t{hostname}\n"
    assert f_resolv == _expected_resolv(*_host_resolv())
    # and --network none says the same
    hostname, f_hostname, f_hosts, f_resolv = _three(hutch, "--network", "none", "-h", "box")
    assert (hostname, f_hostname) == ("box", "box\n")
    assert f_hosts == LOCALHOST_LINES + "127.0.0.1\tbox\n::1\tbox\n"
    assert f_resolv == _expected_resolv(*_host_resolv())


def test_files_with_the_host_network(hutch):
    hostname, f_hostname, f_hosts, f_resolv = _three(hutch, "--network", "host",
                                                     "-h", "netbox")
    assert (hostname, f_hostname) == ("netbox", "netbox\n")
    host_hosts = Path("/etc/hosts").read_text()
    if host_hosts and not host_hosts.endswith("\n"):
        host_hosts += "\n"
    assert f_hosts == host_hosts + "127.0.0.1\tnetbox\n::1\tnetbox\n"
    # the host's resolver as it is: its loopback servers are reachable from here
    assert f_resolv == Path("/etc/resolv.conf").read_text()


def test_mounted_over_the_image_files(hutch):
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    targets = {l.split()[4] for l in mi.splitlines()}
    assert {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} <= targets
    # writable (as in Docker), for the container only
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "echo '10.9.9.9 added' >> /etc/hosts && tail -n 1 /etc/hosts; "
                "echo nameserver 10.9.9.9 > /etc/resolv.conf && cat /etc/resolv.conf").stdout
    assert out == "10.9.9.9 added\nnameserver 10.9.9.9\n"
    assert "10.9.9.9" not in hutch("run", "--rm", "bb", "cat", "/etc/hosts",
                                   "/etc/resolv.conf").stdout


def test_hostname_resolves_with_busybox(hutch):
    out = hutch("run", "--rm", "-h", "box", "bb", "sh", "-c",
                "hostname -i; ping -c 1 -W 1 box 2>&1 | head -n 1").stdout
    assert out.splitlines()[0] == "127.0.0.1"
    assert out.splitlines()[1].startswith("PING box (127.0.0.1)")


def _glibc_image(image_from):
    """bb plus Debian's getent and the glibc it needs (files and dns are in libc)."""
    def populate(d):
        libs = re.findall(r"(/\S+\.so[.\d]*)", subprocess.run(
            ["ldd", "/usr/bin/getent"], capture_output=True, text=True, check=True).stdout)
        for lib in libs + ["/usr/bin/getent"]:
            real = os.path.realpath(lib)
            dest = d / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, dest)
        (d / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    return image_from("glibc", populate)


def test_hostname_and_added_hosts_resolve_through_glibc(hutch, image_from):
    img = _glibc_image(image_from)
    out = hutch("run", "--rm", "--add-host", "db:10.0.0.5", "--add-host", "v6db:fd00::5",
                "-h", "gbox", img, "sh", "-c",
                "getent hosts $(hostname); getent ahosts $(hostname) | head -n 1; "
                "getent hosts db; getent hosts v6db; getent hosts localhost"
                ).stdout.splitlines()
    # getent hosts asks for IPv6 first
    assert out[0].split() == ["::1", "gbox"], out
    assert out[1].split()[:3] == ["127.0.0.1", "STREAM", "gbox"], out
    assert out[2].split() == ["10.0.0.5", "db"]
    assert out[3].split() == ["fd00::5", "v6db"]
    assert out[4].split()[:2] == ["::1", "localhost"]
    # before this was made, no /etc/hosts existed: a name nobody gave does not resolve
    cp = hutch("run", "--rm", img, "getent", "hosts", "no-such-host-here", check=False)
    assert cp.returncode == 2


# ------------------------------------------------------------------ flags


def test_add_host(hutch):
    _, _, f_hosts, _ = _three(hutch, "-h", "web", "--add-host", "db:10.0.0.5",
                              "--add-host", "cache=10.0.0.6", "--add-host", "v6:[fd00::1]",
                              "--add-host", "v6b:fd00::2")
    assert f_hosts == (LOCALHOST_LINES + "10.0.0.5\tdb\n10.0.0.6\tcache\nfd00::1\tv6\n"
                       "fd00::2\tv6b\n127.0.0.1\tweb\n::1\tweb\n")
    # an entry for the hostname itself takes its place
    _, _, f_hosts, _ = _three(hutch, "-h", "web", "--add-host", "web:10.0.0.9")
    assert f_hosts == LOCALHOST_LINES + "10.0.0.9\tweb\n"
    # with the host's network: after the host's lines
    _, _, f_hosts, _ = _three(hutch, "--network", "host", "-h", "web",
                              "--add-host", "db:10.0.0.5")
    assert f_hosts.startswith(Path("/etc/hosts").read_text().rstrip("\n") + "\n")
    assert f_hosts.endswith("10.0.0.5\tdb\n127.0.0.1\tweb\n::1\tweb\n")


def test_dns_flags(hutch):
    servers, search, options = _host_resolv()
    _, _, _, f_resolv = _three(hutch, "--dns", "192.0.2.53", "--dns", "2001:db8::53",
                               "--dns-search", "a.example", "--dns-search", "b.example",
                               "--dns-option", "ndots:2", "--dns-option", "edns0")
    assert f_resolv == ("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"
                        "search a.example b.example\noptions ndots:2 edns0\n")
    # each replaces only its own part of the host's
    _, _, _, f_resolv = _three(hutch, "--dns", "192.0.2.53")
    assert f_resolv == _expected_resolv(["192.0.2.53"], search, options)
    _, _, _, f_resolv = _three(hutch, "--dns-option", "attempts:1")
    assert f_resolv == _expected_resolv(servers, search, ["attempts:1"])
    # '.': no search domains
    _, _, _, f_resolv = _three(hutch, "--dns-search", ".")
    assert f_resolv == _expected_resolv(servers, [], options)
    # with the host's network a flag rebuilds the file from the host's, unfiltered
    _, _, _, f_resolv = _three(hutch, "--network", "host", "--dns-search", "c.example")
    assert "search c.example\n" in f_resolv
    assert "nameserver 192.0.2.53" not in f_resolv


def test_bad_values_are_named_and_leave_nothing(hutch):
    for args, needle in [(["--dns", "1.2.3"], "'1.2.3'"),
                         (["--dns", "dns.example"], "'dns.example'"),
                         (["--dns-search", "a b"], "'a b'"),
                         (["--dns-search", "a..b"], "'a..b'"),
                         (["--dns-option", "nd ots"], "'nd ots'"),
                         (["--add-host", "nocolon"], "'nocolon'"),
                         (["--add-host", "bad_host!:1.2.3.4"], "'bad_host!'"),
                         (["--add-host", "-lead:1.2.3.4"], "'-lead'"),
                         (["--add-host", "db:1.2.3.999"], "'1.2.3.999'"),
                         (["--add-host", "db:"], "address ''"),
                         (["--add-host", "db:host-gateway"], "host-gateway")]:
        cp = hutch("run", "--rm", *args, "bb", "true", check=False)
        assert cp.returncode == 125, (args, cp.stderr)
        assert needle in cp.stderr, (args, cp.stderr)
        assert cp.stderr.count("\n") == 1, cp.stderr


# ------------------------------------------------------------------ the image and the user's mounts


def test_image_unchanged_and_nothing_in_the_rw_layer(hutch, state, ctr):
    before = tree_snapshot(state.bb_layer)
    cid = ctr.run("bb", "sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null")
    ctr.wait_exited(cid)
    assert ctr.inspect(cid)["exit_code"] == 0
    # the image had no hosts or resolv.conf and keeps its own hostname file
    assert not (state.bb_layer / "etc" / "hosts").exists()
    assert not (state.bb_layer / "etc" / "resolv.conf").exists()
    assert (state.bb_layer / "etc" / "hostname").read_text() == "hutch-test\n"
    assert tree_snapshot(state.bb_layer) == before
    # and the container's own rw layer got nothing either
    upper = state.root / "containers" / cid / "upper"
    assert upper.is_dir()
    assert not (upper / "etc").exists(), list(upper.rglob("*"))


def test_user_bind_over_hosts_wins(hutch, tmp):
    (tmp / "hosts").write_text("10.1.1.1 mine\n")
    out = hutch("run", "--rm", "-v", f"{tmp}/hosts:/etc/hosts:ro", "-h", "box", "bb", "sh",
                "-c", "cat /etc/hosts; echo ==; cat /etc/hostname").stdout
    assert out == "10.1.1.1 mine\n==\nbox\n"
    assert (tmp / "hosts").read_text() == "10.1.1.1 mine\n"
    # a tmpfs over /etc/resolv.conf's directory is the container's own: files go in it
    out = hutch("run", "--rm", "--tmpfs", "/etc", "-h", "box", "bb", "sh", "-c",
                "ls /etc; cat /etc/hostname").stdout
    assert out.split() == ["hostname", "hosts", "resolv.conf", "box"]


def test_user_bind_of_a_directory_over_etc_gets_nothing_written(hutch, tmp):
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    out = hutch("run", "--rm", "-v", f"{etc}:/etc", "bb", "ls", "/etc").stdout
    assert out.split() == ["group", "passwd"]
    assert sorted(os.listdir(etc)) == ["group", "passwd"]


def test_read_only_root_still_gets_them(hutch):
    cp = hutch("run", "--rm", "--read-only", "-h", "ro", "bb", "sh", "-c",
               "cat /etc/hostname; grep -cw ro /etc/hosts; echo x >> /etc/hosts", check=False)
    assert cp.stdout == "ro\n2\n"
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr
    mi = hutch("run", "--rm", "--read-only", "bb", "cat", "/proc/self/mountinfo").stdout
    for l in mi.splitlines():
        f = l.split()
        if f[4] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            assert "ro" in f[5].split(","), l


def test_image_with_its_own_files_and_a_dangling_symlink(hutch, image_from, state):
    def populate(d):
        (d / "etc" / "hosts").write_text("10.6.6.6 from-the-image\n")
        os.symlink("../run/systemd/resolve/stub-resolv.conf", d / "etc" / "resolv.conf")

    img = image_from("etcown", populate)
    out = hutch("run", "--rm", "--dns", "192.0.2.1", "-h", "own", img, "sh", "-c",
                "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; cat /etc/hostname"
                ).stdout
    hosts, resolv, hostname = out.split("==\n")
    assert "from-the-image" not in hosts and hosts.endswith("127.0.0.1\town\n::1\town\n")
    assert resolv == "nameserver 192.0.2.1\n"
    assert hostname == "own\n"
    # the image still has its own
    layer = [p for p in (state.root / "images" / "layers").iterdir()
             if (p / "unique").exists() and "etcown" in (p / "unique").read_text()]
    assert len(layer) == 1
    assert (layer[0] / "etc" / "hosts").read_text() == "10.6.6.6 from-the-image\n"
    assert os.readlink(layer[0] / "etc" / "resolv.conf") == \
        "../run/systemd/resolve/stub-resolv.conf"


def test_exec_sees_the_same_files(hutch, ctr):
    cid = ctr.run("--add-host", "db:10.0.0.5", "-h", "execbox", "bb", "sleep", "100")
    out = hutch("exec", cid, "sh", "-c", "cat /etc/hostname; grep db /etc/hosts").stdout
    assert out == "execbox\n10.0.0.5\tdb\n"


# ------------------------------------------------------------------ an image's /etc that is not its own


def _upper(state, cid):
    return state.root / "containers" / cid / "upper"


def test_etc_symlink_into_a_bind_changes_nothing_on_the_host(hutch, image_from, tmp, ctr, state):
    # /etc -> /mnt/x/etc with the host's dir bound on /mnt/x: hutch must neither
    # delete the host's dangling resolv.conf symlink nor create files next to it
    def populate(d):
        shutil.rmtree(d / "etc")
        os.symlink("/mnt/x/etc", d / "etc")

    img = image_from("etcinbind", populate)
    host = tmp / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "hosts").write_text("10.9.9.9 the-hosts-own\n")
    os.symlink("../run/nowhere/resolv.conf", host / "etc" / "resolv.conf")
    if os.geteuid() != 0:
        os.chmod(host, 0o777)
    before = tree_snapshot(host)
    cid = ctr.run("-v", f"{host}:/mnt/x", "-h", "box", img, "sh", "-c",
                  "ls -a /etc; cat /etc/hosts; echo $(grep -c ' /mnt/x/etc/' /proc/self/mountinfo)")
    ctr.wait_exited(cid)
    assert ctr.inspect(cid)["exit_code"] == 0
    out = hutch("logs", cid).stdout
    # the container sees the host's directory as it is, with nothing mounted in it
    assert out == ".\n..\nhosts\nresolv.conf\n10.9.9.9 the-hosts-own\n0\n", out
    assert tree_snapshot(host) == before
    assert os.readlink(host / "etc" / "resolv.conf") == "../run/nowhere/resolv.conf"
    assert not (_upper(state, cid) / "etc").exists()


def test_etc_a_dangling_symlink_or_a_file_runs_without_the_files(hutch, image_from, ctr, state):
    def dangling(d):
        shutil.rmtree(d / "etc")
        os.symlink("/nowhere/etc", d / "etc")

    def a_file(d):
        shutil.rmtree(d / "etc")
        (d / "etc").write_text("not a directory\n")

    for name, populate, shown in (("etcdangling", dangling, "/nowhere/etc"),
                                  ("etcfile", a_file, "not a directory")):
        img = image_from(name, populate)
        cid = ctr.run(img, "sh", "-c",
                      "readlink /etc || cat /etc; echo $(grep -c ' /etc/' /proc/self/mountinfo)")
        ctr.wait_exited(cid)
        assert ctr.inspect(cid)["exit_code"] == 0, hutch("logs", cid)
        assert hutch("logs", cid).stdout == f"{shown}\n0\n"
        # nothing was made for them: no /nowhere, no /etc in the rw layer
        assert sorted(os.listdir(_upper(state, cid))) == [], list(_upper(state, cid).rglob("*"))


def test_etc_symlink_inside_the_image_still_gets_the_files(hutch, image_from):
    def populate(d):
        os.rename(d / "etc", d / "real-etc")
        os.symlink("real-etc", d / "etc")

    img = image_from("etcinside", populate)
    out = hutch("run", "--rm", "-h", "inside", img, "sh", "-c",
                "cat /etc/hostname; grep -c ' /real-etc/' /proc/self/mountinfo").stdout
    assert out == "inside\n3\n"
