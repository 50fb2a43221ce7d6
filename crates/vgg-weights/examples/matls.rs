//! Lists the variables of a MAT-file and whether each decodes: `cargo run --example matls -- FILE`.

#![allow(clippy::print_stdout)]

use vgg_weights::mat::MatFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: matls FILE")?;
    let file = MatFile::open(&path)?;
    println!("{} ({:?}): {}", path, file.endian(), file.header_text());
    for info in file.variables() {
        let status = match file.decode_info(info) {
            Ok(v) => format!("ok, {} {:?}", v.class(), v.dims()),
            Err(e) => format!("error: {e}"),
        };
        println!(
            "  {:<24} {:>10} bytes{} at {:>8}: {status}",
            info.name,
            info.stored_len,
            if info.compressed { " (zlib)" } else { "" },
            info.offset
        );
    }
    Ok(())
}
