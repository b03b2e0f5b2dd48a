//! One mount, end to end after parsing: resolve the cloud, check the vault
//! name, obtain a token for the pod's identity, plan the versions to fetch
//! (listing the versions of `objectVersionHistory` objects), fetch every
//! version (bounded concurrency, output in declaration order, the first
//! error to arrive cancels the rest) and render them into files. All or
//! nothing: any error fails the whole mount and no file is returned; the one
//! exception is an `optional: true` object that does not exist, which is
//! left out (and still reported in the object versions).
//!
//! Each object is read from its own vault (`keyvaultName` on the object,
//! else the SecretProviderClass's); one token serves them all, since a Key
//! Vault token is for the tenant and the cloud's Key Vault resource, not
//! for one vault.
//!
//! HTTP details live in `auth` and `keyvault`, sharing reads between mounts
//! in `reads`, format conversions in `render`; this module only orders the
//! steps and attaches context. The mount's budget [`Context`] (made by
//! `server`) is passed down to every request; nothing below imports this
//! module.

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use thiserror::Error;

use crate::auth::{AuthError, Authenticator};
use crate::budget::Context;
use crate::cloud::{Cloud, CloudError, VaultNameError};
use crate::keyvault::{Collection, KeyVaultError, VaultRef};
use crate::metrics::Metrics;
use crate::object::{KeyVaultObject, ObjectType, VersionEntry};
use crate::params::{CloudSpec, MountParams};
use crate::reads::{Read, Reads, What};
use crate::render::{self, Fetched, File, Jwk, ObjectVersion, RenderError, RenderOptions, Slot};
use crate::token::AccessToken;

/// The version reported for an optional object that does not exist: never
/// a Key Vault version id (32 hex digits), so the driver sees a change once
/// the object appears.
pub const MISSING_VERSION: &str = "not-found";

/// Limits and switches that apply to every mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Objects fetched at the same time within one mount.
    pub max_concurrent_fetches: usize,
    /// The whole mount's time limit (`--mount-timeout`), shortened to the
    /// driver's deadline when it sends one (see `budget`).
    pub mount_timeout: std::time::Duration,
    /// `--construct-pem-chain`, `--write-cert-and-key-in-separate-files`.
    pub render: RenderOptions,
    /// `--max-call-send-msg-size`: the largest response a mount may
    /// produce (the driver refuses larger ones).
    pub max_response_bytes: usize,
}

/// The driver's default `--max-call-recv-msg-size` (4 MiB): a larger
/// response is refused by its gRPC client.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// What a successful mount returns: files and their versions, in order.
#[derive(Debug, Default)]
pub struct MountOutput {
    pub files: Vec<File>,
    pub versions: Vec<ObjectVersion>,
}

/// Why a mount failed. `Display` is the text users see after
/// `failed to mount objects, error: `.
#[derive(Debug, Error)]
pub enum MountError {
    /// The Azure Stack environment file, read for this mount; the name as
    /// the user spelled it.
    #[error("cloudName {name} is not valid, error: {source}")]
    Cloud {
        name: String,
        #[source]
        source: CloudError,
    },
    #[error("failed to get vault: {0}")]
    Vault(#[from] VaultNameError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("failed to get {context}: {source}")]
    Object {
        /// `objectType:<t>, objectName:<n>, objectVersion:<v>`
        context: String,
        #[source]
        source: ObjectError,
    },
    /// The files would make a response the driver refuses.
    #[error(
        "the mount's files exceed {limit} bytes, the most the driver accepts (its \
         --max-call-recv-msg-size, 4 MiB by default; ours is --max-call-send-msg-size), at file \
         {path:?} ({size} bytes, {id}); mount fewer or smaller objects, or raise both limits"
    )]
    ResponseTooLarge {
        limit: usize,
        path: String,
        size: usize,
        id: String,
    },
}

