"""A stack's own networks (supervisor/stacknet.c): services by name, the supervisor's DNS
server, published ports, internal networks, two stacks apart, restarts and crashes.

Network safety (shared/DESIGN.md): every test runs hutch (and so the stack's supervisor,
its bridges, veths, nft table and DNS server) inside a network namespace the test makes
(`ip netns add`, entered with nsenter --net only, so that the netns files hutch
bind-mounts stay in the host's mount namespace) and deletes after; "another host" is a
second namespace on a veth, and the upstream resolver is a fake one the test starts on a
veth address of the test namespace. No packet leaves them.

Rootless stacks are test_stack_net_rootless.py's.
"""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import wait_for

ROOT = os.geteuid() == 0
BUSYBOX = "/bin/busybox"
UPSTREAM = "10.250.0.53"

# A fake upstream resolver (run in the test namespace): A 192.0.2.77 for any name, each name asked logged to a file.
FAKE_UPSTREAM = r"""
import socket, struct, sys
addr, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
open(log + ".ready", "w").close()
while True:
    q, peer = s.recvfrom(4096)
    off, labels = 12, []
    while q[off]:
        labels.append(q[off + 1:off + 1 + q[off]].decode())
        off += 1 + q[off]
    with open(log, "a") as f:
        f.write(".".join(labels).lower() + "\n")
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("192.0.2.77")
    s.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + q[12:off + 5] + rr, peer)
"""


def sh(*cmd, check=True, **kw):
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=30, **kw)
    if check and cp.returncode != 0:
        raise AssertionError(f"exit {cp.returncode}: {cmd}\n{cp.stdout}\n{cp.stderr}")
    return cp


class NetNS:
    """A named network namespace of the test's, and hutch run inside it."""

    def __init__(self, state, tag):
        self.state = state
        self.name = f"hutch-t-{tag}-{uuid.uuid4().hex[:8]}"
        sh("ip", "netns", "add", self.name)
        self.path = f"/run/netns/{self.name}"
        self.ip("link", "set", "lo", "up")

    def cmd(self, *args):
        return ["nsenter", f"--net={self.path}", *[str(a) for a in args]]

    def run(self, *args, check=True, timeout=60, **kw):
        cp = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                            **kw)
        if check and cp.returncode != 0:
            raise AssertionError(f"exit {cp.returncode}: {args}\nstdout: {cp.stdout!r}\n"
                                 f"stderr: {cp.stderr!r}")
        return cp

    def ip(self, *args, **kw):
        return self.run("ip", *args, **kw)

    def hutch(self, *args, **kw):
        return self.run(self.state.bin, "--root", self.state.root, *args, **kw)

    def links(self):
        return {l["ifname"] for l in json.loads(self.ip("-j", "link").stdout)}

    def ruleset(self):
        return self.run("nft", "list", "ruleset").stdout

    def dig(self, server, *args, client=None):
        """dig +short: the answer's lines. client: a container's network namespace file
        to ask from (its address on the network), as the container would: the server
        answers its networks' clients only."""
        pre = ("nsenter", f"--net={client}") if client else ()
        out = self.run(*pre, "dig", "+short", "+time=2", "+tries=1", f"@{server}",
                       *args).stdout
        return [l for l in out.splitlines() if l and not l.startswith(";")]

    def dig_status(self, server, *args, client=None):
        pre = ("nsenter", f"--net={client}") if client else ()
        out = self.run(*pre, "dig", "+time=2", "+tries=1", f"@{server}", *args).stdout
        return out.split("status: ", 1)[1].split(",", 1)[0]

    def delete(self):
        sh("ip", "netns", "del", self.name, check=False)


