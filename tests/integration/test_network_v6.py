"""Dual stack networks (net/): `hutch network create --ipv6 [--subnet6 CIDR]`, a ULA /64
chosen per network, each container's IPv6 address at its IPv4 address's offset (as
stable per key), its IPv6 default route, AAAA and ip6.arpa PTR from the network's DNS
server, and `table ip6 hutch`: isolation, masquerading and published ports over IPv6.

Network safety (shared/DESIGN.md): every test runs hutch inside a network namespace the
test makes (test_network.NetNS) and deletes after; "another host" is a second namespace
joined to it by a veth. No packet leaves them.
"""
import ipaddress
import json
import os
import subprocess

import pytest

from conftest import wait_for
from test_network import NetNS, inspect, netns_files

ROOT = os.geteuid() == 0
BUSYBOX = "/bin/busybox"


if not ROOT:
    def test_rootless_ipv6_network(hutch, tmp):
        """Rootless, --ipv6 gives the network an IPv6 subnet in the rootless namespace:
        containers reach each other over IPv6 and by AAAA names; a port on [::1] is
        refused saying why, and an IPv6 port on a network without IPv6 too."""
        hutch("network", "create", "--ipv6", "v6")
        hutch("network", "create", "v4")
        www = tmp / "www"
        www.mkdir()
        (www / "index.html").write_text("hello over v6\n")
        os.chmod(tmp, 0o755)
        os.chmod(www, 0o755)
        ids = []
        try:
            info = json.loads(hutch("network", "inspect", "v6").stdout)[0]
            assert info["ipv6"] is True and info["subnet6"].startswith("fd"), info
            ids.append(hutch("run", "-d", "--name", "srv6", "--network", "v6", "-v",
                             f"{www}:/www:ro", "bb", "httpd", "-f", "-p", "80", "-h",
                             "/www").stdout.strip())
            [m] = json.loads(hutch("network", "inspect", "v6").stdout)[0]["members"]
            out = hutch("run", "--rm", "--network", "v6", "bb", "sh", "-c",
                        "ip -6 route; ip link show eth0; nslookup -type=AAAA srv6; "
                        f"timeout 5 wget -qO- http://[{m['address6']}]/").stdout
            assert f"default via {info['gateway6']} dev eth0" in out, out
            assert f"Address: {m['address6']}" in out, out
            assert "hello over v6" in out and "mtu 65520" in out, out
            cp = hutch("run", "--rm", "--network", "v4", "-p", "[::]:18080:80", "bb", "true",
                       check=False)
            assert cp.returncode == 125 and "network 'v4' has no IPv6" in cp.stderr, cp.stderr
            cp = hutch("run", "--rm", "--network", "v6", "-p", "[::1]:18080:80", "bb", "true",
                       check=False)
            assert cp.returncode == 125 and "route_localnet" in cp.stderr, cp.stderr
        finally:
            for i in ids:
                hutch("rm", "-f", i, check=False)
            for n in ("v6", "v4"):
                hutch("network", "rm", n, check=False)
