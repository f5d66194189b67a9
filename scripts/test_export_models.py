"""Unit tests of export_models.py without TensorFlow: python scripts/test_export_models.py

The path, completeness and replace logic runs for real on temporary directories; TensorFlow is replaced by a small
fake module (`fake_tensorflow`) whose `saved_model.save` writes what TF 2.x writes, so `main` and `export` run
their real code up to the save, including the cases where the pod dies half-way.
"""

import contextlib
import io
import os
import sys
import tempfile
import types
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_models  # noqa: E402

# What tf.saved_model.save writes in TF 2.x that TF Serving needs: the graph, and the variables as a checkpoint (an
# index and data shards named `<prefix>.data-NNNNN-of-NNNNN`), beside an assets folder. Checked by running this
# script's export with tensorflow-cpu 2.15.1 (ResNet50, weights=None): saved_model.pb, variables/variables.index,
# variables/variables.data-00000-of-00001, assets/ (empty) and fingerprint.pb (2.12+; not needed by TF Serving).
SAVED_MODEL_FILES = ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"]


def write_files(path, relative_paths):
    for relative in relative_paths:
        file_path = os.path.join(path, relative)
        os.makedirs(os.path.dirname(file_path), exist_ok=True)
        with open(file_path, "wb") as handle:
            handle.write(b"\x08\x01")


def make_saved_model(path):
    write_files(path, SAVED_MODEL_FILES)
    os.makedirs(os.path.join(path, "assets"))


def listing(path):
    """Every file under `path`, relative to it, sorted."""
    found = []
    for root, _, files in os.walk(path):
        found.extend(os.path.relpath(os.path.join(root, name), path) for name in files)
    return sorted(found)


class PodKilled(BaseException):
    """Stands for the pod dying: nothing after it runs (a BaseException, so no `except Exception` catches it)."""


class FakeSave:
    """A stand-in for tf.saved_model.save: records each call and writes a TF 2.x SavedModel layout, or only the
    first `die_after_files` files of it before the pod 'dies'."""

    def __init__(self, die_after_files=None):
        self.calls = []
        self.die_after_files = die_after_files

    def __call__(self, model, path, signatures=None):
        self.calls.append((model, path, sorted(signatures or {})))
        files = SAVED_MODEL_FILES
        if self.die_after_files is not None:
            write_files(path, files[: self.die_after_files])
            raise PodKilled()
        write_files(path, files)
        os.makedirs(os.path.join(path, "assets"))


def fake_tensorflow(save):
    """A module with the parts of TensorFlow's API `export_models.save_keras_model` calls, saving with `save`."""
    tf = types.ModuleType("tensorflow")
    tf.float32, tf.string = "float32", "string"
    tf.TensorSpec = lambda shape, dtype, name=None: (tuple(shape), dtype, name)
    tf.function = lambda input_signature=None: (lambda function: function)
    applications = {name: (lambda name: lambda weights: ("model", name, weights))(name) for name in ("ResNet50", "ResNet101")}
    tf.keras = types.SimpleNamespace(applications=types.SimpleNamespace(**applications))
    tf.saved_model = types.SimpleNamespace(save=save)
    return tf


