"""registry.yaml: contents of the shipped registry, validation errors, queries."""

import copy

import pytest
import yaml

import zoo
from zoo import architectures
from zoo.recipes import RECIPES
from zoo.registry import BUILDER_KINDS, Registry, RegistryError

QUALITY_BAR = {  # minimum test accuracy per entry, from the zoo issue
    **{f"mnist_{f}": 0.99 for f in ("bn_cnn", "sepconv", "residual", "inception")},
    "mnist_mlp": 0.98,
    **{f"fashion_mnist_{f}": 0.91 for f in ("bn_cnn", "residual", "inception")},
    "fashion_mnist_sepconv": 0.90,
    "fashion_mnist_mlp": 0.88,
    "imdb_conv1d": 0.87,
    "imdb_bigru": 0.86,
    "imdb_bow": 0.86,
    "mnist_bn_cnn_v2": 0.996,  # Zoo v2 targets: MNIST >= 99.6 %
    "mnist_residual_v2": 0.996,
    "mnist_inception_v2": 0.995,
    "mnist_sepconv_v2": 0.995,
}


@pytest.fixture(scope="module")
def registry():
    return Registry()


def test_shipped_registry_has_every_recipe_trained_on_its_full_data(registry):
    assert sorted(registry.names()) == sorted(RECIPES)
    for dataset in ("mnist", "fashion_mnist"):  # the first generation stays beside the v2 entries
        assert {f"{dataset}_{f}" for f in ("mlp", "bn_cnn", "sepconv", "residual", "inception")} <= set(registry.names(dataset=dataset))
    for name in registry.names():
        entry = registry.entry(name)
        assert name.startswith(entry["dataset"] + "_")
        assert entry["training"]["subset"] is None, f"{name} was trained on a subset"
        assert entry["params"] == RECIPES[name]["params"]
        recorded = dict(entry["recipe"])
        expected = dict(RECIPES[name]["recipe"])
        if "--epochs" in entry["training"]["command"]:
            recorded.pop("epochs"), expected.pop("epochs")
        assert recorded == expected, f"{name}: registry recipe differs from zoo.recipes"
        assert entry["versions"]["keras"].startswith("3.")
        assert entry["classes"] == zoo.datasets.class_names(entry["dataset"])


@pytest.mark.parametrize("name", sorted(QUALITY_BAR))
def test_registry_metrics_meet_the_quality_bar(registry, name):
    assert registry.entry(name)["metrics"]["test"]["accuracy"] >= QUALITY_BAR[name]


def test_builder_kinds_match_the_builders():
    assert set(BUILDER_KINDS) == set(architectures.BUILDERS)
    assert {b for b, kind in BUILDER_KINDS.items() if kind == "text"} == set(architectures.TEXT_BUILDERS)


def test_list_models_and_info(registry):
    assert zoo.list_models("fashion_mnist_*") == registry.names(dataset="fashion_mnist")
    assert zoo.list_models("*", dataset="imdb") == ["imdb_conv1d", "imdb_bigru", "imdb_bow", "imdb_nb"]
    assert zoo.list_models("nothing*") == []
    info = zoo.info("mnist_mlp")
    info["metrics"] = None  # a copy: the registry is unchanged
    assert zoo.info("mnist_mlp")["metrics"] is not None
    with pytest.raises(RegistryError, match="unknown model 'mnist_mlpp'"):
        zoo.info("mnist_mlpp")


def test_an_unknown_name_suggests_the_nearest_by_edit_distance():
    registry = Registry()
    for typo, expected in (("mnist_mpl", "did you mean mnist_mlp?"), ("mnist_mlpp", "did you mean mnist_mlp?"),
                           ("imdb_gru", "did you mean imdb_bigru?"),
                           ("bn_cnn", "known models include: fashion_mnist_bn_cnn, mnist_bn_cnn"),  # none near: those containing it
                           ("*[", "known models include: fashion_mnist_mlp")):  # nothing near nor containing it: a few
        with pytest.raises(RegistryError) as info:
            registry.entry(typo)
        assert str(info.value).startswith(f"unknown model {typo!r}; {expected}"), str(info.value)


def _write(tmp_path, doc):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("weights"), r"entry 'mnist_mlp', field 'weights': missing"),
        (lambda e: e["weights"].update(sha256="abc"), r"entry 'mnist_mlp', field 'weights.sha256'"),
        (lambda e: e["weights"].update(file="../evil.weights.h5"), r"entry 'mnist_mlp', field 'weights.file'"),
        (lambda e: e.update(builder="resnet152"), r"entry 'mnist_mlp', field 'builder': unknown builder"),
        (lambda e: e.update(parameters="many"), r"entry 'mnist_mlp', field 'parameters': expected int"),
        (lambda e: e["metrics"]["test"].pop("log_loss"), r"entry 'mnist_mlp', field 'metrics'"),
        (lambda e: e["metrics"]["test"].update(accuracy=1.5), r"entry 'mnist_mlp', field 'metrics'.*outside"),
        (lambda e: e["recipe"].pop("seed"), r"entry 'mnist_mlp', field 'recipe.seed'"),
        (lambda e: e.update(dataset="cifar10"), r"entry 'mnist_mlp', field 'dataset'"),
    ],
)
def test_malformed_entry_names_entry_and_field(tmp_path, registry, mutate, message):
    entry = copy.deepcopy(registry.entry("mnist_mlp"))
    mutate(entry)
    with pytest.raises(RegistryError, match=message):
        Registry(_write(tmp_path, {"format_version": 1, "models": [entry]}))


def test_text_entry_needs_a_vocabulary(tmp_path, registry):
    entry = registry.entry("imdb_bow")
    del entry["vocabulary"]
    with pytest.raises(RegistryError, match="entry 'imdb_bow', field 'vocabulary'"):
        Registry(_write(tmp_path, {"format_version": 1, "models": [entry]}))


def test_malformed_files_are_clear_errors(tmp_path, registry):
    with pytest.raises(RegistryError, match="not valid YAML"):
        Registry(_write_text(tmp_path, "models: [\n"))
    with pytest.raises(RegistryError, match="'models' list"):
        Registry(_write(tmp_path, {"format_version": 1}))
    with pytest.raises(RegistryError, match="format_version"):
        Registry(_write(tmp_path, {"format_version": 7, "models": []}))
    entry = registry.entry("mnist_mlp")
    with pytest.raises(RegistryError, match="entry 'mnist_mlp': duplicate name"):
        Registry(_write(tmp_path, {"format_version": 1, "models": [entry, entry]}))
    with pytest.raises(RegistryError, match="cannot read registry"):
        Registry(tmp_path / "absent.yaml")


def _write_text(tmp_path, text):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


def test_put_keeps_entries_written_meanwhile_by_another_process(tmp_path, registry):
    path = _write(tmp_path, {"format_version": 1, "models": []})
    first, second = Registry(path), Registry(path)  # e.g. two training runs started together
    first.put(registry.entry("mnist_mlp"))
    second.put(registry.entry("imdb_bow"))
    assert Registry(path).names() == ["mnist_mlp", "imdb_bow"]
