"""The app's prediction jobs on a Dask cluster (``COSMICS_DASK_SCHEDULER``): the same proposals as the job's own
process makes (the reference), a scheduler that cannot be reached or a model a worker cannot find fails the job
with one line. Workers are an in-process LocalCluster; the job runs in this process."""

from __future__ import annotations

import distributed
import numpy as np
import pytest
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from model_support import conv_model

import db
from db.prediction_worker import DASK_SCHEDULER_SETTING
from segcore import cluster
from segcore.classical import LACosmicParams
from test_db_predictions import _finished_run, no_process  # noqa: F401


@pytest.fixture(scope="module")
def scheduler():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        yield local.scheduler_address


@pytest.fixture
def labelled(sqlite_store, tmp_path):  # noqa: F811
    make_layout(tmp_path / "src", {"Train": 2, "Validation": 1, "Test": 1}, real=2)
    return db.import_folder(tmp_path / "src", name="labelled").dataset_id


def _proposals(job_id):
    found = {}
    for frame_id in db.get_prediction(job_id).frame_ids:
        (proposal,) = [p for p in db.frame_proposals(frame_id) if p.job_id == job_id]
        found[frame_id] = (db.proposal_mask(proposal.id), db.proposal_probabilities(proposal.id), proposal.threshold,
                           proposal.cosmics)
    return found


def _same(one, other):
    assert one.keys() == other.keys()
    for frame_id, (mask, probabilities, threshold, cosmics) in one.items():
        got = other[frame_id]
        np.testing.assert_array_equal(got[0], mask)
        if probabilities is None:
            assert got[1] is None
        else:
            assert got[1].dtype == probabilities.dtype and got[1].tobytes() == probabilities.tobytes()
        assert got[2:] == (threshold, cosmics)


@pytest.mark.slow
def test_a_runs_model_on_the_cluster_proposes_what_the_jobs_own_process_does(labelled, scheduler, no_process,  # noqa: F811
                                                                             monkeypatch, capsys):
    run_id = _finished_run(labelled, conv_model(seed=3), threshold=0.45)
    here = db.start_prediction(labelled, run_id)
    assert no_process(here) == 0
    monkeypatch.setenv(DASK_SCHEDULER_SETTING, scheduler)
    there = db.start_prediction(labelled, run_id)
    assert no_process(there) == 0
    job = db.get_prediction(there)
    assert (job.status, job.frames_done, job.threshold) == ("finished", 6, 0.45)
    assert job.precision == db.get_prediction(here).precision
    _same(_proposals(here), _proposals(there))
    assert f"on 6 frame(s) on the Dask cluster at {scheduler}" in capsys.readouterr().out


@pytest.mark.slow
def test_lacosmic_on_the_cluster_proposes_what_the_jobs_own_process_does(labelled, scheduler, no_process,  # noqa: F811
                                                                         monkeypatch):
    params = LACosmicParams(sigclip=4.5, objlim=2.0, niter=2)
    run_id = _finished_run(labelled, kind="lacosmic", config={**params.to_dict(), "tune": False})
    here = db.start_prediction(labelled, run_id, split="train")
    assert no_process(here) == 0
    monkeypatch.setenv(DASK_SCHEDULER_SETTING, scheduler)
    there = db.start_prediction(labelled, run_id, split="train")
    assert no_process(there) == 0
    _same(_proposals(here), _proposals(there))


def test_an_unreachable_scheduler_fails_the_job_saying_so(labelled, no_process, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setenv(DASK_SCHEDULER_SETTING, "tcp://127.0.0.1:9")
    job_id = db.start_prediction(labelled, _finished_run(labelled, conv_model(seed=1)), split="test")
    assert no_process(job_id) == 1
    job = db.get_prediction(job_id)
    assert job.status == "failed" and job.error.startswith("cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")


@pytest.mark.slow
def test_a_model_no_worker_can_find_fails_the_job_naming_it(labelled, scheduler, no_process, monkeypatch):  # noqa: F811
    run_id = _finished_run(labelled, conv_model(seed=2))
    job_id = db.start_prediction(labelled, run_id, split="test")
    db.get_run(run_id).best_checkpoint.unlink()
    monkeypatch.setenv(DASK_SCHEDULER_SETTING, scheduler)
    assert no_process(job_id) == 1
    job = db.get_prediction(job_id)
    assert job.status == "failed" and "best.keras: no such model file on worker inproc://" in job.error
    assert db.frame_proposals(db.list_frames(labelled, "test")[0].id) == []
