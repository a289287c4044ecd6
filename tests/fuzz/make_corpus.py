#!/usr/bin/env python3
"""Seed corpus for the layer fuzz targets: small archives, each a known way a
layer can be hostile or odd. Deterministic (fixed mtimes, sorted), so running
it again gives the same files.

    python3 make_corpus.py corpus/tar
"""
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile

MTIME = 1600000000


def info(name, type_=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.mtime = kw.pop("mtime", MTIME)
    ti.size = len(data) if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def build(entries, fmt=tarfile.PAX_FORMAT, pax_headers=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers or {}) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.size else None)
    # tarfile pads to 10 KiB records; keep just the two end blocks, as small
    # inputs fuzz faster
    raw = buf.getvalue().rstrip(b"\0")
    return raw + b"\0" * (-len(raw) % 512) + b"\0" * 1024


def d(name, mode=0o755, **kw):
    return info(name, tarfile.DIRTYPE, mode=mode, **kw)


def f(name, data=b"x", mode=0o644, **kw):
    return info(name, tarfile.REGTYPE, data, mode=mode, **kw)


def sym(name, target):
    return info(name, tarfile.SYMTYPE, mode=0o777, linkname=target)


def hard(name, target):
    return info(name, tarfile.LNKTYPE, linkname=target)


