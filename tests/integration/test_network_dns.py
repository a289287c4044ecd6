"""A standalone network's DNS server: `hutch network create`, `hutch run --network NAME`.

The server is a process of its own per network (`hutch internal dns --network NAME`),
started with the network's first container and gone with its last. Containers on the
network resolve each other by name and --network-alias (and PTR); other names go to the
network's upstream, here a fake resolver of the test's on a test address.

Network safety (shared/DESIGN.md): every test runs hutch inside a network namespace the
test makes (test_network.NetNS) and deletes after; the fake upstream listens on a dummy
veth of that namespace. No packet leaves it.

Rootless, the server's sockets are bound in the rootless network namespace and it
forwards from the host's own: its fake upstream is on the host's loopback.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import wait_for
from test_network import NetNS, inspect, netns_files
from test_stack_net_rootless import FakeUpstream

ROOT = os.geteuid() == 0
UPSTREAM = "10.250.53.53"  # the fake upstream's address, on a link of the test's
FAKE_ANSWER = "192.0.2.77"

# A resolver that answers A FAKE_ANSWER (TTL 60) for any name and writes each name it
# was asked on a line of its log.
FAKE_UPSTREAM = textwrap.dedent(f"""
    import socket, struct, sys
    log = open(sys.argv[1], "a", buffering=1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("{UPSTREAM}", 53))
    print("ready", flush=True)
    while True:
        q, peer = s.recvfrom(4096)
        off, labels = 12, []
        while q[off]:
            labels.append(q[off + 1:off + 1 + q[off]].decode("ascii", "replace"))
            off += 1 + q[off]
        log.write(".".join(labels).lower() + "\\n")
        rr = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("{FAKE_ANSWER}")
        s.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + q[12:off + 5] + rr, peer)
""")


# Ten TCP connections from the gateway's address, each with two queries for names the
# server forwards, each reset (SO_LINGER 0) at once.
RESETTING_CLIENT = textwrap.dedent("""
    import socket, struct
    def query(qid, name):
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\\0"
        q += struct.pack(">HH", 1, 1)
        return struct.pack(">H", len(q)) + q
    for i in range(10):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.bind(("10.89.0.1", 0))
        c.connect(("10.89.0.1", 53))
        c.sendall(query(2 * i, f"r{i}.example") + query(2 * i + 1, f"s{i}.example"))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
