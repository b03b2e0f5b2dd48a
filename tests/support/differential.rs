//! The differential test's machinery: a case (one Mount request, described
//! by the SecretProviderClass changes, identity and pod it needs), running
//! the corpus on both providers with bounded parallelism, comparing the
//! answers field by field, and judging the disagreements against the
//! deliberate-differences table of `docs/design.md`.
//!
//! What is compared, exactly:
//! * a success: every file's path, mode and bytes, in order, and every
//!   object version's id and version, in order. Bytes are compared as they
//!   are: no case yields bytes that differ by design (PKCS#12 output is the
//!   stored file passed through on both sides; PEM, keys and secrets are
//!   deterministic). A case that did would have to compare decoded content
//!   instead and say so here.
//! * a failure: the gRPC code and the message after [`normalise`], which
//!   removes only what varies from run to run (request and correlation ids,
//!   timestamps) and line breaks (upstream's SDK errors span lines, ours are
//!   one line by design; whitespace runs become one space).
//! * a success against a failure is a difference, of course.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use akv_csi_provider::proto::{MountRequest, MountResponse};
use tokio::sync::Semaphore;

use super::driver::{self, Pod};
use super::harness::Harness;
use super::identities;
use super::objects::objects;
use super::upstream::Upstream;

/// Which credential the pod's request carries.
#[derive(Clone, Debug)]
pub enum Ident {
    /// The pod's projected token for `api://AzureADTokenExchange`.
    Workload,
    /// A nodePublishSecretRef with `clientid` and this `clientsecret`.
    ServicePrincipal(&'static str),
    /// The pod's tokens for `api://AKSIdentityBinding` and
    /// `api://AzureADTokenExchange` (identity binding).
    IdentityBinding,
    /// Neither (the SPC's parameters choose the identity).
    None,
}

/// One Mount request of the corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// Stable name, `group/sub/...`; the differences table matches it.
    pub name: String,
    /// The `objects` YAML, else the blog's.
    pub objects: Option<String>,
    /// Blog SPC parameters changed after `objects` (`""` removes one).
    pub params: Vec<(String, String)>,
    pub ident: Ident,
    /// Another pod name than the blog's.
    pub pod_name: Option<String>,
    /// Attribute keys removed from the driver's request.
    pub drop_attributes: Vec<String>,
}

impl Case {
    /// The blog walkthrough as shipped.
    pub fn blog() -> Self {
        Self {
            name: "blog".into(),
            objects: None,
            params: Vec::new(),
            ident: Ident::Workload,
            pod_name: None,
            drop_attributes: Vec::new(),
        }
    }

    /// The blog SPC (workload identity) with these `objects` entries.
    pub fn objects(name: String, entries: &[&str]) -> Self {
        Self {
            name,
            objects: Some(objects(entries)),
            ..Self::blog()
        }
    }

    /// The request the driver sends for this case.
    pub fn request(&self, harness: &Harness) -> MountRequest {
        let mut changes: Vec<(&str, &str)> = Vec::new();
        if let Some(objects) = &self.objects {
            changes.push(("objects", objects));
        }
        changes.extend(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let spc = identities::spc(&changes);
        let mut pod = Pod::blog();
        if let Some(name) = &self.pod_name {
            pod.name = name.clone();
        }
        let (tokens, secrets) = match self.ident {
            Ident::Workload => (
                vec![harness.token(&pod.namespace, &pod.service_account)],
                None,
            ),
            Ident::ServicePrincipal(secret) => (Vec::new(), Some(identities::sp_secrets(secret))),
            Ident::IdentityBinding => (identities::ib_tokens(), None),
            Ident::None => (Vec::new(), None),
        };
        let mut request = driver::request(&spc, &pod, &tokens, secrets.as_ref());
        if !self.drop_attributes.is_empty() {
            let mut map: BTreeMap<String, String> =
                serde_json::from_str(&request.attributes).expect("attributes are a JSON map");
            for key in &self.drop_attributes {
                map.remove(key);
            }
            request.attributes = serde_json::to_string(&map).expect("attributes");
        }
        request
    }
}

/// One file of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub mode: i32,
    pub contents: Vec<u8>,
}

/// A provider's answer to one case, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Mounted {
        files: Vec<File>,
        versions: Vec<(String, String)>,
    },
    Failed {
        code: tonic::Code,
        message: String,
    },
}

impl Outcome {
    fn from(result: Result<MountResponse, tonic::Status>) -> Self {
        match result {
            Ok(response) => Self::Mounted {
                files: response
                    .files
                    .into_iter()
                    .map(|f| File {
                        path: f.path,
                        mode: f.mode,
                        contents: f.contents,
                    })
                    .collect(),
                versions: response
                    .object_version
                    .into_iter()
                    .map(|v| (v.id, v.version))
                    .collect(),
            },
            Err(status) => Self::Failed {
                code: status.code(),
                message: normalise(status.message()),
            },
        }
    }

