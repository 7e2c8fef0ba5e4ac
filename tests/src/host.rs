//! A wasi:http host for the composed artifact, with the interface versions
//! Spin provides: `wasi:keyvalue@0.2.0-draft2` (store, batch, atomics with
//! compare-and-swap; only the labels `spin.toml` lists) and
//! `wasi:config/store@0.2.0-draft-2024-09-27` (the component's variables).
//! Outbound HTTP is limited to `allowed_outbound_hosts`.

use crate::manifest::{AllowedHost, Manifest, Resolved};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

use generated::wasi::config::store as config;
use generated::wasi::keyvalue::{atomics, batch, store};

/// One KV label's data: value and a version bumped on every write.
#[derive(Default)]
pub struct Bucket {
    entries: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    next_version: Mutex<u64>,
}

impl Bucket {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, u64)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self) -> u64 {
        let mut v = self.next_version.lock().unwrap_or_else(|e| e.into_inner());
        *v += 1;
        *v
    }

    /// Every stored key and value, for tests that inspect what was written.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

/// All KV data of one host, shared by every request (like Spin's store).
#[derive(Default)]
pub struct KeyValue {
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl KeyValue {
    pub fn bucket(&self, label: &str) -> Arc<Bucket> {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(label.to_string())
            .or_default()
            .clone()
    }
}

pub struct BucketHandle(Arc<Bucket>);

pub struct CasHandle {
    bucket: Arc<Bucket>,
    key: String,
    seen: Option<(Vec<u8>, u64)>,
}

/// Allows outbound requests only to `allowed_outbound_hosts`.
struct OutboundPolicy {
    allowed: Arc<Vec<AllowedHost>>,
}

impl WasiHttpHooks for OutboundPolicy {
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

impl store::Host for HostState {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, store::Error> {
        if !self.kv_labels.contains(&identifier) {
            return Err(store::Error::AccessDenied);
        }
        let bucket = self.kv.bucket(&identifier);
        self.table.push(BucketHandle(bucket)).map_err(kv_error)
    }
}

impl HostState {
    fn bucket(&self, r: &Resource<BucketHandle>) -> Result<Arc<Bucket>, store::Error> {
        self.table.get(r).map(|b| b.0.clone()).map_err(kv_error)
    }
}

impl store::HostBucket for HostState {
    fn get(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self.bucket(&this)?.lock().get(&key).map(|(v, _)| v.clone()))
    }

    fn set(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let bucket = self.bucket(&this)?;
        let version = bucket.version();
        bucket.lock().insert(key, (value, version));
        Ok(())
    }

    fn delete(&mut self, this: Resource<BucketHandle>, key: String) -> Result<(), store::Error> {
        self.bucket(&this)?.lock().remove(&key);
        Ok(())
    }

    fn exists(&mut self, this: Resource<BucketHandle>, key: String) -> Result<bool, store::Error> {
        Ok(self.bucket(&this)?.lock().contains_key(&key))
    }

    fn list_keys(
        &mut self,
        this: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        // Like Spin's stores: all keys at once, cursors unsupported.
        if cursor.is_some() {
            return Err(store::Error::Other("cursor not supported".into()));
        }
        let mut keys: Vec<String> = self.bucket(&this)?.lock().keys().cloned().collect();
        keys.sort();
        Ok(store::KeyResponse { keys, cursor: None })
    }

    fn drop(&mut self, rep: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        let bucket = self.bucket(&bucket)?;
        let entries = bucket.lock();
        Ok(keys
            .into_iter()
            .map(|k| {
                let v = entries.get(&k).map(|(v, _)| v.clone());
                (k, v)
            })
            .collect())
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let bucket = self.bucket(&bucket)?;
        for (k, v) in pairs {
            let version = bucket.version();
            bucket.lock().insert(k, (v, version));
        }
        Ok(())
    }

    fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        let bucket = self.bucket(&bucket)?;
        let mut entries = bucket.lock();
        for k in keys {
            entries.remove(&k);
        }
        Ok(())
    }
}

impl atomics::Host for HostState {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        let bucket = self.bucket(&bucket)?;
        let version = bucket.version();
        let mut entries = bucket.lock();
        let current = match entries.get(&key) {
            Some((v, _)) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| store::Error::Other("value is not a number".into()))?,
            None => 0,
        };
        let next = current + delta;
        entries.insert(key, (next.to_string().into_bytes(), version));
        Ok(next)
    }

    fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let handle = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(kv_error(e)))?;
        let version = handle.bucket.version();
        let mut entries = handle.bucket.lock();
        let current = entries.get(&handle.key).cloned();
        let unchanged = match (&current, &handle.seen) {
            (None, None) => true,
            (Some((_, v)), Some((_, seen))) => v == seen,
            _ => false,
        };
        if unchanged {
            entries.insert(handle.key, (value, version));
            return Ok(());
        }
        drop(entries);
        let fresh = CasHandle {
            bucket: handle.bucket,
            key: handle.key,
            seen: current,
        };
        let fresh = self
            .table
            .push(fresh)
            .map_err(|e| atomics::CasError::StoreError(kv_error(e)))?;
        Err(atomics::CasError::CasFailed(fresh))
    }
}

impl atomics::HostCas for HostState {
    fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<Resource<CasHandle>, store::Error> {
        let bucket = self.bucket(&bucket)?;
        let seen = bucket.lock().get(&key).cloned();
        self.table
            .push(CasHandle { bucket, key, seen })
            .map_err(kv_error)
    }

    fn current(&mut self, this: Resource<CasHandle>) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self
            .table
            .get(&this)
            .map_err(kv_error)?
            .seen
            .as_ref()
            .map(|(v, _)| v.clone()))
    }

    fn drop(&mut self, rep: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
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
}

/// Concurrent requests the instance pool holds, like Spin's instance limit.
const POOLED_INSTANCES: u32 = 128;

pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    // Instances come from a pool, as in Spin and `wasmtime serve`: memories
    // are reused instead of mapped and unmapped on every request.
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 32)
        .total_memories(POOLED_INSTANCES * 8)
        .total_tables(POOLED_INSTANCES * 8)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(16)
        .max_memory_size(1 << 30)
        // Returned memories are decommitted in batches: each `madvise` costs
        // a TLB shootdown on every core, per linear memory, per request.
        .decommit_batch_size(64);
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
        })
    }

    pub fn kv(&self) -> &Arc<KeyValue> {
        &self.kv
    }

    /// The clock the guests see.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    fn new_store(&self) -> Store<HostState> {
        Store::new(
            self.pre.engine(),
            HostState {
                wasi: WasiCtx::builder()
                    .inherit_stderr()
                    .wall_clock(self.clock.clone())
                    .build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: OutboundPolicy {
                    allowed: self.allowed.clone(),
                },
                kv: self.kv.clone(),
                kv_labels: self.kv_labels.clone(),
                config: self.config.clone(),
            },
        )
    }

    /// Creates and instantiates one fresh instance without serving anything:
    /// what every request pays before the handler runs.
    pub async fn instantiate_once(&self) -> Result<std::time::Duration> {
        let mut store = self.new_store();
        let started = std::time::Instant::now();
        self.pre.instantiate_async(&mut store).await?;
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
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
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
                Err(e.context("the component trapped"))
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
                let gateway = self.clone();
                tokio::spawn(async move {
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
                                    r.headers_mut().insert(
                                        "x-test-host-trap",
                                        "1".parse().expect("static header"),
                                    );
                                    Ok(r)
                                }
                            }
                        }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(client), service)
                        .await;
                });
            }
        })
    }
}

/// Binds loopback on an ephemeral port.
pub async fn loopback_listener() -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