def with_checksum(block):
    """Recompute the checksum of a 512-byte header after editing it."""
    block = bytearray(block)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def basic():
    return build([
        d("./"), d("./etc/"), f("./etc/hostname", b"box\n"),
        sym("./etc/localtime", "/usr/share/zoneinfo/UTC"),
        hard("./etc/hostname2", "./etc/hostname"),
        info("./dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        info("./dev/loop0", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0),
        info("./run/fifo", tarfile.FIFOTYPE, mode=0o600),
        f("./bin/su", b"#!su", mode=0o4755, uid=1000, gid=1000),
    ])


def cases():
    c = {}
    c["basic.tar"] = basic()
    c["basic.tar.gz"] = gzip.compress(c["basic.tar"], mtime=0)
    half = len(c["basic.tar"]) // 2
    c["multimember.tar.gz"] = (gzip.compress(c["basic.tar"][:half], mtime=0) +
                               gzip.compress(c["basic.tar"][half:], mtime=0))
    c["padded.tar.gz"] = c["basic.tar.gz"] + b"\0" * 512
    if shutil.which("zstd"):
        c["basic.tar.zst"] = subprocess.run(["zstd", "-q", "-c", "-3"], input=c["basic.tar"],
                                            stdout=subprocess.PIPE, check=True).stdout

    c["dotdot.tar"] = build([f("../x", b"pwned")])
    c["dotdot_middle.tar"] = build([f("a/../../x", b"pwned")])
    c["absolute.tar"] = build([f("/abs/file", b"in the layer")])
    c["slashes.tar"] = build([f("//x//y/./z/", b"normalised")])
    c["symlink_root_escape.tar"] = build([sym("evil", "/"), f("evil/etc/passwd", b"pwned")])
    c["symlink_sentinel.tar"] = build([sym("evil", "../sentinel"), f("evil/pwned", b"pwned")])
    c["symlink_deep_escape.tar"] = build([d("a/"), d("a/b/"), sym("a/b/up", "../../../sentinel"),
                                         f("a/b/up/pwned", b"pwned")])
    c["symlink_dot_root.tar"] = build([sym("/.", "/"), f("etc/passwd", b"pwned")])
    c["symlink_dot.tar"] = build([sym(".", "../sentinel"), f("pwned", b"pwned")])
    c["symlink_loop.tar"] = build([sym("loop", "loop"), f("loop/x")])
    c["symlink_then_file.tar"] = build([sym("s", "../sentinel/secret"), f("s", b"replaced")])
    c["hardlink_escape.tar"] = build([hard("passwd", "../../etc/passwd")])
    c["hardlink_via_symlink.tar"] = build([sym("d", "../sentinel"), hard("stolen", "d/secret")])
    c["hardlink_to_symlink.tar"] = build([sym("s", "/etc/shadow"), hard("h", "s")])
    c["override.tar"] = build([f("a", b"1"), f("a", b"2"), sym("a", "b"), d("a/"),
                               d("full/"), f("full/x"), f("full", b"no")])
    c["readonly_dir.tar"] = build([d("ro/", 0o555), f("ro/file", b"inside", 0o444),
                                   d("ro/sub/", 0o500), f("ro/sub/f")])

    long_dir = "/".join(["d" * 90] * 3)
    c["pax_long.tar"] = build([
        f(long_dir + "/pax-leaf", b"pax"),
        sym("long-link", long_dir + "/target"),
    ])
    c["gnu_long.tar"] = build([
        f(long_dir + "/gnu-leaf", b"gnu"),
        sym("long-link", long_dir + "/target"),
        f("big-ids", b"", uid=2**32 - 2, gid=3000000000),  # base-256 in GNU format
    ], fmt=tarfile.GNU_FORMAT)
    pax_x = tarfile.TarInfo("xattrs")
    pax_x.size = 1
    pax_x.mtime = MTIME
    pax_x.pax_headers = {
        "SCHILY.xattr.user.color": "blue",
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        # VFS_CAP_REVISION_2, effective, permitted CAP_NET_RAW (as on ping)
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20" + "\x00" * 14,
        "mtime": "1600000000.123456789",
    }
    c["pax_xattrs.tar"] = build([(pax_x, b"x")])
    c["pax_global.tar"] = build([f("one"), f("two")],
                                pax_headers={"uid": "77", "comment": "global"})
    c["whiteouts.tar"] = build([d("etc/"), f("etc/.wh.motd", b""), d("var/"),
                                f("var/.wh..wh..opq", b""), f(".wh.top", b""),
                                d(".wh..wh.plnk/", 0o700), f("x/.wh...", b"")])

    b = basic()
    c["truncated_data.tar"] = b[:512 * 3 + 2]  # inside ./etc/hostname's data
    c["truncated_header.tar"] = b[:512 * 2 + 200]
    c["truncated.tar.gz"] = c["basic.tar.gz"][: len(c["basic.tar.gz"]) // 2]
    bad = bytearray(b)
    bad[512 * 2 + 10] ^= 0x20  # a name byte of a later header
    c["bad_checksum.tar"] = bytes(bad)

    # pax records with lengths that lie
    for name, rec in {"pax_huge_length.tar": b"99999999999 path=x\n",
                      "pax_short_length.tar": b"5 path=abc\n",
                      "pax_no_equals.tar": b"13 pathxxxxx\n"}.items():
        hdr = tarfile.TarInfo("PaxHeaders/x")
        hdr.type = tarfile.XHDTYPE
        hdr.size = len(rec)
        raw = hdr.tobuf(format=tarfile.USTAR_FORMAT)
        data = rec + b"\0" * (-len(rec) % 512)
        c[name] = raw + data + build([f("victim")])

    # a pax header claiming 2 GiB of records
    hdr = tarfile.TarInfo("PaxHeaders/huge")
    hdr.type = tarfile.XHDTYPE
    hdr.size = 2 << 30
    c["pax_huge_size.tar"] = hdr.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024

    # V7: no magic, directories marked by a trailing slash
    v7 = bytearray()
    for ti, data in [info("olddir/", tarfile.AREGTYPE, mode=0o755),
                     info("olddir/file", tarfile.AREGTYPE, b"v7")]:
        block = bytearray(ti.tobuf(format=tarfile.USTAR_FORMAT))
        block[257:265] = b"\0" * 8  # magic and version
        block[265:345] = b"\0" * 80  # uname, gname, devmajor, devminor
        v7 += with_checksum(block[:512]) + data + b"\0" * (-len(data) % 512)
    c["v7.tar"] = bytes(v7) + b"\0" * 1024

    c["sparse_type.tar"] = build([info("sparse", tarfile.GNUTYPE_SPARSE)], fmt=tarfile.GNU_FORMAT)
    c["empty.tar"] = b"\0" * 1024
    c["not_a_tar.bin"] = b'{"this is": "json"}\n'
    return c


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tar")
    out = sys.argv[1] if len(sys.argv) > 1 else default
    os.makedirs(out, exist_ok=True)
    made = cases()
    for name, data in sorted(made.items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
    print(f"wrote {len(made)} files to {out}")


if __name__ == "__main__":
    main()
