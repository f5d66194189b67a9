"""Export Keras ResNet50 and ResNet101 as TensorFlow Serving SavedModels: <out>/<model>/<version>/.

Runs inside the cluster as the `export-models` Job (image tensorflow/tensorflow:2.6.2), mounted from the
`export-models-script` ConfigMap, writing into a hostPath on the node. A model already exported completely
(`is_complete`: the graph, the variables' index and every data shard) is skipped. Anything else is exported again
into a staging directory beside it (`<version>.partial`), checked, and swapped into place: an incomplete version
directory is renamed aside (`<version>.old`), the new one renamed in, the old one deleted. A pod killed at any
point leaves either the old state or the new one plus leftovers that the next run removes, so a retried Job always
recovers (renaming onto a non-empty directory, what the first version did, fails with Errno 39 on every retry).

Two signatures per model:
- `serving_default`: float32 images [batch, height, width, 3] with values 0-255, resized to 224x224 in the graph and
  fed to the network as they are (the original lab's raw payload: no preprocessing).
- `serving_bytes`: a string tensor of encoded JPEG/PNG bytes (TF Serving's REST API decodes `{"b64": ...}`), decoded,
  resized to 224x224 and preprocessed the Keras 'caffe' way (RGB to BGR, ImageNet means subtracted) in the graph.

TensorFlow is imported only inside `save_keras_model`, so the rest can be imported and tested without it. Written
for the image's Python 3 (no syntax newer than 3.6).
"""

import argparse
import os
import re
import shutil
import sys

# Model directory name -> Keras application name.
MODELS = {"resnet50": "ResNet50", "resnet101": "ResNet101"}
VERSION = 1
IMAGE_SIZE = 224

# A checkpoint's data shard: `<prefix>.data-<shard>-of-<shards>`, both 5 digits (tensorflow/core/util/tensor_bundle/
# naming.cc, DataFilename); its index is `<prefix>.index` (MetaFilename). A SavedModel's prefix is
# `variables/variables` (tensorflow/cc/saved_model/constants.h: kSavedModelVariablesDirectory/Filename).
DATA_SHARD = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")


def model_dir(out, name, version=VERSION):
    """The SavedModel directory TF Serving reads: <out>/<name>/<version>."""
    return os.path.join(out, name, str(version))


def staging_dir(path):
    """Where an export of `path` is written and checked before it is swapped into place."""
    return path + ".partial"


def aside_dir(path):
    """Where an incomplete `path` is moved while the new export takes its place, before it is deleted."""
    return path + ".old"


def is_complete(path):
    """True when `path` holds a whole TF 2.x SavedModel: a non-empty saved_model.pb, a non-empty
    variables/variables.index and every data shard the shards' names announce (at least one)."""

    def non_empty_file(relative):
        full = os.path.join(path, relative)
        return os.path.isfile(full) and os.path.getsize(full) > 0

    if not (non_empty_file("saved_model.pb") and non_empty_file(os.path.join("variables", "variables.index"))):
        return False
    shards = set()
    for entry in os.listdir(os.path.join(path, "variables")):
        match = DATA_SHARD.match(entry)
        if match and os.path.isfile(os.path.join(path, "variables", entry)):
            shards.add((int(match.group(1)), int(match.group(2))))
    totals = set(total for _, total in shards)
    if len(totals) != 1:
        return False
    total = totals.pop()
    return shards == set((shard, total) for shard in range(total))


def plan(out, names):
    """The (name, directory) pairs still to export, in order; models already exported completely are left out."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ValueError("unknown model(s): %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(MODELS))))
    return [(name, model_dir(out, name)) for name in names if not is_complete(model_dir(out, name))]


def remove(path):
    """Deletes `path` (a directory tree, a file or a link) if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def remove_leftovers(path):
    """Deletes what an interrupted run may have left beside `path`: a staging export and a set-aside old copy."""
    remove(staging_dir(path))
    remove(aside_dir(path))


def export(name, path, save=None):
    """Exports model `name` into the staging directory beside `path`, checks it and swaps it into place.

    `save(name, directory)` writes the SavedModel (default: `save_keras_model`). `path` must not be complete
    (`plan` leaves complete ones out); whatever is there is replaced, never renamed onto."""
    save = save or save_keras_model
    staging = staging_dir(path)
    aside = aside_dir(path)
    # Leftovers of an interrupted run are never needed: an export is redone whole, and `aside` only ever holds an
    # incomplete model.
    remove(staging)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save(name, staging)
    if not is_complete(staging):
        raise RuntimeError(
            "the export of %s wrote an incomplete SavedModel to %s (found: %s); expected saved_model.pb, "
            "variables/variables.index and variables/variables.data-*"
            % (name, staging, ", ".join(sorted(files_under(staging))) or "nothing")
        )
    remove(aside)
    if os.path.lexists(path):
        os.rename(path, aside)
    os.rename(staging, path)
    remove(aside)


def files_under(path):
    """Every file below `path`, relative to it (for messages)."""
    found = []
    for root, _, files in os.walk(path):
        found.extend(os.path.relpath(os.path.join(root, name), path) for name in files)
    return found


def save_keras_model(name, path, weights="imagenet"):
    """Builds the Keras model with ImageNet weights (`weights=None`: random ones, offline) and saves it with both
    signatures at `path`."""
    import tensorflow as tf  # Imported here so the logic above runs without TensorFlow.

    application = getattr(tf.keras.applications, MODELS[name])
    model = application(weights=weights)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serving_default(images):
        resized = tf.image.resize(images, [IMAGE_SIZE, IMAGE_SIZE])
        return {"predictions": model(resized, training=False)}

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [IMAGE_SIZE, IMAGE_SIZE])
        return tf.keras.applications.resnet.preprocess_input(image)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_bytes(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32)
        return {"predictions": model(images, training=False)}

    tf.saved_model.save(model, path, signatures={"serving_default": serving_default, "serving_bytes": serving_bytes})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/models", help="the directory holding <model>/<version>/")
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="which models (default: all)")
    args = parser.parse_args(argv)
    todo = plan(args.out, args.models)
    for name in args.models:
        if all(name != pending for pending, _ in todo):
            print("%s: already exported at %s, skipped" % (name, model_dir(args.out, name)), flush=True)
            remove_leftovers(model_dir(args.out, name))
    for name, path in todo:
        print("%s: exporting to %s" % (name, path), flush=True)
        export(name, path)
        print("%s: done" % name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
