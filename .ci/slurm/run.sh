#!/usr/bin/env bash
# The SLURM test: start a single-node Slurm on this machine (setup.sh), run the reduced demo workflow
# (reduced.yaml) twice, locally and through Slurm with the user's profile plus the test's changes
# (profile/config.yaml), then check that sacct lists every job of the Slurm run, COMPLETED, the
# model jobs with their GPU, and that every result equals the local run's (slurm_test.py check).
# Debian, as root. Rerunnable: the runs start from empty directories under $P2O_SLURM_TEST_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${P2O_SLURM_TEST_DIR:-/tmp/p2o-slurm-test}
TIMEOUT=${P2O_SLURM_TEST_TIMEOUT:-1500}   # seconds per workflow run
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
now() { date +%s; }
t0=$(now)

t=$(now)
bash .ci/slurm/setup.sh
python3 -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || python3 -m pip install -q -e ".[slurm]"   # snakemake-executor-plugin-slurm
t_setup=$(( $(now) - t ))

# two identical directories holding what the workflow reads, as tests/workflow/test_workflow.py runs it
rm -rf "$WORK/local" "$WORK/slurm" && mkdir -p "$WORK/local"
cp -r workflow config paper requirements .ci/slurm/reduced.yaml "$WORK/local"/
find "$WORK/local" -name __pycache__ -prune -exec rm -rf {} +
cp -r "$WORK/local" "$WORK/slurm"
fail() {  # fail NAME DIR: the run's log, its Slurm job logs, the daemons' logs
  echo "SLURM test: the $1 run failed"; tail -n 60 "$2/snakemake.log"
  if [[ -d $2/.snakemake/slurm_logs ]]; then
    find "$2/.snakemake/slurm_logs" -name '*.log' -printf '%T@ %p\n' | sort -rn | head -n 3 | cut -d' ' -f2- \
      | while read -r f; do echo "----- $f"; tail -n 30 "$f"; done   # the newest Slurm job logs
  fi
  for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do echo "----- tail $f"; tail -n 20 "$f"; done
  squeue -a 2>&1 | head -n 20
  exit 1
}
CONFIG=(--configfile config/demo.yaml reduced.yaml)

# the local run: as the README's Quickstart runs the demo
t=$(now)
(cd "$WORK/local" && timeout "$TIMEOUT" snakemake --cores 2 --resources gpu=1 --max-threads 1 "${CONFIG[@]}" > snakemake.log 2>&1) \
  || fail local "$WORK/local"
t_local=$(( $(now) - t ))

# the Slurm run: the user's profile with the test's changes
python3 .ci/slurm/slurm_test.py profile "$WORK/profile" > "$WORK/profile.log"
t=$(now)
(cd "$WORK/slurm" && timeout "$TIMEOUT" snakemake --executor slurm --workflow-profile "$WORK/profile" "${CONFIG[@]}" \
  > snakemake.log 2>&1) || fail Slurm "$WORK/slurm"
t_slurm=$(( $(now) - t ))

python3 .ci/slurm/slurm_test.py check "$WORK/local" "$WORK/slurm"
echo "SLURM test: setup ${t_setup} s, local run ${t_local} s, Slurm run ${t_slurm} s, total $(( $(now) - t0 )) s"
