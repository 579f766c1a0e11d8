"""The inside of the local sandbox: one program, its tests, one verdict per test.

Started by local.py as `python -I harness.py` (inside fresh PID, network, mount, IPC and UTS
namespaces for the `local` backend), with the job as JSON on stdin; it writes the verdicts as JSON
on stdout. Standard library only, and never imported by the program it runs.

Three kinds of process, so that the verdict is read outside the program:

- the runner (this process, root, PID 1 of the namespace): makes every mount read-only, mounts a
  size-limited tmpfs on the work folder, and for each test starts a judge, waits for its verdict
  within the test's time, then kills every process of the program's user and reaps them;
- the judge (root, one per test): runs the test's own code (asserts, HumanEval's `check`) or
  compares stdout; every name the program defines is a proxy that calls into
- the program (a random unprivileged uid, empty environment, rlimits, no new privileges, a seccomp
  filter on the system calls that open the kernel to it): runs the
  model's code and answers calls with plain data only (None, bool, int, float, complex, str,
  bytes, list, tuple, dict, set, frozenset, of exactly those types).

So exiting early (`sys.exit(0)`, `os._exit(0)`, an atexit or excepthook), an object whose `==`
is always True, printing "passed", or patching builtins changes nothing the judge reads: the
judge compares values it decoded itself, and a program that stops answering fails the test. The
program cannot signal, trace or write to the judge or the runner (another uid, their pipes closed
in it).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import struct
import sys
import time


# ---- plain data across the pipe: exact builtin types only, decoded by the judge -----------------

MAX_DEPTH = 64
_HEADER = struct.Struct("!Q")


class NotPlain(TypeError):
    """A value that is not plain data (a user class, a generator, an always-equal object...)."""


def encode(value, depth: int = 0):
    """`value` as JSON-able tagged data; NotPlain for anything but exact builtin data types."""
    if depth > MAX_DEPTH:
        raise NotPlain(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple, set, frozenset):
        return [kind.__name__, [encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if kind is bytes:
        return ["bytes", value.decode("latin-1")]
    if kind is complex:
        return ["complex", value.real, value.imag]
    raise NotPlain(f"a {kind.__name__} is not plain data")


_CONTAINERS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def decode(data, depth: int = 0):
    """The value `encode` wrote; ValueError for anything else (the data may come from the program)."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not list or len(data) < 2 or type(data[0]) is not str:
        raise ValueError("malformed value")
    tag, body = data[0], data[1]
    if tag in _CONTAINERS and type(body) is list:
        return _CONTAINERS[tag](decode(v, depth + 1) for v in body)
    if tag == "dict" and type(body) is list:
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in (_pair(p) for p in body)}
    if tag == "bytes" and type(body) is str:
        return body.encode("latin-1")
    if tag == "complex" and len(data) == 3 and all(type(x) in (int, float) for x in data[1:]):
        return complex(data[1], data[2])
    raise ValueError(f"malformed value tagged {tag[:20]!r}")


def _pair(item):
    if type(item) is not list or len(item) != 2:
        raise ValueError("malformed dict item")
    return item


def send(fd: int, message) -> None:
    body = json.dumps(message).encode()
    send_all(fd, _HEADER.pack(len(body)) + body)


def send_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class Ended(BaseException):
    """The other side closed the pipe (the program exited or died). A BaseException, so that a
    test's own `except Exception` cannot swallow it."""


class TimedOut(BaseException):
    """The test's time ran out."""


def recv(fd: int, deadline: float | None, max_bytes: int):
    header = _read_exactly(fd, _HEADER.size, deadline)
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise ValueError(f"a message of {size:,} bytes, over the {max_bytes:,}-byte output limit")
    return json.loads(_read_exactly(fd, size, deadline))


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < size:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and (left <= 0 or not select.select([fd], [], [], left)[0]):
            raise TimedOut()
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            raise Ended()
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ---- the runner ----------------------------------------------------------------------------------

JUDGE_MARGIN_S = 1.0  # the judge's own time past the test's (its imports, the comparison)
TIMED_OUT = "timed out"
NOT_RUN = "not run: an earlier test timed out"
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
_libc = None


def _c():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _prctl(option: int, value: int) -> None:
    if _c().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(f"prctl({option}) failed")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    import ctypes

    enc = lambda s: None if s is None else s.encode()
    if _c().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


