"""Ray clusters for the executor tests, each inside a network and PID namespace of its own
(`unshare`: you are root): its nodes sit on the loopback address as they would on separate
machines, and every Ray process it starts dies with the namespace, whatever happens to the test.

Run as `unshare --net --pid --fork --mount-proc python tests/cluster.py SCENARIO ARGS…`
(`in_namespace`); it prints one JSON line for the test to read.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"
BIN = Path(sys.executable).parent


def namespaced(*command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`command` in a network and PID namespace of its own, loopback up: every process it starts
    (every Ray process) ends with it."""
    unshare = [
        "unshare",
        "--net",
        "--pid",
        "--fork",
        "--mount-proc",
        "bash",
        "-c",
        'ip link set lo up && exec "$@"',
        "-",
    ]
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([*unshare, *command], capture_output=True, text=True, timeout=timeout, env=env)


def in_namespace(*args: str, timeout: float = 600) -> dict:
    """Run a scenario of this file in a namespace of its own; what it printed, as JSON."""
    done = namespaced(sys.executable, __file__, *args, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_node(temp: Path, head: bool, *options: str, env: dict[str, str] | None = None) -> None:
    where = ["--head", f"--port={PORT}", "--include-dashboard=false"] if head else [f"--address={ADDRESS}"]
    subprocess.run(
        [BIN / "ray", "start", *where, "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", *options],
        check=True,
        capture_output=True,
        env=env,
    )


def node_processes(temp: Path) -> list[int]:
    """The processes of the node started with `temp`: those that name it, and their descendants."""
    parents: dict[int, int] = {}
    named = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if str(temp) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                named.append(int(entry.name))
        except (OSError, IndexError):
            continue
    found = set(named)
    while grown := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= grown
    return sorted(found)


def running_job(temp: Path) -> bool:
    """Whether a job runs on the node started with `temp` (its worker's title is ray::_job)."""
    for pid in node_processes(temp):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_job"):
                return True
        except OSError:
            continue
    return False


def repro(repo: Path, stage: str | None, **env: str) -> subprocess.Popen:
    """`dvc repro` of one stage, forced; of the whole pipeline (forced) without one."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    clean["PATH"] = f"{BIN}{os.pathsep}{clean['PATH']}"
    which = ["--single-item", "--no-run-cache", stage] if stage else []
    return subprocess.Popen(
        ["dvc", "repro", "--force", *which],
        cwd=repo,
        env=clean | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def two_nodes(repo: Path, stage: str, lose_second: bool) -> dict:
    """`stage` of `repo` on a head and a second node, one CPU each; with `lose_second`, the
    second node is killed while it runs a job."""
    temp = Path(tempfile.mkdtemp(prefix="rt"))  # short: Ray's socket paths must fit 107 bytes
    try:
        start_node(temp / "head", True, "--num-cpus=1")
        start_node(temp / "second", False, "--num-cpus=1")
        start = time.perf_counter()
        running = repro(repo, stage)
        lost = False
        while lose_second and running.poll() is None and not lost:
            if running_job(temp / "second"):
                for pid in node_processes(temp / "second"):
                    os.kill(pid, signal.SIGKILL)
                lost = True
            time.sleep(0.05)
        output, _ = running.communicate()
        seconds = time.perf_counter() - start
        return {"returncode": running.returncode, "output": output[-4000:], "lost": lost, "seconds": seconds}
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def stages(repo: Path, names: list[str]) -> dict:
    """Each stage in turn, as params.yaml's executor says (a Ray instance of its own per stage)."""
    outputs = []
    for name in names:
        output, _ = repro(repo, name).communicate()
        outputs.append(output[-3000:])
    return {"outputs": outputs}


def other_prunebench(repo: Path) -> dict:
    """A second node whose Python imports another prunebench than the driver's: the same source,
    another version."""
    import prunebench

    temp = Path(tempfile.mkdtemp(prefix="rt"))
    try:
        other = temp / "site" / "prunebench"
        shutil.copytree(Path(prunebench.__file__).parent, other)
        init = other / "__init__.py"
        init.write_text(init.read_text().replace(f'"{prunebench.__version__}"', '"0.0.1"'))
        start_node(temp / "head", True, "--num-cpus=1")
        start_node(temp / "second", False, "--num-cpus=1", env=os.environ | {"PYTHONPATH": str(temp / "site")})
        output, _ = repro(repo, "train").communicate()
        return {"output": output[-4000:]}
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    # Ray 2.60 authenticates with a token by default: every node and the driver share this one
    os.environ |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    scenario, *args = sys.argv[1:]
    if scenario == "two_nodes":
        found = two_nodes(Path(args[0]), args[1], lose_second=args[2] == "lose")
    elif scenario == "repro":  # the whole pipeline, timed; with "head", on a running head node of 2 CPUs
        temp = Path(tempfile.mkdtemp(prefix="rt"))
        if args[1:] == ["head"]:
            start_node(temp / "head", True, "--num-cpus=2")
        start = time.perf_counter()
        output, _ = repro(Path(args[0]), None).communicate()
        found = {"output": output[-3000:], "seconds": time.perf_counter() - start}
        shutil.rmtree(temp, ignore_errors=True)
    elif scenario == "stages":
        found = stages(Path(args[0]), args[1:])
    elif scenario == "other_prunebench":
        found = other_prunebench(Path(args[0]))
    else:
        raise SystemExit(f"no scenario {scenario}")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
