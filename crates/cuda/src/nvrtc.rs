//! NVRTC: finding the library, compiling a kernel module for a GPU architecture (PTX, and CUBIN
//! for a real architecture), and caching the result in memory and on disk.
//!
//! cudarc opens `libnvrtc` by name at first use. Where it is not on the loader's path (a pip wheel
//! such as `nvidia-cuda-nvrtc`, a toolkit outside `LD_LIBRARY_PATH`), [`load_nvrtc`] opens it by
//! full path first; the dynamic loader then hands cudarc the same library by its soname.
//!
//! The disk cache lives in `$REKINDLE_CACHE_DIR`, else `$XDG_CACHE_HOME/rekindle/ptx`, else
//! `~/.cache/rekindle/ptx`. A file is named by a hash of the full source, the architecture and
//! the NVRTC version, so an edited kernel or a new NVRTC is compiled afresh; files are written to
//! a temporary name and renamed, so a crash never leaves a half-written PTX behind.

use crate::kernels::Module;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NvrtcError {
    #[error("libnvrtc not found: {0}")]
    NotFound(String),
    #[error("NVRTC could not compile kernels/{module}.cu for {arch}:\n{log}")]
    Compile { module: String, arch: String, log: String },
}

/// Where pip puts NVRTC: `nvidia/cu13/lib` (CUDA 13 wheels) and `nvidia/cuda_nvrtc/lib` (CUDA 12).
const WHEEL_DIRS: [&str; 2] = ["nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"];

/// Directories that may hold a pip-installed NVRTC: the site-packages of the active virtual
/// environment, of `/opt/rekindle-nvrtc` (what `.ci/run` creates), of the user and of the system.
fn wheel_candidates() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(venv).join("lib"));
    }
    prefixes.push(PathBuf::from("/opt/rekindle-nvrtc/lib"));
    if let Ok(home) = std::env::var("HOME") {
        prefixes.push(PathBuf::from(home).join(".local/lib"));
    }
    prefixes.extend(["/usr/local/lib", "/usr/lib"].map(PathBuf::from));
    let mut dirs = Vec::new();
    for prefix in prefixes {
        let Ok(entries) = std::fs::read_dir(&prefix) else { continue };
        for python in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python3")) {
            for site in ["site-packages", "dist-packages"] {
                dirs.extend(WHEEL_DIRS.iter().map(|w| python.path().join(site).join(w)));
            }
        }
    }
    dirs
}

/// The NVRTC library file in `dir`, if any (`libnvrtc.so.<major>`, not the builtins).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libnvrtc.so")))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Makes libnvrtc loadable, once per process; returns the file it opened, or `None` when cudarc
/// finds it by name on its own.
pub fn load_nvrtc() -> Result<Option<PathBuf>, NvrtcError> {
    static LOADED: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    LOADED.get_or_init(find_and_open).clone().map_err(NvrtcError::NotFound)
}

fn find_and_open() -> Result<Option<PathBuf>, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(given) = std::env::var("REKINDLE_NVRTC") {
        let given = PathBuf::from(given);
        candidates.push(if given.is_dir() { library_in(&given).unwrap_or(given) } else { given });
    } else {
        // SAFETY: only opens and closes the library by name.
        if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Ok(None);
        }
        for var in ["CUDA_PATH", "CUDA_HOME"] {
            if let Ok(root) = std::env::var(var) {
                candidates.extend(library_in(&Path::new(&root).join("lib64")));
            }
        }
        candidates.extend(library_in(Path::new("/usr/local/cuda/lib64")));
        candidates.extend(wheel_candidates().iter().filter_map(|d| library_in(d)));
    }
    for path in &candidates {
        // SAFETY: opening NVRTC runs no initialisers with preconditions; the handle is kept for
        // the life of the process so cudarc's later open by soname returns this library.
        if let Ok(lib) = unsafe { libloading::Library::new(path) } {
            std::mem::forget(lib);
            return Ok(Some(path.clone()));
        }
    }
    Err(format!(
        "searched the loader path, $CUDA_PATH, $CUDA_HOME, /usr/local/cuda and pip wheels{}; install a CUDA toolkit, or \
         `python3 -m venv /opt/rekindle-nvrtc && /opt/rekindle-nvrtc/bin/pip install nvidia-cuda-nvrtc`, or set REKINDLE_NVRTC to the library file",
        if candidates.is_empty() { String::new() } else { format!(" (tried {})", candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")) }
    ))
}

/// The NVRTC version as (major, minor).
pub fn version() -> Result<(i32, i32), NvrtcError> {
    load_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: nvrtcVersion writes two ints through the pointers it is given.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| NvrtcError::NotFound(format!("nvrtcVersion failed: {e:?}")))?;
    Ok((major, minor))
}

