//! Prediction request bodies for TF Serving's REST API: the original lab's raw pixels, Keras input, or JPEG bytes.
//!
//! - `raw` is the original lab's `gen_payload.py` (kept as `scripts/gen_payload.py`): the image in RGB, re-saved
//!   as JPEG at Pillow's defaults (quality 75) and read back, sent as `{"instances": [H×W×3 ints]}` with no resize
//!   and no preprocessing.
//! - `keras` is what Keras' `load_img(target_size=(224, 224))` and `preprocess_input` (caffe mode) make: RGB,
//!   resized to 224×224 by Pillow's NEAREST sampling, RGB→BGR, minus the ImageNet means, as float32 values.
//! - `bytes` sends the image file itself, base64-encoded, to the `serving_bytes` signature.
//!
//! Pixels come from [`crate::traffic::image_decode`], which decodes and re-encodes with libjpeg as Pillow does; the tests
//! compare both pixel payloads element-wise with the Python reference. A body is built once per run and its
//! [`Bytes`] are shared by every request, so the JSON is written by hand into a pre-sized buffer with lookup
//! tables for the numbers (a pixel has only 256 values per channel) rather than through `serde_json` values.

use std::fmt::Write as _;

/// The lab's Grace Hopper photo, the default image.
pub const DEFAULT_IMAGE: &[u8] = include_bytes!("../../../assets/images/grace_hopper.jpg");

/// Which body to send: a fixed kind, or `auto` (ask the model's metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadChoice {
    /// `bytes` when the model has a `serving_bytes` signature, else `keras`.
    Auto,
    /// This kind.
    Fixed(PayloadKind),
}

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;

use crate::traffic::image_decode::{RgbImage, decode_rgb, pillow_jpeg_round_trip};

/// The signature that takes encoded image bytes.
pub const BYTES_SIGNATURE: &str = "serving_bytes";
/// The side of the square input Keras' ResNet models expect.
pub const KERAS_INPUT_SIDE: usize = 224;
/// The ImageNet channel means Keras' caffe-mode `preprocess_input` subtracts, in B, G, R order.
pub const IMAGENET_MEANS_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// A concrete kind of request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The original lab's payload: re-saved JPEG pixels as ints, no resize, no preprocessing.
    Raw,
    /// Keras ResNet input: 224×224 nearest-neighbour resize, BGR, mean-subtracted floats (`serving_default`).
    Keras,
    /// The image file as base64 for the `serving_bytes` signature.
    Bytes,
}

impl PayloadKind {
    /// The lowercase name, as the `--payload` flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Raw => "raw",
            PayloadKind::Keras => "keras",
            PayloadKind::Bytes => "bytes",
        }
    }
}

/// A request body, serialised once and shared by every request.
#[derive(Debug, Clone)]
pub struct Payload {
    /// What kind of body it is.
    pub kind: PayloadKind,
    /// The JSON body.
    pub body: Bytes,
}

/// Builds the body of `kind` for an image file (JPEG or PNG).
pub fn build_payload(kind: PayloadKind, file_bytes: &[u8]) -> anyhow::Result<Payload> {
    let body = match kind {
        PayloadKind::Bytes => bytes_body(file_bytes),
        PayloadKind::Raw => {
            let image = decode_rgb(file_bytes)?;
            let resaved = pillow_jpeg_round_trip(&image).context("re-saving the image as JPEG (quality 75)")?;
            raw_body(&resaved)
        }
        PayloadKind::Keras => {
            let image = decode_rgb(file_bytes)?;
            let resized = resize_nearest_like_pillow(&image, KERAS_INPUT_SIDE, KERAS_INPUT_SIDE);
            keras_body(&resized)
        }
    };
    Ok(Payload {
        kind,
        body: Bytes::from(body),
    })
}

/// `{"instances": [H×W×3 ints]}` for the pixels as they are.
pub fn raw_body(image: &RgbImage) -> Vec<u8> {
    let digits: Vec<String> = (0..=255u8).map(|value| value.to_string()).collect();
    write_instances(image, |_channel, value| digits[value as usize].as_bytes())
}

/// `{"instances": [H×W×3 floats]}`: B, G, R minus the ImageNet means, computed in float32 as Keras does.
pub fn keras_body(image: &RgbImage) -> Vec<u8> {
    // The value of output channel c (B, G, R) comes from input channel 2 - c. Each is one of 256 float32 values;
    // Rust's Display prints the shortest decimal that reads back as the same float32.
    let tables: Vec<Vec<String>> = IMAGENET_MEANS_BGR
        .iter()
        .map(|mean| {
            (0..=255u8)
                .map(|value| format!("{}", f32::from(value) - mean))
                .collect()
        })
        .collect();
    let mut bgr = image.clone();
    for pixel in bgr.pixels.chunks_exact_mut(3) {
        pixel.swap(0, 2);
    }
    write_instances(&bgr, |channel_index, value| {
        tables[channel_index][value as usize].as_bytes()
    })
}

