//! Component files and connector names: regular files only, bounded in size, names that are safe
//! as file and URL path parts.

use super::*;

/// The connector name of a dropped file: its stem up to an optional `@` (so `salesforce@2.wasm`
/// installs a version of `salesforce`).
pub fn connector_name_of(path: &Path) -> Option<String> {
    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let name = stem.split('@').next()?.trim();
    (!name.is_empty() && !name.starts_with('.')).then(|| name.to_string())
}

/// Whether `name` may name a connector: 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit. Connector names end up in file names, URL paths and terminal output.
pub fn valid_connector_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// The largest component file [`read_component_file`] reads.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// Whether [`read_component_file`] follows a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Read the file a link points to (the CLI: the operator names the file).
    Follow,
    /// Refuse a link (the watched connectors directory).
    Refuse,
}

/// Reads a component file: a regular file of at most [`MAX_COMPONENT_BYTES`]. Devices, FIFOs
/// and sockets are refused (their reads never end or block), checked on the opened
/// descriptor so that the file cannot be swapped between the check and the read.
pub fn read_component_file(path: &Path, symlinks: Symlinks) -> Result<Vec<u8>, RegistryError> {
    use std::io::Read;
    let bad = |reason: String| RegistryError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    if symlinks == Symlinks::Refuse
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(bad(
            "is a symbolic link; put the component file itself here".into(),
        ));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking, so that opening a FIFO does not wait for a writer; no effect on the
        // reads of a regular file.
        let mut flags = libc::O_NONBLOCK;
        if symlinks == Symlinks::Refuse {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    let file = options
        .open(path)
        .map_err(|e| bad(format!("cannot open it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot inspect it: {e}")))?;
    if !meta.is_file() {
        return Err(bad(format!(
            "is {}, not a regular file; give the path of a .wasm component",
            file_kind(&meta)
        )));
    }
    let too_big = |size: u64| {
        bad(format!(
            "is {size} bytes or more; a component may have at most {MAX_COMPONENT_BYTES} bytes"
        ))
    };
    if meta.len() > MAX_COMPONENT_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut wasm = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut wasm)
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    // It may have grown since it was inspected.
    if wasm.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(too_big(wasm.len() as u64));
    }
    Ok(wasm)
}

/// What kind of file `meta` describes, for an error message.
pub(super) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}
