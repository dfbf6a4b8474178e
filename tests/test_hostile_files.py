"""Files a user points netspec at: folders, missing and read-only places, full disks, modes,
symlinks and devices (issue 11, section 6).

Every command that writes goes through netspec.files.write_atomic; every failure is a usage
error (exit 2) with one line and leaves the target as it was. CI runs as root, for whom
permission bits do not stop writes: read-only targets and folders are refused by their mode
bits, and these tests hold for root and for other users alike.
"""

import errno
import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT

from netspec import files
from netspec.cli import main

SPEC = ROOT / "specs" / "mlp.net"
GOOD = "network N {\n    input x: [4]\n    y = x -> dense(3, activation=relu)\n    output y\n}\n"
UGLY = "network N{\n input x:[4]\n y=x->dense(3,activation=relu)\n output y}\n"
IS_ROOT = os.geteuid() == 0

# (command line with OUT for the output) for every command that writes a file
WRITERS = {
    "fmt": ["fmt", str(SPEC), "--to", "yaml", "-o", "OUT"],
    "compile": ["compile", str(SPEC), "--target", "torch", "-o", "OUT"],
    "export": ["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", "OUT"],
}


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_cmd(command: str, out) -> list[str]:
    if command == "export":
        pytest.importorskip("onnx")
    return [str(out) if a == "OUT" else a for a in WRITERS[command]]


