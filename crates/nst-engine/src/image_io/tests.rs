//! Image decoding, sizing and writing tests on images the tests make.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Luma, Rgb, Rgba};
use ndarray::Array3;

use super::*;
use crate::testing::TempDir;

#[track_caller]
fn check_pixel(p: &Picture, x: u32, y: u32, rgb: [f32; 3], tol: f32) {
    let got = p.pixels.get_pixel(x, y).0;
    for c in 0..3 {
        assert!(
            (got[c] * 255.0 - rgb[c]).abs() <= tol,
            "pixel ({x},{y}) = {:?}, want {rgb:?}",
            got.map(|v| v * 255.0)
        );
    }
}

#[test]
fn alpha_is_composited_on_white() {
    let dir = TempDir::new("img-alpha");
    let path = dir.path().join("a.png");
    let img = image::RgbaImage::from_fn(3, 1, |x, _| match x {
        0 => Rgba([255, 0, 0, 255]),
        1 => Rgba([255, 0, 0, 0]),
        _ => Rgba([0, 0, 0, 128]),
    });
    img.save(&path).unwrap();
    let p = load(&path).unwrap();
    check_pixel(&p, 0, 0, [255.0, 0.0, 0.0], 0.01);
    check_pixel(&p, 1, 0, [255.0, 255.0, 255.0], 0.01);
    let half = 255.0 * (1.0 - 128.0 / 255.0);
    check_pixel(&p, 2, 0, [half, half, half], 0.01);
}

#[test]
fn grayscale_and_16_bit_become_rgb() {
    let dir = TempDir::new("img-gray16");
    let gray = dir.path().join("g.png");
    image::GrayImage::from_fn(2, 2, |x, y| Luma([(x * 100 + y * 50) as u8]))
        .save(&gray)
        .unwrap();
    let p = load(&gray).unwrap();
    check_pixel(&p, 1, 1, [150.0, 150.0, 150.0], 0.01);

    let deep = dir.path().join("d.png");
    let buf: Vec<u16> = vec![65535, 0, 32768, 257, 514, 771];
    let mut f = File::create(&deep).unwrap();
    // PngEncoder takes native-endian u16 samples as bytes.
    let native: Vec<u8> = buf.iter().flat_map(|v| v.to_ne_bytes()).collect();
    PngEncoder::new(&mut f)
        .write_image(&native, 2, 1, ExtendedColorType::Rgb16)
        .unwrap();
    drop(f);
    let p = load(&deep).unwrap();
    check_pixel(&p, 0, 0, [255.0, 0.0, 32768.0 / 257.0], 1e-3);
    check_pixel(&p, 1, 0, [1.0, 2.0, 3.0], 1e-3);
}

/// A TIFF block with one IFD entry: Orientation (0x0112, SHORT) = `value`.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend(8_u32.to_le_bytes());
    v.extend(1_u16.to_le_bytes());
    v.extend(0x0112_u16.to_le_bytes());
    v.extend(3_u16.to_le_bytes());
    v.extend(1_u32.to_le_bytes());
    v.extend(u32::from(value).to_le_bytes());
    v.extend(0_u32.to_le_bytes());
    v
}

#[test]
fn exif_orientation_is_honoured() {
    let dir = TempDir::new("img-exif");
    let path = dir.path().join("rot.jpg");
    // 8x4, left half black, right half white; orientation 6 = rotate 90° clockwise to display.
    let img = RgbImage::from_fn(8, 4, |x, _| {
        if x < 4 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        }
    });
    let mut f = File::create(&path).unwrap();
    let mut enc = JpegEncoder::new_with_quality(&mut f, 100);
    enc.set_exif_metadata(exif_orientation(6)).unwrap();
    enc.write_image(img.as_raw(), 8, 4, ExtendedColorType::Rgb8)
        .unwrap();
    drop(f);
    let p = load(&path).unwrap();
    assert_eq!((p.width(), p.height()), (4, 8));
    // After a clockwise turn the left (black) half is on top.
    check_pixel(&p, 2, 1, [0.0, 0.0, 0.0], 20.0);
    check_pixel(&p, 2, 6, [255.0, 255.0, 255.0], 20.0);
}

