//! Decoding images to RGB pixels exactly as Pillow does, and Pillow's JPEG re-save (quality 75).
//!
//! The lab's reference payloads come from Pillow, which decodes and encodes JPEG with libjpeg-turbo. The model
//! sees raw pixel values, so "close" is not good enough: the payloads must be equal element by element. Pure-Rust
//! decoders do not get there: `jpeg-decoder` uses stb_image's IDCT and `zune-jpeg` its own IDCT and upsampling,
//! so both differ from libjpeg-turbo's ISLOW IDCT and "fancy" upsampling by ±1–2 in many pixels; and no pure-Rust
//! encoder reproduces libjpeg's colour conversion, downsampling, FDCT and quantisation, which the `raw` payload's
//! re-save at quality 75 needs. So JPEG goes through libjpeg's own code: the `mozjpeg-sys` crate, which vendors the
//! C source (mozjpeg is a libjpeg-turbo fork) and builds it with the `cc` crate — no cmake, nasm or system
//! library, so `cargo build` works offline from crates.io alone. Without nasm it uses libjpeg-turbo's portable C
//! paths, which libjpeg-turbo guarantees to be bit-identical to its SIMD paths for ISLOW and fancy upsampling.
//!
//! mozjpeg's one difference from libjpeg-turbo is its encoder defaults (trellis quantisation, progressive scans,
//! other quantisation tables). Selecting the `JCP_FASTEST` compression profile before `jpeg_set_defaults` turns all
//! of that off: baseline, 4:2:0, the standard (Annex K) tables scaled to quality 75, ISLOW FDCT — exactly what
//! `Image.save(…, "JPEG")` writes with Pillow's defaults. `tests/tests/it/payload.rs` compares the payloads with
//! Pillow's element by element — equal on the lab's images and on grey, progressive, 4:4:4, 4:2:2 and odd-sized
//! JPEGs. (Measured before choosing: the `image` crate's zune-jpeg differs from Pillow in 113,630 of 921,600
//! values of grace_hopper.jpg, by up to 4, and in 5,866 of 819,840 of rocket.jpg, by up to 2.)
//!
//! PNG is lossless; the `image` crate decodes it (RGBA loses its alpha and palettes are expanded, as Pillow's
//! `convert("RGB")` does). CMYK JPEGs are refused.

use std::ffi::{CStr, c_int, c_ulong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use anyhow::{Context, bail};
use mozjpeg_sys as jpeg;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes: R, G, B per pixel, rows top to bottom.
    pub pixels: Vec<u8>,
}

/// Decodes a JPEG or PNG file's bytes to RGB, like Pillow's `Image.open(…).convert("RGB")`.
pub fn decode_rgb(file_bytes: &[u8]) -> anyhow::Result<RgbImage> {
    const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if file_bytes.starts_with(JPEG_MAGIC) {
        return decode_jpeg(file_bytes);
    }
    if file_bytes.starts_with(PNG_MAGIC) {
        let decoded = image::load_from_memory_with_format(file_bytes, image::ImageFormat::Png)
            .context("decoding the PNG image")?;
        // Like Pillow's convert("RGB"): grey is replicated, alpha is dropped (not composited).
        let rgb = decoded.to_rgb8();
        return Ok(RgbImage {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            pixels: rgb.into_raw(),
        });
    }
    bail!(
        "the image is neither JPEG nor PNG (it starts with {:02x?})",
        &file_bytes[..file_bytes.len().min(8)]
    )
}