class NetStack:
    """A stack file in a scratch dir and the CLI against it, inside ns."""

    def __init__(self, ns, base, text, name=None, compose=False):
        self.ns = ns
        self.name = name or f"sn{random.randrange(16**6):06x}"
        self.dir = Path(base) / self.name
        self.dir.mkdir(parents=True)
        self.file = self.dir / ("compose.yaml" if compose else "hutch.ini")
        text = text.replace("STACK", self.name)
        # an INI file's lines stand alone; YAML keeps its indentation
        text = textwrap.dedent(text) if compose else \
            "\n".join(l.strip() for l in text.splitlines())
        self.file.write_text(text.lstrip())

    def hutch(self, *args, **kw):
        return self.ns.hutch(*args, cwd=self.dir, **kw)

    def up(self, *extra, **kw):
        return self.hutch("up", "-d", "--wait", "-f", self.file, *extra, **kw)

    def down(self, **kw):
        return self.hutch("down", "-t", "0", "-f", self.file, **kw)

    def network(self, key="default"):
        out = self.hutch("network", "inspect", f"{self.name}_{key}").stdout
        return json.loads(out)[0]

    def addresses(self, service, key="default"):
        pre = f"{self.name}-{service}-"
        return sorted(m["address"] for m in self.network(key)["members"]
                      if m["name"].startswith(pre))

    def ids(self, service, key="default"):
        pre = f"{self.name}-{service}-"
        return [m["id"] for m in self.network(key)["members"] if m["name"].startswith(pre)]

    def netns_of(self, container, key="default"):
        """The network namespace file hutch made for a container of the stack."""
        [cid] = [m["id"] for m in self.network(key)["members"]
                 if m["name"] == f"{self.name}-{container}"]
        return self.ns.state.root / "run" / "netns" / cid

    def dig(self, *args, via="cli-1"):
        """dig from the container via's network namespace to the stack's DNS."""
        return self.ns.dig(self.network()["gateway"], *args, client=self.netns_of(via))

    def dig_status(self, *args, via="cli-1"):
        return self.ns.dig_status(self.network()["gateway"], *args,
                                  client=self.netns_of(via))

    def sh(self, container, script, check=True):
        return self.hutch("exec", f"{self.name}-{container}", "sh", "-c", script, check=check)

    def supervisor(self):
        for l in self.hutch("stack", "ls", "--format", "json").stdout.splitlines():
            e = json.loads(l)
            if e.get("name") == self.name and isinstance(e.get("supervisor"), int) \
                    and e["supervisor"] > 0:
                return e["supervisor"]
        return None


def wget(stack, container, url):
    cp = stack.sh(container, f"timeout 5 wget -qO- {url}", check=False)
    return cp.stdout if cp.returncode == 0 else None


def leftovers(ns, state, keep=("lo",)):
    """What hutch left in ns and on disk: links, the nft table, netns files,
    networks, processes naming the state root's stacks."""
    found = [f"link {l}" for l in ns.links() - set(keep)]
    if "table ip hutch" in ns.ruleset():
        found.append("nft table ip hutch")
    d = state.root / "run" / "netns"
    if d.exists() and os.listdir(d):
        found.append(f"netns files {os.listdir(d)}")
    nets = state.root / "networks"
    if nets.exists():
        found += [f"network {n}" for n in os.listdir(nets) if not n.startswith(".")]
    # a DNS server (a supervisor) still listening in the namespace
    found += [f"socket {l}" for l in ns.run("ss", "-Hlnup").stdout.splitlines()
              if ":53 " in l and "10.89." in l]
    # processes of hutch with its state root (supervisors, keepers)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            st = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if st != "Z" and str(state.root) in cmd and "pytest" not in cmd:
            found.append(f"process {d}: {cmd}")
    return found


