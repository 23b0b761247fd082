"""llark.jsonl's sole_writer: one process at a time writes a resumable batch job's output."""

import subprocess
import sys

import pytest

from llark.jsonl import OutputBusyError, sole_writer
from tests.conftest import REPO


def test_a_second_writer_is_refused_by_name_until_the_first_is_done(tmp_path):
    out = tmp_path / "data" / "qa.jsonl"
    with sole_writer(out):
        with pytest.raises(OutputBusyError, match=r"qa\.jsonl: another process is writing it .*qa\.jsonl\.lock"):
            with sole_writer(out):
                pass
        with sole_writer(tmp_path / "data" / "annotations.jsonl"):  # another output is another lock
            pass
    with sole_writer(out):  # released at the end of the block
        pass


def test_a_process_that_dies_holding_the_lock_leaves_it_free(tmp_path):
    out = tmp_path / "qa.jsonl"
    holder = ("import os, sys\nfrom llark.jsonl import sole_writer\n"
              "with sole_writer(sys.argv[1]):\n    os._exit(3)  # dies inside the block, never leaving it\n")
    assert subprocess.run([sys.executable, "-c", holder, str(out)], cwd=REPO).returncode == 3
    with sole_writer(out):
        pass