def assert_usage_error(code, err, *parts):
    assert code == 2, err
    assert err.startswith("netspec: error: cannot write ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Where the output cannot go ------------------------------------------------------------------------


@pytest.mark.parametrize("command", WRITERS)
def test_output_onto_a_directory(capsys, tmp_path, command):
    code, _, err = run(capsys, *write_cmd(command, tmp_path))
    assert_usage_error(code, err, "is a directory")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("command", WRITERS)
def test_output_into_a_missing_folder(capsys, tmp_path, command):
    code, _, err = run(capsys, *write_cmd(command, tmp_path / "no" / "out.x"))
    assert_usage_error(code, err, "no such directory", str(tmp_path / "no"))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("command", WRITERS)
def test_output_below_a_file(capsys, tmp_path, command):
    (tmp_path / "plain").write_text("x")
    code, _, err = run(capsys, *write_cmd(command, tmp_path / "plain" / "out.x"))
    assert_usage_error(code, err, "is not a directory")


@pytest.mark.parametrize("command", WRITERS)
def test_output_into_a_read_only_folder(capsys, tmp_path, command):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = run(capsys, *write_cmd(command, folder / "out.x"))
        assert_usage_error(code, err, "read-only", str(folder))
        assert listing(folder) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", WRITERS)
def test_read_only_target_is_refused_and_kept(capsys, tmp_path, command):
    out = tmp_path / "out.x"
    out.write_text("precious\n")
    out.chmod(0o444)
    code, _, err = run(capsys, *write_cmd(command, out))
    assert_usage_error(code, err, "read-only (mode 0444)")
    assert out.read_text() == "precious\n" and stat.S_IMODE(out.stat().st_mode) == 0o444
    assert listing(tmp_path) == ["out.x"]


def test_fmt_in_place_refuses_a_read_only_spec(capsys, tmp_path):
    spec = tmp_path / "m.net"
    spec.write_text(UGLY)
    spec.chmod(0o400)
    code, _, err = run(capsys, "fmt", "-i", spec)
    assert_usage_error(code, err, "read-only (mode 0400)")
    assert spec.read_text() == UGLY


def test_bad_output_fails_before_the_work(capsys, tmp_path, monkeypatch):
    """A missing folder is reported before the spec is even loaded (export may take long)."""
    import netspec.cli as cli

    monkeypatch.setattr(cli, "_load", lambda path: pytest.fail("loaded the spec before checking -o"))
    code, _, err = run(capsys, "export", SPEC, "-o", tmp_path / "no" / "m.onnx")
    assert_usage_error(code, err, "no such directory")


def test_names_with_control_characters_stay_on_one_line(capsys, tmp_path):
    out = tmp_path / "no\x1b[2J\nthere" / "m.py"
    code, _, err = run(capsys, "compile", SPEC, "--target", "torch", "-o", out)
    assert_usage_error(code, err, "\\x1b[2J\\x0athere")
    assert "\x1b" not in err


# Full disks -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("command", WRITERS)
def test_output_onto_dev_full(capsys, command):
    code, _, err = run(capsys, *write_cmd(command, "/dev/full"))
    assert_usage_error(code, err, "'/dev/full': no space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_disk_full_during_the_write_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    out = tmp_path / "model.py"
    out.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    code, _, err = run(capsys, "compile", SPEC, "--target", "torch", "-o", out)
    assert_usage_error(code, err, f"'{out}': no space left on device")
    assert out.read_text() == "old\n" and listing(tmp_path) == ["model.py"]


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


@pytest.mark.parametrize("command", ["compile", "export"])
def test_file_size_limit_in_a_subprocess(tmp_path, command):
    """A real short write: RLIMIT_FSIZE (which binds root too) stops the file at 2000 bytes."""
    out = tmp_path / "out.x"
    out.write_text("old\n")
    cmd = write_cmd(command, out)
    if command == "export":
        cmd[1] = str(SPEC)  # 100k parameters: far over the limit
    proc = subprocess.run([sys.executable, "-m", "netspec", *cmd], capture_output=True, text=True,
                          preexec_fn=_limit_file_size, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"netspec: error: cannot write '{out}': file too large")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert out.read_text() == "old\n" and listing(tmp_path) == ["out.x"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_standard_output_on_a_full_disk():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "netspec", "compile", str(SPEC), "--target", "torch"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == "netspec: error: cannot write standard output: no space left on device\n"


# What the target keeps -----------------------------------------------------------------------------------


def test_fmt_in_place_keeps_the_mode(capsys, tmp_path):
    spec = tmp_path / "m.net"
    spec.write_text(UGLY)
    spec.chmod(0o600)
    assert run(capsys, "fmt", "-i", spec)[0] == 0
    assert spec.read_text() == GOOD
    assert stat.S_IMODE(spec.stat().st_mode) == 0o600


@pytest.mark.parametrize("command", WRITERS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_output_keeps_the_mode_of_the_file_it_replaces(capsys, tmp_path, command, mode):
    out = tmp_path / "out.x"
    out.write_text("old\n")
    out.chmod(mode)
    assert run(capsys, *write_cmd(command, out))[0] == 0
    assert out.read_text(errors="replace") != "old\n"
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert listing(tmp_path) == ["out.x"]


def test_new_files_get_the_umask_mode(capsys, tmp_path):
    old = os.umask(0o027)
    try:
        assert run(capsys, "compile", SPEC, "--target", "torch", "-o", tmp_path / "m.py")[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.py").stat().st_mode) == 0o640


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another user")
def test_root_keeps_the_owner_of_the_file_it_replaces(capsys, tmp_path):
    out = tmp_path / "m.py"
    out.write_text("old\n")
    os.chown(out, 4242, 4243)
    out.chmod(0o640)
    assert run(capsys, "compile", SPEC, "--target", "torch", "-o", out)[0] == 0
    st = out.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4243, 0o640)


# Symlinks and devices --------------------------------------------------------------------------------------


def test_fmt_in_place_writes_through_a_symlink(capsys, tmp_path):
    real = tmp_path / "real.net"
    real.write_text(UGLY)
    real.chmod(0o600)
    link = tmp_path / "link.net"
    link.symlink_to("real.net")
    assert run(capsys, "fmt", "-i", link)[0] == 0
    assert link.is_symlink() and os.readlink(link) == "real.net"
    assert real.read_text() == GOOD and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert listing(tmp_path) == ["link.net", "real.net"]


def test_output_through_a_chain_of_symlinks_and_a_dangling_one(capsys, tmp_path):
    (tmp_path / "sub").mkdir()
    real = tmp_path / "sub" / "model.py"
    real.write_text("old\n")
    (tmp_path / "mid.py").symlink_to(real)
    (tmp_path / "out.py").symlink_to("mid.py")
    assert run(capsys, "compile", SPEC, "--target", "torch", "-o", tmp_path / "out.py")[0] == 0
    assert "class MLP(nn.Module)" in real.read_text()
    assert (tmp_path / "out.py").is_symlink() and (tmp_path / "mid.py").is_symlink()
    dangling = tmp_path / "dangling.py"
    dangling.symlink_to("sub/new.py")
    assert run(capsys, "compile", SPEC, "--target", "torch", "-o", dangling)[0] == 0
    assert dangling.is_symlink() and "class MLP" in (tmp_path / "sub" / "new.py").read_text()


def test_symlink_loop_and_read_only_link_target(capsys, tmp_path):
    loop = tmp_path / "loop.py"
    loop.symlink_to("loop.py")
    code, _, err = run(capsys, "compile", SPEC, "--target", "torch", "-o", loop)
    assert_usage_error(code, err, "too many levels of symbolic links")
    real = tmp_path / "ro.py"
    real.write_text("old\n")
    real.chmod(0o444)
    (tmp_path / "to_ro.py").symlink_to("ro.py")
    code, _, err = run(capsys, "compile", SPEC, "--target", "torch", "-o", tmp_path / "to_ro.py")
    assert_usage_error(code, err, "read-only")
    assert real.read_text() == "old\n"


@pytest.mark.skipif(not IS_ROOT, reason="only root can make a symlink another user owns")
def test_planted_symlink_in_a_shared_folder_is_refused(capsys, tmp_path):
    """/tmp-style folder (sticky, world-writable): another user's link is not followed, as the kernel's
    protected_symlinks rule would refuse; one's own link is."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = shared / "model.py"
    planted.symlink_to(victim)
    os.lchown(planted, 4242, 4242)
    code, _, err = run(capsys, "compile", SPEC, "--target", "torch", "-o", planted)
    assert_usage_error(code, err, "another user owns")
    assert victim.read_text() == "precious\n" and planted.is_symlink()
    os.lchown(planted, 0, 0)
    assert run(capsys, "compile", SPEC, "--target", "torch", "-o", planted)[0] == 0
    assert "class MLP" in victim.read_text()


def test_a_fifo_is_written_in_place_not_replaced(capsys, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert run(capsys, "compile", SPEC, "--target", "torch", "-o", fifo)[0] == 0
    reader.join(60)
    assert got and "class MLP(nn.Module)" in got[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# The one mechanism ----------------------------------------------------------------------------------


def test_write_error_is_one_line_and_an_os_error(tmp_path):
    with pytest.raises(OSError) as info:
        files.write_atomic(tmp_path / "no" / "x", b"")
    assert isinstance(info.value, files.WriteError) and info.value.errno == errno.ENOENT
    assert str(info.value) == f"cannot write '{tmp_path / 'no' / 'x'}': no such directory '{tmp_path / 'no'}'"


def test_library_writers_raise_write_error(tmp_path):
    import netspec
    from netspec.weights import init_weights, save_weights

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    with pytest.raises(files.WriteError, match="is a directory"):
        save_weights(init_weights(spec, seed=0), tmp_path)
    onnx_backend = pytest.importorskip("netspec.backends.onnx")
    with pytest.raises(files.WriteError, match="no such directory"):
        onnx_backend.save(spec.to_onnx(), tmp_path / "no" / "m.onnx")


def test_every_writer_uses_netspec_files():
    """No module writes files by itself: open(..., "w"), write_text, os.replace and friends live in files.py."""
    import re

    pattern = re.compile(r"open\([^)]*['\"][wax]b?['\"]|\.write_text\(|\.write_bytes\(|os\.replace\(|os\.rename\("
                         r"|mkstemp\(|NamedTemporaryFile\(|shutil\.(copy|move)")
    offenders = []
    for path in sorted((ROOT / "netspec").rglob("*.py")):
        if path.name == "files.py" or path.name == "_parser.py":
            continue  # _parser.py is lark's generated standalone parser; netspec never passes it a cache
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []
