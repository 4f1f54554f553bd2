"""zoo.search and the model library: real Optuna studies of tiny MNIST models, trained in spawned worker processes."""

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from clirun import run_command
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

import zoo
from zoo import ChecksumError, Registry, RegistryError
from zoo.search_spaces import SPACES, TRAINING_PARAMS, resolve, suggest
from zoo.search.storage import STORAGE_FILE
from zoo.search.trials import sampler_seed

SMOKE = {"subset": 300, "epochs": 1, "progress": False}  # 300 images to fit, a slice of 75 to score on
LR_ONLY = {"replace": True, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}


def study_of(library, name="mnist_mlp"):
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(library / STORAGE_FILE))))


def first_draw(space, seed):
    """The values a fresh TPE sampler seeded with ``seed`` draws first from ``space``."""
    trial = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)).ask()
    suggest(trial, space)
    return trial.params


def run_zoo(*args, check=True, **kwargs):
    proc = run_command("zoo", *args, **kwargs)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A three-trial search of mnist_mlp on 300 training images, one epoch each, in one worker process."""
    library = tmp_path_factory.mktemp("search") / "lib"
    summary = zoo.search("mnist_mlp", library=library, n_trials=3, trials_per_process=3, **SMOKE)
    return library, summary


def test_three_trial_search_records_every_trial_in_the_study_and_the_library(searched):
    library, summary = searched
    trials = study_of(library).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3
    assert summary["trials"] == {"complete": 3, "pruned": 0, "failed": 0, "running": 0}
    best = max(trials, key=lambda t: t.value)
    assert summary["best"]["trial"] == best.number and summary["best"]["value"] == best.value
    assert summary["best"]["entry"] == f"mnist_mlp_t{best.number:04d}" and summary["metric"] == "accuracy"
    assert all(t.user_attrs["host"] == socket.gethostname() and t.user_attrs["pid"] != os.getpid() for t in trials)

    # the sampler is seeded with seed + the study name's offset + the trial's number: TPE's random start-up draws
    space = resolve("mlp")
    space["epochs"] = 1
    assert [t.params for t in trials] == [first_draw(space, seed=sampler_seed("mnist_mlp", 0, t.number)) for t in trials]

    registry = Registry(library)
    assert registry.format_version == 2
    assert zoo.list_models("mnist_mlp_t*", registry=library) == ["mnist_mlp_t0000", "mnist_mlp_t0001", "mnist_mlp_t0002"]
    for trial in trials:
        entry = zoo.info(f"mnist_mlp_t{trial.number:04d}", registry=registry)
        assert entry["search"]["study"] == "mnist_mlp" and entry["search"]["trial"] == trial.number
        assert entry["search"]["objective"] == {"name": "early_stopping_accuracy", "value": trial.value, "direction": "maximize"}
        assert entry["metrics"]["early_stopping"]["accuracy"] == trial.value
        assert set(entry["metrics"]) == {"early_stopping"}  # never measured on validation or test
        assert entry["dataset"] == "mnist" and entry["builder"] == "mlp" and entry["recipe"]["epochs"] == 1
        assert entry["params"]["units"] == entry["search"]["hyperparameters"]["units"]
        assert entry["recipe"]["optimizer"]["learning_rate"] == trial.params["learning_rate"]
        assert (entry["training"]["fit_examples"], entry["training"]["early_stopping_examples"], entry["training"]["subset"]) == (300, 75, 300)
        assert entry["versions"]["optuna"] == optuna.__version__


def test_library_entries_load_predict_and_reproduce_their_slice_scores(searched, tmp_path):
    from zoo.estimator import _carve
    from zoo.models import scores

    library, summary = searched
    name = summary["best"]["entry"]
    entry = zoo.info(name, registry=library)
    model = zoo.load(name, registry=library)
    X, y = zoo.datasets.load("mnist", "train")
    X, y = X[:375], y[:375]
    _, es = _carve(y, entry["recipe"]["early_stopping_size"], entry["recipe"]["seed"])
    measured = scores(y[es], zoo.predict_proba(model, X[es]))
    assert measured["accuracy"] == pytest.approx(entry["metrics"]["early_stopping"]["accuracy"], abs=1e-6)
    assert measured["log_loss"] == pytest.approx(entry["metrics"]["early_stopping"]["log_loss"], abs=1e-5)
    X_test, _ = zoo.datasets.load("mnist", "test")
    proba = zoo.predict_proba(model, X_test[:50])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(axis=1), 1)

    tampered = tmp_path / "lib"
    shutil.copytree(library, tampered)
    weights = Registry(tampered).weights_path(name)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=name):
        zoo.load(name, registry=tampered)


def test_resuming_adds_trials_up_to_the_new_total_and_no_more(searched, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(searched[0], library)
    summary = zoo.search("mnist_mlp", library=library, n_trials=4, trials_per_process=3, **SMOKE)
    trials = study_of(library).trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in trials)
    assert summary["trials"]["complete"] == 4
    assert zoo.list_models(registry=library) == [f"mnist_mlp_t{i:04d}" for i in range(4)]
    again = zoo.search("mnist_mlp", library=library, n_trials=4, **SMOKE)  # already complete: starts no worker
    assert len(study_of(library).trials) == 4 and again["trials"]["complete"] == 4 and again["wall_seconds"] < 10


def test_a_dead_trial_whose_model_reached_the_library_is_completed_not_rerun(searched, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(searched[0], library)
    finished = subprocess.Popen(["true"])
    finished.wait()  # a pid whose process is gone
    study = study_of(library)
    trial = study.ask()  # the worker that died after writing its entry, before telling the study
    for key, value in {"host": socket.gethostname(), "pid": finished.pid, "pid_start": None, "worker": 0}.items():
        trial.set_user_attr(key, value)
    registry = Registry(library)
    entry = registry.entry("mnist_mlp_t0002")
    entry.update(name="mnist_mlp_t0003", search={**entry["search"], "trial": 3, "objective": {**entry["search"]["objective"], "value": 0.999}})  # better than any smoke trial
    registry.put(entry)

    summary = zoo.search("mnist_mlp", library=library, n_trials=4, **SMOKE)  # the study has its 4 trials: no worker starts
    trials = study_of(library).trials
    assert len(trials) == 4 and trials[3].state == TrialState.COMPLETE and trials[3].value == 0.999
    assert summary["trials"]["complete"] == 4 and summary["best"]["entry"] == "mnist_mlp_t0003"


def test_two_worker_processes_complete_exactly_the_requested_distinct_trials(tmp_path):
    library = tmp_path / "lib"
    summary = zoo.search("mnist_mlp", library=library, n_trials=4, workers=2, trials_per_process=2, space=LR_ONLY, seed=3, **SMOKE)
    trials = study_of(library).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(complete) == 4 and summary["trials"]["complete"] == 4
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus") for t in others)  # asked at once near the end
    assert len({t.params["learning_rate"] for t in complete}) == 4
    assert all(t.params == first_draw(resolve("mlp", LR_ONLY), seed=sampler_seed("mnist_mlp", 3, t.number)) for t in complete)  # never the same seed
    assert {t.user_attrs["worker"] for t in complete} == {0, 1} and len({t.user_attrs["pid"] for t in complete}) >= 2
    assert sorted(zoo.list_models(registry=library)) == [f"mnist_mlp_t{t.number:04d}" for t in complete]  # written concurrently


def test_a_trial_worse_than_the_median_is_pruned_after_its_first_epoch(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    study = optuna.create_study(study_name="mnist_mlp", storage=JournalStorage(JournalFileBackend(str(library / STORAGE_FILE))), direction="maximize")
    study.enqueue_trial({"learning_rate": 1e-3})
    study.enqueue_trial({"learning_rate": 1e-7})  # learns nothing in one epoch
    space = {"replace": True, "learning_rate": {"low": 1e-7, "high": 1e-2, "log": True}}
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    summary = zoo.search("mnist_mlp", library=library, n_trials=2, space=space, pruner=pruner, trials_per_process=2, subset=300, epochs=3, progress=False)
    good, bad = study_of(library).trials
    assert (good.state, bad.state) == (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(good.intermediate_values) == 3 and list(bad.intermediate_values) == [0]  # one of its three epochs ran
    assert bad.intermediate_values[0] < good.intermediate_values[0]
    assert summary["trials"]["pruned"] == 1 and zoo.list_models(registry=library) == ["mnist_mlp_t0000"]  # pruned: no entry


def test_a_running_trial_of_a_killed_worker_is_failed_and_run_again(tmp_path):
    library = tmp_path / "lib"
    slow = tmp_path / "slow.yaml"  # a trial that trains long enough to be killed in the middle
    slow.write_text(yaml.safe_dump({**LR_ONLY, "epochs": 1000, "patience": 1000}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "search", "mnist_mlp", "--library", library, "--trials", "2", "--subset", "300", "--space", slow, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        running = None
        deadline = time.time() + 300
        while running is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if (library / STORAGE_FILE).exists() and (library / "registry.yaml").exists():
                trials = study_of(library).get_trials(states=(TrialState.RUNNING,))
                running = next((t for t in trials if "pid" in t.user_attrs and t.intermediate_values), None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert running is not None, "no trial started"

    summary = zoo.search("mnist_mlp", library=library, n_trials=2, space=LR_ONLY, trials_per_process=2, **SMOKE)
    trials = study_of(library).trials
    killed = trials[running.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["retried"] is True
    rerun = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(rerun) == 1 and rerun[0].state == TrialState.COMPLETE and rerun[0].params == running.params
    assert summary["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "running": 0}
    assert f"mnist_mlp_t{rerun[0].number:04d}" in zoo.list_models(registry=library)


def test_cli_search_on_user_data_lists_and_shows_the_library(tmp_path):
    X, y = zoo.datasets.load("mnist", "train")
    labels = np.array(["low", "mid", "high"])[np.minimum(y[:400] // 4, 2)]
    np.savez(tmp_path / "train.npz", X=X[:400, ::4, ::4], y=labels)  # 7x7 images, three string classes
    library = tmp_path / "lib"
    url = f"sqlite:///{tmp_path / 'study.db'}"  # any Optuna storage URL
    proc = run_zoo("search", "mlp", "--library", library, "--data", tmp_path / "train.npz", "--trials", "2", "--epochs", "1",
                   "--trials-per-process", "2", "--storage", url, "--json", "--quiet", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "running": 0} and summary["study"] == "mlp"
    assert summary["library"] == str(library) and summary["storage"] == url and not (library / STORAGE_FILE).exists()
    assert [t.state for t in optuna.load_study(study_name="mlp", storage=url).trials] == [TrialState.COMPLETE] * 2

    rows = json.loads(run_zoo("list", "--library", library, "--json").stdout)
    assert [r["value"] for r in rows] == sorted((r["value"] for r in rows), reverse=True)
    assert {r["name"] for r in rows} == {"mlp_t0000", "mlp_t0001"} and rows[0]["name"] == summary["best"]["entry"]
    entry = json.loads(run_zoo("info", rows[0]["name"], "--library", library, "--json").stdout)
    assert "dataset" not in entry and "licence" not in entry and entry["classes"] == ["high", "low", "mid"]
    assert entry["input"] == {"shape": [7, 7, 1], "dtype": "uint8"} and entry["data"]["examples"] == 400
    assert entry["metrics"]["early_stopping"]["accuracy"] == summary["best"]["value"]
    model = zoo.load(rows[0]["name"], registry=library)
    assert zoo.predict_proba(model, X[:5, ::4, ::4]).shape == (5, 3)


@pytest.mark.parametrize("url", ["not-a-url", "sqlite:////nonexistent-folder/study.db", "nosuchdialect://host/db"])
def test_cli_refuses_an_invalid_or_unreachable_storage_before_any_work(tmp_path, url):
    proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--storage", url, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo search: error: storage") and "Traceback" not in proc.stderr
    assert not (tmp_path / "lib").exists()


def test_a_text_search_writes_entries_with_their_vocabulary(tmp_path):
    library = tmp_path / "lib"
    space = {"replace": True, "max_tokens": 2000, "units": {"choices": [4, 8]}}
    summary = zoo.search("imdb_bow", library=library, n_trials=1, space=space, subset=200, epochs=1, progress=False)
    name = summary["best"]["entry"]
    registry = Registry(library)
    entry = registry.entry(name)
    assert entry["task"] == "text-classification" and entry["dataset"] == "imdb" and entry["params"]["max_tokens"] == 2000
    model = zoo.load(name, registry=library)
    proba = zoo.predict_proba(model, np.array(["A wonderful, moving film.", "Dull and far too long."], dtype=object))
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    vocabulary = registry.vocabulary_path(name)
    vocabulary.write_text(vocabulary.read_text() + "extra\n")
    with pytest.raises(ChecksumError, match="vocabulary"):
        zoo.load(name, registry=library)


def test_a_failing_trial_stops_the_search_with_its_error(tmp_path):
    library = tmp_path / "lib"
    with pytest.raises(ValueError, match="trial 0 of study 'mnist_bn_cnn' failed: augment must be one of"):
        zoo.search("mnist_bn_cnn", library=library, n_trials=3, space={"replace": True, "augment": "sideways"}, **SMOKE)
    (trial,) = study_of(library, "mnist_bn_cnn").trials
    assert trial.state == TrialState.FAIL and "augment must be one of" in trial.user_attrs["error"]
    assert zoo.list_models(registry=library) == []


def test_timeout_starts_no_trial_after_it(tmp_path):
    summary = zoo.search("mnist_mlp", library=tmp_path / "lib", n_trials=2, timeout=1e-6, **SMOKE)
    assert summary["timed_out"] is True and summary["trials"]["complete"] == 0 and summary["best"] is None
    assert study_of(tmp_path / "lib").trials == []


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("bn_cnn", {}, "is a builder: give it your data"),
        ("no_such_model", {}, "unknown zoo entry or builder"),
        ("mnist_mlp", {"space": {"dropout": {"low": 0.5, "high": 0.1}}}, "dropout: need numbers low <= high"),
        ("mnist_mlp", {"timeout": -5}, "timeout must be a positive number"),
        ("mnist_mlp", {"study_name": "../x"}, "study name '../x'"),
        ("mnist_mlp", {"metric": "f1"}, "metric must be one of"),
        ("bn_cnn", {"X": np.zeros((10, 8, 8), np.float32), "y": np.arange(10) % 2}, "takes uint8 images"),
        # spaces checked against the input shape
        ("mlp", {"X": np.zeros((10, 20), np.float32), "y": np.arange(10) % 2, "space": {"augment": {"choices": [None, "shift"]}}},
         "augment {'choices': [None, 'shift']}: image augmentation needs images (height, width, channels), but the input is shaped (20,)"),
        ("bn_cnn", {"X": np.zeros((10, 4, 4), np.uint8), "y": np.arange(10) % 2, "space": {"filters": [8, 16, 32, 64]}},
         "filters [8, 16, 32, 64] does not fit images of 4x4: its 3 unpadded 2x2 max-pools leave no pixel"),
        ("bn_cnn", {"X": np.zeros((10, 1, 1), np.uint8), "y": np.arange(10) % 2}, "filters [32, 64] does not fit images of 1x1"),
        ("inception", {"X": np.zeros((10, 4, 4), np.uint8), "y": np.arange(10) % 2, "space": {"stem_strides": 2, "modules": None}},
         "does not fit images of 4x4: its 2 unpadded 2x2 max-pools after a stem of stride 2 leave no pixel"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, name, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("{", r"\{")):
        zoo.search(name, library=tmp_path / "lib", n_trials=1, **kwargs)
    assert not (tmp_path / "lib" / STORAGE_FILE).exists()
    assert not (tmp_path / "lib").exists()  # no library folder either: refused before anything is written


def test_two_studies_sharing_a_library_and_a_seed_draw_different_start_up_trials(tmp_path):
    library = tmp_path / "lib"
    for study in ("mnist_mlp", "mnist_mlp_b"):  # two names for one model, one library, one seed
        zoo.search("mnist_mlp", library=library, n_trials=1, study_name=study, space=LR_ONLY, seed=0, **SMOKE)
    (a,), (b,) = study_of(library, "mnist_mlp").trials, study_of(library, "mnist_mlp_b").trials
    assert a.params["learning_rate"] != b.params["learning_rate"]
    # reproducible: the same name and seed draw the same values (a fresh sampler asked through Optuna's public API)
    space = resolve("mlp", LR_ONLY)
    assert a.params == first_draw(space, seed=sampler_seed("mnist_mlp", 0, 0))
    assert b.params == first_draw(space, seed=sampler_seed("mnist_mlp_b", 0, 0))
    # and the shipped search files' two studies of one library start apart too
    conv = resolve("bn_cnn", dataset="fashion_mnist")
    assert first_draw(conv, seed=sampler_seed("fashion_mnist_bn_cnn", 0, 0)) != first_draw(conv, seed=sampler_seed("fashion_mnist_residual", 0, 0))
    assert sampler_seed("fashion_mnist_bn_cnn", 0, 0) == sampler_seed("fashion_mnist_bn_cnn", 0, 0) != sampler_seed("fashion_mnist_bn_cnn", 0, 1)
    assert 0 <= sampler_seed("x", 2**32 - 1, 10**6) < 2**32  # a valid NumPy seed whatever the seed and trial number


def test_cli_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    (tmp_path / "space.yaml").write_text("- not a mapping\n")
    proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--space", tmp_path / "space.yaml", check=False)
    assert proc.returncode == 2 and "expected a mapping" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_zoo("list", "--library", tmp_path / "nothing", check=False)
    assert proc.returncode == 2 and "no registry.yaml" in proc.stderr


# --------------------------------------------------------------------------- spaces and registry format (no training)


def test_import_zoo_stays_free_of_optuna_and_tensorflow():
    code = "import sys, zoo, zoo.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'optuna', 'tensorflow', 'keras'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]" and callable(zoo.search)


def test_default_spaces_name_real_hyperparameters_and_resolve():
    import inspect

    from zoo.architectures import BUILDERS

    assert set(SPACES) == set(BUILDERS)
    for builder, space in SPACES.items():
        names = set(inspect.signature(BUILDERS[builder]).parameters) | set(TRAINING_PARAMS)
        assert set(space) <= names, builder
        assert resolve(builder) == space
    narrowed = resolve("bn_cnn", {"dropout": 0.3, "augment": None, "dense": {"choices": [32]}})
    assert narrowed["dropout"] == 0.3 and "augment" not in narrowed and narrowed["dense"] == {"choices": [32]}
    assert resolve("bn_cnn", {"replace": True, "dense": 64, "patience": 2}) == {"dense": 64, "patience": 2}


def test_a_study_drawn_from_the_former_default_augment_choices_resumes_with_them():
    from optuna.distributions import CategoricalDistribution

    from zoo.search.trials import keep_recorded_choices

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=1))
    former = CategoricalDistribution([None, "shift", "flip_shift"])  # the default before flips depended on the data
    study.add_trial(optuna.trial.create_trial(params={"augment": "flip_shift"}, distributions={"augment": former}, value=0.5))
    with pytest.raises(ValueError, match="dynamic value space"):  # what Optuna does with the new default
        suggest(study.ask(), {"augment": resolve("bn_cnn", dataset="mnist")["augment"]})
    space = {"augment": {"choices": [None, "shift"]}, "dropout": 0.3}  # a default space for a user's images
    keep_recorded_choices(study, space, None)
    assert space["augment"] == {"choices": [None, "shift", "flip_shift"]}
    assert suggest(study.ask(), space)["augment"] in (None, "shift", "flip_shift")
    given = {"augment": {"choices": [None, "shift"]}}
    keep_recorded_choices(study, kept := resolve("bn_cnn", given), given)  # the user's own choices stay the user's
    assert kept["augment"] == {"choices": [None, "shift"]}


def test_default_spaces_flip_only_where_the_data_allows_and_fit_the_image_size():
    from zoo.augment import POLICIES
    from zoo.search_spaces import AUGMENT_CHOICES, FLIP_DATASETS

    flips = {None: False, "mnist": False, "fashion_mnist": True, "imdb": False}
    for builder in ("bn_cnn", "sepconv", "residual", "inception"):
        for dataset, flipped in flips.items():
            choices = resolve(builder, dataset=dataset)["augment"]["choices"]
            assert any(str(c).startswith("flip") for c in choices) is flipped, (builder, dataset)
            assert ("flip_shift" in choices) is flipped, (builder, dataset)
        # a zoo dataset's default: None and exactly the policies zoo.augment says suit it
        for dataset in ("mnist", "fashion_mnist"):
            suited = [None, *(name for name, policy in POLICIES.items() if dataset in policy.datasets)]
            assert resolve(builder, dataset=dataset)["augment"] == {"choices": suited} == {"choices": list(AUGMENT_CHOICES[dataset])}
        assert resolve(builder, dataset="mnist")["augment"]["choices"] == [None, "shift", "crop", "digits", "digits_erase"]
        assert {"flip_crop", "flip_crop_erase"} <= set(resolve(builder, dataset="fashion_mnist")["augment"]["choices"])
        assert resolve(builder)["augment"] == resolve(builder, dataset="imdb")["augment"] == {"choices": [None, "shift"]}  # a user's images
    assert FLIP_DATASETS == {"fashion_mnist"}
    # a user's own images: no flip unless the user's space asks for it
    assert resolve("bn_cnn", {"augment": {"choices": [None, "flip_shift"]}})["augment"] == {"choices": [None, "flip_shift"]}
    assert resolve("bn_cnn", {"augment": "flip_shift"}, dataset="mnist")["augment"] == "flip_shift"
    # pooling stages: the default choices too deep for the image are left out; a 28x28 image keeps them all
    assert resolve("bn_cnn", input_shape=(28, 28, 1)) == resolve("bn_cnn")
    assert resolve("bn_cnn", input_shape=(3, 3, 1))["filters"] == {"choices": [[32, 64]]}  # 3 -> 1; three stages would reach 0
    assert resolve("inception", input_shape=(3, 5, 3))["modules"] == {"choices": [[[32, 64, 32, 32], [64, 128, 64, 64]]]}
    assert resolve("inception", input_shape=(8, 8, 1), fixed={"stem_strides": 2})["modules"] == resolve("inception")["modules"]  # 8 -> 4 -> 2 -> 1
    with pytest.raises(ValueError, match=r"filters \[32, 64, 128\] does not fit images of 3x3"):  # the user's value is never trimmed
        resolve("bn_cnn", {"filters": {"choices": [[32, 64], [32, 64, 128]]}}, input_shape=(3, 3, 1))
    with pytest.raises(ValueError, match=r"filters \[32, 64, 128, 256\] does not fit images of 4x4"):  # nor the starting point's
        resolve("bn_cnn", {"filters": None}, input_shape=(4, 4, 1), fixed={"filters": [32, 64, 128, 256]})
    assert resolve("sepconv", input_shape=(1, 1, 1)) == resolve("sepconv")  # padded downsampling fits any size
    assert resolve("text_bow", input_shape=None) == resolve("text_bow")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"widht": 3}, "mlp has no hyperparameter 'widht'"),
        ({"random_state": {"choices": [0, 1]}}, "random_state is not searched"),
        ({"early_stopping_size": 100}, "early_stopping_size is not searched"),
        ({"dropout": {"low": 0.6, "high": 0.1}}, "dropout: need numbers low <= high"),
        ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "log scale needs low > 0"),
        ({"units": {"choices": []}}, "units: choices must be a non-empty list"),
        ({"units": {"choices": [[8], [8]]}}, "repeated choices"),
        ({"dropout": {"low": 0.1}}, "expected {low, high"),
    ],
)
def test_malformed_spaces_name_the_hyperparameter(space, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("(", r"\(")):
        resolve("mlp", space)


def test_registry_v2_reads_v1_entries_relaxes_dataset_and_checks_search_records(tmp_path):
    shipped = Registry()
    v1 = shipped.entry("mnist_mlp")
    entry = copy.deepcopy(v1)
    for key in ("dataset", "licence"):
        del entry[key]
    entry["metrics"] = {"early_stopping": {"accuracy": 0.9, "log_loss": 0.3}}
    entry["search"] = {"study": "s", "trial": 7, "objective": {"name": "early_stopping_accuracy", "value": 0.9, "direction": "maximize"}}
    entry["name"] = "s_t0007"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"format_version": 2, "models": [v1, entry]}))
    assert Registry(tmp_path).names() == ["mnist_mlp", "s_t0007"] and Registry(tmp_path).names(dataset="mnist") == ["mnist_mlp"]

    with pytest.raises(RegistryError, match="'s_t0007', field 'dataset': missing"):  # version 1 still requires it
        path.write_text(yaml.safe_dump({"format_version": 1, "models": [entry]}))
        Registry(path)
    for mutate, field in [
        (lambda e: e["search"].update(trial=-1), "search.trial"),
        (lambda e: e["search"]["objective"].update(direction="up"), "search.objective.direction"),
        (lambda e: e["search"]["objective"].pop("value"), "search.objective"),
        (lambda e: e["metrics"]["early_stopping"].update(accuracy=2.0), "metrics"),
        (lambda e: e["input"].update(dtype="float64"), "input.dtype"),
    ]:
        bad = copy.deepcopy(entry)
        mutate(bad)
        path.write_text(yaml.safe_dump({"format_version": 2, "models": [bad]}))
        with pytest.raises(RegistryError, match=f"'s_t0007', field '{field}'"):
            Registry(path)

    # a registry keeps its version when entries are added; Registry.create makes version 2
    v1_path = tmp_path / "v1" / "registry.yaml"
    v1_path.parent.mkdir()
    v1_path.write_text(yaml.safe_dump({"format_version": 1, "models": []}))
    Registry(v1_path).put(v1)
    assert yaml.safe_load(v1_path.read_text())["format_version"] == 1
    with pytest.raises(RegistryError, match="field 'dataset': missing"):
        Registry(v1_path).put(entry)
    created = Registry.create(tmp_path / "new")
    created.put(entry)
    assert created.format_version == 2 and Registry(tmp_path / "new").names() == ["s_t0007"]