/// `{"signature_name": "serving_bytes", "instances": [{"b64": "…"}]}`.
pub fn bytes_body(file_bytes: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(file_bytes);
    let mut body = String::with_capacity(encoded.len() + 80);
    let _ = write!(
        body,
        r#"{{"signature_name":"{BYTES_SIGNATURE}","instances":[{{"b64":"{encoded}"}}]}}"#
    );
    body.into_bytes()
}

/// Resizes like Pillow's `Image.resize(size, Image.NEAREST)`, which Keras' `load_img(target_size=…)` uses.
///
/// Pillow samples the source at the centre of each output pixel, accumulating the source coordinate in double
/// precision (`ImagingScaleAffine` in Pillow's `Geometry.c`); the same additions give the same pixels.
pub fn resize_nearest_like_pillow(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    let source_columns = sample_positions(image.width, width);
    let source_rows = sample_positions(image.height, height);
    let mut pixels = vec![0u8; width * height * 3];
    for (row_out, source_row) in source_rows.iter().enumerate() {
        let Some(source_row) = source_row else { continue };
        let source_line = &image.pixels[source_row * image.width * 3..][..image.width * 3];
        let out_line = &mut pixels[row_out * width * 3..][..width * 3];
        for (column_out, source_column) in source_columns.iter().enumerate() {
            if let Some(source_column) = source_column {
                out_line[column_out * 3..][..3].copy_from_slice(&source_line[source_column * 3..][..3]);
            }
        }
    }
    RgbImage { width, height, pixels }
}

/// Pillow's nearest-neighbour source index for each of `output` positions over `input` (None: outside, left 0).
fn sample_positions(input: usize, output: usize) -> Vec<Option<usize>> {
    let step = input as f64 / output as f64;
    let mut position = step * 0.5;
    let mut indices = Vec::with_capacity(output);
    for _ in 0..output {
        // Pillow's COORD(): negative → -1 (outside), else truncation toward zero.
        let index = if position < 0.0 {
            None
        } else {
            Some(position as usize).filter(|&index| index < input)
        };
        indices.push(index);
        position += step;
    }
    indices
}

/// Writes `{"instances":[[[[c,c,c],…],…]]}` with each channel value's text from `text_of(channel, value)`.
fn write_instances<'a>(image: &RgbImage, text_of: impl Fn(usize, u8) -> &'a [u8]) -> Vec<u8> {
    // Up to ~10 bytes per value plus brackets and commas: one allocation for the whole body.
    let mut body = Vec::with_capacity(image.pixels.len() * 12 + image.height * 4 + 32);
    body.extend_from_slice(br#"{"instances":[["#);
    for (row_index, row) in image.pixels.chunks_exact(image.width * 3).enumerate() {
        if row_index > 0 {
            body.push(b',');
        }
        body.push(b'[');
        for (pixel_index, pixel) in row.chunks_exact(3).enumerate() {
            if pixel_index > 0 {
                body.push(b',');
            }
            body.push(b'[');
            body.extend_from_slice(text_of(0, pixel[0]));
            body.push(b',');
            body.extend_from_slice(text_of(1, pixel[1]));
            body.push(b',');
            body.extend_from_slice(text_of(2, pixel[2]));
            body.push(b']');
        }
        body.push(b']');
    }
    body.extend_from_slice(b"]]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_image() -> RgbImage {
        RgbImage {
            width: 2,
            height: 1,
            pixels: vec![0, 128, 255, 10, 20, 30],
        }
    }

    #[test]
    fn raw_body_is_nested_ints() {
        let body = String::from_utf8(raw_body(&tiny_image())).unwrap();
        assert_eq!(body, r#"{"instances":[[[[0,128,255],[10,20,30]]]]}"#);
    }

    #[test]
    fn keras_body_is_bgr_minus_means_in_float32() {
        let body: serde_json::Value = serde_json::from_slice(&keras_body(&tiny_image())).unwrap();
        let first = &body["instances"][0][0][0];
        let values: Vec<f32> = first
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(values, vec![255.0 - 103.939f32, 128.0 - 116.779f32, 0.0 - 123.68f32]);
    }

    #[test]
    fn bytes_body_names_the_signature() {
        let body: serde_json::Value = serde_json::from_slice(&bytes_body(b"abc")).unwrap();
        assert_eq!(body["signature_name"], "serving_bytes");
        assert_eq!(body["instances"][0]["b64"], "YWJj");
    }

    #[test]
    fn nearest_resize_samples_pixel_centres() {
        // 4 → 2 samples source 1 and 3 (centres 1.0 and 3.0); 3 → 2 samples 0 and 2 (0.75, 2.25).
        assert_eq!(sample_positions(4, 2), vec![Some(1), Some(3)]);
        assert_eq!(sample_positions(3, 2), vec![Some(0), Some(2)]);
        assert_eq!(sample_positions(2, 4), vec![Some(0), Some(0), Some(1), Some(1)]);
    }
}
