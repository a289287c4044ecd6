"""A rootless stack's networks (supervisor/stacknet.c, net/rootless.c; docs/network.md
"Stacks" and "Rootless"): replicas on bridges in the user's rootless network namespace,
services by name through the supervisor's DNS server (its sockets bound in that namespace,
served from outside it), published ports through pasta with the client's address kept,
and nothing left after `down`, also after the supervisor was killed.

Network safety (shared/DESIGN.md): an unprivileged user cannot touch the host's links or
firewall; the stack's bridges, veths and nft table are in the rootless namespace hutch
makes. Names not the stack's are forwarded to a fake upstream the test starts on the
host's loopback; published ports are reached from the host's own addresses. No packet
leaves the machine.

As root, stacks are rootful (test_stack_net.py): the root run runs a rootless hutch as
nobody inside network namespaces of its own ("host" and "other", another host), as
test_network_rootless.py does.
"""
import json
import os
import random
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_for

ROOT = os.geteuid() == 0
CGI_IP = '#!/bin/sh\necho "Content-type: text/plain"\necho\necho "$REMOTE_ADDR"\n'


def alive(pid):
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except OSError:
        return False


def rl_pids(state):
    """The holder's and pasta's pids hutch recorded (None when not there)."""
    got = []
    for f in ("holder", "pasta"):
        try:
            got.append(int((state.root / "run" / "rootless-netns" / f).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            got.append(None)
    return got


def host_address():
    """The host's first global IPv4 address (connecting to it stays on the machine)."""
    import subprocess
    out = subprocess.run(["ip", "-4", "-j", "addr"], capture_output=True, text=True).stdout
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                return a["local"]
    raise AssertionError("the host has no global IPv4 address to test published ports on")


def unmapped(addr):
    return addr.strip().removeprefix("[").removesuffix("]").removeprefix("::ffff:")


def free_port():
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


class FakeUpstream:
    """A resolver on the host's loopback: A 192.0.2.77 for any name, the names asked kept."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.asked = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            off, labels = 12, []
            while off < len(q) and q[off]:
                labels.append(q[off + 1:off + 1 + q[off]].decode(errors="replace"))
                off += 1 + q[off]
            self.asked.append(".".join(labels).lower())
            rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + \
                socket.inet_aton("192.0.2.77")
            self.sock.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) +
                             q[12:off + 5] + rr, peer)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class Stack:
    def __init__(self, hutch, base, text):
        self.run = hutch
        self.name = f"rs{random.randrange(16**6):06x}"
        self.dir = Path(base) / self.name
        self.dir.mkdir(parents=True)
        self.file = self.dir / "hutch.ini"
        self.file.write_text("\n".join(l.strip() for l in
                                       text.replace("STACK", self.name).splitlines()).lstrip())

    def hutch(self, *args, **kw):
        return self.run(*args, cwd=self.dir, **kw)

    def up(self, **kw):
        return self.hutch("up", "-d", "--wait", "-f", self.file, timeout=60, **kw)

    def down(self, **kw):
        return self.hutch("down", "-t", "0", "-f", self.file, timeout=60, **kw)

    def network(self, key="default"):
        return json.loads(self.hutch("network", "inspect", f"{self.name}_{key}").stdout)[0]

    def addresses(self, service, key="default"):
        pre = f"{self.name}-{service}-"
        return sorted(m["address"] for m in self.network(key)["members"]
                      if m["name"].startswith(pre))

    def sh(self, container, script, check=False):
        return self.hutch("exec", f"{self.name}-{container}", "sh", "-c", script, check=check)

    def wget(self, container, url):
        cp = self.sh(container, f"timeout 5 wget -qO- {url}")
        return cp.stdout if cp.returncode == 0 else None

    def lookup(self, container, name):
        """nslookup NAME in the container: the addresses answered (none: [])."""
        cp = self.sh(container, f"nslookup {name}")
        out = cp.stdout.split("Name:", 1)
        if cp.returncode != 0 or len(out) < 2:
            return []
        return sorted(l.split()[-1] for l in out[1].splitlines() if l.startswith("Address"))

    def supervisor(self):
        for l in self.hutch("stack", "ls", "--format", "json").stdout.splitlines():
            e = json.loads(l)
            if e.get("name") == self.name and isinstance(e.get("supervisor"), int) \
                    and e["supervisor"] > 0:
                return e["supervisor"]
        return None


def leftovers(st, state, pids):
    """What the rootless stack st left: its networks, supervisors and keepers, and,
    when no other network has a container on it, the rootless namespace's processes
    and files (the rules' record with them)."""
    nets = state.root / "networks"
    found = [f"network {n}" for n in (os.listdir(nets) if nets.exists() else [])
             if n.startswith(st.name)]
    others = [json.loads(l) for l in
              st.hutch("network", "ls", "--format", "json").stdout.splitlines()]
    if not any(n["members"] for n in others):
        found += [f"process {p}" for p in pids if p and alive(p)]
        run = state.root / "run"
        for f in ("rootless-netns", "nft-hutch.rules", "ip-forward-by-hutch"):
            if (run / f).exists():
                found.append(f"run/{f}")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if alive(d) and str(state.root) in cmd and st.name in cmd and "pytest" not in cmd:
            found.append(f"process {d}: {cmd}")
    return found


if not ROOT:
    @pytest.fixture
    def upstream():
        u = FakeUpstream()
        yield u
        u.close()

    @pytest.fixture
    def make(hutch, tmp):
        made = []

        def mk(text):
            st = Stack(hutch, tmp, text)
            made.append(st)
            return st
        yield mk
        for st in made:
            st.down(check=False)

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

    HOSTNAME_HTTPD = ('command = "sh -c \'hostname > /www/index.html; '
                      'exec httpd -f -p 80 -h /www\'"\ntmpfs = /www\ninit = true')

    def test_rootless_services_by_name_dns_and_published_port(make, upstream, www, state):
        port = free_port()
        st = make(f"""
            [stack]
            name = STACK
            dns_upstream = 127.0.0.1:{upstream.port}

            [service.web]
            image = bb
            command = httpd -f -p 80 -h /www
            init = true
            volumes = {www}:/www:ro
            aliases = www
            ports = {port}:80

            [service.api]
            image = bb
            {HOSTNAME_HTTPD}
            replicas = 2

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        net = st.network()
        gw = net["gateway"]
        assert net["owner"] == f"stack {st.name}"
        # the bridge is in the rootless namespace, not the host's
        assert not os.path.exists(f"/sys/class/net/{net['bridge']}")
        holder, pasta = rl_pids(state)
        assert holder and alive(holder) and pasta and alive(pasta)
        [web] = st.addresses("web")
        apis = st.addresses("api")
        assert len(apis) == 2
        # by address, then by name through the stack's DNS server (on the gateway)
        assert "nameserver " + gw in st.sh("cli-1", "cat /etc/resolv.conf").stdout
        assert st.wget("cli-1", f"http://{web}/") == "hello from hutch\n"
        assert wait_for(lambda: st.wget("cli-1", "http://web/"), what="web by name")
        assert st.wget("cli-1", f"http://web.{st.name}/") == "hello from hutch\n"
        assert st.wget("cli-1", "http://www/") == "hello from hutch\n"
        assert st.lookup("cli-1", "web") == [web]
        assert st.lookup("cli-1", f"{st.name}-web-1") == [web]
        assert st.lookup("cli-1", "api") == apis
        assert st.lookup("cli-1", f"api.{st.name}") == apis
        # the client's address seen by the server: the replica's own
        seen = st.wget("api-1", "http://web/cgi-bin/ip")
        assert seen and unmapped(seen) in apis, seen
        # under the stack's name an unknown one is NXDOMAIN, never forwarded; the
        # rest goes to the upstream
        out = st.sh("cli-1", f"nslookup nope.{st.name}")
        assert out.returncode != 0 and "NXDOMAIN" in out.stdout + out.stderr, out
        assert set(st.lookup("cli-1", "example.test")) == {"192.0.2.77"}
        assert "example.test" in upstream.asked
        assert not any(st.name in n for n in upstream.asked), upstream.asked
        # the published port through pasta: the client's address is kept
        host = host_address()
        assert wait_for(lambda: fetch(host, port, "/cgi-bin/ip", source=host),
                        what="the published port") and \
            unmapped(fetch(host, port, "/cgi-bin/ip", source=host)) == host
        assert fetch("127.0.0.1", port) == "hello from hutch\n"
        # restarted: the same addresses, found by name again
        st.hutch("stack", "restart", "-f", st.file, "api", timeout=60)
        ids = lambda: {f"{m['id'][:12]}\n" for m in st.network()["members"]
                       if m["name"].startswith(f"{st.name}-api-")}
        wait_for(lambda: st.addresses("api") == apis and len(ids()) == 2 and
                 {st.wget("cli-1", f"http://{a}/") for a in apis} == ids(),
                 timeout=20, what="api back at its addresses")
        assert st.lookup("cli-1", "api") == apis
        st.down()
        wait_for(lambda: not leftovers(st, state, [holder, pasta]), what="nothing left after down")
        with pytest.raises(OSError):
            fetch("127.0.0.1", port, timeout=1)

    def test_rootless_networks_internal_and_aliases(make, upstream, state):
        st = make(f"""
            [stack]
            name = STACK
            dns_upstream = 127.0.0.1:{upstream.port}

            [network.back]
            internal = true

            [service.db]
            image = bb
            {HOSTNAME_HTTPD}
            networks = back:store

            [service.app]
            image = bb
            command = sleep 1000
            networks = default back

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        [db] = st.addresses("db", "back")
        assert st.network("back")["internal"] is True
        # app is on both: db by name and by its alias on back
        assert st.lookup("app-1", "db") == [db]
        assert st.lookup("app-1", "store") == [db]
        assert st.wget("app-1", "http://store/")
        # cli is on the default network alone: neither the name nor the address
        assert st.lookup("cli-1", f"db.{st.name}") == []
        assert st.wget("cli-1", f"http://{db}/") is None
        st.down()
        wait_for(lambda: not leftovers(st, state, []), what="nothing left after down")

    def test_rootless_stack_ipv6(make, upstream, state):
        """ipv6 = true, rootless: the services get IPv6 addresses in the rootless
        namespace, reach each other over IPv6, and the stack's DNS answers AAAA on the
        IPv4 gateway and on the IPv6 one (its sockets bound there by the helper)."""
        st = make(f"""
            [stack]
            name = STACK
            dns_upstream = 127.0.0.1:{upstream.port}

            [network.default]
            ipv6 = true

            [service.web]
            image = bb
            {HOSTNAME_HTTPD}

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        net = st.network()
        assert net["ipv6"] is True and net["subnet6"].startswith("fd"), net
        [web] = [m for m in net["members"] if m["name"] == f"{st.name}-web-1"]
        gw6 = net["gateway6"]
        out = st.sh("cli-1", f"ip -6 route; nslookup -type=AAAA web; "
                    f"nslookup -type=AAAA web.{st.name} {gw6}").stdout
        assert f"default via {gw6} dev eth0" in out, out
        assert out.count(f"Address: {web['address6']}") == 2, out
        assert f"Server:\t\t{gw6}" in out, out
        assert st.wget("cli-1", f"http://[{web['address6']}]/")
        st.down()
        wait_for(lambda: not leftovers(st, state, []), what="nothing left after down")

    def test_rootless_killed_supervisor_then_down_leaves_nothing(make, upstream, state):
        port = free_port()
        st = make(f"""
            [stack]
            name = STACK
            dns_upstream = 127.0.0.1:{upstream.port}

            [service.web]
            image = bb
            {HOSTNAME_HTTPD}
            ports = {port}:80

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        holder, pasta = rl_pids(state)
        assert holder and pasta
        assert wait_for(lambda: st.wget("cli-1", "http://web/"), what="web by name")
        # `up` again: a new supervisor takes the stack and its DNS port over
        old = st.supervisor()
        st.up()
        assert st.supervisor() != old
        assert wait_for(lambda: st.wget("cli-1", "http://web/"), what="web by name, new one")
        sup = st.supervisor()
        os.kill(sup, signal.SIGKILL)
        wait_for(lambda: not alive(sup), what="the supervisor to die")
        # up again takes the stack over, its DNS server in the same namespace
        st.up()
        assert wait_for(lambda: st.wget("cli-1", "http://web/"), what="web by name again")
        assert fetch("127.0.0.1", port)
        sup = st.supervisor()
        _, pasta2 = rl_pids(state)
        os.kill(sup, signal.SIGKILL)
        wait_for(lambda: not alive(sup), what="the supervisor to die")
        st.down()
        wait_for(lambda: not leftovers(st, state, [holder, pasta, pasta2]),
                 what="nothing left after down")

    def test_rootless_ports_with_address_and_udp(hutch, tmp):
        """A service's ports with a host address or /udp are published rootless too
        (pasta's -t ADDR/PORT and -u): the stack is checked and comes up."""
        f = tmp / "hutch.ini"
        f.write_text("[stack]\nname = rl\n\n[service.web]\nimage = bb\ncommand = sleep 60\n"
                     "ports = 127.0.0.1:18080:80\n\n[service.dns]\nimage = bb\n"
                     "command = sleep 60\nports = 18053:53/udp\n")
        try:
            cp = hutch("up", "-d", "-f", f, check=False, cwd=tmp)
            assert cp.returncode == 0, cp.stderr
            assert "only TCP ports" not in cp.stderr
        finally:
            hutch("down", "-f", f, check=False, cwd=tmp)
else:
    # as root: a rootless hutch run as nobody inside namespaces the test makes
    # (test_network_rootless.py's as_nobody: "host" 10.77.0.1, "other" 10.77.0.2)
    import subprocess

    from test_network_rootless import as_nobody  # noqa: F401 (a fixture)
    from test_stack_net import FAKE_UPSTREAM

    def test_rootless_stack_from_another_host(as_nobody):
        """A rootless stack: a service reached by name, a name forwarded to an upstream
        on the other host, the published port reached from the other host with its
        address seen; down leaves nothing."""
        h = as_nobody
        log = h.home / "upstream.log"
        up = subprocess.Popen(["ip", "netns", "exec", h.other, "python3", "-c", FAKE_UPSTREAM,
                               "10.77.0.2", str(log)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: Path(f"{log}.ready").exists(), what="the fake upstream")
            d = h.home / "stk"
            d.mkdir()
            f = d / "hutch.ini"
            f.write_text("[stack]\nname = rlh\ndns_upstream = 10.77.0.2\n\n"
                         "[service.web]\nimage = bb\ninit = true\n"
                         f"command = httpd -f -p 80 -h /www\nvolumes = {h.www}:/www:ro\n"
                         "ports = 20482:80\n\n"
                         "[service.cli]\nimage = bb\ncommand = sleep 1000\n")
            for p in (d, f):
                os.chown(p, h.home.stat().st_uid, h.home.stat().st_gid)
            h("up", "-d", "--wait", "-f", f)
            get = lambda: (lambda cp: cp.stdout if cp.returncode == 0 else None)(
                subprocess.run(["ip", "netns", "exec", h.other, "timeout", "3",
                                "/bin/busybox", "wget", "-qO-",
                                "http://10.77.0.1:20482/cgi-bin/ip"],
                               capture_output=True, text=True))
            got = wait_for(get, what="the published port from the other host")
            assert unmapped(got) == "10.77.0.2", got
            out = h("exec", "rlh-cli-1", "wget", "-qO-", "http://web/", check=False)
            assert out.stdout == "hello from hutch\n", out
            out = h("exec", "rlh-cli-1", "nslookup", "example.test", check=False).stdout
            assert "192.0.2.77" in out, out
            assert "example.test" in log.read_text().split()
            holder, pasta = (int((h.root / "run" / "rootless-netns" / n).read_text().split()[0])
                             for n in ("holder", "pasta"))
            h("down", "-t", "0", "-f", f)
            wait_for(lambda: not alive(holder) and not alive(pasta),
                     what="holder and pasta to go")
            assert not (h.root / "run" / "rootless-netns").exists()
            assert h("network", "ls", "-q").stdout.split() == []
        finally:
            up.kill()
            up.wait()