    /// One line for a report.
    fn describe(&self) -> String {
        match self {
            Self::Mounted { files, versions } => {
                let files: Vec<String> = files
                    .iter()
                    .map(|f| format!("{} {:o} {}", f.path, f.mode, preview(&f.contents)))
                    .collect();
                format!("mounted files [{}] versions {versions:?}", files.join("; "))
            }
            Self::Failed { code, message } => format!("failed {code:?}: {message}"),
        }
    }
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let short: String = text.chars().take(60).collect();
    format!(
        "{:?}{}",
        short,
        if text.chars().count() > 60 { "…" } else { "" }
    )
}

/// The first field where two outcomes differ, or `None` when they agree.
pub fn compare(ours: &Outcome, theirs: &Outcome) -> Option<String> {
    match (ours, theirs) {
        (
            Outcome::Mounted {
                files: a,
                versions: va,
            },
            Outcome::Mounted {
                files: b,
                versions: vb,
            },
        ) => {
            if a.len() != b.len() {
                return Some(format!("file count {} vs {}", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x.path != y.path {
                    return Some(format!("file {i} path {:?} vs {:?}", x.path, y.path));
                }
                if x.mode != y.mode {
                    return Some(format!("file {} mode {:o} vs {:o}", x.path, x.mode, y.mode));
                }
                if x.contents != y.contents {
                    return Some(format!(
                        "file {} bytes {} vs {}",
                        x.path,
                        preview(&x.contents),
                        preview(&y.contents)
                    ));
                }
            }
            (va != vb).then(|| format!("object versions {va:?} vs {vb:?}"))
        }
        (
            Outcome::Failed {
                code: ca,
                message: ma,
            },
            Outcome::Failed {
                code: cb,
                message: mb,
            },
        ) => {
            if ca != cb {
                Some(format!("code {ca:?} vs {cb:?}"))
            } else {
                (ma != mb).then(|| "error text".to_owned())
            }
        }
        _ => Some("one mounted, the other failed".into()),
    }
}

/// Removes what varies between runs from an error message: UUIDs (request
/// and correlation ids) become `<id>`, RFC 3339 / Entra ID timestamps
/// `<time>`, and every run of whitespace (line breaks included) one space.
pub fn normalise(message: &str) -> String {
    let collapsed: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let without_ids = replace_runs(&collapsed, uuid_len, "<id>");
    replace_runs(&without_ids, timestamp_len, "<time>")
}

/// Replaces every match of `len_at` (the length of a match starting at a
/// byte offset, if any) with `with`.
fn replace_runs(text: &str, len_at: fn(&[u8]) -> Option<usize>, with: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && let Some(n) = len_at(&bytes[i..]) {
            out.push_str(with);
            i += n;
            continue;
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `8-4-4-4-12` hexadecimal digits.
fn uuid_len(s: &[u8]) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (n, len) in groups.iter().enumerate() {
        if s.len() < i + len || !s[i..i + len].iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        i += len;
        if n < 4 {
            if s.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
    }
    (s.get(i).is_none_or(|c| !c.is_ascii_alphanumeric())).then_some(i)
}

/// `YYYY-MM-DD[T ]hh:mm:ss[.fraction][Z]`.
fn timestamp_len(s: &[u8]) -> Option<usize> {
    let pattern = b"dddd-dd-ddXdd:dd:dd";
    if s.len() < pattern.len() {
        return None;
    }
    for (c, p) in s.iter().zip(pattern) {
        let ok = match p {
            b'd' => c.is_ascii_digit(),
            b'X' => *c == b'T' || *c == b' ',
            other => c == other,
        };
        if !ok {
            return None;
        }
    }
    let mut i = pattern.len();
    if s.get(i) == Some(&b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if s.get(i) == Some(&b'Z') {
        i += 1;
    }
    Some(i)
}

/// One case's answers.
pub struct CaseResult {
    pub case: Case,
    pub ours: Outcome,
    pub theirs: Outcome,
}

/// Runs every case on both providers, at most `parallel` at a time, and
/// returns the results in corpus order.
pub async fn run_all(
    ours: Arc<Harness>,
    theirs: Arc<Upstream>,
    corpus: Vec<Case>,
    parallel: usize,
) -> Vec<CaseResult> {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for case in corpus {
        let (ours, theirs, gate) = (ours.clone(), theirs.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let request = case.request(&ours);
            let limit = Duration::from_secs(90);
            let (a, b) = tokio::join!(
                tokio::time::timeout(limit, ours.mount_raw(request.clone())),
                tokio::time::timeout(limit, theirs.mount(request)),
            );
            let a = a.unwrap_or_else(|_| panic!("{}: our provider took over 90 s", case.name));
            let b = b.unwrap_or_else(|_| panic!("{}: upstream took over 90 s", case.name));
            CaseResult {
                ours: Outcome::from(a),
                theirs: Outcome::from(b),
                case,
            }
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("case task"));
    }
    results
}

/// A row of the deliberate-differences table.
#[derive(Clone, Debug)]
pub struct Listed {
    pub id: String,
    /// Case-name patterns (`*` matches any run of characters).
    pub cases: Vec<String>,
}

/// Markers around the table in `docs/design.md`.
pub const TABLE_BEGIN: &str = "<!-- differential-test:begin -->";
pub const TABLE_END: &str = "<!-- differential-test:end -->";

/// The rows of the table between the markers of `docs/design.md`.
pub fn listed_differences() -> Vec<Listed> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design.md");
    let text = std::fs::read_to_string(&path).expect("docs/design.md");
    parse_table(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `| id | cases | … |` rows: the id is `Dnn`, the cases column a
/// comma-separated list of backquoted patterns.
pub fn parse_table(text: &str) -> Result<Vec<Listed>, String> {
    let start = text
        .find(TABLE_BEGIN)
        .ok_or_else(|| format!("no {TABLE_BEGIN} marker"))?;
    let end = text[start..]
        .find(TABLE_END)
        .ok_or_else(|| format!("no {TABLE_END} marker"))?;
    let mut rows = Vec::new();
    for line in text[start..start + end].lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(id) = cells.first() else { continue };
        if !(id.starts_with('D') && id[1..].chars().all(|c| c.is_ascii_digit()) && id.len() > 1) {
            continue;
        }
        let column = cells
            .get(1)
            .ok_or_else(|| format!("{id}: no cases column"))?;
        let cases: Vec<String> = column
            .split(',')
            .map(|p| p.trim().trim_matches('`').to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if cases.is_empty() {
            return Err(format!("{id}: names no cases"));
        }
        if rows.iter().any(|r: &Listed| r.id == *id) {
            return Err(format!("{id} twice"));
        }
        rows.push(Listed {
            id: (*id).to_owned(),
            cases,
        });
    }
    if rows.is_empty() {
        return Err("the differences table has no rows".into());
    }
    Ok(rows)
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters (`/` included).
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// What the judge found.
pub struct Report {
    pub summary: String,
    pub failures: Vec<String>,
}

/// Judges the results: a disagreement in a case no row names fails, and so
/// does a row whose cases all agree with upstream (or that names no case).
pub fn judge(results: &[CaseResult], listed: &[Listed]) -> Report {
    let mut failures = Vec::new();
    let mut seen: BTreeMap<&str, usize> = listed.iter().map(|l| (l.id.as_str(), 0)).collect();
    let mut named: BTreeMap<&str, usize> = seen.clone();
    let (mut agree, mut expected) = (0, 0);
    for result in results {
        let name = &result.case.name;
        let rows: Vec<&Listed> = listed
            .iter()
            .filter(|l| l.cases.iter().any(|p| glob(p, name)))
            .collect();
        for row in &rows {
            *named.get_mut(row.id.as_str()).expect("row") += 1;
        }
        match compare(&result.ours, &result.theirs) {
            None if rows.is_empty() => agree += 1,
            None => failures.push(format!(
                "{name}: listed as {} but both answer alike now: {}",
                ids(&rows),
                result.ours.describe()
            )),
            Some(what) if rows.is_empty() => failures.push(format!(
                "{name}: differs from upstream ({what}) and no row of the differences table in docs/design.md names it\n  ours:     {}\n  upstream: {}",
                result.ours.describe(),
                result.theirs.describe()
            )),
            Some(_) => {
                expected += 1;
                for row in &rows {
                    *seen.get_mut(row.id.as_str()).expect("row") += 1;
                }
            }
        }
    }
    for row in listed {
        if named[row.id.as_str()] == 0 {
            failures.push(format!(
                "{}: its patterns {:?} name no case",
                row.id, row.cases
            ));
        } else if seen[row.id.as_str()] == 0 {
            failures.push(format!(
                "{}: no longer shows up in any case it names",
                row.id
            ));
        }
    }
    let mut summary = format!(
        "differential: {} cases, {agree} identical, {expected} listed differences, {} failures\n",
        results.len(),
        failures.len()
    );
    for (id, n) in &seen {
        let _ = writeln!(summary, "  {id}: {n} cases");
    }
    Report { summary, failures }
}

/// Every case's answers side by side, one block per case (written where
/// `AKV_DIFFERENTIAL_REPORT` names, for reviewing a run).
pub fn full_report(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for r in results {
        let verdict = compare(&r.ours, &r.theirs).unwrap_or_else(|| "same".into());
        let _ = writeln!(
            out,
            "== {} [{verdict}]\n  ours:     {}\n  upstream: {}",
            r.case.name,
            r.ours.describe(),
            r.theirs.describe()
        );
        if let (Outcome::Mounted { files: a, .. }, Outcome::Mounted { files: b, .. }) =
            (&r.ours, &r.theirs)
        {
            for (x, y) in a.iter().zip(b).filter(|(x, y)| x.contents != y.contents) {
                let _ = writeln!(
                    out,
                    "  -- {} ours:\n{}\n  -- upstream:\n{}",
                    x.path,
                    String::from_utf8_lossy(&x.contents),
                    String::from_utf8_lossy(&y.contents)
                );
            }
        }
    }
    out
}

fn ids(rows: &[&Listed]) -> String {
    rows.iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
