//! Checkpoint files: shards, manifests, the newest complete checkpoint, retention.
//!
//! Layout under the checkpoint directory: one directory per checkpoint,
//! `ckpt-<T, 20 digits>/`, holding one shard per worker of the run that wrote
//! it (`shard-<worker>.bin`) and, written last, `MANIFEST`.
//!
//! * A **shard** is `SHARD_MAGIC`, then the bincode of [`ShardBody`] (format
//!   version, time, the writer's worker index and count, and the encoded state
//!   of every operator the worker registered, by name), then the CRC-32 of
//!   everything before it (4 bytes, little-endian). It is written to a
//!   temporary name, fsynced, and renamed into place.
//! * The **manifest** is one JSON line ([`Manifest`]: format version, time,
//!   worker count, the input's identity, each shard's name, length and CRC-32),
//!   then `crc32 <hex>` of that line. It is written, fsynced and renamed only
//!   after every shard is durable and every sink has committed past `T`, and
//!   the directory is fsynced after: a checkpoint without a valid manifest does
//!   not exist.
//!
//! [`load_newest`] walks the checkpoints from the newest: one whose manifest or
//! a shard is missing, truncated or fails its checksum is reported in one line
//! and the previous one is tried; one of another format version or another
//! input is an error (restoring it would be a silent wrong answer). The state
//! of every shard is returned whatever the number of workers now: operators
//! keep the keys they own ([`dataflows::durable`]).
//!
//! [`retain`] keeps the newest `keep` complete checkpoints and removes older
//! ones, and unfinished ones older than the newest complete one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use dataflows::Time;
use dataflows::durable::Restored;

/// The checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const SHARD_MAGIC: &[u8] = b"EDURTDW-SHARD\n";
const MANIFEST: &str = "MANIFEST";

/// What one worker saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardBody {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The checkpoint's logical time `T`.
    pub time: Time,
    /// The writer's worker index and the run's worker count.
    pub worker: usize,
    /// The run's worker count.
    pub peers: usize,
    /// Every registered state of the worker, by name ([`dataflows::durable::save_all`]).
    pub sections: Vec<(String, Vec<u8>)>,
}

/// A shard as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name within the checkpoint's directory.
    pub file: String,
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-32 of the whole file but its last 4 bytes (which hold it).
    pub crc32: u32,
}

/// What makes a checkpoint complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The checkpoint's logical time `T`.
    pub time: Time,
    /// The writing run's worker count (all processes).
    pub peers: usize,
    /// The identity of the input (what determines logical times), as `key = value` pairs.
    pub input: Vec<(String, String)>,
    /// Every shard.
    pub shards: Vec<ShardEntry>,
}

/// The directory of the checkpoint at `time`.
pub fn checkpoint_dir(root: &Path, time: Time) -> PathBuf {
    root.join(format!("ckpt-{time:020}"))
}

/// The file name of worker `worker`'s shard.
pub fn shard_name(worker: usize) -> String {
    format!("shard-{worker:05}.bin")
}

/// Writes worker `body.worker`'s shard of the checkpoint at `body.time` under `root`
/// durably (temporary file, fsync, rename); returns its length in bytes.
pub fn write_shard(root: &Path, body: &ShardBody) -> anyhow::Result<u64> {
    let dir = checkpoint_dir(root, body.time);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Streamed to the file with its CRC-32 computed on the way: no second copy of the state.
    let mut len = 0;
    write_durably(&dir.join(shard_name(body.worker)), |file| {
        let mut out =
            CrcWriter { inner: std::io::BufWriter::with_capacity(1 << 20, file), crc: Default::default(), len: 0 };
        out.write_all(SHARD_MAGIC)?;
        bincode::serialize_into(&mut out, body)?;
        let CrcWriter { mut inner, crc, len: written } = out;
        inner.write_all(&crc.finalize().to_le_bytes())?;
        inner.flush()?;
        len = written + 4;
        Ok(())
    })?;
    Ok(len)
}

/// A writer that counts what passes through it and computes its CRC-32.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `path` through a temporary file that `write` fills, fsynced, then renamed.
fn write_durably(path: &Path, write: impl FnOnce(&mut File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    write(&mut file).and_then(|_| Ok(file.sync_all()?)).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} into place", tmp.display()))?;
    Ok(())
}

/// Checks the shard file at `path`: its length and CRC-32 as the manifest lists them.
fn shard_entry(path: &Path) -> anyhow::Result<ShardEntry> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (body, crc) = split_crc(&bytes).with_context(|| format!("{} is truncated", path.display()))?;
    if crc32fast::hash(body) != crc {
        bail!("{} fails its checksum", path.display());
    }
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(ShardEntry { file, bytes: bytes.len() as u64, crc32: crc })
}

