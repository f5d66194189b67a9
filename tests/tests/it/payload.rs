//! The Rust payloads against the Python reference (`scripts/gen_payload.py`, Pillow + numpy), element by element.

use std::path::{Path, PathBuf};

use canary_lab_tests::process::Process;
use lab::traffic::payload::{PayloadKind, build_payload};
use serde_json::Value;

/// The lab's images: two JPEGs and a PNG.
fn lab_images() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![
        root.join("assets/images/grace_hopper.jpg"),
        root.join("tests/data/chelsea.png"),
        root.join("tests/data/rocket.jpg"),
    ]
}

/// Runs the reference script and parses the body it writes.
fn python_body(image: &Path, mode: &str) -> Value {
    let tools = canary_lab_tests::test_tools();
    let out = tempfile::NamedTempFile::new().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gen_payload.py");
    // The reference implementation is a Python script.
    let status = Process::new(tools.join("venv/bin/python"))
        .arg(&script)
        .arg(image)
        .args(["--mode", mode, "--out"])
        .arg(out.path())
        .status()
        .expect("running scripts/gen_payload.py");
    assert!(status.success(), "gen_payload.py failed on {}", image.display());
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
}

/// Flattens `instances[0]` (H×W×3) to its shape and values.
fn flatten(body: &Value) -> ((usize, usize, usize), Vec<f64>) {
    let rows = body["instances"][0].as_array().expect("instances[0] is a list of rows");
    let width = rows[0].as_array().unwrap().len();
    let channels = rows[0][0].as_array().unwrap().len();
    let mut values = Vec::with_capacity(rows.len() * width * channels);
    for row in rows {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), width, "ragged rows");
        for pixel in row {
            let pixel = pixel.as_array().unwrap();
            assert_eq!(pixel.len(), channels, "ragged pixels");
            values.extend(pixel.iter().map(|value| value.as_f64().expect("a number")));
        }
    }
    ((rows.len(), width, channels), values)
}

/// Builds both bodies and asserts equal shapes and equal elements (as float32 for keras, as ints for raw).
fn assert_equal_to_python(kind: PayloadKind, images: &[PathBuf]) {
    for image in images {
        let file_bytes = std::fs::read(image).unwrap();
        let ours: Value = serde_json::from_slice(&build_payload(kind, &file_bytes).unwrap().body).unwrap();
        let theirs = python_body(image, kind.as_str());
        assert_eq!(
            ours.as_object().unwrap().len(),
            1,
            "only `instances`: {}",
            image.display()
        );
        let (our_shape, our_values) = flatten(&ours);
        let (their_shape, their_values) = flatten(&theirs);
        assert_eq!(our_shape, their_shape, "shape of {}", image.display());
        let mismatches: Vec<(usize, f64, f64)> = our_values
            .iter()
            .zip(&their_values)
            .enumerate()
            .filter(|(_, (our, their))| (**our as f32) != (**their as f32))
            .map(|(index, (our, their))| (index, *our, *their))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{} of {} values differ from Pillow's for {} ({}), first: {:?}",
            mismatches.len(),
            our_values.len(),
            image.display(),
            kind.as_str(),
            &mismatches[..mismatches.len().min(5)]
        );
    }
}

#[test]
fn raw_payload_equals_pillows_element_wise() {
    assert_equal_to_python(PayloadKind::Raw, &lab_images());
}

#[test]
fn keras_payload_equals_pillows_and_numpys_element_wise() {
    assert_equal_to_python(PayloadKind::Keras, &lab_images());
}

/// Other layouts a user's image may have, made by Pillow from the lab's images: grey, progressive, 4:4:4 and
/// 4:2:2 JPEGs, an odd size (partial MCUs), an upscale, and RGBA, palette and grey PNGs.
#[test]
fn other_image_layouts_equal_pillows_too() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let make_images = r#"
import sys
from PIL import Image
rocket, cat, out = Image.open(sys.argv[1]).convert("RGB"), Image.open(sys.argv[2]).convert("RGB"), sys.argv[3]
rocket.convert("L").save(out + "/grey.jpg", quality=90)
rocket.save(out + "/progressive.jpg", progressive=True, quality=85)
cat.save(out + "/444.jpg", subsampling=0, quality=95)
cat.save(out + "/422.jpg", subsampling=1, quality=80)
rocket.crop((3, 5, 104, 82)).save(out + "/odd.jpg")
cat.crop((0, 0, 150, 100)).save(out + "/small.jpg")
rgba = cat.convert("RGBA"); rgba.putalpha(128); rgba.save(out + "/rgba.png")
cat.convert("P", palette=Image.ADAPTIVE, colors=64).save(out + "/palette.png")
cat.convert("L").save(out + "/grey.png")
"#;
    let python = canary_lab_tests::test_tools().join("venv/bin/python");
    // Pillow makes the images.
    let status = Process::new(python)
        .args(["-c", make_images])
        .arg(root.join("tests/data/rocket.jpg"))
        .arg(root.join("tests/data/chelsea.png"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let images: Vec<PathBuf> = [
        "grey.jpg",
        "progressive.jpg",
        "444.jpg",
        "422.jpg",
        "odd.jpg",
        "small.jpg",
        "rgba.png",
        "palette.png",
        "grey.png",
    ]
    .iter()
    .map(|name| dir.path().join(name))
    .collect();
    assert_equal_to_python(PayloadKind::Raw, &images);
    assert_equal_to_python(PayloadKind::Keras, &images);
}

#[test]
fn raw_payload_keeps_the_image_size() {
    let image = &lab_images()[0];
    let body: Value = serde_json::from_slice(
        &build_payload(PayloadKind::Raw, &std::fs::read(image).unwrap())
            .unwrap()
            .body,
    )
    .unwrap();
    let (shape, values) = flatten(&body);
    assert_eq!(shape, (600, 512, 3));
    assert!(
        values
            .iter()
            .all(|value| value.fract() == 0.0 && (0.0..=255.0).contains(value))
    );
}
