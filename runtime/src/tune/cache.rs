//! The tuning cache: the configurations `weft tune` chose, per adapter and
//! driver, in a TOML file.
//!
//! ```toml
//! format = 2
//!
//! [[adapter]]
//! name = "llvmpipe (LLVM 15.0.6, 256 bits)"
//! driver = "llvmpipe"
//! driver_info = "Mesa 22.3.6 (LLVM 15.0.6)"
//! backend = "vulkan"
//! weft_version = "0.1.0"
//!
//! [[adapter.attention]]  # one per head dimension tuned (`weft tune --head-dim`)
//! problem = "causal B=1 H=4 N=512 D=64"
//! head_dim = 64
//! forward = { block_q = 32, block_k = 32, rows_per_invocation = 2, checks = "unchecked" }
//! backward = { block_q = 32, block_k = 32, rows_per_invocation = 2, checks = "checked" }
//!
//! [adapter.matmul.small]  # one per shape class measured: narrow_n, narrow_m, small, large
//! kernel = "subgroup"     # or "registers"
//! rows = 4
//! cols = 64
//! workgroup = 8
//! ```
//!
//! An entry applies only when the adapter's name, driver, driver info and
//! backend, and the weft version match, so a driver update or a new weft
//! means tuning again. The file lives at `$WEFT_TUNING_CACHE`, else
//! `$XDG_CACHE_HOME/weft/tuning.toml`, else `$HOME/.cache/weft/tuning.toml`,
//! and is replaced atomically.
//!
//! Format 1 files (one attention result per adapter, and one optional
//! `[adapter.matmul]` measured on a square problem) still load: the attention
//! result is the entry for its head dimension, and the matmul shape the
//! choice of the square classes (`small`, `large`), since no narrow problem
//! was measured. The next `weft tune` writes the file as format 2.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weft_compiler::{AttentionKernel, MatmulClass, MatmulConfig, MatmulKernel};

use crate::executor::ShaderChecks;
use crate::gpu::AdapterIdentity;
use crate::io::write_atomically;

use super::config::{ChoiceSource, KernelChoice, KernelConfig};
use super::error::CacheError;

/// The version of the file layout this weft writes.
pub const CACHE_FORMAT: i64 = 2;
/// The older layout it still reads (see the module docs).
pub const CACHE_FORMAT_V1: i64 = 1;
/// The environment variable that overrides the cache file's path.
pub const CACHE_ENV: &str = "WEFT_TUNING_CACHE";

/// What an entry must match to apply: the adapter, its driver and the weft version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    pub adapter: AdapterIdentity,
    pub weft_version: String,
}

impl CacheKey {
    /// The key of `adapter` for this build of weft.
    pub fn new(adapter: AdapterIdentity) -> CacheKey {
        CacheKey { adapter, weft_version: env!("CARGO_PKG_VERSION").to_string() }
    }
}

/// The fused attention configurations tuned at one head dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionEntry {
    /// What was timed, e.g. `causal B=1 H=4 N=512 D=64`.
    pub problem: String,
    /// The head dimension the rows per invocation were chosen at.
    pub head_dim: usize,
    pub forward: KernelConfig,
    pub backward: KernelConfig,
}

/// One adapter's tuning results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: CacheKey,
    /// One per head dimension tuned, at most one each, the latest last.
    pub attention: Vec<AttentionEntry>,
    /// The fastest matmul kernel shape of each shape class measured; the
    /// other classes keep the device's default.
    pub matmul: BTreeMap<MatmulClass, MatmulConfig>,
}

impl CacheEntry {
    /// The attention result to use at `head_dim`: the one tuned at it, else
    /// the latest (its tiles apply, its rows per invocation fall back to the
    /// automatic choice, see [`KernelChoice::config`]).
    pub fn attention_at(&self, head_dim: usize) -> Option<&AttentionEntry> {
        self.attention.iter().find(|a| a.head_dim == head_dim).or(self.attention.last())
    }

    /// Adds `attention`, replacing the result at its head dimension.
    pub fn add_attention(&mut self, attention: AttentionEntry) {
        self.attention.retain(|a| a.head_dim != attention.head_dim);
        self.attention.push(attention);
    }