if ROOT:
    @pytest.fixture
    def ns(state):
        made = []

        def make(tag="s"):
            n = NetNS(state, tag)
            made.append(n)
            return n
        first = make()
        first.more = make
        yield first
        # whatever a failed test left: containers, networks, then the namespaces
        for n in made:
            for ref in n.hutch("ps", "-aq", check=False).stdout.split():
                n.hutch("rm", "-f", ref, check=False)
        for name in first.hutch("network", "ls", "-q", check=False).stdout.split():
            first.hutch("network", "rm", name, check=False)
        for n in made:
            n.delete()

    @pytest.fixture
    def make(ns, tmp):
        made = []

        def mk(text, where=None, **kw):
            st = NetStack(where or ns, tmp, text, **kw)
            made.append(st)
            return st
        yield mk
        for st in made:  # before tmp goes
            st.down(check=False)

    @pytest.fixture
    def upstream(ns, tmp):
        """The fake upstream on UPSTREAM (a veth of the test namespace's own)."""
        ns.ip("link", "add", "world0", "type", "veth", "peer", "name", "world1")
        ns.ip("addr", "add", f"{UPSTREAM}/24", "dev", "world0")
        ns.ip("link", "set", "world0", "up")
        ns.ip("link", "set", "world1", "up")
        log = tmp / "upstream.log"
        p = subprocess.Popen(ns.cmd(sys.executable, "-c", FAKE_UPSTREAM, UPSTREAM, log),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: Path(f"{log}.ready").exists(), what="the fake upstream")
        yield log
        p.kill()
        p.wait()

    HTTPD = ('command = "sh -c \'hostname > /www/index.html; exec httpd -f -vv -p 80 -h /www\'"\n'
             "init = true")

    def test_services_by_name_dns_and_published_port(ns, make, upstream, state):
        st = make(f"""
            [stack]
            name = STACK
            dns_upstream = {UPSTREAM}

            [service.web]
            image = bb
            {HTTPD}
            tmpfs = /www
            aliases = www
            ports = 8080:80

            [service.api]
            image = bb
            {HTTPD}
            tmpfs = /www
            replicas = 2

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        net = st.network()
        gw = net["gateway"]
        assert net["owner"] == f"stack {st.name}" and net["internal"] is False
        assert net["subnet"].startswith("10.89.") and gw.endswith(".1")
        [web] = st.addresses("web")
        apis = st.addresses("api")
        assert len(apis) == 2
        # service to service, by name and by SERVICE.STACK, through the stack's DNS
        assert "nameserver " + gw in st.sh("cli-1", "cat /etc/resolv.conf").stdout
        assert wait_for(lambda: wget(st, "cli-1", "http://web/"), what="web by name")
        assert wget(st, "cli-1", f"http://web.{st.name}/")
        assert wget(st, "cli-1", "http://www/")
        # replicas: the one name gives both, each serving
        out = st.sh("cli-1", "nslookup api").stdout
        assert all(a in out for a in apis), out
        assert {wget(st, "cli-1", f"http://{a}/") for a in apis} == \
            {f"{c[:12]}\n" for c in st.ids("api")}
        # dig: names, SERVICE.STACK, alias, replicas, PTR, NXDOMAIN, forwarding
        assert st.dig("web") == [web]
        assert st.dig(f"web.{st.name}") == [web]
        assert st.dig("www") == [web]
        assert st.dig(f"www.{st.name}") == [web]
        assert st.dig(f"{st.name}-web-1") == [web]
        assert sorted(st.dig("api")) == apis
        # in rotating order
        assert {st.dig("api")[0] for _ in range(4)} == set(apis)
        assert sorted(st.dig(f"api.{st.name}")) == apis
        assert st.dig("-x", web) == [f"{st.name}-web-1."]
        assert st.dig_status(f"nope.{st.name}") == "NXDOMAIN"
        assert st.dig("example.test") == ["192.0.2.77"]
        assert st.dig("+tcp", "web") == [web]
        asked = upstream.read_text().split()
        assert "example.test" in asked and not any(st.name in n for n in asked), asked
        # the published port: from the test namespace's loopback and from another host
        # whose address the server sees
        peer = ns.more("peer")
        ns.ip("link", "add", "tohost", "type", "veth", "peer", "name", "fromhost", "netns",
              peer.name)
        ns.ip("addr", "add", "10.200.0.1/24", "dev", "tohost")
        ns.ip("link", "set", "tohost", "up")
        peer.ip("addr", "add", "10.200.0.2/24", "dev", "fromhost")
        peer.ip("link", "set", "fromhost", "up")
        get = lambda n, url: (lambda cp: cp.stdout if cp.returncode == 0 else None)(
            n.run("timeout", "3", BUSYBOX, "wget", "-qO-", url, check=False))
        assert wait_for(lambda: get(ns, "http://127.0.0.1:8080/"), what="the port on lo")
        assert wait_for(lambda: get(peer, "http://10.200.0.1:8080/"), what="the port")
        log = wait_for(lambda: (lambda t: t if "10.200.0.2]" in t else None)(
            st.hutch("logs", f"{st.name}-web-1").stderr), what="the peer in httpd's log")
        assert "10.200.0.2]" in log
        # the stack's network is not `network rm`'s while the stack is up
        cp = st.hutch("network", "rm", f"{st.name}_default", check=False)
        assert cp.returncode != 0 and f"stack {st.name}" in cp.stderr and "hutch down" in \
            cp.stderr, cp.stderr
        # `up` again: a new supervisor takes the stack, its networks and its DNS port over
        old = st.supervisor()
        st.up()
        assert st.supervisor() != old
        wait_for(lambda: st.dig("web") == [web], what="DNS from the new supervisor")
        assert st.addresses("web") == [web] and sorted(st.dig("api")) == apis
        # a stopped service is gone from DNS at once; started again, back at its address
        st.hutch("stack", "stop", "-f", st.file, "web")
        wait_for(lambda: st.dig_status(f"web.{st.name}") == "NXDOMAIN", what="web out of DNS")
        assert st.dig("web") != [web]  # a bare name not the stack's goes upstream
        st.hutch("stack", "start", "-f", st.file, "web")
        wait_for(lambda: st.dig("web") == [web], what="web back in DNS")
        assert st.addresses("web") == [web]
        assert wait_for(lambda: wget(st, "cli-1", "http://web/"), what="web again")
        # restarted: the same addresses again
        st.hutch("stack", "restart", "-f", st.file, "api")
        wait_for(lambda: sorted(st.dig("api")) == apis, what="api back in DNS")
        assert st.addresses("api") == apis
        st.down()
        wait_for(lambda: not leftovers(ns, state, keep=("lo", "tohost", "world0", "world1")),
                 what="nothing left after down", timeout=10)
        assert st.supervisor() is None

    def test_internal_network_and_two_stacks_apart(ns, make, state, tmp):
        a = make("""
            [stack]
            name = STACK

            [network.back]
            internal = true
            subnet = 10.89.77.0/24

            [service.db]
            image = bb
            HTTPD_LINE
            tmpfs = /www
            networks = back:store

            [service.app]
            image = bb
            command = sleep 1000
            networks = default back
            """.replace("HTTPD_LINE", HTTPD))
        a.up()
        back = a.network("back")
        assert back["internal"] is True and back["subnet"] == "10.89.77.0/24"
        [db] = a.addresses("db", "back")
        assert db.startswith("10.89.77.")
        # the app on both networks finds db by name and alias; nobody else reaches it
        assert wait_for(lambda: wget(a, "app-1", "http://db/"), what="db from app")
        assert wget(a, "app-1", "http://store/")
        assert "default" not in a.sh("db-1", "ip route").stdout
        # another host with a route to the stack's subnets through this one
        peer = ns.more("peer")
        ns.ip("link", "add", "tohost", "type", "veth", "peer", "name", "fromhost", "netns",
              peer.name)
        ns.ip("addr", "add", "10.200.0.1/24", "dev", "tohost")
        ns.ip("link", "set", "tohost", "up")
        peer.ip("addr", "add", "10.200.0.2/24", "dev", "fromhost")
        peer.ip("link", "set", "fromhost", "up")
        peer.ip("route", "add", "10.89.0.0/16", "via", "10.200.0.1")
        cp = peer.run("timeout", "3", BUSYBOX, "wget", "-qO-", f"http://{db}/", check=False)
        assert cp.returncode != 0
        # a second stack, from a compose file: its own network, apart from the first
        b = make("""
            name: STACK
            services:
              web:
                image: bb
                command: ["sh", "-c", "echo compose > /www/index.html; exec httpd -f -p 80 -h /www"]
                tmpfs: [/www]
                init: true
                networks:
                  front:
                    aliases: [shop]
                ports:
                  - target: 80
                    published: "8081"
                expose: ["80"]
            networks:
              front: {}
            """, compose=True)
        b.up()
        bnet = b.network("front")
        assert bnet["subnet"] != a.network()["subnet"]
        assert b.sh("web-1", "nslookup shop").returncode == 0
        get = ns.run("timeout", "3", BUSYBOX, "wget", "-qO-", "http://127.0.0.1:8081/",
                     check=False)
        assert get.stdout == "compose\n", get
        [app_addr] = a.addresses("app")
        cp = b.sh("web-1", f"timeout 3 wget -qO- http://{db}/", check=False)
        assert cp.returncode != 0
        cp = b.sh("web-1", f"timeout 3 ping -c1 -W1 {app_addr}", check=False)
        assert cp.returncode != 0
        # names of the other stack are not its to answer
        assert b.sh("web-1", "nslookup app", check=False).returncode != 0
        a.down()
        b.down()
        wait_for(lambda: not leftovers(ns, state, keep=("lo", "tohost")), what="nothing left",
                 timeout=10)

    def test_killed_supervisor_then_up_and_down_leave_nothing(ns, make, state):
        st = make(f"""
            [stack]
            name = STACK

            [service.web]
            image = bb
            {HTTPD}
            tmpfs = /www
            restart = always
            ports = 8082:80

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        st.up()
        [web] = st.addresses("web")
        # a crash the restart policy answers: back at its address, in DNS again
        old = st.ids("web")
        st.hutch("kill", f"{st.name}-web-1")
        wait_for(lambda: st.dig(f"web.{st.name}") == [web] and wget(st, "cli-1", "http://web/"),
                 what="web restarted by its policy")
        assert st.addresses("web") == [web] and st.ids("web") == old
        os.kill(st.supervisor(), signal.SIGKILL)
        # its containers run on, on their network; a new up adopts them and serves
        # their names again
        assert wget(st, "cli-1", f"http://{web}/")
        st.up()
        wait_for(lambda: st.dig("web") == [web], what="DNS from the new supervisor")
        assert wget(st, "cli-1", "http://web/")
        # the next crash: `down` without a supervisor takes the networks too
        pid = st.supervisor()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
                 what="the supervisor gone")
        st.down()
        wait_for(lambda: not leftovers(ns, state), what="nothing left", timeout=10)
        assert st.supervisor() is None

    def test_bad_network_settings_said_at_their_line(ns, make, state):
        """A subnet that clashes with a route of the host, a host port that is taken:
        the stack does not come up half-networked, and says why and where."""
        ns.ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
        ns.ip("addr", "add", "10.251.0.1/24", "dev", "lan0")
        ns.ip("link", "set", "lan0", "up")
        st = make("""
            [stack]
            name = STACK
            subnet = 10.251.0.0/24

            [service.a]
            image = bb
            command = sleep 1000
            """)
        cp = st.up(check=False)
        assert cp.returncode != 0
        assert f"{st.file}:3: subnet: network default: subnet 10.251.0.0/24 clashes with " \
            "the host's route to 10.251.0.0/24" in cp.stderr, cp.stderr
        st.down()
        assert not leftovers(ns, state, keep=("lo", "lan0", "lan1"))
        # a published port something on the host holds: the service fails to start,
        # naming the port and its holder
        holder = subprocess.Popen(ns.cmd(BUSYBOX, "nc", "-l", "-p", "18090"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: ":18090 " in ns.run("ss", "-Hltn").stdout, what="the holder")
            st2 = make("""
                [stack]
                name = STACK

                [service.web]
                image = bb
                command = sleep 1000
                ports = 18090:80
                """)
            cp = st2.up(check=False)
            assert cp.returncode != 0
            assert "port 18090/tcp is already in use on the host by pid" in cp.stderr, \
                cp.stderr
        finally:
            holder.kill()
            holder.wait()
        st2.down()
        wait_for(lambda: not leftovers(ns, state, keep=("lo", "lan0", "lan1")),
                 what="nothing left", timeout=10)
