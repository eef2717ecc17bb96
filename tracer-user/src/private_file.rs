//! A file that will hold plaintext (a recording): created with mode 0600,
//! never written through a link, never over an existing file by surprise.
//!
//! Without `force`, an existing path of any kind (a file, a hard link to
//! one, a symlink, even a dangling one) is refused: the file is created
//! with `O_CREAT | O_EXCL | O_NOFOLLOW`. With `force`, the data goes to a
//! new temporary file in the same directory, which replaces the path by
//! `rename(2)` when finished: a symlink at the path is replaced, never
//! followed, and a hard link's other names keep their old contents.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use thiserror::Error;

/// Why the file could not be created.
#[derive(Debug, Error)]
pub enum PrivateFileError {
    #[error("{} exists (a file or a link); pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("creating {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("setting mode 0600 on {}: {source}", path.display())]
    Mode { path: PathBuf, source: io::Error },
    #[error("replacing {} with {}: {source}", path.display(), temp.display())]
    Replace {
        path: PathBuf,
        temp: PathBuf,
        source: io::Error,
    },
}

/// The open file, and where it goes when finished.
#[derive(Debug)]
pub struct PrivateFile {
    path: PathBuf,
    /// With `force`: the temporary file written instead, renamed over
    /// `path` by [`PrivateFile::finish`].
    temp: Option<PathBuf>,
}

impl PrivateFile {
    /// Creates the file for `path` (see the module docs), mode 0600.
    pub fn create(path: &Path, force: bool) -> Result<(Self, File), PrivateFileError> {
        let temp = force.then(|| temp_path(path));
        let target = temp.as_deref().unwrap_or(path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists if !force => PrivateFileError::Exists(path.into()),
                _ => PrivateFileError::Create {
                    path: target.into(),
                    source,
                },
            })?;
        // On the open file: the umask may have narrowed it, nothing can
        // have widened it, and no path lookup is involved.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|source| PrivateFileError::Mode {
                path: target.into(),
                source,
            })?;
        Ok((
            Self {
                path: path.into(),
                temp,
            },
            file,
        ))
    }

    /// The file is complete: with `force`, it replaces `path` now.
    pub fn finish(mut self) -> Result<(), PrivateFileError> {
        if let Some(temp) = self.temp.take() {
            fs::rename(&temp, &self.path).map_err(|source| {
                let _ = fs::remove_file(&temp);
                PrivateFileError::Replace {
                    path: self.path.clone(),
                    temp,
                    source,
                }
            })?;
        }
        Ok(())
    }
}

impl PrivateFile {
    /// Nothing worth keeping was written: what was created goes, and the
    /// path keeps what it had.
    pub fn discard(mut self) {
        let created = self.temp.take().unwrap_or_else(|| self.path.clone());
        let _ = fs::remove_file(created);
    }
}

impl Drop for PrivateFile {
    /// Never finished (an error on the way): the temporary file goes; the
    /// path keeps what it had.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// `dir/.name.watchtrace-PID.tmp`, beside `path` so the rename stays on
/// one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "recording".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.watchtrace-{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, os::unix::fs::MetadataExt as _};

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("watchtrace-private-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, force: bool, text: &str) -> Result<(), PrivateFileError> {
        let (out, mut file) = PrivateFile::create(path, force)?;
        file.write_all(text.as_bytes()).unwrap();
        drop(file);
        out.finish()
    }

    #[test]
    fn a_new_file_is_created_0600() {
        let dir = dir("new");
        let path = dir.join("rec.wtrec");
        write(&path, false, "data").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_existing_file_is_refused_without_force_and_replaced_with_it() {
        let dir = dir("existing");
        let path = dir.join("rec.wtrec");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = write(&path, false, "new").unwrap_err();
        assert!(matches!(err, PrivateFileError::Exists(_)), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old", "untouched");
        write(&path, true, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlink_is_never_followed_even_with_force() {
        let dir = dir("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.join("rec.wtrec");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            write(&link, false, "plaintext"),
            Err(PrivateFileError::Exists(_))
        ));
        write(&link, true, "plaintext").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            fs::metadata(&victim).unwrap().mode() & 0o777,
            0o644,
            "mode untouched"
        );
        let replaced = fs::symlink_metadata(&link).unwrap();
        assert!(
            replaced.is_file(),
            "the link itself was replaced by the file"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_dangling_symlink_is_refused_and_creates_nothing_where_it_points() {
        let dir = dir("dangling");
        let target = dir.join("elsewhere");
        let link = dir.join("rec.wtrec");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            write(&link, false, "plaintext"),
            Err(PrivateFileError::Exists(_))
        ));
        assert!(!target.exists(), "nothing created through the link");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_hard_link_keeps_its_contents_and_mode() {
        let dir = dir("hardlink");
        let other = dir.join("other-name");
        fs::write(&other, "precious").unwrap();
        fs::set_permissions(&other, fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.join("rec.wtrec");
        fs::hard_link(&other, &path).unwrap();
        assert!(matches!(
            write(&path, false, "plaintext"),
            Err(PrivateFileError::Exists(_))
        ));
        write(&path, true, "plaintext").unwrap();
        assert_eq!(fs::read_to_string(&other).unwrap(), "precious");
        assert_eq!(fs::metadata(&other).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::read_to_string(&path).unwrap(), "plaintext");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unfinished_forced_file_leaves_the_path_as_it_was() {
        let dir = dir("unfinished");
        let path = dir.join("rec.wtrec");
        fs::write(&path, "old").unwrap();
        let (out, mut file) = PrivateFile::create(&path, true).unwrap();
        file.write_all(b"half").unwrap();
        drop((out, file));
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "the temporary file went"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
