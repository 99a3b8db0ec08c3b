//! The admin API's bearer token, generated on first start.
//!
//! Threat: "loopback only" is not access control. Every local account, and every web page the
//! operator opens, can send requests to 127.0.0.1; without a token they act as the operator.
//!
//! Rule: `sluice serve` always requires a bearer token. The operator's explicit token
//! (`--admin-token` / `SLUICE_ADMIN_TOKEN`) wins; otherwise the token is read from
//! `<data dir>/admin.token`, which the first start creates with a random value, mode 0600, in
//! one step (written under a temporary name and linked into place, so a concurrent start or
//! reader never sees a partial file). `sluice admin-token` prints it for scripts and consoles.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// Why the token file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Reading or writing the file failed.
    #[error("admin token file {path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The file holds no usable token.
    #[error(
        "admin token file {0} is empty or not one line of text: delete it and start `sluice serve` again to make a new one"
    )]
    Malformed(PathBuf),
}

/// The token in `data_dir`, created when absent.
pub fn load_or_create(data_dir: &Path) -> Result<String, AdminTokenError> {
    let path = data_dir.join(TOKEN_FILE);
    let io = |e: std::io::Error| AdminTokenError::Io {
        path: path.clone(),
        detail: e.to_string(),
    };
    crate::private_fs::create_private_dir(data_dir).map_err(io)?;
    match std::fs::symlink_metadata(&path) {
        Ok(_) => return read(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token = crate::secrets::random_token(32);
    let temp = data_dir.join(format!(".{TOKEN_FILE}.{}", crate::secrets::random_token(6)));
    let written = write_new(&temp, &token);
    let linked = written.and_then(|_| std::fs::hard_link(&temp, &path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(token),
        // Another start linked its token first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(io(e)),
    }
}

fn write_new(path: &Path, token: &str) -> std::io::Result<()> {
    let mut file = crate::private_fs::open_private_file(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()
}

fn read(path: &Path) -> Result<String, AdminTokenError> {
    crate::private_fs::tighten(path, 0o600).map_err(|e| AdminTokenError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| AdminTokenError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AdminTokenError::Malformed(path.to_path_buf()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_private_and_reused() {
        let temp = tempfile::Builder::new()
            .prefix("sluice-admin-token-")
            .tempdir()
            .unwrap();
        // A data directory that does not exist yet, as on a first run.
        let dir = temp.path().join("data");
        let first = load_or_create(&dir).unwrap();
        assert!(first.len() >= 32, "{first}");
        assert_eq!(load_or_create(&dir).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(TOKEN_FILE), "  \n").unwrap();
        assert!(matches!(
            load_or_create(&dir),
            Err(AdminTokenError::Malformed(_))
        ));
    }
}
