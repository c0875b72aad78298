//! The Luau VM a function runs in, and the limits that keep a hostile or
//! buggy script from hurting the server.
//!
//! `Lua::new()` is not a sandbox: the VM is built from selected libraries
//! only, the escape hatches Luau still has are removed, and `sandbox(true)`
//! makes every library table read-only. The deadline is enforced by the Luau
//! interrupt, which fires on every loop back-edge and call, so it must cost no
//! more than comparing two atomics: a ticker thread advances a coarse clock
//! while any VM is armed, and the interrupt compares it with the VM's
//! deadline. The deadline stays passed until the next invocation re-arms it,
//! so a `pcall` that swallows the first timeout error gets another one at the
//! very next back-edge.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use mlua::{ChunkMode, Lua, LuaOptions, LuaSerdeExt, StdLib, Table, Value, VmState};

/// The stdlib source, compiled once per process and loaded as bytecode
/// into every VM.
const STDLIB_SOURCE: &str = include_str!("../../lua-stdlib/qyl.lua");

/// Globals Luau provides that a function must not have: code loading, the
/// function environments of other code, the collector, and stdout.
const REMOVED_GLOBALS: &[&str] = &[
    "require",
    "loadstring",
    "load",
    "dofile",
    "loadfile",
    "getfenv",
    "setfenv",
    "collectgarbage",
    "print",
];

/// The message of the error the interrupt raises (what a `pcall` that
/// catches it sees); the sandbox itself recognises a timeout by its flag.
const DEADLINE_MESSAGE: &str = "qyl: deadline exceeded";

/// How often the ticker advances the coarse clock while any VM is armed.
const TICK: Duration = Duration::from_millis(1);

/// Milliseconds since [`clock_start`], advanced by the ticker.
static EPOCH_MS: AtomicU64 = AtomicU64::new(0);
/// VMs with a deadline armed; the ticker sleeps when there are none.
static ARMED: AtomicUsize = AtomicUsize::new(0);
static TICKER: OnceLock<Option<Thread>> = OnceLock::new();

fn clock_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn precise_ms() -> u64 {
    u64::try_from(clock_start().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The ticker thread, started on first use; `None` if it could not be
/// spawned, in which case no sandbox is built (deadlines would never fire).
fn ticker() -> Option<&'static Thread> {
    TICKER
        .get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("qyl-lua-ticker".into())
                .spawn(|| loop {
                    if ARMED.load(Ordering::Acquire) == 0 {
                        std::thread::park_timeout(Duration::from_secs(1));
                    } else {
                        std::thread::sleep(TICK);
                    }
                    EPOCH_MS.fetch_max(precise_ms(), Ordering::Release);
                });
            spawned.ok().map(|handle| handle.thread().clone())
        })
        .as_ref()
}

/// Resource limits of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Heap the VM may use, in bytes, on top of what the stdlib takes.
    pub memory_bytes: usize,
}

impl Limits {
    pub fn with_memory_mb(mb: u32) -> Self {
        Limits {
            memory_bytes: (mb as usize).saturating_mul(1024 * 1024),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_memory_mb(16)
    }
}

/// Why a sandboxed call failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The deadline passed; the VM should be rebuilt.
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The VM's memory limit was reached; the VM should be rebuilt.
    #[error("memory limit of {} MiB reached", .0 / (1024 * 1024))]
    Memory(usize),
    /// The script raised an error (or misused an API).
    #[error("{0}")]
    Script(String),
    /// The VM could not be built. (A string: mlua's errors are not `Send`,
    /// and this one travels to whoever reports it.)
    #[error("building the Luau sandbox: {0}")]
    Setup(String),
}

/// The sentinel table of `qyl.exists`, remembered by address so that the
/// trigger compiler can recognise it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExistsSentinel(pub(crate) usize);

/// One Luau VM with qyl's stdlib, a memory limit and an interrupt-driven
/// deadline.
pub struct Sandbox {
    lua: Lua,
    /// Coarse-clock milliseconds after which the interrupt fails; `u64::MAX`
    /// while no call is running.
    deadline: Arc<AtomicU64>,
    /// Set by the interrupt when it killed a call.
    fired: Arc<AtomicBool>,
    limits: Limits,
    /// The VM hit a limit: its state may be half-updated, so the executor
    /// replaces it rather than reusing it.
    poisoned: bool,
}

impl Sandbox {
    pub fn new(limits: Limits) -> Result<Self, SandboxError> {
        Self::with_cancel(limits, Arc::new(AtomicBool::new(false)))
    }

