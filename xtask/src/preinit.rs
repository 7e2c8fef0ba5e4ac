//! Pre-initialisation of the gateway component with wasmtime's wizer, before
//! composition (wizer refuses nested components, so the single component is
//! snapshotted, then composed).
//!
//! The component's `wizer-initialize` export builds what every fresh
//! instance would otherwise build per request — the decoded policy set and
//! Cedar's lazily built tables — and wizer writes the resulting memory and
//! globals back into the component as its initial state. Every import is a trap while it runs: the initialiser may not read
//! variables (no secret can reach the artifact), the clock, KV or the
//! network; only randomness is given, for the hash-map keys std draws once.

use anyhow::{anyhow, Result};
use wasmtime::component::{Component, Instance, Lift, Linker, WasmList};
use wasmtime::{Config, Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

pub fn preinitialize(wasm: &[u8]) -> Result<Vec<u8>> {
    futures::executor::block_on(run(wasm))
}

async fn run(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    // Dropping the export leaves the component lifting a core export that is
    // gone (wizer 48 removes both the core and the component export but not
    // the alias between them). Kept, it is harmless: the composed artifact
    // exports only the HTTP handler, and warming up twice changes nothing.
    wizer.keep_init_func(true);
    let (cx, instrumented) = wizer
        .instrument_component(wasm)
        .map_err(|e| anyhow!("instrumenting the gateway: {e}"))?;
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e}"))?;
    let component = Component::new(&engine, &instrumented)
        .map_err(|e| anyhow!("compiling the gateway: {e}"))?;
    let mut linker: Linker<()> = Linker::new(&engine);
    define_randomness(&mut linker, &component)?;
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| anyhow!("{e}"))?;
    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(|e| anyhow!("instantiating the gateway: {e}"))?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, wizer.get_init_func())
        .map_err(|e| anyhow!("the gateway exports no `{}`: {e}", wizer.get_init_func()))?;
    init.call_async(&mut store, ()).await.map_err(|e| {
        anyhow!("the gateway's initialiser failed (it may not call imports): {e:?}")
    })?;
    wizer
        .snapshot_component(
            &cx,
            &mut Snapshotting {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(|e| anyhow!("snapshotting the gateway: {e}"))
}

/// Randomness from the build machine, for the random interfaces the
/// component imports (std seeds its hash maps from `insecure-seed`).
fn define_randomness(linker: &mut Linker<()>, component: &Component) -> Result<()> {
    let engine = component.engine().clone();
    let names: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for name in names {
        if name.starts_with("wasi:random/insecure-seed@") {
            let mut interface = linker.instance(&name).map_err(|e| anyhow!("{name}: {e}"))?;
            interface
                .func_wrap("insecure-seed", |_, (): ()| {
                    Ok(((random_u64()?, random_u64()?),))
                })
                .map_err(|e| anyhow!("{name}: {e}"))?;
        } else if name.starts_with("wasi:random/random@") {
            let mut interface = linker.instance(&name).map_err(|e| anyhow!("{name}: {e}"))?;
            interface
                .func_wrap("get-random-u64", |_, (): ()| Ok((random_u64()?,)))
                .map_err(|e| anyhow!("{name}: {e}"))?;
            interface
                .func_wrap("get-random-bytes", |_, (n,): (u64,)| {
                    let mut bytes = vec![0u8; usize::try_from(n).unwrap_or(0).min(1 << 16)];
                    getrandom::fill(&mut bytes).map_err(|e| wasmtime::Error::msg(e.to_string()))?;
                    Ok((bytes,))
                })
                .map_err(|e| anyhow!("{name}: {e}"))?;
        }
    }
    Ok(())
}

fn random_u64() -> wasmtime::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| wasmtime::Error::msg(e.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Wizer reads the instance's state through exports its instrumentation
/// added; the trait has no way to report errors, so a missing one (a wizer
/// bug, not an input) ends the build with a message.
struct Snapshotting<'a> {
    store: &'a mut Store<()>,
    instance: Instance,
}

impl Snapshotting<'_> {
    async fn call<R: Lift + Send + Sync + 'static, T>(
        &mut self,
        instance: &str,
        func: &str,
        use_result: impl FnOnce(&mut Store<()>, R) -> T,
    ) -> T {
        let found = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .and_then(|i| {
                self.instance
                    .get_export_index(&mut *self.store, Some(&i), func)
            })
            .unwrap_or_else(|| panic!("wizer's accessor {instance}#{func} is missing"));
        let typed = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, found)
            .unwrap_or_else(|e| panic!("wizer's accessor {instance}#{func}: {e}"));
        let (result,) = typed
            .call_async(&mut *self.store, ())
            .await
            .unwrap_or_else(|e| panic!("wizer's accessor {instance}#{func} failed: {e}"));
        use_result(&mut *self.store, result)
    }
}

impl ComponentInstanceState for Snapshotting<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(&store))
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r: i32| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r: i64| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits()).await
    }
}