""")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def dns_server(ns, net):
    return inspect(ns, net)["dns_server"]


def dns_pid(ns, net):
    s = dns_server(ns, net)
    return s["pid"] if s["state"] == "running" else None


def dns_files(state):
    d = state.root / "run" / "dns"
    return sorted(os.listdir(d)) if d.exists() else []


def wait_dns_gone(ns, net, pid):
    wait_for(lambda: not pid_alive(pid), timeout=10, interval=0.02,
             what=f"the DNS server {pid} of {net} to exit")
    assert dns_server(ns, net)["state"] == "stopped"


if not ROOT:
    @pytest.fixture
    def upstream():
        u = FakeUpstream()
        yield u
        u.close()

    def rl_server(hutch, net):
        return json.loads(hutch("network", "inspect", net).stdout)[0]["dns_server"]

    def test_rootless_names_aliases_ptr_nxdomain_forwarding_and_life(hutch, state, upstream):
        """A rootless network's server: its sockets in the rootless network namespace,
        names and aliases between two containers, PTR, NXDOMAIN, the rest forwarded (from
        the host's namespace: the fake upstream is on the host's loopback); gone with the
        last container, started again after a kill by the next one."""
        hutch("network", "create", "--dns", f"127.0.0.1:{upstream.port}", "rl")
        pids = []
        try:
            assert rl_server(hutch, "rl") == {"state": "stopped"}
            web = hutch("run", "-d", "--name", "web", "--network", "rl", "--network-alias",
                        "www", "bb", "httpd", "-f", "-p", "80", "-h", "/etc").stdout.strip()
            s = rl_server(hutch, "rl")
            assert s["state"] == "running", s
            pid = s["pid"]
            pids.append(pid)
            status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read()
                          .splitlines())
            assert status["NoNewPrivs"].strip() == "1"
            assert int(status["CapEff"].strip(), 16) == 0
            addr = json.loads(hutch("network", "inspect", "rl").stdout)[0]["members"][0][
                "address"]
            out = hutch("run", "--rm", "--network", "rl", "bb", "sh", "-c",
                        f"nslookup web; nslookup www; nslookup www.dns.hutch; "
                        f"nslookup {addr}; nslookup nosuch.dns.hutch; "
                        f"nslookup example.org; wget -qO- http://www/hostname").stdout
            assert out.count(f"Address: {addr}") == 3, out
            rev = ".".join(reversed(addr.split("."))) + ".in-addr.arpa"
            assert f"{rev}\tname = web" in out, out
            assert "NXDOMAIN" in out, out
            assert f"Address: {FAKE_ANSWER}" in out, out
            assert web[:12] in out  # the hostname file, served by name
            assert "example.org" in upstream.asked, upstream.asked
            assert not [n for n in upstream.asked if "dns.hutch" in n or n in ("web", "www")]
            assert rl_server(hutch, "rl")["pid"] == pid  # one, however many containers
            # killed: the next container on the network starts another one
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), what="the server to die")
            assert rl_server(hutch, "rl")["state"] == "not running"
            out = hutch("run", "--rm", "--network", "rl", "bb", "nslookup", "www").stdout
            assert f"Address: {addr}" in out, out
            new = rl_server(hutch, "rl")["pid"]
            assert new and new != pid
            pids.append(new)
            # gone with the last container
            hutch("rm", "-f", "web")
            wait_for(lambda: not pid_alive(new), timeout=10, what="the server to exit")
            assert rl_server(hutch, "rl")["state"] == "stopped"
            # one that did not see the last container take the rootless namespace (here:
            # stopped) is stopped by the next attach, which starts one in the new one
            hutch("run", "-d", "--name", "web", "--network", "rl", "bb", "sleep", "60")
            old = rl_server(hutch, "rl")["pid"]
            pids.append(old)
            os.kill(old, signal.SIGSTOP)
            hutch("rm", "-f", "web")
            out = hutch("run", "--rm", "--name", "again", "--network", "rl", "bb",
                        "nslookup", "again").stdout
            assert "Name:\tagain" in out, out
            assert not pid_alive(old)
            # and started again with the next first one (in the new rootless namespace)
            out = hutch("run", "--rm", "--name", "fg", "--network", "rl", "bb",
                        "nslookup", "fg").stdout
            assert "Name:\tfg" in out, out
            wait_for(lambda: rl_server(hutch, "rl")["state"] == "stopped", timeout=10,
                     what="the server to go with the last container")
        finally:
            hutch("rm", "-f", "web", check=False)
            hutch("network", "rm", "rl", check=False)
            for p in pids:  # ours, by pid
                if pid_alive(p):
                    os.kill(p, signal.SIGKILL)
        assert dns_files(state) == []
else:
    @pytest.fixture
    def ns(state):
        n = NetNS(state, "dns")
        seen = []  # every DNS server pid a test saw: none may outlive it
        n.seen = seen
        yield n
        for ref in n.hutch("ps", "-aq", check=False).stdout.split():
            n.hutch("rm", "-f", ref, check=False)
        for name in n.hutch("network", "ls", "-q", check=False).stdout.split():
            n.hutch("network", "rm", name, check=False)
        try:  # each goes by itself once its network has no container
            wait_for(lambda: not [p for p in seen if pid_alive(p)], timeout=5,
                     what="the DNS servers to exit")
        except AssertionError:
            pass
        left = [p for p in seen if pid_alive(p)]
        for p in left:  # ours (started by this test's hutch), by pid
            os.kill(p, signal.SIGKILL)
        n.delete()
        assert not left, f"DNS servers left running: {left}"

    @pytest.fixture
    def upstream(ns, tmp):
        """The fake upstream resolver on a link of the test namespace."""
        ns.ip("link", "add", "up0", "type", "veth", "peer", "name", "up1")
        ns.ip("addr", "add", f"{UPSTREAM}/32", "dev", "up0")
        ns.ip("link", "set", "up0", "up")
        ns.ip("link", "set", "up1", "up")
        log = tmp / "upstream.log"
        log.write_text("")
        p = subprocess.Popen(ns.cmd(sys.executable, "-c", FAKE_UPSTREAM, log),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        p.log = log
        yield p
        p.kill()
        p.wait()

    def dig(ns, *args):
        """dig from the test namespace, from the gateway's address: on the network."""
        return ns.run("dig", "+time=2", "+tries=1", "-b", "10.89.0.1", "@10.89.0.1",
                      *args).stdout

    def test_names_aliases_ptr_nxdomain_and_forwarding(ns, upstream):
        ns.hutch("network", "create", "--dns", UPSTREAM, "shop")
        info = inspect(ns, "shop")
        assert info["dns_servers"] == [UPSTREAM]
        assert info["dns_server"] == {"state": "stopped"}  # no container yet
        web = ns.hutch("run", "-d", "--name", "web", "--network", "shop", "--network-alias",
                       "www", "--network-alias", "shop-front", "bb", "httpd", "-f", "-p",
                       "80", "-h", "/etc").stdout.strip()
        pid = dns_pid(ns, "shop")
        assert pid and pid_alive(pid)
        ns.seen.append(pid)
        addr = inspect(ns, "shop")["members"][0]["address"]
        # from another container: by name, alias, short id, under dns.hutch; PTR
        out = ns.hutch("run", "--rm", "--network", "shop", "bb", "sh", "-c",
                       f"nslookup web; nslookup www; nslookup {web[:12]}; "
                       f"nslookup shop-front.dns.hutch; nslookup {addr}; "
                       f"wget -qO- http://www/hostname").stdout
        assert out.count(f"Address: {addr}") == 4, out
        rev = ".".join(reversed(addr.split("."))) + ".in-addr.arpa"
        assert f"{rev}\tname = web" in out, out
        assert web[:12] in out  # the hostname file, served by name
        # exact answers: authoritative, TTL 0
        a = dig(ns, "www", "A")
        assert "status: NOERROR" in a and " aa" in a.split("flags:")[1].split(";")[0]
        assert f"www.\t\t\t0\tIN\tA\t{addr}" in a, a
        ptr = dig(ns, "-x", addr)
        assert f"{rev}.\t0\tIN\tPTR\tweb." in ptr, ptr
        # an unknown name under hutch's own domain: NXDOMAIN here, never forwarded
        assert "status: NXDOMAIN" in dig(ns, "nosuch.dns.hutch")
        # any other name goes to the network's upstream
        fwd = dig(ns, "example.org")
        assert f"IN\tA\t{FAKE_ANSWER}" in fwd, fwd
        out = ns.hutch("run", "--rm", "--network", "shop", "bb", "nslookup",
                       "other.example").stdout
        assert f"Address: {FAKE_ANSWER}" in out, out
        asked = upstream.log.read_text().split()
        assert "example.org" in asked and "other.example" in asked
        assert not [n for n in asked if "dns.hutch" in n or n in ("web", "www")], asked
        # TCP clients that reset the connection before their (forwarded) answers come
        # back: the server's writes fail, and it goes on serving
        ns.run(sys.executable, "-c", RESETTING_CLIENT)
        assert pid_alive(pid)
        assert f"IN\tA\t{addr}" in dig(ns, "+tcp", "www")
        # a client on no network of the server's is refused, not served
        ns.ip("addr", "add", "10.250.0.9/32", "dev", "up0")
        out = ns.run("dig", "+time=2", "+tries=1", "-b", "10.250.0.9", "@10.89.0.1",
                     "www").stdout
        assert "status: REFUSED" in out, out
        ns.hutch("rm", "-f", "web")
        wait_dns_gone(ns, "shop", pid)

    def test_server_is_one_unprivileged_idle_process(ns, upstream):
        ns.hutch("network", "create", "--dns", UPSTREAM, "calm")
        for n in ("ca", "cb", "cc"):
            ns.hutch("run", "-d", "--name", n, "--network", "calm", "bb", "sleep", "60")
        pid = dns_pid(ns, "calm")
        ns.seen.append(pid)
        # one for the network, however many containers were started
        mine = [p for p in os.listdir("/proc") if p.isdigit() and _comm(p) == "hutch-dns"
                and _cmdline(p).count("calm") and str(ns.state.root) in _cmdline(p)]
        assert mine == [str(pid)], mine
        status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read()
                      .splitlines())
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
            assert int(status[cap].strip(), 16) == 0, (cap, status[cap])
        assert status["NoNewPrivs"].strip() == "1"
        # listening on the gateway, port 53, UDP and TCP
        socks = ns.run("ss", "-lntupH").stdout
        assert "10.89.0.1:53" in socks and socks.count("hutch-dns") >= 2, socks
        # idle: it sleeps in epoll_wait, no timer
        before = _switches(pid)
        import time
        time.sleep(1)
        assert _switches(pid) - before <= 1
        # TCP works too
        out = dig(ns, "+tcp", "cb")
        assert "status: NOERROR" in out and "IN\tA\t10.89.0." in out
        ns.hutch("rm", "-f", "ca", "cb", "cc")
        wait_dns_gone(ns, "calm", pid)

    def _comm(p):
        try:
            return open(f"/proc/{p}/comm").read().strip()
        except OSError:
            return ""

    def _cmdline(p):
        try:
            return open(f"/proc/{p}/cmdline").read().replace("\0", " ")
        except OSError:
            return ""

    def _switches(pid):
        st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines())
        return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])

    def test_started_with_first_gone_with_last(ns, upstream):
        ns.hutch("network", "create", "--dns", UPSTREAM, "life")
        # --rm in the foreground: started for it, gone after it
        out = ns.hutch("run", "--rm", "--name", "fg", "--network", "life", "bb", "sh", "-c",
                       "nslookup fg").stdout
        assert "Name:\tfg" in out, out
        # (it sees the network's file change and goes, a moment after the run)
        wait_for(lambda: dns_server(ns, "life")["state"] == "stopped", timeout=5,
                 what="the DNS server to go with the last container")
        assert dns_files(ns.state) == ["life.log"]
        # -d containers: the names follow them in; the first one's exit keeps it
        ns.hutch("run", "-d", "--name", "one", "--network", "life", "bb", "sleep", "60")
        pid = dns_pid(ns, "life")
        ns.seen.append(pid)
        ns.hutch("run", "-d", "--name", "two", "--network", "life", "--network-alias",
                 "second", "bb", "sh", "-c", "sleep 1")
        assert "IN\tA\t10.89.0." in dig(ns, "second")
        assert dns_pid(ns, "life") == pid
        # two ends by itself: its keeper's finish detaches it, its name goes
        wait_for(lambda: len(inspect(ns, "life")["members"]) == 1, what="two to end")
        wait_for(lambda: "status: NXDOMAIN" in dig(ns, "second.dns.hutch"),
                 what="second to be forgotten")
        assert "IN\tA\t10.89.0." in dig(ns, "one.dns.hutch")
        assert dns_pid(ns, "life") == pid
        # killed: the next container on the network starts another one
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), what="the server to die")
        assert dns_server(ns, "life")["state"] == "not running"
        out = ns.hutch("run", "--rm", "--network", "life", "bb", "nslookup", "one").stdout
        assert "Name:\tone" in out, out
        new = dns_pid(ns, "life")
        assert new and new != pid
        ns.seen.append(new)
        # one ends by itself too (a -d container whose process exits): the last one
        ns.hutch("kill", "one")
        wait_dns_gone(ns, "life", new)
        # network rm leaves nothing of it
        ns.hutch("rm", "-f", "one", "two", check=False)
        ns.hutch("network", "rm", "life")
        assert dns_files(ns.state) == []
        assert not (ns.state.root / "run" / "networks" / "life").exists()
        assert not (ns.state.root / "networks" / "life").exists()
        assert netns_files(ns.state) == []
        assert ns.links_settle(["lo", "up0", "up1"])

    def test_networks_see_only_their_own_names(ns, upstream):
        ns.hutch("network", "create", "--dns", UPSTREAM, "red")
        ns.hutch("network", "create", "--dns", UPSTREAM, "blue")
        ns.hutch("run", "-d", "--name", "r1", "--network", "red", "bb", "sleep", "60")
        ns.hutch("run", "-d", "--name", "b1", "--network", "blue", "bb", "sleep", "60")
        red, blue = dns_pid(ns, "red"), dns_pid(ns, "blue")
        ns.seen += [red, blue]
        assert red != blue
        out = ns.hutch("run", "--rm", "--network", "blue", "bb", "sh", "-c",
                       "nslookup b1.dns.hutch; nslookup r1.dns.hutch; true").stdout
        assert "Name:\tb1.dns.hutch" in out and "Name:\tr1.dns.hutch" not in out, out
        ns.hutch("rm", "-f", "r1", "b1")
        wait_dns_gone(ns, "red", red)
        wait_dns_gone(ns, "blue", blue)

    def test_internal_network_resolves_its_own_names_only(ns, upstream):
        """No way out, not even by DNS: other names fail at once, the upstream never
        hears of them."""
        ns.hutch("network", "create", "--internal", "--dns", UPSTREAM, "vault")
        ns.hutch("run", "-d", "--name", "safe", "--network", "vault", "bb", "sleep", "60")
        pid = dns_pid(ns, "vault")
        ns.seen.append(pid)
        assert "IN\tA\t10.89.0." in dig(ns, "safe")
        out = dig(ns, "leak.example")
        assert "status: SERVFAIL" in out, out
        assert "leak.example" not in upstream.log.read_text()
        ns.hutch("rm", "-f", "safe")
        wait_dns_gone(ns, "vault", pid)

    def test_bad_dns_servers_refused(ns):
        cp = ns.hutch("network", "create", "--dns", "not-an-ip", "x", check=False)
        assert cp.returncode == 125 and "'not-an-ip' is not an IPv4 address" in cp.stderr
        cp = ns.hutch("network", "create", "--dns", "10.0.0.1", "--dns", "10.0.0.2", "--dns",
                      "10.0.0.3", "--dns", "10.0.0.4", "x", check=False)
        assert cp.returncode == 125 and "at most 3" in cp.stderr
        for bad in ("10.0.0.1:0", "10.0.0.1:", "10.0.0.1:99999", "x:53"):
            cp = ns.hutch("network", "create", "--dns", bad, "x", check=False)
            assert cp.returncode == 125 and f"'{bad}' is not an IPv4 address" in cp.stderr
        cp = ns.hutch("network", "inspect", "x", check=False)
        assert cp.returncode != 0 and "not found" in cp.stderr
