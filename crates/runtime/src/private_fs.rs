//! Files and directories only the operator's account may read.
//!
//! Threat: another local account reads the data directory: the database holds tenants'
//! records and sealed tokens, the key file unseals them, the admin token opens the admin API.
//! Files created under a permissive umask (or a data directory someone made 0755 by hand) are
//! readable by every user on the machine.
//!
//! Rule: the data directory and the directories Sluice makes in it are 0700, and the files it
//! creates there (database, lock files, admin token) are 0600, whatever the umask. An existing
//! data directory or file open to group or others is tightened when Sluice opens it, with a
//! warning, since a looser mode is never intended.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one that group
/// or others can use.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    tighten(dir, 0o700)
}

/// Opens `path` for writing, creating it with mode 0600 when absent (never truncating), and
/// tightens an existing file that group or others can read.
pub fn open_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The umask can only remove bits, and 0600 has none it would remove.
        options.mode(0o600);
    }
    let file = options.open(path)?;
    tighten(path, 0o600)?;
    Ok(file)
}

/// Sets `path` to `mode` when it grants anything to group or others; a missing path is fine.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if current & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = %format!("{current:o}"),
                "tightening permissions: other accounts could read Sluice's data"
            );
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
