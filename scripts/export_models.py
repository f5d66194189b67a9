"""Export Keras ResNet50 and ResNet101 as TensorFlow Serving SavedModels: <out>/<model>/<version>/.

Runs inside the cluster as the `export-models` Job (image tensorflow/tensorflow:2.6.2), mounted from the
`export-models-script` ConfigMap, writing into a hostPath on the node. A model already exported (saved_model.pb and
variables/ present) is skipped, and a new export is written to a temporary directory and renamed into place, so an
interrupted Job never leaves a half model that a later run would skip.

Two signatures per model:
- `serving_default`: float32 images [batch, height, width, 3] with values 0-255, resized to 224x224 in the graph and
  fed to the network as they are (the original lab's raw payload: no preprocessing).
- `serving_bytes`: a string tensor of encoded JPEG/PNG bytes (TF Serving's REST API decodes `{"b64": ...}`), decoded,
  resized to 224x224 and preprocessed the Keras 'caffe' way (RGB to BGR, ImageNet means subtracted) in the graph.

TensorFlow is imported only inside `export`, so the path and skip logic can be imported and tested without it.
"""

import argparse
import os
import shutil
import sys

# Model directory name -> Keras application name.
MODELS = {"resnet50": "ResNet50", "resnet101": "ResNet101"}
VERSION = 1
IMAGE_SIZE = 224


def model_dir(out, name, version=VERSION):
    """The SavedModel directory TF Serving reads: <out>/<name>/<version>."""
    return os.path.join(out, name, str(version))


def already_exported(path):
    """True when `path` holds a complete SavedModel (saved_model.pb and variables/)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isdir(os.path.join(path, "variables"))


def plan(out, names):
    """The (name, directory) pairs still to export, in order; models already exported are left out."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ValueError("unknown model(s): %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(MODELS))))
    return [(name, model_dir(out, name)) for name in names if not already_exported(model_dir(out, name))]


def temporary_dir(path):
    """Where an export is written before it is renamed to `path`."""
    return path + ".partial"


def export(name, path):
    """Builds the Keras model with ImageNet weights and saves it with both signatures at `path`."""
    import tensorflow as tf  # Imported here so the logic above runs without TensorFlow.

    application = getattr(tf.keras.applications, MODELS[name])
    model = application(weights="imagenet")

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

    partial = temporary_dir(path)
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.saved_model.save(
        model, partial, signatures={"serving_default": serving_default, "serving_bytes": serving_bytes}
    )
    os.rename(partial, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/models", help="the directory holding <model>/<version>/")
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="which models (default: all)")
    args = parser.parse_args(argv)
    todo = plan(args.out, args.models)
    for name in args.models:
        if all(name != pending for pending, _ in todo):
            print("%s: already exported at %s, skipped" % (name, model_dir(args.out, name)), flush=True)
    for name, path in todo:
        print("%s: exporting to %s" % (name, path), flush=True)
        export(name, path)
        print("%s: done" % name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