/// A failure while fetching or rendering one object.
#[derive(Debug, Error)]
pub enum ObjectError {
    #[error(transparent)]
    KeyVault(#[from] KeyVaultError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl MountError {
    /// A short, bounded code for metrics and logs: the Azure error code
    /// (`SecretNotFound`, `AADSTS70021`, `Throttled`, …) or our own.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Cloud { .. } => Cow::Borrowed("InvalidCloud"),
            Self::Vault(_) => Cow::Borrowed("InvalidVaultName"),
            Self::Auth(e) => e.code(),
            Self::Object { source, .. } => source.code(),
            Self::ResponseTooLarge { .. } => Cow::Borrowed("ResponseTooLarge"),
        }
    }
}

impl ObjectError {
    /// See [`MountError::code`].
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::KeyVault(e) => e.code(),
            Self::Render(e) => Cow::Borrowed(e.code()),
        }
    }
}

/// Runs mounts over the shared clients.
#[derive(Clone, Debug)]
pub struct Mounter {
    auth: Authenticator,
    reads: Reads,
    options: MountOptions,
    metrics: Metrics,
}

// === impl Mounter ===

impl Mounter {
    pub fn new(auth: Authenticator, reads: Reads, options: MountOptions) -> Self {
        Self {
            auth,
            reads,
            options,
            metrics: Metrics::default(),
        }
    }

    /// Records mounts in flight, objects per mount, `keyvault_request` and
    /// coalesced reads.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.reads = self.reads.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// The whole mount's time limit when the driver sends no deadline.
    pub fn mount_timeout(&self) -> std::time::Duration {
        self.options.mount_timeout
    }

