"""The repo's pointers to itself: every file path and every quoted section a reader is sent to is there.

    python -m pytest tests/test_docs.py

The README, docs/ and the code's comments send readers to scripts ("benchmarks/meter_model.py") and to sections
('README, "The audio pipeline"', 'docs/demo-measurements.md, "Measured: family dropout"'). Measurements move
between those files as they age, and a pointer left behind sends the reader nowhere; these tests name each one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".txt", ".cfg", ".toml"}
# A path inside the repo's own folders, as the text writes it (not data/..., which runs create).
REPO_PATH = re.compile(r"(?<![\w/.-])((?:benchmarks|preprocessing|llark|configs|docs|tests)/[\w/.-]*"
                       r"\.(?:py|yaml|md|json|safetensors))")
# README or a docs/ file, then a comma (or "'s") and a quoted name: a section (or a bold lead) the reader is sent to.
SECTION_POINTER = re.compile(r"\b(README|docs/[\w-]+\.md)(?:'s)?,? \"([^\"]{3,100})\"")


def tracked_texts() -> dict[str, str]:
    listing = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0:  # an unpacked archive, no git index: nothing says which files are the repo's
        pytest.skip(f"not a git checkout ({listing.stderr.strip()})")
    names = listing.stdout.split()
    return {name: (ROOT / name).read_text(encoding="utf-8") for name in names
            if Path(name).suffix in TEXT_SUFFIXES or name == "Makefile"}


def one_line(text: str) -> str:
    """The text with its line breaks (and a comment's leading '#') as single spaces: pointers wrap across lines."""
    return re.sub(r"\s*\n[ \t]*(?:#[ \t]*)?", " ", text)


def test_every_repo_path_the_texts_name_exists():
    missing = sorted({f"{path} (named in {name})" for name, text in tracked_texts().items()
                      for path in REPO_PATH.findall(text) if not (ROOT / path).exists()})
    assert not missing, "paths named but not in the repo:\n" + "\n".join(missing)


def test_every_section_pointer_names_text_in_its_file():
    texts = tracked_texts()
    flat = {name: one_line(text) for name, text in texts.items() if name.endswith(".md")}
    pointers, dangling = 0, []
    for name, text in texts.items():
        for target, section in SECTION_POINTER.findall(one_line(text)):
            target = "README.md" if target == "README" else target
            # "Measured: a fresh clone with the tagger refitted..." abbreviates: the part before the dots must be there
            wanted = section.split("...")[0].rstrip(" .,")
            pointers += 1
            if wanted not in flat.get(target, ""):
                dangling.append(f'{name}: {target}, "{section}"')
    assert pointers > 20, "the pattern no longer finds the repo's pointers"  # so a broken regex cannot pass silently
    assert not dangling, "pointers to sections not in their file:\n" + "\n".join(dangling)