    /// A sandbox whose running call is also stopped (as by its deadline)
    /// once `cancel` is set: the executor sets it at shutdown, so no
    /// handler holds the server up until its own deadline.
    pub fn with_cancel(limits: Limits, cancel: Arc<AtomicBool>) -> Result<Self, SandboxError> {
        if ticker().is_none() {
            return Err(SandboxError::Setup(
                "cannot start the deadline ticker thread".into(),
            ));
        }
        let libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::BUFFER;
        let lua = Lua::new_with(libs | StdLib::OS, LuaOptions::default()).map_err(setup_error)?;
        restrict_globals(&lua).map_err(setup_error)?;
        install_stdlib(&lua).map_err(setup_error)?;
        // After the stdlib is in: sandbox() makes the global table and every
        // table directly in it read-only; nested stdlib tables are frozen by
        // install_stdlib itself.
        lua.sandbox(true).map_err(setup_error)?;

        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let fired = Arc::new(AtomicBool::new(false));
        {
            let deadline = deadline.clone();
            let fired = fired.clone();
            lua.set_interrupt(move |_| {
                if EPOCH_MS.load(Ordering::Relaxed) >= deadline.load(Ordering::Relaxed)
                    || cancel.load(Ordering::Relaxed)
                {
                    fired.store(true, Ordering::Relaxed);
                    return Err(mlua::Error::runtime(DEADLINE_MESSAGE));
                }
                Ok(VmState::Continue)
            });
        }
        let baseline = lua.used_memory();
        lua.set_memory_limit(baseline.saturating_add(limits.memory_bytes))
            .map_err(setup_error)?;
        Ok(Sandbox {
            lua,
            deadline,
            fired,
            limits,
            poisoned: false,
        })
    }

    /// The VM, for building values and loading chunks inside [`Sandbox::run`].
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The `qyl.exists` table of this VM, for compiling `where`.
    pub(crate) fn exists_sentinel(&self) -> ExistsSentinel {
        self.lua
            .app_data_ref::<ExistsSentinel>()
            .map_or(ExistsSentinel(0), |s| *s)
    }

    /// True once a call ran out of time or memory.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Runs `f` against the VM with a deadline `timeout` from now. Any Lua
    /// executed by `f` (loading a chunk, calling a function) is interrupted
    /// when the deadline passes.
    pub fn run<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&Lua) -> mlua::Result<R>,
    ) -> Result<R, SandboxError> {
        let now = precise_ms();
        // The coarse clock may be up to a tick old, or idle since the last
        // run: bring it up to date so the deadline is measured from now.
        EPOCH_MS.fetch_max(now, Ordering::Release);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.fired.store(false, Ordering::Relaxed);
        self.deadline
            .store(now.saturating_add(timeout_ms), Ordering::Release);
        let armed = Armed::new(&self.deadline);
        let result = f(&self.lua);
        drop(armed);

        // A call the interrupt fired in has timed out even if a `pcall`
        // caught it and the script then returned: its result came late.
        if self.fired.load(Ordering::Relaxed) {
            self.poisoned = true;
            return Err(SandboxError::Timeout(timeout));
        }
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                if is_memory_error(&e) {
                    self.poisoned = true;
                    Err(SandboxError::Memory(self.limits.memory_bytes))
                } else {
                    Err(SandboxError::Script(script_message(&e)))
                }
            }
        }
    }
}

fn setup_error(e: mlua::Error) -> SandboxError {
    SandboxError::Setup(e.to_string())
}

/// Counts a VM as armed (so the ticker runs) until dropped, even if the
/// call panics; then clears its deadline.
struct Armed<'a>(&'a AtomicU64);

impl<'a> Armed<'a> {
    fn new(deadline: &'a AtomicU64) -> Self {
        if ARMED.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Some(t) = ticker() {
                t.unpark();
            }
        }
        Armed(deadline)
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        ARMED.fetch_sub(1, Ordering::AcqRel);
        self.0.store(u64::MAX, Ordering::Release);
    }
}

/// Keeps `os.clock/time/date` only and removes code loading and friends.
fn restrict_globals(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["clock", "time", "date"] {
        safe_os.set(name, os.get::<Value>(name)?)?;
    }
    globals.set("os", safe_os)?;
    for name in REMOVED_GLOBALS {
        globals.set(*name, Value::Nil)?;
    }
    Ok(())
}

fn stdlib_bytecode() -> &'static Result<Vec<u8>, String> {
    static BYTECODE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BYTECODE.get_or_init(|| {
        mlua::Compiler::new()
            .compile(STDLIB_SOURCE)
            .map_err(|e| e.to_string())
    })
}

