"""Every relative link in the project's Markdown files leads somewhere: the file exists and, where the
link names a section, the file has a heading of that name (GitHub's anchors)."""
import re
import subprocess
from pathlib import Path

from helpers import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {anchor(line.lstrip("#")) for line in FENCE.sub("", markdown).splitlines() if line.startswith("#")}


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    broken = []
    for file in files:
        text = FENCE.sub("", file.read_text())
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, section = target.partition("#")
            dest = (file.parent / path).resolve() if path else file
            if not dest.exists():
                broken.append(f"{file.relative_to(root)}: {target} (no such file)")
            elif section and dest.suffix == ".md" and section not in anchors(dest.read_text()):
                broken.append(f"{file.relative_to(root)}: {target} (no such section)")
    return broken


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode:
        return sorted(ROOT.rglob("*.md"))
    return [ROOT / name for name in listed.stdout.split()]


def test_every_relative_link_in_the_docs_leads_somewhere():
    assert broken_links(markdown_files()) == []


def test_a_missing_file_or_section_is_reported(tmp_path):
    (tmp_path / "a.md").write_text("# A title, here\n[ok](b.md#the-section) [ok](#a-title-here) [gone](c.md) "
                                   "[wrong](b.md#other) [web](https://example.org/x)\n")
    (tmp_path / "b.md").write_text("```\n# not a heading\n```\n## The section\n")
    found = broken_links([tmp_path / "a.md"], root=tmp_path)
    assert found == ["a.md: c.md (no such file)", "a.md: b.md#other (no such section)"]