_OCTAL = re.compile(r"\\([0-7]{3})")


def _mount_points() -> list[tuple[str, str]]:
    """(mount point, per-mount options) of every mount this namespace sees."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 for a space
            points.append((point, fields[5]))
    return points


def open_python(paths: list[str]) -> None:
    """Hide each folder only root may enter (e.g. /root, where pyenv keeps Python) under an empty
    tmpfs, and bind back into it the folders of `paths` below it (this interpreter's own), so that
    the program's uid can import the standard library and sees nothing else there."""
    closed: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)}):
        parts = path.split(os.sep)
        for depth in range(2, len(parts) + 1):
            folder = os.sep.join(parts[:depth])
            if not os.stat(folder).st_mode & 0o001:
                closed.setdefault(folder, []).append(path)
                break
    for folder, inside in closed.items():
        handles = [(path, os.open(path, os.O_PATH)) for path in inside]
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path, fd in handles:
            os.makedirs(path, 0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
            os.close(fd)


MS_REC = 16384
DEVICES = ("null", "zero", "full", "random", "urandom")


def minimal_dev() -> None:
    """A fresh /dev holding only null, zero, full, random and urandom (no disks, GPUs, terminals or
    shared memory), and the /dev/fd, stdin, stdout, stderr links."""
    handles = [(name, os.open(f"/dev/{name}", os.O_PATH)) for name in DEVICES if os.path.exists(f"/dev/{name}")]
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for name, fd in handles:
        with open(f"/dev/{name}", "w"):
            pass
        _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND, None)
        os.close(fd)
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{link}")


def confine_filesystem(workdir: str, size_mb: int) -> None:
    """Python's own folders opened to the program (open_python), a minimal /dev, every mount read-only and nosuid
    (in this mount namespace only), then a fresh tmpfs of `size_mb` on the work folder: the one
    place the program can write, gone with the namespace."""
    open_python([*sys.path, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))])
    minimal_dev()
    for point, options in _mount_points():
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        flags |= MS_NOEXEC if "noexec" in options.split(",") else 0
        flags |= MS_NODEV if "nodev" in options.split(",") else 0  # /dev/null stays a device
        try:
            _mount(None, point, None, flags, None)
        except OSError as exc:
            if exc.errno != 2 or point == "/":  # ENOENT: a mount hidden under another (the old /dev/shm)
                raise
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,nr_inodes=8192,mode=0755")


# ---- system calls the program may not make: a seccomp filter, built by libseccomp ---------------
#
# Everything else is allowed (the default action); these get EPERM. They are the kernel's largest
# attack surface for an unprivileged process, none of which a program under test needs: new
# namespaces (an unprivileged user namespace opens mount, network and the rest to it), tracing,
# kernel modules and keyrings, eBPF, perf, io_uring, userfaultfd, and mount-API calls.
DENIED_SYSCALLS = (
    "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
    "fspick", "mount_setattr", "open_by_handle_at", "name_to_handle_at",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "fanotify_init", "lookup_dcookie", "quotactl", "acct",
    "swapon", "swapoff", "reboot", "syslog", "vhangup", "iopl", "ioperm", "uselib", "personality",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
)
# clone() with any of these flags gets EPERM too (its first argument; the second on s390, where
# the stack comes first); clone3() passes its flags in memory a filter cannot read, so it gets ENOSYS and the C library
# falls back to clone() (as container runtimes do).
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_CMP_MASKED_EQ = 0x7FFF0000, 0x00050000, 7
EPERM, ENOSYS = 1, 38
SECCOMP_LIBRARY = "libseccomp.so.2"
_syscall_filter = None  # (library, filter context), built by run_job when the job asks for it


def seccomp_missing() -> str:
    """Why libseccomp cannot be loaded here ("" when it can): the local backends check it up
    front, so a machine without it is told to install it before any program is tried."""
    import ctypes

    try:
        ctypes.CDLL(SECCOMP_LIBRARY)
    except OSError as exc:
        return str(exc) or f"{SECCOMP_LIBRARY} could not be loaded"
    return ""


