"""Rootless networks (net/rootless.c, docs/network.md "Rootless"): the bridges of an
unprivileged user's networks in the user's rootless network namespace, held by a
process of hutch's (hutch-netns), with pasta attached for the way out and for
published ports.

Network safety (shared/DESIGN.md): an unprivileged user cannot touch the host's
links or firewall; hutch's bridges, veths and nft table are in the namespace it
makes. "The internet" is a server in a network namespace this test makes (a pasta
of the test's own puts it behind a port of the host's own address), published ports
are reached from the host's own addresses: no packet leaves the machine.

As root the networks are rootful (test_network.py): the root run asserts that none of
this is made for them, and runs a rootless hutch (as nobody) inside namespaces of its
own, where a second one can act as another host: the client's address of another host
and the way out to it.
"""
import json
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import wait_for

ROOT = os.geteuid() == 0
BUSYBOX = "/bin/busybox"

CGI_IP = '#!/bin/sh\necho "Content-type: text/plain"\necho\necho "$REMOTE_ADDR"\n'


def sh(*cmd, check=True, **kw):
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=30, **kw)
    if check and cp.returncode != 0:
        raise AssertionError(f"exit {cp.returncode}: {cmd}\n{cp.stdout}\n{cp.stderr}")
    return cp


def rl_dir(state):
    return state.root / "run" / "rootless-netns"


def alive(pid):
    """Running (a zombie waiting for its reaper is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def holder_and_pasta(state):
    """The pids hutch recorded for its holder and pasta (None when not there)."""
    got = []
    for f in ("holder", "pasta"):
        try:
            got.append(int((rl_dir(state) / f).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            got.append(None)
    return got


UDP_ECHO_C = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
int main(int argc, char **argv)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return perror("bind"), 1;
	for (;;) {
		char buf[512], out[64];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		if (recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) < 0)
			continue;
		int n = snprintf(out, sizeof(out), "from %s\n", inet_ntoa(from.sin_addr));
		sendto(s, out, n, 0, (struct sockaddr *)&from, fl);
	}
}
"""


def host_address():
    """The host's first global IPv4 address (connecting to it stays on the machine)."""
    for link in json.loads(sh("ip", "-4", "-j", "addr").stdout):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                return a["local"]
    raise AssertionError("the host has no global IPv4 address to test published ports on")


def free_port():
    """A TCP port below the ephemeral range that nothing on the host listens on."""
    import random
    for _ in range(100):
        p = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", p))
                return p
            except OSError:
                continue
    raise AssertionError("no free port")


def fetch(addr, port, path="/", source=None, timeout=3):
    """HTTP/1.0 GET from the host (from source's address if given): the body."""
    with socket.socket() as s:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((addr, port))
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    if b"\n\n" in head:  # busybox's CGI header ends with a bare \n\n
        head, _, body = data.partition(b"\n\n")
    assert b" 200 " in head.split(b"\n")[0], data
    return body.decode()


def unmapped(addr):
    return addr.strip().removeprefix("[").removesuffix("]").removeprefix("::ffff:")


@pytest.fixture
def www(tmp):
    d = tmp / "www"
    (d / "cgi-bin").mkdir(parents=True)
    (d / "index.html").write_text("hello from hutch\n")
    (d / "cgi-bin" / "ip").write_text(CGI_IP)
    (d / "cgi-bin" / "ip").chmod(0o755)
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def net(hutch, ctr):
    """A fresh network (removed after, with whatever a failed test left on it)."""
    made = []

    def make(name=None, *flags):
        name = name or f"rl{uuid.uuid4().hex[:8]}"
        hutch("network", "create", *flags, name)
        made.append(name)
        return name
    yield make
    ctr.cleanup()
    ctr.refs.clear()
    for n in made:
        hutch("network", "rm", n, check=False)


def fetch_once_up(addr, port, path="/", source=None, timeout=10):
    """fetch, once the server has started listening: `run -d` returns when httpd is
    exec'd, a moment before it binds its port (a reset or refusal until then)."""
    def attempt():
        try:
            return fetch(addr, port, path, source)
        except (ConnectionResetError, ConnectionRefusedError):
            return None
    return wait_for(attempt, timeout=timeout, interval=0.05,
                    what=f"{addr}:{port} to answer")