/// Loads `lua-stdlib/qyl.lua` as the global `qyl`, handing it the native
/// helpers it is built on.
fn install_stdlib(lua: &Lua) -> mlua::Result<()> {
    let bytecode = match stdlib_bytecode() {
        Ok(b) => b,
        Err(e) => return Err(mlua::Error::runtime(format!("lua-stdlib/qyl.lua: {e}"))),
    };
    let native = lua.create_table()?;
    native.set("json_encode", lua.create_function(json_encode)?)?;
    native.set("json_decode", lua.create_function(json_decode)?)?;
    native.set("null", lua.null())?;
    native.set("array_mt", lua.array_metatable())?;
    native.set("mark", lua.create_function(mark_definition)?)?;
    let qyl: Table = lua
        .load(&bytecode[..])
        .set_mode(ChunkMode::Binary)
        .set_name("=qyl")
        .call(native)?;
    let exists: Table = qyl.get("exists")?;
    lua.set_app_data(ExistsSentinel(exists.to_pointer() as usize));
    lua.set_app_data(DefinitionLines::default());
    freeze(&qyl);
    lua.globals().set("qyl", qyl)?;
    Ok(())
}

/// Makes a stdlib table and every table under it read-only, so that one
/// script cannot change `qyl.json.encode` under another.
fn freeze(table: &Table) {
    if table.is_readonly() {
        return;
    }
    table.set_readonly(true);
    for (_, value) in table.pairs::<Value, Value>().flatten() {
        if let Value::Table(t) = value {
            freeze(&t);
        }
    }
}

/// The line each `qyl.fn{…}` call was made on, by definition table address:
/// load errors and diagnostics point at the definition, not at the handler.
#[derive(Debug, Default)]
pub(crate) struct DefinitionLines(pub(crate) std::collections::HashMap<usize, u32>);

/// `native.mark(def)`, called by `qyl.fn`: remembers the caller's line.
/// Level 0 is this function, 1 is `qyl.fn`, 2 the script that called it.
fn mark_definition(lua: &Lua, def: Table) -> mlua::Result<()> {
    let line = lua
        .inspect_stack(2, |debug| debug.current_line())
        .flatten()
        .and_then(|l| u32::try_from(l).ok());
    if let (Some(line), Some(mut lines)) = (line, lua.app_data_mut::<DefinitionLines>()) {
        lines.0.insert(def.to_pointer() as usize, line);
    }
    Ok(())
}

fn json_encode(lua: &Lua, value: Value) -> mlua::Result<String> {
    let json: serde_json::Value = lua.from_value(value)?;
    serde_json::to_string(&json).map_err(mlua::Error::external)
}

fn json_decode(lua: &Lua, text: mlua::String) -> mlua::Result<Value> {
    let json: serde_json::Value =
        serde_json::from_slice(&text.as_bytes()).map_err(mlua::Error::external)?;
    lua.to_value(&json)
}

fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        _ => false,
    }
}

