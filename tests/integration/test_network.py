"""Bridge networks (net/): hutch network create|ls|inspect|rm, run --network and -p.

Network safety (shared/DESIGN.md): every test runs hutch inside a network namespace
the test makes (`ip netns add`, entered with nsenter --net only, so that the netns
files hutch bind-mounts stay in the host's mount namespace) and deletes after; "another
host" is a second namespace joined to it by a veth. Bridges, veths and the nft table
are made in those namespaces only; no packet leaves them.

Rootless bridge networks (pasta) are tested in test_network_rootless.py.
"""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import wait_for

ROOT = os.geteuid() == 0
BUSYBOX = "/bin/busybox"


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

    def run(self, *args, check=True, timeout=30, **kw):
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

    def spawn(self, *args, **kw):
        return subprocess.Popen(self.cmd(self.state.bin, "--root", self.state.root, *args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, **kw)

    def links(self):
        return [l["ifname"] for l in json.loads(self.ip("-j", "link").stdout)]

    def links_settle(self, want, timeout=5):
        """The links once the kernel has torn down the namespaces hutch let go (a
        container's veth goes with its namespace, asynchronously)."""
        wait_for(lambda: set(self.links()) == set(want), timeout=timeout, interval=0.02,
                 what=f"links to be {sorted(want)} (are {self.links()})")
        return True

    def ruleset(self):
        return self.run("nft", "list", "ruleset").stdout

    def delete(self):
        sh("ip", "netns", "del", self.name, check=False)


def netns_files(state):
    d = state.root / "run" / "netns"
    return sorted(os.listdir(d)) if d.exists() else []


def inspect(ns, name):
    return json.loads(ns.hutch("network", "inspect", name).stdout)[0]


def wait_http(ns, url, client=None, timeout=10):
    """wget url from the test namespace (or client's) until it answers."""
    run = (client or ns).run

    def get():
        # (busybox's own wget -T crashes: timeout(1) bounds it instead)
        cp = run("timeout", "3", BUSYBOX, "wget", "-qO-", url, check=False)
        return cp.stdout if cp.returncode == 0 else None
    return wait_for(get, timeout=timeout, interval=0.1, what=f"{url} to answer")


if not ROOT:
    def test_rootless_network_none_and_host(hutch):
        """Rootless bridge networks are test_network_rootless.py's; none and host
        need no bridge."""
        assert hutch("run", "--rm", "--network", "none", "bb", "true").returncode == 0
        assert hutch("run", "--rm", "--network", "host", "bb", "true").returncode == 0
else:
    @pytest.fixture
    def ns(state):
        made = []

        def make(tag="a"):
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
    def www(tmp):
        d = tmp / "www"
        d.mkdir()
        (d / "index.html").write_text("hello from hutch\n")
        return d

    def httpd(ns, www, *flags, name=None):
        """A detached busybox httpd (verbose: it logs each client's address)."""
        extra = ["--name", name] if name else []
        return ns.hutch("run", "-d", *extra, "-v", f"{www}:/www:ro", *flags, "bb", "httpd",
                        "-f", "-vv", "-p", "80", "-h", "/www").stdout.strip()

    def test_two_containers_talk_and_inspect_shows_them(ns, www):
        ns.hutch("network", "create", "front")
        cid = httpd(ns, www, "--network", "front", "--network-alias", "web", name="srv")
        info = inspect(ns, "front")
        assert info["subnet"] == "10.89.0.0/24"
        assert info["gateway"] == "10.89.0.1" and info["dns"] == "10.89.0.1"
        assert info["internal"] is False and info["bridge"].startswith("hbr-")
        [m] = info["members"]
        assert m["id"] == cid and m["name"] == "srv" and m["aliases"] == ["web"]
        addr = m["address"]
        assert addr.startswith("10.89.0.")
        assert info["bridge"] in ns.links()
        # the client, on the same network: by address, with its own
        out = ns.hutch("run", "--rm", "--network", "front", "bb", "sh", "-c",
                       f"ip -4 -o addr show eth0; ip route; cat /etc/resolv.conf /etc/hosts; "
                       f"timeout 5 wget -qO- http://{addr}/").stdout
        assert "hello from hutch" in out
        assert "default via 10.89.0.1 dev eth0" in out
        assert "nameserver 10.89.0.1" in out
        assert "inet 10.89.0." in out and f"inet {addr}/" not in out
        # its own hosts file has its address, and the server's alias resolves there
        hosts = ns.hutch("exec", "srv", "cat", "/etc/hosts").stdout
        assert f"{addr}\tweb" in hosts
        ls = [json.loads(l) for l in ns.hutch("network", "ls", "--format", "json")
              .stdout.splitlines()]
        assert [n["name"] for n in ls] == ["front"]
        assert ls[0]["members"][0]["address"] == addr
        # a network with a container on it is not removed, and says who is on it
        cp = ns.hutch("network", "rm", "front", check=False)
        assert cp.returncode == 125
        assert "srv" in cp.stderr and cid[:12] in cp.stderr
        ns.hutch("rm", "-f", "srv")
        wait_for(lambda: not inspect(ns, "front")["members"], what="srv to leave front")
        ns.hutch("network", "rm", "front")
        assert ns.links_settle(["lo"])
        assert "hutch" not in ns.ruleset()
        assert netns_files(ns.state) == []
        assert not (ns.state.root / "networks" / "front").exists()

    def test_internal_network_has_no_way_out(ns, www):
        ns.hutch("network", "create", "--internal", "inside")
        info = inspect(ns, "inside")
        assert info["internal"] is True
        out = ns.hutch("run", "--rm", "--network", "inside", "bb", "ip", "route").stdout
        assert "default" not in out and "10.89." in out
        # the host's own other address (a stand-in for the world) is out of reach
        ns.ip("link", "add", "world0", "type", "veth", "peer", "name", "world1")
        ns.ip("addr", "add", "10.250.0.1/24", "dev", "world0")
        ns.ip("link", "set", "world0", "up")
        ns.ip("link", "set", "world1", "up")
        cp = ns.hutch("run", "--rm", "--init", "--network", "inside", "bb", "timeout", "2",
                      "wget", "-qO-", "http://10.250.0.1/", check=False)
        assert cp.returncode != 0
        cp = ns.hutch("run", "--rm", "--network", "inside", "-p", "8081:80", "bb", "true",
                      check=False)
        assert cp.returncode == 125 and "internal" in cp.stderr
        ns.hutch("network", "rm", "inside")
        ns.ip("link", "del", "world0")

    def test_two_networks_cannot_reach_each_other(ns, www):
        ns.hutch("network", "create", "red")
        ns.hutch("network", "create", "blue")
        assert inspect(ns, "red")["subnet"] != inspect(ns, "blue")["subnet"]
        httpd(ns, www, "--network", "red", name="redweb")
        addr = inspect(ns, "red")["members"][0]["address"]
        ok = ns.hutch("run", "--rm", "--network", "red", "bb", "timeout", "5", "wget", "-qO-",
                      f"http://{addr}/")
        assert "hello" in ok.stdout
        cp = ns.hutch("run", "--rm", "--init", "--network", "blue", "bb", "timeout", "2",
                      "wget", "-qO-",
                      f"http://{addr}/", check=False)
        assert cp.returncode != 0 and "hello" not in cp.stdout
        ns.hutch("rm", "-f", "redweb")
        for n in ("red", "blue"):
            wait_for(lambda: not inspect(ns, n)["members"], what=f"{n} empty")
            ns.hutch("network", "rm", n)

    def test_published_port_from_loopback_and_another_host(ns, www):
        # another host: a second namespace on a veth from the test namespace
        peer = ns.more("peer")
        ns.ip("link", "add", "tohost", "type", "veth", "peer", "name", "fromhost", "netns",
              peer.name)
        ns.ip("addr", "add", "10.200.0.1/24", "dev", "tohost")
        ns.ip("link", "set", "tohost", "up")
        peer.ip("addr", "add", "10.200.0.2/24", "dev", "fromhost")
        peer.ip("link", "set", "fromhost", "up")
        # -p without --network: the default network, made on first use
        httpd(ns, www, "-p", "8080:80", name="pub")
        info = inspect(ns, "hutch")
        [m] = info["members"]
        assert m["ports"] == ["8080:80/tcp"]
        assert "dport 8080" in ns.ruleset()
        assert "hello from hutch" in wait_http(ns, "http://127.0.0.1:8080/")
        assert "hello from hutch" in wait_http(ns, "http://10.200.0.1:8080/", client=peer)
        # (httpd logs on its stderr, which `logs` gives back as stderr)
        log = wait_for(lambda: (lambda t: t if "10.200.0.2]" in t else None)(
            ns.hutch("logs", "pub").stderr), what="the other host in httpd's log")
        # the other host's address is kept; the host's own loopback is seen as the
        # gateway (a container cannot answer 127.0.0.1)
        assert "10.200.0.2]" in log, log
        assert f"{info['gateway']}]" in log, log
        # a firewall reload that flushes every table: `network ls` puts hutch's back
        ns.run("nft", "flush", "ruleset")
        ns.hutch("network", "ls")
        assert "hello from hutch" in wait_http(ns, "http://127.0.0.1:8080/")
        ns.hutch("rm", "-f", "pub")
        wait_for(lambda: not inspect(ns, "hutch")["members"], what="pub to leave")
        assert "hutch" not in ns.ruleset()
        ns.hutch("network", "rm", "hutch")
        assert ns.links_settle({"lo", "tohost"})

    def link_hosts(ns, other, subnet, host_if):
        """A veth from the test ("host") namespace to other: .1 the host's, .2 other's."""
        ns.ip("link", "add", host_if, "type", "veth", "peer", "name", "up0", "netns",
              other.name)
        ns.ip("addr", "add", f"{subnet}.1/24", "dev", host_if)
        ns.ip("link", "set", host_if, "up")
        other.ip("addr", "add", f"{subnet}.2/24", "dev", "up0")
        other.ip("link", "set", "up0", "up")
        other.ip("route", "add", "default", "via", f"{subnet}.1")

    def ip_forward(ns):
        return ns.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()

    def test_lan_peer_reaches_only_published_ports(ns, www):
        """A host on the LAN with a route to the containers' subnet through this host
        (what a router's static route or `ip route add 10.89.0.0/16 via HOST` gives)
        reaches a published port and nothing else of the container's; and the host,
        whose routing hutch switched on, does not route that peer's traffic to a
        third host."""
        peer, far = ns.more("peer"), ns.more("far")
        link_hosts(ns, peer, "10.200.1", "tolan")
        link_hosts(ns, far, "10.201.0", "tofar")
        fargot = subprocess.Popen(
            far.cmd(BUSYBOX, "httpd", "-f", "-p", "80", "-h", www), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            assert "hello" in wait_http(far, "http://10.201.0.2/")
            # (a new namespace copies the machine's ip_forward: start from a host
            # that is no router)
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=0")
            ns.hutch("network", "create", "lan")
            # port 80 published as 8088, port 81 never published
            ns.hutch("run", "-d", "--name", "both", "-v", f"{www}:/www:ro", "--network", "lan",
                     "-p", "8088:80", "bb", "sh", "-c",
                     "httpd -p 81 -h /www; exec httpd -f -p 80 -h /www")
            addr = inspect(ns, "lan")["members"][0]["address"]
            assert ip_forward(ns) == "1"
            # both serve: the host itself reaches them (no forwarding involved)
            assert "hello" in wait_http(ns, f"http://{addr}:81/")
            assert "hello" in wait_http(ns, "http://10.200.1.1:8088/", client=peer)

            def get(url):
                return peer.run("timeout", "3", BUSYBOX, "wget", "-qO-", url, check=False)
            for url in (f"http://{addr}:81/", f"http://{addr}:80/"):
                cp = get(url)
                assert cp.returncode != 0 and "hello" not in cp.stdout, (url, cp)
            # the host is not the peer's router to another host
            cp = get("http://10.201.0.2/")
            assert cp.returncode != 0 and "hello" not in cp.stdout, cp
            # containers still reach out through the host, and their replies come back
            out = ns.hutch("run", "--rm", "--network", "lan", "bb", "timeout", "5", "wget",
                           "-qO-", "http://10.201.0.2/").stdout
            assert "hello" in out
            ns.hutch("rm", "-f", "both")
            wait_for(lambda: not inspect(ns, "lan")["members"], what="both to leave")
            # hutch switched routing on: it switches it off with the last member
            assert ip_forward(ns) == "0"
            # routing on before hutch is the admin's: the host stays a router
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            ns.hutch("run", "-d", "--name", "again", "--network", "lan", "-p", "8088:80", "bb",
                     "sleep", "30")
            assert "hello" in wait_http(far, "http://10.201.0.2/", client=peer)
            ns.hutch("rm", "-f", "again")
            wait_for(lambda: not inspect(ns, "lan")["members"], what="again to leave")
            assert ip_forward(ns) == "1"
            ns.hutch("network", "rm", "lan")
        finally:
            fargot.kill()
            fargot.wait()

    def test_firewall_reload_restores_the_localnet_guard(ns, www):
        """`nft flush ruleset` (a firewall reload) takes hutch's table, and with it the
        guard against CVE-2020-8558, while route_localnet stays on the bridge: the next
        hutch call whose rules did not change must still put the table back."""
        def localnet(bridge):
            return ns.run("cat", f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").stdout
        ns.hutch("network", "create", "quiet")
        ns.hutch("run", "-d", "--name", "idle", "--network", "quiet", "bb", "sleep", "30")
        httpd(ns, www, "-p", "8089:80", name="pub")
        assert "hello" in wait_http(ns, "http://127.0.0.1:8089/")
        ns.run("nft", "flush", "ruleset")
        assert "hutch" not in ns.ruleset()
        # a run that changes nothing in the table (no ports, a network with members)
        ns.hutch("run", "--rm", "--network", "hutch", "bb", "true")
        rules = ns.ruleset()
        assert "chain localnet_guard" in rules, rules
        assert "ip daddr 127.0.0.0/8 drop" in rules, rules
        assert "dport 8089" in rules, rules
        assert "hello" in wait_http(ns, "http://127.0.0.1:8089/")
        # route_localnet only where the host's loopback is published
        assert localnet(inspect(ns, "hutch")["bridge"]).strip() == "1"
        assert localnet(inspect(ns, "quiet")["bridge"]).strip() == "0"
        ns.hutch("rm", "-f", "pub", "idle")
        for n in ("hutch", "quiet"):
            wait_for(lambda: not inspect(ns, n)["members"], what=f"{n} empty")
            ns.hutch("network", "rm", n)
        assert "hutch" not in ns.ruleset()

    def test_taken_port_refused_naming_it(ns, www):
        holder = subprocess.Popen(
            ns.cmd("python3", "-c",
                   "import socket,time; s=socket.socket(); "
                   "s.bind(('0.0.0.0', 8090)); s.listen(); print('ok', flush=True); "
                   "time.sleep(60)"),
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "ok"
            ns.hutch("network", "create", "pn")
            cp = ns.hutch("run", "--rm", "--network", "pn", "-p", "8090:80", "bb", "true",
                          check=False)
            assert cp.returncode == 125
            assert "port 8090/tcp is already in use" in cp.stderr, cp.stderr
            assert f"pid {holder.pid} (python3)" in cp.stderr, cp.stderr
        finally:
            holder.kill()
            holder.wait()
        # published by another container: named too
        httpd(ns, www, "--network", "pn", "-p", "8091:80", name="first")
        cp = ns.hutch("run", "--rm", "--network", "pn", "-p", "127.0.0.1:8091:80", "bb",
                      "true", check=False)
        assert cp.returncode == 125
        assert "port 8091/tcp is already published by container first" in cp.stderr
        # udp is another port
        ns.hutch("run", "--rm", "--network", "pn", "-p", "8091:80/udp", "bb", "true")
        ns.hutch("rm", "-f", "first")
        wait_for(lambda: not inspect(ns, "pn")["members"], what="first to leave")
        ns.hutch("network", "rm", "pn")
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []

    def test_bad_network_input_said_plainly(ns):
        cases = [
            (["run", "--rm", "-p", "8080:80/sctp", "bb", "true"], "'8080:80/sctp'"),
            (["run", "--rm", "-p", "70000:80", "bb", "true"], "host port '70000'"),
            (["run", "--rm", "--network", "nope", "bb", "true"], "network 'nope' not found"),
            (["run", "--rm", "--network", "none", "-p", "80:80", "bb", "true"],
             "--network none"),
            (["run", "--rm", "--network-alias", "x", "bb", "true"], "--network-alias"),
            (["network", "create", "bad/name"], "invalid network name 'bad/name'"),
            (["network", "create", "--subnet", "10.89.0.1/24", "x"], "host bits"),
            (["network", "create", "--subnet", "10.1.0.0/31", "x"], "too small"),
            (["network", "inspect", "nope"], "network 'nope' not found"),
            (["network", "rm", "nope"], "network 'nope' not found"),
            (["network", "inspect", "../containers"], "invalid network name '../containers'"),
            (["network", "rm", "../../x"], "invalid network name '../../x'"),
            (["run", "--rm", "--network", "a/b", "bb", "true"], "invalid network name 'a/b'"),
        ]
        for args, want in cases:
            cp = ns.hutch(*args, check=False)
            assert cp.returncode == 125, (args, cp)
            assert want in cp.stderr, (args, cp.stderr)
        ns.hutch("network", "create", "--subnet", "10.33.0.0/24", "a")
        cp = ns.hutch("network", "create", "--subnet", "10.33.0.128/25", "b", check=False)
        assert cp.returncode == 125 and "overlaps network 'a'" in cp.stderr
        cp = ns.hutch("network", "create", "a", check=False)
        assert cp.returncode == 125 and "already exists" in cp.stderr
        # a host route is avoided when choosing, refused when given
        ns.ip("link", "add", "h0", "type", "veth", "peer", "name", "h1")
        ns.ip("addr", "add", "10.89.0.0/23", "dev", "h0")
        ns.ip("link", "set", "h0", "up")
        ns.hutch("network", "create", "c")
        assert inspect(ns, "c")["subnet"] == "10.89.2.0/24"
        cp = ns.hutch("network", "create", "--subnet", "10.89.1.0/24", "d", check=False)
        assert cp.returncode == 125 and "route to 10.89.0.0/23" in cp.stderr
        for n in ("a", "c"):
            ns.hutch("network", "rm", n)
        ns.ip("link", "del", "h0")
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []

    def test_crashed_run_cleaned_by_next_call(ns, state):
        ns.hutch("network", "create", "crash")
        p = ns.spawn("run", "--rm", "--network", "crash", "-p", "8095:80", "bb", "sleep", "60")
        wait_for(lambda: inspect(ns, "crash")["members"], what="the container to attach")
        assert len([l for l in ns.links() if l.startswith("hv")]) == 1
        os.kill(p.pid, signal.SIGKILL)  # hutch itself: its container dies with it
        p.wait()
        ns.hutch("ps", "-a")  # the runtime's own record of it is reconciled
        # the next call sees the namespace empty and its hutch gone: all of it goes
        assert inspect(ns, "crash")["members"] == []
        assert ns.links_settle(["lo"])
        assert "hutch" not in ns.ruleset()
        assert netns_files(state) == []
        ns.hutch("network", "rm", "crash")

    def test_stable_state_after_many_runs(ns):
        """Addresses come back: ten runs in a row leave one allocation at most."""
        ns.hutch("network", "create", "churn")
        seen = set()
        for _ in range(5):
            out = ns.hutch("run", "--rm", "--network", "churn", "bb", "ip", "-4", "-o",
                           "addr", "show", "eth0").stdout
            seen.add(out.split()[3])
        assert seen == {"10.89.0.2/24"}
        # the record as the last run left it is under RUN (a tmpfs: no disk write per
        # container); DATA's is the network as made
        net = json.loads((state_root(ns) / "run" / "networks" / "churn" / "network.json")
                         .read_text())
        assert net["addresses"] == [] and net["members"] == []
        made = json.loads((state_root(ns) / "networks" / "churn" / "network.json").read_text())
        assert made["members"] == [] and made["id"] == net["id"]
        ns.hutch("network", "rm", "churn")

    def state_root(ns):
        return ns.state.root

    def test_container_cannot_reach_host_loopback(ns):
        """route_localnet is on for the bridge (the host's 127.0.0.1:PORT is DNATed
        through it), so hutch drops packets from a bridge to 127/8 (CVE-2020-8558):
        a container with NET_ADMIN that routes 127.0.0.1 to its gateway gets nothing
        to the host's loopback. A counter of the test's own, in the test namespace's
        input hook, sees what would arrive."""
        ns.run("nft", "add table ip probe; add chain ip probe input { type filter hook "
               "input priority 0; policy accept; }; add rule ip probe input iifname "
               "\"hbr-*\" ip daddr 127.0.0.0/8 counter")
        ns.hutch("network", "create", "lb")
        script = ("ip route del local 127.0.0.1 dev lo table local; "
                  "ip route del local 127.0.0.0/8 dev lo table local; "
                  "ip route add 127.0.0.1/32 via 10.89.0.1 dev eth0 && "
                  "ping -c 2 -W 1 127.0.0.1; timeout 2 nc 127.0.0.1 22 </dev/null; "
                  "ip route get 127.0.0.1")
        # a published port: route_localnet is on for the bridge, the guard is needed
        out = ns.hutch("run", "--rm", "--init", "--cap-add", "NET_ADMIN", "--network", "lb",
                       "-p", "18099:80", "bb", "sh", "-c", script, check=False).stdout
        assert "via 10.89.0.1 dev eth0" in out, out  # the packets did go to the bridge
        counted = ns.run("nft", "list", "table", "ip", "probe").stdout
        assert "packets 0 bytes 0" in counted, counted
        ns.run("nft", "delete", "table", "ip", "probe")
        ns.hutch("network", "rm", "lb")

    def test_failed_start_and_parallel_runs(ns):
        ns.hutch("network", "create", "par")
        # a command that is not there: the container never runs, nothing of it stays
        cp = ns.hutch("run", "--rm", "--network", "par", "-p", "8097:80", "bb", "/nonexistent",
                      check=False)
        assert cp.returncode == 127, cp
        assert inspect(ns, "par")["members"] == []
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []
        assert "hutch" not in ns.ruleset()
        # four at once: the lock hands out four addresses, one bridge
        procs = [ns.spawn("run", "-d", "--name", f"p{i}", "--network", "par", "bb", "sleep",
                          "30") for i in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        members = inspect(ns, "par")["members"]
        assert sorted(m["name"] for m in members) == ["p0", "p1", "p2", "p3"]
        assert len({m["address"] for m in members}) == 4
        assert len([l for l in ns.links() if l.startswith("hbr-")]) == 1
        assert len([l for l in ns.links() if l.startswith("hv")]) == 4
        ns.hutch("rm", "-f", "p0", "p1", "p2", "p3")
        wait_for(lambda: not inspect(ns, "par")["members"], what="all to leave")
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []
        ns.hutch("network", "rm", "par")

    def test_one_container_on_two_networks(ns, www):
        """eth0 and eth1 in one namespace, the default route the first network's; it
        reaches both networks, which still cannot reach each other."""
        ns.hutch("network", "create", "one")
        ns.hutch("network", "create", "two")
        httpd(ns, www, "--network", "one", name="w1")
        httpd(ns, www, "--network", "two", name="w2")
        a1 = inspect(ns, "one")["members"][0]["address"]
        a2 = inspect(ns, "two")["members"][0]["address"]
        out = ns.hutch("run", "--rm", "--name", "both", "--network", "one", "--network", "two",
                       "bb", "sh", "-c",
                       f"ip -4 -o addr; ip route; wget -qO- http://{a1}/; "
                       f"wget -qO- http://{a2}/").stdout
        assert "eth0" in out and "eth1" in out
        assert out.count("default via") == 1 and "default via 10.89.0.1 dev eth0" in out
        assert out.count("hello from hutch") == 2
        cp = ns.hutch("run", "--rm", "--network", "one", "--network", "none", "bb", "true",
                      check=False)
        assert cp.returncode == 125 and "--network none cannot be combined" in cp.stderr
        ns.hutch("rm", "-f", "w1", "w2")
        for n in ("one", "two"):
            wait_for(lambda: not inspect(ns, n)["members"], what=f"{n} empty")
            ns.hutch("network", "rm", n)
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []

    def test_hairpin_to_own_published_port_and_ls_owner(ns, www):
        """A container reaches its own network's published port through the host's
        address (another of its containers, and the server itself): the server sees
        the gateway, so its reply comes back through the host. `network ls` has an
        OWNER column, empty for the user's own network."""
        ns.ip("link", "add", "hostif", "type", "veth", "peer", "name", "hostif1")
        ns.ip("addr", "add", "10.202.0.1/24", "dev", "hostif")
        ns.ip("link", "set", "hostif", "up")
        ns.ip("link", "set", "hostif1", "up")
        ns.hutch("network", "create", "hp")
        httpd(ns, www, "--network", "hp", "-p", "8086:80", name="hpweb")
        gw = inspect(ns, "hp")["gateway"]
        assert "hello" in wait_http(ns, "http://10.202.0.1:8086/")
        out = ns.hutch("run", "--rm", "--network", "hp", "bb", "timeout", "5", "wget", "-qO-",
                       "http://10.202.0.1:8086/").stdout
        assert "hello from hutch" in out
        # the server itself, through the host
        out = ns.hutch("exec", "hpweb", "timeout", "5", "wget", "-qO-",
                       "http://10.202.0.1:8086/").stdout
        assert "hello from hutch" in out
        log = ns.hutch("logs", "hpweb").stderr
        assert f"{gw}]" in log, log
        table = ns.hutch("network", "ls").stdout.splitlines()
        assert table[0].split()[-1] == "OWNER"
        [row] = [l for l in table if " hp " in l]
        assert row.split()[-1] == "1"  # CONTAINERS last: no owner
        [j] = [json.loads(l) for l in ns.hutch("network", "ls", "--format", "json")
               .stdout.splitlines()]
        assert "owner" in j and j["owner"] is None
        ns.hutch("rm", "-f", "hpweb")
        wait_for(lambda: not inspect(ns, "hp")["members"], what="hpweb to leave")
        ns.hutch("network", "rm", "hp")
        ns.ip("link", "del", "hostif")
