"""``ensemble`` works where ``zoo`` cannot be imported; bundles that need ``zoo`` say so."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run first in the child: any import of zoo (or zoo.anything) fails, as if the package were not installed.
_NO_ZOO = textwrap.dedent("""
    import sys

    class _NoZoo:
        def find_spec(self, name, path=None, target=None):
            if name == "zoo" or name.startswith("zoo."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
            return None

    sys.meta_path.insert(0, _NoZoo())
""")


def _run_without_zoo(code: str, tmp_path: Path) -> dict:
    script = tmp_path / "child.py"
    script.write_text(_NO_ZOO + textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_blend_stack_select_save_and_load_work_without_zoo(tmp_path):
    report = _run_without_zoo(f"""
        import json, sys, warnings
        import numpy as np
        import ensemble
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.frozen import FrozenEstimator
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = load_digits(return_X_y=True)
        X_fit, y_fit, X_val, y_val, X_test = X[:700], y[:700], X[700:1100], y[700:1100], X[1100:1300]
        members = [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))),
                   ("rf", RandomForestClassifier(20, random_state=0))]
        out = {{}}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name, est in [("blend", ensemble.BlendClassifier(members, cv=3)),
                              ("stack", ensemble.StackClassifier(members, cv=3)),
                              ("select", None)]:
                if est is None:
                    frozen = [(n, FrozenEstimator(m.fit(X_fit, y_fit))) for n, m in members]
                    est = ensemble.select(frozen, X_val, y_val, ensemble_size=10)
                else:
                    est.fit(X_val, y_val)
                ensemble.save(est, {str(tmp_path)!r} + "/" + name)
                loaded = ensemble.load({str(tmp_path)!r} + "/" + name)
                out[name] = bool(np.array_equal(loaded.predict_proba(X_test), est.predict_proba(X_test)))
        try:
            ensemble.load({str(ROOT / "ensembles" / "imdb")!r})
        except ensemble.persistence.BundleError as exc:
            out["zoo_bundle_error"] = str(exc)
        out["zoo_imported"] = [m for m in sys.modules if m == "zoo" or m.startswith("zoo.")]
        out["heavy_imported"] = [m for m in ("tensorflow", "keras") if m in sys.modules]
        out["warnings"] = [str(w.message) for w in caught if "plug-in" in str(w.message)]
        print(json.dumps(out))
    """, tmp_path)
    assert report["blend"] and report["stack"] and report["select"]
    assert report["zoo_imported"] == [] and report["heavy_imported"] == []
    error = report["zoo_bundle_error"]
    assert "unknown part kind 'zoo'" in error and "plug-in that may provide it could not be imported: 'zoo'" in error, error
    assert "No module named 'zoo" in error
    assert len(report["warnings"]) == 1 and "'zoo'" in report["warnings"][0]  # said once, at the first save


def test_a_zoo_classifier_bundle_names_the_missing_plug_in(tmp_path):
    from sklearn.datasets import load_digits

    import ensemble
    from zoo import ZooClassifier

    X, y = load_digits(return_X_y=True)
    X = (X * 16).clip(0, 255).astype("uint8").reshape(-1, 8, 8)
    ensemble.save(ZooClassifier("mlp", epochs=1, builder__units=(8,)).fit(X[:200], y[:200]), tmp_path / "clf")
    report = _run_without_zoo(f"""
        import json, warnings
        import ensemble
        warnings.simplefilter("ignore")
        try:
            ensemble.load({str(tmp_path / "clf")!r})
        except ensemble.persistence.BundleError as exc:
            print(json.dumps({{"error": str(exc)}}))
    """, tmp_path)
    assert "'ZooClassifier' is not a class ensemble.load restores" in report["error"]
    assert "could not be imported: 'zoo'" in report["error"]