def httpd(ctr, network, www, *extra, name=None):
    return ctr.run("--network", network, *extra, "-v", f"{www}:/www:ro", "bb", "httpd", "-f",
                   "-p", "80", "-h", "/www", name=name)


def wait_gone(state, pids, timeout=10):
    wait_for(lambda: not any(p and alive(p) for p in pids), timeout=timeout, interval=0.05,
             what=f"processes {pids} to go")
    wait_for(lambda: not rl_dir(state).exists(), timeout=timeout, interval=0.05,
             what=f"{rl_dir(state)} to go")


if ROOT:
    @pytest.fixture
    def as_nobody(state, tmp):
        """A rootless hutch (as nobody, which has no subordinate ids: one id mapped)
        run inside a network namespace "host" of the test's, joined by a veth to a
        second one, "other" (10.77.0.2), acting as another host; "host" is 10.77.0.1
        with its default route via "other", so pasta has a way out that leaves
        nothing but these namespaces."""
        import pwd
        import shutil
        import tempfile
        nobody = pwd.getpwnam("nobody")
        tag = uuid.uuid4().hex[:6]
        host, other = f"hutch-rl-h-{tag}", f"hutch-rl-o-{tag}"
        home = Path(tempfile.mkdtemp(prefix="hutch-rl-nobody-"))
        home.chmod(0o755)
        shutil.copy(state.bb_tar, home / "bb.tar")
        shutil.copy(state.bin, home / "hutch")
        www = home / "www"
        (www / "cgi-bin").mkdir(parents=True)
        (www / "index.html").write_text("hello from hutch\n")
        (www / "cgi-bin" / "ip").write_text(CGI_IP)
        (www / "cgi-bin" / "ip").chmod(0o755)
        for p in [home, *home.rglob("*")]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        sh("ip", "netns", "add", host)
        sh("ip", "netns", "add", other)
        sh("ip", "-n", host, "link", "add", "vh", "type", "veth", "peer", "name", "vo",
           "netns", other)
        for ns, dev, addr in ((host, "vh", "10.77.0.1/24"), (other, "vo", "10.77.0.2/24")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", host, "route", "add", "default", "via", "10.77.0.2")
        root = home / "state"

        def h(*args, check=True):
            cp = subprocess.run(
                ["nsenter", f"--net=/run/netns/{host}", "setpriv", f"--reuid={nobody.pw_uid}",
                 f"--regid={nobody.pw_gid}", "--clear-groups", str(home / "hutch"), "--root",
                 str(root), *args], capture_output=True, text=True, timeout=60, cwd=home,
                env={"PATH": os.environ["PATH"], "HOME": str(home)})
            if check and cp.returncode != 0:
                raise AssertionError(f"exit {cp.returncode}: {args}\n{cp.stdout}\n{cp.stderr}")
            return cp
        h.home, h.www, h.host, h.other, h.root = home, www, host, other, root
        h("image", "import", "bb.tar", "bb")
        yield h
        for ref in h("ps", "-aq", check=False).stdout.split():
            h("rm", "-f", ref, check=False)
        for name in h("network", "ls", "-q", check=False).stdout.split():
            h("network", "rm", name, check=False)
        for f in ("holder", "pasta"):  # whatever a failed test left
            try:
                os.kill(int((root / "run" / "rootless-netns" / f).read_text().split()[0]),
                        signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        sh("ip", "netns", "del", host, check=False)
        sh("ip", "netns", "del", other, check=False)
        subprocess.run(["rm", "-rf", str(home)])

    def test_rootless_network_from_another_host(as_nobody):
        """Run rootless (as nobody, one id mapped) in a namespace of the test's: a
        published port reached from another host sees that host's address; a
        container reaches a server on that other host through pasta; nothing is
        left after the last container."""
        h = as_nobody
        h("network", "create", "n")
        cid = h("run", "-d", "--network", "n", "-p", "20480:80", "-v", f"{h.www}:/www:ro",
                "bb", "httpd", "-f", "-p", "80", "-h", "/www").stdout.strip()
        got = wait_for(lambda: (lambda cp: cp.stdout if cp.returncode == 0 else None)(
            sh("ip", "netns", "exec", h.other, "timeout", "3", BUSYBOX, "wget", "-qO-",
               "http://10.77.0.1:20480/cgi-bin/ip", check=False)),
            what="the published port from the other host")
        assert unmapped(got) == "10.77.0.2", got
        # the way out: a server on the other host sees the host's address (pasta's)
        server = subprocess.Popen(
            ["ip", "netns", "exec", h.other, "python3", "-c",
             "import socket\ns = socket.socket(); s.bind(('10.77.0.2', 20481)); s.listen()\n"
             "print('ready', flush=True)\nc, a = s.accept(); c.sendall(b'seen ' + "
             "a[0].encode() + b'\\n'); c.close()"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline() == "ready\n"
            out = h("run", "--rm", "--network", "n", "bb", "sh", "-c",
                    "timeout 5 nc 10.77.0.2 20481 </dev/null | head -n 1", check=False).stdout
            assert out == "seen 10.77.0.1\n", out
        finally:
            server.kill()
            server.wait()
        holder, pasta = (int((h.root / "run" / "rootless-netns" / f).read_text().split()[0])
                         for f in ("holder", "pasta"))
        h("rm", "-f", cid)
        h("network", "rm", "n")
        wait_for(lambda: not alive(holder) and not alive(pasta), what="holder and pasta to go")
        assert not (h.root / "run" / "rootless-netns").exists()

    def test_rootless_ipv6_network_from_another_host(as_nobody):
        """A rootless network with --ipv6: pasta gives the namespace IPv6 (a ULA /64
        of its tap's), containers get IPv6 addresses and routes, a port published on
        every address (and one on [::] only) is reached over IPv6 from another host
        with its address kept, and a container reaches that host over IPv6."""
        h = as_nobody
        sh("ip", "-n", h.host, "addr", "add", "fd77::1/64", "dev", "vh", "nodad")
        sh("ip", "-n", h.other, "addr", "add", "fd77::2/64", "dev", "vo", "nodad")
        sh("ip", "-n", h.host, "-6", "route", "add", "default", "via", "fd77::2")
        h("network", "create", "--ipv6", "n6")
        web = h("run", "-d", "--network", "n6", "-p", "20490:80", "-v", f"{h.www}:/www:ro",
                "bb", "httpd", "-f", "-p", "80", "-h", "/www").stdout.strip()
        only6 = h("run", "-d", "--network", "n6", "-p", "[::]:20492:80", "-v",
                  f"{h.www}:/www:ro", "bb", "httpd", "-f", "-p", "80", "-h",
                  "/www").stdout.strip()
        one6 = h("run", "-d", "--network", "n6", "-p", "[fd77::1]:20493:80", "-v",
                 f"{h.www}:/www:ro", "bb", "httpd", "-f", "-p", "80", "-h",
                 "/www").stdout.strip()
        info = json.loads(h("network", "inspect", "n6").stdout)[0]
        assert info["ipv6"] is True and info["subnet6"].startswith("fd"), info
        [m] = [m for m in info["members"] if m["id"] == web]

        def other_get(url):
            cp = sh("ip", "netns", "exec", h.other, "timeout", "3", BUSYBOX, "wget", "-qO-",
                    url, check=False)
            return cp.stdout if cp.returncode == 0 else None
        got = wait_for(lambda: other_get("http://[fd77::1]:20490/cgi-bin/ip"),
                       what="the published port over IPv6 from the other host")
        assert unmapped(got) == "fd77::2", got
        got = wait_for(lambda: other_get("http://[fd77::1]:20492/cgi-bin/ip"),
                       what="the [::] port over IPv6 from the other host")
        assert unmapped(got) == "fd77::2", got
        assert other_get("http://10.77.0.1:20492/") is None  # [::]: no IPv4
        got = wait_for(lambda: other_get("http://[fd77::1]:20493/cgi-bin/ip"),
                       what="the port on one IPv6 address from the other host")
        assert unmapped(got) == "fd77::2", got
        assert "hello" in other_get("http://10.77.0.1:20490/")  # every address: IPv4 too
        # container to container over IPv6, its route via the IPv6 gateway
        out = h("run", "--rm", "--network", "n6", "bb", "sh", "-c",
                f"ip -6 route; timeout 5 wget -qO- http://[{m['address6']}]/").stdout
        assert f"default via {info['gateway6']} dev eth0" in out, out
        assert "hello from hutch" in out, out
        # the way out over IPv6: the other host sees the host's address (pasta's)
        server = subprocess.Popen(
            ["ip", "netns", "exec", h.other, "python3", "-c",
             "import socket\ns = socket.socket(socket.AF_INET6)\n"
             "s.bind(('fd77::2', 20491)); s.listen()\n"
             "print('ready', flush=True)\nc, a = s.accept(); c.sendall(b'seen ' + "
             "a[0].encode() + b'\\n'); c.close()"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline() == "ready\n"
            out = h("run", "--rm", "--network", "n6", "bb", "sh", "-c",
                    "timeout 5 nc fd77::2 20491 </dev/null | head -n 1", check=False).stdout
            assert out == "seen fd77::1\n", out
        finally:
            server.kill()
            server.wait()
        holder, pasta = (int((h.root / "run" / "rootless-netns" / f).read_text().split()[0])
                         for f in ("holder", "pasta"))
        h("rm", "-f", web, only6, one6)
        h("network", "rm", "n6")
        wait_for(lambda: not alive(holder) and not alive(pasta), what="holder and pasta to go")
        assert not (h.root / "run" / "rootless-netns").exists()

    def test_rootful_networks_make_no_rootless_namespace(hutch, state, ctr):
        """As root a network is the host's bridge (test_network.py, in namespaces of
        the test's there): the rootless holder, pasta and their files are never made.
        Here only what needs no bridge: a network made and removed."""
        name = f"rf{uuid.uuid4().hex[:8]}"
        hutch("network", "create", name)
        assert json.loads(hutch("network", "inspect", name).stdout)[0]["members"] == []
        hutch("network", "rm", name)
        assert not rl_dir(state).exists()
        assert holder_and_pasta(state) == [None, None]
else:
    def test_two_containers_on_one_network(hutch, state, ctr, net, www):
        """The bridge in the rootless namespace, a veth into each container's own
        namespace: one reaches the other by address; exec works in such a container."""
        n = net()
        web = httpd(ctr, n, www, name=f"web{uuid.uuid4().hex[:6]}")
        info = json.loads(hutch("network", "inspect", n).stdout)[0]
        assert [m["id"] for m in info["members"]] == [web]
        addr = info["members"][0]["address"]
        assert addr.startswith(info["subnet"].rsplit(".", 1)[0] + "."), info
        holder, pasta = holder_and_pasta(state)
        assert holder and alive(holder) and pasta and alive(pasta)
        # the bridge is not the host's: the user's namespace has it
        assert not os.path.exists(f"/sys/class/net/{info['bridge']}")
        out = hutch("run", "--rm", "--network", n, "bb", "sh", "-c",
                    f"ip -4 -o addr show eth0; wget -qO- http://{addr}/").stdout
        assert "hello from hutch" in out, out
        assert f"inet {info['subnet'].rsplit('.', 1)[0]}." in out, out
        # the container's namespace is its own (a child of the holder's user
        # namespace), so exec joins it as any other
        assert "hello from hutch" in hutch("exec", web, "wget", "-qO-",
                                           "http://127.0.0.1/").stdout
        # one default route, via the network's gateway
        routes = hutch("exec", web, "ip", "route").stdout
        assert f"default via {info['gateway']} dev eth0" in routes, routes
        # every link in the rootless namespace has pasta's tap's MTU: its tap path
        # (outbound, ports reached by the host's other addresses) costs per frame
        assert "mtu 65520" in hutch("exec", web, "ip", "link", "show", "eth0").stdout
        inside = ["nsenter", "-U", "-n", "--preserve-credentials", "-t", str(holder)]
        links = subprocess.run([*inside, "ip", "-o", "link"], capture_output=True,
                               text=True, check=True).stdout
        for dev in (info["bridge"], "pasta0"):
            [line] = [l for l in links.splitlines() if f" {dev}" in l.split(":")[1] + " "]
            assert " mtu 65520 " in line, line
        # and bridged frames skip the namespace's ip rules (br_netfilter off there;
        # the sysctl exists when the host has the module loaded)
        brnf = "/proc/sys/net/bridge/bridge-nf-call-iptables"
        if os.path.exists(brnf):
            val = subprocess.run([*inside, "cat", brnf], capture_output=True, text=True,
                                 check=True).stdout
            assert val.strip() == "0", val

    def test_outbound_through_pasta(hutch, state, tmp, net):
        """The way out: a server in a network namespace of the test's (its own pasta
        puts it behind a port of the host's address) is reached from a container,
        through hutch's pasta; the host's loopback is not (pasta --no-map-gw)."""
        n = net()
        host = host_address()
        port = free_port()
        log = tmp / "server.log"
        serve = ("import socket,sys\n"
                 "s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen()\n"
                 "open(sys.argv[2], 'w').write('ready')\n"
                 "c, a = s.accept(); c.sendall(b'from-test-namespace\\n'); c.close()\n")
        server = subprocess.Popen(
            ["pasta", "--config-net", "--quiet", "--foreground", "--ipv4-only",
             "-t", f"{host}/{port}", "-u", "none", "-T", "none", "-U", "none", "--",
             "python3", "-c", serve, str(port), str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: log.exists(), what="the test's server")
            out = hutch("run", "--rm", "--network", n, "bb", "sh", "-c",
                        f"timeout 5 nc {host} {port} </dev/null | head -n 1",
                        check=False).stdout
            assert "from-test-namespace" in out, out
        finally:
            server.kill()
            server.wait()
        # the host's loopback is not the container's
        lo_port = free_port()
        with socket.socket() as lo:
            lo.bind(("127.0.0.1", lo_port))
            lo.listen()
            lo.settimeout(0.5)
            gw = "169.254.89.1"
            hutch("run", "--rm", "--network", n, "bb", "sh", "-c",
                  f"nc -w 1 {gw} {lo_port} </dev/null; nc -w 1 127.0.0.1 {lo_port} </dev/null",
                  check=False)
            with pytest.raises(socket.timeout):
                lo.accept()

    def test_published_port_keeps_the_clients_address(hutch, state, ctr, net, www):
        """-p through pasta: a client from the host's address is seen with that
        address; the host's loopback as the network's gateway (as rootful); a second
        container published later leaves the first one's port answering."""
        n = net()
        host = host_address()
        p1, p2 = free_port(), free_port()
        httpd(ctr, n, www, "-p", f"{p1}:80")
        gateway = json.loads(hutch("network", "inspect", n).stdout)[0]["gateway"]
        assert unmapped(fetch_once_up(host, p1, "/cgi-bin/ip", source=host)) == host
        assert unmapped(fetch("127.0.0.1", p1, "/cgi-bin/ip")) == gateway
        httpd(ctr, n, www, "-p", f"{p2}:80")
        assert fetch_once_up("127.0.0.1", p2) == "hello from hutch\n"
        assert fetch("127.0.0.1", p1) == "hello from hutch\n"
        assert unmapped(fetch(host, p2, "/cgi-bin/ip", source=host)) == host
        # a port already published is refused, naming who has it
        cp = hutch("run", "--rm", "--network", n, "-p", f"{p1}:80", "bb", "true", check=False)
        assert cp.returncode == 125 and f"port {p1}/tcp is already published" in cp.stderr, cp

    def test_published_udp_port_keeps_the_clients_address(hutch, state, ctr, net, tmp):
        """-p PORT/udp through pasta's -u: a datagram from the host's address reaches
        the container's server (a static UDP echo: busybox's nc has no -u here),
        which answers with the address it saw: the client's."""
        n = net()
        host = host_address()
        p = free_port()
        d = tmp / "udpecho"
        d.mkdir()
        (d / "udpecho.c").write_text(UDP_ECHO_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "udpecho"), str(d / "udpecho.c")],
                       check=True, capture_output=True)
        os.chmod(tmp, 0o755)
        os.chmod(d, 0o755)
        ctr.run("--network", n, "-p", f"{p}:53/udp", "-v", f"{d}:/u:ro", "bb", "/u/udpecho",
                "53")

        def ask():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.5)
                s.bind((host, 0))
                s.sendto(b"hi\n", (host, p))
                try:
                    return s.recv(512).decode()
                except socket.timeout:
                    return None
        got = wait_for(ask, timeout=10, interval=0.1, what=f"udp {host}:{p} to answer")
        assert got.strip() == f"from {host}", got

    def test_port_published_on_one_address_only(hutch, state, ctr, net, www):
        """-p 127.0.0.1:PORT:80: pasta binds the port on 127.0.0.1 only (its
        ADDR/PORT spec): it answers there and not on the host's other address."""
        n = net()
        host = host_address()
        p = free_port()
        httpd(ctr, n, www, "-p", f"127.0.0.1:{p}:80")
        assert fetch_once_up("127.0.0.1", p) == "hello from hutch\n"
        with pytest.raises(ConnectionRefusedError):
            fetch(host, p)

    def test_nothing_left_after_the_last_container(hutch, state, ctr, net, www):
        n = net()
        p = free_port()
        web = httpd(ctr, n, www, "-p", f"{p}:80")
        holder, pasta = holder_and_pasta(state)
        assert holder and pasta
        # a foreground run on the same network comes and goes: the namespace stays
        hutch("run", "--rm", "--network", n, "bb", "true")
        assert alive(holder) and alive(pasta)
        hutch("rm", "-f", web)
        wait_gone(state, [holder, pasta])
        assert not (state.root / "run" / "nft-hutch.rules").exists()
        with pytest.raises(OSError):
            fetch("127.0.0.1", p, timeout=1)
        # a --rm run alone: made and gone with it
        hutch("run", "--rm", "--network", n, "bb", "true")
        assert not rl_dir(state).exists()
        hutch("network", "rm", n)
        assert hutch("network", "ls", "-q").stdout.split().count(n) == 0
        assert not rl_dir(state).exists()

    def test_a_crash_is_cleaned_by_the_next_command(hutch, state, spawn, net):
        """hutch killed while its container runs: the holder, pasta and the member
        stay until the next network command, which takes them."""
        n = net()
        p = spawn("run", "--rm", "--network", n, "bb", "sleep", "300")
        wait_for(lambda: json.loads(hutch("network", "inspect", n).stdout)[0]["members"],
                 what="the container on the network")
        holder, pasta = holder_and_pasta(state)
        assert holder and pasta
        p.send_signal(signal.SIGKILL)  # hutch itself: its container dies with it
        p.wait()
        hutch("ps", "-a")  # the runtime's own record of it is reconciled
        info = wait_for(
            lambda: (lambda i: i if not i["members"] else None)(
                json.loads(hutch("network", "inspect", n).stdout)[0]),
            what="the member to be cleaned")
        assert info["members"] == []
        wait_gone(state, [holder, pasta])

    def test_a_killed_holder_is_replaced(hutch, state, ctr, net, www):
        n = net()
        hutch("run", "--rm", "--network", n, "bb", "true")
        web = httpd(ctr, n, www)
        holder, pasta = holder_and_pasta(state)
        os.kill(holder, signal.SIGKILL)
        wait_for(lambda: not alive(holder), what="the holder to die")
        hutch("rm", "-f", web)
        # the next run makes a new namespace, and nothing of the old one is left
        out = hutch("run", "--rm", "--network", n, "bb", "ip", "-4", "-o", "addr").stdout
        assert "eth0" in out, out
        wait_gone(state, [holder, pasta])

    def test_start_again_is_refused_saying_why(hutch, state, ctr, net):
        """Its network went when it exited: start says so rather than starting it
        without one."""
        n = net()
        name = f"once{uuid.uuid4().hex[:6]}"
        ctr.run("--network", n, "bb", "true", name=name)
        ctr.wait_exited(name)
        cp = hutch("start", name, check=False)
        assert cp.returncode != 0, cp
        assert f"cannot start again: it was on network '{n}'" in cp.stderr, cp.stderr
        assert ctr.status(name) == "exited"