class ExportPlanTest(unittest.TestCase):
    def test_model_dir_is_name_then_version(self):
        self.assertEqual(export_models.model_dir("/models", "resnet50"), "/models/resnet50/1")
        self.assertEqual(export_models.model_dir("/m", "resnet101", 3), "/m/resnet101/3")

    def test_everything_is_planned_on_an_empty_directory(self):
        with tempfile.TemporaryDirectory() as out:
            planned = export_models.plan(out, ["resnet50", "resnet101"])
            self.assertEqual(
                planned,
                [("resnet50", os.path.join(out, "resnet50", "1")), ("resnet101", os.path.join(out, "resnet101", "1"))],
            )

    def test_a_complete_model_is_skipped(self):
        with tempfile.TemporaryDirectory() as out:
            make_saved_model(os.path.join(out, "resnet50", "1"))
            self.assertEqual(export_models.plan(out, ["resnet50", "resnet101"]), [("resnet101", os.path.join(out, "resnet101", "1"))])

    def test_a_half_model_is_exported_again(self):
        with tempfile.TemporaryDirectory() as out:
            write_files(os.path.join(out, "resnet50", "1"), ["saved_model.pb"])
            self.assertFalse(export_models.is_complete(os.path.join(out, "resnet50", "1")))
            self.assertEqual([name for name, _ in export_models.plan(out, ["resnet50"])], ["resnet50"])

    def test_an_unknown_model_is_an_error(self):
        with self.assertRaises(ValueError) as raised:
            export_models.plan("/models", ["resnet152"])
        self.assertIn("resnet152", str(raised.exception))

    def test_main_skips_without_importing_tensorflow(self):
        with tempfile.TemporaryDirectory() as out:
            for name in export_models.MODELS:
                make_saved_model(export_models.model_dir(out, name))
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                self.assertEqual(export_models.main(["--out", out]), 0)
            self.assertIn("resnet101: already exported", printed.getvalue())
            self.assertNotIn("tensorflow", sys.modules)


class CompletenessTest(unittest.TestCase):
    def check(self, files, complete):
        with tempfile.TemporaryDirectory() as path:
            write_files(path, files)
            self.assertEqual(export_models.is_complete(path), complete, files)

    def test_a_whole_saved_model_is_complete(self):
        self.check(SAVED_MODEL_FILES, True)

    def test_a_saved_model_with_several_shards_is_complete_only_with_all_of_them(self):
        two_shards = ["saved_model.pb", "variables/variables.index"]
        self.check(two_shards + ["variables/variables.data-00000-of-00002", "variables/variables.data-00001-of-00002"], True)
        self.check(two_shards + ["variables/variables.data-00001-of-00002"], False)

    def test_each_missing_part_makes_it_incomplete(self):
        for missing in SAVED_MODEL_FILES:
            self.check([name for name in SAVED_MODEL_FILES if name != missing], False)

    def test_an_empty_variables_directory_is_incomplete(self):
        # What the first version of this script took for complete: saved_model.pb beside an empty variables/.
        with tempfile.TemporaryDirectory() as path:
            write_files(path, ["saved_model.pb"])
            os.makedirs(os.path.join(path, "variables"))
            self.assertFalse(export_models.is_complete(path))

    def test_an_empty_graph_file_is_incomplete(self):
        with tempfile.TemporaryDirectory() as path:
            write_files(path, SAVED_MODEL_FILES)
            open(os.path.join(path, "saved_model.pb"), "wb").close()
            self.assertFalse(export_models.is_complete(path))

    def test_a_missing_directory_is_incomplete(self):
        self.assertFalse(export_models.is_complete("/nonexistent/canary-lab/resnet50/1"))


