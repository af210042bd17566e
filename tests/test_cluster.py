"""``predict``, ``lacosmic`` and ``clean`` with ``--dask``: the files equal those of the one-process command line
(the reference), reruns skip finished frames, bad clusters are one clear error.

The quick tests use an in-process LocalCluster (two workers, threads); the slow one a LocalCluster of worker
processes, one of which is killed while it holds frames.
"""

import csv
import os
import signal

import distributed
import h5py
import numpy as np
import pytest
from model_support import intensity_model

from segcore import cluster, io
from segcore.__main__ import main
from segcore.errors import SegcoreError
from segcore.model import save_model
from segcore.synth import simulate_frame

STACK = "stack.h5"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Three simulated 96 px frames as 16-bit PNGs and an Eiger-like uint32 stack of three (a gap row)."""
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for seed in range(3):
        sample = simulate_frame(np.random.default_rng(seed), 96, n_cosmics=5, family="integrating")
        path = folder / f"frame_{seed}.png"
        io.write_frame(path, sample.frame)
        paths.append(str(path))
    stack = np.stack([simulate_frame(np.random.default_rng(10 + i), 96, n_cosmics=5, family="integrating").frame
                      for i in range(3)]).astype(np.uint32)
    stack[:, 20, :] = 2**32 - 1
    with h5py.File(folder / STACK, "w") as h5:
        h5.create_dataset("entry/data/data", data=stack, chunks=(1, 96, 96))
    paths.append(str(folder / STACK))
    return paths


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A 1x1 network whose cosmic probability rises with brightness: fast, its masks known."""
    path = tmp_path_factory.mktemp("model") / "bright.keras"
    save_model(intensity_model(6.0, 3.0), path)
    return str(path)


@pytest.fixture(scope="module")
def scheduler():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        yield local.scheduler_address


def _counts(out):
    with open(out / "counts.csv", newline="") as handle:
        return [dict(row, mask=row["mask"].replace(str(out), "OUT")) for row in csv.DictReader(handle)]


def assert_same_outputs(reference, other):
    """Every file of the one-process run is in ``other``: plain files byte for byte, HDF5 files dataset by dataset
    (values and types); counts.csv row by row, mask paths taken relative to each folder."""
    names = sorted(p.name for p in reference.iterdir())
    assert names == sorted(p.name for p in other.iterdir() if p.name != cluster.STATE_DIR)
    for name in names:
        if name == "counts.csv":
            assert _counts(other) == _counts(reference)
        elif name.endswith(".h5"):
            with h5py.File(reference / name) as want, h5py.File(other / name) as got:
                datasets = []
                want.visititems(lambda key, node: datasets.append(key) if isinstance(node, h5py.Dataset) else None)
                assert datasets
                for key in datasets:
                    assert got[key].dtype == want[key].dtype
                    np.testing.assert_array_equal(got[key][()], want[key][()])
        else:
            assert (other / name).read_bytes() == (reference / name).read_bytes(), name


def test_predict_on_a_cluster_writes_what_one_process_writes(frames, model_path, scheduler, tmp_path, capsys):
    one, many = tmp_path / "one", tmp_path / "many"
    common = ["predict", "--model", model_path, *frames, "--overlays", "--dilate", "1"]
    assert main([*common, "--out", str(one)]) == 0
    assert main([*common, "--out", str(many), "--dask", scheduler]) == 0
    assert "6 masks and counts.csv written" in capsys.readouterr().out
    assert_same_outputs(one, many)
    masks = h5py.File(many / STACK)["entry/data/data"][()]
    assert masks.shape == (3, 96, 96) and masks.any() and not masks[:, 20, :].any()  # the gap is never a cosmic
    assert [row["file"] for row in _counts(many)] == [*frames[:3], *(f"{frames[3]}::/entry/data/data#{i}" for i in range(3))]


def test_lacosmic_and_clean_on_a_cluster_write_what_one_process_writes(frames, scheduler, tmp_path):
    for command in (["lacosmic", "--sigclip", "5"], ["clean", "--lacosmic"]):
        one, many = tmp_path / f"{command[0]}_one", tmp_path / f"{command[0]}_many"
        assert main([*command, *frames, "--out", str(one)]) == 0
        assert main([*command, *frames, "--out", str(many), "--dask", scheduler]) == 0
        assert_same_outputs(one, many)
    cleaned = h5py.File(tmp_path / "clean_many" / STACK)["entry/data/data"][()]
    assert cleaned.dtype == np.uint32 and (cleaned[:, 20, :] == 2**32 - 1).all()