fn cache_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("REKINDLE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var("XDG_CACHE_HOME").map(PathBuf::from).or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache"))).ok()?;
    Some(base.join("rekindle/ptx"))
}

/// The cache key: a hash of everything the compiled code depends on. (`DefaultHasher` may change
/// between Rust releases; then the cache only misses once.)
fn cache_key(source: &str, arch: &str, nvrtc: (i32, i32)) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (source, arch, nvrtc).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A kernel module as NVRTC compiled it: its PTX, and, compiled for a real architecture
/// (`sm_90`), the CUBIN (machine code) that NVRTC's ptxas made of it.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub ptx: String,
    pub cubin: Option<Vec<u8>>,
}

/// `module` compiled for `arch`: a virtual architecture (`compute_90`) gives PTX only, a real one
/// (`sm_90`) PTX and CUBIN. From the in-memory cache, the disk cache, or NVRTC.
pub fn compiled(module: &Module, arch: &str) -> Result<Compiled, NvrtcError> {
    static MEMORY: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let source = module.full_source();
    let key = cache_key(&source, arch, version()?);
    let memory = MEMORY.get_or_init(Default::default);
    if let Some(code) = memory.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(code.clone());
    }
    let file = cache_dir().map(|d| d.join(format!("{}-{arch}-{key}.ptx", module.name)));
    let cached = file.as_ref().and_then(|f| {
        let ptx = std::fs::read_to_string(f).ok()?;
        let cubin = if arch.starts_with("sm_") { Some(std::fs::read(f.with_extension("cubin")).ok()?) } else { None };
        Some(Compiled { ptx, cubin })
    });
    let code = match cached {
        Some(code) => code,
        None => {
            let code = compile(module, &source, arch)?;
            if let Some(f) = &file {
                // The CUBIN first: a PTX file on disk promises its CUBIN is there too.
                if let Some(cubin) = &code.cubin {
                    store(&f.with_extension("cubin"), cubin);
                }
                store(f, code.ptx.as_bytes());
            }
            code
        }
    };
    memory.lock().unwrap_or_else(|e| e.into_inner()).insert(key, code.clone());
    Ok(code)
}

/// Compiles without any cache: what the compile check in the tests runs.
pub fn compile(module: &Module, source: &str, arch: &str) -> Result<Compiled, NvrtcError> {
    use cudarc::nvrtc::{result, sys};
    load_nvrtc()?;
    // Exact division, square root and denormals, as the CPU reference computes them.
    let options = [format!("--gpu-architecture={arch}"), "--ftz=false".into(), "--prec-div=true".into(), "--prec-sqrt=true".into(), "--std=c++17".into()];
    let failed = |log: String| NvrtcError::Compile { module: module.name.into(), arch: arch.into(), log };
    let source_c = std::ffi::CString::new(source).map_err(|_| failed("the source contains a NUL byte".into()))?;
    let name = std::ffi::CString::new(format!("{}.cu", module.name)).expect("module names have no NUL");
    let program = result::create_program(&source_c, Some(&name)).map_err(|e| failed(format!("{e:?}")))?;
    // SAFETY: `program` is a live NVRTC program until destroyed below; every buffer handed to
    // NVRTC is sized by the matching size query.
    let code = unsafe {
        let code = match result::compile_program(program, &options) {
            Err(e) => {
                let log = result::get_program_log(program).map(|l| std::ffi::CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned()).unwrap_or_default();
                Err(failed(format!("{e:?}\n{log}")))
            }
            Ok(()) => result::get_ptx(program).map_err(|e| failed(format!("reading the PTX: {e:?}"))).and_then(|ptx| {
                let ptx = std::ffi::CStr::from_ptr(ptx.as_ptr()).to_string_lossy().into_owned();
                let cubin = if arch.starts_with("sm_") {
                    let mut size = 0usize;
                    sys::nvrtcGetCUBINSize(program, &mut size).result().map_err(|e| failed(format!("reading the CUBIN's size: {e:?}")))?;
                    let mut cubin = vec![0u8; size];
                    sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()).result().map_err(|e| failed(format!("reading the CUBIN: {e:?}")))?;
                    Some(cubin)
                } else {
                    None
                };
                Ok(Compiled { ptx, cubin })
            }),
        };
        let _ = result::destroy_program(program);
        code
    }?;
    Ok(code)
}

/// Writes `bytes` to `file` atomically; a cache that cannot be written is only slower, so errors
/// are ignored.
fn store(file: &Path, bytes: &[u8]) {
    let Some(dir) = file.parent() else { return };
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&tmp, bytes)).and_then(|_| std::fs::rename(&tmp, file));
}