class ExportTest(unittest.TestCase):
    """`main` with a fake TensorFlow: what the Job does on the node's hostPath, run after run."""

    def run_main(self, out, save, *extra):
        with mock.patch.dict(sys.modules, {"tensorflow": fake_tensorflow(save)}), contextlib.redirect_stdout(io.StringIO()):
            return export_models.main(["--out", out, "--models", "resnet50"] + list(extra))

    def assert_exported_cleanly(self, out):
        model = os.path.join(out, "resnet50")
        self.assertTrue(export_models.is_complete(os.path.join(model, "1")), listing(model))
        # Nothing else is left beside the version directory (no staging or set-aside copy for TF Serving to see).
        self.assertEqual(sorted(os.listdir(model)), ["1"])

    def test_a_fresh_export_saves_both_signatures_through_a_staging_directory(self):
        with tempfile.TemporaryDirectory() as out:
            save = FakeSave()
            self.assertEqual(self.run_main(out, save), 0)
            self.assertEqual(len(save.calls), 1)
            model, saved_to, signatures = save.calls[0]
            self.assertEqual(model, ("model", "ResNet50", "imagenet"))
            self.assertEqual(signatures, ["serving_bytes", "serving_default"])
            self.assertEqual(os.path.dirname(saved_to), os.path.join(out, "resnet50"))
            self.assertNotEqual(saved_to, os.path.join(out, "resnet50", "1"))
            self.assert_exported_cleanly(out)

    def test_a_graph_without_variables_is_replaced_not_renamed_onto(self):
        # Measured with TensorFlow 2.6.2: <model>/1/ holding saved_model.pb but no variables/ made the rename of
        # the new export fail with "OSError: [Errno 39] Directory not empty", on every retry of the Job.
        with tempfile.TemporaryDirectory() as out:
            write_files(os.path.join(out, "resnet50", "1"), ["saved_model.pb"])
            self.assertEqual(self.run_main(out, FakeSave()), 0)
            self.assert_exported_cleanly(out)

    def test_a_graph_beside_an_empty_variables_directory_is_exported_again(self):
        with tempfile.TemporaryDirectory() as out:
            version = os.path.join(out, "resnet50", "1")
            write_files(version, ["saved_model.pb"])
            os.makedirs(os.path.join(version, "variables"))
            save = FakeSave()
            self.assertEqual(self.run_main(out, save), 0)
            self.assertEqual(len(save.calls), 1)
            self.assert_exported_cleanly(out)

    def test_an_export_that_saved_an_incomplete_model_fails_and_leaves_the_old_directory(self):
        with tempfile.TemporaryDirectory() as out:
            version = os.path.join(out, "resnet50", "1")
            write_files(version, ["saved_model.pb"])

            def save_without_variables(model, path, signatures=None):
                write_files(path, ["saved_model.pb"])

            with self.assertRaises(RuntimeError) as raised:
                self.run_main(out, save_without_variables)
            self.assertIn("variables", str(raised.exception))
            self.assertEqual(listing(version), ["saved_model.pb"])

    def test_a_pod_killed_while_saving_is_recovered_by_the_next_run(self):
        for files_written in range(len(SAVED_MODEL_FILES)):
            with self.subTest(files_written=files_written), tempfile.TemporaryDirectory() as out:
                with self.assertRaises(PodKilled):
                    self.run_main(out, FakeSave(die_after_files=files_written))
                self.assertFalse(export_models.is_complete(os.path.join(out, "resnet50", "1")))
                self.assertEqual(self.run_main(out, FakeSave()), 0)
                self.assert_exported_cleanly(out)

    def test_a_pod_killed_at_any_step_of_the_replace_is_recovered_by_the_next_run(self):
        # The replace renames the old directory aside, the new one in, then deletes the old one: kill the pod
        # before each of those filesystem steps in turn (and before the staging clean-up), then run again.
        steps = [("rename", 0), ("rename", 1), ("remove", 0), ("remove", 1), ("remove", 2)]
        for step, nth in steps:
            with self.subTest(step=step, nth=nth), tempfile.TemporaryDirectory() as out:
                write_files(os.path.join(out, "resnet50", "1"), ["saved_model.pb"])
                calls = {"rename": 0, "remove": 0}
                real = {"rename": os.rename, "remove": export_models.remove}

                def dying(name):
                    def call(*args):
                        if name == step and calls[name] == nth:
                            raise PodKilled()
                        calls[name] += 1
                        return real[name](*args)

                    return call

                with mock.patch.object(export_models.os, "rename", dying("rename")), mock.patch.object(
                    export_models, "remove", dying("remove")
                ):
                    try:
                        self.run_main(out, FakeSave())
                    except PodKilled:
                        pass
                self.assertEqual(self.run_main(out, FakeSave()), 0)
                self.assert_exported_cleanly(out)
                # A third run finds the model complete and exports nothing.
                save = FakeSave()
                self.assertEqual(self.run_main(out, save), 0)
                self.assertEqual(save.calls, [])

    def test_leftovers_beside_a_complete_model_are_removed_without_exporting(self):
        with tempfile.TemporaryDirectory() as out:
            version = os.path.join(out, "resnet50", "1")
            make_saved_model(version)
            write_files(export_models.staging_dir(version), ["saved_model.pb"])
            write_files(export_models.aside_dir(version), ["saved_model.pb"])
            save = FakeSave()
            self.assertEqual(self.run_main(out, save), 0)
            self.assertEqual(save.calls, [])
            self.assert_exported_cleanly(out)


if __name__ == "__main__":
    unittest.main()