@pytest.mark.slow
def test_clean_with_a_model_on_a_cluster_writes_what_one_process_writes(frames, model_path, scheduler, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    assert main(["clean", "--model", model_path, *frames, "--out", str(one), "--mask-format", "npy"]) == 0
    assert main(["clean", "--model", model_path, *frames, "--out", str(many), "--mask-format", "npy",
                 "--dask", scheduler]) == 0
    assert_same_outputs(one, many)


def test_a_rerun_skips_finished_frames_and_redoes_missing_ones(frames, model_path, scheduler, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["predict", "--model", model_path, *frames, "--out", str(out), "--dask", scheduler]
    assert main(command) == 0
    first = (out / "counts.csv").read_bytes()
    state = cluster._State(out)
    (out / "frame_0.png").unlink()                                  # a mask lost
    state.record_path(frames[1]).unlink()                           # a frame that was in flight: no record
    (out / "frame_1.png").write_bytes(b"half a png")
    capsys.readouterr()
    assert main(command) == 0
    assert "(4 done by an earlier run)" in capsys.readouterr().out
    assert (out / "counts.csv").read_bytes() == first
    reference = tmp_path / "reference"
    assert main(["predict", "--model", model_path, *frames[:2], "--out", str(reference)]) == 0
    for name in ("frame_0.png", "frame_1.png"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()
    # Other settings are other results: nothing is skipped.
    capsys.readouterr()
    assert main([*command, "--threshold", "0.9"]) == 0
    assert "earlier run" not in capsys.readouterr().out
    assert (out / "counts.csv").read_bytes() != first


@pytest.mark.slow
def test_a_stack_whose_frame_was_in_flight_is_redone_whole(frames, model_path, scheduler, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["predict", "--model", model_path, frames[3], "--out", str(out), "--dask", scheduler]
    assert main(command) == 0
    want = h5py.File(out / STACK)["entry/data/data"][()]
    capsys.readouterr()
    assert main(command) == 0
    assert "(3 done by an earlier run)" in capsys.readouterr().out
    cluster._State(out).record_path(f"{frames[3]}::/entry/data/data#1").unlink()
    assert main(command) == 0
    assert "earlier run" not in capsys.readouterr().out
    np.testing.assert_array_equal(h5py.File(out / STACK)["entry/data/data"][()], want)
    assert not list((out / cluster.STATE_DIR / "parts").iterdir())


@pytest.mark.slow
def test_each_worker_loads_the_model_once(frames, model_path, scheduler, tmp_path):
    client = distributed.Client(scheduler)
    before = cluster.models_loaded()
    job = cluster.FrameJob(out=str(tmp_path), model=model_path)
    result = cluster.run_frames(client, job, frames[:3])
    client.close()
    assert len(result.rows) == 3
    # In-process workers share this module: one load for three frames on two workers.
    assert cluster.models_loaded() - before <= 1


def test_an_unreachable_scheduler_is_one_clear_error(frames, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    code = main(["lacosmic", frames[0], "--out", str(tmp_path / "out"), "--dask", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s " + err[0].split(" 1 s ")[1]]
    assert "Traceback" not in err[0]


def test_a_model_missing_on_a_worker_stops_the_job_with_one_error(frames, scheduler, tmp_path, capsys):
    gone = str(tmp_path / "gone.keras")
    assert main(["predict", "--model", gone, frames[0], "--out", str(tmp_path / "a"), "--dask", scheduler]) == 2
    assert capsys.readouterr().err.strip() == f"error: {gone}: no such model file"
    # The client sees the file but a worker does not (another file system): the worker says so, by name.
    client = distributed.Client(scheduler)
    try:
        with pytest.raises(SegcoreError, match=r"gone.keras: no such model file on worker inproc://"):
            cluster.run_frames(client, cluster.FrameJob(out=str(tmp_path / "b"), model=gone), frames[:3])
    finally:
        client.close()
    assert not (tmp_path / "b" / "counts.csv").exists()


def test_an_unreadable_frame_is_reported_and_the_others_written(frames, scheduler, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["lacosmic", frames[0], str(bad), "--out", str(out), "--dask", scheduler]) == 2
    captured = capsys.readouterr()
    assert f"error: {bad}:" in captured.err and "1 masks and counts.csv written" in captured.out
    assert [row["file"] for row in _counts(out)] == [frames[0]]


def test_write_atomically_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cluster.write_atomically(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["counts.csv"]


@pytest.mark.slow
def test_a_worker_killed_mid_job_has_its_frames_done_elsewhere(tmp_path):
    """Worker processes each load a tiny DeepLabV3+ once; one is killed (SIGKILL) while it holds frames; the job
    still ends with every file equal to the one-process run's."""
    from segcore.model import build_deeplabv3plus

    model = tmp_path / "tiny.keras"
    network, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none")
    save_model(network, model)
    frames = []
    for seed in range(8):
        path = tmp_path / "frames" / f"f{seed:02d}.png"
        path.parent.mkdir(exist_ok=True)
        io.write_frame(path, simulate_frame(np.random.default_rng(seed), 128, n_cosmics=5, family="integrating").frame)
        frames.append(str(path))
    one = tmp_path / "one"
    assert main(["predict", "--model", str(model), *frames, "--out", str(one), "--threshold", "0.5"]) == 0

    killed = {}
    with cluster.local_cluster(2) as local, distributed.Client(local) as client:

        def progress(done, total):
            if done >= 1 and not killed:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                if busy:
                    worker = next(iter(busy))
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    killed.update(worker=worker, frames=len(busy[worker]))
                    os.kill(pid, signal.SIGKILL)

        job = cluster.FrameJob(out=str(tmp_path / "many"), model=str(model), threshold=0.5)
        result = cluster.run_frames(client, job, frames, progress=progress, display_out=tmp_path / "many")
        loads = client.run(cluster.models_loaded)
    assert killed and killed["frames"] >= 1, "no worker was killed while it held frames"
    assert not result.errors and len(result.rows) == 8
    # each live worker loaded the model at most once (the restarted one may have been given no frame)
    assert all(count <= 1 for count in loads.values()) and sum(loads.values()) >= 1, loads
    assert_same_outputs(one, tmp_path / "many")