    /// The choice this entry makes at `head_dim`, read from the file at `path`.
    pub fn choice(&self, path: &Path, head_dim: usize) -> KernelChoice {
        match self.attention_at(head_dim) {
            Some(a) => KernelChoice {
                forward: a.forward,
                backward: a.backward,
                head_dim: Some(a.head_dim),
                source: ChoiceSource::Cached { path: path.to_path_buf(), problem: a.problem.clone() },
            },
            None => KernelChoice::default(),
        }
    }
}

/// What [`TuningCache::store`] did besides writing the entry.
#[derive(Debug)]
pub struct Stored {
    /// An entry with the same key was replaced (rather than added).
    pub replaced: bool,
    /// The old file could not be used (why), and was kept under this name
    /// rather than overwritten.
    pub moved_aside: Option<(PathBuf, CacheError)>,
}

/// The tuning cache file at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuningCache {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct RawFile {
    format: i64,
    #[serde(default, rename = "adapter")]
    adapters: Vec<RawEntry>,
}

#[derive(Serialize, Deserialize)]
struct RawEntry {
    name: String,
    driver: String,
    driver_info: String,
    backend: String,
    weft_version: String,
    #[serde(default)]
    attention: Vec<RawAttention>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    matmul: BTreeMap<String, RawMatmul>,
}

#[derive(Serialize, Deserialize)]
struct RawAttention {
    problem: String,
    head_dim: usize,
    forward: RawConfig,
    backward: RawConfig,
}

/// A format 1 file: one attention result and one matmul shape per adapter.
#[derive(Deserialize)]
struct RawFileV1 {
    #[serde(default, rename = "adapter")]
    adapters: Vec<RawEntryV1>,
}

#[derive(Deserialize)]
struct RawEntryV1 {
    name: String,
    driver: String,
    driver_info: String,
    backend: String,
    weft_version: String,
    problem: String,
    head_dim: usize,
    forward: RawConfig,
    backward: RawConfig,
    #[serde(default)]
    matmul: Option<RawMatmul>,
}

