//! A wasi:http host for the composed artifact, with the interface versions
//! Spin provides: `wasi:keyvalue@0.2.0-draft2` (store, batch, atomics with
//! compare-and-swap; only the labels `spin.toml` lists) and
//! `wasi:config/store@0.2.0-draft-2024-09-27` (the component's variables).
//! Outbound HTTP is limited to `allowed_outbound_hosts`.

use crate::footprint::{Footprint, FootprintTotals};
use crate::kv;
pub use crate::kv::KeyValue;
use crate::manifest::{AllowedHost, Manifest, Resolved};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod generated {
    wasmtime::component::bindgen!({
        path: ["../wit/deps/keyvalue", "../wit/deps/config"],
        inline: "
            package copilot-jit:test-host;
            world host {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/batch@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        ",
        // Stores answer asynchronously (Redis), as in Spin.
        imports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

use generated::wasi::config::store as config;
use generated::wasi::keyvalue::{atomics, batch, store};

/// An open label.
pub struct BucketHandle {
    label: String,
}

/// An open compare-and-swap on one key.
pub struct CasHandle {
    label: String,
    key: String,
    cas: kv::Cas,
}

/// Allows outbound requests only to `allowed_outbound_hosts`.
struct OutboundPolicy {
    allowed: Arc<Vec<AllowedHost>>,
}

impl WasiHttpHooks for OutboundPolicy {
    /// Says what hyper refused (the guest sees only `HttpProtocolError`).
    fn p2_error_from_hyper(
        &mut self,
        err: &hyper::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        eprintln!("test host: outbound HTTP failed: {err:?}");
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpProtocolError
    }

    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let allowed = self.allowed.iter().any(|a| a.allows(&scheme, &host, port));
        Box::new(async move {
            if !allowed {
                eprintln!("test host: outbound request to {scheme}://{host}:{port} denied by allowed_outbound_hosts");
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io)
                    as Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            ))
        })
    }
}

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    kv: Arc<KeyValue>,
    kv_labels: Arc<HashSet<String>>,
    config: Arc<HashMap<String, String>>,
    footprint: Footprint,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn kv_error(e: impl std::fmt::Display) -> store::Error {
    store::Error::Other(e.to_string())
}

impl HostState {
    fn label(&self, r: &Resource<BucketHandle>) -> Result<String, store::Error> {
        self.table.get(r).map(|b| b.label.clone()).map_err(kv_error)
    }
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, store::Error> {
        if !self.kv_labels.contains(&identifier) {
            return Err(store::Error::AccessDenied);
        }
        self.table
            .push(BucketHandle { label: identifier })
            .map_err(kv_error)
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let label = self.label(&this)?;
        self.kv.get(&label, &key).await.map_err(store::Error::Other)
    }

    async fn set(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let label = self.label(&this)?;
        self.kv
            .set(&label, &key, value)
            .await
            .map_err(store::Error::Other)
    }

    async fn delete(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
    ) -> Result<(), store::Error> {
        let label = self.label(&this)?;
        self.kv
            .delete(&label, &key)
            .await
            .map_err(store::Error::Other)
    }

    async fn exists(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
    ) -> Result<bool, store::Error> {
        let label = self.label(&this)?;
        self.kv
            .exists(&label, &key)
            .await
            .map_err(store::Error::Other)
    }

    async fn list_keys(
        &mut self,
        this: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        // Like Spin's stores: all keys at once, cursors unsupported.
        if cursor.is_some() {
            return Err(store::Error::Other("cursor not supported".into()));
        }
        let label = self.label(&this)?;
        let keys = self.kv.keys(&label).await.map_err(store::Error::Other)?;
        Ok(store::KeyResponse { keys, cursor: None })
    }

    async fn drop(&mut self, rep: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        let label = self.label(&bucket)?;
        self.kv
            .get_many(&label, keys)
            .await
            .map_err(store::Error::Other)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let label = self.label(&bucket)?;
        self.kv
            .set_many(&label, pairs)
            .await
            .map_err(store::Error::Other)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        let label = self.label(&bucket)?;
        self.kv
            .delete_many(&label, keys)
            .await
            .map_err(store::Error::Other)
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        let label = self.label(&bucket)?;
        self.kv
            .increment(&label, &key, delta)
            .await
            .map_err(store::Error::Other)
    }

    /// As Spin's host: on `CasFailed` a new compare-and-swap is opened on the
    /// key, its `current` read once, and handed back.
    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> Result<(), atomics::CasError> {
        let store_error = |e: String| atomics::CasError::StoreError(store::Error::Other(e));
        let handle = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(kv_error(e)))?;
        match self.kv.cas_swap(&handle.cas, value).await {
            Ok(()) => Ok(()),
            Err(kv::SwapFailure::Other(e)) => Err(store_error(e)),
            Err(kv::SwapFailure::CasFailed) => {
                let mut fresh = self
                    .kv
                    .new_cas(&handle.label, &handle.key)
                    .await
                    .map_err(store_error)?;
                self.kv.cas_current(&mut fresh).await.map_err(store_error)?;
                let fresh = self
                    .table
                    .push(CasHandle {
                        label: handle.label,
                        key: handle.key,
                        cas: fresh,
                    })
                    .map_err(|e| atomics::CasError::StoreError(kv_error(e)))?;
                Err(atomics::CasError::CasFailed(fresh))
            }
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<Resource<CasHandle>, store::Error> {
        let label = self.label(&bucket)?;
        let cas = self
            .kv
            .new_cas(&label, &key)
            .await
            .map_err(store::Error::Other)?;
        self.table
            .push(CasHandle { label, key, cas })
            .map_err(kv_error)
    }

    async fn current(
        &mut self,
        this: Resource<CasHandle>,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let kv = self.kv.clone();
        let handle = self.table.get_mut(&this).map_err(kv_error)?;
        kv.cas_current(&mut handle.cas)
            .await
            .map_err(store::Error::Other)
    }

    async fn drop(&mut self, rep: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// The guests' wall clock: real time plus an offset tests can move forward
/// (pending requests and grants expiring without waiting).
#[derive(Clone, Default)]
pub struct TestClock {
    offset_secs: Arc<std::sync::atomic::AtomicU64>,
}

impl TestClock {
    pub fn advance(&self, secs: u64) {
        self.offset_secs
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// How far this clock has been moved.
    pub fn offset_secs(&self) -> u64 {
        self.offset_secs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl wasmtime_wasi::HostWallClock for TestClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_micros(1)
    }

    fn now(&self) -> std::time::Duration {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        real + std::time::Duration::from_secs(
            self.offset_secs.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

/// The composed artifact, compiled once and pre-linked.
pub struct Gateway {
    pre: ProxyPre<HostState>,
    clock: TestClock,
    kv: Arc<KeyValue>,
    kv_labels: Arc<HashSet<String>>,
    config: Arc<HashMap<String, String>>,
    allowed: Arc<Vec<AllowedHost>>,
    live: Arc<LiveInstances>,
    footprints: Arc<FootprintTotals>,
    /// Where the guests' stderr goes when captured (else the test's own).
    logs: Option<wasmtime_wasi::p2::pipe::MemoryOutputPipe>,
}

/// Instances alive at once (from instantiation until the handler returns,
/// work after the answer included), and the most seen.
#[derive(Default)]
pub struct LiveInstances {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl LiveInstances {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(n, SeqCst);
        LiveGuard(self.clone())
    }

    /// Instances alive now: 0 once every request, with the work it does
    /// after its answer (the audit record), has ended.
    pub fn alive(&self) -> usize {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most instances alive at once since the last call (then reset).
    pub fn take_peak(&self) -> usize {
        use std::sync::atomic::Ordering::SeqCst;
        self.peak.swap(self.now.load(SeqCst), SeqCst)
    }
}

struct LiveGuard(Arc<LiveInstances>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Spin's instance pool (`crates/core/src/lib.rs`, Spin 3.x–4.1), with its
/// defaults and its environment overrides: 1000 component instances, 1000
/// memories, 2000 tables, 2 MiB of each memory kept resident (reset by
/// copying, not by the kernel). An instance is held until its handler
/// returns, work after the answer included, so running out of it fails a
/// test here as it fails a user there.
fn spin_pool() -> wasmtime::PoolingAllocationConfig {
    const MB: u64 = 1 << 20;
    let max_instances = env("SPIN_MAX_INSTANCE_COUNT", 1_000);
    let count = |name: &str, default: u64| env(name, default) as u32;
    let size = |name: &str, default: u64| env(name, default) as usize;
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(count("SPIN_WASMTIME_INSTANCE_COUNT", max_instances))
        .total_memories(count("SPIN_WASMTIME_TOTAL_MEMORIES", max_instances))
        .total_tables(count("SPIN_WASMTIME_TOTAL_TABLES", 2 * max_instances))
        .total_stacks(count("SPIN_WASMTIME_TOTAL_STACKS", max_instances))
        .total_core_instances(count(
            "SPIN_WASMTIME_TOTAL_CORE_INSTANCES",
            4 * max_instances,
        ))
        .table_elements(size("SPIN_WASMTIME_INSTANCE_TABLE_ELEMENTS", 100_000))
        .max_component_instance_size(size("SPIN_WASMTIME_INSTANCE_SIZE", 10 * MB))
        .max_core_instance_size(size("SPIN_WASMTIME_CORE_INSTANCE_SIZE", 10 * MB))
        .max_core_instances_per_component(count("SPIN_WASMTIME_CORE_INSTANCE_COUNT", 200))
        .max_tables_per_component(count("SPIN_WASMTIME_INSTANCE_TABLES", 64))
        .max_memories_per_component(count("SPIN_WASMTIME_INSTANCE_MEMORIES", 32))
        .max_tables_per_module(count("SPIN_WASMTIME_MAX_TABLES_PER_MODULE", 2))
        .max_memories_per_module(count("SPIN_WASMTIME_MAX_MEMORIES_PER_MODULE", 2))
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(linear_memory_keep_resident())
        .table_keep_resident(size("SPIN_WASMTIME_TABLE_KEEP_RESIDENT", MB / 2));
    pool
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes of each memory Spin's pool rewrites on release (2 MiB by default).
pub fn linear_memory_keep_resident() -> usize {
    env("SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT", 2 << 20) as usize
}

pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    let pool = spin_pool();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    // For profiling with `perf`: names for JIT-compiled guest functions.
    if std::env::var_os("COPILOT_JIT_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Ok(Engine::new(&config)?)
}

/// Compiles the artifact `spin.toml` names.
pub fn compile(engine: &Engine, manifest: &Manifest) -> Result<Component> {
    Component::from_file(engine, &manifest.source)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "loading {} (run the build first)",
                manifest.source.display()
            )
        })
}

impl Gateway {
    pub fn new(
        engine: &Engine,
        component: &Component,
        resolved: Resolved,
        kv: Arc<KeyValue>,
    ) -> Result<Gateway> {
        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        store::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        batch::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        atomics::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        config::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        let pre = ProxyPre::new(linker.instantiate_pre(component)?)?;
        let allowed = resolved
            .allowed_outbound_hosts
            .iter()
            .map(|h| AllowedHost::parse(h))
            .collect::<Result<Vec<_>>>()?;
        Ok(Gateway {
            pre,
            clock: TestClock::default(),
            kv,
            kv_labels: Arc::new(resolved.key_value_stores.into_iter().collect()),
            config: Arc::new(resolved.config),
            allowed: Arc::new(allowed),
            live: Arc::default(),
            footprints: Arc::default(),
            logs: None,
        })
    }

    /// Keeps what the guests write to stderr (their log) for `logs`.
    pub fn capture_logs(&mut self) {
        self.logs = Some(wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64 << 20));
    }

    /// The guests' log so far, when captured.
    pub fn logs(&self) -> String {
        self.logs
            .as_ref()
            .map(|l| String::from_utf8_lossy(&l.contents()).into_owned())
            .unwrap_or_default()
    }

    pub fn live_instances(&self) -> &LiveInstances {
        &self.live
    }

    /// Memories and tables of the instances served so far.
    pub fn footprints(&self) -> &FootprintTotals {
        &self.footprints
    }

    pub fn kv(&self) -> &Arc<KeyValue> {
        &self.kv
    }

    /// The clock the guests see.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        match &self.logs {
            Some(pipe) => wasi.stderr(pipe.clone()),
            None => wasi.inherit_stderr(),
        };
        let mut store = Store::new(
            self.pre.engine(),
            HostState {
                wasi: wasi.wall_clock(self.clock.clone()).build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: OutboundPolicy {
                    allowed: self.allowed.clone(),
                },
                kv: self.kv.clone(),
                kv_labels: self.kv_labels.clone(),
                config: self.config.clone(),
                footprint: Footprint::default(),
            },
        );
        store.limiter(|state| &mut state.footprint);
        store
    }

    fn count_footprint(&self, store: &Store<HostState>) {
        self.footprints
            .add(&store.data().footprint, linear_memory_keep_resident());
    }

    /// Creates and instantiates one fresh instance without serving anything:
    /// what every request pays before the handler runs.
    pub async fn instantiate_once(&self) -> Result<std::time::Duration> {
        let mut store = self.new_store();
        let started = std::time::Instant::now();
        self.pre.instantiate_async(&mut store).await?;
        let took = started.elapsed();
        self.count_footprint(&store);
        Ok(took)
    }

    /// One instance's whole life without a request: instantiation and the
    /// pool's reset of its memories and tables when it is dropped.
    pub async fn instantiate_and_release_once(&self) -> Result<std::time::Duration> {
        let mut store = self.new_store();
        let started = std::time::Instant::now();
        self.pre.instantiate_async(&mut store).await?;
        drop(store);
        Ok(started.elapsed())
    }

    /// Serves one request with a fresh instance, as Spin does for WASI P2.
    pub async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.new_store();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let live = self.live.enter();
        let gateway = self.clone();
        let task = tokio::task::spawn(async move {
            let _live = live;
            // Spin answers 500 the same way when its pool is exhausted.
            let proxy = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| e.context("no instance for the request"))?;
            let served = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await;
            gateway.count_footprint(&store);
            served
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(anyhow::anyhow!("guest answered with an error: {e:?}")),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("guest never set a response"),
                    Ok(Err(e)) => e.into(),
                    Err(e) => e.into(),
                };
                Err(e.context("the component trapped or could not be instantiated"))
            }
        }
    }

    /// Serves HTTP/1.1 on `listener` until the returned handle is aborted.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                // Small SSE writes must not wait for delayed ACKs (Nagle).
                let _ = client.set_nodelay(true);
                tokio::spawn(self.clone().serve_connection(client));
            }
        })
    }

    /// Serves HTTPS on `listener` with `tls` (a certificate from the test's
    /// own CA), as `spin up --tls-cert … --tls-key …` does.
    pub fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: tokio_rustls::TlsAcceptor,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let gateway = self.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls.accept(client).await {
                        Ok(stream) => gateway.serve_connection(stream).await,
                        Err(e) => eprintln!("test host: TLS handshake failed: {e}"),
                    }
                });
            }
        })
    }

    async fn serve_connection<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let gateway = self;
        let service = hyper::service::service_fn(move |req| {
            let gateway = gateway.clone();
            async move {
                match gateway.handle(req).await {
                    Ok(r) => Ok::<_, std::convert::Infallible>(r),
                    Err(e) => {
                        // A trap is a bug: make it loud and visible to tests.
                        eprintln!("test host: request failed: {e:?}");
                        let body = http_body_util::Full::new(Bytes::from_static(
                            b"{\"error\":{\"code\":\"trap\",\"message\":\"the component trapped\"}}",
                        ))
                        .map_err(|never| match never {})
                        .boxed_unsync();
                        let mut r = hyper::Response::new(body);
                        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                        r.headers_mut()
                            .insert("x-test-host-trap", "1".parse().expect("static header"));
                        Ok(r)
                    }
                }
            }
        });
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }
}

/// Binds loopback on an ephemeral port.
pub async fn loopback_listener() -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
