"""The embedded simulator dies with its host in every case, and never burns a core while idle.

Each test finds the simulator by its command line (``--parent <host pid>``, which the host gives
it) and polls generously for it to go: under a loaded machine that can take a while, and the
assertion is only that it goes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import StimctlError
from stimctl.host.record import summarise

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"
GONE_WITHIN_S = 30.0  # generous: the simulator usually goes within a few ms


def simulators_of(parent: int) -> list[int]:
    """PIDs of simulator processes started by ``parent`` (``--parent PARENT`` in argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sim" in argv and b"--parent" in argv:
            i = argv.index(b"--parent")
            if i + 1 < len(argv) and argv[i + 1] == str(parent).encode():
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_simulator(host: int, timeout: float = 30.0) -> int:
    found: list[int] = []

    def started() -> bool:
        found[:] = simulators_of(host)
        return bool(found)

    wait_for(started, timeout, f"the simulator of PID {host}")
    return found[0]


def wait_gone(pid: int) -> None:
    wait_for(lambda: not alive(pid), GONE_WITHIN_S, f"simulator PID {pid} to go")


def test_simulator_goes_when_stimctl_run_is_killed_with_sigkill(tmp_path: Path) -> None:
    host = subprocess.Popen(
        [sys.executable, "-m", "stimctl", "run", str(DEMO), "--yes",
         "--record", str(tmp_path / "r.jsonl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        sim = wait_for_simulator(host.pid)
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        wait_gone(sim)
    finally:
        host.kill()
        host.wait()


def test_simulator_goes_when_connect_fails_on_an_unwritable_record_folder(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(StimctlError, match="cannot create the records folder"):
        Controller.connect(None, record=not_a_folder / "r.jsonl")
    assert [pid for pid in simulators_of(os.getpid()) if alive(pid)] == []


def test_stimctl_run_with_an_unwritable_record_folder_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    host = subprocess.run(
        [sys.executable, "-m", "stimctl", "run", str(DEMO), "--yes",
         "--record", str(not_a_folder / "r.jsonl")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert host.returncode == 1 and "cannot create the records folder" in host.stderr
    assert "Traceback" not in host.stderr


# --- the TUI in a terminal (tmux) --------------------------------------------------------------


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A private tmux server (its own socket): ``tmux + [args]``; killed after the test."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    cmd = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    yield cmd
    subprocess.run([*cmd, "kill-server"], capture_output=True)


def start_tui(tmux: list[str], tmp_path: Path, record: Path) -> int:
    """`stimctl tui` (embedded real-time simulator) in a detached tmux session; the TUI's PID."""
    tui = f"{sys.executable} -m stimctl tui --record {record} --profiles {ROOT / 'profiles'}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "ui", "-x", "120", "-y", "40",
                    f"exec {tui}"], check=True, cwd=tmp_path)  # fmt: skip
    pane = subprocess.run([*tmux, "list-panes", "-t", "ui", "-F", "#{pane_pid}"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(pane.stdout.split()[0])


def screen(tmux: list[str]) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", "ui"], capture_output=True,
                          text=True).stdout  # fmt: skip


def test_closing_the_tuis_terminal_ends_the_tui_its_simulator_and_its_record(
    tmux: list[str], tmp_path: Path
) -> None:
    record = tmp_path / "tui.jsonl"
    tui = start_tui(tmux, tmp_path, record)
    sim = wait_for_simulator(tui)
    wait_for(lambda: "SIMULATOR: no patient output" in screen(tmux), 60, "the TUI to connect")
    subprocess.run([*tmux, "kill-session", "-t", "ui"], check=True)
    wait_gone(sim)
    wait_for(lambda: not alive(tui), GONE_WITHIN_S, "the TUI to exit")
    assert summarise(record).exit_code == 4  # SIGHUP: aborted, and the record closed


def test_ctrl_q_of_a_tui_whose_connect_failed_leaves_no_simulator(
    tmux: list[str], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    tui = start_tui(tmux, tmp_path, not_a_folder / "r.jsonl")
    wait_for(lambda: "NOT CONNECTED" in screen(tmux), 60, "the TUI to report the failed connect")
    assert [pid for pid in simulators_of(tui) if alive(pid)] == []
    subprocess.run([*tmux, "send-keys", "-t", "ui", "C-q"], check=True)
    wait_for(lambda: not alive(tui), GONE_WITHIN_S, "the TUI to exit")


def test_sigterm_ends_the_tui_like_stimctl_run_exit_4_record_closed(
    tmux: list[str], tmp_path: Path
) -> None:
    record = tmp_path / "tui.jsonl"
    tui = start_tui(tmux, tmp_path, record)
    sim = wait_for_simulator(tui)
    wait_for(lambda: "SIMULATOR: no patient output" in screen(tmux), 60, "the TUI to connect")
    os.kill(tui, signal.SIGTERM)
    wait_for(lambda: not alive(tui), GONE_WITHIN_S, "the TUI to exit")
    wait_gone(sim)
    assert summarise(record).exit_code == 4


def test_simulator_goes_when_the_tui_that_started_it_from_a_worker_thread_is_killed(
    tmux: list[str], tmp_path: Path
) -> None:
    # The TUI connects from a worker thread, which has ended by now: a PR_SET_PDEATHSIG tied
    # to it would have fired long ago (or, not asked for, never): the parent pipe decides.
    tui = start_tui(tmux, tmp_path, tmp_path / "tui.jsonl")
    sim = wait_for_simulator(tui)
    wait_for(lambda: "SIMULATOR: no patient output" in screen(tmux), 60, "the TUI to connect")
    assert alive(sim)  # the worker that started it is gone; the simulator is not
    os.kill(tui, signal.SIGKILL)
    wait_gone(sim)
