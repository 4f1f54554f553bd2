"""Predictions larger than memory: chunk by chunk from memory-mapped .npy files, text files and Dask arrays,
hashed chunk by chunk, written atomically, with bounded memory; the `zoo predict --out` and
`ensemble evaluate --x/--y` commands."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import ensemble
import zoo
from ensemble.chunked import TextLines, data_hash, iter_chunks, predict_chunked
from ensemble.preprocessing import Flatten


def run_cli(module, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, timeout=600, env=os.environ.copy(), check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def fashion():
    X, y = zoo.datasets.load("fashion_mnist", "test")
    return X[:2500], y[:2500], zoo.load("fashion_mnist_mlp")


@pytest.fixture(scope="module")
def mnist_blend(tmp_path_factory):
    """A blend of a zoo model and a logistic regression, fitted on MNIST validation images; test images."""
    X, y = zoo.datasets.load("mnist", "train")
    logreg = make_pipeline(Flatten(), LogisticRegression(max_iter=100)).fit(X[:2000], y[:2000])
    Xv, yv = zoo.datasets.load("mnist", "validation")
    blend = ensemble.BlendClassifier([("mlp", zoo.load("mnist_mlp")), ("logreg", FrozenEstimator(logreg))], method="slsqp")
    blend.fit(Xv[:1000], yv[:1000])
    Xt, yt = zoo.datasets.load("mnist", "test")
    return blend, Xt[:2000], yt[:2000]


def test_memory_mapped_zoo_model_prediction_equals_in_memory(tmp_path, fashion):
    X, y, model = fashion
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    expected = zoo.predict_proba(model, X)
    got = predict_chunked(model, mapped, chunk_size=700)  # 700, 700, 700, 400 rows
    assert isinstance(got, np.ndarray) and got.shape == (2500, 10) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert np.mean(got.argmax(axis=1) == y) > 0.85  # a real model on real images

    written = predict_chunked(model, tmp_path / "x.npy", chunk_size=1000, out=tmp_path / "proba.npy")  # a path: memory-mapped
    assert isinstance(written, np.memmap) and str(written.filename) == str(tmp_path / "proba.npy")
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), expected, rtol=0, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proba.npy", "x.npy"]  # no temporary file left


def test_ensemble_prediction_in_chunks_equals_in_memory_and_caches_each_chunk(tmp_path, mnist_blend):
    blend, X, y = mnist_blend
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    expected = blend.predict_proba(X)
    np.testing.assert_allclose(predict_chunked(blend, mapped, chunk_size=600), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(predict_chunked(blend, mapped, "predict", chunk_size=600), blend.predict(X))

    cached = ensemble.BlendClassifier(blend.estimators, method="slsqp", memory=tmp_path / "cache")
    cached.fit(mapped[:1000], y[:1000])
    first = predict_chunked(cached, mapped, chunk_size=800, out=tmp_path / "p.npy")
    entries = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(entries) == 2 + 2 * 3  # the fit's outputs, then each member's on each of 3 chunks
    np.testing.assert_array_equal(predict_chunked(cached, mapped, chunk_size=800), first)  # served from the cache
    assert sorted((tmp_path / "cache").glob("*.npy")) == entries


def test_text_file_one_review_per_line(tmp_path):
    X, y = zoo.datasets.load("imdb", "test")
    reviews = [r.replace("\r", " ").replace("\n", " ") for r in X[:30]]  # \n ends a line, \r\n too (see tests/test_text_lines.py)
    (tmp_path / "reviews.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")
    lines = TextLines(tmp_path / "reviews.txt")
    assert len(lines) == 30
    assert [list(c) for _, _, c in iter_chunks(lines, 7)][4] == reviews[28:]
    model = zoo.load("imdb_bow")
    expected = zoo.predict_proba(model, np.array(reviews, dtype=object))
    got = predict_chunked(model, tmp_path / "reviews.txt", chunk_size=7, out=tmp_path / "p.npy")
    assert got.shape == (30, 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.mean(got.argmax(axis=1) == y[:30]) > 0.7

    (tmp_path / "bad.txt").write_bytes(b"fine review\nbroken \xff review\n")
    with pytest.raises(ValueError, match="line 2 is not UTF-8"):
        TextLines(tmp_path / "bad.txt")


def test_dask_array_input(fashion):
    X, _, model = fashion
    lazy = da.from_array(X, chunks=(500, 28, 28, 1))
    np.testing.assert_allclose(predict_chunked(model, lazy, chunk_size=800), zoo.predict_proba(model, X), rtol=0, atol=1e-6)
    assert data_hash(lazy) == data_hash(X)


def test_chunk_wise_hash_equals_whole_array_hash(tmp_path, fashion):
    X = fashion[0]
    whole = hashlib.sha256(b"ensemble-data-v1\0" + f"array\0{X.dtype.str}\0{X.shape}\0".encode() + X.tobytes()).hexdigest()
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert {data_hash(X, chunk_size=k) for k in (1, 7, 999, 2500, 10_000)} == {whole}
    assert data_hash(mapped) == whole
    assert data_hash(X.astype(np.int16)) != whole and data_hash(X[:, :14]) != data_hash(X[:, 14:])

    texts = np.array(["a great film", "dull", "é", "x\0y", ""], dtype=object)
    (tmp_path / "t.txt").write_text("\n".join(texts[:4]), encoding="utf-8")
    assert data_hash(TextLines(tmp_path / "t.txt"), chunk_size=3) == data_hash(texts[:4]) == data_hash(texts[:4], chunk_size=1)
    assert data_hash(np.array(["ab", "c"], dtype=object)) != data_hash(np.array(["a", "bc"], dtype=object))
    with pytest.raises(TypeError):
        data_hash([[1, 2]])
    with pytest.raises(TypeError):
        data_hash(np.array([1, "1"], dtype=object))

    # the one data hash lives in the neutral kze.data; the pair form (inputs with labels) reads both chunk by chunk
    import kze.data

    y = fashion[1]
    assert data_hash is kze.data.data_hash
    pair = kze.data.data_hash_pair(X, y)
    assert pair == kze.data.data_hash_pair(mapped, list(y), chunk_size=7)
    assert pair == hashlib.sha256(b"kze-data-pair-v1\0" + f"{whole}\0{data_hash(y)}\0".encode()).hexdigest()
    assert pair != kze.data.data_hash_pair(X, (y + 1) % 10) and pair != kze.data.data_hash_pair(X[:, :, ::-1], y)


def test_output_file_appears_atomically_and_never_partially(tmp_path, fashion):
    X, _, model = fashion
    bad = X.astype(np.int16)
    bad[1900, 0, 0, 0] = 300  # in the third chunk of 800: two chunks are written before the error
    out = tmp_path / "proba.npy"
    with pytest.raises(ValueError, match="0 to 255"):
        predict_chunked(model, bad, chunk_size=800, out=out)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one

    np.save(out, np.zeros(3))
    with pytest.raises(ValueError, match="0 to 255"):
        predict_chunked(model, bad, chunk_size=800, out=out)
    np.testing.assert_array_equal(np.load(out), np.zeros(3))  # the old file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["proba.npy"]
    with pytest.raises(ValueError, match="chunk_size"):
        predict_chunked(model, X, chunk_size=0)


def test_peak_memory_stays_bounded_over_a_large_memory_mapped_file(tmp_path):
    """Predicting and hashing a 160 MB memory-mapped file leaves its pages out of this process: peak RSS barely grows."""
    script = textwrap.dedent(f"""
        import mmap, resource
        import numpy as np
        from sklearn.naive_bayes import GaussianNB
        from sklearn.pipeline import make_pipeline
        from ensemble.chunked import data_hash, predict_chunked
        from ensemble.preprocessing import Flatten
        X = np.lib.format.open_memmap({str(tmp_path / "x.npy")!r}, mode="w+", dtype=np.uint8, shape=(200_000, 28, 28, 1))
        for start in range(0, len(X), 10_000):  # written without keeping the pages: the test measures reading
            X[start:start + 10_000] = start // 10_000
            X.flush()
            X._mmap.madvise(mmap.MADV_DONTNEED)
        del X
        X = np.load({str(tmp_path / "x.npy")!r}, mmap_mode="r")
        rng = np.random.RandomState(0)
        model = make_pipeline(Flatten(), GaussianNB()).fit(rng.randint(0, 256, (100, 28, 28, 1)), rng.randint(0, 3, 100))
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        predict_chunked(model, X[:10_000], chunk_size=10_000, out={str(tmp_path / "small.npy")!r})
        before = peak()
        predict_chunked(model, X, chunk_size=10_000, out={str(tmp_path / "p.npy")!r})  # reads every row
        predicted = peak()
        data_hash(X)
        print(before, predicted, peak(), int(X[-1, 0, 0, 0]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    before, predicted, hashed, last = proc.stdout.split()
    assert int(last) == 19  # the whole file was written and read
    assert float(predicted) - float(before) < 30, (before, predicted)  # MB, for a 157 MB input and a 5 MB output
    assert float(hashed) - float(before) < 40, (before, hashed)  # (the pages it keeps otherwise: about 150 MB)
    assert np.load(tmp_path / "p.npy", mmap_mode="r").shape == (200_000, 3)


def test_zoo_predict_out_writes_probabilities_in_chunks(tmp_path, fashion):
    X, _, model = fashion
    np.save(tmp_path / "x.npy", X[:1000])
    result = json.loads(run_cli("zoo", "predict", "fashion_mnist_mlp", tmp_path / "x.npy", "--out", tmp_path / "p.npy",
                                "--chunk-size", "300", "--json").stdout)
    proba = np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(proba, zoo.predict_proba(model, X[:1000]), rtol=0, atol=1e-6)
    assert result["n"] == 1000 and result["columns"] == zoo.info("fashion_mnist_mlp")["classes"]
    assert list(result["predicted"].values()) == np.bincount(proba.argmax(axis=1), minlength=10).tolist()

    bad = X[:1000].astype(np.int16)
    bad[700, 3, 3, 0] = -1
    np.save(tmp_path / "bad.npy", bad)
    proc = run_cli("zoo", "predict", "fashion_mnist_mlp", tmp_path / "bad.npy", "--out", tmp_path / "q.npy", "--chunk-size", "300", check=False)
    assert proc.returncode == 2 and "bad.npy" in proc.stderr.splitlines()[-1] and "0 to 255" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy", "p.npy", "x.npy"]


def test_ensemble_evaluate_x_y_files_equals_in_memory_data(tmp_path, mnist_blend):
    blend, X, y = mnist_blend
    ensemble.save(blend, tmp_path / "blend")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    chunked = json.loads(run_cli("ensemble", "evaluate", tmp_path / "blend", "--x", tmp_path / "x.npy", "--y", tmp_path / "y.npy",
                                 "--chunk-size", "700", "--json", "--quiet").stdout)
    whole = json.loads(run_cli("ensemble", "evaluate", tmp_path / "blend", "--data", tmp_path / "data.npz", "--json", "--quiet").stdout)
    assert chunked["evaluated_on"]["sha256"] == whole["evaluated_on"]["sha256"] and chunked["evaluated_on"]["n"] == 2000
    assert chunked["ensemble_scores"]["accuracy"] == whole["ensemble_scores"]["accuracy"]
    assert chunked["ensemble_scores"]["log_loss"] == pytest.approx(whole["ensemble_scores"]["log_loss"], rel=1e-9)
    for a, b in zip(chunked["members"], whole["members"]):
        assert a["name"] == b["name"] and a["scores"] == pytest.approx(b["scores"], rel=1e-9)
    expected = zoo.models.scores(y, blend.predict_proba(X))
    assert chunked["ensemble_scores"] == pytest.approx(expected, rel=1e-6)


def test_ensemble_evaluate_x_y_errors_are_one_line_with_exit_code_2(tmp_path, mnist_blend, capsys):
    from ensemble.cli import main

    blend, X, y = mnist_blend
    ensemble.save(blend, tmp_path / "blend")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "short.npy", y[:10])
    np.savez(tmp_path / "data.npz", X=X, y=y)
    for extra, message in [
        (["--y", tmp_path / "short.npy"], "has 2000 rows but --y"),
        ([], "--x and --y go together"),
        (["--y", tmp_path / "short.npy", "--data", tmp_path / "data.npz"], "not both"),
        (["--y", tmp_path / "data.npz"], "a .npy array"),
    ]:
        assert main(["evaluate", str(tmp_path / "blend"), "--x", str(tmp_path / "x.npy"), *map(str, extra)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ensemble evaluate: error:") and message in err[0], err
