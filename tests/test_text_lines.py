"""One rule for text files of reviews, one review per line, wherever they are read: `ensemble.predict_chunked`,
`TextLines`, `zoo predict` (with and without --out) and `ensemble evaluate --x`. Only \\n ends a line (\\r\\n too);
every other Unicode separator stays inside its review; an empty line is refused, naming the file and the line.
So row i of the predictions is always line i + 1 of the file."""

import json

import numpy as np
import pytest
from clirun import run_command

import ensemble
import zoo
from ensemble.chunked import TextLines, data_hash, iter_chunks, predict_chunked, read_lines
from test_zoo_cli import assert_usage_error as assert_one_line_error  # one helper for the one-line error convention

# Reviews holding the separators str.splitlines() splits on: read with it, these 6 lines were 15 reviews
REVIEWS = [
    "A wonderful film.\x85The cast is superb and the story is moving.",  # U+0085 NEXT LINE
    "Dull and far too long.\u2028I walked out before the end.",  # U+2028 LINE SEPARATOR
    "Great acting,\x0bgreat score,\x0cgreat ending.\u2029Loved every minute.",  # \v, \f, U+2029
    "Awful script\x1cworse direction\x1dno plot\x1ea waste of time.",  # file, group and record separators
    "Terrible.\rBoring plot, awful acting.",  # a lone \r
    "A fine, touching film with a brilliant lead.",
]


def run_cli(module, *args):
    return run_command(module, *args)


def write_lines(path, lines, ending="\n", last=True):
    """``lines`` joined by ``ending`` (and ended by it when ``last``), as UTF-8 bytes: no newline translation."""
    path.write_bytes((ending.join(lines) + (ending if last else "")).encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def bow():
    """The cheapest shipped IMDB model (a bag of bigrams), and its predictions of each review alone, in memory."""
    model = zoo.load("imdb_bow")
    alone = np.concatenate([zoo.predict_proba(model, np.array([review], dtype=object)) for review in REVIEWS])
    return model, alone


def test_other_separators_stay_inside_their_review_one_prediction_row_per_line(tmp_path, bow):
    model, alone = bow
    path = write_lines(tmp_path / "reviews.txt", REVIEWS)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 15  # the old rule: 15 predictions for 6 lines

    lines = TextLines(path)
    assert len(lines) == 6 and lines.shape == (6,)
    assert read_lines(path) == REVIEWS
    assert [review for _, _, chunk in iter_chunks(lines, 4) for review in chunk] == REVIEWS
    assert data_hash(lines) == data_hash(np.array(REVIEWS, dtype=object)) == data_hash(lines, chunk_size=1)

    got = predict_chunked(model, path, chunk_size=4, out=tmp_path / "p.npy")
    assert got.shape == (6, 2)
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)  # row i: line i + 1, predicted as one review
    assert got[:, 1].argmax() in (0, 2, 5) and got[:, 1].argmin() in (1, 3, 4)  # a real model: positive and negative reviews

    rows = json.loads(run_cli("zoo", "predict", "imdb_bow", path, "--json", "--quiet").stdout)
    assert [r["input"] for r in rows] == [f"reviews.txt line {i}" for i in range(1, 7)]
    np.testing.assert_allclose([r["probabilities"] for r in rows], alone, rtol=0, atol=1e-6)
    proc = run_cli("zoo", "predict", "imdb_bow", path, "--out", tmp_path / "cli.npy", "--chunk-size", "4", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 6
    np.testing.assert_allclose(np.load(tmp_path / "cli.npy"), alone, rtol=0, atol=1e-6)


def test_crlf_line_endings_read_as_lf_ones(tmp_path, bow):
    model, alone = bow
    lf = write_lines(tmp_path / "lf.txt", REVIEWS)
    crlf = write_lines(tmp_path / "crlf.txt", REVIEWS, ending="\r\n")
    unended = write_lines(tmp_path / "unended.txt", REVIEWS, ending="\r\n", last=False)  # the last line may lack its ending
    assert read_lines(crlf) == read_lines(unended) == read_lines(lf) == REVIEWS
    assert data_hash(TextLines(crlf)) == data_hash(TextLines(unended)) == data_hash(TextLines(lf))
    np.testing.assert_array_equal(predict_chunked(model, crlf, chunk_size=4), predict_chunked(model, lf, chunk_size=4))
    np.testing.assert_allclose(predict_chunked(model, unended), alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"a fine film\nawful\n\ngreat\n", 3),  # a blank line
        (b"a fine film\n \t \nawful\n", 2),  # whitespace only
        (b"a fine film\r\n\r\nawful\r\n", 2),  # a blank line, \r\n endings
        (b"a fine film\n\xc2\x85\nawful\n", 2),  # U+0085 alone: whitespace, not a separator
        (b"a fine film\nawful\n\n", 3),  # a stray newline at the end
        (b"\n", 1),
    ],
)
def test_an_empty_line_is_refused_naming_the_file_and_its_line(tmp_path, bow, content, line):
    path = tmp_path / "reviews.txt"
    path.write_bytes(content)
    for read in (TextLines, read_lines):
        with pytest.raises(ValueError, match=rf"reviews\.txt: line {line} is empty"):
            read(path)
    with pytest.raises(ValueError, match=rf"reviews\.txt: line {line} is empty"):
        predict_chunked(bow[0], path, out=tmp_path / "p.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.txt"]