    /// Fetches and renders every object of a parsed, validated request.
    pub async fn run(&self, cx: &Context, params: &MountParams) -> Result<MountOutput, MountError> {
        let _in_flight = self.metrics.mount_started(params.objects.len());
        if params.objects.is_empty() {
            return Ok(MountOutput::default());
        }
        let cloud = resolve_cloud(&params.cloud).await?;
        crate::cloud::validate_vault_name(&params.keyvault_name)?;
        // Per-object vault names were validated with the objects.
        let urls: Vec<String> = params
            .objects
            .iter()
            .map(|object| cloud.vault_url(object.vault(&params.keyvault_name)))
            .collect();
        let vault_of = |i: usize| VaultRef {
            name: params.objects[i].vault(&params.keyvault_name),
            url: &urls[i],
        };
        let token = self
            .auth
            .token(cx, &params.identity, &params.tenant_id, &cloud, &params.pod)
            .await?;
        let limit = self.options.max_concurrent_fetches.max(1);
        // Futures are built first: a closure inside `buffered` trips the
        // compiler's higher-ranked lifetime inference in `Send` futures.
        let plans: Vec<_> = params
            .objects
            .iter()
            .enumerate()
            .map(|(i, object)| self.plan(cx, vault_of(i), &token, object))
            .collect();
        let steps: Vec<Vec<Step<'_>>> = all_in_order(plans, limit).await?;
        let steps: Vec<(usize, Step<'_>)> = steps
            .into_iter()
            .enumerate()
            .flat_map(|(i, steps)| steps.into_iter().map(move |step| (i, step)))
            .collect();
        let owners: Vec<usize> = steps.iter().map(|(i, _)| *i).collect();
        let fetches: Vec<_> = steps
            .into_iter()
            .map(|(i, step)| self.step(cx, vault_of(i), &token, step, params))
            .collect();
        let rendered: Vec<Vec<render::Rendered>> = all_in_order(fetches, limit)
            .await
            .inspect_err(|e| self.forget_rejected_token(e, &token))?;
        // The driver refuses responses over its receive limit; say so here,
        // naming the file that crossed it, instead of failing in the driver.
        let mut size = ResponseSize::new(self.options.max_response_bytes);
        let rendered: Vec<Vec<render::Rendered>> = rendered
            .into_iter()
            .map(|files| size.add(files))
            .collect::<Result<_, _>>()?;
        let mut output = MountOutput::default();
        let mut paths = std::collections::HashMap::new();
        let mut mounted = vec![false; params.objects.len()];
        for (owner, items) in owners.into_iter().zip(rendered) {
            mounted[owner] |= !items.is_empty();
            for item in items {
                if let Some(&first) = paths.get(&item.file.path) {
                    self.duplicate_path(&params.objects, (first, owner), &item.file.path);
                }
                paths.insert(item.file.path.clone(), owner);
                output.files.push(item.file);
                output.versions.push(item.version);
            }
        }
        output
            .versions
            .extend(missing_versions(&params.objects, &mounted));
        Ok(output)
    }

    /// Two objects write one file: both are returned, as upstream, and the
    /// driver keeps the later one's; one warning naming both, and
    /// `akv_duplicate_output_paths_total`.
    fn duplicate_path(
        &self,
        objects: &[KeyVaultObject],
        (first, second): (usize, usize),
        path: &str,
    ) {
        let name = |i: usize| {
            objects
                .get(i)
                .map(KeyVaultObject::context)
                .unwrap_or_default()
        };
        tracing::warn!(
            path,
            first = %name(first),
            second = %name(second),
            "two objects write the same file; the driver keeps the content of the one declared last, as with upstream: set objectAlias to keep both"
        );
        self.metrics.duplicate_output_path();
    }

    /// A token Key Vault rejects (401: expired or revoked early) must not be
    /// served from the cache to the next mount.
    fn forget_rejected_token(&self, error: &MountError, token: &AccessToken) {
        if let MountError::Object {
            source: ObjectError::KeyVault(KeyVaultError::Service { status: 401, .. }),
            ..
        } = error
        {
            self.auth.forget(token);
        }
    }

    /// The versions of one object to fetch: the one named (or the latest),
    /// or for `objectVersionHistory > 1` the chosen entries of its version
    /// list.
    async fn plan<'a>(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        object: &'a KeyVaultObject,
    ) -> Result<Vec<Step<'a>>, MountError> {
        if object.is_single_version() {
            return Ok(vec![Step {
                object,
                slot: Slot::Single,
                version: object.version.clone(),
            }]);
        }
        let what = What::Versions(collection(object.object_type));
        let started = Instant::now();
        let listed = self
            .reads
            .read(cx, vault, token, what, &object.name, "")
            .await;
        // As upstream: a listing is recorded like a fetch.
        let code = listed.as_ref().err().map(|e| e.code());
        self.metrics
            .keyvault_request(object.object_type, &object.name, started.elapsed(), code);
        let listed = listed.and_then(|read| match &*read {
            Read::Versions(listed) => Ok(listed
                .iter()
                .map(|v| VersionEntry {
                    version: v.version.clone(),
                    created: v.created,
                })
                .collect::<Vec<_>>()),
            _ => Err(mismatch(vault)),
        });
        let entries = match listed {
            Err(e) if object.extensions.optional && is_not_found(&e) => {
                self.skip_missing(object, &object.context(), &e.code());
                return Ok(Vec::new());
            }
            listed => listed.map_err(|e| MountError::Object {
                context: object.context(),
                source: e.into(),
            })?,
        };
        let chosen = object.history(entries);
        if chosen.is_empty() && object.extensions.optional {
            self.skip_missing(object, &object.context(), "NoEnabledVersion");
        } else if chosen.is_empty() {
            tracing::warn!(
                object = %object.context(),
                "objectVersionHistory: no enabled version found from objectVersion on; no files for this object"
            );
        }
        Ok(chosen
            .into_iter()
            .enumerate()
            .map(|(i, version)| Step {
                object,
                slot: Slot::History(i),
                version,
            })
            .collect())
    }

    /// Fetches and renders one version, wrapping errors with its context.
    async fn step(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        step: Step<'_>,
        params: &MountParams,
    ) -> Result<Vec<render::Rendered>, MountError> {
        let object = step.object;
        let result = async {
            let started = Instant::now();
            let fetched = self.fetch(cx, vault, token, object, &step.version).await;
            self.observe_fetch(object, started.elapsed(), &fetched);
            let fetched = match fetched {
                Err(ObjectError::KeyVault(e)) if object.extensions.optional && is_not_found(&e) => {
                    let context = object.context_at(&step.version);
                    self.skip_missing(object, &context, &e.code());
                    return Ok(render::Output::default());
                }
                fetched => fetched?,
            };
            let output = render::render(
                object,
                step.slot,
                fetched,
                params.default_mode,
                self.options.render,
            )?;
            Ok::<_, ObjectError>(output)
        }
        .await;
        let context = match step.slot {
            Slot::Single => object.context(),
            Slot::History(_) => object.context_at(&step.version),
        };
        let output = result.map_err(|source| MountError::Object {
            context: context.clone(),
            source,
        })?;
        for warning in &output.warnings {
            tracing::warn!(object = %context, "{warning}");
        }
        Ok(output.files)
    }

    /// An optional object that does not exist: one log line and
    /// `akv_optional_objects_missing_total`.
    fn skip_missing(&self, object: &KeyVaultObject, context: &str, code: &str) {
        tracing::info!(
            object = %context,
            error = code,
            "optional object not found; mounting without it"
        );
        self.metrics.optional_object_missing(object.object_type);
    }

    /// `keyvault_request` and a debug line per object fetch (listings are
    /// recorded in `plan`).
    fn observe_fetch(
        &self,
        object: &KeyVaultObject,
        elapsed: Duration,
        fetched: &Result<Fetched, ObjectError>,
    ) {
        let code = fetched.as_ref().err().map(ObjectError::code);
        tracing::debug!(
            object_type = object.object_type.as_str(),
            object_name = %object.name,
            duration_ms = elapsed.as_millis() as u64,
            error = code.as_deref().unwrap_or(""),
            "object fetched"
        );
        self.metrics
            .keyvault_request(object.object_type, &object.name, elapsed, code);
    }

    async fn fetch(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        object: &KeyVaultObject,
        version: &str,
    ) -> Result<Fetched, ObjectError> {
        let what = match object.object_type {
            ObjectType::Secret => What::Secret,
            ObjectType::Key => What::Key,
            ObjectType::Cert => What::Certificate,
        };
        let read = self
            .reads
            .read(cx, vault, token, what, &object.name, version)
            .await?;
        // The answer is shared: copy out what rendering consumes.
        match &*read {
            Read::Secret(bundle) => Ok(Fetched::Secret {
                version: bundle.version().to_owned(),
                certificate_backed: bundle.kid.as_deref().is_some_and(|k| !k.is_empty()),
                content_type: bundle.content_type.clone(),
                value: bundle.value.clone(),
            }),
            Read::Key(bundle) => Ok(Fetched::Key {
                version: bundle.version().to_owned(),
                jwk: Jwk {
                    kty: bundle.kty.clone(),
                    crv: bundle.crv.clone(),
                    n: bundle.n.clone(),
                    e: bundle.e.clone(),
                    x: bundle.x.clone(),
                    y: bundle.y.clone(),
                },
            }),
            Read::Certificate(bundle) => Ok(Fetched::Certificate {
                version: bundle.version().to_owned(),
                cer: bundle.cer.clone(),
            }),
            Read::Versions(_) => Err(mismatch(vault).into()),
        }
    }
}