fn split_crc(bytes: &[u8]) -> Option<(&[u8], u32)> {
    let at = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(at);
    Some((body, u32::from_le_bytes(crc.try_into().ok()?)))
}

/// Completes the checkpoint at `time` under `root`: checks that all `peers` shards are
/// there and whole, then writes the manifest durably. Returns the checkpoint's total bytes.
pub fn write_manifest(root: &Path, time: Time, peers: usize, input: Vec<(String, String)>) -> anyhow::Result<u64> {
    let dir = checkpoint_dir(root, time);
    let shards = (0..peers).map(|w| shard_entry(&dir.join(shard_name(w)))).collect::<anyhow::Result<Vec<_>>>()?;
    let manifest = Manifest { format_version: FORMAT_VERSION, time, peers, input, shards };
    let line = serde_json::to_string(&manifest).context("cannot encode a manifest")?;
    let text = format!("{line}\ncrc32 {:08x}\n", crc32fast::hash(line.as_bytes()));
    write_durably(&dir.join(MANIFEST), |file| Ok(file.write_all(text.as_bytes())?))?;
    File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(manifest.shards.iter().map(|s| s.bytes).sum::<u64>() + text.len() as u64)
}

/// Reads and checks the manifest in `dir`.
fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (line, sum) = text.split_once('\n').with_context(|| format!("{} is truncated", path.display()))?;
    let sum = sum.trim().strip_prefix("crc32 ").and_then(|h| u32::from_str_radix(h, 16).ok());
    if sum != Some(crc32fast::hash(line.as_bytes())) {
        bail!("{} fails its checksum", path.display());
    }
    serde_json::from_str(line).with_context(|| format!("{} does not parse", path.display()))
}

/// Every checkpoint directory under `root`: `(time, path)`, newest first.
fn checkpoints(root: &Path) -> anyhow::Result<Vec<(Time, PathBuf)>> {
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    for entry in fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(time) = name.to_str().and_then(|n| n.strip_prefix("ckpt-")).and_then(|t| t.parse().ok()) {
            found.push((time, entry.path()));
        }
    }
    found.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    Ok(found)
}

/// The newest complete checkpoint under `root` for an input of identity `input`, with
/// every shard's state (module docs); `None` when there is none. `warn` gets one line per
/// checkpoint skipped as damaged.
pub fn load_newest(
    root: &Path,
    input: &[(String, String)],
    mut warn: impl FnMut(String),
) -> anyhow::Result<Option<Arc<Restored>>> {
    for (time, dir) in checkpoints(root)? {
        if !dir.join(MANIFEST).exists() {
            continue; // unfinished: never complete
        }
        match load(&dir, time, input) {
            Ok(restored) => return Ok(Some(Arc::new(restored))),
            Err(Damaged(e)) => {
                warn(format!("checkpoint {} is damaged ({e:#}); trying the previous one", dir.display()))
            }
            Err(Refused(e)) => return Err(e),
        }
    }
    Ok(None)
}

/// Why a checkpoint cannot be loaded.
enum LoadError {
    /// Damaged: an older checkpoint may do.
    Damaged(anyhow::Error),
    /// Of another format or input: an error.
    Refused(anyhow::Error),
}
use LoadError::{Damaged, Refused};

fn load(dir: &Path, time: Time, input: &[(String, String)]) -> Result<Restored, LoadError> {
    let manifest = read_manifest(dir).map_err(Damaged)?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(Refused(anyhow::anyhow!(
            "checkpoint {} has format version {}, and this build reads version {FORMAT_VERSION}: \
             run the build that wrote it, or remove the checkpoint directory to rebuild from the log",
            dir.display(),
            manifest.format_version
        )));
    }
    if manifest.input != input {
        let was: BTreeMap<_, _> = manifest.input.iter().cloned().collect();
        let now: BTreeMap<_, _> = input.iter().cloned().collect();
        let key = was.keys().chain(now.keys()).find(|k| was.get(*k) != now.get(*k)).cloned().unwrap_or_default();
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".to_string());
        return Err(Refused(anyhow::anyhow!(
            "checkpoint {} was taken with {key} = {}, and this run has {}: run with the input it was taken \
             of, or give another --checkpoint-dir",
            dir.display(),
            show(was.get(&key)),
            show(now.get(&key))
        )));
    }
    if manifest.time != time {
        return Err(Damaged(anyhow::anyhow!("its manifest is of time {}", manifest.time)));
    }
    let mut restored = Restored { time, sections: BTreeMap::new() };
    for entry in &manifest.shards {
        let body = read_shard(&dir.join(&entry.file), entry).map_err(Damaged)?;
        if body.version != FORMAT_VERSION || body.time != time {
            return Err(Damaged(anyhow::anyhow!("{} is of another checkpoint", entry.file)));
        }
        for (name, state) in body.sections {
            restored.sections.entry(name).or_default().push(state);
        }
    }
    Ok(restored)
}