def test_undecodable_text_names_its_line_and_a_file_changed_between_passes_is_refused(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"a fine film\nawful\nbroken \xff review\n")
    with pytest.raises(ValueError, match=r"reviews\.txt: line 3 is not UTF-8"):
        TextLines(path)

    write_lines(path, REVIEWS)
    lines = TextLines(path)
    write_lines(path, REVIEWS[:4])  # shorter since counted: the outputs would end in rows of zeros
    with pytest.raises(ValueError, match="4 lines now, not the 6 lines counted"):
        list(iter_chunks(lines, 4))
    write_lines(path, REVIEWS + REVIEWS[:1])
    with pytest.raises(ValueError, match="more than the 6 lines counted"):
        list(iter_chunks(lines, 4))
    write_lines(path, REVIEWS[:2] + [" "] + REVIEWS[3:])
    with pytest.raises(ValueError, match="line 3 is empty"):
        list(iter_chunks(lines, 4))


def test_command_lines_refuse_an_empty_line_in_one_line_with_exit_code_2(tmp_path, bow):
    bad = write_lines(tmp_path / "bad.txt", REVIEWS[:2] + [""] + REVIEWS[2:])
    assert_one_line_error(run_cli("zoo", "predict", "imdb_bow", bad, "--out", tmp_path / "p.npy"), "zoo predict: error:", "bad.txt: line 3 is empty")
    assert_one_line_error(run_cli("zoo", "predict", "imdb_bow", bad), "zoo predict: error:", "bad.txt: line 3 is empty")

    blend = ensemble.BlendClassifier([("bow", bow[0])], method="slsqp").fit(np.array(REVIEWS, dtype=object), np.array([1, 0, 1, 0, 0, 1]))
    ensemble.save(blend, tmp_path / "blend")
    np.save(tmp_path / "y.npy", np.array([1, 0, 1, 0, 0, 1]))
    assert_one_line_error(run_cli("ensemble", "evaluate", tmp_path / "blend", "--x", bad, "--y", tmp_path / "y.npy"),
                          "ensemble evaluate: error:", "bad.txt: line 3 is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "blend", "y.npy"]  # no output file, no temporary one

    good = write_lines(tmp_path / "good.txt", REVIEWS)  # the same file without its empty line: one row per line
    proc = run_cli("ensemble", "evaluate", tmp_path / "blend", "--x", good, "--y", tmp_path / "y.npy", "--json", "--quiet",
                   "--cache", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["evaluated_on"]["n"] == 6