impl RawEntryV1 {
    /// The format 2 entry it means (see the module docs).
    fn upgrade(self) -> RawEntry {
        let attention = vec![RawAttention {
            problem: self.problem,
            head_dim: self.head_dim,
            forward: self.forward,
            backward: self.backward,
        }];
        let matmul = self
            .matmul
            .map(|m| {
                [MatmulClass::Small, MatmulClass::Large]
                    .into_iter()
                    .map(|c| (c.name().to_string(), RawMatmul { kernel: m.kernel.clone(), ..m }))
                    .collect()
            })
            .unwrap_or_default();
        RawEntry {
            name: self.name,
            driver: self.driver,
            driver_info: self.driver_info,
            backend: self.backend,
            weft_version: self.weft_version,
            attention,
            matmul,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct RawMatmul {
    kernel: String,
    rows: u32,
    cols: u32,
    workgroup: u32,
}

impl RawMatmul {
    fn from_config(c: &MatmulConfig) -> RawMatmul {
        let kernel = match c.kernel {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Subgroup => "subgroup",
        };
        RawMatmul { kernel: kernel.to_string(), rows: c.rows, cols: c.cols, workgroup: c.workgroup }
    }

    fn to_config(&self) -> Result<MatmulConfig, String> {
        let kernel = match self.kernel.as_str() {
            "registers" => MatmulKernel::Registers,
            "subgroup" => MatmulKernel::Subgroup,
            other => return Err(format!("kernel = \"{other}\" is neither \"registers\" nor \"subgroup\"")),
        };
        let config = MatmulConfig { kernel, rows: self.rows, cols: self.cols, workgroup: self.workgroup };
        match config.problem() {
            Some(problem) => Err(problem),
            None => Ok(config),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RawConfig {
    block_q: usize,
    block_k: usize,
    rows_per_invocation: usize,
    checks: String,
    /// `lanes` or `subgroup`; entries written before the subgroup kernels
    /// existed have none and mean `lanes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
}

impl RawConfig {
    fn from_config(c: &KernelConfig) -> RawConfig {
        RawConfig {
            block_q: c.block_q,
            block_k: c.block_k,
            rows_per_invocation: c.rows_per_invocation,
            checks: c.checks.as_str().to_string(),
            kernel: Some(c.kernel.name().to_string()),
        }
    }

    fn to_config(&self) -> Result<KernelConfig, String> {
        let checks = ShaderChecks::parse(&self.checks).ok_or_else(|| {
            format!("checks = \"{}\" is neither \"checked\" nor \"unchecked\"", self.checks)
        })?;
        let kernel = match &self.kernel {
            None => AttentionKernel::Lanes,
            Some(name) => name.parse()?,
        };
        let config = KernelConfig {
            block_q: self.block_q,
            block_k: self.block_k,
            rows_per_invocation: self.rows_per_invocation,
            checks,
            kernel,
        };
        match config.invalid_reason() {
            Some(problem) => Err(problem),
            None => Ok(config),
        }
    }
}

impl RawEntry {
    fn from_entry(e: &CacheEntry) -> RawEntry {
        let a = &e.key.adapter;
        RawEntry {
            name: a.name.clone(),
            driver: a.driver.clone(),
            driver_info: a.driver_info.clone(),
            backend: a.backend.clone(),
            weft_version: e.key.weft_version.clone(),
            attention: e
                .attention
                .iter()
                .map(|a| RawAttention {
                    problem: a.problem.clone(),
                    head_dim: a.head_dim,
                    forward: RawConfig::from_config(&a.forward),
                    backward: RawConfig::from_config(&a.backward),
                })
                .collect(),
            matmul: e.matmul.iter().map(|(c, m)| (c.name().to_string(), RawMatmul::from_config(m))).collect(),
        }
    }

    fn to_entry(&self) -> Result<CacheEntry, String> {
        let context = |which: &str, message: String| format!("adapter `{}`, {which}: {message}", self.name);
        let mut attention = Vec::new();
        for a in &self.attention {
            let at = |pass: &str| format!("attention at head_dim {}, {pass}", a.head_dim);
            let forward = a.forward.to_config().map_err(|m| context(&at("forward"), m))?;
            let backward = a.backward.to_config().map_err(|m| context(&at("backward"), m))?;
            attention.push(AttentionEntry {
                problem: a.problem.clone(),
                head_dim: a.head_dim,
                forward,
                backward,
            });
        }
        let mut matmul = BTreeMap::new();
        for (name, raw) in &self.matmul {
            let class = MatmulClass::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = MatmulClass::ALL.iter().map(|c| c.name()).collect();
                context("matmul", format!("no shape class `{name}` (the classes: {})", names.join(", ")))
            })?;
            let config = raw.to_config().map_err(|m| context(&format!("matmul.{name}"), m))?;
            matmul.insert(class, config);
        }
        let mut entry = CacheEntry {
            key: CacheKey {
                adapter: AdapterIdentity {
                    name: self.name.clone(),
                    driver: self.driver.clone(),
                    driver_info: self.driver_info.clone(),
                    backend: self.backend.clone(),
                },
                weft_version: self.weft_version.clone(),
            },
            attention: Vec::new(),
            matmul,
        };
        for a in attention {
            entry.add_attention(a);
        }
        Ok(entry)
    }
}

/// The cache path from the environment `var`: `WEFT_TUNING_CACHE`, else
/// `$XDG_CACHE_HOME/weft/tuning.toml` (an absolute `XDG_CACHE_HOME` only, as
/// the XDG spec says), else `$HOME/.cache/weft/tuning.toml`.
pub fn cache_path_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = set(CACHE_ENV) {
        return Some(path);
    }
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(dir.join("weft").join("tuning.toml"));
    }
    set("HOME").map(|home| home.join(".cache").join("weft").join("tuning.toml"))
}

impl TuningCache {
    /// The cache file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> TuningCache {
        TuningCache { path: path.into() }
    }

    /// The cache file the environment names (see [`cache_path_from`]).
    pub fn from_env() -> Result<TuningCache, CacheError> {
        cache_path_from(|name| std::env::var_os(name)).map(TuningCache::at).ok_or(CacheError::NoPath)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry of the file; a missing file has none.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            // No file there (nor any place for one, which `prepare_store` reports).
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                return Ok(Vec::new());
            }
            Err(source) => return Err(CacheError::Read { path: self.path.clone(), source }),
        };
        let corrupt = |message: String| CacheError::Corrupt { path: self.path.clone(), message };
        let text = String::from_utf8(bytes)
            .map_err(|e| corrupt(format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))?;
        let parse_error = |e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            corrupt(match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            })
        };
        // The format first, so that a file from another weft is reported as such.
        let table: toml::Table = toml::from_str(&text).map_err(parse_error)?;
        match table.get("format").map(toml::Value::as_integer) {
            None => return Err(corrupt("no `format` key".into())),
            Some(None) => return Err(corrupt("`format` is not an integer".into())),
            Some(Some(CACHE_FORMAT)) => {}
            Some(Some(CACHE_FORMAT_V1)) => {
                let old: RawFileV1 = toml::from_str(&text).map_err(parse_error)?;
                let adapters = old.adapters.into_iter().map(RawEntryV1::upgrade);
                return adapters.map(|e| e.to_entry().map_err(corrupt)).collect();
            }
            Some(Some(found)) => {
                return Err(CacheError::Format { path: self.path.clone(), found, expected: CACHE_FORMAT });
            }
        }
        let raw: RawFile = toml::from_str(&text).map_err(parse_error)?;
        raw.adapters.iter().map(|e| e.to_entry().map_err(corrupt)).collect()
    }

    /// The entry for `key`, if the file has one.
    pub fn lookup(&self, key: &CacheKey) -> Result<Option<CacheEntry>, CacheError> {
        Ok(self.entries()?.into_iter().find(|e| &e.key == key))
    }

    /// The fused attention configurations to run with at `head_dim`: the
    /// entry for `key` (see [`CacheEntry::choice`]), or the defaults. A file
    /// that cannot be read gives the defaults and the reason, for the caller
    /// to show as a warning.
    pub fn choice(&self, key: &CacheKey, head_dim: usize) -> (KernelChoice, Option<CacheError>) {
        match self.lookup(key) {
            Ok(Some(entry)) => (entry.choice(&self.path, head_dim), None),
            Ok(None) => (KernelChoice::default(), None),
            Err(e) => (KernelChoice::default(), Some(e)),
        }
    }

    /// Makes sure a later [`TuningCache::store`] can save, before minutes of
    /// measuring: a file that cannot be parsed (not UTF-8, not TOML, another
    /// format) is moved aside to `<name>.bad-<unix seconds>` now, and the
    /// returned pair says where and why; a file that cannot be read, a path
    /// that is not a regular file, or a directory where no file can be
    /// created is an error.
    pub fn prepare_store(&self) -> Result<Option<(PathBuf, CacheError)>, CacheError> {
        let write_error = |source| CacheError::Write { path: self.path.clone(), source };
        if let Ok(meta) = std::fs::metadata(&self.path)
            && !meta.is_file()
        {
            let what = if meta.is_dir() { "it is a directory" } else { "it is not a regular file" };
            return Err(write_error(std::io::Error::other(what)));
        }
        let moved_aside = match self.entries() {
            Ok(_) => None,
            Err(e @ (CacheError::Corrupt { .. } | CacheError::Format { .. })) => {
                Some((self.move_aside()?, e))
            }
            Err(e) => return Err(e),
        };
        // Create and remove a file where the cache's temporary will go.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // `create_dir_all` would only say "File exists" for a file on the way.
            if let Some(file) = dir.ancestors().find(|a| a.exists()).filter(|a| !a.is_dir()) {
                let message = format!("{} is not a directory", file.display());
                return Err(write_error(std::io::Error::new(std::io::ErrorKind::NotADirectory, message)));
            }
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let probe = self.probe_path();
        std::fs::File::create(&probe).map_err(write_error)?;
        let _ = std::fs::remove_file(&probe);
        Ok(moved_aside)
    }

    /// `.weft-tmp-<pid>-<name>`, beside the file: where its atomic write puts the new contents.
    fn probe_path(&self) -> PathBuf {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.path.with_file_name(format!("{}{}-{name}", crate::io::TEMP_PREFIX, std::process::id()))
    }

    /// Renames the file to `<name>.bad-<unix seconds>` and says where.
    fn move_aside(&self) -> Result<PathBuf, CacheError> {
        let aside = self.aside_path();
        std::fs::rename(&self.path, &aside)
            .map_err(|source| CacheError::Write { path: aside.clone(), source })?;
        Ok(aside)
    }

    /// Adds `entry`, replacing the entry with the same key, and writes the file
    /// atomically (creating its directory). Entries of other adapters are
    /// kept. A file that cannot be parsed is not overwritten: it is renamed to
    /// `<name>.bad-<unix seconds>` first, and [`Stored::moved_aside`] says so.
    pub fn store(&self, entry: CacheEntry) -> Result<Stored, CacheError> {
        let (mut entries, moved_aside) = match self.entries() {
            Ok(entries) => (entries, None),
            Err(e @ (CacheError::Corrupt { .. } | CacheError::Format { .. })) => {
                (Vec::new(), Some((self.move_aside()?, e)))
            }
            Err(e) => return Err(e),
        };
        let replaced = match entries.iter_mut().find(|e| e.key == entry.key) {
            Some(old) => {
                *old = entry;
                true
            }
            None => {
                entries.push(entry);
                false
            }
        };
        let raw =
            RawFile { format: CACHE_FORMAT, adapters: entries.iter().map(RawEntry::from_entry).collect() };
        let text = toml::to_string(&raw)
            .map_err(|e| CacheError::Serialize { path: self.path.clone(), message: e.to_string() })?;
        let write_error = |source| CacheError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        write_atomically(&self.path, |w| {
            w.write_all(
                b"# weft's kernel tuning cache, written by `weft tune`: the fastest fused attention\n\
                  # configurations (per head dimension) and matmul kernel shapes (per shape class)\n\
                  # measured per adapter and driver.\n\
                  # Safe to delete.\n",
            )?;
            w.write_all(text.as_bytes())
        })
        .map_err(write_error)?;
        Ok(Stored { replaced, moved_aside })
    }

    /// `<name>.bad-<unix seconds>`, next to the file, not yet taken.
    fn aside_path(&self) -> PathBuf {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut candidate = self.path.with_file_name(format!("{name}.bad-{secs}"));
        let mut n = 1;
        while candidate.exists() {
            candidate = self.path.with_file_name(format!("{name}.bad-{secs}-{n}"));
            n += 1;
        }
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(
            cache_path_from(env(&[(CACHE_ENV, "/t/c.toml"), ("HOME", "/h")])),
            Some(PathBuf::from("/t/c.toml"))
        );
        assert_eq!(
            cache_path_from(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/weft/tuning.toml"))
        );
        // A relative XDG_CACHE_HOME is ignored, as the XDG spec says; empty values count as unset.
        assert_eq!(
            cache_path_from(env(&[(CACHE_ENV, ""), ("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/weft/tuning.toml"))
        );
        assert_eq!(cache_path_from(env(&[])), None);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_that_is_not_utf8_is_moved_aside_before_tuning() {
        let dir = scratch("utf8");
        let cache = TuningCache::at(dir.join("tuning.toml"));
        std::fs::write(cache.path(), b"format = 2\n\xff\xfe").unwrap();
        let err = cache.entries().unwrap_err();
        assert!(err.to_string().ends_with("is not valid: not UTF-8 text (byte 11)"), "{err}");
        let (aside, why) = cache.prepare_store().unwrap().expect("moved aside");
        assert!(matches!(why, CacheError::Corrupt { .. }));
        assert_eq!(std::fs::read(&aside).unwrap(), b"format = 2\n\xff\xfe");
        assert!(!cache.path().exists());
        assert!(cache.prepare_store().unwrap().is_none(), "nothing left to repair");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the file kept aside");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_place_no_file_can_be_written_is_an_error_up_front() {
        let dir = scratch("unwritable");
        std::fs::write(dir.join("a-file"), b"").unwrap();
        let under_a_file = TuningCache::at(dir.join("a-file/tuning.toml"));
        assert!(matches!(under_a_file.prepare_store(), Err(CacheError::Write { .. })));
        let a_directory = TuningCache::at(dir.clone());
        let err = a_directory.prepare_store().unwrap_err();
        assert!(err.to_string().ends_with("it is a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