/// Decodes a JPEG with libjpeg's defaults (ISLOW IDCT, fancy upsampling), as Pillow does; grey becomes RGB.
pub fn decode_jpeg(file_bytes: &[u8]) -> anyhow::Result<RgbImage> {
    let decoded = with_libjpeg_errors(|| {
        // SAFETY: the structs are zeroed as libjpeg expects before `jpeg_create_decompress`, live on this stack
        // frame until `jpeg_destroy_decompress`, and the input slice outlives the decompressor. Errors unwind
        // out of `error_exit` through the C frames ("C-unwind"), and the struct is destroyed on both paths.
        unsafe {
            let mut errors: jpeg::jpeg_error_mgr = std::mem::zeroed();
            let mut decompress: jpeg::jpeg_decompress_struct = std::mem::zeroed();
            let error_manager = jpeg::jpeg_std_error(&mut errors);
            error_manager.error_exit = Some(unwind_on_error);
            error_manager.output_message = Some(ignore_message);
            error_manager.emit_message = Some(fail_on_truncation);
            decompress.common.err = error_manager;
            jpeg::jpeg_create_decompress(&mut decompress);
            let result = catch_unwind(AssertUnwindSafe(|| {
                jpeg::jpeg_mem_src(&mut decompress, file_bytes.as_ptr(), file_bytes.len() as c_ulong);
                jpeg::jpeg_read_header(&mut decompress, 1);
                let grey = decompress.jpeg_color_space == jpeg::J_COLOR_SPACE::JCS_GRAYSCALE;
                decompress.out_color_space = if grey {
                    jpeg::J_COLOR_SPACE::JCS_GRAYSCALE
                } else {
                    jpeg::J_COLOR_SPACE::JCS_RGB
                };
                jpeg::jpeg_start_decompress(&mut decompress);
                let width = decompress.output_width as usize;
                let height = decompress.output_height as usize;
                let components = decompress.output_components as usize;
                let mut samples = vec![0u8; width * height * components];
                while (decompress.output_scanline as usize) < height {
                    let row = decompress.output_scanline as usize;
                    let mut row_pointer = samples[row * width * components..].as_mut_ptr();
                    jpeg::jpeg_read_scanlines(&mut decompress, &mut row_pointer, 1);
                }
                jpeg::jpeg_finish_decompress(&mut decompress);
                (width, height, components, samples)
            }));
            jpeg::jpeg_destroy_decompress(&mut decompress);
            result
        }
    })
    .context("decoding the JPEG image")?;
    let (width, height, components, samples) = decoded;
    let pixels = match components {
        3 => samples,
        1 => samples.iter().flat_map(|&grey| [grey, grey, grey]).collect(),
        other => bail!("decoding the JPEG image: {other} colour components (CMYK JPEGs are not supported)"),
    };
    Ok(RgbImage { width, height, pixels })
}

/// Encodes RGB pixels as Pillow's `Image.save(…, "JPEG")` does by default: quality 75, 4:2:0, baseline.
pub fn encode_jpeg_pillow_default(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    if image.pixels.len() != image.width * image.height * 3 || image.width == 0 || image.height == 0 {
        bail!(
            "encoding a JPEG: {}×{} does not match {} bytes of RGB",
            image.width,
            image.height,
            image.pixels.len()
        );
    }
    with_libjpeg_errors(|| {
        // SAFETY: as in `decode_jpeg`; in addition the output buffer that `jpeg_mem_dest` allocates with malloc
        // is copied and freed exactly once, after compression finished or failed.
        unsafe {
            let mut errors: jpeg::jpeg_error_mgr = std::mem::zeroed();
            let mut compress: jpeg::jpeg_compress_struct = std::mem::zeroed();
            let error_manager = jpeg::jpeg_std_error(&mut errors);
            error_manager.error_exit = Some(unwind_on_error);
            error_manager.output_message = Some(ignore_message);
            compress.common.err = error_manager;
            jpeg::jpeg_create_compress(&mut compress);
            let mut out_buffer: *mut u8 = std::ptr::null_mut();
            let mut out_size: c_ulong = 0;
            let result = catch_unwind(AssertUnwindSafe(|| {
                jpeg::jpeg_mem_dest(&mut compress, &mut out_buffer, &mut out_size);
                compress.image_width = image.width as jpeg::JDIMENSION;
                compress.image_height = image.height as jpeg::JDIMENSION;
                compress.input_components = 3;
                compress.in_color_space = jpeg::J_COLOR_SPACE::JCS_RGB;
                // libjpeg-turbo's defaults instead of mozjpeg's: must be chosen before jpeg_set_defaults.
                jpeg::jpeg_c_set_int_param(
                    &mut compress,
                    jpeg::J_INT_PARAM::JINT_COMPRESS_PROFILE,
                    jpeg::JCP_FASTEST as c_int,
                );
                jpeg::jpeg_set_defaults(&mut compress);
                jpeg::jpeg_set_quality(&mut compress, 75, 1);
                jpeg::jpeg_start_compress(&mut compress, 1);
                let row_bytes = image.width * 3;
                for row in image.pixels.chunks_exact(row_bytes) {
                    let row_pointer = row.as_ptr();
                    jpeg::jpeg_write_scanlines(&mut compress, &row_pointer, 1);
                }
                jpeg::jpeg_finish_compress(&mut compress);
            }));
            jpeg::jpeg_destroy_compress(&mut compress);
            let encoded = if out_buffer.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(out_buffer, out_size as usize).to_vec()
            };
            if !out_buffer.is_null() {
                free(out_buffer.cast());
            }
            result.map(|()| encoded)
        }
    })
    .context("encoding the JPEG image")
}

