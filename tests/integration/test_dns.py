"""hutch's DNS server run alone (`hutch internal dns`), queried with dig over UDP and TCP.

Everything is on loopback: the server listens on a 127.x address, the clients pick their
network by their source address (dig -b), and "the internet" is a fake upstream resolver
of this file's own on other 127.x addresses. Nothing leaves the machine.
"""
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import wait_for

# One random 127.R.0.0/16 per session, so that parallel runs do not meet.
R = random.randint(100, 250)
SERVER = f"127.{R}.0.53"
FRONT_CLIENT = f"127.{R}.1.10"
BACK_CLIENT = f"127.{R}.2.10"
STRANGER = f"127.{R}.9.10"


def records(extra_front_hosts=()):
    return {"networks": [
        {"name": "front", "subnets": ["10.89.1.0/24", f"127.{R}.1.0/24"],
         "domains": ["shop", "dns.hutch"],
         "hosts": [
             {"names": ["shop-web-1", "web", "web.shop", "www"], "addresses": ["10.89.1.2"]},
             {"names": ["shop-web-2", "web", "web.shop"], "addresses": ["10.89.1.3"]},
             {"names": ["shop-web-3", "web", "web.shop"], "addresses": ["10.89.1.5"]},
             {"names": ["shop-db-1", "db", "db.shop"], "addresses": ["10.89.1.4"]},
             *extra_front_hosts,
         ]},
        {"name": "back", "subnets": ["10.89.2.0/24", f"127.{R}.2.0/24"], "domains": ["shop"],
         "hosts": [{"names": ["shop-vault-1", "vault", "vault.shop"],
                    "addresses": ["10.89.2.9"]}]},
    ]}


# ---------------------------------------------------------------- a fake upstream


def _qname(msg):
    labels, off = [], 12
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels).lower(), off + 5


class FakeUpstream:
    """A DNS responder on 127.R.0.N (UDP and TCP, one port). mode: "answer" (A 192.0.2.N
    for any name), "silent" (reads and says nothing), "servfail", "truncate" (TC and no
    answer over UDP, the full answer over TCP). Every query is recorded."""

    def __init__(self, n, mode="answer"):
        self.addr = f"127.{R}.0.{n}"
        self.answer_ip = f"192.0.2.{n}"
        self.mode = mode
        self.seen = []  # (transport, id, name)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.addr, 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.addr, self.port))
        self.tcp.listen(16)
        self.stop = False
        self.threads = [threading.Thread(target=self._udp_loop, daemon=True),
                        threading.Thread(target=self._tcp_loop, daemon=True)]
        for t in self.threads:
            t.start()

    @property
    def spec(self):
        return f"{self.addr}:{self.port}"

    def _reply(self, q, tcp):
        qid = struct.unpack(">H", q[:2])[0]
        name, qend = _qname(q)
        self.seen.append(("tcp" if tcp else "udp", qid, name))
        if self.mode == "silent":
            return None
        if self.mode == "servfail":
            return q[:2] + struct.pack(">HHHHH", 0x8182, 1, 0, 0, 0) + q[12:qend]
        if self.mode == "truncate" and not tcp:
            return q[:2] + struct.pack(">HHHHH", 0x8380, 1, 0, 0, 0) + q[12:qend]
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(self.answer_ip)
        return q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + q[12:qend] + rr

    def _udp_loop(self):
        self.udp.settimeout(0.2)
        while not self.stop:
            try:
                q, peer = self.udp.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            a = self._reply(q, False)
            if a:
                self.udp.sendto(a, peer)

    def _tcp_loop(self):
        self.tcp.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            with c:
                c.settimeout(2)
                try:
                    n = struct.unpack(">H", c.recv(2, socket.MSG_WAITALL))[0]
                    q = c.recv(n, socket.MSG_WAITALL)
                except (socket.timeout, OSError, struct.error):
                    continue
                a = self._reply(q, True)
                if a:
                    c.sendall(struct.pack(">H", len(a)) + a)

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()


# ---------------------------------------------------------------- the server