/// The message a user should see: the innermost cause, without mlua's
/// traceback noise.
pub(crate) fn script_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => script_message(cause),
        mlua::Error::WithContext { cause, .. } => script_message(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox::new(Limits::with_memory_mb(8)).expect("sandbox")
    }

    /// Short enough to keep the loop tests quick, long enough for the
    /// memory tests to reach their limit first in an unoptimised build.
    fn eval(sb: &mut Sandbox, src: &str) -> Result<Value, SandboxError> {
        sb.run(Duration::from_millis(1500), |lua| {
            lua.load(src).eval::<Value>()
        })
    }

    #[test]
    fn arithmetic_and_libraries_work() {
        let mut sb = sandbox();
        let v = eval(
            &mut sb,
            "return string.upper('a') .. math.floor(2.5) .. #table.pack(1, 2) .. utf8.char(65) .. buffer.len(buffer.create(3))",
        )
        .expect("runs");
        assert_eq!(v.to_string().unwrap_or_default(), "A22A3");
        let t = eval(
            &mut sb,
            "return os.time() > 0 and os.clock() >= 0 and os.date('%Y') ~= nil",
        )
        .expect("runs");
        assert_eq!(t, Value::Boolean(true));
    }

    #[test]
    fn infinite_loop_times_out() {
        let mut sb = sandbox();
        let start = Instant::now();
        let err = eval(&mut sb, "while true do end").expect_err("must time out");
        assert!(matches!(err, SandboxError::Timeout(_)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(sb.is_poisoned());
    }

    #[test]
    fn pcall_cannot_swallow_the_deadline() {
        let mut sb = sandbox();
        let start = Instant::now();
        let err = eval(
            &mut sb,
            "local n = 0
             while true do
               pcall(function() while true do end end)
               n += 1
             end",
        )
        .expect_err("must time out");
        assert!(matches!(err, SandboxError::Timeout(_)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        // xpcall with a handler that loops again is the same story.
        let err = eval(
            &mut sb,
            "while true do xpcall(function() while true do end end, function() while true do end end) end",
        )
        .expect_err("must time out");
        assert!(matches!(err, SandboxError::Timeout(_)), "{err:?}");
    }

    #[test]
    fn a_swallowed_timeout_is_still_a_timeout() {
        let mut sb = sandbox();
        let err = eval(&mut sb, "pcall(function() while true do end end) return 1")
            .expect_err("timed out");
        assert!(matches!(err, SandboxError::Timeout(_)), "{err:?}");
    }

    #[test]
    fn a_vm_that_timed_out_runs_again_after_rearming() {
        let mut sb = sandbox();
        assert!(eval(&mut sb, "while true do end").is_err());
        assert_eq!(
            eval(&mut sb, "return 1 + 1").expect("runs"),
            Value::Number(2.0)
        );
    }

    #[test]
    fn backtracking_patterns_are_interrupted() {
        // Luau checks the interrupt inside its pattern matcher, so a
        // polynomial-time find is stopped like any loop.
        let mut sb = sandbox();
        let start = Instant::now();
        let err = eval(
            &mut sb,
            "return string.find(string.rep('a', 5000), '.-.-.-.-.-.-b')",
        )
        .expect_err("must time out");
        assert!(matches!(err, SandboxError::Timeout(_)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn deep_recursion_is_contained() {
        let mut sb = sandbox();
        let err = eval(
            &mut sb,
            "local function f(n) return 1 + f(n + 1) end return f(1)",
        )
        .expect_err("overflows");
        match err {
            SandboxError::Script(m) => assert!(m.contains("stack overflow"), "{m}"),
            SandboxError::Memory(_) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            eval(&mut sb, "return 2").expect("still usable"),
            Value::Number(2.0)
        );
    }

    #[test]
    fn memory_bomb_hits_the_limit() {
        let mut sb = sandbox();
        let err = eval(
            &mut sb,
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end",
        )
        .expect_err("must hit the limit");
        assert!(matches!(err, SandboxError::Memory(_)), "{err:?}");
        assert!(sb.is_poisoned());
    }

    #[test]
    fn string_rep_bombs_are_bounded() {
        let mut sb = sandbox();
        let err = eval(&mut sb, "return #string.rep('x', 2^28)").expect_err("bounded");
        assert!(matches!(err, SandboxError::Memory(_)), "{err:?}");
        // Doubling a string in a loop is caught by the same limit.
        let mut sb = sandbox();
        let err = eval(&mut sb, "local s = 'x' while true do s = s .. s end").expect_err("bounded");
        assert!(
            matches!(err, SandboxError::Memory(_) | SandboxError::Timeout(_)),
            "{err:?}"
        );
    }

    #[test]
    fn escape_hatches_are_gone() {
        let mut sb = sandbox();
        for name in [
            "io",
            "require",
            "loadstring",
            "load",
            "dofile",
            "getfenv",
            "setfenv",
            "collectgarbage",
            "debug",
            "print",
            "package",
        ] {
            let v = eval(&mut sb, &format!("return {name}")).expect("runs");
            assert_eq!(v, Value::Nil, "{name} must be unavailable");
        }
        assert_eq!(
            eval(&mut sb, "return os.execute").expect("runs"),
            Value::Nil
        );
        assert_eq!(eval(&mut sb, "return os.getenv").expect("runs"), Value::Nil);
        assert_eq!(eval(&mut sb, "return os.exit").expect("runs"), Value::Nil);
    }

    #[test]
    fn library_and_stdlib_tables_are_read_only() {
        let mut sb = sandbox();
        for src in [
            "string.upper = nil",
            "getmetatable('').__index = {}",
            "qyl.fn = nil",
            "qyl.json.encode = nil",
            "os.time = nil",
            "rawset(qyl, 'fn', nil)",
            "rawset(string, 'x', 1)",
            "setmetatable(qyl, {})",
        ] {
            let err = eval(&mut sb, src).expect_err(src);
            assert!(matches!(err, SandboxError::Script(_)), "{src}: {err:?}");
        }
        // Globals a script sets stay in its own environment.
        assert_eq!(
            eval(&mut sb, "x = 5 return x").expect("runs"),
            Value::Number(5.0)
        );
    }

    #[test]
    fn script_errors_are_reported_with_their_message() {
        let mut sb = sandbox();
        let err = eval(&mut sb, "error('boom')").expect_err("errors");
        match err {
            SandboxError::Script(m) => assert!(m.contains("boom"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!sb.is_poisoned());
    }
}