/// Runs `futures`, at most `limit` at a time, and returns their outputs in
/// the given order, or the first error to arrive: the others are dropped
/// (their requests cancelled) at once rather than awaited.
async fn all_in_order<T, E, F>(futures: Vec<F>, limit: usize) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut outputs: Vec<Option<T>> = std::iter::repeat_with(|| None)
        .take(futures.len())
        .collect();
    let indexed = futures
        .into_iter()
        .enumerate()
        .map(|(i, future)| future.map(move |output| output.map(|value| (i, value))));
    let mut running = futures_util::stream::iter(indexed).buffer_unordered(limit.max(1));
    while let Some(done) = running.next().await {
        let (i, value) = done?;
        outputs[i] = Some(value);
    }
    Ok(outputs.into_iter().flatten().collect())
}

/// A shared answer of another kind than the read asked for; cannot happen
/// (the read key includes the kind), but is an error rather than a panic.
fn mismatch(vault: VaultRef<'_>) -> KeyVaultError {
    KeyVaultError::Malformed {
        vault: vault.name.to_owned(),
        status: 200,
        reason: "internal error: a shared answer of another kind".into(),
    }
}

/// The running size of a mount's response, against its limit.
struct ResponseSize {
    total: usize,
    limit: usize,
}

impl ResponseSize {
    fn new(limit: usize) -> Self {
        Self { total: 0, limit }
    }

