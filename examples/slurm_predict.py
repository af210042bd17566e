"""Predict (or clean) a beamtime's frames on a SLURM or PBS cluster through dask-jobqueue.

dask-jobqueue is not a dependency of cosmics; install it where you run this script (the login node):

    pip install dask-jobqueue

Every batch job it submits starts one Dask worker in the same Python environment, with cosmics installed
(``pip install -r requirements.txt``) and the frames, the model and ``--out`` on a file system all nodes see.
Adjust the queue, account, cores, memory and walltime to your site; then

    python examples/slurm_predict.py --model model.keras --out masks/ /data/beamtime/*.h5

A job killed by its walltime loses only the frames it held: run the same command again and finished frames are
skipped. For PBS use ``PBSCluster`` with the same arguments (``queue``, ``account``, ``walltime``...).
"""

import argparse
import sys

from dask_jobqueue import SLURMCluster  # or PBSCluster, SGECluster, LSFCluster ...

from segcore.__main__ import main as segcore

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--jobs", type=int, default=8, help="batch jobs, one Dask worker each (default 8)")
parser.add_argument("frames", nargs="+")
args = parser.parse_args()

cluster = SLURMCluster(
    queue="cpu",                 # your partition
    account=None,                # your project, if the site wants one
    cores=8,                     # one worker process per job with 8 threads for TensorFlow's operations
    processes=1,
    memory="16GB",               # a ResNet50 model and a 16M-pixel frame need about 3 GB
    walltime="02:00:00",
    job_script_prologue=["source ~/cosmics-venv/bin/activate"],  # the environment cosmics is installed in
)
cluster.scale(jobs=args.jobs)
print(cluster.job_script(), file=sys.stderr)
try:
    sys.exit(segcore(["predict", "--model", args.model, *args.frames, "--out", args.out,
                      "--dask", cluster.scheduler_address]))
finally:
    cluster.close()