fn read_shard(path: &Path, entry: &ShardEntry) -> anyhow::Result<ShardBody> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 != entry.bytes {
        bail!("{} has {} bytes, its manifest says {}", path.display(), bytes.len(), entry.bytes);
    }
    let (body, crc) = split_crc(&bytes).with_context(|| format!("{} is truncated", path.display()))?;
    if crc != entry.crc32 || crc32fast::hash(body) != crc {
        bail!("{} fails its checksum", path.display());
    }
    let encoded = body.strip_prefix(SHARD_MAGIC).with_context(|| format!("{} is no shard", path.display()))?;
    bincode::deserialize(encoded).with_context(|| format!("{} does not decode", path.display()))
}

/// Keeps the newest `keep` complete checkpoints under `root`; removes older ones, and
/// unfinished ones older than the newest complete one.
pub fn retain(root: &Path, keep: usize) -> anyhow::Result<()> {
    let mut complete = 0;
    for (_, dir) in checkpoints(root)? {
        let finished = dir.join(MANIFEST).exists();
        if finished {
            complete += 1;
        }
        if (finished && complete > keep.max(1)) || (!finished && complete > 0) {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Vec<(String, String)> {
        vec![("epoch_records".to_string(), "1000".to_string())]
    }

    fn write(root: &Path, time: Time, peers: usize) {
        for worker in 0..peers {
            let sections = vec![("Fold".to_string(), vec![worker as u8, time as u8])];
            write_shard(root, &ShardBody { version: FORMAT_VERSION, time, worker, peers, sections }).unwrap();
        }
        write_manifest(root, time, peers, input()).unwrap();
    }

    #[test]
    fn the_newest_complete_checkpoint_loads_with_every_shard() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), 5, 2);
        write(root.path(), 9, 2);
        // An unfinished one (no manifest) is not a checkpoint.
        write_shard(root.path(), &ShardBody { version: 1, time: 12, worker: 0, peers: 2, sections: vec![] }).unwrap();
        let restored = load_newest(root.path(), &input(), |w| panic!("{w}")).unwrap().unwrap();
        assert_eq!(restored.time, 9);
        assert_eq!(restored.sections["Fold"], vec![vec![0, 9], vec![1, 9]]);
    }

    #[test]
    fn a_truncated_newest_checkpoint_falls_back_and_another_version_is_refused() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), 5, 1);
        write(root.path(), 9, 1);
        let shard = checkpoint_dir(root.path(), 9).join(shard_name(0));
        let bytes = fs::read(&shard).unwrap();
        fs::write(&shard, &bytes[..bytes.len() - 3]).unwrap();
        let mut warnings = Vec::new();
        let restored = load_newest(root.path(), &input(), |w| warnings.push(w)).unwrap().unwrap();
        assert_eq!(restored.time, 5);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("is damaged") && warnings[0].contains("ckpt-00000000000000000009"),
            "{warnings:?}"
        );

        let manifest = checkpoint_dir(root.path(), 5).join(MANIFEST);
        let text = fs::read_to_string(&manifest).unwrap();
        let line = text.lines().next().unwrap().replace("\"format_version\":1", "\"format_version\":99");
        fs::write(&manifest, format!("{line}\ncrc32 {:08x}\n", crc32fast::hash(line.as_bytes()))).unwrap();
        let err = load_newest(root.path(), &input(), |_| {}).unwrap_err().to_string();
        assert!(err.contains("format version 99") && err.contains("reads version 1"), "{err}");
        let other = vec![("epoch_records".to_string(), "256".to_string())];
        write(root.path(), 20, 1);
        let err = load_newest(root.path(), &other, |_| {}).unwrap_err().to_string();
        assert!(err.contains("epoch_records = 1000, and this run has 256"), "{err}");
    }

    #[test]
    fn retention_keeps_the_newest_complete_checkpoints() {
        let root = tempfile::tempdir().unwrap();
        for time in [1, 2, 3, 4] {
            write(root.path(), time, 1);
        }
        write_shard(root.path(), &ShardBody { version: 1, time: 0, worker: 0, peers: 1, sections: vec![] }).unwrap();
        write_shard(root.path(), &ShardBody { version: 1, time: 7, worker: 0, peers: 1, sections: vec![] }).unwrap();
        retain(root.path(), 2).unwrap();
        let left: Vec<Time> = checkpoints(root.path()).unwrap().into_iter().map(|(t, _)| t).collect();
        assert_eq!(left, vec![7, 4, 3], "the unfinished newest may still complete");
    }
}