def system_call_filter():
    """The filter, built once in the runner (its forks inherit it) and loaded by each program
    (`load_filter`). OSError when libseccomp is missing or refuses a rule."""
    import ctypes

    class ArgCompare(ctypes.Structure):  # struct scmp_arg_cmp
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]

    lib = ctypes.CDLL(SECCOMP_LIBRARY, use_errno=True)
    lib.seccomp_init.restype, lib.seccomp_init.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCompare)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")

    def rule(name: str, action: int, *compares: ArgCompare) -> None:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == -1:  # not a system call on this architecture
            return
        array = (ArgCompare * len(compares))(*compares) if compares else None
        rc = lib.seccomp_rule_add_array(ctx, action, number, len(compares), array)
        if rc < 0:
            raise OSError(-rc, f"seccomp rule for {name}: {os.strerror(-rc)}")

    for name in DENIED_SYSCALLS:
        rule(name, SCMP_ACT_ERRNO | EPERM)
    rule("clone3", SCMP_ACT_ERRNO | ENOSYS)
    flags_argument = 1 if os.uname().machine.startswith("s390") else 0
    for flag in CLONE_NAMESPACE_FLAGS:
        rule("clone", SCMP_ACT_ERRNO | EPERM, ArgCompare(flags_argument, SCMP_CMP_MASKED_EQ, flag, flag))
    return lib, ctx


def load_filter(built) -> None:
    """In the program's process, after no_new_privs: from here on the denied calls fail."""
    lib, ctx = built
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (setsid orphans, forks, threads): a child that becomes `uid`
    and calls kill(-1), which reaches exactly the processes that user may signal."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def kill_children() -> None:
    """SIGKILL our children (orphans come to us, the subreaper): the program's processes when
    there is no uid of its own to kill by (a host that is not root)."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    parent = f.read().rsplit(")", 1)[1].split()[1]
                if parent == me:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, IndexError):
                continue


def reap_all(uid: int | None, deadline: float) -> bool:
    """Kill the program's processes and reap every child; False when some outlive `deadline`."""
    while True:
        if uid is not None:
            kill_uid(uid)
        else:
            kill_children()
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


def run_job(job: dict) -> dict:
    limits = job["limits"]
    workdir, uid = job["workdir"], job.get("uid")
    global _syscall_filter
    if job.get("seccomp"):
        try:
            _syscall_filter = system_call_filter()
        except (OSError, AttributeError) as exc:  # AttributeError: a libseccomp without these functions
            return {"error": f"the sandbox could not build its system-call filter ({SECCOMP_LIBRARY}): {exc}"}
    try:
        if job.get("namespaces"):
            confine_filesystem(workdir, limits["file_size_mb"])
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans (setsid too) come back to us, to be reaped
    except OSError as exc:
        return {"error": f"the sandbox could not confine the file system: {exc}"}
    results = []
    for index, test in enumerate(job["tests"]):
        if any(r["detail"].startswith(TIMED_OUT) for r in results):  # a program that ran out of time once
            results.append({"passed": False, "detail": NOT_RUN, "seconds": 0.0})  # is not waited on again
            continue
        started = time.monotonic()
        verdict = _run_test(job, index, test, uid)
        verdict["seconds"] = round(time.monotonic() - started, 4)
        results.append(verdict)
    return {"results": results}


