"""Kill anywhere: SIGKILL the whole Snakemake process group of the reduced demo workflow at seeded
random moments, ``--unlock`` and rerun with ``--rerun-incomplete`` after each kill, and get every
result of an uninterrupted run.

The workflow is the SLURM test's reduced demo (.ci/slurm/reduced.yaml: checkpoints every 2 steps in
SFT and training), run up to the paper PDF with the CPU profile, as README's demo runs. It runs once
uninterrupted, which gives W, its wall time from the first job start to the end, and once with kills:

* ``P2O_SOAK_KILLS`` (default 5) job kills, spread over the run: moment i is drawn by
  ``random.Random(P2O_SOAK_SEED)`` (default 0) in the i-th of equal parts of the first 90 % of W; the
  killed run is killed in the job the uninterrupted run was running then (one of them, drawn), after
  it has run as long as it had then (or when it ends, if sooner). Anchored to a job rather than to the
  clock, a kill lands at the same place in the workflow however busy the machine is.
* two checkpoint kills: at the first checkpoint SFT writes and at the first one a preference training
  job writes, so that resuming a model job from its checkpoint is exercised in every run.

Both runs set MKL_CBWR=COMPATIBLE (README, "A killed job": bit-identical resume on CPU needs it).
The evaluation JSONs, aggregate CSVs, tables and generated LaTeX must equal the uninterrupted run's
as .ci/compare_results.py compares them (timings and provenance left out, numbers as written).
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, workflow_checkout

SEED = int(os.environ.get("P2O_SOAK_SEED", "0"))
JOB_KILLS = int(os.environ.get("P2O_SOAK_KILLS", "5"))
SPAN = 0.9  # job kills fall within the first 90 % of the uninterrupted run (after its first job start)
ATTEMPT_TIMEOUT = 900  # seconds: one snakemake run (the uninterrupted one: ~70-120 s on 2 cores)
CHECKPOINTS = {  # checkpoint kills: stage -> where its jobs write their checkpoint
    "sft": ["results/sft/checkpoint.pt", "results/sft/seed*/checkpoint.pt"],
    "train": ["results/train/*/seed*/checkpoint.pt"],
}
ENV = {**os.environ, "MKL_CBWR": "COMPATIBLE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/cpu", "--cores", "2",
             "--configfile", "config/demo.yaml", "reduced.yaml"]  # --configfile takes every word after it


def compare_results():
    spec = importlib.util.spec_from_file_location("compare_results", REPO / ".ci" / "compare_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkout(path: Path) -> Path:
    workflow_checkout(path)
    shutil.copy(REPO / ".ci" / "slurm" / "reduced.yaml", path / "reduced.yaml")
    return path


class Log:
    """The jobs of one snakemake run, read from its log as it grows: ``rule[wildcards]`` -> when it
    started and finished (seconds since the run began, as seen by polling)."""

    def __init__(self, path: Path, t0: float):
        self.path, self.t0 = path, t0
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def read(self, now: float) -> None:
        ids, rule, job = {}, None, None
        for line in self.path.read_text().splitlines():
            if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
                rule, job = m.group(1), None
            elif rule and (m := re.match(r"^\s+jobid: (\d+)$", line)):
                job = m.group(1)
                ids[job] = rule
            elif job and (m := re.match(r"^\s+wildcards: (.*)$", line)):
                ids[job] = f"{rule}[{m.group(1)}]"
            elif not line.startswith((" ", "\t")):  # the job's block ends
                rule, job = None, None
                if (m := re.match(r"^Finished jobid: (\d+)", line)) and m.group(1) in ids:
                    self.finished.setdefault(ids[m.group(1)], now - self.t0)
        for name in ids.values():
            if name != "all":
                self.started.setdefault(name, now - self.t0)

    def running(self) -> list[str]:
        return [job for job in self.started if job not in self.finished]


def checkpoint_files(wd: Path, patterns: list[str]) -> dict[str, tuple[int, int]]:
    """Each checkpoint there is now -> (inode, mtime): a checkpoint is replaced whole, so a new
    write shows as a new pair."""
    found = {}
    for pattern in patterns:
        for path in wd.glob(pattern):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed at the job's end, between glob and stat
                continue
            found[str(path.relative_to(wd))] = (st.st_ino, st.st_mtime_ns)
    return found


@dataclass
class Kill:
    kind: str  # "job" or a CHECKPOINTS stage
    at: float = 0.0  # job kills: the moment of the uninterrupted run, in seconds from its first job start
    job: str = ""  # the job running then, in the uninterrupted run ...
    offset: float = 0.0  # ... and how long it had run
    # what the kill hit
    number: int = 0
    running: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    survived: bool = False

    def describe(self, w: float) -> str:
        why = (f"at {self.at / w:.2f} W: {self.job} + {self.offset:.1f} s" if self.kind == "job"
               else f"at {self.kind}'s first checkpoint write")
        return (f"kill {self.number} ({why}): running {', '.join(self.running) or 'no job (between jobs)'}"
                + (f"; checkpoints on disk: {', '.join(self.checkpoints)}" if self.checkpoints else ""))


def attempt(wd: Path, log_path: Path, args: list[str], kills: list[Kill], done: set[str], order: list[str]):
    """Run snakemake in its own session; SIGKILL its process group when the next kill is due: a job
    kill when its job has run its offset (or has finished, if sooner), a checkpoint kill when its stage
    writes a checkpoint. ``done``: the jobs finished before (a job kill whose job is among them moves
    to the next job of ``order`` not done). Returns (return code, the kill that landed or None, Log)."""
    job_kill = next((k for k in kills if k.kind == "job" and not k.number), None)
    if job_kill and job_kill.job in done:
        job_kill.job = next(j for j in order[order.index(job_kill.job):] if j not in done)
    ckpt_kills = [k for k in kills if k.kind != "job" and not k.number]
    before = checkpoint_files(wd, [p for k in ckpt_kills for p in CHECKPOINTS[k.kind]])
    with open(log_path, "w") as out:
        proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=wd, stdout=out, stderr=subprocess.STDOUT, env=ENV,
                                start_new_session=True)
    log = Log(log_path, time.monotonic())
    while proc.poll() is None:
        now = time.monotonic()
        assert now - log.t0 < ATTEMPT_TIMEOUT, f"snakemake ran over {ATTEMPT_TIMEOUT} s: {log_path}"
        log.read(now)
        due = None
        if job_kill and job_kill.job in log.started and (
                now - log.t0 >= log.started[job_kill.job] + job_kill.offset or job_kill.job in log.finished):
            due = job_kill
        for kill in ckpt_kills:
            if any(before.get(p) != v for p, v in checkpoint_files(wd, CHECKPOINTS[kill.kind]).items()):
                due = kill
        if due:
            os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
            proc.wait()
            due.running = log.running()
            due.checkpoints = sorted(checkpoint_files(wd, ["results/**/checkpoint.pt"]))
            gone_by = time.monotonic() + 10
            while time.monotonic() < gone_by:  # the whole group is gone: no job outlives the kill
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"processes of group {proc.pid} outlived SIGKILL")
            return proc.returncode, due, log
        time.sleep(0.01)
    log.read(time.monotonic())
    return proc.returncode, None, log


HAS_LATEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None
TINY_PAPER = r"""\documentclass{article}
\usepackage{natbib}
\begin{document}
DPO \citep{rafailov2023direct}, IPO \citep{azar2023general}, KTO \citep{ethayarajh2024kto}.
\bibliographystyle{plainnat}
\bibliography{refs}
\end{document}
"""


@pytest.mark.skipif(not HAS_LATEX, reason="the paper needs latexmk and pdflatex (Debian: latexmk, texlive-latex-*)")
def test_paper_rule_builds_after_a_build_killed_mid_aux(tmp_path):
    """pdflatex rewrites main.aux in place as it goes: a build killed there leaves the aux cut off
    (say in the middle of a \\citation), and a build that starts from it fails in bibtex and then in
    pdflatex, on every rerun. The paper rule starts from an empty build folder."""
    wd = checkout(tmp_path)
    (wd / "paper" / "main.tex").write_text(TINY_PAPER)  # reads no generated file: the paper rule alone
    target = ["results/paper/main.pdf", "--cores", "1"]
    build = wd / "results" / "paper" / ".latex"
    for run in ("whole", "after the kill"):
        proc = subprocess.run([sys.executable, "-m", "snakemake", *target], cwd=wd, capture_output=True, text=True,
                              env=ENV)
        assert proc.returncode == 0, f"the paper rule failed ({run}):\n{proc.stderr[-3000:]}\n" + (
            (wd / "logs" / "paper.log").read_text()[-3000:])
        assert (wd / "results" / "paper" / "main.pdf").stat().st_size > 1000
        aux = (build / "main.aux").read_text()
        assert "\\citation{azar2023general}" in aux
        # as SIGKILL leaves it: the aux flushed up to the middle of a line, no PDF
        (build / "main.aux").write_text(aux[:aux.index("\\citation{azar2023general}") + len("\\citation{azar")])
        (wd / "results" / "paper" / "main.pdf").unlink()


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text().splitlines()[-n:])


@pytest.mark.slow
def test_soak_kill_anywhere_then_resume_gives_the_uninterrupted_results(tmp_path, capsys):
    def print(*lines):  # shown in the test run's output (CI's log), passed or failed
        with capsys.disabled():
            builtins.print("\nsoak:", *lines, flush=True)

    t0 = time.monotonic()
    whole, killed = checkout(tmp_path / "whole"), checkout(tmp_path / "killed")

    rc, _, timeline = attempt(whole, tmp_path / "whole.log", [], [], set(), [])
    assert rc == 0, f"the uninterrupted run failed:\n{tail(tmp_path / 'whole.log')}"
    t_whole = time.monotonic() - t0
    order = sorted(timeline.started, key=timeline.started.get)  # the jobs in the order they started
    first, w = timeline.started[order[0]], max(timeline.finished.values()) - timeline.started[order[0]]
    print(f"uninterrupted run: {t_whole:.0f} s, {len(order)} jobs in W = {w:.1f} s from the first job's start")

    rng = random.Random(SEED)
    kills = []
    for i in range(JOB_KILLS):  # moment i: in the i-th of JOB_KILLS equal parts of SPAN x W
        at = SPAN * w * (i + rng.uniform(0.05, 0.95)) / JOB_KILLS
        running = [j for j in order if timeline.started[j] - first <= at < timeline.finished[j] - first]
        job = rng.choice(running) if running else next(j for j in order if timeline.started[j] - first > at)
        kills.append(Kill("job", at=at, job=job, offset=max(0.0, first + at - timeline.started[job])))
    kills += [Kill(stage) for stage in CHECKPOINTS]
    print(f"seed {SEED}: kills at " + ", ".join(f"{k.at / w:.2f} W ({k.job} + {k.offset:.1f} s)" for k in kills
                                               if k.kind == "job")
          + f"; and at the first checkpoint write of {', '.join(CHECKPOINTS)}")

    n, done, landed, resumed = 0, set(), [], set()
    while True:
        n += 1
        log = tmp_path / f"killed.{n}.log"
        rc, kill, jobs = attempt(killed, log, ["--rerun-incomplete"] if n > 1 else [], kills, done, order)
        done |= set(jobs.finished)
        for job_log in (killed / "logs").rglob("*.log"):  # a job writes its resumes to its log
            resumed |= set(re.findall(r"resumed from (\S+)", job_log.read_text(errors="replace")))
        if landed:  # the run after a kill went on: killed again, or to the end
            landed[-1].survived = rc == 0 or kill is not None
        assert rc == 0 or kill is not None, f"run {n} (after kill {len(landed)}) failed:\n{tail(log)}"
        if kill is None:
            break
        kill.number = len(landed) + 1
        landed.append(kill)
        print(kill.describe(w))
        unlock = subprocess.run([*SNAKEMAKE, "--unlock"], cwd=killed, capture_output=True, text=True, env=ENV)
        assert unlock.returncode == 0, f"--unlock after kill {kill.number} failed:\n{unlock.stderr[-3000:]}"
    t_killed = time.monotonic() - t0 - t_whole

    compared, problems = compare_results().differences(whole / "results", killed / "results")
    files = [f for fs in compared.values() for f in fs]
    identical = len(files) - sum(any(p.endswith(f": {f}") for p in problems) for f in files)
    survived = sum(k.survived for k in landed)
    junk = sorted(str(p.relative_to(killed)) for p in (killed / "results").rglob(".*.tmp"))  # io.atomic_path's
    print(f"killed run: {t_killed:.0f} s in {n} snakemake runs; resumed from {', '.join(sorted(resumed))}; "
          f"temporary files of killed writes left: {', '.join(junk) or 'none'}")
    print(f"kills survived: {survived}/{len(landed)}, outputs identical: {identical}/{len(files)}")

    assert len(landed) == len(kills), f"only {len(landed)} of {len(kills)} kills landed before the run ended"
    assert survived == len(landed)
    assert not problems and identical == len(files) and len(files) >= 30, problems
    leftovers = [str(p.relative_to(killed)) for p in (killed / "results").rglob("checkpoint.pt*")]
    assert not leftovers, f"checkpoints left behind or set aside (stale, unreadable): {leftovers}"
    partial = [str(p.relative_to(killed)) for p in (killed / "results").rglob("*.partial")]
    assert not partial, f"logs of killed jobs never completed: {partial}"
    for stage in CHECKPOINTS:  # each checkpoint kill was resumed from its checkpoint
        assert any(re.search(p.replace("*", "[^/]+"), r) for p in CHECKPOINTS[stage] for r in resumed), stage
    assert len({tuple(k.running) for k in landed}) > 1  # the kills hit different jobs