/// Pillow's JPEG round trip (`save` at the defaults, then `open` again), as the original lab's payload does.
pub fn pillow_jpeg_round_trip(image: &RgbImage) -> anyhow::Result<RgbImage> {
    let encoded = encode_jpeg_pillow_default(image)?;
    decode_jpeg(&encoded).context("decoding the re-saved JPEG")
}

unsafe extern "C" {
    /// The C library's `free`, for the buffer `jpeg_mem_dest` allocates.
    fn free(pointer: *mut c_void);
}

/// A libjpeg error carried through the unwinding of its C frames.
struct LibjpegError(String);

/// Runs `work` and turns a libjpeg error (raised by [`unwind_on_error`]) into an `anyhow` error.
fn with_libjpeg_errors<T>(work: impl FnOnce() -> std::thread::Result<T>) -> anyhow::Result<T> {
    match work() {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<LibjpegError>() {
            Ok(error) => Err(anyhow::anyhow!("libjpeg: {}", error.0)),
            Err(other) => resume_unwind(other),
        },
    }
}

/// libjpeg's `error_exit`: format the message and unwind back to the `catch_unwind` around the call.
unsafe extern "C-unwind" fn unwind_on_error(common: &mut jpeg::jpeg_common_struct) {
    let buffer = [0u8; 80];
    // SAFETY: `err` points at the error manager set up by the caller, whose format_message libjpeg filled in.
    unsafe {
        if let Some(format_message) = (*common.err).format_message {
            format_message(common, &buffer);
        }
    }
    let message = CStr::from_bytes_until_nul(&buffer)
        .map(|text| text.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown error".to_string());
    // resume_unwind skips the panic hook: this is an error value travelling, not a bug.
    resume_unwind(Box::new(LibjpegError(message)))
}

/// libjpeg's `emit_message` for decoding: the data ending before the image does (`JWRN_JPEG_EOF`, after which libjpeg
/// would fill the rest with grey) is an error, as Pillow's "image file is truncated" is; other warnings (extraneous
/// bytes) are ignored, as Pillow ignores them.
unsafe extern "C-unwind" fn fail_on_truncation(common: &mut jpeg::jpeg_common_struct, msg_level: std::os::raw::c_int) {
    // SAFETY: `err` points at the error manager set up by the caller; libjpeg set `msg_code` before calling this.
    let code = unsafe { (*common.err).msg_code };
    if msg_level < 0 && code == jpeg::JWRN_JPEG_EOF as std::os::raw::c_int {
        resume_unwind(Box::new(LibjpegError(
            "the file ends before the image does: it is truncated".to_string(),
        )))
    }
}

/// libjpeg's `output_message`: warnings (e.g. extraneous bytes) are not printed to stderr.
unsafe extern "C-unwind" fn ignore_message(_common: &mut jpeg::jpeg_common_struct) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_jpeg_is_an_error() {
        // Before, a JPEG cut at 2,000 bytes decoded "fine", its missing rows grey.
        let photo = include_bytes!("../../../assets/images/grace_hopper.jpg");
        let error = decode_rgb(&photo[..2000]).unwrap_err();
        assert!(format!("{error:#}").contains("truncated"), "{error:#}");
        assert!(decode_rgb(photo).is_ok());
    }

    #[test]
    fn round_trip_keeps_size_and_stays_close() {
        // A smooth gradient (odd sizes, so the 4:2:0 edges are exercised) survives quality 75 within a few levels.
        let width = 37;
        let height = 21;
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend([(x * 6) as u8, (y * 10) as u8, 128]);
            }
        }
        let original = RgbImage { width, height, pixels };
        let round_trip = pillow_jpeg_round_trip(&original).unwrap();
        assert_eq!((round_trip.width, round_trip.height), (width, height));
        let largest_difference = original
            .pixels
            .iter()
            .zip(&round_trip.pixels)
            .map(|(before, after)| before.abs_diff(*after))
            .max()
            .unwrap();
        assert!(largest_difference <= 12, "largest difference {largest_difference}");
        assert_ne!(
            round_trip.pixels, original.pixels,
            "a lossy round trip that changes nothing is suspicious"
        );
    }

    #[test]
    fn a_broken_jpeg_is_an_error_not_a_crash() {
        let error = decode_rgb(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J']).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.starts_with("decoding the JPEG image: libjpeg: "), "{text}");
    }

    #[test]
    fn unknown_formats_are_named() {
        let error = decode_rgb(b"GIF89a....").unwrap_err();
        assert!(error.to_string().contains("neither JPEG nor PNG"), "{error}");
    }
}
