//! Grant by linking: the linker holds exactly the WASI interfaces an executor may use.
//! Sockets are not linked at all, so a component importing them fails to instantiate.
//! The monotonic clock's sleeps are replaced so they return at once and only move the
//! run's virtual clock.

use super::state::SandboxState;
use crate::guarded_fs::Guarded;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::clocks::WasiClocks;
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sync};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::random::WasiRandom;

/// The WASI interfaces executors are granted (all others are absent).
pub const GRANTED_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock (fixed)",
    "wasi:clocks/monotonic-clock (virtual; sleeps return at once)",
    "wasi:filesystem/types (policed: writes outside the allowed paths fail)",
    "wasi:filesystem/preopens",
    "wasi:random/random (seeded)",
    "wasi:random/insecure (seeded)",
    "wasi:random/insecure-seed (seeded)",
    "wasi:cli/environment (empty)",
    "wasi:cli/exit",
    "wasi:cli/stdin (empty)",
    "wasi:cli/stdout (captured)",
    "wasi:cli/stderr (captured)",
    "wasi:cli/terminal-* (no terminal)",
];

/// The WASI version whose monotonic-clock functions are replaced.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

struct Io;
impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the granted WASI interfaces and the executor world's imports to `linker`.
pub fn link(linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
    type S = SandboxState;
    let l = linker;
    io::error::add_to_linker::<S, Io>(l, |s| &mut s.wasi.table)?;
    sync::io::poll::add_to_linker::<S, Io>(l, |s| &mut s.wasi.table)?;
    sync::io::streams::add_to_linker::<S, Io>(l, |s| &mut s.wasi.table)?;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(
        l,
        wasmtime_wasi::clocks::WasiClocksView::clocks,
    )?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(
        l,
        wasmtime_wasi::clocks::WasiClocksView::clocks,
    )?;
    sync::filesystem::types::add_to_linker::<S, Guarded>(l, SandboxState::guarded_fs)?;
    filesystem::preopens::add_to_linker::<S, Guarded>(l, SandboxState::guarded_fs)?;
    random::random::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.ctx.random())?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.ctx.random())?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.ctx.random())?;
    let cli_view = wasmtime_wasi::cli::WasiCliView::cli;
    cli::exit::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, cli_view)?;
    replace_sleeps(l)?;
    super::bindings::ExecutorPlugin::add_to_linker::<S, wasmtime::component::HasSelf<S>>(l, |s| s)?;
    Ok(())
}

/// A pollable that is always ready: sleeps in the sandbox return at once.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

fn ready_pollable(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let resource = table.push(Ready)?;
    subscribe(table, resource)
}

fn replace_sleeps(linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (nanos,): (u64,)| {
        let state: &mut SandboxState = store.data_mut();
        state.clock.advance(nanos);
        Ok((ready_pollable(&mut state.wasi.table)?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (when,): (u64,)| {
        let state: &mut SandboxState = store.data_mut();
        state.clock.advance_to(when);
        Ok((ready_pollable(&mut state.wasi.table)?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}