    /// Counts one object version's files; an error once the total is over.
    fn add(&mut self, files: Vec<render::Rendered>) -> Result<Vec<render::Rendered>, MountError> {
        for item in &files {
            self.total += encoded_size_bound(item);
            if self.total > self.limit {
                return Err(MountError::ResponseTooLarge {
                    limit: self.limit,
                    path: item.file.path.clone(),
                    size: item.file.contents.len(),
                    id: item.version.id.clone(),
                });
            }
        }
        Ok(files)
    }
}

/// An upper bound of what one file and its object version add to the
/// encoded `MountResponse`: the strings and contents plus protobuf framing
/// (tags and length prefixes, at most 48 bytes for both messages).
pub fn encoded_size_bound(item: &render::Rendered) -> usize {
    item.file.path.len()
        + item.file.contents.len()
        + item.version.id.len()
        + item.version.version.len()
        + 48
}

/// One version of one object to fetch and render.
struct Step<'a> {
    object: &'a KeyVaultObject,
    slot: Slot,
    /// Empty for the latest.
    version: String,
}

/// Whether Key Vault says the object (or the requested version) does not
/// exist; the only failure an `optional` object tolerates.
fn is_not_found(e: &KeyVaultError) -> bool {
    matches!(
        e,
        KeyVaultError::Service { status: 404, code, .. }
            if matches!(code.as_str(), "SecretNotFound" | "KeyNotFound" | "CertificateNotFound")
    )
}

/// One version entry per optional object that produced no file, so the
/// driver always gets at least one entry and sees a change once the object
/// exists.
fn missing_versions<'a>(
    objects: &'a [KeyVaultObject],
    mounted: &'a [bool],
) -> impl Iterator<Item = ObjectVersion> + 'a {
    objects
        .iter()
        .zip(mounted)
        .filter(|(object, mounted)| object.extensions.optional && !**mounted)
        .map(|(object, _)| ObjectVersion {
            id: object.uid(),
            version: MISSING_VERSION.to_owned(),
        })
}

fn collection(object_type: ObjectType) -> Collection {
    match object_type {
        ObjectType::Secret => Collection::Secrets,
        ObjectType::Key => Collection::Keys,
        ObjectType::Cert => Collection::Certificates,
    }
}

/// The cloud of a mount; Azure Stack reads its environment file now, for
/// this mount only (nothing process-global is changed).
async fn resolve_cloud(spec: &CloudSpec) -> Result<Cloud, MountError> {
    match spec {
        CloudSpec::Known(cloud) => Ok(cloud.clone()),
        CloudSpec::AzureStack { name, env_file } => {
            let invalid = |source| MountError::Cloud {
                name: name.clone(),
                source,
            };
            let text = tokio::fs::read_to_string(env_file).await.map_err(|e| {
                invalid(CloudError::EnvironmentFile {
                    path: env_file.clone(),
                    reason: go_io_reason(&e),
                })
            })?;
            Cloud::from_environment_json(&text).map_err(invalid)
        }
    }
}

/// An I/O error as Go's `*PathError` words its cause: `no such file or
/// directory`, without Rust's capital and `(os error 2)`.
fn go_io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outputs_keep_their_order_whatever_order_they_finish_in() {
        let delays = [30u64, 10, 20, 0];
        let futures: Vec<_> = delays
            .iter()
            .map(|&ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, ()>(ms)
            })
            .collect();
        assert_eq!(all_in_order(futures, 2).await, Ok(vec![30, 10, 20, 0]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_error_to_arrive_drops_the_rest() {
        let finished = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        // A slow object first, then one that fails fast, then eight more.
        let futures: Vec<_> = (0..10)
            .map(|i| {
                let (finished, started) = (finished.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if i == 1 {
                        return Err(i);
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(i)
                }
            })
            .collect();
        let begin = tokio::time::Instant::now();
        assert_eq!(all_in_order(futures, 4).await, Err(1));
        assert_eq!(tokio::time::Instant::now(), begin, "not after the slow one");
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert!(
            started.load(Ordering::SeqCst) <= 5,
            "the rest never started"
        );
    }
}
