//! Capture files: bounded lines of a (gzip) capture, and where the shared sample data lives.

use bulwark_oracle::binance::LINE_BYTES_MAX;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Reads a capture file (gzip when the name ends in `.gz`) as lines of at most
/// [`LINE_BYTES_MAX`] bytes; a longer line is skipped and reported as an error item, and reading
/// goes on with the next line.
pub fn read_capture(path: &Path) -> io::Result<CaptureLines> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(CaptureLines {
        reader: BufReader::with_capacity(1 << 16, reader),
        buf: Vec::new(),
    })
}

/// Bounded lines of a capture (see [`read_capture`]).
pub struct CaptureLines {
    reader: BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
}

impl Iterator for CaptureLines {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        self.buf.clear();
        let mut too_long = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            if available.is_empty() {
                if self.buf.is_empty() && !too_long {
                    return None;
                }
                break;
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if !too_long {
                self.buf.extend_from_slice(&available[..take]);
                if self.buf.len() > LINE_BYTES_MAX + 1 {
                    too_long = true;
                    self.buf.clear();
                }
            }
            self.reader.consume(take);
            if done {
                break;
            }
        }
        if too_long {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "capture line exceeds LINE_BYTES_MAX",
            )));
        }
        Some(
            String::from_utf8(std::mem::take(&mut self.buf))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8")),
        )
    }
}

/// The shared data directory next to the repository (`<repo>/../shared/data`), if present: found
/// from this crate's source location, else from the current directory (run from the repository
/// root). Captures are read at test and bench time only; they are never copied into the
/// repository.
pub fn shared_data_dir() -> Option<std::path::PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from_source = manifest
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|root| root.join("shared/data"));
    let from_cwd = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.parent().map(|p| p.join("shared/data")));
    [from_source, from_cwd]
        .into_iter()
        .flatten()
        .find(|dir| dir.is_dir())
}