#[test]
fn bad_files_name_the_file() {
    let dir = TempDir::new("img-bad");
    let missing = dir.path().join("missing.png");
    let err = load(&missing).unwrap_err();
    assert!(
        matches!(err, ImageError::Read { .. }) && err.to_string().contains("missing.png"),
        "{err}"
    );

    let empty = dir.path().join("empty.png");
    fs::write(&empty, b"").unwrap();
    let err = load(&empty).unwrap_err();
    assert!(
        matches!(err, ImageError::Empty { .. }) && err.to_string().contains("empty.png"),
        "{err}"
    );

    let text = dir.path().join("notes.jpg");
    fs::write(&text, b"this is not an image at all").unwrap();
    let err = load(&text).unwrap_err();
    assert!(
        matches!(err, ImageError::NotAnImage { .. }) && err.to_string().contains("notes.jpg"),
        "{err}"
    );

    let truncated = dir.path().join("cut.png");
    let mut bytes = Vec::new();
    image::RgbImage::new(16, 16)
        .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&truncated).unwrap_err();
    assert!(err.to_string().contains("cut.png"), "{err}");

    // A PNG header that claims 100000 x 100000 pixels.
    let huge = dir.path().join("huge.png");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(100_000_u32.to_be_bytes());
    png.extend(100_000_u32.to_be_bytes());
    png.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&png[12..]);
    png.extend(crc.to_be_bytes());
    for chunk in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend(0_u32.to_be_bytes());
        png.extend(chunk);
        png.extend(crc32(chunk).to_be_bytes());
    }
    fs::write(&huge, &png).unwrap();
    let err = load(&huge).unwrap_err();
    assert!(
        matches!(err, ImageError::TooLarge { .. }) && err.to_string().contains("huge.png"),
        "{err}"
    );
}

/// CRC-32 (IEEE) for the hand-made PNG chunk.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn working_size_rules() {
    let max = |max, upscale| SizeRule::MaxSide { max, upscale };
    assert_eq!(
        working_size(700, 277, max(400, false)).unwrap().0,
        Size {
            width: 400,
            height: 158
        }
    );
    assert_eq!(
        working_size(277, 700, max(400, false)).unwrap().0,
        Size {
            width: 158,
            height: 400
        }
    );
    let (size, note) = working_size(200, 100, max(400, false)).unwrap();
    assert_eq!(
        size,
        Size {
            width: 200,
            height: 100
        }
    );
    assert!(note.unwrap().contains("--upscale"));
    assert_eq!(
        working_size(200, 100, max(400, true)).unwrap().0,
        Size {
            width: 400,
            height: 200
        }
    );
    assert_eq!(
        working_size(400, 300, max(400, false)).unwrap(),
        (
            Size {
                width: 400,
                height: 300
            },
            None
        )
    );
    let exact = |s: &str, upscale| SizeRule::Exact {
        size: s.parse().unwrap(),
        upscale,
    };
    assert!(
        working_size(300, 200, exact("400x300", false))
            .unwrap_err()
            .contains("--upscale")
    );
    assert_eq!(
        working_size(300, 200, exact("400x300", true)).unwrap().0,
        Size {
            width: 400,
            height: 300
        }
    );
    assert!("400".parse::<Size>().is_err());
    assert!("0x3".parse::<Size>().is_err());
    assert_eq!(
        scale_long_side(1, 1000, 10),
        Size {
            width: 1,
            height: 10
        }
    );
}

#[test]
fn tensor_round_trip_clips_and_adds_the_mean() {
    let mean = [100.0, 110.0, 120.0];
    let pic = Picture {
        pixels: Rgb32FImage::from_fn(3, 2, |x, y| Rgb([x as f32 / 2.0, y as f32, 0.25])),
    };
    let t = pic.to_tensor(mean);
    assert_eq!(t.dim(), (3, 2, 3));
    assert_eq!(t[[0, 0, 2]], 255.0 - 100.0);
    assert_eq!(t[[1, 1, 0]], 255.0 - 110.0);
    let rgb = tensor_to_rgb8(t.view(), mean);
    assert_eq!(rgb.get_pixel(1, 0).0, [128, 0, 64]);
    let mut wild = Array3::<f32>::zeros((3, 1, 1));
    wild[[0, 0, 0]] = 1e6;
    wild[[1, 0, 0]] = -1e6;
    assert_eq!(
        tensor_to_rgb8(wild.view(), [0.0; 3]).get_pixel(0, 0).0,
        [255, 0, 0]
    );
}