def _run_test(job: dict, index: int, test, uid: int | None) -> dict:
    limits = job["limits"]
    testdir = os.path.join(job["workdir"], f"t{index}")
    os.mkdir(testdir, 0o700)
    if uid is not None:
        os.chown(testdir, uid, uid)
    read_fd, write_fd = os.pipe()
    judge = os.fork()
    if judge == 0:
        os.close(read_fd)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the runner's stdout carries the verdicts: a test's print must not reach it
            os.dup2(devnull, fd)
        try:
            verdict = judge_test(job, test, testdir, uid)
        except BaseException as exc:  # noqa: BLE001 - the judge's own failure fails the test
            verdict = {"passed": False, "detail": f"judge: {type(exc).__name__}: {str(exc)[:300]}"}
        try:
            send_all(write_fd, json.dumps(verdict).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + limits["test_timeout_s"] + JUDGE_MARGIN_S
    try:
        raw = _read_until_eof(read_fd, deadline, 1 << 20)
        verdict = json.loads(raw) if raw else {"passed": False, "detail": "the judge died"}
    except TimedOut:
        verdict = {"passed": False, "detail": f"{TIMED_OUT} after {limits['test_timeout_s']:g} s"}
    finally:
        os.close(read_fd)
        try:
            os.kill(judge, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if not reap_all(uid, time.monotonic() + 5):
        verdict = {"passed": False, "detail": "processes outlived the test"}
    _remove(testdir)
    return verdict


def _read_until_eof(fd: int, deadline: float, max_bytes: int) -> bytes:
    chunks, got = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimedOut()
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        got += len(chunk)
        if got > max_bytes:
            raise TimedOut()
        chunks.append(chunk)


def _remove(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# ---- the judge -----------------------------------------------------------------------------------

def judge_test(job: dict, test, testdir: str, uid: int | None) -> dict:
    limits = job["limits"]
    deadline = time.monotonic() + limits["test_timeout_s"]
    kind = job["kind"]
    to_program_r, to_program_w = os.pipe()
    from_program_r, from_program_w = os.pipe()
    stdin_fd = os.open(os.devnull, os.O_RDONLY)
    out_r, out_w = os.pipe() if kind == "stdio" else (None, os.open(os.devnull, os.O_WRONLY))
    if kind == "stdio":
        stdin_fd = os.memfd_create("stdin")
        os.write(stdin_fd, test["input"].encode())
        os.lseek(stdin_fd, 0, os.SEEK_SET)
    err_fd = os.memfd_create("stderr")  # its last lines explain a failure
    program = os.fork()
    if program == 0:
        try:
            become_program(limits, testdir, uid, stdin=stdin_fd, stdout=out_w, stderr=err_fd,
                           requests=to_program_r, answers=from_program_w)
            if kind == "stdio":
                run_as_main(job["program"])
            else:
                serve_program(job["prelude"] + "\n" + job["program"], limits["output_bytes"])
        finally:
            os._exit(1)
    for fd in (to_program_r, from_program_w, stdin_fd, out_w):
        os.close(fd)
    if kind == "stdio":
        verdict = _judge_stdio(test, program, out_r, deadline, limits["output_bytes"])
    else:
        verdict = Channel(to_program_w, from_program_r, deadline, limits["output_bytes"]).judge(kind, test, job)
    if not verdict["passed"]:
        tail = _stderr_tail(err_fd)
        verdict["detail"] += f" (stderr: {tail})" if tail else ""
    return verdict


def _stderr_tail(fd: int) -> str:
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, max(0, size - 300), os.SEEK_SET)
        lines = os.read(fd, 300).decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def become_program(limits: dict, testdir: str, uid: int | None, *, stdin: int, stdout: int, stderr: int,
                   requests: int, answers: int) -> None:
    """This forked child becomes the untrusted program: its fds, folder, limits, user, environment."""
    import resource

    os.setsid()
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2), (requests, 3), (answers, 4)):
        os.dup2(fd, target + 100)  # out of the way first: a source may sit on a target's number
    for target in range(5):
        os.dup2(target + 100, target)
    os.closerange(5, 1 << 16)
    os.chdir(testdir)
    mb = 1 << 20
    cpu = int(limits["cpu_s"])
    for name, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                        (resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2),
                        (resource.RLIMIT_FSIZE, (limits["file_size_mb"] * mb,) * 2),
                        (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
                        (resource.RLIMIT_CORE, (0, 0)),
                        (resource.RLIMIT_NPROC, (limits["processes"],) * 2)):
        resource.setrlimit(name, value)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    parent = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    if os.getppid() != parent:
        os._exit(1)
    if _syscall_filter is not None:
        try:
            load_filter(_syscall_filter)
        except OSError as exc:  # the program must not run unfiltered: say why on its stderr, and stop
            os.write(2, f"the sandbox's system-call filter did not load: {exc}\n".encode())
            os._exit(1)
    os.environ.clear()
    import io

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8")
    sys.argv = ["program"]


