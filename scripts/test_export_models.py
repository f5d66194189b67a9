"""Unit tests of export_models.py's path and skip logic (no TensorFlow needed): python scripts/test_export_models.py"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_models  # noqa: E402


def make_saved_model(path):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
        handle.write(b"\x08\x01")


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
            os.makedirs(os.path.join(out, "resnet50", "1"))
            with open(os.path.join(out, "resnet50", "1", "saved_model.pb"), "wb"):
                pass
            self.assertFalse(export_models.already_exported(os.path.join(out, "resnet50", "1")))
            self.assertEqual([name for name, _ in export_models.plan(out, ["resnet50"])], ["resnet50"])

    def test_an_unknown_model_is_an_error(self):
        with self.assertRaises(ValueError) as raised:
            export_models.plan("/models", ["resnet152"])
        self.assertIn("resnet152", str(raised.exception))

    def test_main_skips_without_importing_tensorflow(self):
        with tempfile.TemporaryDirectory() as out:
            for name in export_models.MODELS:
                make_saved_model(export_models.model_dir(out, name))
            self.assertEqual(export_models.main(["--out", out]), 0)
            self.assertNotIn("tensorflow", sys.modules)


if __name__ == "__main__":
    unittest.main()
