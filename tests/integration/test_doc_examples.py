"""Every stack file and compose file the docs show is one hutch reads.

Each ```ini block (a hutch.ini) and ```yaml block (a compose.yaml) of README.md and
docs/*.md is written to a directory of its own and read with `hutch stack config`:
- when the block right after it is a plain ``` block of messages (its first line
  ends in "error:" or "errors:"), the file must be refused with exactly those
  messages (file names as the docs write them, relative);
- otherwise it must load, and the hutch.ini `stack config` writes of it must load
  back to the same stack (`--format json` of both compared).
The env files an example names (env_file) are made empty beside it, as its reader
would have them. So the docs can never show a file hutch refuses, nor an error it
does not give.
"""
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\S*)\s*$")


def blocks(path):
    """(info, first line number, text) of each fenced block, in order."""
    out, info, start, buf = [], None, 0, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if info is None and m:
            info, start, buf = m.group(1), n, []
        elif info is not None and line.strip() == "```":
            out.append((info, start, "\n".join(buf) + "\n"))
            info = None
        elif info is not None:
            buf.append(line)
    return out


def examples():
    found = []
    for doc in DOCS:
        bs = blocks(doc)
        for i, (info, line, text) in enumerate(bs):
            if info not in ("ini", "yaml"):
                continue
            errors = None
            if i + 1 < len(bs):
                ninfo, nline, ntext = bs[i + 1]
                first = ntext.splitlines()[0] if ntext.strip() else ""
                between = doc.read_text().splitlines()[line + text.count("\n") + 1 : nline - 1]
                if (
                    ninfo == ""
                    and not any(x.strip() for x in between)
                    and re.search(r"errors?:$", first)
                ):
                    errors = ntext
            found.append(
                pytest.param(
                    info, text, errors, id=f"{doc.relative_to(REPO)}:{line}"
                )
            )
    return found


ALL = examples()


def test_the_docs_have_examples():
    # a change to the extraction that found nothing would pass every test below
    names = {p.id.split(":")[0] for p in ALL}
    assert {"README.md", "docs/stack-file.md", "docs/compose.md"} <= names, names
    assert sum(1 for p in ALL if p.values[2] is not None) >= 2


def env_files(kind, text):
    """The env files an example names, to be made beside it."""
    names = []
    if kind == "ini":
        for line in text.splitlines():
            m = re.match(r"\s*env_file\s*=\s*(.*)$", line)
            if m:
                names += shlex.split(m.group(1).split(" ;")[0])
    else:
        for m in re.finditer(r"env_file:\s*(\[[^\]]*\]|\S+)", text):
            v = m.group(1).strip("[]")
            names += [x.strip().strip("'\"") for x in v.split(",") if x.strip()]
        for m in re.finditer(r"-\s*path:\s*(\S+)", text):
            names.append(m.group(1).strip("'\""))
    return [n for n in names if n and not n.startswith("{")]


def config(hutch, cwd, name, *args, check=True):
    return hutch("stack", "config", "-f", name, *args, cwd=cwd, check=check)


def without_what_ini_cannot_hold(doc):
    doc.pop("volumes", None)
    return doc


@pytest.mark.parametrize("kind,text,errors", ALL)
def test_doc_example(hutch, tmp, kind, text, errors):
    name = "hutch.ini" if kind == "ini" else "compose.yaml"
    d = tmp / "example"
    d.mkdir()
    (d / name).write_text(text)
    for env in env_files(kind, text):
        (d / env).parent.mkdir(parents=True, exist_ok=True)
        (d / env).touch()
    r = config(hutch, d, name, check=False)
    if errors is not None:
        assert r.returncode != 0, f"the docs show errors, but it loads:\n{r.stdout}"
        got = r.stderr.replace(f"{d}/", "")
        assert got == errors, f"the docs show:\n{errors}\nhutch says:\n{got}"
        return
    assert r.returncode == 0, f"hutch refuses an example of the docs:\n{r.stderr}"
    want = json.loads(config(hutch, d, name, "--format", "json").stdout)
    back = tmp / "back"
    back.mkdir()
    (back / "hutch.ini").write_text(r.stdout)
    got = json.loads(config(hutch, back, "hutch.ini", "--format", "json").stdout)
    assert without_what_ini_cannot_hold(got) == without_what_ini_cannot_hold(want), r.stdout