#[test]
fn atomic_save_in_every_format() {
    let dir = TempDir::new("img-save");
    let img = RgbImage::from_fn(5, 3, |x, y| Rgb([(x * 50) as u8, (y * 80) as u8, 7]));
    for name in ["o.png", "o.jpg", "o.jpeg", "o.gif"] {
        let path = dir.path().join(name);
        save_rgb8(&img, &path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!((back.width(), back.height()), (5, 3), "{name}");
    }
    let png = load(&dir.path().join("o.png")).unwrap();
    check_pixel(&png, 4, 2, [200.0, 160.0, 7.0], 1e-3);
    let err = save_rgb8(&img, &dir.path().join("o.bmp")).unwrap_err();
    assert!(matches!(err, ImageError::UnknownOutputFormat { .. }));
    // Nothing but the outputs is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn unwritable_folder_is_detected() {
    let dir = TempDir::new("img-unwritable");
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    // A folder cannot be created inside a regular file.
    let err = check_writable_dir(&file.join("out")).unwrap_err();
    assert!(err.to_string().contains("a-file"), "{err}");
    check_writable_dir(&dir.path().join("new/sub")).unwrap();
}

/// `cmyk.jpg` (354 bytes) was written with Pillow:
/// `Image.new('RGB', (4, 2), (200, 30, 60)).convert('CMYK').save('cmyk.jpg', quality=100)`.
#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    let dir = TempDir::new("img-cmyk");
    let path = dir.path().join("cmyk.jpg");
    fs::write(&path, include_bytes!("cmyk.jpg")).unwrap();
    let p = load(&path).unwrap();
    assert_eq!((p.width(), p.height()), (4, 2));
    check_pixel(&p, 1, 1, [200.0, 30.0, 60.0], 8.0);
}

#[test]
fn truncated_jpeg_is_an_error_and_appended_data_is_not() {
    let dir = TempDir::new("img-cut-jpeg");
    // With an EXIF block, so that the walk has an APP1 segment to step over.
    let img = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 90]));
    let mut bytes = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut bytes, 90);
    enc.set_exif_metadata(exif_orientation(1)).unwrap();
    enc.write_image(img.as_raw(), 24, 16, ExtendedColorType::Rgb8)
        .unwrap();
    assert!(jpeg_is_complete(&bytes));
    for cut in [bytes.len() - 2, bytes.len() - 1, bytes.len() * 2 / 3, 40] {
        assert!(!jpeg_is_complete(&bytes[..cut]), "cut at {cut}");
    }
    let cut = dir.path().join("cut.jpg");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = load(&cut).unwrap_err();
    assert!(
        matches!(err, ImageError::Truncated { .. }) && err.to_string().contains("cut.jpg"),
        "{err}"
    );
    // Data after the end marker (a motion photo's video, a camera trailer) is fine.
    let mut long = bytes.clone();
    long.extend(b"\xFF\xDA\x00\x08 trailing bytes");
    let appended = dir.path().join("appended.jpg");
    fs::write(&appended, &long).unwrap();
    assert_eq!(load(&appended).unwrap().width(), 24);
    // The shipped samples and the CMYK fixture are complete.
    for p in [
        "../../images/hokusai_great_wave.jpg",
        "src/image_io/cmyk.jpg",
    ] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
        assert!(jpeg_is_complete(&fs::read(&p).unwrap()), "{}", p.display());
    }
}

/// What a second Ctrl-C does in the middle of a write: the temporary file goes, the destination stays.
#[test]
fn pending_temporary_files_can_be_removed_mid_write() {
    let tmp = TempDir::new("pending-temps");
    let dest = tmp.path().join("out.png");
    std::fs::write(&dest, b"previous").unwrap();
    let result = write_atomically(&dest, |f| {
        std::io::Write::write_all(f, b"half").map_err(|e| e.to_string())?;
        // What the exit does, for this test's folder only (other tests write files at the same time).
        pending_temps(|p| remove_pending_temps_where(p, |t| t.starts_with(tmp.path())));
        Ok(())
    });
    assert!(
        result.is_err(),
        "the rename of a removed temporary file fails"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out.png"], "no temporary file is left");
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
}

/// A 16-bit PNG keeps every value, says it is sRGB and carries its text chunks.
#[test]
fn sixteen_bit_png_round_trip_keeps_every_value() {
    let dir = TempDir::new("png16");
    let path = dir.path().join("deep.png");
    let (w, h) = (7_u32, 5_u32);
    let samples: Vec<u16> = (0..w * h * 3).map(|i| (i * 1021 % 65536) as u16).collect();
    let text = [(
        "nst-settings".to_owned(),
        "{\"iterations\":3, \"path\":\"café.png\"}".to_owned(),
    )];
    save_png(&path, (w, h), PngPixels::Sixteen(&samples), &text).unwrap();
    let back = image::open(&path).unwrap().into_rgb16();
    assert_eq!(back.dimensions(), (w, h));
    assert_eq!(back.into_raw(), samples);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert!(info.srgb.is_some(), "an sRGB chunk");
    let chunk = info
        .utf8_text
        .iter()
        .find(|t| t.keyword == "nst-settings")
        .unwrap();
    assert_eq!(chunk.get_text().unwrap(), text[0].1);
}
