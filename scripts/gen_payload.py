#!/usr/bin/env python3
"""The original lab's payload generator (gen_payload.py), kept as the reference for canary-lab's payloads.

`--mode raw` is what the original lab did: open the image, convert it to RGB, re-save it as JPEG with Pillow's
default settings (quality 75), read it back and write `{"instances": [<H x W x 3 nested lists of 0-255 ints>]}`.
No resize, no preprocessing, no signature_name.

`--mode keras` is what Keras' `load_img(path, target_size=(224, 224))` + `preprocess_input` (caffe mode) produce:
RGB, resized to 224x224 with PIL NEAREST, RGB->BGR, minus the ImageNet means, as float32.

canary-lab's integration tests compare its Rust payloads element-wise with this script's output, and the
benchmark times this script as the baseline.
"""

import argparse
import io
import json
import sys

import numpy as np
from PIL import Image

IMAGENET_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def raw_instances(path):
    image = Image.open(path).convert("RGB")
    resaved = io.BytesIO()
    image.save(resaved, format="JPEG")
    resaved.seek(0)
    pixels = np.array(Image.open(resaved).convert("RGB"))
    return [pixels.tolist()]


def keras_instances(path):
    image = Image.open(path).convert("RGB")
    if image.size != (224, 224):
        image = image.resize((224, 224), Image.NEAREST)
    pixels = np.asarray(image, dtype=np.float32)
    bgr = pixels[..., ::-1] - IMAGENET_MEANS_BGR
    return [bgr.tolist()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="the image file (JPEG or PNG)")
    parser.add_argument("--mode", choices=["raw", "keras"], default="raw")
    parser.add_argument("--out", help="write the JSON body here (default: stdout)")
    args = parser.parse_args()
    instances = raw_instances(args.image) if args.mode == "raw" else keras_instances(args.image)
    body = json.dumps({"instances": instances})
    if args.out:
        with open(args.out, "w") as out:
            out.write(body)
    else:
        sys.stdout.write(body)


if __name__ == "__main__":
    main()
