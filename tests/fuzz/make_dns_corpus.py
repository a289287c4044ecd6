#!/usr/bin/env python3
"""Seed corpus for fuzz_dns: ordinary queries and answers, and the nasty packets a DNS
server meets (compression loops, forward pointers, cut names, oversized labels and
names, bad OPT records, wrong counts). Usage: make_dns_corpus.py corpus/dns"""
import os
import struct
import sys


def name(n):
    out = b""
    for label in n.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def query(n, qtype=1, qclass=1, **kw):
    return header(**kw) + name(n) + struct.pack(">HH", qtype, qclass)


def opt(size=1232, version=0, flags=0x8000, rdata=b""):
    return b"\0" + struct.pack(">HHBBHH", 41, size, 0, version, flags, len(rdata)) + rdata


def rr(owner, rtype, rdata, ttl=0):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


seeds = {
    "a_web": query("web"),
    "a_web_shop_mixed_case": query("WeB.sHoP"),
    "aaaa_web": query("web.shop", 28),
    "any_web": query("web", 255),
    "soa_apex": query("shop", 6),
    "ptr_known": query("2.1.89.10.in-addr.arpa", 12),
    "ptr_unknown": query("99.1.89.10.in-addr.arpa", 12),
    "ptr_v6": query(".".join("3000000000000000" + "0000000000000df"[::-1]) + ".ip6.arpa", 12),
    "nx_local": query("nope.shop"),
    "forward": query("example.com"),
    "many_a": query("a"),
    "edns": query("web.shop", 1, ar=1) + opt(),
    "edns_small": query("a", 1, ar=1) + opt(size=100),
    "edns_badvers": query("web", 1, ar=1) + opt(version=1),
    "edns_two_opt": query("web", 1, ar=2) + opt() + opt(),
    "edns_opt_in_answer": query("web", 1, an=1) + opt(),
    "edns_rdata_past_end": query("web", 1, ar=1) + opt()[:-2] + b"\x00\x40",
    "chaos_class": query("version.bind", 16, 3),
    "qr_set": query("web", flags=0x8100),
    "opcode_update": query("web", flags=0x2800),
    "qdcount_0": header(qd=0),
    "qdcount_2": query("web", qd=2) + name("db") + b"\0\1\0\1",
    "header_only": header(),
    "short": b"\x12\x34\x01",
    "empty": b"",
    "root": query(".", 2),
    "pointer_self": header() + b"\xc0\x0c\0\1\0\1",
    "pointer_forward": header() + b"\xc0\x12\0\1\0\1\0\0",
    "pointer_loop_two": header(an=1) + name("x") + b"\0\1\0\1" + b"\xc0\x17\xc0\x15",
    "pointer_chain": header(an=1) + name("a.b.c") + b"\0\1\0\1"
    + rr(b"\1x\xc0\x0c", 1, b"\1\2\3\4") + rr(b"\1y\xc0\x1b", 1, b"\1\2\3\4"),
    "pointer_cut": header() + b"\3web\xc0",
    "label_64": header() + b"\x40" + b"x" * 64 + b"\0\0\1\0\1",
    "label_reserved_80": header() + b"\x80abc\0\0\1\0\1",
    "name_too_long": header() + (b"\x3f" + b"y" * 63) * 5 + b"\0\0\1\0\1",
    "name_cut": header() + b"\x10web",
    "label_with_dot": header() + b"\x08web.shop\0\0\1\0\1",
    "label_with_nul": header() + b"\x03w\0b\x04shop\0\0\1\0\1",
    "answer_from_upstream": header(flags=0x8180, an=1) + name("example.com") + b"\0\1\0\1"
    + rr(b"\xc0\x0c", 1, b"\x5d\xb8\xd8\x22", 300),
    "answer_truncated": header(flags=0x8380) + name("example.com") + b"\0\1\0\1",
    "answer_servfail": header(flags=0x8182) + name("example.com") + b"\0\1\0\1",
    "answer_rdlen_huge": header(flags=0x8180, an=1) + name("example.com") + b"\0\1\0\1"
    + b"\xc0\x0c\0\1\0\1\0\0\0\0\xff\xff\1\2",
    "counts_lie": query("web", an=0xffff, ns=0xffff, ar=0xffff),
}

out = sys.argv[1] if len(sys.argv) > 1 else "corpus/dns"
os.makedirs(out, exist_ok=True)
for k, v in seeds.items():
    with open(os.path.join(out, k), "wb") as f:
        f.write(v)
print(f"{len(seeds)} seeds in {out}")