else:
    @pytest.fixture
    def ns(state):
        made = []

        def make(tag="a"):
            n = NetNS(state, tag)
            made.append(n)
            return n
        first = make("v6")
        first.more = make
        yield first
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
        (d / "index.html").write_text("hello over v6\n")
        return d

    def httpd(ns, www, *flags, name):
        return ns.hutch("run", "-d", "--name", name, "-v", f"{www}:/www:ro", *flags, "bb",
                        "httpd", "-f", "-vv", "-p", "80", "-h", "/www").stdout.strip()

    def get(ns, url, client=None):
        cp = (client or ns).run("timeout", "3", BUSYBOX, "wget", "-qO-", url, check=False)
        return cp.stdout if cp.returncode == 0 else None

    def test_dual_stack_addresses_routes_and_names(ns, www):
        ns.hutch("network", "create", "--ipv6", "dual")
        ns.hutch("network", "create", "--ipv6", "other")
        info = inspect(ns, "dual")
        sub6 = ipaddress.ip_network(info["subnet6"])
        assert info["ipv6"] is True and sub6.prefixlen == 64
        assert sub6.subnet_of(ipaddress.ip_network("fd00::/8"))
        assert ipaddress.ip_address(info["gateway6"]) == sub6.network_address + 1
        # each network its own /64, derived from its id
        assert inspect(ns, "other")["subnet6"] != info["subnet6"]
        httpd(ns, www, "--network", "dual", "--network-alias", "web6", name="srv")
        [m] = inspect(ns, "dual")["members"]
        a6 = m["address6"]
        # the same offset into the /64 as the IPv4 address into the /24
        assert ipaddress.ip_address(a6) == sub6.network_address + int(m["address"].split(".")[-1])
        out = ns.hutch("run", "--rm", "--network", "dual", "bb", "sh", "-c",
                       "ip -6 -o addr show eth0 scope global; ip -6 route; "
                       f"timeout 5 wget -qO- http://[{a6}]/; "
                       "nslookup -type=AAAA srv; nslookup web6").stdout
        assert f"default via {info['gateway6']} dev eth0" in out, out
        assert f"{sub6.network_address}" .rstrip(":") in out and "/64" in out, out
        assert "hello over v6" in out, out
        assert out.count(f"Address: {a6}") >= 2, out  # AAAA for the name and the alias
        # dig from the gateway's address (a client on the network; the server listens
        # on the IPv4 gateway, which the containers' resolv.conf names): AAAA and PTR
        aaaa = ns.run("dig", "+time=2", "+tries=1", "-b", info["gateway"], f"@{info['dns']}",
                      "web6", "AAAA").stdout
        assert f"IN\tAAAA\t{a6}" in aaaa, aaaa
        ptr = ns.run("dig", "+time=2", "+tries=1", "-b", info["gateway"], f"@{info['dns']}",
                     "-x", a6).stdout
        rev = ipaddress.ip_address(a6).reverse_pointer
        assert f"{rev}. 0 IN PTR srv." in " ".join(ptr.split()), ptr
        # the server listens on the IPv6 gateway too: a container asks it over IPv6
        gw6 = info["gateway6"]
        out = ns.hutch("run", "--rm", "--network", "dual", "bb", "sh", "-c",
                       f"nslookup -type=AAAA web6 {gw6}; nslookup srv {gw6}").stdout
        assert out.count(f"Server:\t\t{gw6}") == 2, out
        assert out.count(f"Address: {a6}") >= 1 and f"Address: {m['address']}" in out, out
        tcp = ns.run("dig", "+tcp", "+time=2", "+tries=1", "-b", gw6, f"@{gw6}", "web6",
                     "AAAA").stdout
        assert f"IN\tAAAA\t{a6}" in tcp, tcp
        # the same container again gets the same IPv6 address (its key's IPv4 one)
        ns.hutch("rm", "-f", "srv")
        wait_for(lambda: not inspect(ns, "dual")["members"], what="srv to leave")
        # another network's containers cannot reach it over IPv6 either
        httpd(ns, www, "--network", "dual", name="srv2")
        a6 = inspect(ns, "dual")["members"][0]["address6"]
        cp = ns.hutch("run", "--rm", "--init", "--network", "other", "bb", "timeout", "2",
                      "wget", "-qO-", f"http://[{a6}]/", check=False)
        assert cp.returncode != 0 and "hello" not in cp.stdout
        ns.hutch("rm", "-f", "srv2")
        for n in ("dual", "other"):
            wait_for(lambda: not inspect(ns, n)["members"], what=f"{n} empty")
            ns.hutch("network", "rm", n)
        assert ns.links_settle(["lo"]) and netns_files(ns.state) == []
        assert "hutch" not in ns.ruleset()

    def test_ipv6_published_port_outbound_and_given_subnet(ns, www):
        """-p 8080:80 answers on the host's IPv6 addresses too, the other host's address
        kept; a container reaches out over IPv6, masqueraded; --subnet6 is taken as
        given and refused when it clashes."""
        peer = ns.more("peer")
        ns.ip("link", "add", "tohost", "type", "veth", "peer", "name", "fromhost", "netns",
              peer.name)
        ns.ip("addr", "add", "fd99::1/64", "dev", "tohost", "nodad")
        ns.ip("link", "set", "tohost", "up")
        peer.ip("addr", "add", "fd99::2/64", "dev", "fromhost", "nodad")
        peer.ip("link", "set", "fromhost", "up")
        ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
        cp = ns.hutch("network", "create", "--subnet6", "fd99::/80", "clash", check=False)
        assert cp.returncode == 125 and "route to fd99::/64" in cp.stderr, cp.stderr
        cp = ns.hutch("network", "create", "--subnet6", "fd42::1/64", "bad", check=False)
        assert cp.returncode == 125 and "host bits" in cp.stderr, cp.stderr
        # the host's [::1] cannot be DNATed (no route_localnet for IPv6): said plainly
        cp = ns.hutch("run", "--rm", "-p", "[::1]:8080:80", "bb", "true", check=False)
        assert cp.returncode == 125 and "IPv6 has no route_localnet" in cp.stderr, cp.stderr
        assert "publish on [::]" in cp.stderr, cp.stderr
        ns.hutch("network", "create", "--subnet6", "fd42:1:2:3::/64", "pub6")
        assert inspect(ns, "pub6")["subnet6"] == "fd42:1:2:3::/64"
        httpd(ns, www, "--network", "pub6", "-p", "8080:80", name="web")
        assert ns.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
        assert "hello over v6" in wait_for(lambda: get(ns, "http://[fd99::1]:8080/", peer),
                                            what="the published port over IPv6")
        log = wait_for(lambda: (lambda t: t if "fd99::2]" in t else None)(
            ns.hutch("logs", "web").stderr), what="the peer's address in httpd's log")
        assert "fd99::2]" in log
        # and over IPv4, as before
        assert "hello over v6" in wait_for(lambda: get(ns, "http://127.0.0.1:8080/"),
                                            what="the port on 127.0.0.1")
        # outbound: the peer, with no route to the containers' subnet, answers a
        # container over IPv6: it was masqueraded to the host's address
        far = subprocess.Popen(peer.cmd(BUSYBOX, "httpd", "-f", "-p", "80", "-h", www),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: get(peer, "http://[fd99::2]/"), what="the peer's server")
            out = ns.hutch("run", "--rm", "--network", "pub6", "bb", "sh", "-c",
                           "ip -6 route; timeout 5 wget -qO- http://[fd99::2]/").stdout
        finally:
            far.kill()
            far.wait()
        assert "default via fd42:1:2:3::1" in out and "hello over v6" in out, out
        rules = ns.run("nft", "list", "table", "ip6", "hutch").stdout
        assert "fd42:1:2:3::/64" in rules and "masquerade" in rules, rules
        ns.hutch("rm", "-f", "web")
        wait_for(lambda: not inspect(ns, "pub6")["members"], what="web to leave")
        # hutch switched IPv6 routing on: it switches it off with the last member
        assert ns.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"
        assert "hutch" not in ns.ruleset()
        ns.hutch("network", "rm", "pub6")
        assert ns.links_settle({"lo", "tohost"})

    def test_ports_on_one_ipv6_address_and_on_every_ipv6_address(ns, www):
        """-p [ADDR]:HOST:CONTAINER answers on that IPv6 address of the host's only,
        -p [::]:HOST:CONTAINER on every IPv6 address and none of the IPv4 ones; both
        keep the other host's address, reach from the host itself by its own IPv6
        address, refuse a network without IPv6 and clash with IPv4's every address."""
        peer = ns.more("peer")
        ns.ip("link", "add", "tohost", "type", "veth", "peer", "name", "fromhost", "netns",
              peer.name)
        ns.ip("addr", "add", "fd98::1/64", "dev", "tohost", "nodad")
        ns.ip("addr", "add", "fd98::3/64", "dev", "tohost", "nodad")
        ns.ip("link", "set", "tohost", "up")
        peer.ip("addr", "add", "fd98::2/64", "dev", "fromhost", "nodad")
        peer.ip("link", "set", "fromhost", "up")
        ns.ip("addr", "add", "10.97.0.1/24", "dev", "tohost")
        peer.ip("addr", "add", "10.97.0.2/24", "dev", "fromhost")
        ns.hutch("network", "create", "v4only")
        cp = ns.hutch("run", "--rm", "--network", "v4only", "-p", "[::]:8090:80", "bb", "true",
                      check=False)
        assert cp.returncode == 125 and "network 'v4only' has no IPv6" in cp.stderr, cp.stderr
        assert "--ipv6" in cp.stderr and "[::]:8090:80/tcp" in cp.stderr, cp.stderr
        ns.hutch("network", "create", "--ipv6", "p6")
        one = httpd(ns, www, "--network", "p6", "-p", "[fd98::1]:8091:80", name="one")
        every = httpd(ns, www, "--network", "p6", "-p", "[::]:8092:80", name="every")
        members = {m["name"]: m for m in inspect(ns, "p6")["members"]}
        assert members["one"]["ports"] == ["[fd98::1]:8091:80/tcp"], members
        assert members["every"]["ports"] == ["[::]:8092:80/tcp"], members
        rules = ns.run("nft", "list", "table", "ip6", "hutch").stdout
        assert "ip6 daddr fd98::1 tcp dport 8091 dnat to" in rules, rules
        assert "tcp dport 8092 dnat to" in rules, rules
        assert "8091" not in ns.run("nft", "list", "table", "ip", "hutch").stdout
        assert "8092" not in ns.run("nft", "list", "table", "ip", "hutch").stdout
        # no port on the host's IPv4 loopback: the bridge needs no route_localnet
        bridge = inspect(ns, "p6")["bridge"]
        assert ns.run("cat", f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").stdout == "0\n"
        # from another host: the one address, and every IPv6 address
        assert "hello over v6" in wait_for(lambda: get(ns, "http://[fd98::1]:8091/", peer),
                                            what="[fd98::1]:8091 from the peer")
        assert get(ns, "http://[fd98::3]:8091/", peer) is None
        for addr in ("[fd98::1]", "[fd98::3]"):
            assert "hello over v6" in wait_for(
                lambda: get(ns, f"http://{addr}:8092/", peer), what=f"{addr}:8092")
        assert get(ns, "http://10.97.0.1:8092/", peer) is None  # not on IPv4
        log = ns.hutch("logs", "every").stderr
        assert "fd98::2]" in log, log  # the peer's address kept
        # from the host itself, by its own IPv6 address
        assert "hello over v6" in wait_for(lambda: get(ns, "http://[fd98::3]:8092/"),
                                            what="[::]:8092 from the host")
        assert "hello over v6" in wait_for(lambda: get(ns, "http://[fd98::1]:8091/"),
                                            what="[fd98::1]:8091 from the host")
        # taken ports are refused: IPv4's every address is IPv6's too
        cp = ns.hutch("run", "--rm", "--network", "p6", "-p", "8092:80", "bb", "true",
                      check=False)
        assert cp.returncode == 125 and "already published by container every" in cp.stderr
        cp = ns.hutch("run", "--rm", "--network", "p6", "-p", "[fd98::1]:8092:80", "bb",
                      "true", check=False)
        assert cp.returncode == 125 and "already published by container every" in cp.stderr
        # another IPv6 address, or an IPv4 one, of the same port is free
        ns.hutch("run", "--rm", "--network", "p6", "-p", "[fd98::3]:8091:80", "bb", "true")
        ns.hutch("run", "--rm", "--network", "p6", "-p", "127.0.0.1:8091:80", "bb", "true")
        # a port a socket of the host's holds on that IPv6 address is refused
        holder = subprocess.Popen(ns.cmd("python3", "-c", "import socket, time\n"
                                         "s = socket.socket(socket.AF_INET6)\n"
                                         "s.bind(('fd98::3', 8093)); s.listen()\n"
                                         "print('ready', flush=True); time.sleep(30)"),
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "ready\n"
            cp = ns.hutch("run", "--rm", "--network", "p6", "-p", "[fd98::3]:8093:80", "bb",
                          "true", check=False)
            assert cp.returncode == 125 and "in use on the host" in cp.stderr, cp.stderr
            ns.hutch("run", "--rm", "--network", "p6", "-p", "[fd98::1]:8093:80", "bb", "true")
        finally:
            holder.kill()
            holder.wait()
        ns.hutch("rm", "-f", one, every)
        wait_for(lambda: not inspect(ns, "p6")["members"], what="p6 empty")
        assert "hutch" not in ns.ruleset()

    def test_stack_network_ipv6_and_compose_enable_ipv6(ns, tmp):
        """[network.NAME] ipv6 = true / subnet6 = CIDR, and compose's enable_ipv6: the
        stack's services get IPv6 addresses, AAAA names (SERVICE, SERVICE.STACK, alias,
        ALIAS.STACK) from the stack's DNS, and the network goes with down."""
        import test_stack_net as tsn
        sns = tsn.NetNS.__new__(tsn.NetNS)  # the test's namespace, seen as test_stack_net's
        sns.state, sns.name, sns.path = ns.state, ns.name, ns.path
        st = tsn.NetStack(sns, tmp, """
            [stack]
            name = STACK

            [network.back]
            subnet6 = fd42:6:6:6::/64

            [network.default]
            ipv6 = true

            [service.web]
            image = bb
            command = sleep 1000
            networks = default back
            aliases = www
            ports = [::]:18094:80

            [service.cli]
            image = bb
            command = sleep 1000
            """)
        try:
            st.up()
            net = st.network()
            assert net["ipv6"] is True and net["subnet6"].startswith("fd")
            assert st.network("back")["subnet6"] == "fd42:6:6:6::/64"
            [web] = [m for m in net["members"] if m["name"] == f"{st.name}-web-1"]
            out = st.sh("cli-1", f"ip -6 route; nslookup -type=AAAA web; "
                        f"nslookup -type=AAAA www.{st.name}; "
                        f"ping -6 -c 1 -W 2 {web['address6']}").stdout
            assert f"default via {net['gateway6']}" in out, out
            assert out.count(f"Address: {web['address6']}") == 2, out
            # the stack's server answers on each network's IPv6 gateway too
            out6 = st.sh("cli-1", f"nslookup -type=AAAA web {net['gateway6']}; "
                         f"nslookup web.{st.name} {net['gateway6']}").stdout
            assert out6.count(f"Address: {web['address6']}") == 2, out6
            assert f"Address: {web['address']}" in out6, out6
            assert "1 packets received" in out, out
            # network ls: the stack's networks name their owner
            rows = [l for l in ns.hutch("network", "ls").stdout.splitlines()
                    if f" {st.name}_default " in l]
            assert len(rows) == 1 and rows[0].endswith(f"stack {st.name}"), rows
            # its port on every IPv6 address of the host's, and no IPv4 one
            rules6 = ns.run("nft", "list", "table", "ip6", "hutch").stdout
            assert f"tcp dport 18094 dnat to [{web['address6']}]:80" in rules6, rules6
            assert "18094" not in ns.run("nft", "list", "table", "ip", "hutch").stdout
            backs = [m["address6"] for m in st.network("back")["members"]]
            assert backs and all(a.startswith("fd42:6:6:6::") for a in backs)
        finally:
            st.down()
        assert not ns.hutch("network", "ls", "-q").stdout.split()
        # compose: enable_ipv6 makes the network dual stack
        cst = tsn.NetStack(sns, tmp, """
            services:
              app:
                image: bb
                command: sleep 1000
            networks:
              default:
                enable_ipv6: true
            """, compose=True)
        try:
            cst.up()
            assert cst.network()["ipv6"] is True
            [m] = cst.network()["members"]
            out = cst.sh("app-1", "ip -6 -o addr show eth0 scope global").stdout
            assert m["address6"] in out, out
        finally:
            cst.down()
        assert "hutch" not in ns.ruleset()