def run_as_main(program: str) -> None:
    """The program as `python program.py` runs it: exit status 0 unless it raises or exits non-zero."""
    import builtins
    import threading
    import traceback

    status = 0
    try:
        exec(compile(program, "<program>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        status = 0 if exc.code in (None, 0) else 1
    except BaseException:  # noqa: BLE001 - the program's own error: its exit status says so
        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        threading._shutdown()  # as the interpreter does: a thread that never ends keeps us running
    finally:
        os._exit(status)


def serve_program(source: str, max_bytes: int) -> None:
    """Run the program's definitions, say which names it has, then answer the judge's calls."""
    import builtins

    namespace = {"__name__": "__program__", "__builtins__": builtins}
    try:
        exec(compile(source, "<program>", "exec"), namespace)
        send(4, ["ready", {name: _describe(value) for name, value in list(namespace.items())
                           if not name.startswith("__")}])
    except BaseException as exc:  # noqa: BLE001 - the program failed to load: every test fails
        send(4, ["raise", type(exc).__name__, _text(exc)])
        os._exit(1)
    while True:
        try:
            _, name, args, kwargs = recv(3, None, max_bytes)
            result = namespace[name](*decode(args), **decode(kwargs))
            answer = ["ok", encode(result)]
        except NotPlain as exc:
            answer = ["raise", "TypeError", f"{name} returned what is not plain data: {exc}"]
        except BaseException as exc:  # noqa: BLE001 - a call's failure is the judge's to read
            answer = ["raise", type(exc).__name__, _text(exc)]
        send(4, answer)


def _describe(value) -> list:
    if type(value).__name__ == "module":
        return ["module", value.__name__]
    if callable(value):
        return ["call"]
    try:
        return ["value", encode(value)]
    except (NotPlain, ValueError):
        return ["other"]


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except BaseException:  # noqa: BLE001 - an exception whose str raises
        return ""


class Channel:
    """The judge's end of the program's pipes: every program name as a proxy that calls it."""

    def __init__(self, to_program: int, from_program: int, deadline: float, max_bytes: int):
        self.to_program, self.from_program = to_program, from_program
        self.deadline, self.max_bytes = deadline, max_bytes
        self.broken = ""  # set once the program ended or the time ran out: the test then fails

    def receive(self):
        try:
            return recv(self.from_program, self.deadline, self.max_bytes)
        except TimedOut:
            self.broken = self.broken or TIMED_OUT
            raise
        except Ended:
            self.broken = self.broken or "the program ended before the test finished"
            raise
        except ValueError as exc:
            self.broken = self.broken or str(exc)
            raise Ended() from None

    def call(self, name: str, args: tuple, kwargs: dict):
        if self.broken:
            raise Ended()
        try:
            request = ["call", name, encode(list(args)), encode(kwargs)]
        except NotPlain as exc:
            raise TypeError(f"the test passed {name} an argument that is not plain data: {exc}") from None
        try:
            send(self.to_program, request)
        except OSError:
            self.broken = self.broken or "the program ended before the test finished"
            raise Ended() from None
        answer = self.receive()
        if type(answer) is list and len(answer) == 2 and answer[0] == "ok":
            try:
                return decode(answer[1])
            except (ValueError, TypeError, RecursionError) as exc:
                self.broken = self.broken or f"unreadable answer: {exc}"
                raise Ended() from None
        if type(answer) is list and len(answer) == 3 and answer[0] == "raise":
            raise _exception(answer[1], answer[2])
        self.broken = self.broken or "the program broke the call protocol"
        raise Ended()

    def proxy(self, name: str):
        def call(*args, **kwargs):
            return self.call(name, args, kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    def names(self) -> dict:
        """The test's view of the program: proxies, plain values, and the standard modules it imported."""
        import importlib

        ready = self.receive()
        if type(ready) is list and len(ready) == 3 and ready[0] == "raise":
            raise ProgramFailed(f"the program raised {ready[1]}: {ready[2]}")
        if type(ready) is not list or len(ready) != 2 or ready[0] != "ready" or type(ready[1]) is not dict:
            raise ProgramFailed("the program broke the call protocol")
        names = {}
        for name, (what, *rest) in ready[1].items():
            if what == "call":
                names[name] = self.proxy(name)
            elif what == "value":
                names[name] = decode(rest[0])
            elif what == "module" and rest and rest[0] in sys.stdlib_module_names:
                names[name] = importlib.import_module(rest[0])
        return names

    def judge(self, kind: str, test, job: dict) -> dict:
        import builtins

        try:
            names = self.names()
            namespace = {"__name__": "__test__", "__builtins__": builtins, **names}
            if kind == "check":
                exec(compile(test["check"], "<test>", "exec"), namespace)
                entry = test["entry_point"]
                if entry not in names or not callable(names[entry]):
                    return {"passed": False, "detail": f"the program defines no function {entry}"}
                namespace["check"](names[entry])
            else:
                if job.get("setup"):
                    exec(compile(job["setup"], "<setup>", "exec"), namespace)
                exec(compile(test, "<test>", "exec"), namespace)
        except (TimedOut, Ended):
            pass
        except ProgramFailed as exc:
            return {"passed": False, "detail": str(exc)}
        except AssertionError as exc:
            return {"passed": False, "detail": f"assertion failed{': ' + str(exc)[:200] if str(exc) else ''}"}
        except Exception as exc:  # noqa: BLE001 - the test raised: it failed
            return {"passed": False, "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if self.broken:
            return {"passed": False, "detail": self.broken}
        return {"passed": True, "detail": ""}


class ProgramFailed(Exception):
    """The program did not load (it raised, exited, or broke the protocol)."""


def _exception(name, text) -> BaseException:
    """The program's exception as the test sees it: the builtin class of that name, else RuntimeError."""
    import builtins

    cls = getattr(builtins, name, None) if type(name) is str else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(str(text)[:300])
        except Exception:  # noqa: BLE001 - an exception class with another signature
            pass
    return RuntimeError(f"{str(name)[:50]}: {str(text)[:300]}")


def _judge_stdio(test: dict, program: int, out_r: int, deadline: float, max_bytes: int) -> dict:
    chunks, got, eof = [], 0, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"passed": False, "detail": TIMED_OUT}
        if not eof and select.select([out_r], [], [], min(left, 0.02))[0]:
            chunk = os.read(out_r, 1 << 16)
            eof = not chunk
            got += len(chunk)
            chunks.append(chunk)
            if got > max_bytes:
                return {"passed": False, "detail": f"printed over the {max_bytes:,}-byte output limit"}
            continue
        if eof:
            time.sleep(min(left, 0.002))
        pid, status = os.waitpid(program, os.WNOHANG)
        if pid:
            break
    while not eof and time.monotonic() < deadline and select.select([out_r], [], [], 0)[0]:
        chunk = os.read(out_r, 1 << 16)  # what it wrote before it ended
        eof = not chunk
        got += len(chunk)
        chunks.append(chunk)
        if got > max_bytes:
            return {"passed": False, "detail": f"printed over the {max_bytes:,}-byte output limit"}
    if os.WIFSIGNALED(status):
        return {"passed": False, "detail": f"killed by signal {os.WTERMSIG(status)}"}
    if os.WEXITSTATUS(status) != 0:
        return {"passed": False, "detail": f"exit status {os.WEXITSTATUS(status)}"}
    text = b"".join(chunks).decode("utf-8", "replace")
    if same_output(text, test["output"]):
        return {"passed": True, "detail": ""}
    return {"passed": False, "detail": f"wrong output: {text[:120]!r} (expected {test['output'][:120]!r})"}


def same_output(got: str, expected: str) -> bool:
    """Whole outputs equal line by line, trailing whitespace of each line and trailing blank lines
    aside (never a prefix: a program that prints half the answer fails)."""
    return _lines(got) == _lines(expected)


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


RESULT_MARK = "GRPO-SANDBOX-RESULT "  # the line that carries the verdicts, whatever else a remote runner prints
PR_SET_DUMPABLE = 4


def main() -> None:
    here = os.path.dirname(os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else "."))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # our modules are not the program's
    job = json.loads(sys.stdin.buffer.read())
    sys.path.extend(p for p in job.get("site_packages", []) if p not in sys.path)
    for name in ("importlib", "io", "random", "resource", "shutil", "tempfile", "threading", "traceback"):
        __import__(name)  # once here, not in each fork
    # Not dumpable (inherited by the judges): where the program shares our uid (a remote runner that
    # is not root), it can neither trace us nor open our pipes through /proc.
    _prctl(PR_SET_DUMPABLE, 0)
    remote = job.get("workdir") is None  # SandboxFusion, Modal: this copy of the harness is the sandbox there
    if remote:
        import random
        import tempfile

        job["workdir"] = tempfile.mkdtemp(prefix="grpo-sandbox-")
        os.chmod(job["workdir"], 0o755)
        job["uid"] = random.SystemRandom().randrange(1 << 20, 1 << 30) if os.geteuid() == 0 else None
    try:
        out = run_job(job)
    finally:
        if remote:
            _remove(job["workdir"])
    send_all(1, (RESULT_MARK + json.dumps(out) + "\n").encode())


if __name__ == "__main__":
    main()