class Server:
    def __init__(self, binary, rec_path, upstreams, extra=()):
        self.rec_path = rec_path
        self.proc = subprocess.Popen(
            [str(binary), "internal", "dns", "--listen", f"{SERVER}:0",
             "--records", str(rec_path),
             *[a for u in upstreams for a in ("--upstream", u.spec)], *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.lines = []
        self.port = None
        while True:
            line = self.proc.stderr.readline()
            assert line, f"hutch internal dns ended early: {self.lines}"
            self.lines.append(line)
            m = re.search(r"\(port (\d+), udp and tcp\)", line)
            if m:
                self.port = int(m.group(1))
            if "dns: ready" in line:
                break
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def dig(self, name, qtype="A", src=FRONT_CLIENT, tcp=False, short=True, timeout=3,
            extra=()):
        args = ["dig", f"@{SERVER}", "-p", str(self.port), "-b", src, "+tries=1",
                f"+time={timeout}", name, qtype, *extra]
        if tcp:
            args.append("+tcp")
        if short:
            args.append("+short")
        t0 = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
        r.elapsed = time.monotonic() - t0
        return r

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=5)
        self.reader.join(timeout=2)
        return rc


@pytest.fixture
def dns_env(tmp_path, request):
    made = {"servers": [], "upstreams": []}

    def upstream(n, mode="answer"):
        u = FakeUpstream(n, mode)
        made["upstreams"].append(u)
        return u

    def server(upstreams, recs=None, extra=()):
        p = tmp_path / "records.json"
        p.write_text(json.dumps(recs or records()))
        os.chmod(tmp_path, 0o755)
        os.chmod(p, 0o644)
        s = Server(_binary(), p, upstreams, extra)
        made["servers"].append(s)
        return s

    yield upstream, server
    for s in made["servers"]:
        assert s.stop() == 0, "".join(s.lines)
    for u in made["upstreams"]:
        u.close()


def _binary():
    from conftest import _hutch_bin
    return _hutch_bin()


def status(r):
    m = re.search(r"status: (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    return m.group(1)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_names(dns_env, tcp):
    upstream, server = dns_env
    up = upstream(61)
    s = server([up])
    for name in ("web", "web.shop", "WEB.Shop.", "web.shop."):
        r = s.dig(name, tcp=tcp)
        assert sorted(r.stdout.split()) == ["10.89.1.2", "10.89.1.3", "10.89.1.5"], r.stdout
    assert s.dig("www", tcp=tcp).stdout.split() == ["10.89.1.2"]  # an alias
    assert s.dig("shop-db-1", tcp=tcp).stdout.split() == ["10.89.1.4"]  # container name
    assert s.dig("db.shop", tcp=tcp).stdout.split() == ["10.89.1.4"]  # SERVICE.STACK
    # TTL 0, authoritative
    r = s.dig("db.shop", tcp=tcp, short=False)
    assert re.search(r"^db\.shop\.\s+0\s+IN\s+A\s+10\.89\.1\.4$", r.stdout, re.M), r.stdout
    assert re.search(r"flags: qr aa rd ra", r.stdout), r.stdout
    # PTR for a container's address: its first name
    r = subprocess.run(["dig", f"@{SERVER}", "-p", str(s.port), "-b", FRONT_CLIENT, "+short",
                        "+tries=1", *(["+tcp"] if tcp else []), "-x", "10.89.1.4"],
                       capture_output=True, text=True, timeout=10)
    assert r.stdout.split() == ["shop-db-1."], r.stdout
    assert up.seen == [], "local names must never reach the upstream"


def test_replicas_rotate(dns_env):
    upstream, server = dns_env
    s = server([upstream(61)])
    answers = [s.dig("web").stdout.split() for _ in range(6)]
    for a in answers:
        assert sorted(a) == ["10.89.1.2", "10.89.1.3", "10.89.1.5"]
    firsts = [a[0] for a in answers]
    # each answer starts one further on: every replica gets to be first
    assert all(firsts[i] != firsts[i + 1] for i in range(5)), answers
    assert set(firsts) == {"10.89.1.2", "10.89.1.3", "10.89.1.5"}


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_unknown_local_names_nxdomain_at_once(dns_env, tcp):
    upstream, server = dns_env
    up = upstream(61)
    s = server([up])
    for name in ("nope.shop", "a.b.web.shop", "x.dns.hutch"):
        r = s.dig(name, tcp=tcp, short=False)
        assert status(r) == "NXDOMAIN", r.stdout
        assert r.elapsed < 1.0
        assert re.search(r"^(shop|dns\.hutch)\.\s+0\s+IN\s+SOA\s", r.stdout, re.M), r.stdout
    # an unknown address in the network's subnet: its reverse zone is hutch's
    r = s.dig("99.1.89.10.in-addr.arpa", "PTR", tcp=tcp, short=False)
    assert status(r) == "NXDOMAIN", r.stdout
    # AAAA of a name that has only A: NOERROR, no answer (NODATA), not NXDOMAIN
    r = s.dig("web.shop", "AAAA", tcp=tcp, short=False)
    assert status(r) == "NOERROR" and "ANSWER: 0," in r.stdout, r.stdout
    assert up.seen == [], "hutch's own names must never be forwarded"


def test_networks_see_only_their_names(dns_env):
    upstream, server = dns_env
    s = server([upstream(61)])
    assert s.dig("vault", src=BACK_CLIENT).stdout.split() == ["10.89.2.9"]
    assert status(s.dig("vault.shop", src=FRONT_CLIENT, short=False)) == "NXDOMAIN"
    assert status(s.dig("web.shop", src=BACK_CLIENT, short=False)) == "NXDOMAIN"
    # a client on no network is refused, local name or not: no open resolver
    assert status(s.dig("web.shop", src=STRANGER, short=False)) == "REFUSED"
    assert status(s.dig("example.com", src=STRANGER, short=False)) == "REFUSED"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_forwarding(dns_env, tcp):
    upstream, server = dns_env
    up = upstream(61)
    s = server([up])
    r = s.dig("Example.COM", tcp=tcp, extra=("+qid=4660",))
    assert r.stdout.split() == ["192.0.2.61"], r.stdout + r.stderr
    assert len(up.seen) == 1
    transport, qid, name = up.seen[0]
    assert (transport, name) == ("tcp" if tcp else "udp", "example.com")
    # the upstream never sees the client's id
    assert qid != 4660
    # a single-label name that is not local is forwarded too
    assert s.dig("intranet", tcp=tcp).stdout.split() == ["192.0.2.61"]


def test_silent_upstream_next_one_answers(dns_env):
    upstream, server = dns_env
    silent, good = upstream(61, "silent"), upstream(62)
    s = server([silent, good])
    r = s.dig("example.org", timeout=8)
    # 5 s split between two: the second is asked after 2.5 s
    assert r.stdout.split() == ["192.0.2.62"], r.stdout + r.stderr
    assert 2.3 < r.elapsed < 4.0, r.elapsed
    assert [x[2] for x in silent.seen] == ["example.org"]
    assert [x[2] for x in good.seen] == ["example.org"]
    # SERVFAIL from the first: the next one at once
    silent.mode = "servfail"
    r = s.dig("example.net", timeout=8)
    assert r.stdout.split() == ["192.0.2.62"]
    assert r.elapsed < 1.0


def test_all_upstreams_silent_servfail_within_budget(dns_env):
    upstream, server = dns_env
    ups = [upstream(61, "silent"), upstream(62, "silent"), upstream(63, "silent")]
    s = server(ups)
    r = s.dig("example.org", short=False, timeout=9)
    assert status(r) == "SERVFAIL", r.stdout
    assert 4.8 < r.elapsed < 6.5, r.elapsed
    for u in ups:  # each asked once, in turn
        assert [x[2] for x in u.seen] == ["example.org"]


def test_truncated_upstream_answer_tcp_fallback(dns_env):
    upstream, server = dns_env
    up = upstream(61, "truncate")
    s = server([up])
    # dig gets TC over UDP from hutch, asks again over TCP, hutch forwards over TCP
    r = s.dig("big.example", short=False)
    assert "Truncated, retrying in TCP mode" in r.stdout, r.stdout
    assert re.search(r"^big\.example\.\s+60\s+IN\s+A\s+192\.0\.2\.61$", r.stdout, re.M), r.stdout
    assert [x[0] for x in up.seen] == ["udp", "tcp"]
    # a client that does not retry sees the TC answer as the upstream gave it
    r = s.dig("big.example", short=False, extra=("+ignore",))
    assert re.search(r"flags: qr tc rd ra", r.stdout), r.stdout


def test_sighup_rereads_records(dns_env):
    upstream, server = dns_env
    up = upstream(61)
    s = server([up])
    assert status(s.dig("cache.shop", short=False)) == "NXDOMAIN"
    new = records([{"names": ["shop-cache-1", "cache", "cache.shop"],
                    "addresses": ["10.89.1.40"]}])
    new["networks"][0]["hosts"] = [h for h in new["networks"][0]["hosts"]
                                   if h["names"][0] != "shop-web-1"]
    tmp = s.rec_path.with_suffix(".new")
    tmp.write_text(json.dumps(new))
    os.chmod(tmp, 0o644)
    os.rename(tmp, s.rec_path)
    n = len(s.lines)
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("reloaded" in x for x in s.lines[n:]), timeout=5, what="reload")
    assert s.dig("cache.shop").stdout.split() == ["10.89.1.40"]
    assert sorted(s.dig("web").stdout.split()) == ["10.89.1.3", "10.89.1.5"]
    # a broken file: said so, and the names served so far stay
    s.rec_path.write_text("{not json")
    n = len(s.lines)
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("keeping the names served so far" in x for x in s.lines[n:]),
             timeout=5, what="the reload error")
    assert s.dig("cache.shop").stdout.split() == ["10.89.1.40"]
    assert up.seen == []


def test_bad_invocations(tmp_path):
    b = str(_binary())
    r = subprocess.run([b, "internal", "dns", "--listen", f"{SERVER}:0"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 125 and "--listen and --records are required" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"networks": [{"hosts": [{"names": ["a b"], "addresses": ["10.0.0.1"]}]}]}')
    r = subprocess.run([b, "internal", "dns", "--listen", f"{SERVER}:0", "--records", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 125
    assert str(bad) in r.stderr and '"a b"' in r.stderr, r.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(records()))
    r = subprocess.run([b, "internal", "dns", "--listen", "nowhere:53", "--records", str(good)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 125 and '"nowhere:53"' in r.stderr, r.stderr
    r = subprocess.run([b, "internal", "dns", "--listen", f"{SERVER}:0", "--records",
                        str(good), "--upstream", "192.0.2.1:99999"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 125 and '"192.0.2.1:99999"' in r.stderr, r.stderr


def _tcp_query(qid, name, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    return struct.pack(">H", len(q)) + q


def test_tcp_pipelined_then_half_closed(dns_env):
    """Several queries on one connection (one forwarded, local ones after it), then the
    client shuts its side: every answer still comes, each with its query's id."""
    upstream, server = dns_env
    up = upstream(61)
    s = server([up])
    c = socket.create_connection((SERVER, s.port), source_address=(FRONT_CLIENT, 0), timeout=5)
    with c:
        c.sendall(_tcp_query(1, "example.com") + _tcp_query(2, "db.shop")
                  + _tcp_query(3, "nope.shop"))
        c.shutdown(socket.SHUT_WR)
        got = {}
        buf = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
        while buf:
            n = struct.unpack(">H", buf[:2])[0]
            msg, buf = buf[2:2 + n], buf[2 + n:]
            got[struct.unpack(">H", msg[:2])[0]] = struct.unpack(">H", msg[2:4])[0] & 0xf
    # the server closed the connection once everything was answered
    assert got == {1: 0, 2: 0, 3: 3}, got
    assert [x[:1] + x[2:] for x in up.seen] == [("tcp", "example.com")]


def test_many_replicas_truncated_then_tcp(dns_env):
    """40 replicas do not fit in 512 bytes: the UDP answer is TC with no records, and the
    client gets all 40 over TCP."""
    upstream, server = dns_env
    up = upstream(61)
    many = [{"names": [f"shop-worker-{i}", "worker", "worker.shop"],
             "addresses": [f"10.89.1.{100 + i}"]} for i in range(40)]
    s = server([up], recs=records(many))
    r = s.dig("worker.shop", short=False, extra=("+noedns", "+ignore"))
    assert re.search(r"flags: qr aa tc rd ra", r.stdout) and "ANSWER: 0," in r.stdout, r.stdout
    r = s.dig("worker.shop", extra=("+noedns",))
    assert sorted(r.stdout.split()) == sorted(f"10.89.1.{100 + i}" for i in range(40)), r.stdout
    # with EDNS0 (1232 bytes) they fit over UDP
    r = s.dig("worker.shop", short=False, extra=("+bufsize=1232", "+ignore"))
    assert "ANSWER: 40," in r.stdout and " tc " not in r.stdout, r.stdout
    assert up.seen == []
